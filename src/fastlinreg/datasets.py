"""Data shipped with fastlinreg."""

from __future__ import annotations

import numpy as np

__all__ = ["load_tutorial", "load_threshold", "TUTORIAL_LEARNING_RATE", "TUTORIAL_STEPS"]

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


def load_threshold(n_samples: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """The tutorial's classification question: 0 below 100, 1 above, noisily.

    x is uniform on [50, 150]; y is 1 with probability
    ``1 / (1 + exp(-(x - 100) / 6))``, so the classes overlap near 100 and a
    logistic model has a real fit to make (its threshold, where p = 0.5,
    lands near 100). The draws come from a fixed seed: the same data every
    call.

    Parameters
    ----------
    n_samples : int, default=200

    Returns
    -------
    x : ndarray of shape (n_samples,)
        The values (1-D: reshape with ``x.reshape(-1, 1)`` to fit).
    y : ndarray of shape (n_samples,)
        The 0/1 labels, int64.

    Examples
    --------
    >>> x, y = load_threshold()
    >>> x.shape, sorted(set(y.tolist()))
    ((200,), [0, 1])
    """
    rng = np.random.default_rng(100)
    x = np.round(rng.uniform(50.0, 150.0, size=n_samples), 2)
    p = 1.0 / (1.0 + np.exp(-(x - 100.0) / 6.0))
    y = (rng.uniform(size=n_samples) < p).astype(np.int64)
    return x, y
