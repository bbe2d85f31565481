"""Data shipped with fastlinreg."""

from __future__ import annotations

import numpy as np

__all__ = ["load_tutorial", "TUTORIAL_LEARNING_RATE", "TUTORIAL_STEPS"]

# The classic "Linear Regression in Theano" tutorial's settings.
TUTORIAL_LEARNING_RATE = 0.01
TUTORIAL_STEPS = 10000

_X = (3, 4, 5, 6.1, 6.3, 2.88, 8.89, 5.62, 6.9, 1.97, 8.22, 9.81, 4.83, 7.27, 5.14, 3.08)
_Y = (0.9, 1.6, 1.9, 2.9, 1.54, 1.43, 3.06, 2.36, 2.3, 1.11, 2.57, 3.15, 1.5, 2.64, 2.20, 1.21)


def load_tutorial() -> tuple[np.ndarray, np.ndarray]:
    """The tutorial's 16 training points.

    Returns
    -------
    x : ndarray of shape (16,)
        The inputs (1-D: reshape with ``x.reshape(-1, 1)`` to fit).
    y : ndarray of shape (16,)
        The targets.
    """
    return np.array(_X, dtype=np.float64), np.array(_Y, dtype=np.float64)
