// Float/double instantiations of mini-batch SGD.
#include "fastlinreg/sgd.hpp"

#include "fastlinreg/losses.hpp"

namespace fastlinreg {

template <class T>
SgdResult descend_sgd(const T *X, index_t n, index_t d, index_t ldx, const double *y, index_t k,
                      const double *sw, double weight_sum, const SgdParams &params, double *V,
                      double *c, double *loss_curve, const StopCheck &should_stop) {
  return descend_sgd_impl<SquaredLoss, T>(X, n, d, ldx, y, k, sw, weight_sum, params, V, c,
                                          loss_curve, should_stop);
}

template SgdResult descend_sgd<float>(const float *, index_t, index_t, index_t, const double *,
                                      index_t, const double *, double, const SgdParams &,
                                      double *, double *, double *, const StopCheck &);
template SgdResult descend_sgd<double>(const double *, index_t, index_t, index_t,
                                       const double *, index_t, const double *, double,
                                       const SgdParams &, double *, double *, double *,
                                       const StopCheck &);

}  // namespace fastlinreg
