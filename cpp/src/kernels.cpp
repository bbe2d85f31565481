// Explicit float/double instantiations of the kernels, and loss dispatch.
#include "fastlinreg/kernels.hpp"


namespace fastlinreg {

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

}  // namespace

template <class T>
double fused_gradient(LossKind loss, const DataView<T> &v, const double *W, const double *b,
                      double *G, double *gb, int n_threads) {
  return dispatch_loss(loss, [&](auto policy) {
    auto oracle = make_oracle<decltype(policy)>(v);
    const int nt = useful_threads(n_threads, oracle.work_per_pass(), oracle.n_chunks());
#pragma omp parallel num_threads(nt) if (nt > 1)
    oracle.partials(W, b);
    return oracle.reduce(G, gb);
  });
}

template <class T>
void linear_predict(const T *X, index_t n, index_t d, index_t ldx, const double *W, const double *b,
                    index_t k, double *P, int n_threads) {
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
        const double v = double(x[j]);
        for (index_t q = 0; q < k; ++q) p[q] += v * W[j * k + q];
      }
    }
  }
}

// Descent over a one-chunk, single-output problem with packed short rows,
// with d fixed at compile time: same steps as the general loop, in registers.
template <class Loss, class T, int D>
bool descend_small(const DataView<T> &v, const DescentParams &params, double *V, double *c,
                   double *loss_curve, const StopCheck &should_stop, DescentResult &res) {
  if (!SmallOracle<Loss, T, D, false>::fits(v.n, v.d, v.ldx, v.k)) return false;
  const double work = double(v.n) * double(D);
  if (v.sw) {
    SmallOracle<Loss, T, D, true> oracle(v.X, v.n, v.y, v.sw, v.weight_sum);
    res = descend<decltype(oracle), D, 1>(oracle, params, V, c, loss_curve, 1, work, should_stop);
  } else {
    SmallOracle<Loss, T, D, false> oracle(v.X, v.n, v.y, v.sw, v.weight_sum);
    res = descend<decltype(oracle), D, 1>(oracle, params, V, c, loss_curve, 1, work, should_stop);
  }
  return true;
}

template <class T>
DescentResult descend_stream(LossKind loss, const DataView<T> &v, const DescentParams &params,
                             double *V, double *c, double *loss_curve, int n_threads,
                             const StopCheck &should_stop) {
  return dispatch_loss(loss, [&](auto policy) {
    using Loss = decltype(policy);
    auto oracle = make_oracle<Loss>(v);
    const int nt = useful_threads(n_threads, oracle.work_per_pass(), oracle.n_chunks());
    DescentResult res;
    if (nt == 1) {
      // Tiny problems: the per-step bookkeeping is most of a step.
      if (v.d == 1 && descend_small<Loss, T, 1>(v, params, V, c, loss_curve, should_stop, res))
        return res;
      if (v.d == 2 && descend_small<Loss, T, 2>(v, params, V, c, loss_curve, should_stop, res))
        return res;
    }
    return descend(oracle, params, V, c, loss_curve, nt, oracle.work_per_pass(), should_stop);
  });
}

DescentResult descend_gram(const GramView &s, const DescentParams &params, double *V, double *c,
                           double *loss_curve, int n_threads, const StopCheck &should_stop) {
  GramOracle oracle(s.d, s.k, s.weight_sum, s.mean_x, s.mean_y, s.Cxx, s.Cxy, s.Cyy);
  const double work = double(s.d) * double(s.d) * double(s.k);
  const int nt = useful_threads(n_threads, work, s.d);
  return descend(oracle, params, V, c, loss_curve, nt, work, should_stop);
}

template <class T>
double hessian_norm_stream(const DataView<T> &v, const DescentParams &params, int n_threads) {
  DataView<T> zero = v;
  zero.y = nullptr;  // power iteration needs the gradient with y = 0
  zero.k = 1;
  auto oracle = make_oracle<SquaredLoss>(zero);
  const int nt = useful_threads(n_threads, oracle.work_per_pass(), oracle.n_chunks());
  return hessian_norm(oracle, params, nt, 100, 1e-4);
}

double hessian_norm_gram(const GramView &s, const DescentParams &params, int n_threads) {
  GramOracle oracle(s.d, 1, s.weight_sum, s.mean_x, s.mean_y, s.Cxx, s.Cxy, s.Cyy,
                    /*zero_y=*/true);
  const int nt = useful_threads(n_threads, double(s.d) * double(s.d), s.d);
  return hessian_norm(oracle, params, nt, 100, 1e-4);
}

#define FASTLINREG_INSTANTIATE(T)                                                            \
  template double fused_gradient<T>(LossKind, const DataView<T> &, const double *,          \
                                    const double *, double *, double *, int);               \
  template DescentResult descend_stream<T>(LossKind, const DataView<T> &,                   \
                                           const DescentParams &, double *, double *,       \
                                           double *, int, const StopCheck &);               \
  template void linear_predict<T>(const T *, index_t, index_t, index_t, const double *,     \
                                  const double *, index_t, double *, int);                  \
  template double hessian_norm_stream<T>(const DataView<T> &, const DescentParams &, int);  \
  template double sufficient_stats<T>(const T *, index_t, index_t, index_t, const double *, \
                                      index_t, const double *, const BlasFunctions &, int,  \
                                      double *, double *, double *, double *, double *);    \
  template double column_moments<T>(const T *, index_t, index_t, index_t, const double *,   \
                                    int, double *, double *);
FASTLINREG_INSTANTIATE(float)
FASTLINREG_INSTANTIATE(double)
#undef FASTLINREG_INSTANTIATE

}  // namespace fastlinreg
