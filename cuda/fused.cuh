// The fused pass on the device: one read of X gives the loss, the gradient
// G (d, k) and gb (k) (see cpp/include/fastlinreg/fused.hpp for the sums).
//
// Layout of the work (fixed by the shape (n, d, ldx, k) alone, never by the
// device, so the bits are the same on every run and every Hopper part):
//  * The E = (d + 1) k + 1 sums are "elements": G as (d, k) row-major, then
//    gb (k), then the loss. Augmenting x with a constant 1 makes gb the
//    G of that column, and the loss is the sum of the rows' values.
//  * blockIdx.x owns a contiguous range of rows_per_block rows; blockIdx.y a
//    group of kGroup elements (more than one group only when E > kGroup: the
//    groups then each recompute the predictions of their rows).
//  * A block walks its rows in tiles of R rows. Staged tiles are copied from
//    X into shared memory once (16-byte loads where aligned); the predictions
//    (phase 1: a warp per row, lanes over columns, a fixed butterfly) and the
//    gradient (phase 2: a thread per element, rows in order) read that copy.
//    Rows too long to stage are read from global memory twice (the second
//    read hits L1/L2).
//  * Each thread keeps its kPerThread elements in double registers across
//    the block's tiles and writes them once to partial[e * n_blocks + block].
//    reduce_partials_kernel then sums each element over the blocks in block
//    order. No atomics anywhere.
// X may be float32 or float64; every product and sum is in double.
#pragma once

#include <algorithm>
#include <cstdint>

#include <stdexcept>
#include "api.hpp"
#include "common.cuh"

#include "fastlinreg/losses.hpp"

