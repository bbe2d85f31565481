// The plain data the kernels take and return: views of the caller's arrays,
// the parameters of a run and its result. No kernel code, no SIMD: this is
// what the public header (kernels.hpp) and the bindings see.
#pragma once

#include <cmath>
#include <cstdint>
#include <functional>

#include "fastlinreg/losses.hpp"

namespace fastlinreg {

using index_t = std::int64_t;

// Rows of a (weighted) problem held in memory, and the loss over them.
template <class T>
struct DataView {
  const T *X = nullptr;  // (n, d), rows contiguous, row stride ldx >= d
  index_t n = 0, d = 0, ldx = 0;
  const double *y = nullptr;  // (n, k) row-major, or nullptr for y = 0
  index_t k = 1;
  const double *sw = nullptr;  // (n) sample weights, or nullptr for 1
  double weight_sum = 0.0;     // sum of sw, or n
  LossKind loss = LossKind::kSquared;
};

// Rows of a (weighted) problem held as a CSR matrix (scipy.sparse's layout):
// row i's values are data[indptr[i]:indptr[i+1]] in the columns
// indices[indptr[i]:indptr[i+1]] (each in [0, d), increasing within a row:
// scipy's canonical form).
template <class T, class I>
struct CsrView {
  const T *data = nullptr;     // (nnz)
  const I *indices = nullptr;  // (nnz)
  const I *indptr = nullptr;   // (n + 1), indptr[0] == 0
  index_t n = 0, d = 0;
  const double *y = nullptr;  // (n, k) row-major, or nullptr for y = 0
  index_t k = 1;
  const double *sw = nullptr;  // (n) sample weights, or nullptr for 1
  double weight_sum = 0.0;     // sum of sw, or n
  LossKind loss = LossKind::kSquared;
};

// Centred sufficient statistics (stats.hpp defines them).
struct GramView {
  index_t d = 0, k = 1;
  double weight_sum = 0.0;
  const double *mean_x = nullptr;  // (d)
  const double *mean_y = nullptr;  // (k)
  const double *Cxx = nullptr;     // (d, d)
  const double *Cxy = nullptr;     // (d, k)
  const double *Cyy = nullptr;     // (k, k)
};

// Where the iterate is descended: with a column shift m (d) and scale s (d),
// the descended (V, c) stands for the model W = V / s (row-wise),
// b = c - m^T W: gradient descent on the centred, scaled columns
// z = (x - m) / s without forming z. Null shift and scale: plain descent on
// (W, b), the tutorial's iterates.
struct Standardisation {
  const double *shift = nullptr;  // (d) or nullptr
  const double *scale = nullptr;  // (d) or nullptr
};

enum class DescentStatus : int {
  kMaxIter = 0,      // ran max_iter steps (or epochs)
  kConverged = 1,    // the tol rule was met
  kDiverged = 2,     // loss became non-finite or grew without bound
  kInterrupted = 3,  // should_stop() returned true (e.g. Ctrl-C)
};

struct DescentParams {
  index_t max_iter = 100;
  double learning_rate = 0.01;
  double tol = -1.0;   // < 0: no convergence test, run max_iter steps
  double alpha = 0.0;  // L2 penalty alpha/2 * ||W||^2 on the model coefficients
  // (k) or nullptr: one penalty per output, replacing alpha in the loss and
  // gradient (alpha, their maximum, still bounds the curvature).
  const double *alpha_per_output = nullptr;
  bool positive = false;  // project the coefficients onto W >= 0 after each step
  bool fit_intercept = true;
  Standardisation standardisation;
  double divergence_factor = 1e8;  // loss > factor * initial loss counts as divergence
};

struct DescentResult {
  index_t n_iter = 0;  // updates applied; loss_curve[0:n_iter] is filled
  DescentStatus status = DescentStatus::kMaxIter;
  double last_loss = 0.0;  // loss at the last iterate evaluated
};

struct SgdParams {
  index_t max_epochs = 5;
  index_t batch_size = 256;
  bool shuffle = true;
  std::uint64_t seed = 0;
  double eta0 = 0.01;        // epoch e steps eta0 / sqrt(1 + e)
  index_t epoch_offset = 0;  // epochs done by earlier calls (partial_fit)
  double alpha = 0.0;
  const double *alpha_per_output = nullptr;  // as in DescentParams
  bool positive = false;                     // as in DescentParams
  double tol = -1.0;                         // < 0: no early stopping
  index_t n_iter_no_change = 5;              // epochs without a tol improvement before stopping
  double ref_loss = 0.0;                     // loss scale of tol; <= 0: the first epoch's loss
  double best_loss = INFINITY;               // carried across partial_fit calls
  index_t no_improvement = 0;                // carried across partial_fit calls
  bool fit_intercept = true;
  Standardisation standardisation;
};

struct SgdResult {
  index_t n_epochs = 0;  // epochs run; loss_curve[0:n_epochs] is filled
  DescentStatus status = DescentStatus::kMaxIter;
  double best_loss = INFINITY;
  index_t no_improvement = 0;
  double ref_loss = 0.0;
};

// Fortran BLAS dsyrk, as scipy.linalg.cython_blas exports it.
using dsyrk_fn = void(const char *uplo, const char *trans, const int *n, const int *k,
                      const double *alpha, const double *a, const int *lda, const double *beta,
                      double *c, const int *ldc);

// Called now and then (about every 2^25 elements read) by the thread that
// started a loop, with the steps (epochs, for SGD) done so far and the last
// loss, so that it can also report progress; true stops the loop with
// kInterrupted. Must not throw.
using StopCheck = std::function<bool(index_t step, double loss)>;

}  // namespace fastlinreg
