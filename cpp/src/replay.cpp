// Gradient descent replayed in closed form (replay.hpp): H = Q diag(lambda) Q^T
// by cyclic Jacobi (p = d + 1 <= 65 here), then with r = 1 - eta lambda and
// u = Q^T grad_0 every quantity of step t is a sum over the p modes:
//   grad_t = Q (r^t u),  loss_t = loss_inf + 1/2 sum u^2 r^{2t} / lambda,
//   theta_T = theta_0 - Q diag((1 - r^T) / lambda) u.
#include "fastlinreg/replay.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace fastlinreg {

namespace {

constexpr double kEps = std::numeric_limits<double>::epsilon();
constexpr double kStabilityMargin = 1e-6;  // |1 - eta lambda| <= 1 - this
constexpr double kMaxCondition = 1e6;      // lambda_max / lambda_min
constexpr double kNormRoundings = 1e3;     // the loop's gradient rounding, in eps

// Eigenvalues (lam) and eigenvectors (columns of Q, p x p row-major) of the
// symmetric A (destroyed): cyclic Jacobi rotations to full accuracy.
void jacobi_eigen(std::vector<double> &A, index_t p, std::vector<double> &lam,
                  std::vector<double> &Q) {
  Q.assign(static_cast<size_t>(p * p), 0.0);
  for (index_t i = 0; i < p; ++i) Q[i * p + i] = 1.0;
  for (int sweep = 0; sweep < 60; ++sweep) {
    double off = 0.0, diag = 0.0;
    for (index_t i = 0; i < p; ++i) {
      diag += A[i * p + i] * A[i * p + i];
      for (index_t j = i + 1; j < p; ++j) off += A[i * p + j] * A[i * p + j];
    }
    if (off <= 1e-34 * diag || off == 0.0) break;
    for (index_t i = 0; i < p; ++i)
      for (index_t j = i + 1; j < p; ++j) {
        const double aij = A[i * p + j];
        if (aij == 0.0) continue;
        const double theta = (A[j * p + j] - A[i * p + i]) / (2.0 * aij);
        const double t = (theta >= 0 ? 1.0 : -1.0) / (std::fabs(theta) + std::hypot(1.0, theta));
        const double c = 1.0 / std::hypot(1.0, t), s = t * c;
        for (index_t k = 0; k < p; ++k) {  // A <- J^T A J, Q <- Q J
          const double aki = A[k * p + i], akj = A[k * p + j];
          A[k * p + i] = c * aki - s * akj;
          A[k * p + j] = s * aki + c * akj;
        }
        for (index_t k = 0; k < p; ++k) {
          const double aik = A[i * p + k], ajk = A[j * p + k];
          A[i * p + k] = c * aik - s * ajk;
          A[j * p + k] = s * aik + c * ajk;
        }
        for (index_t k = 0; k < p; ++k) {
          const double qki = Q[k * p + i], qkj = Q[k * p + j];
          Q[k * p + i] = c * qki - s * qkj;
          Q[k * p + j] = s * qki + c * qkj;
        }
      }
  }
  lam.resize(static_cast<size_t>(p));
  for (index_t i = 0; i < p; ++i) lam[i] = A[i * p + i];
}

// sum_i w[i] q[i]^t for t = t0 .. t0 + count - 1, into out: q^t = q^(64a) q^j
// with q^(64a) from pow and q^j (j < 64) from a table of products, so the
// rounding never builds up and no step waits on the one before.
class PowerSeries {
 public:
  static constexpr index_t kBlock = 64, kLanes = 8;
  PowerSeries(const std::vector<double> &q, const std::vector<double> &w)
      : q_(q), w_(w), table_(q.size() * kBlock), scaled_(q.size()) {
    for (size_t i = 0; i < q.size(); ++i) {
      table_[i * kBlock] = 1.0;
      for (index_t j = 1; j < kBlock; ++j)
        table_[i * kBlock + j] = table_[i * kBlock + j - 1] * q[i];
    }
  }
  // out[j] = base + sum_i w[i] q[i]^(t0 + j), j < count.
  void fill(index_t t0, index_t count, double base, double *out) {
    const size_t m = q_.size();
    std::vector<double> q64(m), power(m);
    for (size_t i = 0; i < m; ++i) q64[i] = table_[i * kBlock + kBlock - 1] * q_[i];
    for (index_t a = t0, block = 0; a < t0 + count; a += kBlock, ++block) {
      for (size_t i = 0; i < m; ++i) {  // q^a: pow every 64 blocks, products between
        power[i] = block % kBlock == 0 ? std::pow(q_[i], double(a)) : power[i] * q64[i];
        scaled_[i] = w_[i] * power[i];
      }
      // Eight entries at a time, summed over the modes in registers (out is
      // written once); the same additions, in the same order, as one by one.
      const index_t len = std::min(kBlock, t0 + count - a);
      for (index_t j0 = 0; j0 < len; j0 += kLanes) {
        double sum[kLanes];
        for (index_t l = 0; l < kLanes; ++l) sum[l] = base;
        for (size_t i = 0; i < m; ++i) {
          const double s = scaled_[i], *row = &table_[i * kBlock + j0];
          for (index_t l = 0; l < kLanes; ++l) sum[l] += s * row[l];
        }
        std::copy(sum, sum + std::min(kLanes, len - j0), out + (a - t0 + j0));
      }
    }
  }