namespace fastlinreg {
namespace cuda {

// dispatch_loss for the device kernels, which run elementwise losses only
// (squared, logistic): a coupled one (softmax) is refused with a clear error.
template <class F>
void dispatch_elementwise_loss(LossKind kind, F &&f) {
  dispatch_loss(kind, [&](auto policy) {
    if constexpr (decltype(policy)::kElementwise) {
      f(policy);
    } else {
      throw std::invalid_argument(
          "the CUDA backend runs elementwise losses only (squared, logistic); multinomial "
          "(softmax) runs on the cpu backend");
    }
  });
}

constexpr int kFusedThreads = 256;
constexpr int kPerThread = 4;  // elements a thread keeps in registers
constexpr index_t kGroup = index_t(kFusedThreads) * kPerThread;  // elements per blockIdx.y
constexpr int kOutBlock = 4;                   // outputs per phase-1 sweep of a row
constexpr std::size_t kTileBytes = 24 * 1024;  // shared memory a tile aims for
constexpr std::size_t kSmemLimit = 48 * 1024;  // the default dynamic limit
constexpr index_t kMaxTileRows = 128;
constexpr index_t kMaxBlocks = 8192;                           // many waves: a small tail
constexpr std::size_t kPartialBudget = std::size_t(64) << 20;  // bytes of block partials

struct FusedPlan {
  index_t tile_rows = 1, rows_per_block = 1, n_blocks = 1, n_groups = 1, n_elems = 1;
  bool staged = true;
  std::size_t x_offset = 0;  // bytes from the start of shared memory to the X tile
  std::size_t smem_bytes = 0;
};

// The plan of a pass over n rows: a function of the shape alone.
inline FusedPlan plan_fused(index_t n, index_t d, index_t k, int itemsize) {
  FusedPlan p;
  p.n_elems = (d + 1) * k + 1;
  p.n_groups = ceil_div(p.n_elems, kGroup);
  const std::size_t per_row_small = std::size_t(k + 1) * sizeof(double);  // dr (k) + lv
  const std::size_t per_row_staged = per_row_small + std::size_t(d) * itemsize;
  index_t rows = static_cast<index_t>(kTileBytes / per_row_staged);
  p.staged = rows >= 8;  // at least a row per warp, else stream the rows from global memory
  if (!p.staged) rows = static_cast<index_t>(kTileBytes / per_row_small);
  if (rows < 1) throw std::invalid_argument("too many outputs k for the CUDA fused pass");
  p.tile_rows = std::min<index_t>(rows, kMaxTileRows);
  const std::size_t small = std::size_t(p.tile_rows) * per_row_small;
  p.x_offset = (small + 15) / 16 * 16;
  p.smem_bytes = p.staged ? p.x_offset + std::size_t(p.tile_rows) * d * itemsize : small;
  if (p.smem_bytes > kSmemLimit) throw std::logic_error("fused plan exceeds shared memory");
  const index_t budget_blocks = std::max<index_t>(
      1, static_cast<index_t>(kPartialBudget / (sizeof(double) * std::size_t(p.n_elems))));
  const index_t max_blocks = std::min(kMaxBlocks, budget_blocks);
  const index_t nn = std::max<index_t>(n, 1);
  p.rows_per_block = ceil_div(ceil_div(nn, max_blocks), p.tile_rows) * p.tile_rows;
  p.n_blocks = ceil_div(nn, p.rows_per_block);
  return p;
}

template <class T>
struct FusedArgs {
  const T *__restrict__ X;  // (n, d), row stride ldx
  index_t n, d, ldx, k;
  const double *__restrict__ y;           // (n, k) or nullptr
  const double *__restrict__ sw;          // (n) or nullptr
  const std::int64_t *__restrict__ rows;  // (n) row indices (an SGD batch), or nullptr: 0..n-1
  const double *__restrict__ W;           // (d, k)
  const double *__restrict__ b;           // (k)
  double *__restrict__ partial;           // (n_elems, n_blocks)
  const int *stop;                        // a finished descent's flag, or nullptr
  FusedPlan plan;
};

template <class T>
__device__ inline index_t row_of(const FusedArgs<T> &a, index_t i) {
  return a.rows ? a.rows[i] : i;
}

// Copy rows [t0, t0 + m) of X into the shared tile (m, d), packed.
template <class T>
__device__ inline void stage_tile(const FusedArgs<T> &a, index_t t0, int m, T *xt) {
  const index_t d = a.d;
  if (!a.rows && a.ldx == d) {
    // Contiguous rows: one flat copy, 16 bytes a thread where the source allows.
    const T *src = a.X + t0 * d;
    const index_t count = index_t(m) * d;
    constexpr int kVec = 16 / sizeof(T);
    index_t head = 0;
    if ((reinterpret_cast<std::uintptr_t>(src) & 15) == 0) {
      const index_t n_vec = count / kVec;
      const int4 *s4 = reinterpret_cast<const int4 *>(src);
      int4 *d4 = reinterpret_cast<int4 *>(xt);
      for (index_t v = threadIdx.x; v < n_vec; v += blockDim.x) d4[v] = __ldg(s4 + v);
      head = n_vec * kVec;
    }
    for (index_t e = head + threadIdx.x; e < count; e += blockDim.x) xt[e] = src[e];
  } else {
    for (int r = 0; r < m; ++r) {
      const T *src = a.X + row_of(a, t0 + r) * a.ldx;
      for (index_t j = threadIdx.x; j < d; j += blockDim.x) xt[index_t(r) * d + j] = src[j];
    }
  }
}

template <class Loss, class T, bool Staged>
// At least 3 blocks an SM (85 registers): 64 spilled the accumulators, and 3
// tiles in flight per SM already cover the memory latency.
__global__ void __launch_bounds__(kFusedThreads, 3) fused_pass_kernel(const FusedArgs<T> a) {
  static_assert(Loss::kElementwise, "coupled losses need a row() phase: not written yet");
  if (a.stop && *a.stop) return;  // a descent that stopped: the queued steps are no-ops
  extern __shared__ __align__(16) unsigned char smem[];
  const FusedPlan &pl = a.plan;
  const index_t d = a.d, k = a.k, R = pl.tile_rows;
  double *dr = reinterpret_cast<double *>(smem);      // (R, k): w_i * dLoss/dp
  double *lv = dr + R * k;                            // (R): w_i * sum_q Loss::value
  T *xt = reinterpret_cast<T *>(smem + pl.x_offset);  // (R, d) when Staged
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  const int n_warps = blockDim.x / kWarp;

  // This thread's elements: e = group base + p * blockDim + thread.
  const index_t gk = d * k;
  int ej[kPerThread], eq[kPerThread];  // 32-bit: d and k are checked below 2^31 by the caller
  double acc[kPerThread];
#pragma unroll
  for (int p = 0; p < kPerThread; ++p) {
    const index_t e = blockIdx.y * kGroup + index_t(p) * blockDim.x + threadIdx.x;
    ej[p] = static_cast<int>(e < gk ? e / k : (e < gk + k ? d : d + 1));  // d: the 1s, d+1: loss
    eq[p] = static_cast<int>(e < gk ? e % k : (e < gk + k ? e - gk : 0));
    if (e >= pl.n_elems) ej[p] = -1;
    acc[p] = 0.0;
  }

  const index_t r_begin = blockIdx.x * pl.rows_per_block;
  const index_t r_end = min(a.n, r_begin + pl.rows_per_block);
  for (index_t t0 = r_begin; t0 < r_end; t0 += R) {
    const int m = static_cast<int>(min(R, r_end - t0));
    if (Staged) {
      stage_tile(a, t0, m, xt);
      __syncthreads();
    }
    // Phase 1: predictions, a warp per row; each output's dot product is the
    // lanes' sums over j = lane (mod 32), added in the butterfly.
    for (int r = warp; r < m; r += n_warps) {
      const index_t i = row_of(a, t0 + r);
      const T *x = Staged ? xt + index_t(r) * d : a.X + i * a.ldx;
      const double wi = a.sw ? a.sw[i] : 1.0;
      double row_value = 0.0;
      for (index_t q0 = 0; q0 < k; q0 += kOutBlock) {
        const int kb = static_cast<int>(min(index_t(kOutBlock), k - q0));
        double s[kOutBlock];
#pragma unroll
        for (int qq = 0; qq < kOutBlock; ++qq) s[qq] = 0.0;
        for (index_t j = lane; j < d; j += kWarp) {
          const double xv = static_cast<double>(x[j]);
          const double *wj = a.W + j * k + q0;
#pragma unroll
          for (int qq = 0; qq < kOutBlock; ++qq)
            if (qq < kb) s[qq] = fma(xv, __ldg(wj + qq), s[qq]);
        }
#pragma unroll
        for (int qq = 0; qq < kOutBlock; ++qq)
          if (qq < kb) s[qq] = warp_sum(s[qq]);
        if (lane == 0) {
#pragma unroll
          for (int qq = 0; qq < kOutBlock; ++qq) {
            if (qq < kb) {
              const index_t q = q0 + qq;
              const double pv = s[qq] + __ldg(a.b + q);
              const double yv = a.y ? a.y[i * k + q] : 0.0;
              dr[index_t(r) * k + q] = wi * Loss::derivative(pv, yv);
              row_value += Loss::value(pv, yv);
            }
          }
        }
      }
      if (lane == 0) lv[r] = wi * row_value;
    }
    __syncthreads();
    // Phase 2: each element adds the tile's rows in row order.
#pragma unroll
    for (int p = 0; p < kPerThread; ++p) {
      const index_t j = ej[p], q = eq[p];  // widened once per tile
      if (j < 0) continue;
      double s = acc[p];
      if (j < d) {
        for (int r = 0; r < m; ++r) {
          const T xv = Staged ? xt[index_t(r) * d + j] : a.X[row_of(a, t0 + r) * a.ldx + j];
          s = fma(static_cast<double>(xv), dr[index_t(r) * k + q], s);
        }
      } else if (j == d) {
        for (int r = 0; r < m; ++r) s += dr[index_t(r) * k + q];
      } else {
        for (int r = 0; r < m; ++r) s += lv[r];
      }
      acc[p] = s;
    }
    __syncthreads();  // the tile's shared memory is reused by the next tile
  }
#pragma unroll
  for (int p = 0; p < kPerThread; ++p) {
    if (ej[p] < 0) continue;
    const index_t e = blockIdx.y * kGroup + index_t(p) * blockDim.x + threadIdx.x;
    a.partial[e * pl.n_blocks + blockIdx.x] = acc[p];
  }
}

// Launch helpers (fused.cu), on the legacy default stream.
template <class Loss, class T>
void launch_fused_pass(const FusedArgs<T> &a);
// out[e] = scale * (the sum of partial[e, :] over the blocks, in block order), e < n_elems.
void launch_reduce_partials(const double *partial, const FusedPlan &plan, double scale, double *out,
                            const int *stop);

// The FusedArgs of a problem for a plan; W, b, partial, rows and stop are filled by the caller.
template <class T>
FusedArgs<T> fused_args(const DeviceData &data, const FusedPlan &plan) {
  FusedArgs<T> a{};
  a.X = static_cast<const T *>(data.X);
  a.n = data.n;
  a.d = data.d;
  a.ldx = data.ldx;
  a.k = data.k;
  a.y = data.y;
  a.sw = data.sw;
  a.plan = plan;
  return a;
}

// Runs f(T{}) with T the scalar type of X (float or double).
template <class F>
decltype(auto) dispatch_dtype(int itemsize, F &&f) {
  if (itemsize == 4) return f(float{});
  if (itemsize == 8) return f(double{});
  throw std::invalid_argument("X must be float32 or float64");
}

// Device memory owned by a scope (a call's workspace).
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(std::size_t nbytes) : p_(device_alloc(nbytes)) {}
  DeviceBuffer(const DeviceBuffer &) = delete;
  DeviceBuffer &operator=(const DeviceBuffer &) = delete;
  ~DeviceBuffer() { device_free(p_); }
  template <class U>
  U *as() const {
    return static_cast<U *>(p_);
  }

 private:
  void *p_ = nullptr;
};

}  // namespace cuda
}  // namespace fastlinreg
