// Mini-batch stochastic gradient descent with the fused pass on each batch.
//
// An epoch visits every row once, in an order drawn by a seeded generator
// (or in order without shuffling), in batches of batch_size rows. Each batch
// is gathered into a small buffer that stays in cache and handed to the same
// fused pass as full-batch descent, so one kernel body serves both. The
// batch gradient is normalised by batch_rows * (weight_sum / n), which makes
// it an unbiased estimate of the full weighted gradient. Steps follow
//   eta_e = eta0 / sqrt(1 + e),   e = epochs done before this one,
// in the same (possibly standardised) parametrisation as descend().
// The whole run is a function of (data, seed, params): bitwise reproducible.
#pragma once

#include "fastlinreg/isa.hpp"

#include <cmath>
#include <cstdint>
#include <numeric>
#include <vector>

#include "fastlinreg/descent.hpp"
#include "fastlinreg/fused.hpp"
#include "fastlinreg/types.hpp"

namespace fastlinreg {
FASTLINREG_ISA_BEGIN

namespace detail {

// splitmix64: a small, well-mixed generator; the stream is fixed by the seed.
struct SplitMix64 {
  std::uint64_t state;
  std::uint64_t next() {
    std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, bound), without modulo bias (Lemire's method).
  std::uint64_t below(std::uint64_t bound) {
    while (true) {
      const unsigned __int128 m = static_cast<unsigned __int128>(next()) * bound;
      const auto low = static_cast<std::uint64_t>(m);
      if (low >= bound || low >= (-bound) % bound) return static_cast<std::uint64_t>(m >> 64);
    }
  }
};

}  // namespace detail

namespace detail {

// SGD's divergence rule (GrowthWatch): 3 rising epochs in a row that at
// least double the loss and add 1e-3 of the first epoch's loss.
constexpr index_t kSgdRises = 3;
constexpr double kSgdMargin = 1e-3;

// Batches of dense rows: each is gathered into a small buffer that stays in
// cache and handed to the fused pass of full-batch descent.
template <class Loss, class T>
class DenseBatches {
 public:
  DenseBatches(const DataView<T> &data, index_t B)
      : data_(data),
        Xb_(static_cast<size_t>(B * data.d)),
        yb_(static_cast<size_t>(B * data.k)),
        swb_(data.sw ? static_cast<size_t>(B) : 0),
        mean_w_(data.weight_sum / double(data.n)),
        full_(make(B)),
        last_(make(data.n % B > 0 ? data.n % B : B)),
        B_(B) {}

  // The fused pass over rows[0:count] (count <= B): the mean loss; G (d, k)
  // and gb (k) get the mean gradients at (W, b).
  double gradient(const index_t *rows, index_t count, const double *W, const double *b, double *G,
                  double *gb) {
    const index_t d = data_.d, k = data_.k, ldx = data_.ldx;
    for (index_t r = 0; r < count; ++r) {
      const index_t i = rows[r];
      std::copy(data_.X + i * ldx, data_.X + i * ldx + d, Xb_.data() + r * d);
      std::copy(data_.y + i * k, data_.y + i * k + k, yb_.data() + r * k);
      if (data_.sw) swb_[r] = data_.sw[i];
    }
    StreamOracle<Loss, T> &oracle = count == B_ ? full_ : last_;
    oracle.partials(W, b);
    return oracle.reduce(G, gb);
  }

 private:
  StreamOracle<Loss, T> make(index_t rows) {
    return StreamOracle<Loss, T>(Xb_.data(), rows, data_.d, data_.d, yb_.data(), data_.k,
                                 data_.sw ? swb_.data() : nullptr, double(rows) * mean_w_);
  }

  const DataView<T> &data_;
  std::vector<T> Xb_;
  std::vector<double> yb_, swb_;
  double mean_w_;
  StreamOracle<Loss, T> full_, last_;
  index_t B_;
};

// The SGD epochs over a batch source (DenseBatches, or CsrBatches in
// sparse.hpp): batches.gradient(rows, count, W, b, G, gb) -> mean loss.
// W (d, k) and b (k) hold the model to start from on entry and the last
// iterate on exit; loss_curve has max_epochs slots.
template <class Batches>
SgdResult sgd_epochs(Batches &batches, index_t n, index_t d, index_t k, const SgdParams &p,
                     double *W_io, double *b_io, double *loss_curve, const StopCheck &should_stop) {
  const index_t B = std::max<index_t>(1, std::min(p.batch_size, n));
  const detail::ParamMap st(d, k, p.standardisation, p.fit_intercept);
  std::vector<double> W(static_cast<size_t>(d * k)), b(static_cast<size_t>(k)),
      G(static_cast<size_t>(d * k)), gb(static_cast<size_t>(k));
  std::vector<double> Vs(static_cast<size_t>(d * k)), cs(static_cast<size_t>(k));
  double *V = Vs.data(), *c = cs.data();
  st.from_model(W_io, b_io, V, c);
  if (p.positive) detail::project_nonnegative(V, d * k);
  SgdResult res;
  res.best_loss = p.best_loss;
  res.no_improvement = p.no_improvement;
  res.ref_loss = p.ref_loss;
  auto finish = [&](DescentStatus status) {
    res.status = status;
    st.to_model(V, c, W_io, b_io);
    return res;
  };
  std::vector<index_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), index_t(0));
  detail::SplitMix64 rng{p.seed ^ (0xD1B54A32D192ED03ull * std::uint64_t(p.epoch_offset + 1))};

