"""What every backend implements, and the objects that cross the seam.

A backend is a module of ``fastlinreg.backends`` (cpu.py, reference.py; cuda
and dask come in their own modules) with the functions of :class:`Backend`.
Solvers call them with a :class:`Problem` and a config object, never with
positional lists; outputs are fresh arrays in model space (W (d, k),
b (k), float64). reference.py is the plain-numpy template to copy.
Optional: ``replay_descent(stats, config, W0, b0)`` (cpu), a float step's
``descend_gram`` outcome in closed form or None; solvers/_replay.py's numpy
version stands in where a backend has none. ``replay_rows(problem, config,
W0, b0)`` (cpu): the statistics pass and replay_descent in one call, for
tiny problems. ``statistics(problem)`` (dask), the SufficientStats with the
weights' count and log-sum taken in the same pass. ``hold(problem)`` (dask):
the problem with its rows kept where they are read fast (persisted) for the
many passes of lbfgs and newton (solvers/objective.py asks for it).
``over_columns(problem, cols, block, how, *args)`` (dask): ``block`` of each
row block's columns ``cols`` where the block is, combined by ``how`` ("max"
or "sum"); solvers/descent.py's second look at columns whose moments left
float64's range runs through it, or chunk by chunk here without it.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .._losses import Loss

__all__ = [
    "Backend",
    "Problem",
    "DescentConfig",
    "DescentOutcome",
    "SgdConfig",
    "SgdOutcome",
    "Status",
    "StatsParts",
]


class Status(enum.IntEnum):
    """How a loop ended (DescentStatus in cpp/include/fastlinreg/types.hpp)."""

    MAX_ITER = 0
    CONVERGED = 1
    DIVERGED = 2


# The objects made per call are plain dataclasses, not frozen ones: a frozen
# dataclass's __init__ sets each field through object.__setattr__, ~2 us per
# object, a few percent of a tiny fit. Nothing mutates them once made.
@dataclass
class Problem:
    """Rows of a fit and its loss.

    X is (n, d) float32/float64 as the backend reads it (``prepare_X``),
    Y (n, k) float64 or None (zeros), sample_weight (n,) float64 or None,
    weight_sum their sum (n without weights). n_jobs: threads, as the
    estimators' parameter.
    """

    X: object
    Y: np.ndarray | None
    sample_weight: np.ndarray | None
    weight_sum: float
    loss: Loss
    n_jobs: int | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return self.X.shape


@dataclass
class DescentConfig:
    """A gradient-descent run: ``max_iter`` steps of ``learning_rate`` at most;
    ``tol`` None runs them all, else stop when the gradient norm falls to
    ``tol`` times its first value. Steps are taken on the columns shifted by
    ``shift`` (d) and divided by ``scale`` (d), either None for plain
    descent (types.hpp's Standardisation). ``alpha``: a float, or one
    penalty per output (k,). ``positive``: project the coefficients onto
    W >= 0 after each step (the step then stops on the projected gradient)."""

    max_iter: int
    learning_rate: float
    tol: float | None
    alpha: float | np.ndarray
    fit_intercept: bool
    shift: np.ndarray | None = None
    scale: np.ndarray | None = None
    # progress(steps done, last loss), called now and then (the cpu backend
    # about every 2**25 elements read, the reference backend every step).
    progress: Callable[[int, float], object] | None = None
    positive: bool = False


@dataclass
class DescentOutcome:
    W: np.ndarray  # (d, k)
    b: np.ndarray  # (k,)
    n_iter: int
    status: Status
    last_loss: float
    curve: np.ndarray  # (n_iter,)


@dataclass(frozen=True)
class SgdConfig:
    """SGD epochs: batches of ``batch_size`` rows in an order drawn from
    ``seed`` (``shuffle``), step ``eta0 / sqrt(1 + e)`` in epoch e counted from
    ``epoch_offset``; early stopping after ``n_iter_no_change`` epochs whose
    mean loss is not below ``best_loss - tol * ref_loss`` (ref_loss <= 0:
    the first epoch's loss). ``alpha`` and ``positive`` as in DescentConfig."""

    max_epochs: int
    batch_size: int
    shuffle: bool
    seed: int
    eta0: float
    alpha: float | np.ndarray
    tol: float | None
    n_iter_no_change: int
    fit_intercept: bool
    shift: np.ndarray | None = None
    scale: np.ndarray | None = None
    epoch_offset: int = 0
    best_loss: float = np.inf
    no_improvement: int = 0
    ref_loss: float = 0.0
    progress: Callable[[int, float], object] | None = None  # (epochs done, loss)
    positive: bool = False


@dataclass(frozen=True)
class SgdOutcome:
    W: np.ndarray
    b: np.ndarray
    n_epochs: int
    status: Status
    best_loss: float
    no_improvement: int
    ref_loss: float
    curve: np.ndarray  # (n_epochs,)


# (weight_sum, mean_x (d), mean_y (k), Cxx (d, d), Cxy (d, k), Cyy (k, k))
StatsParts = tuple


class Backend(Protocol):
    """The operations a backend module provides."""

    NAME: str

    def available(self) -> tuple[bool, str]:
        """(True, "") or (False, why not)."""

    def prepare_X(self, X):
        """X as this backend reads it, without copying what it can read as is."""

    def fused_pass(self, problem: Problem, W, b) -> tuple[float, np.ndarray, np.ndarray]:
        """(mean loss, G (d, k), gb (k)) at the model (W, b): one read of X."""

    def predict(self, X, W, b, n_jobs=None) -> np.ndarray:
        """X W + b, (n, k) float64."""

    def sufficient_stats(self, problem: Problem) -> StatsParts:
        """Centred sufficient statistics of the rows (squared loss)."""

    def column_moments(self, problem: Problem) -> tuple[float, np.ndarray, np.ndarray]:
        """(weight_sum, mean (d), var (d)) of X's columns."""

    def curvature(self, problem: Problem, config: DescentConfig) -> float:
        """L: the loss's largest curvature along the coefficients in the
        descended space, from above (at most 10 Lanczos passes: descent.hpp's
        top_curvature, reference.top_curvature; config's step fields unused)."""

    def curvature_gram(self, stats, config: DescentConfig, n_jobs=None) -> float:
        """:meth:`curvature` of the squared loss from SufficientStats."""

    def descend(self, problem: Problem, config: DescentConfig, W0, b0) -> DescentOutcome:
        """Gradient descent over X, one fused pass per step."""

    def descend_gram(self, stats, config: DescentConfig, W0, b0, n_jobs=None) -> DescentOutcome:
        """The same iterates from SufficientStats (squared loss)."""

    def sgd(self, problem: Problem, config: SgdConfig, W0, b0) -> SgdOutcome:
        """Mini-batch SGD epochs."""

    def hessian(self, problem: Problem, W, b) -> np.ndarray:
        """∇² of the mean loss in ``[W.ravel(), b]``, ((d + 1)·k, (d + 1)·k):
        one read of X (the Newton solver's)."""
