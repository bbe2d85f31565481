// The Newton pass: one read of X gives the loss, the gradient and the
// Hessian of the mean loss in the parameters [W.ravel() (d k), b (k)].
//
// With x~ = [x, 1] (d + 1) and D_i the loss's k x k second derivative in the
// row's predictions, the Hessian's ((j, q), (j', r)) entry (index j k + q,
// the intercepts at j = d) is
//   sum_i w_i x~_ij x~_ij' D_i[q, r] / sum_i w_i  =  A_qr[j, j'] / sum w,
// so the pass accumulates the k (k + 1) / 2 weighted Grams A_qr (q <= r,
// upper triangles) next to the fused sums. Rows are taken in blocks of
// kHessBlock: a block is converted to double once (x~ padded with zeros),
// then gives its predictions, the policy's value, derivative and D_i, the
// gradient, and each A_qr += X~^T diag(w D_qr) X~ from cache.
//
// Rows are split into chunks that depend on the shape only (at most
// kHessChunks, so that the chunks' Grams stay a few megabytes) and the chunk
// partials are added in chunk order: the bits never depend on the threads.
#pragma once

#include "fastlinreg/isa.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "fastlinreg/fused.hpp"
#include "fastlinreg/losses.hpp"
#include "fastlinreg/types.hpp"

namespace fastlinreg {
FASTLINREG_ISA_BEGIN

// The second derivative of a policy's row value in its k predictions p
// (D (k, k), row-major), given dp = d value / d p as row() wrote it.
template <class Loss>
struct SecondDerivative;

template <>
struct SecondDerivative<SquaredLoss> {
  static void row(const double *, const double *, index_t k, const double *, double *D) {
    for (index_t q = 0; q < k * k; ++q) D[q] = 0.0;
    for (index_t q = 0; q < k; ++q) D[q * k + q] = 1.0;
  }
};

// sigmoid(p) (1 - sigmoid(p)) per output, from dp = sigmoid(p) - y.
template <>
struct SecondDerivative<LogisticLoss> {
  static void row(const double *, const double *y, index_t k, const double *dp, double *D) {
    for (index_t q = 0; q < k * k; ++q) D[q] = 0.0;
    for (index_t q = 0; q < k; ++q) {
      const double s = dp[q] + (y ? y[q] : 0.0);
      D[q * k + q] = s * (1.0 - s);
    }
  }
};

// (sum y) (diag(s) - s s^T) with s the softmax, from dp = (sum y) s - y.
template <>
struct SecondDerivative<SoftmaxLoss> {
  static void row(const double *, const double *y, index_t k, const double *dp, double *D) {
    double sy = 0.0;
    for (index_t q = 0; q < k; ++q) sy += y ? y[q] : 0.0;
    if (sy == 0.0) {
      for (index_t q = 0; q < k * k; ++q) D[q] = 0.0;
      return;
    }
    for (index_t q = 0; q < k; ++q) {
      const double sq = (dp[q] + (y ? y[q] : 0.0)) / sy;
      for (index_t r = 0; r < k; ++r) {
        const double sr = (dp[r] + (y ? y[r] : 0.0)) / sy;
        D[q * k + r] = sy * ((q == r ? sq : 0.0) - sq * sr);
      }
    }
  }
};

namespace detail {

// Rows per block of the Newton pass.
constexpr index_t kHessBlock = 64;
// At most this many chunks (each holds k (k + 1) / 2 Grams of (d + 1)^2).
constexpr index_t kHessChunks = 16;

inline ChunkPlan plan_hessian_chunks(index_t n, index_t d, index_t k) {
  const index_t work = n * (d + 1) * (d + 1) * std::max<index_t>(1, k * (k + 1) / 2);
  index_t chunks = std::clamp<index_t>(work / (index_t(1) << 22), 1, kHessChunks);
  chunks = std::min<index_t>(chunks, std::max<index_t>(1, n / kHessBlock));
  index_t rows = (n + chunks - 1) / chunks;
  rows = std::max<index_t>(kHessBlock, (rows + kHessBlock - 1) / kHessBlock * kHessBlock);
  return {(n + rows - 1) / rows, rows};
}

// A[a, j] += sum_r Xb[r, a] w[r] Xb[r, j] for j >= a's lane group (the upper
// triangle and a few entries below it, which the assembly never reads).
// Xb: (m, ld) doubles; A: (e, ld), e = d + 1 rows in use. Two rows of A at a
// time against four vectors of columns: each load of Xb serves two FMAs.
inline void weighted_gram(const double *Xb, index_t m, index_t ld, index_t e, const double *w,
                          double *A) {
  constexpr int V = 4;  // vectors of columns per step
  for (index_t a = 0; a < e; a += 2) {
    const bool two = a + 1 < e;
    const index_t j0 = a / kLanes * kLanes;
    for (index_t j = j0; j < ld; j += V * kLanes) {
      const int nv = static_cast<int>(std::min<index_t>(V, (ld - j) / kLanes));
      vd acc0[V], acc1[V];
      for (int v = 0; v < nv; ++v) {
        acc0[v] = loadv<kLanes>(A + a * ld + j + v * kLanes);
        acc1[v] = two ? loadv<kLanes>(A + (a + 1) * ld + j + v * kLanes) : vd{};
      }
      for (index_t r = 0; r < m; ++r) {
        const double *x = Xb + r * ld;
        const double s0 = x[a] * w[r], s1 = two ? x[a + 1] * w[r] : 0.0;
        if (nv == V) {
          for (int v = 0; v < V; ++v) {
            const vd xv = loadv<kLanes>(x + j + v * kLanes);
            acc0[v] = acc0[v] + s0 * xv;
            acc1[v] = acc1[v] + s1 * xv;
          }
        } else {
          for (int v = 0; v < nv; ++v) {
            const vd xv = loadv<kLanes>(x + j + v * kLanes);
            acc0[v] = acc0[v] + s0 * xv;
            acc1[v] = acc1[v] + s1 * xv;
          }
        }
      }
      for (int v = 0; v < nv; ++v) {
        storev<kLanes>(A + a * ld + j + v * kLanes, acc0[v]);
        if (two) storev<kLanes>(A + (a + 1) * ld + j + v * kLanes, acc1[v]);
      }
    }
  }
}

}  // namespace detail

// The Newton pass over rows of X in memory (see the top of this file).
template <class Loss, class T>
class HessianPass {
 public:
  HessianPass(const DataView<T> &v)
      : v_(v),
        plan_(detail::plan_hessian_chunks(v.n, v.d, v.k)),
        e_(v.d + 1),
        ld_(padded_width(v.d + 1)),
        pairs_(v.k * (v.k + 1) / 2),
        slot_(pairs_ * e_ * ld_ + v.k * ld_ + v.k + 1),
        partial_(static_cast<size_t>(plan_.n_chunks * slot_)) {}

