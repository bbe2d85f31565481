"""Type stub of the compiled module fastlinreg._core (see cpp/bindings/module.cpp).

X arguments are float32 or float64 ndarrays with contiguous rows (never
converted); every other array is a C-contiguous float64 ndarray. Outputs are
allocated by the caller and written in place.
"""


import numpy as np
from numpy.typing import NDArray

_F64 = NDArray[np.float64]
_X = NDArray[np.float32] | NDArray[np.float64]

__version__: str
has_openmp: bool

def max_threads() -> int: ...
def plan_chunks(n: int, d: int, k: int) -> tuple[int, int]: ...
def fused_gradient(
    X: _X, y: _F64 | None, sample_weight: _F64 | None, weight_sum: float, W: _F64,
    b: _F64, G: _F64, gb: _F64, n_threads: int = 0,
) -> float: ...
def linear_predict(X: _X, W: _F64, b: _F64, P: _F64, n_threads: int = 0) -> None: ...
def descend_stream(
    X: _X, y: _F64, sample_weight: _F64 | None, weight_sum: float, V: _F64, c: _F64,
    loss_curve: _F64, max_iter: int, learning_rate: float, tol: float, alpha: float,
    fit_intercept: bool, shift: _F64 | None, scale: _F64 | None, n_threads: int = 0,
) -> tuple[int, int, float, float, float]: ...
def descend_gram(
    weight_sum: float, mean_x: _F64, mean_y: _F64, Cxx: _F64, Cxy: _F64, Cyy: _F64, V: _F64,
    c: _F64, loss_curve: _F64, max_iter: int, learning_rate: float, tol: float, alpha: float,
    fit_intercept: bool, shift: _F64 | None, scale: _F64 | None, n_threads: int = 0,
) -> tuple[int, int, float, float, float]: ...
def descend_sgd(
    X: _X, y: _F64, sample_weight: _F64 | None, weight_sum: float, V: _F64, c: _F64,
    loss_curve: _F64, max_epochs: int, batch_size: int, shuffle: bool, seed: int, eta0: float,
    power_t: float, epoch_offset: int, alpha: float, tol: float, n_iter_no_change: int,
    best_loss: float, no_improvement: int, fit_intercept: bool, shift: _F64 | None,
    scale: _F64 | None,
) -> tuple[int, int, float, int]: ...
def hessian_norm_stream(
    X: _X, sample_weight: _F64 | None, weight_sum: float, alpha: float, fit_intercept: bool,
    shift: _F64 | None, scale: _F64 | None, n_threads: int = 0,
) -> float: ...
def hessian_norm_gram(
    weight_sum: float, mean_x: _F64, mean_y: _F64, Cxx: _F64, Cxy: _F64, Cyy: _F64,
    alpha: float, fit_intercept: bool, shift: _F64 | None, scale: _F64 | None,
    n_threads: int = 0,
) -> float: ...
def sufficient_stats(
    X: _X, y: _F64, sample_weight: _F64 | None, mean_x: _F64, mean_y: _F64, Cxx: _F64,
    Cxy: _F64, Cyy: _F64, syrk: object = None, n_threads: int = 0,
) -> float: ...
def column_moments(
    X: _X, sample_weight: _F64 | None, mean: _F64, var: _F64, n_threads: int = 0,
) -> float: ...
