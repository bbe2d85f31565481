// The CUDA runtime seen from the host API: device status (the lazy
// initialisation: nothing touches the driver before the first call here),
// memory, copies.
#include "api.hpp"
#include "common.cuh"

namespace fastlinreg {
namespace cuda {

DeviceStatus device_status() {
  DeviceStatus s;
  s.runtime_version = CUDART_VERSION;
  int driver = 0;
  if (cudaDriverGetVersion(&driver) == cudaSuccess) s.driver_version = driver;
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  s.error = static_cast<int>(err);
  s.error_name = cudaGetErrorName(err);
  s.message = cudaGetErrorString(err);
  if (err != cudaSuccess) {
    cudaGetLastError();  // clear the sticky-free error so later calls start clean
    return s;
  }
  s.device_count = count;
  if (count > 0) {
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess) {
      s.name = prop.name;
      s.cc_major = prop.major;
      s.cc_minor = prop.minor;
    }
  }
  return s;
}

void *device_alloc(std::size_t nbytes) {
  void *p = nullptr;
  if (nbytes == 0) return nullptr;
  FASTLINREG_CUDA_CHECK(cudaMalloc(&p, nbytes));
  return p;
}

void device_free(void *p) noexcept {
  if (p) cudaFree(p);
}

void copy_to_device(void *dst, const void *src, std::size_t nbytes) {
  if (nbytes) FASTLINREG_CUDA_CHECK(cudaMemcpy(dst, src, nbytes, cudaMemcpyHostToDevice));
}

void copy_to_host(void *dst, const void *src, std::size_t nbytes) {
  if (nbytes) FASTLINREG_CUDA_CHECK(cudaMemcpy(dst, src, nbytes, cudaMemcpyDeviceToHost));
}

void synchronize() { FASTLINREG_CUDA_CHECK(cudaDeviceSynchronize()); }

}  // namespace cuda
}  // namespace fastlinreg
