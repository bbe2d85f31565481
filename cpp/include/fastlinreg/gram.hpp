// Gradient oracle from sufficient statistics: the exact gradient and loss of
// the weighted mean squared error at (W, b), in O(d^2 k) without touching X.
//
// With m = b + mean_x^T W - mean_y (the mean residual, k):
//   G    = (Cxx W - Cxy) / weight_sum + mean_x m^T                   (d, k)
//   g_b  = m                                                          (k)
//   loss = sum_q [W_q^T Cxx W_q - 2 W_q^T Cxy_q + Cyy_qq] / (2 weight_sum) + |m|^2 / 2
// These are the same numbers the fused pass computes from X, so gradient
// descent on this oracle replays the streaming iterates.
#pragma once

#include "fastlinreg/isa.hpp"

#include <algorithm>
#include <vector>

#include "fastlinreg/fused.hpp"

namespace fastlinreg {
FASTLINREG_ISA_BEGIN

class GramOracle : public UnitPass<GramOracle> {
  friend class UnitPass<GramOracle>;

 public:
  // zero_y: act as if y = 0 (for the curvature's Lanczos passes on the Hessian).
  GramOracle(index_t d, index_t k, double weight_sum,
             const double *mean_x,  // (d)
             const double *mean_y,  // (k)
             const double *Cxx,     // (d, d)
             const double *Cxy,     // (d, k)
             const double *Cyy,     // (k, k)
             bool zero_y = false)
      : d_(d),
        k_(k),
        weight_sum_(weight_sum),
        mean_x_(mean_x),
        mean_y_(mean_y),
        Cxx_(Cxx),
        Cxy_(Cxy),
        Cyy_(Cyy),
        zero_y_(zero_y),
        E_(static_cast<size_t>(d * k)),
        W_(nullptr),
        b_(nullptr) {}

  index_t d() const { return d_; }
  index_t k() const { return k_; }

  // Record the model of the next pass (the pass protocol is UnitPass's).
  void prepare(const double *W, const double *b) {
    W_ = W;
    b_ = b;
  }

  double reduce(double *G, double *gb) const {
    const double inv = 1.0 / weight_sum_;
    double loss = 0.0;
    for (index_t q = 0; q < k_; ++q) {
      double m = b_[q] - (zero_y_ ? 0.0 : mean_y_[q]);
      for (index_t j = 0; j < d_; ++j) m += mean_x_[j] * W_[j * k_ + q];
      gb[q] = m;
      double quad = zero_y_ ? 0.0 : Cyy_[q * k_ + q];
      for (index_t j = 0; j < d_; ++j) {
        const double cxy = zero_y_ ? 0.0 : Cxy_[j * k_ + q];
        quad += W_[j * k_ + q] * (E_[j * k_ + q] - 2.0 * cxy);
        G[j * k_ + q] = (E_[j * k_ + q] - cxy) * inv + mean_x_[j] * m;
      }
      loss += 0.5 * quad * inv + 0.5 * m * m;
    }
    return loss;
  }

 private:
  static constexpr index_t kBlock = 32;  // four AVX-512 registers of accumulators
  // E = Cxx W. Cxx is symmetric, so E = sum_l Cxx[l, :]^T W[l, :]: axpys
  // over contiguous rows, vectorised without horizontal sums. Threads share
  // blocks of E's rows; each entry is summed over l in order whatever the
  // thread count.
  index_t n_units() const { return (d_ + kBlock - 1) / kBlock; }
  // Rows [32 blk, 32 blk + 32) of E.
  void unit(index_t blk) {
    const double *W = W_;
    const index_t j0 = blk * kBlock, j1 = std::min(d_, j0 + kBlock);
    double *E = E_.data();
    if (k_ == 1 && j1 - j0 == kBlock) {  // a full block: accumulators stay in registers
      double acc[kBlock] = {};
      for (index_t l = 0; l < d_; ++l) {
        const double *Cl = Cxx_ + l * d_ + j0;
        const double wl = W[l];
#pragma omp simd
        for (index_t j = 0; j < kBlock; ++j) acc[j] += Cl[j] * wl;
      }
      for (index_t j = 0; j < kBlock; ++j) E[j0 + j] = acc[j];
      return;
    }
    for (index_t j = j0 * k_; j < j1 * k_; ++j) E[j] = 0.0;
    for (index_t l = 0; l < d_; ++l) {
      const double *Cl = Cxx_ + l * d_;
      const double *Wl = W + l * k_;
      if (k_ == 1) {
        const double wl = Wl[0];
#pragma omp simd
        for (index_t j = j0; j < j1; ++j) E[j] += Cl[j] * wl;
      } else {
        for (index_t j = j0; j < j1; ++j)
          for (index_t q = 0; q < k_; ++q) E[j * k_ + q] += Cl[j] * Wl[q];
      }
    }
  }

  index_t d_, k_;
  double weight_sum_;
  const double *mean_x_, *mean_y_, *Cxx_, *Cxy_, *Cyy_;
  bool zero_y_;
  std::vector<double> E_;
  const double *W_;
  const double *b_;
};

FASTLINREG_ISA_END
}  // namespace fastlinreg
