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


@dataclass(frozen=True)
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


def raise_not_finite(X) -> None:
    """A pass gave non-finite moments: blame a NaN or inf in X (scikit-learn's
    error) if there is one, else the overflow of finite values."""
    assert_all_finite(X, input_name="X")
    raise ValueError(_OVERFLOW)
