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
//
// Inside a chunk the order of every sum is fixed by the source and depends
// on the shape alone. The kernels work on vectors of doubles in GCC/Clang
// vector extensions (arithmetic lane by lane), kLanes wide: the native width,
// 8 with AVX-512, 4 with AVX, 2 otherwise.
//  * short rows (k == 1, d <= kShortRow): lane l holds row i + l of a tile of
//    short_lanes(d) rows; p = b + x_0 w_0 + x_1 w_1 + ... per lane; tiles add
//    into short_sets(d) alternating sets of per-lane running G, g_b and loss,
//    which are added in order and summed over lanes at the chunk's end.
//  * long rows (any other shape): tiles of kRowTile rows against blocks of up
//    to kOutBlock outputs (with 4 lanes and k > 2: tiles of 2 rows against
//    blocks of 4); each dot product is kLanes lane sums over
//    j = l (mod kLanes), summed over lanes, then + b; G (kept per chunk as
//    (k, d), d padded to whole lanes) gets the tile's rows in row order, g_b
//    and the loss get them row by row. Double rows against one output block
//    are pipelined: a tile's rows are added to G during the next tile's dot
//    products, which leaves each sum's order as it is.
// The lane width is fixed when the module is compiled: the bits may differ
// between builds for different instruction sets, never between runs.
#pragma once

#include "fastlinreg/isa.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

// Lanes per vector: the width for doubles (AVX-512: 8, AVX: 4, else 2), and
// whether AVX2's gathers are there. The multi-instruction-set build defines
// both for each compilation of kernels.cpp (CMakeLists.txt), whose target
// pragma the compiler's own macros do not follow; a single-target build
// (FASTLINREG_NATIVE, or not x86-64) reads the compiler's macros.
#ifndef FASTLINREG_LANES
#if defined(__AVX512F__) && defined(__AVX512VL__)
#define FASTLINREG_LANES 8
#elif defined(__AVX__)
#define FASTLINREG_LANES 4
#else
#define FASTLINREG_LANES 2
#endif
#endif
#if !defined(FASTLINREG_AVX2) && defined(__AVX2__)
#define FASTLINREG_AVX2 1
#endif
#if FASTLINREG_LANES > 2
#include <immintrin.h>
#endif

#include "fastlinreg/losses.hpp"
#include "fastlinreg/parallel.hpp"
#include "fastlinreg/types.hpp"
#include "fastlinreg/vecmath.hpp"

#if !defined(__GNUC__)
#error "fastlinreg's kernels use GCC/Clang vector extensions: build with GCC or Clang"
#endif

#if defined(__clang__) || __GNUC__ >= 12
#define FASTLINREG_SHUFFLE(a, b, ...) __builtin_shufflevector(a, b, __VA_ARGS__)
#else
#define FASTLINREG_SHUFFLE(a, b, ...) \
  __builtin_shuffle(a, b, typename IndexOf<std::decay_t<decltype(a)>>::type{__VA_ARGS__})
#endif

namespace fastlinreg {
FASTLINREG_ISA_BEGIN

// Rows per tile of the long-row kernel: their dot products share each load of W.
constexpr int kRowTile = 4;
// Lanes of the partial sums: the native vector width for doubles.
constexpr int kLanes = FASTLINREG_LANES;
// Outputs per block of the long-row kernel: kRowTile * kOutBlock running dot
// products fit in the vector registers (32 with AVX-512, 16 otherwise).
constexpr int kOutBlock = kLanes == 8 ? 4 : 2;
// Chunks hold whole tiles of either kernel.
constexpr index_t kChunkAlign = kLanes > kRowTile ? kLanes : kRowTile;
// Single-output problems with at most this many columns use the short-row kernel.
constexpr index_t kShortRow = 8;
// Rows per tile of the short-row kernel. With one or two columns and 8 lanes,
// half-width tiles shorten a step's dependency chain (fewer lanes to sum),
// which is what bounds tiny problems such as the tutorial's 16 points.
constexpr int short_lanes(index_t d) { return kLanes == 8 && d <= 2 ? 4 : kLanes; }
// Sets of running sums the short-row tiles alternate between: two halve the
// chain of dependent additions per step where registers allow (with SSE2's
// 2-lane tiles GCC spills them: twice the time of one set).
constexpr int short_sets(index_t d) { return d <= 2 && kLanes > 2 ? 2 : 1; }

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
  chunks = std::min<index_t>(chunks, std::max<index_t>(1, n / kChunkAlign));
  index_t rows = (n + chunks - 1) / chunks;
  rows = ((rows + kChunkAlign - 1) / kChunkAlign) * kChunkAlign;  // tiles never straddle chunks
  if (rows == 0) rows = kChunkAlign;
  chunks = (n + rows - 1) / rows;
  if (chunks == 0) chunks = 1;
  return {chunks, rows};
}

// d rounded up to whole lanes: the row length of G in a chunk partial.
inline index_t padded_width(index_t d) { return (d + kLanes - 1) / kLanes * kLanes; }

