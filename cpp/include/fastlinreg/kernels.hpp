// Public C++ entry points of fastlinreg, for float and double X.
//
// A thin header: the plain types of types.hpp and declarations, nothing of
// the SIMD internals, so every includer (the bindings, a CUDA twin, a C++
// user) sees the same declarations whatever instruction set the kernels were
// built for. The templates are defined and explicitly instantiated for float
// and double in cpp/src/kernels.cpp and cpp/src/sgd.cpp, and only there.
//
// Models are (W (d, k), b (k)) in the caller's coordinates, row-major;
// params.standardisation only changes where the descent steps are taken.
#pragma once

#include <utility>

#include "fastlinreg/types.hpp"

namespace fastlinreg {

// The row chunking of a fused pass (n_chunks, rows_per_chunk): depends on
// the shape only, never on threads.
std::pair<index_t, index_t> chunk_plan(index_t n, index_t d, index_t k);

// Doubles per vector the kernels were compiled for (8 AVX-512, 4 AVX, 2 else).
int simd_lanes();

// Threads a call uses when n_threads <= 0 (OMP_NUM_THREADS, threadpoolctl).
int default_threads();
bool built_with_openmp();

// One fused pass of data.loss. Returns the mean loss; G (d, k) and gb (k)
// get the mean gradients at (W, b).
template <class T>
double fused_gradient(const DataView<T> &data, const double *W, const double *b, double *G,
                      double *gb, int n_threads);

// Predictions P = X W + b (n, k), accumulated in double. data.y is unused.
template <class T>
void linear_predict(const DataView<T> &data, const double *W, const double *b, double *P,
                    int n_threads);

// The whole descent loop over X (one fused pass per step). W, b: start in,
// last iterate out. loss_curve has params.max_iter slots.
template <class T>
DescentResult descend_stream(const DataView<T> &data, const DescentParams &params, double *W,
                             double *b, double *loss_curve, int n_threads,
                             const StopCheck &should_stop);

// Mini-batch SGD, the fused pass per batch. W, b: start in, last iterate out.
template <class T>
SgdResult descend_sgd(const DataView<T> &data, const SgdParams &params, double *W, double *b,
                      double *loss_curve, const StopCheck &should_stop);

// The largest curvature of data.loss along the coefficients, in the
// descended space: loss curvature bound * lambda_max(X^T X / weight_sum), plus
// the penalty. data.y is unused.
template <class T>
double curvature_stream(const DataView<T> &data, const DescentParams &params, int n_threads,
                        const StopCheck &should_stop = {});

// Centred sufficient statistics in one read of X (stats.hpp). Outputs are
// overwritten: mean_x (d), mean_y (k), Cxx (d, d), Cxy (d, k), Cyy (k, k).
// Returns the weight sum. syrk: run the rank update in BLAS (for the
// benchmark's comparison), or nullptr for the own tiled kernel.
template <class T>
double sufficient_stats(const DataView<T> &data, dsyrk_fn *syrk, int n_threads, double *mean_x,
                        double *mean_y, double *Cxx, double *Cxy, double *Cyy);

// Weighted column means and variances in one pass: mean (d), var (d)
// overwritten; returns the weight sum.
template <class T>
double column_moments(const DataView<T> &data, int n_threads, double *mean, double *var);

// The descent loop and the curvature replayed from sufficient statistics
// (squared loss): the same iterates as descend_stream at O(d^2 k) per step.
DescentResult descend_gram(const GramView &stats, const DescentParams &params, double *W, double *b,
                           double *loss_curve, int n_threads, const StopCheck &should_stop);
double curvature_gram(const GramView &stats, const DescentParams &params, int n_threads,
                      const StopCheck &should_stop = {});

}  // namespace fastlinreg