 private:
  const std::vector<double> &q_, &w_;
  std::vector<double> table_, scaled_;
};

}  // namespace

DescentResult replay_descent(const GramView &s, const DescentParams &prm, double *W, double *b,
                             double *loss_curve) {
  DescentResult undecided;
  undecided.n_iter = -1;
  if (prm.positive || prm.alpha_per_output || prm.standardisation.shift ||
      prm.standardisation.scale || prm.max_iter < 1 || !(s.weight_sum > 0))
    return undecided;
  const index_t d = s.d, k = s.k, p = d + (prm.fit_intercept ? 1 : 0);
  const double eta = prm.learning_rate, ws = s.weight_sum;
  // H and g: the mean loss is 1/2 theta^T H theta - g^T theta + c, theta = [W; b].
  std::vector<double> H(static_cast<size_t>(p * p)), g(static_cast<size_t>(p * k)),
      theta(static_cast<size_t>(p * k));
  for (index_t i = 0; i < d; ++i) {
    for (index_t j = 0; j < d; ++j)
      H[i * p + j] = s.Cxx[i * d + j] / ws + s.mean_x[i] * s.mean_x[j];
    H[i * p + i] += prm.alpha;
    for (index_t q = 0; q < k; ++q) {
      g[i * k + q] = s.Cxy[i * k + q] / ws + s.mean_x[i] * s.mean_y[q];
      theta[i * k + q] = W[i * k + q];
    }
  }
  if (prm.fit_intercept) {
    for (index_t i = 0; i < d; ++i) H[i * p + d] = H[d * p + i] = s.mean_x[i];
    H[d * p + d] = 1.0;
    for (index_t q = 0; q < k; ++q) {
      g[d * k + q] = s.mean_y[q];
      theta[d * k + q] = b[q];
    }
  }
  // The start's gradient and loss, as the statistics give them (the gram
  // oracle's arithmetic), and the magnitudes they cancel.
  std::vector<double> grad(static_cast<size_t>(p * k));
  double quad = 0.0, lin = 0.0, yy = 0.0, gmag = 0.0, tmag = 0.0, n2 = 0.0;
  for (index_t q = 0; q < k; ++q) yy += s.Cyy[q * k + q] / ws + s.mean_y[q] * s.mean_y[q];
  for (index_t i = 0; i < p; ++i)
    for (index_t q = 0; q < k; ++q) {
      double Ht = 0.0;
      for (index_t j = 0; j < p; ++j) Ht += H[i * p + j] * theta[j * k + q];
      grad[i * k + q] = Ht - g[i * k + q];
      quad += theta[i * k + q] * Ht;
      lin += g[i * k + q] * theta[i * k + q];
      gmag += g[i * k + q] * g[i * k + q];
      tmag += theta[i * k + q] * theta[i * k + q];
      n2 += grad[i * k + q] * grad[i * k + q];
    }
  const double loss0 = 0.5 * quad - lin + 0.5 * yy;
  const double size = 0.5 * std::fabs(quad) + std::fabs(lin) + 0.5 * yy;
  if (!(std::isfinite(loss0) && loss0 > 1e-4 * size)) return undecided;

  std::vector<double> lam, Q, A = H;
  jacobi_eigen(A, p, lam, Q);
  const double hi = *std::max_element(lam.begin(), lam.end());
  const double lo = *std::min_element(lam.begin(), lam.end());
  if (!(hi > 0 && lo >= hi / kMaxCondition && eta * hi <= 2.0 * (1.0 - kStabilityMargin)))
    return undecided;
  // u = Q^T grad (p x k); the modes' rates, weights and the limit.
  std::vector<double> u(static_cast<size_t>(p * k)), rate(p), u2(p), coef(p);
  double excess = 0.0, newton2 = 0.0;
  for (index_t i = 0; i < p; ++i) {
    double s2 = 0.0;
    for (index_t q = 0; q < k; ++q) {
      double v = 0.0;
      for (index_t j = 0; j < p; ++j) v += Q[j * p + i] * grad[j * k + q];
      u[i * k + q] = v;
      s2 += v * v;
    }
    const double r = 1.0 - eta * lam[i];
    rate[i] = r * r;
    u2[i] = s2;
    coef[i] = 0.5 * s2 / lam[i];
    excess += coef[i];
    newton2 += s2 / (lam[i] * lam[i]);
  }
  const double loss_inf = loss0 - excess;
  if (!(loss_inf >= 1e-4 * size)) return undecided;  // the curve would be rounding

  DescentResult res;
  res.n_iter = prm.max_iter;
  res.status = DescentStatus::kMaxIter;
  if (prm.tol >= 0.0) {
    const double norm0 = std::sqrt(n2), target = prm.tol * norm0;
    if (std::sqrt(n2) <= target) {  // the loop's own test at t = 0
      res.n_iter = 1;
      res.status = DescentStatus::kConverged;
    } else {
      // The loop forms its gradient from residuals: its rounding is eps times
      // the magnitudes of g, H theta and the iterate's drift theta / eta.
      const double theta_mag = std::sqrt(tmag) + std::sqrt(newton2);
      const double window =
          kNormRoundings * kEps * (std::sqrt(gmag) + hi * theta_mag + theta_mag / eta) +
          1e-7 * target;
      // The first t with the gradient norm at or below target, a block at a time.
      PowerSeries norm(rate, u2);
      double block[PowerSeries::kBlock], before = std::sqrt(n2);
      index_t hit = -1;
      for (index_t t0 = 1; t0 < prm.max_iter && hit < 0; t0 += PowerSeries::kBlock) {
        const index_t len = std::min(PowerSeries::kBlock, prm.max_iter - t0);
        norm.fill(t0, len, 0.0, block);
        for (index_t j = 0; j < len; ++j) {
          const double now = std::sqrt(std::max(block[j], 0.0));
          if (now <= target) {
            if (now > target - window || before < target + window) return undecided;
            hit = t0 + j;
            break;
          }
          before = now;
        }
      }
      if (hit >= 0) {
        res.n_iter = hit + 1;
        res.status = DescentStatus::kConverged;
      } else if (before < target + window) {
        return undecided;
      }
    }
  }
  PowerSeries(rate, coef).fill(0, res.n_iter, loss_inf, loss_curve);
  loss_curve[0] = loss0;
  res.last_loss = loss_curve[res.n_iter - 1];
  // theta_n = theta_0 - Q diag((1 - r^n) / lambda) u
  const double n = double(res.n_iter);
  for (index_t i = 0; i < p; ++i) {
    const double x = eta * lam[i];
    const double top = x < 0.5 ? -std::expm1(n * std::log1p(-x)) : 1.0 - std::pow(1.0 - x, n);
    const double phi = top / lam[i];
    for (index_t j = 0; j < p; ++j)
      for (index_t q = 0; q < k; ++q) theta[j * k + q] -= Q[j * p + i] * phi * u[i * k + q];
  }
  for (index_t i = 0; i < d; ++i)
    for (index_t q = 0; q < k; ++q) W[i * k + q] = theta[i * k + q];
  for (index_t q = 0; q < k; ++q) b[q] = prm.fit_intercept ? theta[d * k + q] : 0.0;
  return res;
}

}  // namespace fastlinreg