namespace detail {

// Vectors of L doubles (and of L floats and L int64s) in GCC/Clang vector
// extensions: arithmetic on them is lane by lane whatever the instruction set,
// so the order of every sum is the source's. L is kLanes, or fewer where a
// shape is better served by narrower tiles.
template <int L>
struct Vec;
template <>
struct Vec<8> {
  typedef double d __attribute__((vector_size(64)));
  typedef float f __attribute__((vector_size(32)));
  typedef std::int64_t i __attribute__((vector_size(64)));
};
template <>
struct Vec<4> {
  typedef double d __attribute__((vector_size(32)));
  typedef float f __attribute__((vector_size(16)));
  typedef std::int64_t i __attribute__((vector_size(32)));
};
template <>
struct Vec<2> {
  typedef double d __attribute__((vector_size(16)));
  typedef float f __attribute__((vector_size(8)));
  typedef std::int64_t i __attribute__((vector_size(16)));
};
typedef Vec<kLanes>::d vd;  // the long-row kernel's vectors

// The int64 vector of as many lanes as a double vector (shuffle indices).
template <class V>
struct IndexOf;
template <>
struct IndexOf<Vec<8>::d> {
  typedef Vec<8>::i type;
};
template <>
struct IndexOf<Vec<4>::d> {
  typedef Vec<4>::i type;
};
template <>
struct IndexOf<Vec<2>::d> {
  typedef Vec<2>::i type;
};

template <int L>
inline typename Vec<L>::d splat(double v) {
  if constexpr (L == 8)
    return typename Vec<L>::d{v, v, v, v, v, v, v, v};
  else if constexpr (L == 4)
    return typename Vec<L>::d{v, v, v, v};
  else
    return typename Vec<L>::d{v, v};
}

// Lane indices 0, 1, ..., L - 1.
template <int L>
inline typename Vec<L>::i lane_index() {
  if constexpr (L == 8)
    return typename Vec<L>::i{0, 1, 2, 3, 4, 5, 6, 7};
  else if constexpr (L == 4)
    return typename Vec<L>::i{0, 1, 2, 3};
  else
    return typename Vec<L>::i{0, 1};
}

template <int L>
inline void storev(double *p, const typename Vec<L>::d &v) {
  std::memcpy(p, &v, sizeof v);
}

// float -> double, lane by lane. GCC splits __builtin_convertvector into two
// half-width conversions and an insert: three instructions where AVX has one.
template <int L>
inline typename Vec<L>::d widen(const typename Vec<L>::f &v) {
#if FASTLINREG_LANES == 8
  if constexpr (L == 8)
    return (typename Vec<L>::d)_mm512_maskz_cvtps_pd(static_cast<__mmask8>(0xFF), (__m256)v);
#endif
#if FASTLINREG_LANES >= 4
  if constexpr (L == 4) return (typename Vec<L>::d)_mm256_cvtps_pd((__m128)v);
#endif
  return __builtin_convertvector(v, typename Vec<L>::d);
}

template <int L>
inline typename Vec<L>::d loadv(const double *p) {
  typename Vec<L>::d v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <int L>
inline typename Vec<L>::d loadv(const float *p) {
  typename Vec<L>::f v;
  std::memcpy(&v, p, sizeof v);
  return widen<L>(v);
}

// The first m (< L) values at p, zeros in the other lanes; reads only p[0:m].
template <int L, class T>
inline typename Vec<L>::d load_part(const T *p, int m) {
#if FASTLINREG_LANES == 8
  const auto mask = static_cast<__mmask8>((1u << m) - 1u);
  if constexpr (L == 8 && sizeof(T) == 8) return (typename Vec<L>::d)_mm512_maskz_loadu_pd(mask, p);
  if constexpr (L == 8 && sizeof(T) == 4)
    return widen<L>((typename Vec<L>::f)_mm256_maskz_loadu_ps(mask, p));
  if constexpr (L == 4 && sizeof(T) == 8) return (typename Vec<L>::d)_mm256_maskz_loadu_pd(mask, p);
  if constexpr (L == 4 && sizeof(T) == 4)
    return widen<L>((typename Vec<L>::f)_mm_maskz_loadu_ps(mask, p));
#elif FASTLINREG_LANES == 4
  if constexpr (L == 4 && sizeof(T) == 8)
    return (typename Vec<L>::d)_mm256_maskload_pd(p, (__m256i)(lane_index<4>() < m));
  if constexpr (L == 4 && sizeof(T) == 4) {
    typedef std::int32_t v4i __attribute__((vector_size(16)));
    const v4i lane = {0, 1, 2, 3};
    return widen<L>((typename Vec<L>::f)_mm_maskload_ps(p, (__m128i)(lane < m)));
  }
#endif
  typename Vec<L>::d v = {};
  for (int l = 0; l < m; ++l) v[l] = double(p[l]);
  return v;
}

// Lane l gets p[l * stride] (l < m, zeros above): one column of a tile of rows.
template <class T, int L>
struct ColumnLoad {
  typedef typename Vec<L>::d vec;
  index_t stride;
#if FASTLINREG_LANES == 8
  __m512i offsets8;
#endif
#if FASTLINREG_LANES == 8 || defined(FASTLINREG_AVX2)
  __m256i offsets4;
#endif
  explicit ColumnLoad(index_t s) : stride(s) {
#if FASTLINREG_LANES == 8
    offsets8 = _mm512_set_epi64(7 * s, 6 * s, 5 * s, 4 * s, 3 * s, 2 * s, s, 0);
#endif
#if FASTLINREG_LANES == 8 || defined(FASTLINREG_AVX2)
    offsets4 = _mm256_set_epi64x(3 * s, 2 * s, s, 0);
#endif
  }
  vec operator()(const T *p, int m = L) const {
    // Masked gathers with a zero source: the unmasked forms trip GCC 12's
    // -Wmaybe-uninitialized, and a zeroed source breaks a false dependency.
#if FASTLINREG_LANES == 8
    const auto mask8 = static_cast<__mmask8>((1u << m) - 1u);
    if constexpr (L == 8 && sizeof(T) == 8)
      return (vec)_mm512_mask_i64gather_pd(_mm512_setzero_pd(), mask8, offsets8, p, 8);
    if constexpr (L == 8 && sizeof(T) == 4)
      return widen<L>(
          (typename Vec<L>::f)_mm512_mask_i64gather_ps(_mm256_setzero_ps(), mask8, offsets8, p, 4));
#endif
#if FASTLINREG_LANES == 8 || defined(FASTLINREG_AVX2)
    if constexpr (L == 4) {
      const auto mask = lane_index<4>() < m;
      if constexpr (sizeof(T) == 8) {
        return (vec)_mm256_mask_i64gather_pd(_mm256_setzero_pd(), p, offsets4, (__m256d)mask, 8);
      } else {
        typedef std::int32_t v4i __attribute__((vector_size(16)));
        const v4i lane = {0, 1, 2, 3};
        return widen<L>((typename Vec<L>::f)_mm256_mask_i64gather_ps(_mm_setzero_ps(), p, offsets4,
                                                                     (__m128)(lane < m), 4));
      }
    }
#endif
    vec v = {};
    for (int l = 0; l < m; ++l) v[l] = double(p[l * stride]);
    return v;
  }
};

// x[j] = column j (j < Cols) of L rows of Cols <= L contiguous values, row
// stride ldx: L loads (masked where Cols < L) and a transpose in registers,
// cheaper than Cols gathers. The values are the gathers', so the sums that
// use them are too.
template <int L, int Cols = L, class T>
inline void load_square_tile(const T *tile, index_t ldx, typename Vec<L>::d *out) {
  static_assert(Cols >= 1 && Cols <= L, "a tile is at most L columns wide");
  typedef typename Vec<L>::d vec;
  vec r[L];
  for (int q = 0; q < L; ++q)
    r[q] = Cols == L ? loadv<L>(tile + ldx * q) : load_part<L>(tile + ldx * q, Cols);
  vec x[L];
  if constexpr (L == 8) {
    vec t[8], u[8];
    for (int q = 0; q < 4; ++q) {  // t[2q], t[2q+1]: even / odd columns of rows 2q, 2q+1
      t[2 * q] = FASTLINREG_SHUFFLE(r[2 * q], r[2 * q + 1], 0, 8, 2, 10, 4, 12, 6, 14);
      t[2 * q + 1] = FASTLINREG_SHUFFLE(r[2 * q], r[2 * q + 1], 1, 9, 3, 11, 5, 13, 7, 15);
    }
    for (int h = 0; h < 2; ++h)  // u[4h + e + 2f]: columns e + 2f and e + 2f + 4 of rows 4h..4h+3
      for (int e = 0; e < 2; ++e) {
        const vec &a = t[4 * h + e], &c = t[4 * h + e + 2];
        u[4 * h + e] = FASTLINREG_SHUFFLE(a, c, 0, 1, 8, 9, 4, 5, 12, 13);
        u[4 * h + e + 2] = FASTLINREG_SHUFFLE(a, c, 2, 3, 10, 11, 6, 7, 14, 15);
      }
    for (int q = 0; q < 4; ++q) {
      x[q] = FASTLINREG_SHUFFLE(u[q], u[4 + q], 0, 1, 2, 3, 8, 9, 10, 11);
      x[q + 4] = FASTLINREG_SHUFFLE(u[q], u[4 + q], 4, 5, 6, 7, 12, 13, 14, 15);
    }
  } else if constexpr (L == 4) {
    const vec t0 = FASTLINREG_SHUFFLE(r[0], r[1], 0, 4, 2, 6);
    const vec t1 = FASTLINREG_SHUFFLE(r[0], r[1], 1, 5, 3, 7);
    const vec t2 = FASTLINREG_SHUFFLE(r[2], r[3], 0, 4, 2, 6);
    const vec t3 = FASTLINREG_SHUFFLE(r[2], r[3], 1, 5, 3, 7);
    x[0] = FASTLINREG_SHUFFLE(t0, t2, 0, 1, 4, 5);
    x[1] = FASTLINREG_SHUFFLE(t1, t3, 0, 1, 4, 5);
    x[2] = FASTLINREG_SHUFFLE(t0, t2, 2, 3, 6, 7);
    x[3] = FASTLINREG_SHUFFLE(t1, t3, 2, 3, 6, 7);
  } else {
    x[0] = FASTLINREG_SHUFFLE(r[0], r[1], 0, 2);
    x[1] = FASTLINREG_SHUFFLE(r[0], r[1], 1, 3);
  }
  for (int j = 0; j < Cols; ++j) out[j] = x[j];
}

// Short rows read as square tiles where gathers are slow: AVX2's 4-lane
// gathers cost AMD's Zen cores several times the loads and shuffles of a
// transpose (f64 d=8 took 2.7 reads a step with them). AVX-512 keeps its
// 8-lane gathers below 8 columns (not measured against transposes).
template <int L, int D>
constexpr bool kSquareShortTiles = D == L || (L == 4 && D >= 2);

// x[j], j < D: columns of the L rows at xi, as square tiles of L columns.
template <int L, int D, class T>
inline void load_short_rows(const T *xi, index_t ldx, typename Vec<L>::d *x) {
  load_square_tile<L, (D < L ? D : L)>(xi, ldx, x);
  if constexpr (D > L) load_short_rows<L, D - L>(xi + L, ldx, x + L);
}

// The sum of the lanes, in a fixed tree: lanes l and l + L/2 first.
template <int L>
inline double sum_lanes(const typename Vec<L>::d &v) {
  if constexpr (L == 8)
    return ((v[0] + v[4]) + (v[2] + v[6])) + ((v[1] + v[5]) + (v[3] + v[7]));
  else if constexpr (L == 4)
    return (v[0] + v[2]) + (v[1] + v[3]);
  else
    return v[0] + v[1];
}

// out[m] = sum_lanes(v[m]) for m < N, bit for bit. With 8 lanes the sums of 4
// or 8 vectors share their shuffles: a transposing butterfly whose three
// levels add lanes l and l + 4, then l and l + 2, then l and l + 1 (the very
// tree of sum_lanes).
template <int L, int N>
inline void sum_lanes_n(const typename Vec<L>::d *v, double *out) {
  typedef typename Vec<L>::d vec;
  int m = 0;
  if constexpr (L == 8) {
    for (; m + 8 <= N; m += 8) {
      vec t[4];
      for (int h = 0; h < 4; ++h) {  // [v_a: l + (l+4), l < 4] ++ [v_b: same]
        const vec &a = v[m + 2 * h], &b = v[m + 2 * h + 1];
        t[h] = FASTLINREG_SHUFFLE(a, b, 0, 1, 2, 3, 8, 9, 10, 11) +
               FASTLINREG_SHUFFLE(a, b, 4, 5, 6, 7, 12, 13, 14, 15);
      }
      vec u[2];
      for (int h = 0; h < 2; ++h)  // two lanes per vector: l + (l+2), l < 2
        u[h] = FASTLINREG_SHUFFLE(t[2 * h], t[2 * h + 1], 0, 1, 4, 5, 8, 9, 12, 13) +
               FASTLINREG_SHUFFLE(t[2 * h], t[2 * h + 1], 2, 3, 6, 7, 10, 11, 14, 15);
      const vec r = FASTLINREG_SHUFFLE(u[0], u[1], 0, 2, 4, 6, 8, 10, 12, 14) +
                    FASTLINREG_SHUFFLE(u[0], u[1], 1, 3, 5, 7, 9, 11, 13, 15);
      for (int q = 0; q < 8; ++q) out[m + q] = r[q];
    }
    if (m + 4 <= N) {
      const vec t0 = FASTLINREG_SHUFFLE(v[m], v[m + 1], 0, 1, 2, 3, 8, 9, 10, 11) +
                     FASTLINREG_SHUFFLE(v[m], v[m + 1], 4, 5, 6, 7, 12, 13, 14, 15);
      const vec t1 = FASTLINREG_SHUFFLE(v[m + 2], v[m + 3], 0, 1, 2, 3, 8, 9, 10, 11) +
                     FASTLINREG_SHUFFLE(v[m + 2], v[m + 3], 4, 5, 6, 7, 12, 13, 14, 15);
      const vec u = FASTLINREG_SHUFFLE(t0, t1, 0, 1, 4, 5, 8, 9, 12, 13) +
                    FASTLINREG_SHUFFLE(t0, t1, 2, 3, 6, 7, 10, 11, 14, 15);
      const vec r = u + FASTLINREG_SHUFFLE(u, u, 1, 0, 3, 2, 5, 4, 7, 6);
      for (int q = 0; q < 4; ++q) out[m + q] = r[2 * q];
      m += 4;
    }
  }
  for (; m < N; ++m) out[m] = sum_lanes<L>(v[m]);
}

// v in lanes l < m, +0 in the others.
template <int L>
inline typename Vec<L>::d keep_lanes(const typename Vec<L>::d &v, int m) {
  typedef typename Vec<L>::i ivec;
  return (typename Vec<L>::d)((ivec)v & (lane_index<L>() < m));
}

// The kernels prefetch X about kPrefetchBytes ahead of their loads. Without
// that a tile's loads are issued only as the out-of-order window reaches
// them, and one core keeps too few lines in flight to stream at the bandwidth
// a plain read loop reaches. Prefetches never fault, so an address may lie
// past the end of X; it is formed as an integer for that reason.
constexpr index_t kPrefetchBytes = 4096;

// The line holding p[offset].
template <class T>
inline void prefetch_at(const T *p, index_t offset) {
  const auto a = reinterpret_cast<std::uintptr_t>(p) + std::uintptr_t(offset) * sizeof(T);
  __builtin_prefetch(reinterpret_cast<const void *>(a), 0, 3);
}

// The lines of the bytes [a, a + bytes).
inline void prefetch_span(std::uintptr_t a, index_t bytes) {
  for (index_t o = 0; o < bytes; o += 64)
    __builtin_prefetch(reinterpret_cast<const void *>(a + std::uintptr_t(o)), 0, 3);
}

// The lines of rows [first, first + rows) of X.
template <class T>
inline void prefetch_rows(const T *X, index_t first, index_t rows, index_t d, index_t ldx) {
  const auto base = reinterpret_cast<std::uintptr_t>(X) + std::uintptr_t(first * ldx) * sizeof(T);
  const index_t row_bytes = d * index_t(sizeof(T));
  if (ldx == d) {
    for (index_t o = 0; o < rows * row_bytes; o += 64)
      __builtin_prefetch(reinterpret_cast<const void *>(base + std::uintptr_t(o)), 0, 3);
  } else {
    for (index_t r = 0; r < rows; ++r)
      for (index_t o = 0; o < row_bytes; o += 64)
        __builtin_prefetch(
            reinterpret_cast<const void *>(base + std::uintptr_t(r * ldx * index_t(sizeof(T)) + o)),
            0, 3);
  }
}

// The loss policy's scalar formulas, lane by lane (the compiler turns plain
// arithmetic such as the squared loss into whole-vector instructions).
// kVector: the formulas are written for whole vectors (specialisations
// below), worth gathering a tile's predictions into vectors for.
template <class Loss, int L>
struct LaneLoss {
  static constexpr bool kVector = false;
  typedef typename Vec<L>::d vec;
  static void both(const vec &p, const vec &y, vec &dv, vec &lv) {
    for (int l = 0; l < L; ++l) {
      dv[l] = Loss::derivative(p[l], y[l]);
      lv[l] = Loss::value(p[l], y[l]);
    }
  }
};

// The logistic loss on whole vectors: LogisticLoss's formulas with one
// e^-|p| (vecmath.hpp) for both; sigmoid(p) = 1 / (1 + e) for p >= 0 and
// e / (1 + e) below, log(1 + e^p) = max(p, 0) + log1p(e).
template <int L>
struct LaneLoss<LogisticLoss, L> {
  static constexpr bool kVector = true;
  typedef typename Vec<L>::d vec;
  static void both(const vec &p, const vec &y, vec &dv, vec &lv) {
    const vec e = vecmath::exp_nonpositive<vec>(p < 0.0 ? p : -p);
    const vec inv = 1.0 / (1.0 + e);
    dv = (p >= 0.0 ? inv : e * inv) - y;
    lv = ((p > 0.0 ? p : vec{}) + vecmath::log1p_unit<vec>(e)) - y * p;
  }
};

// The policy's derivative and value of N predictions p (targets y): whole
// vectors of kLanes, the last padded with zeros (lanes are independent, so
// a prediction's bits do not depend on its place).
template <class Loss, int N>
inline void loss_vectors(const double *p, const double *y, double *dv, double *lv) {
  constexpr int M = (N + kLanes - 1) / kLanes;
  vd pv[M] = {}, yv[M] = {}, dvv[M], lvv[M];
  std::memcpy(pv, p, sizeof(double) * N);
  std::memcpy(yv, y, sizeof(double) * N);
  for (int m = 0; m < M; ++m) LaneLoss<Loss, kLanes>::both(pv[m], yv[m], dvv[m], lvv[m]);
  std::memcpy(dv, dvv, sizeof(double) * N);
  std::memcpy(lv, lvv, sizeof(double) * N);
}

// Short rows: k == 1, d == D <= kShortRow. Lanes hold rows: a tile is
// short_lanes(D) rows, and tile t of the chunk adds into running-sum set
// t mod short_sets(D); the sets are added in order, then summed over lanes.
// Unit means ldx == 1 (then D == 1 and a tile's column is contiguous).
// Writes the chunk partial: slot[0:D] = G, slot[padded_width(D)] = g_b,
// slot[padded_width(D) + 1] = loss.
template <class Loss, class T, int D, bool Weighted, bool Unit, bool Prefetch = true>
inline void short_rows(const T *X,  // (n, D), row stride ldx
                       index_t ldx,
                       const double *y,   // (n) or nullptr for y = 0
                       const double *sw,  // (n) if Weighted
                       const double *W,   // (D)
                       const double *b,   // (1)
                       index_t r0, index_t r1, double *slot) {
  static_assert(D >= 1 && D <= kShortRow, "short rows only");
  constexpr int L = short_lanes(D), S = short_sets(D);
  typedef typename Vec<L>::d vec;
  struct Sums {
    vec g[D], gb, loss;
  };
  const ColumnLoad<T, L> column(ldx);
  vec w[D];
  for (int j = 0; j < D; ++j) w[j] = splat<L>(W[j]);
  const vec bv = splat<L>(b[0]);
  Sums sums[S] = {};
  const index_t ahead = std::max<index_t>(L, kPrefetchBytes / (D * index_t(sizeof(T))));

  // Rows i .. i + m - 1 (m <= L; lanes m and above add nothing) into set `acc`.
  auto tile = [&](index_t i, int m, Sums &acc) __attribute__((always_inline)) {
    if (Prefetch) prefetch_rows(X, i + ahead, L, D, ldx);
    const T *xi = X + i * ldx;
    vec x[D];
    if constexpr (kSquareShortTiles<L, D>) {
      if (m == L) {
        load_short_rows<L, D>(xi, ldx, x);
      } else {
        for (int j = 0; j < D; ++j) x[j] = column(xi + j, m);
      }
    } else if (m == L)
      for (int j = 0; j < D; ++j) x[j] = Unit ? loadv<L>(xi) : column(xi + j);
    else
      for (int j = 0; j < D; ++j) x[j] = Unit ? load_part<L>(xi, m) : column(xi + j, m);
    vec p = bv;
    for (int j = 0; j < D; ++j) p = p + x[j] * w[j];
    const vec yv = y ? (m == L ? loadv<L>(y + i) : load_part<L>(y + i, m)) : vec{};
    vec dv, lv;
    LaneLoss<Loss, L>::both(p, yv, dv, lv);
    if constexpr (Weighted) {
      const vec s = m == L ? loadv<L>(sw + i) : load_part<L>(sw + i, m);
      dv = s * dv;
      lv = s * lv;
    }
    if (m < L) {
      dv = keep_lanes<L>(dv, m);
      lv = keep_lanes<L>(lv, m);
    }
    acc.gb = acc.gb + dv;
    acc.loss = acc.loss + lv;
    for (int j = 0; j < D; ++j) acc.g[j] = acc.g[j] + x[j] * dv;
  };
  index_t i = r0;
  for (; i + S * L <= r1; i += S * L)
    for (int t = 0; t < S; ++t) tile(i + t * L, L, sums[t]);
  for (int t = 0; t < S; ++t)  // fewer than S tiles left
    if (i < r1) {
      tile(i, static_cast<int>(std::min<index_t>(L, r1 - i)), sums[t]);
      i += L;
    }
  for (int t = 1; t < S; ++t) {
    for (int j = 0; j < D; ++j) sums[0].g[j] = sums[0].g[j] + sums[t].g[j];
    sums[0].gb = sums[0].gb + sums[t].gb;
    sums[0].loss = sums[0].loss + sums[t].loss;
  }

  // All lane sums in one butterfly (padded to a multiple of 4 vectors).
  constexpr int kSums = (D + 2 + 3) / 4 * 4;
  vec all[kSums];
  for (int j = 0; j < D; ++j) all[j] = sums[0].g[j];
  all[D] = sums[0].gb;
  all[D + 1] = sums[0].loss;
  for (int j = D + 2; j < kSums; ++j) all[j] = vec{};
  double out[kSums];
  sum_lanes_n<L, kSums>(all, out);
  const index_t dp = padded_width(D);
  for (int j = 0; j < D; ++j) slot[j] = out[j];
  for (index_t j = D; j < dp; ++j) slot[j] = 0.0;
  slot[dp] = out[D];
  slot[dp + 1] = out[D + 1];
}

// Where a long-row tile prefetches X. Two ways, chosen by the tile's size:
//  * address order (`linear`): a contiguous tile of kLinearMin to
//    linear_max<T>() bytes prefetches the bytes one tile (at least kLinearAhead)
//    past its first row, step bytes for each lane group it loads, so the
//    lines are asked for in the order they lie in memory. Rows of a few
//    hundred bytes prefetched row by row (R short streams, each restarting
//    every tile) keep the core's stream from memory below a plain read's:
//    f64 d = 100, 2 threads, AMD EPYC: 1.24 fastest reads a pass against
//    1.44; f32 d = 200: 0.84 against 1.36.
//  * row by row (`ahead` elements past each load), otherwise. A tile of at
//    most kPrefetchBytes prefetches whole tiles ahead (at least
//    kPrefetchBytes). A larger one prefetching a whole tile ahead keeps too
//    much in flight and pushes the tile in use out of L1 before its second
//    sweep (measured: 5-8% slower at d = 500-1000); instead each of its R
//    rows prefetches its own stream kPrefetchBytes / R ahead, running on past
//    the row's end into the same row of the next tile.
// Pipelined double rows keep two tiles in L1 (the pending one and this), so
// their address-order limit is half the float rows'. Below kLinearMin address
// order measured no better (f32 d = 30: 1.19 fastest reads against 1.13).
// Address order is measured on AVX2 only: the AVX-512 build keeps row by
// row, as measured there (1.01 reads). A strided X (ldx > d) has gaps
// between its rows: row by row.
constexpr index_t kLinearMin = 512;
constexpr index_t kLinearAhead = 2048;
template <class T>
constexpr index_t linear_max() {
  return std::is_same<T, double>::value ? 4096 : 8192;
}

struct Ahead {
  index_t ahead = 0;            // row by row: elements past the load; 0: off
  index_t wrap_at = INT64_MAX;  // offsets from here on ...
  index_t wrap_by = 0;          // ... move on by this many more elements
  index_t step = 0;             // address order: bytes per lane group; 0: off
  index_t bytes = 0;            // ... this far past the tile's first element

  bool on() const { return ahead != 0; }
  bool linear() const { return step != 0; }
  index_t at(index_t j) const {
    const index_t o = j + ahead;
    return o < wrap_at ? o : o + wrap_by;
  }
  template <class T>
  static Ahead plan(index_t d, index_t ldx, int rows) {
    const index_t tile_bytes = rows * d * index_t(sizeof(T));
    Ahead a;
    if (kLanes == 4 && ldx == d && tile_bytes > kLinearMin && tile_bytes <= linear_max<T>()) {
      a.step = rows * kLanes * index_t(sizeof(T));  // lane groups cover the tile
      a.bytes = std::max(kLinearAhead, tile_bytes);
    } else if (tile_bytes <= kPrefetchBytes) {
      a.ahead = (kPrefetchBytes + tile_bytes - 1) / tile_bytes * rows * ldx;
    } else {
      a.ahead = std::min<index_t>(d, kPrefetchBytes / (rows * index_t(sizeof(T))));
      a.wrap_at = d;
      a.wrap_by = rows * ldx - d;
    }
    return a;
  }
};

// A tile whose dot products are done but whose rows are not yet added to G.
// The long-row kernel adds them while the next tile's dot products read X
// (software pipelining): a tile's gradient sweep runs from L1 and, run on its
// own, fills the reorder window so that the next tile's loads from memory
// wait behind it. Each G[j] still takes the rows in row order.
template <class T, int R, int KB>
struct PendingTile {
  const T *x[R] = {};
  double dv[R][KB] = {};
  bool on = false;
};

// The pending tile's rows in columns [j, j + kLanes) added to G (KB, dp).
template <class T, int R, int KB>
inline void pending_lanes(const PendingTile<T, R, KB> &p, index_t j, index_t dfull, int tail,
                          double *Gt, index_t dp) {
  vd xv[R];
  if (j < dfull)
    for (int r = 0; r < R; ++r) xv[r] = loadv<kLanes>(p.x[r] + j);
  else
    for (int r = 0; r < R; ++r) xv[r] = load_part<kLanes>(p.x[r] + j, tail);
  for (int q = 0; q < KB; ++q) {
    vd gq = loadv<kLanes>(Gt + q * dp + j);
    for (int r = 0; r < R; ++r) gq = gq + xv[r] * p.dv[r][q];
    storev<kLanes>(Gt + q * dp + j, gq);
  }
}

// The pending tile's rows added to G on their own (the pipeline's last tile).
template <class T, int R, int KB>
inline void flush_pending(PendingTile<T, R, KB> &p, index_t d, double *Gt, index_t dp) {
  if (!p.on) return;
  const index_t dfull = d / kLanes * kLanes;
  for (index_t j = 0; j < dp; j += kLanes)
    pending_lanes(p, j, dfull, static_cast<int>(d - dfull), Gt, dp);
  p.on = false;
}

// One tile of R rows (kRowTile, or 1 for the rows after the last whole
// tile) against KB outputs: the long-row kernel's unit of work. Its dot
// products run with the pending tile's gradient; then it is the pending tile.
template <class Loss, class T, int R, int KB, bool Weighted>
inline void long_tile(const T *const *x,  // R row pointers, each (d)
                      index_t d,
                      const double *Wt,  // (KB, ldw) rows of W^T for these outputs
                      index_t ldw,
                      const vd *wtail,  // (KB) W^T past the last whole lane group, padded
                      const double *b,  // (KB)
                      const double *y,  // row i's targets of this block, row stride k; or nullptr
                      index_t k,
                      const double *sw,  // (R) if Weighted
                      double *Gt,        // (KB, dp) accumulated into
                      index_t dp,
                      double *gb,  // (KB) accumulated into
                      double &loss,
                      const Ahead &ahead,                // where to prefetch X, if at all
                      PendingTile<T, R, KB> &pending) {  // the tile before, replaced by this one
  const index_t dfull = d / kLanes * kLanes;
  const int tail = static_cast<int>(d - dfull);
  vd acc[R][KB];
  for (int r = 0; r < R; ++r)
    for (int q = 0; q < KB; ++q) acc[r][q] = vd{};
  const std::uintptr_t linear_at =
      reinterpret_cast<std::uintptr_t>(x[0]) + std::uintptr_t(ahead.bytes);
  for (index_t j = 0; j < dfull; j += kLanes) {
    if (ahead.linear())
      prefetch_span(linear_at + std::uintptr_t(j / kLanes * ahead.step), ahead.step);
    else if (ahead.on())  // spread over the loop: a steady number of lines in flight
      for (int r = 0; r < R; ++r) prefetch_at(x[r], ahead.at(j));
    vd xv[R];
    for (int r = 0; r < R; ++r) xv[r] = loadv<kLanes>(x[r] + j);
    for (int q = 0; q < KB; ++q) {
      const vd wv = loadv<kLanes>(Wt + q * ldw + j);
      for (int r = 0; r < R; ++r) acc[r][q] = acc[r][q] + xv[r] * wv;
    }
    if (pending.on) pending_lanes(pending, j, dfull, tail, Gt, dp);
  }
  if (tail) {
    if (ahead.linear())
      prefetch_span(linear_at + std::uintptr_t(dfull / kLanes * ahead.step), ahead.step);
    else if (ahead.on())
      for (int r = 0; r < R; ++r) prefetch_at(x[r], ahead.at(dfull));
    vd xv[R];
    for (int r = 0; r < R; ++r) xv[r] = load_part<kLanes>(x[r] + dfull, tail);
    for (int q = 0; q < KB; ++q)
      for (int r = 0; r < R; ++r) acc[r][q] = acc[r][q] + xv[r] * wtail[q];
    if (pending.on) pending_lanes(pending, dfull, dfull, tail, Gt, dp);
  }
  double dot[R][KB];
  sum_lanes_n<kLanes, R * KB>(&acc[0][0], &dot[0][0]);
  [[maybe_unused]] double pr[R][KB], yr[R][KB], dr_all[R][KB], lr_all[R][KB];
  if constexpr (LaneLoss<Loss, kLanes>::kVector) {  // the policy on whole vectors
    for (int r = 0; r < R; ++r)
      for (int q = 0; q < KB; ++q) {
        pr[r][q] = dot[r][q] + b[q];
        yr[r][q] = y ? y[r * k + q] : 0.0;
      }
    loss_vectors<Loss, R * KB>(&pr[0][0], &yr[0][0], &dr_all[0][0], &lr_all[0][0]);
  }
  for (int r = 0; r < R; ++r) {
    for (int q = 0; q < KB; ++q) {
      double dr, lr;
      if constexpr (LaneLoss<Loss, kLanes>::kVector) {
        dr = dr_all[r][q];
        lr = lr_all[r][q];
      } else {
        const double p = dot[r][q] + b[q];
        const double yv = y ? y[r * k + q] : 0.0;
        dr = Loss::derivative(p, yv);
        lr = Loss::value(p, yv);
      }
      if constexpr (Weighted) {
        dr = sw[r] * dr;
        lr = sw[r] * lr;
      }
      pending.dv[r][q] = dr;
      gb[q] += dr;
      loss += lr;
    }
  }
  for (int r = 0; r < R; ++r) pending.x[r] = x[r];
  pending.on = true;
}

// Long rows: rows [r0, r1) against outputs [c0, c0 + KB), accumulated into
// Gt (KB, dp), gb (KB) and loss.
template <class Loss, class T, int KB, bool Weighted, int RT = kRowTile>
void long_rows(const T *X, index_t d, index_t ldx,  // X (n, d), row stride ldx
               const double *y, index_t k,          // (n, k) or nullptr
               const double *sw,                    // (n) if Weighted
               const double *Wt, index_t ldw,       // (KB, ldw): W^T rows c0...
               const double *b,                     // (KB)
               index_t c0, index_t r0, index_t r1, double *Gt, index_t dp, double *gb,
               double &loss) {
  const index_t dfull = d / kLanes * kLanes;
  const int tail = static_cast<int>(d - dfull);
  vd wtail[KB];
  for (int q = 0; q < KB; ++q)
    wtail[q] = tail ? load_part<kLanes>(Wt + q * ldw + dfull, tail) : vd{};
  const double *yc = y ? y + c0 : nullptr;
  double gbl[KB], lossl = loss;  // running sums in registers, not through memory
  for (int q = 0; q < KB; ++q) gbl[q] = gb[q];
  // Whole tiles of R rows from row i on, then i is past the last of them.
  // Only the first output block reads X from memory and prefetches; later
  // blocks find the rows in cache.
  index_t i = r0;
  auto tiles = [&](auto rows) {
    constexpr int R = decltype(rows)::value;
    const Ahead ahead = c0 == 0 ? Ahead::plan<T>(d, ldx, R) : Ahead{};
    // Only double rows are pipelined: float rows are widened again for the
    // gradient, and that second conversion beside the next tile's first
    // measured 7-15% slower than the tile in one piece (AMD EPYC).
    constexpr bool kPipelined = KB == 1 && std::is_same<T, double>::value;
    PendingTile<T, R, KB> pending;
    for (; i + R <= r1; i += R) {
      const T *x[R];
      for (int r = 0; r < R; ++r) x[r] = X + (i + r) * ldx;
      long_tile<Loss, T, R, KB, Weighted>(x, d, Wt, ldw, wtail, b, yc ? yc + i * k : nullptr, k,
                                          Weighted ? sw + i : nullptr, Gt, dp, gbl, lossl, ahead,
                                          pending);
      if (!kPipelined) flush_pending(pending, d, Gt, dp);
    }
    flush_pending(pending, d, Gt, dp);
  };
  tiles(std::integral_constant<int, RT>{});
  tiles(std::integral_constant<int, 1>{});  // the rows after the last whole tile
  for (int q = 0; q < KB; ++q) gb[q] = gbl[q];
  loss = lossl;
}

// long_rows with KB = kb (1 <= kb <= KB), chosen at run time.
template <class Loss, class T, bool Weighted, int KB, int RT>
void long_rows_block(int kb, const T *X, index_t d, index_t ldx, const double *y, index_t k,
                     const double *sw, const double *Wt, const double *b, index_t c0, index_t r0,
                     index_t r1, double *Gt, index_t dp, double *gb, double &loss) {
  if (kb == KB)
    long_rows<Loss, T, KB, Weighted, RT>(X, d, ldx, y, k, sw, Wt, d, b, c0, r0, r1, Gt, dp, gb,
                                         loss);
  else if constexpr (KB > 1)
    long_rows_block<Loss, T, Weighted, KB - 1, RT>(kb, X, d, ldx, y, k, sw, Wt, b, c0, r0, r1, Gt,
                                                   dp, gb, loss);
}

// The rows against all k outputs, in blocks of outputs: each block is a sweep
// over the rows, the first from memory. With 16 vector registers (AVX2, SSE)
// more than two outputs run in blocks of four against tiles of two rows (the
// same eight running sums as two outputs against four rows): one sweep instead
// of two for k = 3 or 4 (k = 4, d = 100 on AMD EPYC: 1.7 one-thread reads a
// pass instead of 3.0).
template <class Loss, class T, bool Weighted>
void long_rows_all(const T *X, index_t d, index_t ldx, const double *y, index_t k, const double *sw,
                   const double *Wt, const double *b, index_t r0, index_t r1, double *slot) {
  const index_t dp = padded_width(d);
  std::memset(slot, 0, sizeof(double) * static_cast<size_t>(k * dp + k + 1));
  double *gb = slot + k * dp;
  double loss = 0.0;
  const bool wide = kLanes == 4 && k > 2;
  const index_t block = wide ? 4 : kOutBlock;
  for (index_t c0 = 0; c0 < k; c0 += block) {
    const int kb = static_cast<int>(std::min<index_t>(block, k - c0));
    if (wide)
      long_rows_block<Loss, T, Weighted, 4, 2>(kb, X, d, ldx, y, k, sw, Wt + c0 * d, b + c0, c0, r0,
                                               r1, slot + c0 * dp, dp, gb + c0, loss);
    else
      long_rows_block<Loss, T, Weighted, kOutBlock, kRowTile>(kb, X, d, ldx, y, k, sw, Wt + c0 * d,
                                                              b + c0, c0, r0, r1, slot + c0 * dp,
                                                              dp, gb + c0, loss);
  }
  slot[k * dp + k] = loss;
}

template <class Loss, class T, int D>
void short_rows_any(const T *X, index_t ldx, const double *y, const double *sw, const double *W,
                    const double *b, index_t r0, index_t r1, double *slot) {
  if (sw) {
    if (D == 1 && ldx == 1)
      short_rows<Loss, T, D, true, true>(X, ldx, y, sw, W, b, r0, r1, slot);
    else
      short_rows<Loss, T, D, true, false>(X, ldx, y, sw, W, b, r0, r1, slot);
  } else {
    if (D == 1 && ldx == 1)
      short_rows<Loss, T, D, false, true>(X, ldx, y, sw, W, b, r0, r1, slot);
    else
      short_rows<Loss, T, D, false, false>(X, ldx, y, sw, W, b, r0, r1, slot);
  }
}

// Any loss, row by row: p = W^T x + b (k), the policy's row() gives the
// row's value and dp (k), G += x dp^T. This serves losses whose outputs
// couple (softmax); elementwise losses take the vectorised kernels above.
// Each dot product is kLanes lane sums over j = l (mod kLanes), summed over
// lanes, then + b (the long-row kernel's order); same slot layout.
template <class Loss, class T>
void coupled_rows(const T *X, index_t d, index_t ldx, const double *y, index_t k, const double *sw,
                  const double *Wt, const double *b, index_t r0, index_t r1, double *slot) {
  const index_t dp = padded_width(d);
  const index_t dfull = d / kLanes * kLanes;
  const int tail = static_cast<int>(d - dfull);
  std::memset(slot, 0, sizeof(double) * static_cast<size_t>(k * dp + k + 1));
  std::vector<double> p(static_cast<size_t>(k)), g(static_cast<size_t>(k));
  std::vector<double> wpad(static_cast<size_t>(k * dp), 0.0);  // W^T rows padded to whole lanes
  for (index_t q = 0; q < k; ++q)
    std::memcpy(wpad.data() + q * dp, Wt + q * d, sizeof(double) * static_cast<size_t>(d));
  double loss = 0.0;
  for (index_t i = r0; i < r1; ++i) {
    const T *x = X + i * ldx;
    for (index_t q = 0; q < k; ++q) {
      const double *w = wpad.data() + q * dp;
      vd acc = {};
      for (index_t j = 0; j < dfull; j += kLanes)
        acc = acc + loadv<kLanes>(x + j) * loadv<kLanes>(w + j);
      if (tail) acc = acc + load_part<kLanes>(x + dfull, tail) * loadv<kLanes>(w + dfull);
      p[q] = sum_lanes<kLanes>(acc) + b[q];
    }
    const double wi = sw ? sw[i] : 1.0;
    loss += wi * Loss::row(p.data(), y ? y + i * k : nullptr, k, g.data());
    for (index_t q = 0; q < k; ++q) {
      const double gq = wi * g[q];
      double *Gq = slot + q * dp;
      for (index_t j = 0; j < d; ++j) Gq[j] += double(x[j]) * gq;
      slot[k * dp + q] += gq;
    }
  }
  slot[k * dp + k] = loss;
}

// A coupled loss on whole vectors whose lanes are rows (kOn), for
// coupled_tiles: rows<V>(P, Y, stride, k, D) reads the k predictions and
// targets of a vector of rows (output q's at P + q * stride, Y + q * stride),
// writes dp at D + q * stride and returns the rows' values.
template <class Loss>
struct CoupledLanes {
  static constexpr bool kOn = false;
};

// SoftmaxLoss::row with rows in lanes: the same sums over q in the same
// order, e^(p - max p) and log from vecmath.hpp.
template <>
struct CoupledLanes<SoftmaxLoss> {
  static constexpr bool kOn = true;
  template <class V>
  static V load(const double *p) {
    V v;
    std::memcpy(&v, p, sizeof v);
    return v;
  }
  template <class V>
  static V rows(const double *P, const double *Y, index_t stride, index_t k, double *D) {
    V m = load<V>(P);
    for (index_t q = 1; q < k; ++q) {
      const V p = load<V>(P + q * stride);
      m = p > m ? p : m;
    }
    V s = {};
    for (index_t q = 0; q < k; ++q) {
      const V e = vecmath::exp_nonpositive<V>(load<V>(P + q * stride) - m);
      std::memcpy(D + q * stride, &e, sizeof e);  // e^(p - m) until the last loop
      s = s + e;
    }
    const V lse = m + vecmath::log_ge1<V>(s);
    V v = {}, sy = {};
    for (index_t q = 0; q < k; ++q) {
      const V y = load<V>(Y + q * stride);
      v = v + y * (lse - load<V>(P + q * stride));
      sy = sy + y;
    }
    for (index_t q = 0; q < k; ++q) {
      const V dq = sy * (load<V>(D + q * stride) / s) - load<V>(Y + q * stride);
      std::memcpy(D + q * stride, &dq, sizeof dq);
    }
    return v;
  }
};

// Runs f(std::integral_constant<int, kb>{}) for a run-time kb in [1, KB].
template <int KB, class F>
inline void with_block(int kb, F &&f) {
  if (kb == KB)
    f(std::integral_constant<int, KB>{});
  else if constexpr (KB > 1)
    with_block<KB - 1>(kb, f);
}

// coupled_tiles works in blocks of kCoupledBlock rows: first the block's
// margins, loss and derivatives, then its gradient with tiles of G held in
// registers across all the block's rows (G is loaded and stored once a block,
// not once a tile of rows); the rows stay in L1/L2 between the two sweeps.
constexpr int kCoupledBlock = 32;
// Margin tiles: kMarginRows rows x up to kMarginOuts outputs of running dot
// products (10 of the 16 vector registers without AVX-512, 20 of 32 with it).
constexpr int kMarginRows = kLanes == 8 ? 4 : 2;
constexpr int kMarginOuts = 5;
// Gradient tiles: up to kGradOuts outputs x kGradVecs vectors of columns.
constexpr int kGradOuts = 5;
constexpr int kGradVecs = kLanes == 8 ? 4 : 2;

// The margins of R rows for KB outputs: P[q * ps + r] = sum_lanes(lane sums
// of x_r w_q) + b_q (the long-row kernel's order). Wp: the outputs' rows of
// W^T, padded to dp.
template <class T, int R, int KB>
inline void tile_margins(const T *const *x, index_t d, const double *Wp, index_t dp,
                         const double *b, double *P, index_t ps, double *const *stash = nullptr) {
  const index_t dfull = d / kLanes * kLanes;
  const int tail = static_cast<int>(d - dfull);
  vd acc[R][KB];
  for (int r = 0; r < R; ++r)
    for (int q = 0; q < KB; ++q) acc[r][q] = vd{};
  auto step = [&](index_t j, const vd *xv) __attribute__((always_inline)) {
    for (int q = 0; q < KB; ++q) {
      vd wv = loadv<kLanes>(Wp + q * dp + j);
#if defined(__x86_64__) || defined(__i386__)
      if constexpr (R > 1) asm("" : "+x"(wv));  // one load for R rows, not one folded into each
#endif
      for (int r = 0; r < R; ++r) acc[r][q] = acc[r][q] + xv[r] * wv;
    }
  };
  for (index_t j = 0; j < dfull; j += kLanes) {
    vd xv[R];
    for (int r = 0; r < R; ++r) xv[r] = loadv<kLanes>(x[r] + j);
    if (stash)
      for (int r = 0; r < R; ++r) storev<kLanes>(stash[r] + j, xv[r]);
    step(j, xv);
  }
  if (tail) {
    vd xv[R];
    for (int r = 0; r < R; ++r) xv[r] = load_part<kLanes>(x[r] + dfull, tail);
    if (stash)
      for (int r = 0; r < R; ++r) storev<kLanes>(stash[r] + dfull, xv[r]);
    step(dfull, xv);
  }
  double dot[R][KB];
  sum_lanes_n<kLanes, R * KB>(&acc[0][0], &dot[0][0]);
  for (int r = 0; r < R; ++r)
    for (int q = 0; q < KB; ++q) P[q * ps + r] = dot[r][q] + b[q];
}

// Gt (QB outputs, row stride dp) columns [j0, j0 + JB * kLanes) +=
// x_r D[q * ps + r] over rows r < m in row order; the last vector holds
// `tail` columns when Part. Prefetches the same columns of rows `next`
// (the next block's), spreading its read over this block's work.
template <class S, class T, int QB, int JB, bool Part>
inline void tile_gradient(const S *const *x, const T *const *next, int m, index_t j0, int tail,
                          const double *D, index_t ps, double *Gt, index_t dp) {
  constexpr int kLine = 64 / static_cast<int>(sizeof(T));  // elements of a cache line
  vd acc[QB][JB];
  for (int q = 0; q < QB; ++q)
    for (int v = 0; v < JB; ++v) acc[q][v] = loadv<kLanes>(Gt + q * dp + j0 + v * kLanes);
  for (int r = 0; r < m; ++r) {
    vd xv[JB];
    for (int v = 0; v < JB; ++v)
      xv[v] = Part && v == JB - 1 ? load_part<kLanes>(x[r] + j0 + v * kLanes, tail)
                                  : loadv<kLanes>(x[r] + j0 + v * kLanes);
    for (int o = 0; o < JB * kLanes; o += kLine) prefetch_at(next[r], j0 + o);
    for (int q = 0; q < QB; ++q) {
      const double dq = D[q * ps + r];
      for (int v = 0; v < JB; ++v) acc[q][v] = acc[q][v] + xv[v] * dq;
    }
  }
  for (int q = 0; q < QB; ++q)
    for (int v = 0; v < JB; ++v) storev<kLanes>(Gt + q * dp + j0 + v * kLanes, acc[q][v]);
}

// A coupled loss with CoupledLanes (softmax), in blocks of kCoupledBlock
// rows: the block's k margins (tiles of rows against blocks of outputs), the
// policy on vectors of rows, the weights, then x dp^T into G tile by tile.
// Every sum's order is fixed by the rows alone (a dot product's by its row,
// G's, g_b's and the loss's is the row order), never by the block or tile a
// row falls in. Same slot layout as coupled_rows.
template <class Loss, class T>
void coupled_tiles(const T *X, index_t d, index_t ldx, const double *y, index_t k, const double *sw,
                   const double *Wt, const double *b, index_t r0, index_t r1, double *slot) {
  constexpr int LL = kLanes < kRowTile ? kLanes : kRowTile;  // rows per loss vector
  constexpr int B = kCoupledBlock;
  static_assert(B % LL == 0 && B % kMarginRows == 0, "blocks hold whole tiles");
  typedef typename Vec<LL>::d lvec;
  const index_t dp = padded_width(d);
  std::memset(slot, 0, sizeof(double) * static_cast<size_t>(k * dp + k + 1));
  std::vector<double> Wp(static_cast<size_t>(k * dp), 0.0);  // W^T rows padded to whole lanes
  for (index_t q = 0; q < k; ++q)
    std::memcpy(Wp.data() + q * dp, Wt + q * d, sizeof(double) * static_cast<size_t>(d));
  // (k, B) each: predictions, targets, derivatives of the block.
  std::vector<double> block(static_cast<size_t>(3 * k * B));
  double *P = block.data(), *Yg = P + k * B, *D = Yg + k * B;
  double *gb = slot + k * dp;
  double loss = 0.0;
  const index_t dfull = d / kLanes * kLanes;
  const int tail = static_cast<int>(d - dfull);
  const T *x[B], *next[B];
  // Float rows widened to double by the block's first sweep, for the others:
  // a load from cache instead of a conversion each sweep. Whole lanes, zeros
  // past d (as Wp), so sweeps over dp columns give the same sums. Doubles need none.
  constexpr bool kStash = !std::is_same<T, double>::value;
  std::vector<double> stash(kStash ? static_cast<size_t>(B * dp) : 0);
  double *srows[B];
  for (int r = 0; r < B; ++r) srows[r] = kStash ? stash.data() + r * dp : nullptr;
  for (index_t g0 = r0; g0 < r1; g0 += B) {
    const int m = static_cast<int>(std::min<index_t>(B, r1 - g0));
    for (int r = 0; r < B; ++r) {
      x[r] = X + std::min<index_t>(g0 + r, r1 - 1) * ldx;
      next[r] = X + std::min<index_t>(g0 + B + r, r1 - 1) * ldx;
    }
    if (y)  // the next block's targets, a line at a time, while this block computes
      for (index_t o = 0; o < B * k; o += 64 / index_t(sizeof(double)))
        prefetch_at(y, (g0 + B) * k + o);
    const int whole = m / kMarginRows * kMarginRows;
    for (index_t c0 = 0; c0 < k; c0 += kMarginOuts) {
      const int kb = static_cast<int>(std::min<index_t>(kMarginOuts, k - c0));
      with_block<kMarginOuts>(kb, [&](auto outs) {
        constexpr int KB = decltype(outs)::value;
        const double *w = Wp.data() + c0 * dp;
        double *Pc = P + c0 * B;
        if (kStash && c0 > 0) {
          for (int r = 0; r < whole; r += kMarginRows)
            tile_margins<double, kMarginRows, KB>(srows + r, dp, w, dp, b + c0, Pc + r, B);
          for (int r = whole; r < m; ++r)
            tile_margins<double, 1, KB>(srows + r, dp, w, dp, b + c0, Pc + r, B);
        } else {
          double *const *out = kStash ? srows : nullptr;
          for (int r = 0; r < whole; r += kMarginRows)
            tile_margins<T, kMarginRows, KB>(x + r, d, w, dp, b + c0, Pc + r, B,
                                             out ? out + r : nullptr);
          for (int r = whole; r < m; ++r)
            tile_margins<T, 1, KB>(x + r, d, w, dp, b + c0, Pc + r, B, out ? out + r : nullptr);
        }
      });
    }
    const int mv = (m + LL - 1) / LL * LL;  // rows the loss vectors cover
    for (int r = 0; r < mv; ++r)  // y in its own order (rows of k), the block's order in Yg
      for (index_t q = 0; q < k; ++q) Yg[q * B + r] = y && r < m ? y[(g0 + r) * k + q] : 0.0;
    for (index_t q = 0; q < k; ++q)
      for (int r = m; r < mv; ++r) P[q * B + r] = 0.0;  // finite values in the unused lanes
    double value[B];
    for (int v = 0; v < mv; v += LL) {
      const lvec lv = CoupledLanes<Loss>::template rows<lvec>(P + v, Yg + v, B, k, D + v);
      std::memcpy(value + v, &lv, sizeof lv);
    }
    for (int r = 0; r < m; ++r) {
      const double wr = sw ? sw[g0 + r] : 1.0;
      loss += wr * value[r];
      for (index_t q = 0; q < k; ++q) {
        const double gq = wr * D[q * B + r];
        D[q * B + r] = gq;
        gb[q] += gq;
      }
    }
    for (index_t c0 = 0; c0 < k; c0 += kGradOuts) {
      const int kb = static_cast<int>(std::min<index_t>(kGradOuts, k - c0));
      with_block<kGradOuts>(kb, [&](auto outs) {
        constexpr int QB = decltype(outs)::value;
        const double *Dc = D + c0 * B;
        double *Gt = slot + c0 * dp;
        if constexpr (kStash) {  // whole lanes of the stash: no partial vector
          for (index_t j0 = 0; j0 < dp; j0 += kGradVecs * kLanes) {
            const int nv = static_cast<int>(std::min<index_t>(kGradVecs, (dp - j0) / kLanes));
            with_block<kGradVecs>(nv, [&](auto vecs) {
              constexpr int JB = decltype(vecs)::value;
              tile_gradient<double, T, QB, JB, false>(srows, next, m, j0, 0, Dc, B, Gt, dp);
            });
          }
        } else {
          for (index_t j0 = 0; j0 < dfull; j0 += kGradVecs * kLanes) {
            const int nv = static_cast<int>(std::min<index_t>(kGradVecs, (dfull - j0) / kLanes));
            with_block<kGradVecs>(nv, [&](auto vecs) {
              constexpr int JB = decltype(vecs)::value;
              tile_gradient<T, T, QB, JB, false>(x, next, m, j0, 0, Dc, B, Gt, dp);
            });
          }
          if (tail) tile_gradient<T, T, QB, 1, true>(x, next, m, dfull, tail, Dc, B, Gt, dp);
        }
      });
    }
  }
  slot[k * dp + k] = loss;
}

// fused_rows for a loss with the scalar value() and derivative().
template <class Loss, class T>
void elementwise_rows(const T *X, index_t d, index_t ldx, const double *y, index_t k,
                      const double *sw, const double *Wt, const double *b, index_t r0, index_t r1,
                      double *slot) {
  if (k == 1 && d >= 1 && d <= kShortRow) {
    switch (d) {
      case 1:
        return short_rows_any<Loss, T, 1>(X, ldx, y, sw, Wt, b, r0, r1, slot);
      case 2:
        return short_rows_any<Loss, T, 2>(X, ldx, y, sw, Wt, b, r0, r1, slot);
      case 3:
        return short_rows_any<Loss, T, 3>(X, ldx, y, sw, Wt, b, r0, r1, slot);
      case 4:
        return short_rows_any<Loss, T, 4>(X, ldx, y, sw, Wt, b, r0, r1, slot);
      case 5:
        return short_rows_any<Loss, T, 5>(X, ldx, y, sw, Wt, b, r0, r1, slot);
      case 6:
        return short_rows_any<Loss, T, 6>(X, ldx, y, sw, Wt, b, r0, r1, slot);
      case 7:
        return short_rows_any<Loss, T, 7>(X, ldx, y, sw, Wt, b, r0, r1, slot);
      default:
        return short_rows_any<Loss, T, 8>(X, ldx, y, sw, Wt, b, r0, r1, slot);
    }
  }
  if (sw)
    long_rows_all<Loss, T, true>(X, d, ldx, y, k, sw, Wt, b, r0, r1, slot);
  else
    long_rows_all<Loss, T, false>(X, d, ldx, y, k, sw, Wt, b, r0, r1, slot);
}

// The fused sums of rows [r0, r1) written to a chunk partial `slot`:
// G as (k, padded_width(d)) (the transpose of W's layout), then g_b (k),
// then the loss. Wt is W^T (k, d); for k == 1 that is W itself.
template <class Loss, class T>
void fused_rows(const T *X,  // (n, d), row stride ldx
                index_t d, index_t ldx,
                const double *y,  // (n, k) row-major, or nullptr for y = 0
                index_t k,
                const double *sw,  // (n) sample weights, or nullptr for 1
                const double *Wt,  // (k, d) row-major
                const double *b,   // (k)
                index_t r0, index_t r1,
                double *slot) {  // (k * padded_width(d) + k + 1)
  if constexpr (CoupledLanes<Loss>::kOn) {
    return coupled_tiles<Loss, T>(X, d, ldx, y, k, sw, Wt, b, r0, r1, slot);
  } else if constexpr (!Loss::kElementwise) {
    return coupled_rows<Loss, T>(X, d, ldx, y, k, sw, Wt, b, r0, r1, slot);
  } else {
    return elementwise_rows<Loss, T>(X, d, ldx, y, k, sw, Wt, b, r0, r1, slot);
  }
}

// A reduced partial (G as (k, dp), g_b, loss) divided by the weight sum:
// G (d, k) and gb (k) get the mean gradients; returns the mean loss.
inline double normalise(const double *total, index_t d, index_t dp, index_t k, double inv,
                        double *G, double *gb) {
  for (index_t j = 0; j < d; ++j)
    for (index_t q = 0; q < k; ++q) G[j * k + q] = total[q * dp + j] * inv;
  for (index_t q = 0; q < k; ++q) gb[q] = total[k * dp + q] * inv;
  return total[k * dp + k] * inv;
}

}  // namespace detail

// Gradient oracle over rows of X in memory: the fused pass, chunked. Its
// units of work are the chunks, shared as UnitPass (parallel.hpp) describes.
template <class Loss, class T>
class StreamOracle : public UnitPass<StreamOracle<Loss, T>> {
  friend class UnitPass<StreamOracle<Loss, T>>;

