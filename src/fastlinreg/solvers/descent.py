"""Full-batch gradient descent: over X ("gd") or replayed from the
statistics ("gram"), with the automatic step or the user's."""

from __future__ import annotations

import numpy as np

from .._progress import Progress
from ..backends import DescentConfig, Status
from ..exceptions import DivergenceError
from . import _curvature
from ._common import FitResult, Settings, Stream, raise_not_finite, warn_max_iter

# A column whose spread is within this many roundings of its mean is
# constant in float64: its centred values are rounding, not data.
_CONSTANT_ROUNDINGS = 16 * np.finfo(np.float64).eps
# Second moments outside this range have lost digits to underflow or overflow.
_MOMENT_RANGE = (1e-280, 1e280)


def standardisation(settings: Settings, backend, problem=None, stats=None):
    """(shift, scale) of the descended problem: the weighted column means and
    spreads for the automatic step, (None, None) for a float step (plain
    descent on the model itself, the tutorial's iterates). A constant column
    gets scale +inf, which freezes its coefficient at 0 (descent.hpp)."""
    if not settings.auto_step:
        return None, None
    if stats is not None:
        mean, spread = stats.mean_x, np.sqrt(np.maximum(np.diag(stats.Cxx), 0) / stats.weight_sum)
    else:
        _, mean, var = backend.column_moments(problem)
        if not np.isfinite(mean).all():
            raise_not_finite(problem.X, problem)
        mean, spread = _rescaled_spread(backend, problem, mean, var)
    if settings.fit_intercept:
        shift = mean
        constant = spread <= _CONSTANT_ROUNDINGS * np.abs(mean)
    else:
        # sqrt(var + mean²) without squaring a mean near the overflow threshold
        shift, spread = None, np.hypot(spread, mean)
        constant = spread == 0
    return shift, np.where(constant, np.inf, spread)


def _rescaled_spread(backend, problem, mean, var):
    """(mean, sqrt(var)), the columns whose variance under- or overflowed
    recomputed on copies scaled by a power of two: two passes over those
    columns, on the backend's blocks where it has ``over_columns`` (dask: on
    the workers), else chunk by chunk here."""
    low, high = _MOMENT_RANGE
    redo = np.flatnonzero(~(np.isfinite(var) & ((var == 0) | ((var > low) & (var < high)))))
    redo = np.union1d(redo, np.flatnonzero((var == 0) & (mean != 0) & (np.abs(mean) < 1e-140)))
    if redo.size == 0:
        return mean, np.sqrt(var)
    over_columns = getattr(backend, "over_columns", None) or _over_columns
    peak = over_columns(problem, redo, column_peak, "max")
    if not np.isfinite(peak).all():
        raise_not_finite(problem.X, problem)
    factor = np.ldexp(1.0, -np.frexp(np.where(peak > 0, peak, 1.0))[1])  # peak * factor in [0.5, 1)
    mean, spread = mean.copy(), np.sqrt(var)
    m = mean[redo] * factor
    sums = over_columns(problem, redo, scaled_sums, "sum", factor, m)
    dm = sums[0] / problem.weight_sum  # the mean's own rounding, corrected
    mean[redo] = (m + dm) / factor
    spread[redo] = np.sqrt(np.maximum(sums[1] / problem.weight_sum - dm * dm, 0.0)) / factor
    return mean, spread


def column_peak(Xc, w):
    """max |Xc| by column (Xc: some columns of a block of rows, float64)."""
    return np.abs(Xc).max(0)


def scaled_sums(Xc, w, factor, m):
    """[sum w z, sum w z^2] by column, z = Xc * factor - m (w: (rows, 1) or None)."""
    Z = Xc * factor - m
    ws = 1.0 if w is None else w
    return np.array([(ws * Z).sum(0), (ws * Z * Z).sum(0)])


