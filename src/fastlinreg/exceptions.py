"""Exceptions and warnings of fastlinreg (imports nothing of the package)."""

from __future__ import annotations

import os
import sys
import warnings

from sklearn.exceptions import ConvergenceWarning

__all__ = ["DivergenceError", "ConvergenceWarning", "IllConditionedWarning", "warn_caller"]

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


class IllConditionedWarning(UserWarning):
    """XᵀX is singular or too ill-conditioned for a Cholesky solve; a
    rank-revealing (minimum-norm) solve was used instead."""


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

    def __init__(
        self, message: str, *, learning_rate: float, max_safe_learning_rate: float | None, step: int
    ):
        super().__init__(message)
        self.learning_rate = learning_rate
        self.max_safe_learning_rate = max_safe_learning_rate
        self.step = step


def warn_caller(message: str, category: type[Warning]) -> None:
    """``warnings.warn`` pointing at the first frame outside fastlinreg: the
    user's line that called ``fit``, however deep inside the package the
    warning arose."""
    frame, level = sys._getframe(1), 2  # stacklevel 2: warn_caller's caller
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(
        _PACKAGE_DIR + os.sep
    ):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)
