// The kernels' entry points (kernel_entries.inc), defined and explicitly
// instantiated for float and double X: the one translation unit that turns
// a LossKind into a policy.
//
// The multi-instruction-set build compiles this file once per instruction
// set (CMakeLists.txt), each time with FASTLINREG_ISA_NAMESPACE naming the
// namespace of everything it defines and FASTLINREG_ISA_TARGET the target
// pragma that applies to the kernels below it. The standard library is
// included first, outside the pragma, so its out-of-line code stays plain
// x86-64 and any copy the linker keeps runs on every CPU.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <mutex>
#include <numeric>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif
#if defined(FASTLINREG_HAVE_OPENMP)
#include <omp.h>
#endif

#include "fastlinreg/types.hpp"

#if defined(FASTLINREG_ISA_TARGET)
#define FASTLINREG_PRAGMA(x) _Pragma(#x)
#define FASTLINREG_TARGET(t) FASTLINREG_PRAGMA(GCC target(t))
#pragma GCC push_options
FASTLINREG_TARGET(FASTLINREG_ISA_TARGET)
#endif

#include "fastlinreg/descent.hpp"
#include "fastlinreg/fused.hpp"
#include "fastlinreg/gram.hpp"
#include "fastlinreg/hessian.hpp"
#include "fastlinreg/losses.hpp"
#include "fastlinreg/sgd.hpp"
#include "fastlinreg/stats.hpp"

