// The fused pass: one read of X gives the residuals, the loss and the gradient.
//
// For a loss policy `Loss`, rows x_i (d), targets y_i (k), weights w_i and the
// linear model p_i = x_i^T W + b:
//   loss  = sum_i w_i * Loss::value(p_i, y_i)
//   G     = sum_i x_i * (w_i * Loss::derivative(p_i, y_i))^T     (d, k)
//   g_b   = sum_i w_i * Loss::derivative(p_i, y_i)                (k)
// All sums are in double whatever the type of X. Rows are split into chunks
// whose number depends on (n, d, k) only, never on the thread count, and the
// chunk partials are reduced in chunk order: the bits of the result do not
// depend on how many threads ran.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "fastlinreg/parallel.hpp"

namespace fastlinreg {

using index_t = std::int64_t;

// Rows per tile in the fused loop: the partial sums of a tile stay in registers.
constexpr int kRowTile = 4;

// Deterministic row chunking that depends on the problem size only.
struct ChunkPlan {
  index_t n_chunks;
  index_t rows_per_chunk;
};

inline ChunkPlan plan_chunks(index_t n, index_t d, index_t k) {
  // About 64K elements of X per chunk at least, at most 256 chunks: enough
  // chunks to balance any thread count we expect, few enough that reducing
  // the chunk partials (n_chunks * d * k adds) is noise next to the pass.
  const index_t min_elems = index_t(1) << 16;
  const index_t width = std::max<index_t>(1, d * std::max<index_t>(1, k));
  index_t chunks = (n * width) / min_elems;
  chunks = std::clamp<index_t>(chunks, 1, 256);
  chunks = std::min<index_t>(chunks, std::max<index_t>(1, n / kRowTile));
  index_t rows = (n + chunks - 1) / chunks;
  rows = ((rows + kRowTile - 1) / kRowTile) * kRowTile;  // tiles never straddle chunks
  if (rows == 0) rows = kRowTile;
  chunks = (n + rows - 1) / rows;
  if (chunks == 0) chunks = 1;
  return {chunks, rows};
}

namespace detail {

// Accumulate the fused sums of rows [r0, r1) into G (d,k), gb (k), *loss.
// KT is the number of outputs when known at compile time (1), or 0 for a
// runtime k. `scratch` holds 2 * kRowTile * k doubles.
template <class Loss, class T, int KT>
void fused_rows(const T *X,         // (n, d), row stride ldx elements
                index_t d, index_t ldx,
                const double *y,    // (n, k) row-major, or nullptr for y = 0
                index_t k_runtime,
                const double *sw,   // (n) sample weights, or nullptr for 1
                const double *W,    // (d, k) row-major
                const double *b,    // (k)
                index_t r0, index_t r1,
                double *G,          // (d, k) accumulated into
                double *gb,         // (k) accumulated into
                double *loss,       // accumulated into
                double *scratch) {
  const index_t k = KT > 0 ? KT : k_runtime;
  double *P = scratch;                  // (kRowTile, k) predictions
  double *D = scratch + kRowTile * k;   // (kRowTile, k) weighted derivatives
  double acc_loss = 0.0;
  index_t i = r0;
  for (; i + kRowTile <= r1; i += kRowTile) {
    const T *x0 = X + i * ldx;
    const T *x1 = x0 + ldx;
    const T *x2 = x1 + ldx;
    const T *x3 = x2 + ldx;
    if (k == 1) {
      double p0 = 0.0, p1 = 0.0, p2 = 0.0, p3 = 0.0;
#pragma omp simd reduction(+ : p0, p1, p2, p3)
      for (index_t j = 0; j < d; ++j) {
        const double w = W[j];
        p0 += double(x0[j]) * w;
        p1 += double(x1[j]) * w;
        p2 += double(x2[j]) * w;
        p3 += double(x3[j]) * w;
      }
      P[0] = p0 + b[0];
      P[1] = p1 + b[0];
      P[2] = p2 + b[0];
      P[3] = p3 + b[0];
    } else {
      for (index_t r = 0; r < kRowTile * k; ++r) P[r] = 0.0;
      for (index_t j = 0; j < d; ++j) {
        const double v0 = double(x0[j]), v1 = double(x1[j]), v2 = double(x2[j]),
                     v3 = double(x3[j]);
        const double *Wj = W + j * k;
        for (index_t c = 0; c < k; ++c) {
          P[c] += v0 * Wj[c];
          P[k + c] += v1 * Wj[c];
          P[2 * k + c] += v2 * Wj[c];
          P[3 * k + c] += v3 * Wj[c];
        }
      }
      for (index_t r = 0; r < kRowTile; ++r)
        for (index_t c = 0; c < k; ++c) P[r * k + c] += b[c];
    }
    for (index_t r = 0; r < kRowTile; ++r) {
      const double wr = sw ? sw[i + r] : 1.0;
      for (index_t c = 0; c < k; ++c) {
        const double yv = y ? y[(i + r) * k + c] : 0.0;
        const double p = P[r * k + c];
        D[r * k + c] = wr * Loss::derivative(p, yv);
        acc_loss += wr * Loss::value(p, yv);
        gb[c] += D[r * k + c];
      }
    }
    if (k == 1) {
      const double d0 = D[0], d1 = D[1], d2 = D[2], d3 = D[3];
#pragma omp simd
      for (index_t j = 0; j < d; ++j)
        G[j] += double(x0[j]) * d0 + double(x1[j]) * d1 + double(x2[j]) * d2 +
                double(x3[j]) * d3;
    } else {
      for (index_t j = 0; j < d; ++j) {
        const double v0 = double(x0[j]), v1 = double(x1[j]), v2 = double(x2[j]),
                     v3 = double(x3[j]);
        double *Gj = G + j * k;
        for (index_t c = 0; c < k; ++c)
          Gj[c] += v0 * D[c] + v1 * D[k + c] + v2 * D[2 * k + c] + v3 * D[3 * k + c];
      }
    }
  }
  // Tail rows of the chunk, one at a time.
  for (; i < r1; ++i) {
    const T *x = X + i * ldx;
    for (index_t c = 0; c < k; ++c) P[c] = b[c];
    for (index_t j = 0; j < d; ++j) {
      const double v = double(x[j]);
      for (index_t c = 0; c < k; ++c) P[c] += v * W[j * k + c];
    }
    const double wr = sw ? sw[i] : 1.0;
    for (index_t c = 0; c < k; ++c) {
      const double yv = y ? y[i * k + c] : 0.0;
      D[c] = wr * Loss::derivative(P[c], yv);
      acc_loss += wr * Loss::value(P[c], yv);
      gb[c] += D[c];
    }
    for (index_t j = 0; j < d; ++j) {
      const double v = double(x[j]);
      for (index_t c = 0; c < k; ++c) G[j * k + c] += v * D[c];
    }
  }
  *loss += acc_loss;
}

}  // namespace detail

// Gradient oracle over rows of X in memory: the fused pass, chunked.
// partials() is work-shared (`omp for`) when called inside a parallel region
// and serial outside one; reduce() runs on one thread.
template <class Loss, class T>
class StreamOracle {
 public:
  StreamOracle(const T *X,  // (n, d), rows contiguous, row stride ldx
               index_t n, index_t d, index_t ldx,
               const double *y,   // (n, k) or nullptr
               index_t k,
               const double *sw,  // (n) or nullptr
               double weight_sum)
      : X_(X), n_(n), d_(d), ldx_(ldx), y_(y), k_(k), sw_(sw), weight_sum_(weight_sum),
        plan_(plan_chunks(n, d, k)), slot_(d * k + k + 1),
        partial_(static_cast<size_t>(plan_.n_chunks * slot_)),
        scratch_(static_cast<size_t>(plan_.n_chunks * 2 * kRowTile * k)),
        total_(static_cast<size_t>(slot_)) {}

