// Sufficient statistics of a weighted least-squares problem, in one read of X.
//
// Output (centred form, which merges exactly and keeps its precision when the
// columns have large means):
//   weight_sum = sum_i w_i
//   mean_x     = sum_i w_i x_i / weight_sum                          (d)
//   mean_y     = sum_i w_i y_i / weight_sum                          (k)
//   Cxx        = sum_i w_i (x_i - mean_x)(x_i - mean_x)^T            (d, d)
//   Cxy        = sum_i w_i (x_i - mean_x)(y_i - mean_y)^T            (d, k)
//   Cyy        = sum_i w_i (y_i - mean_y)(y_i - mean_y)^T            (k, k)
// Rows are taken in blocks. Each block is shifted by the first row of X (a
// value near the data, so the shifted sums lose no digits), scaled by
// sqrt(w), converted to double in a small buffer that stays in cache, and
// handed to BLAS syrk/gemm; without BLAS pointers a plain loop does it.
#pragma once

#include <algorithm>
#include <cmath>
#include <vector>

#include "fastlinreg/fused.hpp"

namespace fastlinreg {

// Fortran BLAS entry points, as scipy.linalg.cython_blas exports them.
using dsyrk_fn = void(const char *uplo, const char *trans, const int *n, const int *k,
                      const double *alpha, const double *a, const int *lda,
                      const double *beta, double *c, const int *ldc);
using dgemm_fn = void(const char *transa, const char *transb, const int *m, const int *n,
                      const int *k, const double *alpha, const double *a, const int *lda,
                      const double *b, const int *ldb, const double *beta, double *c,
                      const int *ldc);

struct BlasFunctions {
  dsyrk_fn *syrk = nullptr;
  dgemm_fn *gemm = nullptr;
  bool available() const { return syrk != nullptr && gemm != nullptr; }
};

namespace detail {

// S (m, m), upper triangle, column-major with leading dimension m, += A A^T
// where A is (m, rows) column-major (rows of the block, contiguous).
inline void syrk_upper_plain(const double *A, index_t m, index_t rows, double *S,
                             int n_threads) {
  // Each thread owns whole columns l of S: the sum for an entry runs over the
  // block rows in order, so the result does not depend on the thread count.
#pragma omp parallel for schedule(static, 1) num_threads(n_threads) if (n_threads > 1)
  for (index_t l = 0; l < m; ++l) {
    double *Sl = S + l * m;  // column l, entries j <= l are the upper triangle
    index_t i = 0;
    for (; i + 4 <= rows; i += 4) {
      const double *a0 = A + i * m, *a1 = a0 + m, *a2 = a1 + m, *a3 = a2 + m;
      const double c0 = a0[l], c1 = a1[l], c2 = a2[l], c3 = a3[l];
#pragma omp simd
      for (index_t j = 0; j <= l; ++j) Sl[j] += a0[j] * c0 + a1[j] * c1 + a2[j] * c2 + a3[j] * c3;
    }
    for (; i < rows; ++i) {
      const double *a = A + i * m;
      const double c = a[l];
#pragma omp simd
      for (index_t j = 0; j <= l; ++j) Sl[j] += a[j] * c;
    }
  }
}

// C (m, k) column-major += A B^T, A (m, rows), B (k, rows), both column-major.
inline void gemm_nt_plain(const double *A, index_t m, const double *B, index_t k,
                          index_t rows, double *C) {
  for (index_t i = 0; i < rows; ++i)
    for (index_t c = 0; c < k; ++c) {
      const double bc = B[i * k + c];
      double *Cc = C + c * m;
      const double *a = A + i * m;
#pragma omp simd
      for (index_t j = 0; j < m; ++j) Cc[j] += a[j] * bc;
    }
}

inline void symmetrize_upper(double *S, index_t m) {
  // S column-major upper -> full; as a row-major array it is then the same.
  for (index_t l = 0; l < m; ++l)
    for (index_t j = 0; j < l; ++j) S[j * m + l] = S[l * m + j];
}

}  // namespace detail

// Rows per block: the block buffer holds about 1 MiB of doubles, and at least
// 256 rows so that syrk's inner dimension is long enough to run at speed.
inline index_t stats_block_rows(index_t d, index_t k) {
  const index_t width = d + k;
  return std::clamp<index_t>((index_t(1) << 17) / std::max<index_t>(width, 1), 256, 8192);
}

// Returns weight_sum. Outputs are overwritten (row-major arrays):
// mean_x (d), mean_y (k), Cxx (d, d), Cxy (d, k), Cyy (k, k).
template <class T>
double sufficient_stats(const T *X,  // (n, d), rows contiguous, row stride ldx
                        index_t n, index_t d, index_t ldx,
                        const double *y,   // (n, k) row-major
                        index_t k,
                        const double *sw,  // (n) or nullptr
                        const BlasFunctions &blas, int n_threads, double *mean_x,
                        double *mean_y, double *Cxx, double *Cxy, double *Cyy) {
  const int nt = resolve_threads(n_threads);
  const index_t B = std::min<index_t>(stats_block_rows(d, k), std::max<index_t>(n, 1));
  std::vector<double> A(static_cast<size_t>(B * d));   // (d, B) column-major
  std::vector<double> Yb(static_cast<size_t>(B * k));  // (k, B) column-major
  std::vector<double> shift_x(static_cast<size_t>(d)), shift_y(static_cast<size_t>(k));
  for (index_t j = 0; j < d; ++j) shift_x[j] = n > 0 ? double(X[j]) : 0.0;
  for (index_t c = 0; c < k; ++c) shift_y[c] = n > 0 ? y[c] : 0.0;

  // Shifted sums: S1 = sum w (x - s), Sxx = sum w (x - s)(x - s)^T, ...
  std::vector<double> s1x(static_cast<size_t>(d), 0.0), s1y(static_cast<size_t>(k), 0.0);
  std::vector<double> Sxx(static_cast<size_t>(d * d), 0.0);  // column-major, upper
  std::vector<double> Sxy(static_cast<size_t>(d * k), 0.0);  // column-major (d, k)
  std::vector<double> Syy(static_cast<size_t>(k * k), 0.0);  // column-major, upper
  double wsum = 0.0;
  const int di = static_cast<int>(d), ki = static_cast<int>(k);
  const double one = 1.0;

  for (index_t r0 = 0; r0 < n; r0 += B) {
    const index_t rows = std::min(B, n - r0);
    const int ri = static_cast<int>(rows);
    // Fill the block buffers: sqrt(w) * (x - shift), in double.
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1 && rows * d >= 65536)
    for (index_t i = 0; i < rows; ++i) {
      const T *x = X + (r0 + i) * ldx;
      const double sq = sw ? std::sqrt(sw[r0 + i]) : 1.0;
      double *a = A.data() + i * d;
      for (index_t j = 0; j < d; ++j) a[j] = sq * (double(x[j]) - shift_x[j]);
      const double *yi = y + (r0 + i) * k;
      double *yb = Yb.data() + i * k;
      for (index_t c = 0; c < k; ++c) yb[c] = sq * (yi[c] - shift_y[c]);
    }
    // First moments, in row order (from the cached buffer: sum sqrt(w) * a).
    for (index_t i = 0; i < rows; ++i) {
      const double sq = sw ? std::sqrt(sw[r0 + i]) : 1.0;
      wsum += sw ? sw[r0 + i] : 1.0;
      const double *a = A.data() + i * d;
      for (index_t j = 0; j < d; ++j) s1x[j] += sq * a[j];
      const double *yb = Yb.data() + i * k;
      for (index_t c = 0; c < k; ++c) s1y[c] += sq * yb[c];
    }
    if (blas.available()) {
      blas.syrk("U", "N", &di, &ri, &one, A.data(), &di, &one, Sxx.data(), &di);
      blas.gemm("N", "T", &di, &ki, &ri, &one, A.data(), &di, Yb.data(), &ki, &one,
                Sxy.data(), &di);
      blas.syrk("U", "N", &ki, &ri, &one, Yb.data(), &ki, &one, Syy.data(), &ki);
    } else {
      detail::syrk_upper_plain(A.data(), d, rows, Sxx.data(), nt);
      detail::gemm_nt_plain(A.data(), d, Yb.data(), k, rows, Sxy.data());
      detail::syrk_upper_plain(Yb.data(), k, rows, Syy.data(), 1);
    }
  }
  detail::symmetrize_upper(Sxx.data(), d);
  detail::symmetrize_upper(Syy.data(), k);