 public:
  StreamOracle(const T *X,  // (n, d), rows contiguous, row stride ldx
               index_t n, index_t d, index_t ldx,
               const double *y,  // (n, k) or nullptr
               index_t k,
               const double *sw,  // (n) or nullptr
               double weight_sum)
      : X_(X),
        n_(n),
        d_(d),
        ldx_(ldx),
        y_(y),
        k_(k),
        sw_(sw),
        inv_weight_sum_(1.0 / weight_sum),
        plan_(plan_chunks(n, d, k)),
        dp_(padded_width(d)),
        slot_(k * dp_ + k + 1),
        partial_(static_cast<size_t>(plan_.n_chunks * slot_)),
        Wt_(static_cast<size_t>(k > 1 ? d * k : 0)),
        total_(static_cast<size_t>(plan_.n_chunks > 1 ? slot_ : 0)) {}

  index_t d() const { return d_; }
  index_t k() const { return k_; }
  index_t n_chunks() const { return plan_.n_chunks; }
  // Elements of X read per pass: sets the cadence of signal checks.
  double work_per_pass() const { return double(n_) * double(d_) * double(k_); }

  // Record the model of the next pass. The kernel reads W^T: for k > 1 that
  // is a transpose (one thread, before the shares).
  void prepare(const double *W, const double *b) {
    Wt_cur_ = W;
    b_cur_ = b;
    if (k_ > 1) {
      for (index_t j = 0; j < d_; ++j)
        for (index_t q = 0; q < k_; ++q) Wt_[q * d_ + j] = W[j * k_ + q];
      Wt_cur_ = Wt_.data();
    }
  }

