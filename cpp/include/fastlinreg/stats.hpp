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
// moment at once. The update is our own register-tiled kernel, or, given a
// BLAS pointer, dsyrk on row-major packed blocks: backends/_gram_kernel.py
// measures both once and passes the faster.
// Each entry of S is summed over blocks and rows in order, and threads split
// the output tiles, never the rows: the bits do not depend on the thread count.
#pragma once

#include "fastlinreg/isa.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "fastlinreg/fused.hpp"
#include "fastlinreg/types.hpp"

namespace fastlinreg {
FASTLINREG_ISA_BEGIN

namespace detail {

// The own kernel's packed block of rows, by instruction set:
//  * AVX-512: row-major (rows, mp), 8 x 8NV output tiles (32 registers hold
//    24 accumulators);
//  * AVX2 and SSE: columns in panels of kLanes, each panel (rows, kLanes)
//    contiguous, and 4 x 3kLanes output tiles (12 accumulators of the 16
//    registers): every stream the tile reads is sequential, so it runs from
//    L1 and L2 at the FMA rate.
// BLAS dsyrk always gets the row-major block (column-major (mp, rows)).
#if FASTLINREG_LANES == 8
constexpr bool kOwnPanels = false;
constexpr index_t kGramPad = 8;
#else
constexpr bool kOwnPanels = true;
constexpr index_t kGramPad = 4;
#endif

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
  (void)A, (void)rows, (void)mp, (void)j0, (void)l0, (void)S;  // the panel tiles serve here
#endif
}

// Rows of one panel tile: 4 x 3 vectors of accumulators.
constexpr int kPanelRows = 4;

// The same update on the panel layout: S rows [j0, j0 + 4), columns
// [l0, l0 + NV kLanes). Panel p of A holds columns [p L, p L + L) of the
// block's rows, (rows, L) contiguous.
template <int NV>
inline void panel_tile(const double *A, index_t rows, index_t mp, index_t j0, index_t l0,
                       double *S) {
  typedef Vec<kLanes>::d V;
  constexpr index_t L = kLanes;
  const index_t ps = rows * L;  // doubles per panel
  const double *p[kPanelRows];
#pragma GCC unroll 4
  for (int r = 0; r < kPanelRows; ++r) p[r] = A + ((j0 + r) / L) * ps + (j0 + r) % L;
  const double *q = A + (l0 / L) * ps;
  V acc[kPanelRows][NV];
#pragma GCC unroll 4
  for (int r = 0; r < kPanelRows; ++r)
#pragma GCC unroll 3
    for (int v = 0; v < NV; ++v) std::memcpy(&acc[r][v], S + (j0 + r) * mp + l0 + v * L, sizeof(V));
  for (index_t i = 0; i < rows; ++i) {
    V b[NV];
#pragma GCC unroll 3
    for (int v = 0; v < NV; ++v) std::memcpy(&b[v], q + v * ps + i * L, sizeof(V));
#pragma GCC unroll 4
    for (int r = 0; r < kPanelRows; ++r) {
      const double a = p[r][i * L];
#pragma GCC unroll 3
      for (int v = 0; v < NV; ++v) acc[r][v] += a * b[v];
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < kPanelRows; ++r)
#pragma GCC unroll 3
    for (int v = 0; v < NV; ++v) std::memcpy(S + (j0 + r) * mp + l0 + v * L, &acc[r][v], sizeof(V));
}

struct GramTile {
  index_t j0, l0;
  int nv;
};

// The tiles that cover the upper triangle of an (mp, mp) Gram, mp a
// multiple of kGramPad, in the own kernel's layout.
inline std::vector<GramTile> upper_gram_tiles(index_t mp) {
  constexpr int kMaxNV = 3;
  const index_t tile_rows = kOwnPanels ? kPanelRows : kTileRows;
  const index_t lanes = kOwnPanels ? kLanes : 8;
  std::vector<GramTile> tiles;
  for (index_t j0 = 0; j0 < mp; j0 += tile_rows)
    for (index_t l0 = (j0 / lanes) * lanes; l0 < mp; l0 += lanes * kMaxNV) {
      const int nv = static_cast<int>(std::min<index_t>(kMaxNV, (mp - l0) / lanes));
      tiles.push_back({j0, l0, nv});
    }
  return tiles;
}

template <int NV>
inline void own_tile(const GramTile &t, const double *A, index_t rows, index_t mp, double *S) {
  if (kOwnPanels)
    panel_tile<NV>(A, rows, mp, t.j0, t.l0, S);
  else
    gram_tile<NV>(A, rows, mp, t.j0, t.l0, S);
}

inline void run_gram_tile(const GramTile &t, const double *A, index_t rows, index_t mp, double *S) {
  switch (t.nv) {
    case 1:
      own_tile<1>(t, A, rows, mp, S);
      break;
    case 2:
      own_tile<2>(t, A, rows, mp, S);
      break;
    default:
      own_tile<3>(t, A, rows, mp, S);
      break;
  }
}

// Copy the upper triangle of a row-major (m, m) matrix onto its lower one.
inline void symmetrize_upper_rowmajor(double *S, index_t m) {
  for (index_t j = 1; j < m; ++j)
    for (index_t l = 0; l < j; ++l) S[j * m + l] = S[l * m + j];
}

}  // namespace detail

// Rows per block. AVX-512 rows: the packed block takes about 512 KiB, in the
// L2 of the Xeons it was tuned on. Panels: about 256 KiB, half the L2 of the
// smaller-cached AVX2 CPUs (Zen 2/3), so that the next rows of X fit beside it.
inline index_t stats_block_rows(index_t width) {
  const index_t budget = detail::kOwnPanels ? index_t(1) << 15 : index_t(1) << 16;
  return std::clamp<index_t>(budget / std::max<index_t>(width, 1), 64, 4096);
}

namespace detail {

// 64-byte aligned doubles (whole cache lines for the panels' streams).
class AlignedDoubles {
 public:
  explicit AlignedDoubles(index_t n) : buf_(static_cast<size_t>(n + 8), 0.0) {
    const auto addr = reinterpret_cast<std::uintptr_t>(buf_.data());
    data_ = buf_.data() + ((64 - addr % 64) % 64) / sizeof(double);
  }
  double *data() { return data_; }

