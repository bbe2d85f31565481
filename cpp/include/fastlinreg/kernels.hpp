// Public C++ entry points of fastlinreg, instantiated for float and double X.
// Everything here is plain C++ on raw pointers; Python lives in bindings/.
// Shapes are given as trailing comments; all 2-D arrays are row-major unless
// said otherwise, and X may have a row stride ldx >= d (rows contiguous).
#pragma once

#include "fastlinreg/descent.hpp"
#include "fastlinreg/fused.hpp"
#include "fastlinreg/gram.hpp"
#include "fastlinreg/losses.hpp"
#include "fastlinreg/stats.hpp"

namespace fastlinreg {

// Rows of a (weighted) regression problem held in memory.
template <class T>
struct DataView {
  const T *X;          // (n, d), row stride ldx
  index_t n, d, ldx;
  const double *y;     // (n, k), or nullptr for y = 0
  index_t k;
  const double *sw;    // (n) sample weights, or nullptr
  double weight_sum;   // sum of sw, or n
};

// Centred sufficient statistics (see stats.hpp).
struct GramView {
  index_t d, k;
  double weight_sum;
  const double *mean_x;  // (d)
  const double *mean_y;  // (k)
  const double *Cxx;     // (d, d)
  const double *Cxy;     // (d, k)
  const double *Cyy;     // (k, k)
};

// One fused pass. Returns the mean loss; G (d, k), gb (k) get mean gradients.
template <class T>
double fused_gradient(LossKind loss, const DataView<T> &data, const double *W, const double *b,
                      double *G, double *gb, int n_threads);

// Predictions P = X W + b (n, k), accumulated in double.
template <class T>
void linear_predict(const T *X, index_t n, index_t d, index_t ldx, const double *W, const double *b,
                    index_t k, double *P, int n_threads);

// The whole descent loop over X (one fused pass per step).
template <class T>
DescentResult descend_stream(LossKind loss, const DataView<T> &data, const DescentParams &params,
                             double *V, double *c, double *loss_curve, int n_threads,
                             const StopCheck &should_stop);

// The same loop over sufficient statistics (squared loss only).
DescentResult descend_gram(const GramView &stats, const DescentParams &params, double *V,
                           double *c, double *loss_curve, int n_threads,
                           const StopCheck &should_stop);

// Largest Hessian eigenvalue of the mean squared loss in the descended space.
template <class T>
double hessian_norm_stream(const DataView<T> &data, const DescentParams &params, int n_threads);
double hessian_norm_gram(const GramView &stats, const DescentParams &params, int n_threads);

#define FASTLINREG_DECLARE(T)                                                                 \
  extern template double fused_gradient<T>(LossKind, const DataView<T> &, const double *,     \
                                           const double *, double *, double *, int);          \
  extern template DescentResult descend_stream<T>(LossKind, const DataView<T> &,              \
                                                  const DescentParams &, double *, double *,  \
                                                  double *, int, const StopCheck &);          \
  extern template void linear_predict<T>(const T *, index_t, index_t, index_t, const double *, \
                                         const double *, index_t, double *, int);             \
  extern template double hessian_norm_stream<T>(const DataView<T> &, const DescentParams &,   \
                                                int);                                         \
  extern template double sufficient_stats<T>(const T *, index_t, index_t, index_t,            \
                                             const double *, index_t, const double *,         \
                                             const BlasFunctions &, int, double *, double *,  \
                                             double *, double *, double *);                   \
  extern template double column_moments<T>(const T *, index_t, index_t, index_t,              \
                                           const double *, int, double *, double *);
FASTLINREG_DECLARE(float)
FASTLINREG_DECLARE(double)
#undef FASTLINREG_DECLARE

}  // namespace fastlinreg
