// OpenMP guard: the kernels compile and run single-threaded without OpenMP.
#pragma once

#if defined(FASTLINREG_HAVE_OPENMP)
#include <omp.h>
#else
inline int omp_get_thread_num() { return 0; }
inline int omp_get_num_threads() { return 1; }
inline int omp_get_max_threads() { return 1; }
inline void omp_set_num_threads(int) {}
#endif

namespace fastlinreg {

// True when the module was built with OpenMP.
constexpr bool has_openmp() {
#if defined(FASTLINREG_HAVE_OPENMP)
  return true;
#else
  return false;
#endif
}

// The thread count a call uses when the caller passes n_threads <= 0:
// omp_get_max_threads(), which OMP_NUM_THREADS and threadpoolctl both set.
inline int resolve_threads(int n_threads) {
  if (n_threads > 0) return n_threads;
  const int t = omp_get_max_threads();
  return t > 0 ? t : 1;
}

}  // namespace fastlinreg
