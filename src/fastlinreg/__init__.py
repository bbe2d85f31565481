"""fastlinreg: linear models fitted by fused C++/OpenMP kernels.

>>> from fastlinreg import LinearRegression
>>> from fastlinreg.datasets import load_tutorial
>>> x, y = load_tutorial()
>>> model = LinearRegression().fit(x.reshape(-1, 1), y)
"""

from __future__ import annotations

from importlib.metadata import version as _version

from ._stats import SufficientStats
from .backends import available_backends, backend_status
from .exceptions import ConvergenceWarning, DivergenceError, IllConditionedWarning
from .linear_model import LinearRegression
from .logistic import LogisticRegression
from .model_file import load

__version__ = _version("fastlinreg")

__all__ = [
    "LinearRegression",
    "LogisticRegression",
    "SufficientStats",
    "DivergenceError",
    "ConvergenceWarning",
    "IllConditionedWarning",
    "available_backends",
    "backend_status",
    "load",
    "__version__",
]
