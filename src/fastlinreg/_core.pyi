"""Type stub of the compiled module fastlinreg._core (cpp/bindings/module.cpp).

X arguments are float32 or float64 ndarrays with contiguous rows (never
converted); every other array is a C-contiguous float64 ndarray. Outputs are
allocated by the caller and written in place. tests/test_stub.py checks this
file against the built module.
"""

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

_F64 = NDArray[np.float64]

__version__: str
has_openmp: bool
simd_lanes: int
isa: str
compiled_isas: str

def max_threads() -> int: ...
def chunk_plan(n: int, d: int, k: int) -> tuple[int, int]: ...

class Problem:
    def __init__(
        self,
        X: np.ndarray,
        y: _F64 | None,
        sample_weight: _F64 | None,
        weight_sum: float,
        loss: int = 0,
    ) -> None: ...
    @staticmethod
    def csr(
        data: np.ndarray,
        indices: np.ndarray,
        indptr: np.ndarray,
        n_features: int,
        y: _F64 | None,
        sample_weight: _F64 | None,
        weight_sum: float,
        loss: int = 0,
    ) -> Problem: ...
    @property
    def n(self) -> int: ...
    @property
    def d(self) -> int: ...
    @property
    def k(self) -> int: ...

class Stats:
    def __init__(
        self,
        weight_sum: float,
        mean_x: _F64,
        mean_y: _F64,
        Cxx: _F64,
        Cxy: _F64,
        Cyy: _F64,
    ) -> None: ...

class DescentParams:
    max_iter: int
    learning_rate: float
    tol: float
    alpha: float
    fit_intercept: bool
    shift: _F64 | None
    scale: _F64 | None
    alpha_per_output: _F64 | None
    positive: bool
    def __init__(self) -> None: ...

class SgdParams:
    max_epochs: int
    batch_size: int
    shuffle: bool
    seed: int
    eta0: float
    epoch_offset: int
    alpha: float
    tol: float
    n_iter_no_change: int
    ref_loss: float
    best_loss: float
    no_improvement: int
    fit_intercept: bool
    shift: _F64 | None
    scale: _F64 | None
    alpha_per_output: _F64 | None
    positive: bool
    def __init__(self) -> None: ...

class DescentResult:
    @property
    def n_iter(self) -> int: ...
    @property
    def status(self) -> int: ...
    @property
    def last_loss(self) -> float: ...

class SgdResult:
    @property
    def n_epochs(self) -> int: ...
    @property
    def status(self) -> int: ...
    @property
    def best_loss(self) -> float: ...
    @property
    def no_improvement(self) -> int: ...
    @property
    def ref_loss(self) -> float: ...

def fused_gradient(
    problem: Problem,
    W: _F64,
    b: _F64,
    G: _F64,
    gb: _F64,
    n_threads: int = 0,
) -> float: ...
def fused_hessian(
    problem: Problem,
    W: _F64,
    b: _F64,
    G: _F64,
    gb: _F64,
    H: _F64,
    n_threads: int = 0,
) -> float: ...
def linear_predict(problem: Problem, W: _F64, b: _F64, P: _F64, n_threads: int = 0) -> None: ...
def descend_stream(
    problem: Problem,
    params: DescentParams,
    W: _F64,
    b: _F64,
    loss_curve: _F64,
    n_threads: int = 0,
    progress: Callable[[int, float], object] | None = None,
) -> DescentResult: ...
def descend_gram(
    stats: Stats,
    params: DescentParams,
    W: _F64,
    b: _F64,
    loss_curve: _F64,
    n_threads: int = 0,
    progress: Callable[[int, float], object] | None = None,
) -> DescentResult: ...
def replay_descent(
    stats: Stats, params: DescentParams, W: _F64, b: _F64, loss_curve: _F64
) -> DescentResult | None: ...
def replay_rows(
    problem: Problem,
    params: DescentParams,
    W: _F64,
    b: _F64,
    loss_curve: _F64,
    n_threads: int = 0,
) -> tuple[tuple[float, _F64, _F64, _F64, _F64, _F64], bool, DescentResult | None]: ...
def descend_sgd(
    problem: Problem,
    params: SgdParams,
    W: _F64,
    b: _F64,
    loss_curve: _F64,
    progress: Callable[[int, float], object] | None = None,
) -> SgdResult: ...
def curvature_stream(problem: Problem, params: DescentParams, n_threads: int = 0) -> float: ...
def curvature_gram(stats: Stats, params: DescentParams, n_threads: int = 0) -> float: ...
def sufficient_stats(
    problem: Problem,
    out: Stats,
    n_threads: int = 0,
    syrk: object = None,
) -> float: ...
def column_moments(problem: Problem, mean: _F64, var: _F64, n_threads: int = 0) -> float: ...
