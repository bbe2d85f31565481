// Device-side helpers shared by the cuda/ kernels: error checks, the
// deterministic warp and block sums, and index arithmetic.
//
// Determinism: every sum here has an order fixed by the launch shape, which
// the kernels derive from the problem shape alone. No floating-point atomics.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>

namespace fastlinreg {
namespace cuda {

using index_t = std::int64_t;

constexpr int kWarp = 32;

inline void check(cudaError_t err, const char *what) {
  if (err != cudaSuccess)
    throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(err));
}

// After a launch: configuration errors surface here, execution errors at the next sync.
inline void check_launch(const char *kernel) { check(cudaGetLastError(), kernel); }

#define FASTLINREG_CUDA_CHECK(call) ::fastlinreg::cuda::check((call), #call)

inline index_t ceil_div(index_t a, index_t b) { return (a + b - 1) / b; }

// The sum of v over the warp, in a fixed xor butterfly: every lane gets the
// same bits (IEEE addition commutes, and each level adds the same pairs).
__device__ inline double warp_sum(double v) {
#pragma unroll
  for (int o = kWarp / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// The sum of v over the block (blockDim.x a multiple of 32), returned to
// every thread: warp sums, then the warp sums in warp order. scratch holds
// at least 32 doubles of shared memory; the call begins with a barrier, so
// back-to-back calls may share it.
__device__ inline double block_sum(double v, double *scratch) {
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  const int n_warps = (blockDim.x + kWarp - 1) / kWarp;
  v = warp_sum(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  return warp_sum(lane < n_warps ? scratch[lane] : 0.0);
}

}  // namespace cuda
}  // namespace fastlinreg
