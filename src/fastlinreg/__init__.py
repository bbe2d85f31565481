"""fastlinreg: linear models fitted by fused C++/OpenMP kernels.

>>> from fastlinreg import LinearRegression
>>> from fastlinreg.datasets import load_tutorial
>>> x, y = load_tutorial()
>>> model = LinearRegression().fit(x.reshape(-1, 1), y)
"""

from __future__ import annotations

from . import _core
from ._backend import available_backends
from ._stats import SufficientStats
from .exceptions import ConvergenceWarning, DivergenceError, IllConditionedWarning
from .linear_model import LinearRegression

__version__ = _core.__version__

__all__ = [
    "LinearRegression",
    "SufficientStats",
    "DivergenceError",
    "ConvergenceWarning",
    "IllConditionedWarning",
    "available_backends",
    "__version__",
]