  // Sum the chunk partials in chunk order and normalise by the weight sum.
  // Returns the loss; G (d,k) and gb (k) receive the mean gradients.
  double reduce(double *G, double *gb) {
    const double *total = partial_.data();
    if (plan_.n_chunks > 1) {
      double *t = total_.data();
      std::memcpy(t, partial_.data(), sizeof(double) * static_cast<size_t>(slot_));
      for (index_t c = 1; c < plan_.n_chunks; ++c) {
        const double *slot = partial_.data() + c * slot_;
        for (index_t j = 0; j < slot_; ++j) t[j] += slot[j];
      }
      total = t;
    }
    return detail::normalise(total, d_, dp_, k_, inv_weight_sum_, G, gb);
  }

 private:
  // Chunks are shared statically, so a thread reads the same rows every step
  // (they stay in its cache when they fit).
  index_t n_units() const { return plan_.n_chunks; }
  // The fused sums of chunk c into its partial.
  void unit(index_t c) {
    const index_t r0 = c * plan_.rows_per_chunk;
    const index_t r1 = std::min(n_, r0 + plan_.rows_per_chunk);
    detail::fused_rows<Loss, T>(X_, d_, ldx_, y_, k_, sw_, Wt_cur_, b_cur_, r0, r1,
                                partial_.data() + c * slot_);
  }

