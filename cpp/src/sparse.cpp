// The kernels' entry points over CSR rows (kernels.hpp), explicitly
// instantiated for float/double values and int32/int64 indices.
#include <cstdint>
#include <stdexcept>

#include "fastlinreg/descent.hpp"
#include "fastlinreg/kernels.hpp"
#include "fastlinreg/losses.hpp"
#include "fastlinreg/sgd.hpp"
#include "fastlinreg/sparse.hpp"

namespace fastlinreg {

namespace {

// Threads worth starting for a pass over `values` stored values: a team
// costs microseconds, so small passes run on the calling thread alone.
int useful_threads(int n_threads, double values, index_t max_parallel) {
  const int nt = resolve_threads(n_threads);
  if (values < 32768.0) return 1;
  return static_cast<int>(std::max<index_t>(1, std::min<index_t>(nt, max_parallel)));
}

}  // namespace

template <class T, class I>
double fused_gradient(const CsrView<T, I> &v, const double *W, const double *b, double *G,
                      double *gb, int n_threads) {
  return dispatch_loss(v.loss, [&](auto policy) {
    CsrOracle<decltype(policy), T, I> oracle(v);
    const int nt = useful_threads(n_threads, oracle.work_per_pass(), oracle.n_chunks());
#pragma omp parallel num_threads(nt) if (nt > 1)
    oracle.partials(W, b);
    return oracle.reduce(G, gb);
  });
}

template <class T, class I>
void linear_predict(const CsrView<T, I> &v, const double *W, const double *b, double *P,
                    int n_threads) {
  const double values = double(v.indptr[v.n]) * double(v.k);
  csr_predict(v, W, b, P, useful_threads(n_threads, values, v.n));
}

template <class T, class I>
DescentResult descend_stream(const CsrView<T, I> &v, const DescentParams &params, double *W,
                             double *b, double *loss_curve, int n_threads,
                             const StopCheck &should_stop) {
  return dispatch_loss(v.loss, [&](auto policy) {
    CsrOracle<decltype(policy), T, I> oracle(v);
    const int nt = useful_threads(n_threads, oracle.work_per_pass(), oracle.n_chunks());
    return descend(oracle, params, W, b, loss_curve, nt, oracle.work_per_pass(), should_stop);
  });
}

template <class T, class I>
SgdResult descend_sgd(const CsrView<T, I> &v, const SgdParams &params, double *W, double *b,
                      double *loss_curve, const StopCheck &should_stop) {
  return dispatch_loss(v.loss, [&](auto policy) {
    CsrBatches<decltype(policy), T, I> batches(v);
    return detail::sgd_epochs(batches, v.n, v.d, v.k, params, W, b, loss_curve, should_stop);
  });
}

template <class T, class I>
double curvature_stream(const CsrView<T, I> &v, const DescentParams &params, int n_threads,
                        const StopCheck &should_stop) {
  return dispatch_loss(v.loss, [&](auto policy) {
    using Loss = decltype(policy);
    CsrView<T, I> probe = v;
    probe.y = nullptr;  // the probe never reads y
    probe.k = 1;
    CsrOracle<CurvatureProbe<Loss>, T, I> oracle(probe);
    const int nt = useful_threads(n_threads, oracle.work_per_pass(), oracle.n_chunks());
    return top_curvature(oracle, params, nt, Loss::kCurvature, oracle.work_per_pass(), should_stop);
  });
}

template <class T, class I>
double sufficient_stats(const CsrView<T, I> &v, dsyrk_fn *syrk, int n_threads, double *mean_x,
                        double *mean_y, double *Cxx, double *Cxy, double *Cyy) {
  if (syrk) throw std::invalid_argument("a BLAS rank update does not apply to sparse rows");
  // Threads take whole slices of rows (sparse_gram.hpp), a few at most.
  const double row_nnz = double(v.indptr[v.n]) / double(std::max<index_t>(1, v.n));
  const double pairs = double(v.indptr[v.n]) * row_nnz;
  const int nt = useful_threads(n_threads, pairs, detail::kGramSlices);
  return csr_stats(v, nt, mean_x, mean_y, Cxx, Cxy, Cyy);
}

template <class T, class I>
double column_moments(const CsrView<T, I> &v, int, double *mean, double *var) {
  return csr_column_moments(v, mean, var);
}

// The one list of instantiations.
#define FASTLINREG_INSTANTIATE_CSR(T, I)                                                      \
  template double fused_gradient<T, I>(const CsrView<T, I> &, const double *, const double *, \
                                       double *, double *, int);                              \
  template void linear_predict<T, I>(const CsrView<T, I> &, const double *, const double *,   \
                                     double *, int);                                          \
  template DescentResult descend_stream<T, I>(const CsrView<T, I> &, const DescentParams &,   \
                                              double *, double *, double *, int,              \
                                              const StopCheck &);                             \
  template SgdResult descend_sgd<T, I>(const CsrView<T, I> &, const SgdParams &, double *,    \
                                       double *, double *, const StopCheck &);                \
  template double curvature_stream<T, I>(const CsrView<T, I> &, const DescentParams &, int,   \
                                         const StopCheck &);                                  \
  template double sufficient_stats<T, I>(const CsrView<T, I> &, dsyrk_fn *, int, double *,    \
                                         double *, double *, double *, double *);             \
  template double column_moments<T, I>(const CsrView<T, I> &, int, double *, double *);
FASTLINREG_INSTANTIATE_CSR(float, std::int32_t)
FASTLINREG_INSTANTIATE_CSR(float, std::int64_t)
FASTLINREG_INSTANTIATE_CSR(double, std::int32_t)
FASTLINREG_INSTANTIATE_CSR(double, std::int64_t)
#undef FASTLINREG_INSTANTIATE_CSR

}  // namespace fastlinreg
