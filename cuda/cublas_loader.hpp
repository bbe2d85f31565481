// cuBLAS, opened at run time with dlopen: the module links no cuBLAS, so it
// builds where the toolkit has none (this project's CI) and imports where the
// library is missing; the functions below are declared with cuBLAS's C ABI
// (handles are pointers, enums are ints: CUBLAS_FILL_MODE_LOWER = 0,
// CUBLAS_OP_N = 0, CUBLAS_STATUS_SUCCESS = 0).
#pragma once

#include <string>
#include <vector>

namespace fastlinreg {
namespace cuda {

struct CublasApi {
  using Handle = void *;
  int (*create)(Handle *);
  int (*destroy)(Handle);
  int (*set_stream)(Handle, void *);
  int (*dsyrk)(Handle, int uplo, int trans, int n, int k, const double *alpha, const double *A,
               int lda, const double *beta, double *C, int ldc);
  Handle handle;  // one per process, on the legacy default stream
};

constexpr int kCublasFillLower = 0;
constexpr int kCublasOpN = 0;

// The loaded API with its handle, or nullptr before a successful load_cublas().
const CublasApi *cublas_api();

}  // namespace cuda
}  // namespace fastlinreg