  index_t d() const { return d_; }
  index_t k() const { return k_; }
  index_t n_chunks() const { return plan_.n_chunks; }
  // Elements of X read per pass: sets the cadence of signal checks.
  double work_per_pass() const { return double(n_) * double(d_) * double(k_); }

  void partials(const double *W, const double *b) {
#pragma omp for schedule(static)
    for (index_t c = 0; c < plan_.n_chunks; ++c) {
      double *slot = partial_.data() + c * slot_;
      std::memset(slot, 0, sizeof(double) * slot_);
      const index_t r0 = c * plan_.rows_per_chunk;
      const index_t r1 = std::min(n_, r0 + plan_.rows_per_chunk);
      double *scratch = scratch_.data() + c * 2 * kRowTile * k_;
      if (k_ == 1)
        detail::fused_rows<Loss, T, 1>(X_, d_, ldx_, y_, k_, sw_, W, b, r0, r1, slot,
                                       slot + d_ * k_, slot + d_ * k_ + k_, scratch);
      else
        detail::fused_rows<Loss, T, 0>(X_, d_, ldx_, y_, k_, sw_, W, b, r0, r1, slot,
                                       slot + d_ * k_, slot + d_ * k_ + k_, scratch);
    }
  }

  // Sum the chunk partials in chunk order and normalise by the weight sum.
  // Returns the loss; G (d,k) and gb (k) receive the mean gradients.
  double reduce(double *G, double *gb) {
    const index_t m = d_ * k_ + k_ + 1;
    double *total = total_.data();
    std::memcpy(total, partial_.data(), sizeof(double) * m);
    for (index_t c = 1; c < plan_.n_chunks; ++c) {
      const double *slot = partial_.data() + c * slot_;
      for (index_t j = 0; j < m; ++j) total[j] += slot[j];
    }
    const double inv = 1.0 / weight_sum_;
    for (index_t j = 0; j < d_ * k_; ++j) G[j] = total[j] * inv;
    for (index_t c = 0; c < k_; ++c) gb[c] = total[d_ * k_ + c] * inv;
    return total[m - 1] * inv;
  }

 private:
  const T *X_;
  index_t n_, d_, ldx_;
  const double *y_;
  index_t k_;
  const double *sw_;
  double weight_sum_;
  ChunkPlan plan_;
  index_t slot_;
  std::vector<double> partial_;
  std::vector<double> scratch_;
  std::vector<double> total_;
};

}  // namespace fastlinreg
