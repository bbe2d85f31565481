// descent.hpp's Standardisation on the device, for one block: the map from
// the raw mean gradient to the descended space's, and from the iterate
// (V, c) to the model (W, b). Same formulas as the host's, term for term;
// the sums over columns (norms, shift^T W) are block_sum()s, so they differ
// from the host's in rounding order only.
#pragma once

#include "common.cuh"

namespace fastlinreg {
namespace cuda {

struct DeviceStandardisation {
  index_t d, k;
  const double *shift;  // device (d) or nullptr
  const double *scale;  // device (d) or nullptr
  bool fit_intercept;

  // G (d, k) += alpha W, -= shift gb, /= scale, in place; returns the squared
  // norm of (G, gb) (gb counted only with an intercept), to every thread.
  __device__ double to_descended_norm2(double *G, const double *gb, const double *W, double alpha,
                                       double *scratch) const {
    double n2 = 0.0;
    for (index_t e = threadIdx.x; e < d * k; e += blockDim.x) {
      const index_t j = e / k, q = e % k;
      double g = G[e];
      if (alpha != 0.0) g += alpha * W[e];
      if (shift && fit_intercept) g -= shift[j] * gb[q];
      if (scale) g /= scale[j];
      G[e] = g;
      n2 += g * g;
    }
    double norm2 = block_sum(n2, scratch);
    if (fit_intercept)
      for (index_t q = 0; q < k; ++q) norm2 += gb[q] * gb[q];
    return norm2;
  }

  // (V, c) -> (W, b). Ends with a barrier: W and b are complete on return.
  __device__ void to_model(const double *V, const double *c, double *W, double *b,
                           double *scratch) const {
    for (index_t e = threadIdx.x; e < d * k; e += blockDim.x)
      W[e] = scale ? V[e] * (1.0 / scale[e / k]) : V[e];
    __syncthreads();
    for (index_t q = 0; q < k; ++q) {
      double sw = 0.0;
      if (shift && fit_intercept) {
        for (index_t j = threadIdx.x; j < d; j += blockDim.x) sw += shift[j] * W[j * k + q];
        sw = block_sum(sw, scratch);
      }
      if (threadIdx.x == 0) b[q] = (fit_intercept ? c[q] : 0.0) - sw;
    }
    __syncthreads();
  }
};

// The squared Frobenius norm of W (d k), to every thread.
__device__ inline double squared_norm(const double *W, index_t len, double *scratch) {
  double s = 0.0;
  for (index_t e = threadIdx.x; e < len; e += blockDim.x) s += W[e] * W[e];
  return block_sum(s, scratch);
}

// The host's from_model (descent.hpp's ParamMap::from_model, term for term):
// (W, b) -> (V, c).
inline void host_from_model(index_t d, index_t k, const double *shift, const double *scale,
                            bool fit_intercept, const double *W, const double *b, double *V,
                            double *c) {
  for (index_t j = 0; j < d * k; ++j) V[j] = scale ? W[j] * scale[j / k] : W[j];
  for (index_t q = 0; q < k; ++q) {
    double cq = fit_intercept ? b[q] : 0.0;
    if (shift && fit_intercept)
      for (index_t j = 0; j < d; ++j) cq += shift[j] * W[j * k + q];
    c[q] = cq;
  }
}

// The host's to_model (ParamMap::to_model): the first and the last model of a run.
inline void host_to_model(index_t d, index_t k, const double *shift, const double *scale,
                          bool fit_intercept, const double *V, const double *c, double *W,
                          double *b) {
  for (index_t j = 0; j < d; ++j) {
    const double inv = scale ? 1.0 / scale[j] : 1.0;
    for (index_t q = 0; q < k; ++q) W[j * k + q] = scale ? V[j * k + q] * inv : V[j * k + q];
  }
  for (index_t q = 0; q < k; ++q) {
    double bq = fit_intercept ? c[q] : 0.0;
    if (shift && fit_intercept)
      for (index_t j = 0; j < d; ++j) bq -= shift[j] * W[j * k + q];
    b[q] = bq;
  }
}

}  // namespace cuda
}  // namespace fastlinreg