  // Centre: C = S - s1 s1^T / W, mean = shift + s1 / W.
  const double inv = wsum > 0.0 ? 1.0 / wsum : 0.0;
  for (index_t j = 0; j < d; ++j) mean_x[j] = shift_x[j] + s1x[j] * inv;
  for (index_t c = 0; c < k; ++c) mean_y[c] = shift_y[c] + s1y[c] * inv;
  for (index_t j = 0; j < d; ++j)
    for (index_t l = 0; l < d; ++l) Cxx[j * d + l] = Sxx[j * d + l] - s1x[j] * s1x[l] * inv;
  for (index_t j = 0; j < d; ++j)
    for (index_t c = 0; c < k; ++c) Cxy[j * k + c] = Sxy[c * d + j] - s1x[j] * s1y[c] * inv;
  for (index_t a = 0; a < k; ++a)
    for (index_t c = 0; c < k; ++c) Cyy[a * k + c] = Syy[a * k + c] - s1y[a] * s1y[c] * inv;
  return wsum;
}

// Weighted column means and variances in one deterministic chunked pass,
// shifted by the first row. mean (d), var (d) are overwritten.
template <class T>
double column_moments(const T *X, index_t n, index_t d, index_t ldx, const double *sw,
                      int n_threads, double *mean, double *var) {
  const ChunkPlan plan = plan_chunks(n, d, 1);
  const index_t slot = 2 * d + 1;
  std::vector<double> part(static_cast<size_t>(plan.n_chunks * slot), 0.0);
  std::vector<double> shift(static_cast<size_t>(d));
  for (index_t j = 0; j < d; ++j) shift[j] = n > 0 ? double(X[j]) : 0.0;
  const int nt = static_cast<int>(std::min<index_t>(resolve_threads(n_threads), plan.n_chunks));
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
  for (index_t c = 0; c < plan.n_chunks; ++c) {
    double *s1 = part.data() + c * slot;
    double *s2 = s1 + d;
    double ws = 0.0;
    const index_t r1 = std::min(n, (c + 1) * plan.rows_per_chunk);
    for (index_t i = c * plan.rows_per_chunk; i < r1; ++i) {
      const T *x = X + i * ldx;
      const double w = sw ? sw[i] : 1.0;
      ws += w;
#pragma omp simd
      for (index_t j = 0; j < d; ++j) {
        const double v = double(x[j]) - shift[j];
        s1[j] += w * v;
        s2[j] += w * v * v;
      }
    }
    s1[2 * d] = ws;
  }
  std::vector<double> tot(static_cast<size_t>(slot), 0.0);
  for (index_t c = 0; c < plan.n_chunks; ++c)
    for (index_t j = 0; j < slot; ++j) tot[j] += part[c * slot + j];
  const double wsum = tot[2 * d];
  const double inv = wsum > 0.0 ? 1.0 / wsum : 0.0;
  for (index_t j = 0; j < d; ++j) {
    const double m1 = tot[j] * inv;
    mean[j] = shift[j] + m1;
    var[j] = std::max(0.0, tot[d + j] * inv - m1 * m1);
  }
  return wsum;
}

}  // namespace fastlinreg