 private:
  std::vector<double> buf_;
  double *data_;
};

// Where pack_rows writes: a block of `rows` rows of width mp, row-major or in
// panels of kLanes columns.
struct PackedBlock {
  double *A;
  index_t rows, mp;
  bool panels;
};

// Pack rows [r0, r0 + count) as a_i = sqrt(w_i) [x_i - s_x, y_i - s_y, 1, 0...]
// into rows [i0, i0 + count) of the block, in double. Returns the rows'
// weight sum.
template <class T>
double pack_rows(const T *X, index_t ldx, index_t d, const double *y, index_t k, const double *sw,
                 const double *shift, index_t r0, index_t count, const PackedBlock &out,
                 index_t i0) {
  typedef Vec<kLanes>::d V;
  constexpr index_t L = kLanes;
  const index_t mp = out.mp, ps = out.rows * L;
  // Panels: whole vectors of x go straight to their panel; the rest of the
  // row (x's tail, y, the constant, the padding) through a small buffer.
  const index_t head = out.panels ? d / L * L : 0;
  std::vector<double> scratch(out.panels ? static_cast<size_t>(mp - head) : 0, 0.0);
  double wsum = 0.0;
  for (index_t i = 0; i < count; ++i) {
    const T *x = X + (r0 + i) * ldx;
    const double *yi = y + (r0 + i) * k;
    const double w = sw ? sw[r0 + i] : 1.0;
    const double sq = sw ? std::sqrt(w) : 1.0;
    double *dst = out.A + (i0 + i) * (out.panels ? L : mp);
    for (index_t j = 0; j < head; j += L) {
      const V v = (loadv<kLanes>(x + j) - loadv<kLanes>(shift + j)) * sq;
      storev<kLanes>(dst + (j / L) * ps, v);
    }
    double *a = out.panels ? scratch.data() : dst;  // a[j - head]: entry j of the row
#pragma omp simd
    for (index_t j = head; j < d; ++j) a[j - head] = sq * (double(x[j]) - shift[j]);
    for (index_t c = 0; c < k; ++c) a[d - head + c] = sq * (yi[c] - shift[d + c]);
    a[d + k - head] = sq;
    for (index_t j = d + k + 1; j < mp; ++j) a[j - head] = 0.0;
    for (index_t j = head; out.panels && j < mp; j += L)
      std::memcpy(dst + (j / L) * ps, a + (j - head), L * sizeof(double));
    wsum += w;
  }
  return wsum;
}

// Ask for rows [r0, r1) of X in the cache ahead of their packing (L2: the
// tiles' panels hold L1).
template <class T>
inline void prefetch_rows_l2(const T *X, index_t ldx, index_t d, index_t r0, index_t r1) {
  for (index_t r = r0; r < r1; ++r) {
    const auto first = reinterpret_cast<std::uintptr_t>(X + r * ldx) / 64 * 64;
    const auto last = reinterpret_cast<std::uintptr_t>(X + r * ldx + d) - 1;
    for (std::uintptr_t line = first; line <= last; line += 64)
      __builtin_prefetch(reinterpret_cast<const void *>(line), 0, 2);
  }
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
  // Augmented width: x (d), y (k), the constant column; padded to whole tiles.
  const index_t m = d + k + 1;
  const index_t mp = ((m + detail::kGramPad - 1) / detail::kGramPad) * detail::kGramPad;
  const index_t gram = mp * mp;
  const index_t B = std::min<index_t>(stats_block_rows(mp), std::max<index_t>(n, 1));
  const bool panels = detail::kOwnPanels && !syrk;
  std::vector<double> shift(static_cast<size_t>(d + k), 0.0);
  if (n > 0) {
    for (index_t j = 0; j < d; ++j) shift[j] = double(X[j]);
    for (index_t c = 0; c < k; ++c) shift[d + c] = y[c];
  }
  const std::vector<detail::GramTile> tiles = detail::upper_gram_tiles(mp);
  const index_t n_tiles = static_cast<index_t>(tiles.size());
  const int mpi = static_cast<int>(mp);
  const double one = 1.0;
  // next0, next: the rows the following block will pack, fetched while this one's tiles run.
  auto update = [&](const double *A, index_t rows, double *S, index_t next0, index_t next) {
    if (syrk) {
      // A as column-major (mp, rows): S += A A^T in its column-major lower
      // triangle, which is the row-major upper one.
      const int ri = static_cast<int>(rows);
      syrk("L", "N", &mpi, &ri, &one, A, &mpi, &one, S, &mpi);
    } else {
      for (index_t t = 0; t < n_tiles; ++t) {
        detail::prefetch_rows_l2(X, ldx, d, next0 + t * next / n_tiles,
                                 next0 + (t + 1) * next / n_tiles);
        detail::run_gram_tile(tiles[t], A, rows, mp, S);
      }
    }
  };

  // Row chunks, each with its own partial Gram, summed in chunk order at the
  // end: threads never meet inside the pass. The chunk count follows the
  // problem size and a 64 MiB budget for the partials, never the thread count.
  const index_t budget = std::max<index_t>(1, (index_t(64) << 20) / (gram * 8));
  const index_t n_chunks = std::clamp<index_t>(n / (2 * B), 1, std::min<index_t>(16, budget));
  const index_t chunk_rows = (n + n_chunks - 1) / n_chunks;
  std::vector<double> S(static_cast<size_t>(n_chunks * gram), 0.0);
  std::vector<double> wpart(static_cast<size_t>(n_chunks), 0.0);
  // BLAS threads itself; an OpenMP team beside it would only steal its cores.
  // A pass of under a million multiply-adds is over before a team could start
  // (and a team whose threads a busy machine deschedules costs milliseconds).
  const bool tiny = double(n) * double(gram) < double(1 << 21);
  const int nt = syrk || tiny ? 1 : resolve_threads(n_threads);

  if (budget > 1 || nt == 1) {
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (nt > 1 && n_chunks > 1)
    for (index_t c = 0; c < n_chunks; ++c) {
      detail::AlignedDoubles A(B * mp);
      const index_t end = std::min(n, (c + 1) * chunk_rows);
      for (index_t r0 = c * chunk_rows; r0 < end; r0 += B) {
        const index_t rows = std::min(B, end - r0);
        const detail::PackedBlock block{A.data(), rows, mp, panels};
        wpart[c] += detail::pack_rows(X, ldx, d, y, k, sw, shift.data(), r0, rows, block, 0);
        update(A.data(), rows, S.data() + c * gram, r0 + rows, std::min(B, end - r0 - rows));
      }
    }
  } else {
    // A Gram too wide for a partial per chunk: the threads share each
    // block's output tiles instead, packing it together first.
    detail::AlignedDoubles A(B * mp);
#pragma omp parallel num_threads(nt)
    for (index_t r0 = 0; r0 < n; r0 += B) {
      const index_t rows = std::min(B, n - r0);
      const detail::PackedBlock block{A.data(), rows, mp, panels};
#pragma omp for schedule(static)
      for (index_t i = 0; i < rows; i += 16)
        detail::pack_rows(X, ldx, d, y, k, sw, shift.data(), r0 + i,
                          std::min<index_t>(16, rows - i), block, i);
#pragma omp master
      {
        double sum = 0.0;  // summed per block, as pack_rows does on the other path
        for (index_t i = 0; i < rows; ++i) sum += sw ? sw[r0 + i] : 1.0;
        wpart[0] += sum;
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