  const T *X_;
  index_t n_, d_, ldx_;
  const double *y_;
  index_t k_;
  const double *sw_;
  double inv_weight_sum_;
  ChunkPlan plan_;
  index_t dp_, slot_;
  std::vector<double> partial_;
  std::vector<double> Wt_;
  std::vector<double> total_;
  const double *Wt_cur_ = nullptr;  // the model prepare() recorded
  const double *b_cur_ = nullptr;
};

// The same fused pass for a problem of one chunk with k == 1 and packed short
// rows (ldx == d == D <= kShortRow), without the chunk machinery: the partial
// stays in registers when descend() inlines it, which is what a descent whose
// steps take nanoseconds (the tutorial's 16 points) needs. It runs the very
// kernel StreamOracle runs on its one chunk, so the bits are the same.
template <class Loss, class T, int D, bool Weighted>
class SmallOracle {
 public:
  static constexpr index_t kPadded = (D + kLanes - 1) / kLanes * kLanes;

  // True when StreamOracle would make one chunk of these rows.
  static bool fits(index_t n, index_t d, index_t ldx, index_t k) {
    return k == 1 && d == D && ldx == D && plan_chunks(n, d, k).n_chunks == 1;
  }

  SmallOracle(const T *X,  // (n, D), packed rows
              index_t n,
              const double *y,   // (n) or nullptr
              const double *sw,  // (n), non-null iff Weighted
              double weight_sum)
      : X_(X), n_(n), y_(y), sw_(sw), inv_weight_sum_(1.0 / weight_sum) {}

  index_t d() const { return D; }
  index_t k() const { return 1; }

  void partials(const double *W, const double *b) {
    detail::short_rows<Loss, T, D, Weighted, D == 1, false>(X_, D, y_, sw_, W, b, 0, n_, slot_);
  }
  double reduce(double *G, double *gb) {
    return detail::normalise(slot_, D, kPadded, 1, inv_weight_sum_, G, gb);
  }

 private:
  const T *X_;
  index_t n_;
  const double *y_;
  const double *sw_;
  double inv_weight_sum_;
  double slot_[kPadded + 2];
};

FASTLINREG_ISA_END
}  // namespace fastlinreg
