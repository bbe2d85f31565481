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
// sqrt(w), and packed in double into a cache-sized buffer as augmented rows
// a_i = sqrt(w_i) [x_i - s_x, y_i - s_y, 1]. One symmetric rank-update
// S += sum_i a_i a_i^T then yields every second moment and every first
// moment at once. The update is our own register-tiled kernel (AVX-512 where
// the build targets it): the Gram of a tall, thin X is too narrow for BLAS
// syrk to reach its dgemm rate. Passing a BLAS pointer runs dsyrk on the
// same packed blocks instead, for comparison (benchmarks/bench_exact.py).
// Each entry of S is summed over blocks and rows in order, and threads split
// the output tiles, never the rows: the bits do not depend on the thread count.
#pragma once

#include "fastlinreg/isa.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include "fastlinreg/fused.hpp"
#include "fastlinreg/types.hpp"

namespace fastlinreg {
FASTLINREG_ISA_BEGIN

namespace detail {

// Rows and columns of one output tile of the augmented Gram: kTileRows rows
// by nv * 8 columns, accumulated in registers over all rows of a block.
constexpr int kTileRows = 8;

// S (mp, mp) row-major, tile rows [j0, j0 + 8), columns [l0, l0 + 8 NV),
// += sum over the block's rows of a[j] * a[l]. A is (rows, mp) row-major.
template <int NV>
inline void gram_tile(const double *A, index_t rows, index_t mp, index_t j0, index_t l0,
                      double *S) {
#if FASTLINREG_LANES == 8
  __m512d acc[kTileRows][NV];
  for (int r = 0; r < kTileRows; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_loadu_pd(S + (j0 + r) * mp + l0 + 8 * v);
  for (index_t i = 0; i < rows; ++i) {
    const double *a = A + i * mp;
    __m512d x[NV];
    for (int v = 0; v < NV; ++v) x[v] = _mm512_loadu_pd(a + l0 + 8 * v);
    for (int r = 0; r < kTileRows; ++r) {
      const __m512d ar = _mm512_set1_pd(a[j0 + r]);
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_fmadd_pd(ar, x[v], acc[r][v]);
    }
  }
  for (int r = 0; r < kTileRows; ++r)
    for (int v = 0; v < NV; ++v) _mm512_storeu_pd(S + (j0 + r) * mp + l0 + 8 * v, acc[r][v]);
#else
  double acc[kTileRows][8 * NV];
  for (int r = 0; r < kTileRows; ++r)
    for (int c = 0; c < 8 * NV; ++c) acc[r][c] = S[(j0 + r) * mp + l0 + c];
  for (index_t i = 0; i < rows; ++i) {
    const double *a = A + i * mp;
    for (int r = 0; r < kTileRows; ++r) {
      const double ar = a[j0 + r];
#pragma omp simd
      for (int c = 0; c < 8 * NV; ++c) acc[r][c] += ar * a[l0 + c];
    }
  }
  for (int r = 0; r < kTileRows; ++r)
    for (int c = 0; c < 8 * NV; ++c) S[(j0 + r) * mp + l0 + c] = acc[r][c];
#endif
}

struct GramTile {
  index_t j0, l0;
  int nv;
};

// The tiles that cover the upper triangle of an (mp, mp) Gram, mp a multiple of 8.
inline std::vector<GramTile> upper_gram_tiles(index_t mp) {
  constexpr int kMaxNV = 3;
  std::vector<GramTile> tiles;
  for (index_t j0 = 0; j0 < mp; j0 += kTileRows)
    for (index_t l0 = (j0 / 8) * 8; l0 < mp; l0 += 8 * kMaxNV) {
      const int nv = static_cast<int>(std::min<index_t>(kMaxNV, (mp - l0) / 8));
      tiles.push_back({j0, l0, nv});
    }
  return tiles;
}

inline void run_gram_tile(const GramTile &t, const double *A, index_t rows, index_t mp, double *S) {
  switch (t.nv) {
    case 1:
      gram_tile<1>(A, rows, mp, t.j0, t.l0, S);
      break;
    case 2:
      gram_tile<2>(A, rows, mp, t.j0, t.l0, S);
      break;
    default:
      gram_tile<3>(A, rows, mp, t.j0, t.l0, S);
      break;
  }
}

// Copy the upper triangle of a row-major (m, m) matrix onto its lower one.
inline void symmetrize_upper_rowmajor(double *S, index_t m) {
  for (index_t j = 1; j < m; ++j)
    for (index_t l = 0; l < j; ++l) S[j * m + l] = S[l * m + j];
}

}  // namespace detail

// Rows per block: the packed block (rows x padded width doubles) takes about
// 512 KiB, so it stays in each core's L2 while every output tile streams it.
inline index_t stats_block_rows(index_t width) {
  return std::clamp<index_t>((index_t(1) << 16) / std::max<index_t>(width, 1), 64, 4096);
}

namespace detail {

// Pack rows [r0, r0 + rows) as a_i = sqrt(w_i) [x_i - s_x, y_i - s_y, 1, 0...]
// into A (rows, mp), in double. Returns the rows' weight sum.
template <class T>
double pack_rows(const T *X, index_t ldx, index_t d, const double *y, index_t k, const double *sw,
                 const double *shift, index_t r0, index_t rows, index_t mp, double *A) {
  double wsum = 0.0;
  for (index_t i = 0; i < rows; ++i) {
    const T *x = X + (r0 + i) * ldx;
    const double *yi = y + (r0 + i) * k;
    const double w = sw ? sw[r0 + i] : 1.0;
    const double sq = sw ? std::sqrt(w) : 1.0;
    double *a = A + i * mp;
#pragma omp simd
    for (index_t j = 0; j < d; ++j) a[j] = sq * (double(x[j]) - shift[j]);
    for (index_t c = 0; c < k; ++c) a[d + c] = sq * (yi[c] - shift[d + c]);
    a[d + k] = sq;
    wsum += w;
  }
  return wsum;
}

}  // namespace detail

// Returns weight_sum. Outputs are overwritten (row-major arrays):
// mean_x (d), mean_y (k), Cxx (d, d), Cxy (d, k), Cyy (k, k).
template <class T>
double stats_pass(const T *X,  // (n, d), rows contiguous, row stride ldx
                  index_t n, index_t d, index_t ldx,
                  const double *y,  // (n, k) row-major
                  index_t k,
                  const double *sw,  // (n) or nullptr
                  dsyrk_fn *syrk, int n_threads, double *mean_x, double *mean_y, double *Cxx,
                  double *Cxy, double *Cyy) {
  // Augmented width: x (d), y (k), the constant column; padded to 8 doubles.
  const index_t m = d + k + 1;
  const index_t mp = ((m + 7) / 8) * 8;
  const index_t gram = mp * mp;
  const index_t B = std::min<index_t>(stats_block_rows(mp), std::max<index_t>(n, 1));
  std::vector<double> shift(static_cast<size_t>(d + k), 0.0);
  if (n > 0) {
    for (index_t j = 0; j < d; ++j) shift[j] = double(X[j]);
    for (index_t c = 0; c < k; ++c) shift[d + c] = y[c];
  }
  const std::vector<detail::GramTile> tiles = detail::upper_gram_tiles(mp);
  const index_t n_tiles = static_cast<index_t>(tiles.size());
  const int mpi = static_cast<int>(mp);
  const double one = 1.0;
  auto update = [&](const double *A, index_t rows, double *S) {
    if (syrk) {
      // A as column-major (mp, rows): S += A A^T in its column-major lower
      // triangle, which is the row-major upper one.
      const int ri = static_cast<int>(rows);
      syrk("L", "N", &mpi, &ri, &one, A, &mpi, &one, S, &mpi);
    } else {
      for (index_t t = 0; t < n_tiles; ++t) detail::run_gram_tile(tiles[t], A, rows, mp, S);
    }
  };

  // Row chunks, each with its own partial Gram, summed in chunk order at the
  // end: threads never meet inside the pass. The chunk count follows the
  // problem size and a 64 MiB budget for the partials, never the thread count.
  const index_t budget = std::max<index_t>(1, (index_t(64) << 20) / (gram * 8));
  const index_t n_chunks = std::clamp<index_t>(n / (8 * B), 1, std::min<index_t>(16, budget));
  const index_t chunk_rows = (n + n_chunks - 1) / n_chunks;
  std::vector<double> S(static_cast<size_t>(n_chunks * gram), 0.0);
  std::vector<double> wpart(static_cast<size_t>(n_chunks), 0.0);
  // BLAS threads itself; an OpenMP team beside it would only steal its cores.
  // A pass of under a million multiply-adds is over before a team could start
  // (and a team whose threads a busy machine deschedules costs milliseconds).
  const bool tiny = double(n) * double(gram) < double(1 << 21);
  const int nt = syrk || tiny ? 1 : resolve_threads(n_threads);

  if (n_chunks > 1 || nt == 1) {
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (nt > 1 && n_chunks > 1)
    for (index_t c = 0; c < n_chunks; ++c) {
      std::vector<double> A(static_cast<size_t>(B * mp), 0.0);
      const index_t end = std::min(n, (c + 1) * chunk_rows);
      for (index_t r0 = c * chunk_rows; r0 < end; r0 += B) {
        const index_t rows = std::min(B, end - r0);
        wpart[c] += detail::pack_rows(X, ldx, d, y, k, sw, shift.data(), r0, rows, mp, A.data());
        update(A.data(), rows, S.data() + c * gram);
      }
    }
  } else {
    // One chunk (a wide X whose Gram fills the budget): the threads share
    // each block's output tiles instead, packing it together first.
    std::vector<double> A(static_cast<size_t>(B * mp), 0.0);
#pragma omp parallel num_threads(nt)
    for (index_t r0 = 0; r0 < n; r0 += B) {
      const index_t rows = std::min(B, n - r0);
#pragma omp for schedule(static)
      for (index_t i = 0; i < rows; ++i)
        detail::pack_rows(X, ldx, d, y, k, sw, shift.data(), r0 + i, 1, mp, A.data() + i * mp);
#pragma omp master
      {
        double block = 0.0;  // summed per block, as pack_rows does on the other path
        for (index_t i = 0; i < rows; ++i) block += sw ? sw[r0 + i] : 1.0;
        wpart[0] += block;
      }
#pragma omp for schedule(static, 1)
      for (index_t t = 0; t < n_tiles; ++t)
        detail::run_gram_tile(tiles[t], A.data(), rows, mp, S.data());
    }
  }
  double wsum = wpart[0];
  for (index_t c = 1; c < n_chunks; ++c) {
    wsum += wpart[c];
    const double *Sc = S.data() + c * gram;
    for (index_t j = 0; j < gram; ++j) S[j] += Sc[j];
  }
  // S row-major holds the upper triangle (the BLAS path writes the same
  // entries through its column-major lower triangle).
  detail::symmetrize_upper_rowmajor(S.data(), mp);

  // Shifted sums -> centred: C = S - s1 s1^T / W, mean = shift + s1 / W.
  const double inv = wsum > 0.0 ? 1.0 / wsum : 0.0;
  const double *s1 = S.data();  // row-major: column m-1 of row j is s1[j]
  auto at = [&](index_t j, index_t l) { return S[j * mp + l]; };
  auto first = [&](index_t j) { return s1[j * mp + (m - 1)]; };
  for (index_t j = 0; j < d; ++j) mean_x[j] = shift[j] + first(j) * inv;
  for (index_t c = 0; c < k; ++c) mean_y[c] = shift[d + c] + first(d + c) * inv;
  for (index_t j = 0; j < d; ++j)
    for (index_t l = 0; l < d; ++l) Cxx[j * d + l] = at(j, l) - first(j) * first(l) * inv;
  for (index_t j = 0; j < d; ++j)
    for (index_t c = 0; c < k; ++c) Cxy[j * k + c] = at(j, d + c) - first(j) * first(d + c) * inv;
  for (index_t a = 0; a < k; ++a)
    for (index_t c = 0; c < k; ++c)
      Cyy[a * k + c] = at(d + a, d + c) - first(d + a) * first(d + c) * inv;
  return wsum;
}

// Weighted column means and variances in one deterministic chunked pass,
// shifted by the first row. mean (d), var (d) are overwritten.
template <class T>
double moments_pass(const T *X, index_t n, index_t d, index_t ldx, const double *sw, int n_threads,
                    double *mean, double *var) {
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

FASTLINREG_ISA_END
}  // namespace fastlinreg
