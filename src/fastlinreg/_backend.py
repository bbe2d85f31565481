"""Where work runs: the one module that talks to the compiled kernels.

Estimators call the functions here, never ``_core`` directly. Each function
allocates the outputs, puts every array in the layout the kernel takes
(without copying a row-contiguous float32/float64 X), and picks the thread
count.
"""

from __future__ import annotations

import functools
import os

import numpy as np

from . import _core

__all__ = [
    "available_backends",
    "resolve_threads",
    "as_kernel_X",
    "fused_gradient",
    "descend_stream",
    "descend_gram",
    "hessian_norm_stream",
    "hessian_norm_gram",
    "sufficient_stats",
    "column_moments",
]


def available_backends() -> list[str]:
    """Backends that can run here: ``"cpu"`` always."""
    return ["cpu"]


def resolve_threads(n_jobs: int | None) -> int:
    """Thread count for a kernel call.

    ``None`` (or 0) lets the kernel use OpenMP's default, which follows
    ``OMP_NUM_THREADS`` and threadpoolctl's limits; ``-1`` means every core;
    a positive number is taken as is; ``-2`` means all cores but one, as in
    scikit-learn.
    """
    if n_jobs is None or n_jobs == 0:
        return 0
    if n_jobs < 0:
        return max(1, (os.cpu_count() or 1) + 1 + n_jobs)
    return int(n_jobs)


def as_kernel_X(X: np.ndarray) -> np.ndarray:
    """X as the kernels read it: float32/float64 with contiguous rows.

    A C-contiguous X, or a view whose rows are contiguous (a row slice with a
    step), is returned as is. Anything else (Fortran order, column strides)
    is copied once, in C order, keeping its float dtype.
    """
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float64)
    n, d = X.shape
    item = X.dtype.itemsize
    rows_ok = d <= 1 or X.strides[1] == item
    forward = n <= 1 or (X.strides[0] >= d * item and X.strides[0] % item == 0)
    if rows_ok and forward and X.flags.aligned:
        return X
    return np.ascontiguousarray(X)


def _vec(a) -> np.ndarray | None:
    return None if a is None else np.ascontiguousarray(a, dtype=np.float64)


def fused_gradient(X, y, W, b, sample_weight=None, weight_sum=None, n_jobs=None):
    """One fused pass: ``(loss, G (d, k), gb (k))`` at the model ``(W, b)``.

    ``y`` is (n, k) float64 or None (zeros); ``W`` is (d, k); ``b`` is (k,).
    The loss is sum(w * (Xw + b - y)^2) / (2 sum(w)).
    """
    X = as_kernel_X(X)
    W = np.ascontiguousarray(W, dtype=np.float64)
    b = np.ascontiguousarray(b, dtype=np.float64)
    sw = _vec(sample_weight)
    if weight_sum is None:
        weight_sum = float(X.shape[0]) if sw is None else float(sw.sum())
    G = np.empty_like(W)
    gb = np.empty_like(b)
    y = None if y is None else np.ascontiguousarray(y, dtype=np.float64)
    loss = _core.fused_gradient(
        X, y, sw, weight_sum, W, b, G, gb, resolve_threads(n_jobs)
    )
    return loss, G, gb


def descend_stream(X, y, V, c, *, sample_weight, weight_sum, max_iter, learning_rate, tol,
                   alpha, fit_intercept, shift, scale, n_jobs):
    """Gradient descent over X in C++. Updates ``V`` (d, k) and ``c`` (k) in place.

    Returns ``(n_iter, status, grad_norm0, grad_norm, last_loss, loss_curve)``.
    """
    curve = np.empty(max_iter, dtype=np.float64)
    n_iter, status, g0, g, last = _core.descend_stream(
        X, y, _vec(sample_weight), float(weight_sum), V, c, curve, int(max_iter),
        float(learning_rate), float(tol), float(alpha), bool(fit_intercept),
        _vec(shift), _vec(scale), resolve_threads(n_jobs),
    )
    return n_iter, status, g0, g, last, curve[:n_iter]


def descend_gram(stats, V, c, *, max_iter, learning_rate, tol, alpha, fit_intercept, shift,
                 scale, n_jobs):
    """Gradient descent replayed from sufficient statistics (same iterates as
    :func:`descend_stream`). Same arguments and return value."""
    curve = np.empty(max_iter, dtype=np.float64)
    n_iter, status, g0, g, last = _core.descend_gram(
        stats.weight_sum, stats.mean_x, stats.mean_y, stats.Cxx, stats.Cxy, stats.Cyy,
        V, c, curve, int(max_iter), float(learning_rate), float(tol), float(alpha),
        bool(fit_intercept), _vec(shift), _vec(scale), resolve_threads(n_jobs),
    )
    return n_iter, status, g0, g, last, curve[:n_iter]


