// The public entry points of kernels.hpp: each forwards to the compilation of
// kernels.cpp for the best instruction set this CPU has, chosen once.
//
// The multi-instruction-set build (FASTLINREG_MULTI_ISA, x86-64 with GCC or
// Clang) holds three: x86-64-v2 (SSE4.2, 2 lanes), AVX2 + FMA (4 lanes) and
// AVX-512 (8 lanes). The environment variable FASTLINREG_ISA
// ("x86-64-v2", "avx2" or "avx512") lowers the choice, never raises it past
// what the CPU reports: for comparing the paths on one machine. A
// single-target build holds one, isa_single.
#include <cstdlib>
#include <cstring>
#include <utility>

#include "fastlinreg/kernels.hpp"

namespace fastlinreg {

#if defined(FASTLINREG_MULTI_ISA)
namespace isa_v2 {
#include "fastlinreg/kernel_entries.inc"
}
namespace isa_avx2 {
#include "fastlinreg/kernel_entries.inc"
}
namespace isa_avx512 {
#include "fastlinreg/kernel_entries.inc"
}
#else
namespace isa_single {
#include "fastlinreg/kernel_entries.inc"
}
#endif

namespace {

enum class Isa : int { kV2 = 0, kAvx2 = 1, kAvx512 = 2, kNative = 3 };

#if defined(FASTLINREG_MULTI_ISA)
constexpr const char *kNames[] = {"x86-64-v2", "avx2", "avx512"};

Isa best_supported() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    return Isa::kAvx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::kAvx2;
  return Isa::kV2;
}

Isa choose() {
  const Isa best = best_supported();
  const char *asked = std::getenv("FASTLINREG_ISA");
  if (asked == nullptr) return best;
  for (int i = 0; i < 3; ++i)
    if (std::strcmp(asked, kNames[i]) == 0) return static_cast<Isa>(std::min(i, int(best)));
  return best;  // an unknown name changes nothing; active_isa() shows what runs
}
#else
Isa choose() { return Isa::kNative; }
#endif

const Isa kActive = choose();

}  // namespace

#if defined(FASTLINREG_MULTI_ISA)
#define FASTLINREG_CALL(fn, ...)          \
  switch (kActive) {                      \
    case Isa::kAvx512:                    \
      return isa_avx512::fn(__VA_ARGS__); \
    case Isa::kAvx2:                      \
      return isa_avx2::fn(__VA_ARGS__);   \
    default:                              \
      return isa_v2::fn(__VA_ARGS__);     \
  }
#else
#define FASTLINREG_CALL(fn, ...) return isa_single::fn(__VA_ARGS__);
#endif

const char *active_isa() {
#if defined(FASTLINREG_MULTI_ISA)
  return kNames[static_cast<int>(kActive)];
#else
  return "native";
#endif
}

const char *compiled_isas() {
#if defined(FASTLINREG_MULTI_ISA)
  return "avx512,avx2,x86-64-v2";
#else
  return "native";
#endif
}

std::pair<index_t, index_t> chunk_plan(index_t n, index_t d, index_t k) {
  FASTLINREG_CALL(chunk_plan, n, d, k)
}
int simd_lanes() { FASTLINREG_CALL(simd_lanes) }
int default_threads() { FASTLINREG_CALL(default_threads) }
bool built_with_openmp() { FASTLINREG_CALL(built_with_openmp) }

template <class T>
double fused_gradient(const DataView<T> &data, const double *W, const double *b, double *G,
                      double *gb, int n_threads) {
  FASTLINREG_CALL(fused_gradient<T>, data, W, b, G, gb, n_threads)
}

template <class T>
double fused_hessian(const DataView<T> &data, const double *W, const double *b, double *G,
                     double *gb, double *H, int n_threads) {
  FASTLINREG_CALL(fused_hessian<T>, data, W, b, G, gb, H, n_threads)
}

template <class T>
void linear_predict(const DataView<T> &data, const double *W, const double *b, double *P,
                    int n_threads) {
  FASTLINREG_CALL(linear_predict<T>, data, W, b, P, n_threads)
}

template <class T>
DescentResult descend_stream(const DataView<T> &data, const DescentParams &params, double *W,
                             double *b, double *loss_curve, int n_threads,
                             const StopCheck &should_stop) {
  FASTLINREG_CALL(descend_stream<T>, data, params, W, b, loss_curve, n_threads, should_stop)
}

template <class T>
SgdResult descend_sgd(const DataView<T> &data, const SgdParams &params, double *W, double *b,
                      double *loss_curve, const StopCheck &should_stop) {
  FASTLINREG_CALL(descend_sgd<T>, data, params, W, b, loss_curve, should_stop)
}

template <class T>
double curvature_stream(const DataView<T> &data, const DescentParams &params, int n_threads,
                        const StopCheck &should_stop) {
  FASTLINREG_CALL(curvature_stream<T>, data, params, n_threads, should_stop)
}

template <class T>
double sufficient_stats(const DataView<T> &data, dsyrk_fn *syrk, int n_threads, double *mean_x,
                        double *mean_y, double *Cxx, double *Cxy, double *Cyy) {
  FASTLINREG_CALL(sufficient_stats<T>, data, syrk, n_threads, mean_x, mean_y, Cxx, Cxy, Cyy)
}

template <class T>
double column_moments(const DataView<T> &data, int n_threads, double *mean, double *var) {
  FASTLINREG_CALL(column_moments<T>, data, n_threads, mean, var)
}

DescentResult descend_gram(const GramView &stats, const DescentParams &params, double *W, double *b,
                           double *loss_curve, int n_threads, const StopCheck &should_stop) {
  FASTLINREG_CALL(descend_gram, stats, params, W, b, loss_curve, n_threads, should_stop)
}

double curvature_gram(const GramView &stats, const DescentParams &params, int n_threads,
                      const StopCheck &should_stop) {
  FASTLINREG_CALL(curvature_gram, stats, params, n_threads, should_stop)
}

FASTLINREG_INSTANTIATE(float)
FASTLINREG_INSTANTIATE(double)

}  // namespace fastlinreg