def _over_columns(problem, cols, block, how, *args):
    """``block(X[rows, cols], w[rows, None], *args)`` over chunks of about 4M
    values, combined by ``how`` ("max" or "sum"), for X in this process."""
    X, w = problem.X, problem.sample_weight
    rows = max(1, (1 << 22) // cols.size)
    out = None
    for s in range(0, X.shape[0], rows):
        Xc = np.asarray(X[s : s + rows, cols], dtype=np.float64)
        part = block(Xc, None if w is None else w[s : s + rows, None], *args)
        out = part if out is None else np.maximum(out, part) if how == "max" else out + part
    return out


def run(
    solver: str, settings: Settings, backend, problem, stats, W0, b0, previous=None
) -> FitResult:
    """Gradient descent from (W0, b0): over X for "gd", over ``stats`` for "gram".
    ``previous``: the last fit's Stream, whose curvature estimate the
    automatic step may reuse (solvers/_curvature.py says when)."""
    shift, scale = standardisation(settings, backend, problem, stats)
    estimate = None
    if scale is not None:
        estimate = _curvature.estimate(
            settings, backend, problem, stats, shift, scale, getattr(previous, "curvature", None)
        )
        lr = 1.0 / estimate.L if estimate.L > 0 else 1.0
    else:
        lr = float(settings.learning_rate)
    progress = Progress(settings.max_iter) if settings.verbose else None
    config = DescentConfig(
        settings.max_iter,
        lr,
        settings.tol,
        settings.alpha,
        settings.fit_intercept,
        shift,
        scale,
        progress,
        settings.positive,
    )
    if solver == "gram":
        out = backend.descend_gram(stats, config, W0, b0, settings.n_jobs)
    else:
        out = backend.descend(problem, config, W0, b0)
    if progress is not None:
        progress.close(out.n_iter, out.last_loss)
    if out.status == Status.DIVERGED:
        raise divergence_error(settings, backend, problem, stats, lr, out.n_iter, out.last_loss)
    if settings.tol is not None and out.status != Status.CONVERGED:
        warn_max_iter(settings)
    stats = stats if solver == "gram" else None
    stream = Stream(solver, out.b.shape[0], stats, converged=out.status == Status.CONVERGED)
    stream.curvature = estimate
    return FitResult(solver, out.W, out.b, out.n_iter, out.curve, lr, stream)


def plain_lipschitz(stats, alpha: float, fit_intercept: bool, loss_curvature: float) -> float:
    """Largest eigenvalue of the Hessian of the mean loss in (coef, intercept)
    for plain (unstandardised) gradient descent."""
    d = stats.n_features
    H = np.empty((d + 1, d + 1)) if fit_intercept else np.empty((d, d))
    H[:d, :d] = loss_curvature * stats.raw_xtx() / stats.weight_sum + alpha * np.eye(d)
    if fit_intercept:
        H[:d, d] = H[d, :d] = loss_curvature * stats.mean_x
        H[d, d] = loss_curvature
    return float(np.linalg.eigvalsh(H)[-1]) if H.size else 0.0


def divergence_error(
    settings: Settings, backend, problem, stats, lr, step, last_loss, what="step"
) -> DivergenceError:
    """The error for a run whose loss grew without bound, naming the safe step."""
    from .exact import statistics

    if stats is None:
        stats = statistics(backend, problem)
    curvature_bound = problem.loss.curvature if problem is not None else 1.0
    L = plain_lipschitz(stats, settings.alpha_max, settings.fit_intercept, curvature_bound)
    safe = 2.0 / L if L > 0 else None
    how = "became non-finite" if not np.isfinite(last_loss) else "grew without bound"
    hint = f"the largest safe step for this data is 2/L = {safe:.6g}; " if safe else ""
    return DivergenceError(
        f"Gradient descent diverged at {what} {step}: the loss {how} with "
        f"learning_rate={lr:.6g}. The step is too large for this data: {hint}"
        "use learning_rate='auto' (a safe step chosen from the data) or a smaller value.",
        learning_rate=lr,
        max_safe_learning_rate=safe,
        step=step,
    )
