"""The automatic step's curvature L, and when a later fit may reuse it.

L bounds λmax of the standardised XᵀX/n (+ the penalty) from above: the
backend's ``curvature``/``curvature_gram`` (descent.hpp's top_curvature, at
most 10 Lanczos passes over X or over the statistics). What is reused:

- **warm_start** (``fit`` again, over X): the previous fit's L when this
  fit's rows are the same as far as cheap checks can tell: the same backend,
  shape, dtype, weight sum, penalty and intercept, bit-identical column
  shift and scale (computed by every fit anyway), and the same values in 16
  rows at a fixed stride. Anything else recomputes it.
- **partial_fit** (``solver="gram"``, over the merged statistics): the
  previous L plus ‖A_new - A_old‖_F, A the standardised XᵀX/n of the
  statistics before and after the merge: by Weyl's inequality still an
  upper bound of λmax. Reused until the added amounts pass 5% of the L
  last computed; then recomputed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..backends import DescentConfig

__all__ = ["Curvature", "estimate"]

# Reuse over merged statistics until Weyl's additions pass this fraction of L.
_SLACK = 0.05
# Rows of X compared, at a fixed stride, before a warm start reuses L.
_SAMPLE_ROWS = 16


@dataclass(frozen=True)
class Curvature:
    """An L and what it was computed for."""

    L: float
    key: tuple  # backend, d, penalty, intercept, loss (+ n, dtype, weight sum over X)
    shift: np.ndarray | None
    scale: np.ndarray
    sample: np.ndarray | None = None  # X's rows at a fixed stride (over X)
    stats: object = None  # the statistics it bounds (over the statistics)
    slack: float = 0.0  # what Weyl's bound has added since L was computed


def _key(settings, backend, problem, stats) -> tuple:
    base = (backend.NAME, settings.alpha_max, settings.fit_intercept)
    if stats is not None:
        return (*base, "gram", stats.n_features)
    X = problem.X
    return (*base, problem.loss.name, X.shape, str(X.dtype), float(problem.weight_sum))


def _sample(X) -> np.ndarray | None:
    """X's rows at a fixed stride, as float64 (None for data not in memory)."""
    if not isinstance(X, np.ndarray):
        return None
    step = max(1, X.shape[0] // _SAMPLE_ROWS)
    return np.array(X[::step][:_SAMPLE_ROWS], dtype=np.float64)


def _standardised(stats, shift, scale, alpha: float) -> np.ndarray:
    """The statistics' standardised XᵀX/n + alpha/scale² (what the probe multiplies by)."""
    M = stats.Cxx / stats.weight_sum
    if shift is None:
        M = M + np.outer(stats.mean_x, stats.mean_x)
    inv = 1.0 / scale  # 0 for a frozen (constant) column
    A = inv[:, None] * M * inv[None, :]
    A.flat[:: A.shape[0] + 1] += alpha * inv * inv
    return A


def _reusable(previous, key, shift, scale, sample, stats, alpha) -> float | None:
    """The L this estimate may take from ``previous`` (None: recompute)."""
    if previous is None or previous.key != key:
        return None
    if stats is None:
        same = (
            sample is not None
            and previous.sample is not None
            and np.array_equal(previous.sample, sample)
            and np.array_equal(previous.scale, scale)
            and (shift is None) == (previous.shift is None)
            and (shift is None or np.array_equal(previous.shift, shift))
        )
        return previous.L if same else None
    if previous.stats is None:
        return None
    with np.errstate(all="ignore"):
        old = _standardised(previous.stats, previous.shift, previous.scale, alpha)
        new = _standardised(stats, shift, scale, alpha)
        added = float(np.linalg.norm(new - old))
    if not np.isfinite(added) or previous.slack + added > _SLACK * (previous.L - previous.slack):
        return None
    return previous.L + added


def estimate(settings, backend, problem, stats, shift, scale, previous=None) -> Curvature:
    """L for the standardisation (shift, scale): ``previous``'s (a Curvature
    from the last fit or partial_fit, or None) where the module docstring's
    rules allow, else the backend's Lanczos bound."""
    key = _key(settings, backend, problem, stats)
    sample = _sample(problem.X) if stats is None else None
    reused = _reusable(previous, key, shift, scale, sample, stats, settings.alpha_max)
    if reused is not None:
        slack = previous.slack + (reused - previous.L)
        return Curvature(reused, key, shift, scale, sample, stats, slack)
    config = DescentConfig(0, 0.0, None, settings.alpha_max, settings.fit_intercept, shift, scale)
    if stats is not None:
        L = backend.curvature_gram(stats, config, settings.n_jobs)
    else:
        L = backend.curvature(problem, config)
    return Curvature(float(L), key, shift, scale, sample, stats)