  index_t n_chunks() const { return plan_.n_chunks; }

  // The sums of chunk c into its partial: pairs_ Grams (e, ld), then the
  // gradient (k, ld: its column d is g_b), then the loss.
  void unit(index_t c, const double *W, const double *b) {
    using detail::loadv;
    using detail::storev;
    using detail::vd;
    const index_t d = v_.d, k = v_.k, ld = ld_;
    double *slot = partial_.data() + c * slot_;
    std::memset(slot, 0, sizeof(double) * static_cast<size_t>(slot_));
    double *A = slot, *Gt = slot + pairs_ * e_ * ld, *loss = Gt + k * ld;
    const index_t r0 = c * plan_.rows_per_chunk;
    const index_t r1 = std::min(v_.n, r0 + plan_.rows_per_chunk);
    std::vector<double> Xb(static_cast<size_t>(detail::kHessBlock * ld));
    std::vector<double> Wt(static_cast<size_t>(k * ld), 0.0);  // [W^T | b], padded
    for (index_t q = 0; q < k; ++q) {
      for (index_t j = 0; j < d; ++j) Wt[q * ld + j] = W[j * k + q];
      Wt[q * ld + d] = b[q];
    }
    std::vector<double> p(k), dp(k), D(k * k);
    std::vector<double> g(static_cast<size_t>(detail::kHessBlock * k));
    std::vector<double> wD(static_cast<size_t>(pairs_ * detail::kHessBlock));
    for (index_t i0 = r0; i0 < r1; i0 += detail::kHessBlock) {
      const index_t m = std::min(detail::kHessBlock, r1 - i0);
      for (index_t r = 0; r < m; ++r) {  // x~ in double, zeros past d + 1
        const T *x = v_.X + (i0 + r) * v_.ldx;
        double *row = Xb.data() + r * ld;
        for (index_t j = 0; j < d; ++j) row[j] = double(x[j]);
        row[d] = 1.0;
        for (index_t j = d + 1; j < ld; ++j) row[j] = 0.0;
      }
      for (index_t r = 0; r < m; ++r) {
        const double *row = Xb.data() + r * ld;
        for (index_t q = 0; q < k; ++q) {
          vd acc = {};
          for (index_t j = 0; j < ld; j += kLanes)
            acc = acc + loadv<kLanes>(row + j) * loadv<kLanes>(Wt.data() + q * ld + j);
          p[q] = detail::sum_lanes<kLanes>(acc);
        }
        const double *y = v_.y ? v_.y + (i0 + r) * k : nullptr;
        const double w = v_.sw ? v_.sw[i0 + r] : 1.0;
        *loss += w * Loss::row(p.data(), y, k, dp.data());
        SecondDerivative<Loss>::row(p.data(), y, k, dp.data(), D.data());
        for (index_t q = 0; q < k; ++q) g[r * k + q] = w * dp[q];
        index_t pair = 0;
        for (index_t q = 0; q < k; ++q)
          for (index_t s = q; s < k; ++s) wD[pair++ * detail::kHessBlock + r] = w * D[q * k + s];
      }
      for (index_t q = 0; q < k; ++q)  // gradient (column d: the intercept's)
        for (index_t j = 0; j < ld; j += kLanes) {
          vd gq = loadv<kLanes>(Gt + q * ld + j);
          for (index_t r = 0; r < m; ++r)
            gq = gq + loadv<kLanes>(Xb.data() + r * ld + j) * g[r * k + q];
          storev<kLanes>(Gt + q * ld + j, gq);
        }
      for (index_t pair = 0; pair < pairs_; ++pair)
        detail::weighted_gram(Xb.data(), m, ld, e_, wD.data() + pair * detail::kHessBlock,
                              A + pair * e_ * ld);
    }
  }