namespace fastlinreg {
FASTLINREG_ISA_BEGIN

#include "fastlinreg/kernel_entries.inc"

namespace {

// The threads worth starting for a pass over `elements` values: a team costs
// microseconds, so tiny problems run on the calling thread alone.
int useful_threads(int n_threads, double elements, index_t max_parallel) {
  const int nt = resolve_threads(n_threads);
  if (elements < 32768.0) return 1;
  return static_cast<int>(std::max<index_t>(1, std::min<index_t>(nt, max_parallel)));
}

template <class Loss, class T>
StreamOracle<Loss, T> make_oracle(const DataView<T> &v) {
  return StreamOracle<Loss, T>(v.X, v.n, v.d, v.ldx, v.y, v.k, v.sw, v.weight_sum);
}

// Descent over a one-chunk, single-output problem with packed short rows,
// with d fixed at compile time: same steps as the general loop, in registers.
template <class Loss, class T, int D>
bool descend_small(const DataView<T> &v, const DescentParams &params, double *W, double *b,
                   double *loss_curve, const StopCheck &should_stop, DescentResult &res) {
  if constexpr (!Loss::kElementwise) {
    return false;  // SmallOracle runs the elementwise short-row kernel
  } else {
    if (!SmallOracle<Loss, T, D, false>::fits(v.n, v.d, v.ldx, v.k)) return false;
    const double work = double(v.n) * double(D);
    if (v.sw) {
      SmallOracle<Loss, T, D, true> oracle(v.X, v.n, v.y, v.sw, v.weight_sum);
      res = descend<decltype(oracle), D, 1>(oracle, params, W, b, loss_curve, 1, work, should_stop);
    } else {
      SmallOracle<Loss, T, D, false> oracle(v.X, v.n, v.y, v.sw, v.weight_sum);
      res = descend<decltype(oracle), D, 1>(oracle, params, W, b, loss_curve, 1, work, should_stop);
    }
    return true;
  }
}

}  // namespace

std::pair<index_t, index_t> chunk_plan(index_t n, index_t d, index_t k) {
  const ChunkPlan p = plan_chunks(n, d, k);
  return {p.n_chunks, p.rows_per_chunk};
}

int simd_lanes() { return kLanes; }
int default_threads() { return resolve_threads(0); }
bool built_with_openmp() { return has_openmp(); }

template <class T>
double fused_gradient(const DataView<T> &v, const double *W, const double *b, double *G, double *gb,
                      int n_threads) {
  return dispatch_loss(v.loss, [&](auto policy) {
    auto oracle = make_oracle<decltype(policy)>(v);
    const int nt = useful_threads(n_threads, oracle.work_per_pass(), oracle.n_chunks());
#pragma omp parallel num_threads(nt) if (nt > 1)
    oracle.partials(W, b);
    return oracle.reduce(G, gb);
  });
}

template <class T>
double fused_hessian(const DataView<T> &v, const double *W, const double *b, double *G, double *gb,
                     double *H, int n_threads) {
  return dispatch_loss(v.loss, [&](auto policy) {
    HessianPass<decltype(policy), T> pass(v);
    const double work = double(v.n) * double(v.d + 1) * double(v.d + 1) * double(v.k * v.k);
    const int nt = useful_threads(n_threads, work, pass.n_chunks());
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (index_t c = 0; c < pass.n_chunks(); ++c) pass.unit(c, W, b);
    return pass.reduce(G, gb, H);
  });
}

template <class T>
void linear_predict(const DataView<T> &v, const double *W, const double *b, double *P,
                    int n_threads) {
  const T *X = v.X;
  const index_t n = v.n, d = v.d, ldx = v.ldx, k = v.k;
  const int nt = useful_threads(n_threads, double(n) * double(d) * double(k), n);
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
  for (index_t i = 0; i < n; ++i) {
    const T *x = X + i * ldx;
    double *p = P + i * k;
    if (k == 1) {
      double acc = 0.0;
#pragma omp simd reduction(+ : acc)
      for (index_t j = 0; j < d; ++j) acc += double(x[j]) * W[j];
      p[0] = acc + b[0];
    } else {
      for (index_t q = 0; q < k; ++q) p[q] = b[q];
      for (index_t j = 0; j < d; ++j) {
        const double xj = double(x[j]);
        for (index_t q = 0; q < k; ++q) p[q] += xj * W[j * k + q];
      }
    }
  }
}

template <class T>
DescentResult descend_stream(const DataView<T> &v, const DescentParams &params, double *W,
                             double *b, double *loss_curve, int n_threads,
                             const StopCheck &should_stop) {
  return dispatch_loss(v.loss, [&](auto policy) {
    using Loss = decltype(policy);
    auto oracle = make_oracle<Loss>(v);
    const int nt = useful_threads(n_threads, oracle.work_per_pass(), oracle.n_chunks());
    DescentResult res;
    if (nt == 1) {
      // Tiny problems: the per-step bookkeeping is most of a step.
      if (v.d == 1 && descend_small<Loss, T, 1>(v, params, W, b, loss_curve, should_stop, res))
        return res;
      if (v.d == 2 && descend_small<Loss, T, 2>(v, params, W, b, loss_curve, should_stop, res))
        return res;
    }
    return descend(oracle, params, W, b, loss_curve, nt, oracle.work_per_pass(), should_stop);
  });
}

template <class T>
SgdResult descend_sgd(const DataView<T> &v, const SgdParams &params, double *W, double *b,
                      double *loss_curve, const StopCheck &should_stop) {
  return dispatch_loss(v.loss, [&](auto policy) {
    return detail::descend_sgd<decltype(policy), T>(v, params, W, b, loss_curve, should_stop);
  });
}

template <class T>
double curvature_stream(const DataView<T> &v, const DescentParams &params, int n_threads,
                        const StopCheck &should_stop) {
  return dispatch_loss(v.loss, [&](auto policy) {
    using Loss = decltype(policy);
    DataView<T> probe = v;
    probe.y = nullptr;  // the probe never reads y
    probe.k = 1;
    auto oracle = make_oracle<CurvatureProbe<Loss>>(probe);
    const int nt = useful_threads(n_threads, oracle.work_per_pass(), oracle.n_chunks());
    return top_curvature(oracle, params, nt, Loss::kCurvature, oracle.work_per_pass(), should_stop);
  });
}

template <class T>
double sufficient_stats(const DataView<T> &v, dsyrk_fn *syrk, int n_threads, double *mean_x,
                        double *mean_y, double *Cxx, double *Cxy, double *Cyy) {
  return stats_pass<T>(v.X, v.n, v.d, v.ldx, v.y, v.k, v.sw, syrk, n_threads, mean_x, mean_y, Cxx,
                       Cxy, Cyy);
}

template <class T>
double column_moments(const DataView<T> &v, int n_threads, double *mean, double *var) {
  return moments_pass<T>(v.X, v.n, v.d, v.ldx, v.sw, n_threads, mean, var);
}

DescentResult descend_gram(const GramView &s, const DescentParams &params, double *W, double *b,
                           double *loss_curve, int n_threads, const StopCheck &should_stop) {
  GramOracle oracle(s.d, s.k, s.weight_sum, s.mean_x, s.mean_y, s.Cxx, s.Cxy, s.Cyy);
  const double work = double(s.d) * double(s.d) * double(s.k);
  const int nt = useful_threads(n_threads, work, s.d);
  return descend(oracle, params, W, b, loss_curve, nt, work, should_stop);
}

double curvature_gram(const GramView &s, const DescentParams &params, int n_threads,
                      const StopCheck &should_stop) {
  GramOracle oracle(s.d, 1, s.weight_sum, s.mean_x, s.mean_y, s.Cxx, s.Cxy, s.Cyy,
                    /*zero_y=*/true);
  const int nt = useful_threads(n_threads, double(s.d) * double(s.d), s.d);
  return top_curvature(oracle, params, nt, SquaredLoss::kCurvature, double(s.d) * double(s.d),
                       should_stop);
}

FASTLINREG_INSTANTIATE(float)
FASTLINREG_INSTANTIATE(double)

FASTLINREG_ISA_END
}  // namespace fastlinreg

#if defined(FASTLINREG_ISA_TARGET)
#pragma GCC pop_options
#endif
