"""Exceptions and warnings of fastlinreg."""

from __future__ import annotations

from sklearn.exceptions import ConvergenceWarning

from ._stats import IllConditionedWarning

__all__ = ["DivergenceError", "ConvergenceWarning", "IllConditionedWarning"]


class DivergenceError(FloatingPointError, ValueError):
    """Gradient descent diverged: the step size is too large for the data.

    Raised instead of returning a model with infinite or NaN coefficients;
    the estimator is left as it was before ``fit``.

    Attributes
    ----------
    learning_rate : float
        The step that diverged.
    max_safe_learning_rate : float or None
        ``2 / L``, where L is the largest eigenvalue of the loss's Hessian:
        plain gradient descent converges for any step below it.
    step : int
        The step at which divergence was detected.
    """

    def __init__(self, message: str, *, learning_rate: float,
                 max_safe_learning_rate: float | None, step: int):
        super().__init__(message)
        self.learning_rate = learning_rate
        self.max_safe_learning_rate = max_safe_learning_rate
        self.step = step