  // Sum the partials in chunk order; write the mean gradients G (d, k), gb
  // (k) and the Hessian H ((d + 1) k, (d + 1) k); return the mean loss.
  double reduce(double *G, double *gb, double *H) {
    std::vector<double> total(partial_.begin(), partial_.begin() + slot_);
    for (index_t c = 1; c < plan_.n_chunks; ++c) {
      const double *slot = partial_.data() + c * slot_;
      for (index_t j = 0; j < slot_; ++j) total[j] += slot[j];
    }
    const index_t d = v_.d, k = v_.k, ld = ld_, e = e_, size = e * k;
    const double inv = 1.0 / v_.weight_sum;
    const double *A = total.data(), *Gt = A + pairs_ * e * ld;
    for (index_t q = 0; q < k; ++q) {
      for (index_t j = 0; j < d; ++j) G[j * k + q] = Gt[q * ld + j] * inv;
      gb[q] = Gt[q * ld + d] * inv;
    }
    std::vector<index_t> pair_of(k * k);
    for (index_t q = 0, pair = 0; q < k; ++q)
      for (index_t s = q; s < k; ++s, ++pair) pair_of[q * k + s] = pair_of[s * k + q] = pair;
    for (index_t j = 0; j < e; ++j)
      for (index_t q = 0; q < k; ++q)
        for (index_t j2 = 0; j2 < e; ++j2)
          for (index_t s = 0; s < k; ++s) {
            const double *Aqs = A + pair_of[q * k + s] * e * ld;
            const double a = j <= j2 ? Aqs[j * ld + j2] : Aqs[j2 * ld + j];
            H[(j * k + q) * size + j2 * k + s] = a * inv;
          }
    return Gt[k * ld] * inv;
  }

 private:
  DataView<T> v_;
  ChunkPlan plan_;
  index_t e_, ld_, pairs_, slot_;
  std::vector<double> partial_;
};

FASTLINREG_ISA_END
}  // namespace fastlinreg