def hessian_norm_stream(X, *, sample_weight, weight_sum, alpha, fit_intercept, shift, scale,
                        n_jobs):
    """Largest Hessian eigenvalue of the standardised mean squared loss
    (power iteration, one fused pass per iteration)."""
    return _core.hessian_norm_stream(
        X, _vec(sample_weight), float(weight_sum), float(alpha), bool(fit_intercept),
        _vec(shift), _vec(scale), resolve_threads(n_jobs),
    )


def hessian_norm_gram(stats, *, alpha, fit_intercept, shift, scale, n_jobs):
    """:func:`hessian_norm_stream` on sufficient statistics."""
    return _core.hessian_norm_gram(
        stats.weight_sum, stats.mean_x, stats.mean_y, stats.Cxx, stats.Cxy, stats.Cyy,
        float(alpha), bool(fit_intercept), _vec(shift), _vec(scale), resolve_threads(n_jobs),
    )


@functools.lru_cache(maxsize=1)
def _blas_syrk():
    """scipy's BLAS dsyrk as a capsule."""
    from scipy.linalg import cython_blas

    return cython_blas.__pyx_capi__["dsyrk"]


def sufficient_stats(X, y, sample_weight=None, *, use_blas=False, n_jobs=None):
    """Centred sufficient statistics of ``(X, y)`` in one read of X.

    Returns ``(weight_sum, mean_x (d), mean_y (k), Cxx (d, d), Cxy (d, k),
    Cyy (k, k))``; ``y`` must be (n, k). The rank update runs in
    fastlinreg's own tiled kernel; ``use_blas=True`` runs it in scipy's BLAS
    dsyrk on the same packed blocks instead (slower for thin X, kept so the
    benchmark can show it).
    """
    X = as_kernel_X(X)
    y = np.ascontiguousarray(y, dtype=np.float64)
    d, k = X.shape[1], y.shape[1]
    mean_x, mean_y = np.empty(d), np.empty(k)
    Cxx, Cxy, Cyy = np.empty((d, d)), np.empty((d, k)), np.empty((k, k))
    wsum = _core.sufficient_stats(
        X, y, _vec(sample_weight), mean_x, mean_y, Cxx, Cxy, Cyy,
        _blas_syrk() if use_blas else None, resolve_threads(n_jobs),
    )
    return wsum, mean_x, mean_y, Cxx, Cxy, Cyy


def column_moments(X, sample_weight=None, n_jobs=None):
    """Weighted column means and variances in one pass: ``(weight_sum, mean, var)``."""
    X = as_kernel_X(X)
    d = X.shape[1]
    mean, var = np.empty(d), np.empty(d)
    wsum = _core.column_moments(X, _vec(sample_weight), mean, var, resolve_threads(n_jobs))
    return wsum, mean, var


def linear_predict(X, W, b, n_jobs=None):
    """``X @ W + b`` as (n, k) float64, accumulated in double without
    converting X."""
    X = as_kernel_X(X)
    W = np.ascontiguousarray(W, dtype=np.float64)
    b = np.ascontiguousarray(b, dtype=np.float64)
    P = np.empty((X.shape[0], b.shape[0]))
    _core.linear_predict(X, W, b, P, resolve_threads(n_jobs))
    return P


def descend_sgd(X, y, V, c, *, sample_weight, weight_sum, max_epochs, batch_size, shuffle, seed,
                eta0, power_t, epoch_offset, alpha, tol, n_iter_no_change, best_loss,
                no_improvement, ref_loss, fit_intercept, shift, scale):
    """Mini-batch SGD in C++. Updates ``V`` (d, k) and ``c`` (k) in place.

    Returns ``(n_epochs, status, best_loss, no_improvement, ref_loss, loss_curve)``.
    """
    curve = np.empty(max_epochs, dtype=np.float64)
    n_epochs, status, best, no_imp, ref = _core.descend_sgd(
        X, y, _vec(sample_weight), float(weight_sum), V, c, curve, int(max_epochs),
        int(batch_size), bool(shuffle), int(seed), float(eta0), float(power_t), int(epoch_offset),
        float(alpha), float(tol), int(n_iter_no_change), float(best_loss), int(no_improvement),
        float(ref_loss), bool(fit_intercept), _vec(shift), _vec(scale),
    )
    return n_epochs, status, best, no_imp, ref, curve[:n_epochs]
