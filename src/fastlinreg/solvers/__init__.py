"""Solver strategies: how a fit turns rows into a model.

``fit`` and ``partial_fit`` share one chooser. Each strategy is a small
module: ``exact`` (statistics, then a solve), ``descent`` ("gd" over X and
"gram" over the statistics) and ``sgd``. They talk to a backend through its
protocol (fastlinreg.backends) and return a :class:`FitResult`; the
estimator only stores it.
"""

from __future__ import annotations

from .._losses import SQUARED
from . import _replay, descent, exact, lbfgs, newton, sgd
from ._common import _OVERFLOW, MAX_GRAM_FEATURES, FitResult, Settings, Stream, overflow_error
from ._scale import MOMENTS_OUT_OF_RANGE, moments_in_range, scaled, target_scale, unscaled

__all__ = [
    "choose",
    "choose_classifier",
    "fit",
    "partial_fit",
    "partial_fit_sgd",
    "Settings",
    "FitResult",
    "Stream",
]

# Below this many elements X sits in L1 and a fused step is as cheap as a
# replayed one, so a statistics pass would be pure overhead.
_SMALL = 4096


def choose(settings: Settings, n: int, d: int, *, streaming: bool = False) -> str:
    """The strategy for ``solver="auto"`` (the named one otherwise).

    With the automatic step the documented result is the optimum: "exact"
    (past MAX_GRAM_FEATURES features "gd", or "sgd" when streaming). With a
    float step it is that step's descent trajectory: "gram" when the one-off
    d² statistics are cheaper than the steps (n >= d, n·d >= 4096,
    d <= 25·max_iter), else "gd"; streaming, "gram" (its trajectory on all
    rows so far), or "sgd" past MAX_GRAM_FEATURES.
    """
    if settings.solver != "auto":
        return settings.solver
    wide = d > MAX_GRAM_FEATURES
    if settings.auto_step:
        return ("sgd" if streaming else "gd") if wide else "exact"
    if streaming:
        return "sgd" if wide else "gram"
    if n >= d and n * d >= _SMALL and not wide and d <= 25 * settings.max_iter:
        return "gram"
    return "gd"


# A classifier with at most this many parameters, (d + 1)·k, runs Newton's
# method by default: its Hessian is then cheap to form and to solve.
_NEWTON_PARAMETERS = 100


def choose_classifier(settings: Settings, d: int, k: int) -> str:
    """The strategy for a classifier's ``solver="auto"``: "newton" when
    (d + 1)·k <= 100, else "lbfgs" (the named one otherwise)."""
    if settings.solver != "auto":
        return settings.solver
    return "newton" if (d + 1) * k <= _NEWTON_PARAMETERS else "lbfgs"


def fit(settings: Settings, backend, problem, W0, b0, previous: Stream | None = None) -> FitResult:
    """A whole fit on the problem's rows, from (W0, b0) where a strategy iterates;
    ``previous``: a warm start's last Stream (its automatic step may be reused)."""
    s = target_scale(problem)
    if s == 1.0:
        return unscaled(_fit(settings, backend, problem, W0, b0, previous), s)
    return unscaled(_fit(settings, backend, scaled(problem, s), W0 * s, b0 * s, previous), s)


def statistics(backend, problem):
    """exact.statistics, its overflow error naming the input that overflowed."""
    try:
        return exact.statistics(backend, problem)
    except ValueError as exc:
        if str(exc) != _OVERFLOW:
            raise
        raise overflow_error(problem) from None


def _fit(settings: Settings, backend, problem, W0, b0, previous=None) -> FitResult:
    n, d = problem.X.shape
    if problem.loss is SQUARED:
        solver = choose(settings, n, d)
    else:
        solver = choose_classifier(settings, d, problem.Y.shape[1])
    if solver == "lbfgs":
        return lbfgs.run(settings, backend, problem, W0, b0)
    if solver == "newton":
        return newton.run(settings, backend, problem, W0, b0)
    if solver in ("exact", "gram"):
        stats = statistics(backend, problem)
        if not moments_in_range(stats):
            if settings.solver == "auto":  # the descent over X reads X at any scale
                return descent.run("gd", settings, backend, problem, None, W0, b0)
            raise ValueError(MOMENTS_OUT_OF_RANGE.format(solver=solver))
        if solver == "exact":
            return exact.fit(settings, problem, stats)
        return descent.run("gram", settings, backend, problem, stats, W0, b0, previous)
    if solver == "sgd":
        state = sgd.start(settings, backend, problem, W0, b0)
        return sgd.run(settings, backend, problem, state, settings.max_iter)
    if settings.solver == "auto" and n * d < _SMALL and d <= n and problem.loss is SQUARED:
        return _replay.fit_tiny(settings, backend, problem, W0, b0, previous)
    return descent.run("gd", settings, backend, problem, None, W0, b0, previous)


def partial_fit(settings: Settings, backend, problem, stream: Stream | None) -> FitResult:
    """Continue ``stream`` (None: start one) with the problem's rows."""
    s = stream.y_scale if stream is not None else target_scale(problem)
    return unscaled(_partial_fit(settings, backend, scaled(problem, s), stream), s)


def _partial_fit(settings: Settings, backend, problem, stream: Stream | None) -> FitResult:
    import numpy as np

    n, d = problem.X.shape
    k = problem.Y.shape[1]
    solver = choose(settings, n, d, streaming=True)
    if stream is not None and stream.solver == "gd":
        raise ValueError(
            "the last fit ran gradient descent over X (solver='gd'), which keeps nothing to "
            "continue from. Fit with solver='exact', 'gram' or 'sgd' (or call partial_fit "
            "from the start)."
        )
    if stream is not None and (stream.solver != solver or stream.n_targets != k):
        raise ValueError(
            f"partial_fit got {k} target(s) with solver={solver!r}, but the model so far has "
            f"{stream.n_targets} with solver={stream.solver!r}. Keep y's shape and the solver "
            "fixed across calls, or call fit() to start over."
        )
    if solver == "sgd":
        state = (
            stream.sgd
            if stream is not None
            else sgd.start(settings, backend, problem, np.zeros((d, k)), np.zeros(k))
        )
        return sgd.run(settings, backend, problem, state, 1)
    stats = statistics(backend, problem)
    if stream is not None:
        stats = stream.stats.merge(stats)
    if not moments_in_range(stats):
        raise ValueError(MOMENTS_OUT_OF_RANGE.format(solver=solver))
    if solver == "exact":
        return exact.solve(settings, stats)
    zeros = np.zeros((d, k)), np.zeros(k)
    return descent.run("gram", settings, backend, None, stats, *zeros, previous=stream)


def partial_fit_sgd(settings: Settings, backend, problem, stream: Stream | None) -> FitResult:
    """One SGD epoch over the problem's rows, continuing ``stream`` (None: from zeros)."""
    import numpy as np

    d, k = problem.X.shape[1], problem.Y.shape[1]
    if stream is not None and (stream.solver != "sgd" or stream.n_targets != k):
        raise ValueError(
            f"partial_fit got {k} output(s) but the model so far has {stream.n_targets}. "
            "Keep the classes fixed across calls, or call fit() to start over."
        )
    if stream is None:
        state = sgd.start(settings, backend, problem, np.zeros((d, k)), np.zeros(k))
    else:
        state = stream.sgd
    return sgd.run(settings, backend, problem, state, 1)
