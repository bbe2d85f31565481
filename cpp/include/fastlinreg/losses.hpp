// Loss policies: one fused kernel body serves every loss.
//
// A policy maps a row's k predictions p (the linear model x^T W + b) and its
// k targets y to the row's loss value and the loss's derivative with respect
// to each prediction:
//   row(p, y, k, dp) -> value,   dp[q] = d value / d p[q]      (k each)
// The kernels never know which loss they run. A policy whose outputs do not
// couple (each value depends on p[q], y[q] alone) says so with
// kElementwise = true and also offers the scalar value(p, y) and
// derivative(p, y): the vectorised kernels apply those lane by lane. A
// coupled loss (softmax) supplies row() only.
//
// kCurvature bounds the second derivative of value in p (the largest
// eigenvalue of its k x k Hessian): the loss's Hessian in W is then at most
// kCurvature * X^T X / n, which sets the automatic step 1/L.
//
// Every function is usable from host and device code, so a CUDA kernel runs
// the same policy as the C++ one.
//
// Adding a loss: write its policy here, give it a LossKind, and add one case
// to dispatch_loss(). Nothing else in the kernels changes.
#pragma once

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "fastlinreg/isa.hpp"

#if defined(__CUDACC__)
#define FASTLINREG_HD __host__ __device__
#else
#define FASTLINREG_HD
#endif

namespace fastlinreg {

// Which loss a call runs: the value Python passes (fastlinreg._losses).
enum class LossKind : int { kSquared = 0, kLogistic = 1, kSoftmax = 2 };

FASTLINREG_ISA_BEGIN

// Squared error: value = (p - y)^2 / 2, derivative = p - y.
// The descent loss sum(value) / n is the tutorial's cost sum((Xw+b-y)^2) / (2n).
struct SquaredLoss {
  static constexpr LossKind kind = LossKind::kSquared;
  static constexpr const char *name = "squared";
  static constexpr bool kElementwise = true;
  static constexpr double kCurvature = 1.0;

  FASTLINREG_HD static inline double derivative(double p, double y) { return p - y; }
  FASTLINREG_HD static inline double value(double p, double y) {
    const double r = p - y;
    return 0.5 * r * r;
  }
  FASTLINREG_HD static inline double row(const double *p, const double *y, std::int64_t k,
                                         double *dp) {
    double v = 0.0;
    for (std::int64_t q = 0; q < k; ++q) {
      const double yq = y ? y[q] : 0.0;
      dp[q] = derivative(p[q], yq);
      v += value(p[q], yq);
    }
    return v;
  }
};

// Binary logistic loss on the logit p, y in {0, 1} (or a probability):
// value = log(1 + e^p) - y p, derivative = sigmoid(p) - y. Both are formed
// from e^-|p| alone, so no margin overflows (at p = +-1000 the value is
// 1000 or 0 and the derivative 0 or 1 minus y, never inf or NaN).
// The second derivative sigmoid (1 - sigmoid) is at most 1/4.
struct LogisticLoss {
  static constexpr LossKind kind = LossKind::kLogistic;
  static constexpr const char *name = "logistic";
  static constexpr bool kElementwise = true;
  static constexpr double kCurvature = 0.25;

  FASTLINREG_HD static inline double derivative(double p, double y) {
    const double e = std::exp(-std::fabs(p));  // in (0, 1]: never overflows
    const double s = p >= 0.0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
    return s - y;
  }
  FASTLINREG_HD static inline double value(double p, double y) {
    // log(1 + e^p) = max(p, 0) + log1p(e^-|p|)
    return std::fmax(p, 0.0) + std::log1p(std::exp(-std::fabs(p))) - y * p;
  }
  FASTLINREG_HD static inline double row(const double *p, const double *y, std::int64_t k,
                                         double *dp) {
    double v = 0.0;
    for (std::int64_t q = 0; q < k; ++q) {
      const double yq = y ? y[q] : 0.0;
      dp[q] = derivative(p[q], yq);
      v += value(p[q], yq);
    }
    return v;
  }
};

// Multinomial (softmax) cross-entropy over a row's k logits, y one-hot (or
// any non-negative weights per class): value = sum_q y_q (lse(p) - p_q) with
// lse(p) = log sum_q e^p_q formed after subtracting max(p), so no exponent
// overflows; dp_q = (sum y) softmax_q - y_q. The outputs couple, so it has
// row() only. The Hessian diag(s) - s s^T has eigenvalues at most 1/2.
struct SoftmaxLoss {
  static constexpr LossKind kind = LossKind::kSoftmax;
  static constexpr const char *name = "softmax";
  static constexpr bool kElementwise = false;
  static constexpr double kCurvature = 0.5;

  FASTLINREG_HD static inline double row(const double *p, const double *y, std::int64_t k,
                                         double *dp) {
    double m = p[0];
    for (std::int64_t q = 1; q < k; ++q) m = std::fmax(m, p[q]);
    double s = 0.0;
    for (std::int64_t q = 0; q < k; ++q) {
      dp[q] = std::exp(p[q] - m);  // dp holds e^(p - m) until the last loop
      s += dp[q];
    }
    const double lse = m + std::log(s);
    double v = 0.0, sy = 0.0;
    for (std::int64_t q = 0; q < k; ++q) {
      const double yq = y ? y[q] : 0.0;
      v += yq * (lse - p[q]);
      sy += yq;
    }
    for (std::int64_t q = 0; q < k; ++q) dp[q] = sy * (dp[q] / s) - (y ? y[q] : 0.0);
    return v;
  }
};

// Not a loss: the fused pass run with this policy ignores y and yields
// G = Loss::kCurvature * X^T X W / weight_sum, the largest curvature Loss can
// have along W. Power iteration on it gives the automatic step's L.
template <class Loss>
struct CurvatureProbe {
  static constexpr bool kElementwise = true;
  FASTLINREG_HD static inline double derivative(double p, double) { return Loss::kCurvature * p; }
  FASTLINREG_HD static inline double value(double p, double) {
    return 0.5 * Loss::kCurvature * p * p;
  }
};

// Runs f(Policy{}) for the policy of `kind`: the one place a LossKind
// becomes a type.
template <class F>
decltype(auto) dispatch_loss(LossKind kind, F &&f) {
  switch (kind) {
    case LossKind::kSquared:
      return f(SquaredLoss{});
    case LossKind::kLogistic:
      return f(LogisticLoss{});
    case LossKind::kSoftmax:
      return f(SoftmaxLoss{});
  }
  throw std::invalid_argument("unknown loss kind " + std::to_string(static_cast<int>(kind)));
}

FASTLINREG_ISA_END
}  // namespace fastlinreg