  GrowthWatch growth;
  const double per_check = double(index_t(1) << 25);
  double work = 0.0;
  for (index_t e = 0; e < p.max_epochs; ++e) {
    if (p.shuffle)
      for (index_t i = n - 1; i > 0; --i)
        std::swap(order[i], order[rng.below(static_cast<std::uint64_t>(i + 1))]);
    const double eta = p.eta0 / std::sqrt(1.0 + double(p.epoch_offset + e));
    double epoch_loss = 0.0;
    bool finite = true;
    for (index_t s = 0; s < n && finite; s += B) {
      const index_t rows = std::min(B, n - s);
      st.to_model(V, c, W.data(), b.data());
      double loss =
          batches.gradient(order.data() + s, rows, W.data(), b.data(), G.data(), gb.data());
      if (p.alpha != 0.0 || p.alpha_per_output)
        loss += detail::l2_penalty(W.data(), d, k, p.alpha, p.alpha_per_output);
      st.to_descended_norm2(G.data(), gb.data(), W.data(), p.alpha, p.alpha_per_output);
      if (!std::isfinite(loss)) {
        finite = false;
        break;
      }
      epoch_loss += loss * double(rows);
      for (index_t j = 0; j < d * k; ++j) V[j] -= eta * G[j];
      if (p.positive) detail::project_nonnegative(V, d * k);
      if (p.fit_intercept)
        for (index_t q = 0; q < k; ++q) c[q] -= eta * gb[q];
      work += double(rows) * double(d) * double(k);
      if (should_stop && work >= per_check) {
        work = 0.0;
        if (should_stop(e, loss)) return finish(DescentStatus::kInterrupted);
      }
    }
    epoch_loss /= double(n);
    if (!finite || !std::isfinite(epoch_loss)) return finish(DescentStatus::kDiverged);
    loss_curve[e] = epoch_loss;
    res.n_epochs = e + 1;
    if (!(res.ref_loss > 0.0)) res.ref_loss = epoch_loss;
    // Epoch losses are noisy, but not three rises in a row that double the
    // loss: that is a step too large, whatever the decaying schedule may
    // later bring back (within one call; partial_fit's chunks differ).
    if (growth.grew(epoch_loss, kSgdRises, kSgdMargin * res.ref_loss, 1.0))
      return finish(DescentStatus::kDiverged);
    // scikit-learn's SGD rule, with tol relative to the first epoch's loss
    // (as gradient descent's tol is relative to its first gradient): an epoch
    // that does not beat the best loss by tol * ref_loss counts as no
    // improvement; n_iter_no_change of them in a row stop.
    if (p.tol >= 0.0) {
      const double margin = p.tol * res.ref_loss;
      res.no_improvement = epoch_loss > res.best_loss - margin ? res.no_improvement + 1 : 0;
      if (res.no_improvement >= p.n_iter_no_change) {
        res.best_loss = std::min(res.best_loss, epoch_loss);
        return finish(DescentStatus::kConverged);
      }
    }
    res.best_loss = std::min(res.best_loss, epoch_loss);
  }
  return finish(DescentStatus::kMaxIter);
}

template <class Loss, class T>
SgdResult descend_sgd(const DataView<T> &data, const SgdParams &p, double *W_io, double *b_io,
                      double *loss_curve, const StopCheck &should_stop) {
  const index_t B = std::max<index_t>(1, std::min(p.batch_size, data.n));
  DenseBatches<Loss, T> batches(data, B);
  return sgd_epochs(batches, data.n, data.d, data.k, p, W_io, b_io, loss_curve, should_stop);
}

}  // namespace detail

FASTLINREG_ISA_END
}  // namespace fastlinreg
