"""What the solver strategies share: their settings, their result, and the
state that ``partial_fit`` continues from."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn.utils.validation import assert_all_finite

from .._stats import SufficientStats

# Above this many features the d x d statistics are too big to be worth it.
MAX_GRAM_FEATURES = 4096

_OVERFLOW = (
    "The moments of X overflow float64: its values are too large. Rescale X (e.g. with "
    "sklearn.preprocessing.StandardScaler)."
)
_OVERFLOW_Y = (
    "The moments of y overflow float64: its values are too large (up to {peak:.3g}). "
    "Rescale y (divide it by a constant, and multiply the predictions back)."
)
_OVERFLOW_WEIGHTS = (
    "The weighted moments overflow float64: sample_weight is too large (up to {peak:.3g}, "
    "summing to {total:.3g}). Rescale sample_weight: only the weights' ratios matter."
)


@dataclass  # not frozen: see backends/_protocol.py (nothing mutates it)
class Settings:
    """The estimator parameters a solver reads (LinearRegression's, validated)."""

    solver: str
    learning_rate: str | float
    max_iter: int
    tol: float | None
    alpha: float | np.ndarray  # a float, or (k,): one penalty per target
    fit_intercept: bool
    batch_size: int
    shuffle: bool
    n_iter_no_change: int
    random_state: object
    n_jobs: int | None
    verbose: int = 0
    positive: bool = False

    @property
    def alpha_max(self) -> float:
        """The largest penalty: what bounds the curvature of every target."""
        return float(np.max(self.alpha))

    @property
    def auto_step(self) -> bool:
        return isinstance(self.learning_rate, str)


@dataclass
class SgdState:
    """SGD's iterate (model space) and schedule between partial_fit calls."""

    W: np.ndarray
    b: np.ndarray
    shift: np.ndarray | None
    scale: np.ndarray | None
    eta0: float
    seed: int
    epochs: int = 0
    best_loss: float = np.inf
    no_improvement: int = 0
    ref_loss: float = 0.0


@dataclass
class Stream:
    """What partial_fit continues from: the statistics so far, or SGD's state."""

    solver: str
    n_targets: int
    stats: SufficientStats | None = None
    sgd: SgdState | None = None
    y_is_1d: bool = True
    converged: bool = True  # False: a descent that stopped before its tol (or had none)
    y_scale: float = 1.0  # the power of two y was scaled by (solvers._scale)
    curvature: object = None  # the automatic step's _curvature.Curvature, for reuse


@dataclass
class FitResult:
    """What a solver produced, before any of it is stored on the estimator."""

    solver: str
    W: np.ndarray  # (d, k)
    b: np.ndarray  # (k,)
    n_iter: int
    curve: np.ndarray
    learning_rate: float | None
    stream: Stream = field(default=None)


def warn_max_iter(settings: Settings) -> None:
    """The ConvergenceWarning of a descent that reached max_iter before its tol."""
    from ..exceptions import ConvergenceWarning, warn_caller

    warn_caller(
        f"Gradient descent reached max_iter={settings.max_iter} before the gradient norm "
        f"fell to tol={settings.tol} times its start. Increase max_iter, or use "
        "solver='exact' for the least-squares optimum.",
        ConvergenceWarning,
    )


def raise_not_finite(X, problem=None) -> None:
    """A pass gave non-finite moments: blame a NaN or inf in X (scikit-learn's
    error) if there is one, else the overflow of finite values, naming the
    input that overflowed when ``problem`` gives y and the weights. A dask X
    is not scanned here: its blocks' passes name a NaN or inf themselves."""
    if not hasattr(X, "__dask_graph__"):
        assert_all_finite(X, input_name="X")
    if problem is not None:
        raise overflow_error(problem)
    raise ValueError(_OVERFLOW)


def overflow_error(problem) -> ValueError:
    """The overflow error for a problem of finite inputs: the weights when
    they alone overflow (their sum, or times the squares of X and y), else y
    when its squares do, else X."""
    big = np.finfo(np.float64).max
    peak = {}
    for name, a in (("X", problem.X), ("y", problem.Y), ("w", problem.sample_weight)):
        peak[name] = np.float64(0.0 if a is None or np.size(a) == 0 else np.max(np.abs(a)))
    n = problem.X.shape[0]
    with np.errstate(over="ignore", invalid="ignore"):
        unit = max(peak["X"], peak["y"], np.float64(1.0)) ** 2 * n  # the moments at unit weights
        y_overflows = peak["y"] ** 2 * n > big
        x_overflows = peak["X"] ** 2 * n > big
        if problem.sample_weight is not None and not (x_overflows or y_overflows):
            total = float(np.sum(problem.sample_weight))
            if not np.isfinite(total) or peak["w"] * unit > big:
                return ValueError(_OVERFLOW_WEIGHTS.format(peak=peak["w"], total=total))
    if y_overflows and not x_overflows:
        return ValueError(_OVERFLOW_Y.format(peak=peak["y"]))
    return ValueError(_OVERFLOW)
