"""Magnitudes that float64 cannot square: y rescaled by a power of two, and
the statistics' check that X's second moments neither underflowed nor
overflowed."""

from __future__ import annotations

import dataclasses

import numpy as np

from ._common import FitResult

# y's largest magnitude outside this range is brought near 1 before a fit:
# the loss squares it, and the gradient's squared norm squares it again.
_Y_RANGE = (2.0**-60, 2.0**60)

MOMENTS_OUT_OF_RANGE = (
    "X's values are too small or too large for their second moments in float64 (XᵀX "
    "underflows or overflows), so solver={solver!r} cannot fit it. Rescale X (e.g. with "
    "sklearn.preprocessing.StandardScaler), or use solver='gd' or 'sgd' with "
    "learning_rate='auto', which read X at any scale."
)


def target_scale(problem) -> float:
    """A power of two s that brings max|y| near 1 when it lies outside
    _Y_RANGE, else 1. The squared loss is linear in (y, W, b): a fit on s·y
    from s·(W0, b0) is s times the fit on y, bit for bit, as s is a power of
    two."""
    Y = problem.Y
    # y held elsewhere (a dask array) is fitted as it is: scanning it would be a pass.
    if type(Y) is not np.ndarray or Y.size == 0 or problem.loss.name != "squared":
        return 1.0
    if Y.size <= 64:  # a few values: two reductions would be a tiny fit's fixed cost
        values = Y.ravel().tolist()
        peak = max(-min(values), max(values))
    else:
        peak = max(-float(Y.min()), float(Y.max()))  # no |Y| temporary
    if peak == 0.0 or not np.isfinite(peak) or _Y_RANGE[0] <= peak <= _Y_RANGE[1]:
        return 1.0
    return float(np.ldexp(1.0, -int(np.frexp(peak)[1])))


def scaled(problem, s: float):
    """The problem with y multiplied by s (a copy of y; the user's is untouched)."""
    return problem if s == 1.0 else dataclasses.replace(problem, Y=problem.Y * s)


def unscaled(result: FitResult, s: float) -> FitResult:
    """The fit on s·y mapped back to y: coefficients / s, losses / s²."""
    result.stream.y_scale = s
    if s == 1.0:
        return result
    with np.errstate(under="ignore", over="ignore"):  # the true losses, where float64 holds them
        curve = result.curve / s / s
        W, b = result.W / s, result.b / s
    if not (np.isfinite(W).all() and np.isfinite(b).all()):
        raise ValueError(
            "the fitted coefficients overflow float64: y is too large for X's scale. Rescale X "
            "or y (e.g. with sklearn.preprocessing.StandardScaler)."
        )
    return dataclasses.replace(result, W=W, b=b, curve=curve)


def moments_in_range(stats) -> bool:
    """False when a column's second moment under- or overflowed: a column
    whose mean is tiny but nonzero and whose centred moment is zero or
    subnormal, or whose moment is infinite."""
    ws = stats.weight_sum
    if not ws > 0:
        return True
    with np.errstate(all="ignore"):
        var = np.diag(stats.Cxx) / ws
        tiny_mean = (stats.mean_x != 0) & (np.abs(stats.mean_x) < 1e-140)
        underflow = tiny_mean & (var < np.finfo(np.float64).tiny)
    return not (underflow.any() or np.isinf(var).any())
