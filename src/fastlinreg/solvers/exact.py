"""The exact strategy: one pass for the sufficient statistics, one solve;
and where the normal equations would lose digits, LAPACK-grade QR."""

from __future__ import annotations

import numpy as np

from .. import _accurate
from .._stats import (
    ILL_CONDITIONED,
    SufficientStats,
    equilibrated_cholesky_rcond,
    needs_accurate_path,
)
from ..exceptions import IllConditionedWarning, warn_caller
from ._common import FitResult, Settings, Stream, raise_not_finite


def statistics(backend, problem) -> SufficientStats:
    """The problem's statistics in one pass; an error if they are not finite."""
    if hasattr(backend, "statistics"):  # weights counted in the same pass (dask: no round trip)
        stats = backend.statistics(problem)
    else:
        stats = from_pass(problem, backend.sufficient_stats(problem))
    if not stats.is_finite():
        raise_not_finite(problem.X)
    return stats


def from_pass(problem, parts) -> SufficientStats:
    """The statistics a pass over the problem's rows returned, (weight_sum,
    mean_x, mean_y, Cxx, Cxy, Cyy), with its row count and log weights."""
    sw = problem.sample_weight
    n_samples = problem.X.shape[0] if sw is None else int(np.count_nonzero(sw))
    log_wsum = 0.0 if sw is None else float(np.log(sw[sw > 0]).sum())
    return SufficientStats(*parts, n_samples=n_samples, log_weight_sum=log_wsum)


def solve(settings: Settings, stats: SufficientStats) -> FitResult:
    """The least-squares optimum; n_iter 1 and the curve holds its cost."""
    W, b = stats.solve(settings.alpha, settings.fit_intercept, settings.positive)
    curve = np.array([stats.loss(W, b, settings.alpha)])
    return FitResult("exact", W, b, 1, curve, None, Stream("exact", stats.n_targets, stats))


def fit(settings: Settings, problem, stats: SufficientStats) -> FitResult:
    """The optimum for the rows of ``problem``, whose statistics are ``stats``.

    The normal equations square the condition number: where the Cholesky
    factor's condition estimate says they would fall more than a digit short
    of a QR (``_stats.needs_accurate_path``), the answer comes from a
    streaming QR over X with one refinement pass instead (two more reads of
    X, as accurate as ``numpy.linalg.lstsq``). Underdetermined problems keep
    the minimum-norm normal-equations answer; so do ``positive=True`` (NNLS on
    the statistics), a penalty that differs between targets, and rows that
    are not a dense in-memory array (sparse, or on a cluster), where a second
    read by blocks is not this solver's to make.
    """
    alphas = np.broadcast_to(np.asarray(settings.alpha, dtype=np.float64), (stats.n_targets,))
    if (
        settings.positive
        or not np.all(alphas == alphas[0])
        or type(problem.X) is not np.ndarray
        or stats.underdetermined(settings.fit_intercept)
    ):
        return solve(settings, stats)
    A, _ = stats.normal_equations(float(alphas[0]), settings.fit_intercept)
    # A column without spread (a zero on A's diagonal, which the shifted
    # statistics give exactly) is rank deficiency, not ill-conditioning: the
    # minimum-norm answer of the statistics is the one to give, with its warning.
    if np.any(np.diag(A) <= 0) or not needs_accurate_path(equilibrated_cholesky_rcond(A)):
        return solve(settings, stats)
    X, Y, sw = problem.X, problem.Y, problem.sample_weight
    factor = _accurate.QRFactor.from_arrays(X, Y, sw, fit_intercept=settings.fit_intercept)
    W, b, rank = factor.solve(float(alphas[0]), return_rank=True)
    if rank < stats.n_features:
        warn_caller(ILL_CONDITIONED, IllConditionedWarning)
    else:
        W, b = _accurate.refine_solution(factor, X, Y, sw, alpha=float(alphas[0]))
    curve = np.array([stats.loss(W, b, settings.alpha)])
    return FitResult("exact", W, b, 1, curve, None, Stream("exact", stats.n_targets, stats))
