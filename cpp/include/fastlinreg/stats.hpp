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

// Work done beside a panel tile's multiply-adds, a little every few of its
// rows, so that it goes on in the load and store ports while the FMA ports
// stay busy (a burst between tiles would stall them instead): the next
// block's packing of x's whole vectors.
template <class T>
struct BesideTile {
  static constexpr index_t L = kLanes;
  // Rows of X from x on: (x - shift) scale into the panels at dst (row
  // stride ldx; panel stride ps; scale holds each row's sqrt w in L lanes).
  const T *x = nullptr;
  const double *shift = nullptr, *scale = nullptr;
  double *dst = nullptr;
  index_t ldx = 0, ps = 0, n_vec = 0, j = 0, left = 0;  // left: vectors still to pack

  void pack_one() {
    storev<kLanes>(
        dst, (loadv<kLanes>(x + j * L) - loadv<kLanes>(shift + j * L)) * loadv<kLanes>(scale));
    dst += ps;
    if (++j == n_vec) {  // the next row: its slot in panel 0
      j = 0;
      x += ldx;
      scale += L;
      dst += L - n_vec * ps;
    }
    --left;
  }
};

// Rows of a panel tile between two steps of the work beside it.
constexpr index_t kBesideEvery = 8;

// The same update on the panel layout: S rows [j0, j0 + 4), columns
// [l0, l0 + NV kLanes). Panel p of A holds columns [p L, p L + L) of the
// block's rows, (rows, L) contiguous. j0 is a multiple of 4, so the tile's
// rows are lanes of one panel (two with SSE).
template <int NV, class T>
inline void panel_tile(const double *A, index_t rows, index_t mp, index_t j0, index_t l0, double *S,
                       BesideTile<T> side) {
  typedef Vec<kLanes>::d V;
  constexpr index_t L = kLanes;
  const index_t ps = rows * L;  // doubles per panel
  const double *p = A + (j0 / L) * ps;
  const double *q = A + (l0 / L) * ps;
  V acc[kPanelRows][NV];
#pragma GCC unroll 4
  for (int r = 0; r < kPanelRows; ++r)
#pragma GCC unroll 3
    for (int v = 0; v < NV; ++v) std::memcpy(&acc[r][v], S + (j0 + r) * mp + l0 + v * L, sizeof(V));
  auto row = [&](index_t i) {
    V b[NV];
#pragma GCC unroll 3
    for (int v = 0; v < NV; ++v) std::memcpy(&b[v], q + v * ps + i * L, sizeof(V));
#pragma GCC unroll 4
    for (int r = 0; r < kPanelRows; ++r) {
      const double a = p[(r / L) * ps + i * L + r % L];
#pragma GCC unroll 3
      for (int v = 0; v < NV; ++v) acc[r][v] += a * b[v];
    }
  };
  // The side work in even steps, one between each kBesideEvery rows.
  const index_t steps = rows / kBesideEvery;
  const index_t per_step = steps > 0 ? (side.left + steps - 1) / steps : 0;
  index_t i = 0;
  for (index_t st = 0; st < steps; ++st) {
    for (index_t u = 0; u < per_step && side.left > 0; ++u) side.pack_one();
#pragma GCC unroll 8
    for (index_t e = 0; e < kBesideEvery; ++e) row(i + e);
    i += kBesideEvery;
  }
  for (; i < rows; ++i) row(i);
  while (side.left > 0) side.pack_one();
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

template <int NV, class T>
inline void own_tile(const GramTile &t, const double *A, index_t rows, index_t mp, double *S,
                     const BesideTile<T> &side) {
  if (kOwnPanels)
    panel_tile<NV>(A, rows, mp, t.j0, t.l0, S, side);
  else
    gram_tile<NV>(A, rows, mp, t.j0, t.l0, S);
}

template <class T = double>
inline void run_gram_tile(const GramTile &t, const double *A, index_t rows, index_t mp, double *S,
                          const BesideTile<T> &side = {}) {
  switch (t.nv) {
    case 1:
      own_tile<1>(t, A, rows, mp, S, side);
      break;
    case 2:
      own_tile<2>(t, A, rows, mp, S, side);
      break;
    default:
      own_tile<3>(t, A, rows, mp, S, side);
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
// smaller-cached AVX2 CPUs (Zen 2/3), for each of the block the tiles read and
// the next one packed beside them (a quarter measured no faster on Zen 3: the
// tiles' fixed costs grow as their rows shrink).
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

// Entry j of the augmented row sqrt(w) [x - s_x, y - s_y, 1, 0...] past x's
// whole vectors: x's tail, y, the constant, the padding.
template <class T>
inline double augmented_entry(const T *x, const double *yi, index_t d, index_t k,
                              const double *shift, double sq, index_t j) {
  if (j < d) return sq * (double(x[j]) - shift[j]);
  if (j < d + k) return sq * (yi[j - d] - shift[j]);
  return j == d + k ? sq : 0.0;
}

// Ask for rows [r0, r1) of X in L2 ahead of their packing (the tiles'
// panels hold L1).
template <class T>
inline void prefetch_rows_l2(const T *X, index_t ldx, index_t d, index_t r0, index_t r1) {
  for (index_t r = r0; r < r1; ++r) {
    const auto first = reinterpret_cast<std::uintptr_t>(X + r * ldx) / 64 * 64;
    const auto last = reinterpret_cast<std::uintptr_t>(X + r * ldx + d) - 1;
    for (std::uintptr_t line = first; line <= last; line += 64)
      __builtin_prefetch(reinterpret_cast<const void *>(line), 0, 2);
  }
}

// The panels' pack of rows [r0, r0 + count) into rows [i0, i0 + count) of a
// block of `rows` rows (panel p at A + p rows kLanes), less what the tiles
// pack beside themselves (BesideTile: x's whole vectors): x's tail, y, the
// constant and the padding, built in registers (a vector reload of scalar
// stores would stall on store forwarding); and each row's sqrt w in kLanes
// lanes at scale + i kLanes. Adds the rows' weights to wsum one by one.
template <class T>
void pack_panel_tails(const T *X, index_t ldx, index_t d, const double *y, index_t k,
                      const double *sw, const double *shift, index_t r0, index_t count, double *A,
                      index_t rows, index_t mp, index_t i0, double *scale, double &wsum) {
  typedef Vec<kLanes>::d V;
  constexpr index_t L = kLanes;
  const index_t ps = rows * L, head = d / L * L;
  for (index_t i = 0; i < count; ++i) {
    const T *x = X + (r0 + i) * ldx;
    const double *yi = y + (r0 + i) * k;
    const double w = sw ? sw[r0 + i] : 1.0;
    const double sq = sw ? std::sqrt(w) : 1.0;
    storev<kLanes>(scale + (i0 + i) * L, splat<kLanes>(sq));
    double *dst = A + (i0 + i) * L + (head / L) * ps;
    for (index_t j = head; j < mp; j += L, dst += ps) {
      auto e = [&](index_t c) { return augmented_entry(x, yi, d, k, shift, sq, j + c); };
      if constexpr (L == 4)
        storev<kLanes>(dst, V{e(0), e(1), e(2), e(3)});
      else if constexpr (L == 2)
        storev<kLanes>(dst, V{e(0), e(1)});
    }
    wsum += w;
  }
}

// The panels' pack of rows [r0 + lo, r0 + hi) into rows [lo, hi) of a block
// of `rows` rows: the tails now, and the whole vectors of x that the tile
// the returned BesideTile goes to packs. Adds the rows' weights to wsum.
template <class T>
BesideTile<T> pack_panel_slice(const T *X, index_t ldx, index_t d, const double *y, index_t k,
                               const double *sw, const double *shift, index_t r0, index_t lo,
                               index_t hi, double *A, index_t rows, index_t mp, double *scale,
                               double &wsum) {
  constexpr index_t L = kLanes;
  BesideTile<T> side;
  if (hi <= lo) return side;
  pack_panel_tails(X, ldx, d, y, k, sw, shift, r0 + lo, hi - lo, A, rows, mp, lo, scale, wsum);
  side.x = X + (r0 + lo) * ldx;
  side.shift = shift;
  side.scale = scale + lo * L;
  side.dst = A + lo * L;
  side.ldx = ldx;
  side.ps = rows * L;
  side.n_vec = d / L;
  side.left = (hi - lo) * side.n_vec;
  return side;
}

// The own kernel on rows [begin, end) of X in panels, into S: blocks of B
// rows, the next one packed while this one's tiles run (a slice of its rows
// beside each tile), into two buffers of B mp doubles; scale holds B kLanes.
// Returns the rows' weight sum, summed in row order within each block and
// then over blocks (as every other path sums them).
template <class T>
double own_panel_rows(const T *X, index_t ldx, index_t d, const double *y, index_t k,
                      const double *sw, const double *shift, index_t begin, index_t end, index_t B,
                      index_t mp, const std::vector<GramTile> &tiles, double *buf0, double *buf1,
                      double *scale, double *S) {
  const index_t n_tiles = static_cast<index_t>(tiles.size());
  double *cur = buf0, *next = buf1;
  double wsum = 0.0, cur_sum = 0.0;
  index_t rows = std::min(B, end - begin);
  BesideTile<T> first =
      pack_panel_slice(X, ldx, d, y, k, sw, shift, begin, 0, rows, cur, rows, mp, scale, cur_sum);
  while (first.left > 0) first.pack_one();
  for (index_t r0 = begin; r0 < end; r0 += rows, rows = std::min(B, end - r0)) {
    const index_t n0 = r0 + rows, n_rows = std::min(B, end - n0);
    double next_sum = 0.0;
    for (index_t t = 0; t < n_tiles; ++t) {
      const index_t lo = t * n_rows / n_tiles, hi = (t + 1) * n_rows / n_tiles;
      const BesideTile<T> side = pack_panel_slice(X, ldx, d, y, k, sw, shift, n0, lo, hi, next,
                                                  n_rows, mp, scale, next_sum);
      run_gram_tile(tiles[t], cur, rows, mp, S, side);
    }
    wsum += cur_sum;
    cur_sum = next_sum;
    std::swap(cur, next);
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
  // A as column-major (mp, rows): S += A A^T in its column-major lower
  // triangle, which is the row-major upper one.
  auto blas_update = [&](const double *A, index_t rows, double *S) {
    const int ri = static_cast<int>(rows);
    syrk("L", "N", &mpi, &ri, &one, A, &mpi, &one, S, &mpi);
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
#pragma omp parallel num_threads(nt) if (nt > 1 && n_chunks > 1)
    {
      detail::AlignedDoubles A(B * mp), A2(panels ? B * mp : 0), scale(panels ? B * kLanes : 0);
#pragma omp for schedule(dynamic, 1)
      for (index_t c = 0; c < n_chunks; ++c) {
        const index_t begin = c * chunk_rows, end = std::min(n, (c + 1) * chunk_rows);
        double *Sc = S.data() + c * gram;
        if (panels) {
          if (begin < end)
            wpart[c] = detail::own_panel_rows(X, ldx, d, y, k, sw, shift.data(), begin, end, B, mp,
                                              tiles, A.data(), A2.data(), scale.data(), Sc);
          continue;
        }
        for (index_t r0 = begin; r0 < end; r0 += B) {
          const index_t rows = std::min(B, end - r0);
          const detail::PackedBlock block{A.data(), rows, mp, false};
          wpart[c] += detail::pack_rows(X, ldx, d, y, k, sw, shift.data(), r0, rows, block, 0);
          if (syrk) {
            blas_update(A.data(), rows, Sc);
            continue;
          }
          // The rows the following block will pack, fetched while this one's tiles run.
          const index_t next0 = r0 + rows, next = std::min(B, end - next0);
          for (index_t t = 0; t < n_tiles; ++t) {
            detail::prefetch_rows_l2(X, ldx, d, next0 + t * next / n_tiles,
                                     next0 + (t + 1) * next / n_tiles);
            detail::run_gram_tile(tiles[t], A.data(), rows, mp, Sc);
          }
        }
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
    // Not std::max(0.0, v): where the sums overflowed, v is inf - inf = NaN,
    // which max made 0 and the column a constant. NaN tells the caller to redo it.
    const double v = tot[d + j] * inv - m1 * m1;
    var[j] = v < 0.0 ? 0.0 : v;
  }
  return wsum;
}

FASTLINREG_ISA_END
}  // namespace fastlinreg
