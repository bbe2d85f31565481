"""The exact strategy: one pass for the sufficient statistics, one solve."""

from __future__ import annotations

import numpy as np

from .._stats import SufficientStats
from ._common import FitResult, Settings, Stream, raise_not_finite


def statistics(backend, problem) -> SufficientStats:
    """The problem's statistics in one pass; an error if they are not finite."""
    sw = problem.sample_weight
    n_samples = problem.X.shape[0] if sw is None else int(np.count_nonzero(sw))
    stats = SufficientStats(*backend.sufficient_stats(problem), n_samples=n_samples)
    if not stats.is_finite():
        raise_not_finite(problem.X)
    return stats


def solve(settings: Settings, stats: SufficientStats) -> FitResult:
    """The least-squares optimum; n_iter 1 and the curve holds its cost."""
    W, b = stats.solve(settings.alpha, settings.fit_intercept, settings.positive)
    curve = np.array([stats.loss(W, b, settings.alpha)])
    return FitResult("exact", W, b, 1, curve, None, Stream("exact", stats.n_targets, stats))
