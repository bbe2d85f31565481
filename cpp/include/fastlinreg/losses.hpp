// Loss policies: one fused kernel body serves every loss.
// Each policy maps a prediction p and a target y to the loss value and its
// derivative with respect to p; the kernel never knows which loss it runs.
#pragma once

#include <cmath>

namespace fastlinreg {

// Squared error: value = (p - y)^2 / 2, derivative = p - y.
// The descent loss sum(value) / n is the tutorial's cost sum((Xw+b-y)^2) / (2n).
struct SquaredLoss {
  static constexpr const char *name = "squared";
  static inline double derivative(double p, double y) { return p - y; }
  static inline double value(double p, double y) {
    const double r = p - y;
    return 0.5 * r * r;
  }
};

}  // namespace fastlinreg
