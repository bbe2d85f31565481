// Predictions P = X W + b on the device, accumulated in double.
#include "fused.cuh"

namespace fastlinreg {
namespace cuda {

namespace {

constexpr int kPredictThreads = 256;

// A warp per row; outputs in sweeps of kOutBlock, each a fixed butterfly.
template <class T>
__global__ void __launch_bounds__(kPredictThreads)
    predict_kernel(const T *__restrict__ X, index_t n, index_t d, index_t ldx,
                   const double *__restrict__ W, const double *__restrict__ b, index_t k,
                   double *__restrict__ P) {
  const int lane = threadIdx.x % kWarp;
  const index_t warps = index_t(gridDim.x) * (blockDim.x / kWarp);
  for (index_t i = index_t(blockIdx.x) * (blockDim.x / kWarp) + threadIdx.x / kWarp; i < n;
       i += warps) {
    const T *x = X + i * ldx;
    for (index_t q0 = 0; q0 < k; q0 += kOutBlock) {
      const int kb = static_cast<int>(min(index_t(kOutBlock), k - q0));
      double s[kOutBlock] = {};
      for (index_t j = lane; j < d; j += kWarp) {
        const double xv = static_cast<double>(x[j]);
#pragma unroll
        for (int qq = 0; qq < kOutBlock; ++qq)
          if (qq < kb) s[qq] = fma(xv, __ldg(W + j * k + q0 + qq), s[qq]);
      }
#pragma unroll
      for (int qq = 0; qq < kOutBlock; ++qq)
        if (qq < kb) s[qq] = warp_sum(s[qq]);
      if (lane < kb) {
        double v = s[0];
#pragma unroll
        for (int qq = 1; qq < kOutBlock; ++qq)
          if (lane == qq) v = s[qq];
        P[i * k + q0 + lane] = v + b[q0 + lane];
      }
    }
  }
}

}  // namespace

template <class T>
void launch_predict(const T *X, index_t n, index_t d, index_t ldx, const double *W, const double *b,
                    index_t k, double *P) {
  const index_t warps = kPredictThreads / kWarp;
  const auto blocks = static_cast<unsigned>(std::min<index_t>(ceil_div(n, warps), 65535));
  predict_kernel<T><<<blocks, kPredictThreads>>>(X, n, d, ldx, W, b, k, P);
  check_launch("predict_kernel");
}

void predict(const DeviceData &data, const double *W, const double *b, double *P) {
  if (data.n == 0) return;
  const index_t d = data.d, k = data.k;
  DeviceBuffer model(sizeof(double) * std::size_t(d * k + k));
  double *Wd = model.as<double>(), *bd = Wd + d * k;
  copy_to_device(Wd, W, sizeof(double) * std::size_t(d * k));
  copy_to_device(bd, b, sizeof(double) * std::size_t(k));
  dispatch_dtype(data.itemsize, [&](auto scalar) {
    using T = decltype(scalar);
    launch_predict<T>(static_cast<const T *>(data.X), data.n, d, data.ldx, Wd, bd, k, P);
  });
  synchronize();  // the model buffer is freed on return
}

}  // namespace cuda
}  // namespace fastlinreg
