// Plain gradient descent with a fixed step on the squared loss, in closed
// form from the sufficient statistics (solvers/_replay.py is the plain-numpy
// twin and says why each rule is so).
#pragma once

#include "fastlinreg/types.hpp"

namespace fastlinreg {

// The step loop's result from (W, b) (the start in, the last iterate out) and
// loss_curve[0:n_iter], for params without standardisation, per-output
// penalties or `positive`. Returns n_iter = -1, leaving W, b and the curve
// unspecified, where the closed form cannot certify the loop's result (an
// unstable or nearly unstable step, H = d2 loss ill-conditioned, a loss at
// rounding level, or a tol crossing within the loop's rounding): then the
// caller runs the loop.
DescentResult replay_descent(const GramView &s, const DescentParams &p, double *W, double *b,
                             double *loss_curve);

}  // namespace fastlinreg
