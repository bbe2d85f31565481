"""The CPU backend: fastlinreg's compiled C++/OpenMP kernels (``_core``).

Every function takes checked objects (``_core.Problem``, parameter structs)
built here, allocates the outputs and picks the thread count. A
row-contiguous float32/float64 X is never copied.
"""

from __future__ import annotations

import math
import os

import numpy as np

from .. import _core
from . import _gram_kernel
from ._csr import as_csr, is_sparse, stats_rows_per_block
from ._hessian import mean_loss_hessian
from ._protocol import (
    DescentConfig,
    DescentOutcome,
    Problem,
    SgdConfig,
    SgdOutcome,
    Status,
)

NAME = "cpu"
_F64, _F32 = np.dtype(np.float64), np.dtype(np.float32)
_STATUS = tuple(Status)  # by value: a lookup, not an Enum call per result


def available() -> tuple[bool, str]:
    return True, ""


def resolve_threads(n_jobs: int | None) -> int:
    """Thread count for a kernel call: the one place it is decided.

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


def prepare_X(X):
    """X as the kernels read it: float32/float64 with contiguous rows, or CSR.

    A C-contiguous X, or a view whose rows are contiguous (a row slice with a
    step), is returned as is. Anything else (Fortran order, column strides)
    is copied once, in C order, keeping its float dtype. Sparse X becomes
    CSR (backends/_csr.py: CSC converts once), never dense.
    """
    if type(X) is np.ndarray and X.ndim == 2 and (X.dtype is _F64 or X.dtype is _F32):
        flags = X.flags
        if flags.c_contiguous and flags.aligned:  # the common case, without the checks below
            return X
    if is_sparse(X):
        return as_csr(X)
    X = np.asarray(X)
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float64)
    n, d = X.shape
    item = X.dtype.itemsize
    rows_ok = d <= 1 or X.strides[1] == item
    forward = n <= 1 or (X.strides[0] >= d * item and X.strides[0] % item == 0)
    if rows_ok and forward and X.flags.aligned:
        return X
    return np.ascontiguousarray(X)


def _f64(a):
    return None if a is None else np.ascontiguousarray(a, dtype=np.float64)


def _problem(p: Problem) -> _core.Problem:
    return _core_problem(p.X, _f64(p.Y), _f64(p.sample_weight), float(p.weight_sum), p.loss.kind)


def _core_problem(X, Y, sw, weight_sum, loss_kind) -> _core.Problem:
    X = prepare_X(X)
    if type(X) is not np.ndarray and is_sparse(X):
        return _core.Problem.csr(
            X.data, X.indices, X.indptr, X.shape[1], Y, sw, weight_sum, loss_kind
        )
    return _core.Problem(X, Y, sw, weight_sum, loss_kind)


def _stats(stats) -> _core.Stats:
    return _core.Stats(
        stats.weight_sum, stats.mean_x, stats.mean_y, stats.Cxx, stats.Cxy, stats.Cyy
    )


def _model(W0, b0):
    return (
        np.array(W0, dtype=np.float64, order="C", copy=True),
        np.array(b0, dtype=np.float64, copy=True),
    )


# DescentParams of plain runs (no standardisation, one alpha), by value (and
# alpha's sign: -0.0 == 0.0): making one sets eight fields through pybind11,
# ~3 us of a tiny fit. The kernels take them read-only.
_PLAIN_PARAMS: dict = {}


def _descent_params(c: DescentConfig) -> _core.DescentParams:
    plain = c.shift is None and c.scale is None and type(c.alpha) is float
    if plain:
        sign = math.copysign(1.0, c.alpha)
        key = (c.max_iter, c.learning_rate, c.tol, c.alpha, sign, c.fit_intercept, c.positive)
        known = _PLAIN_PARAMS.get(key)
        if known is not None:
            return known
    p = _new_descent_params(c)
    if plain:
        if len(_PLAIN_PARAMS) >= 64:
            _PLAIN_PARAMS.clear()
        _PLAIN_PARAMS[key] = p
    return p


def _new_descent_params(c: DescentConfig) -> _core.DescentParams:
    p = _core.DescentParams()
    p.max_iter = int(c.max_iter)
    p.learning_rate = float(c.learning_rate)
    p.tol = -1.0 if c.tol is None else float(c.tol)
    _penalty(p, c.alpha)
    p.positive = bool(c.positive)
    p.fit_intercept = bool(c.fit_intercept)
    p.shift, p.scale = _f64(c.shift), _f64(c.scale)
    return p


def _penalty(p, alpha) -> None:
    """A float alpha, or one per output: then alpha_per_output, with alpha
    their maximum (what the curvature reads)."""
    if type(alpha) is float or np.ndim(alpha) == 0:
        p.alpha = float(alpha)
    else:
        p.alpha = float(np.max(alpha))
        p.alpha_per_output = _f64(alpha)


def fused_pass(problem: Problem, W, b):
    W, b = _model(W, b)
    G, gb = np.empty_like(W), np.empty_like(b)
    loss = _core.fused_gradient(_problem(problem), W, b, G, gb, resolve_threads(problem.n_jobs))
    return loss, G, gb


def predict(X, W, b, n_jobs=None) -> np.ndarray:
    X = prepare_X(X)
    W, b = _model(W, b)
    P = np.empty((X.shape[0], b.shape[0]))
    _core.linear_predict(_core_problem(X, None, None, 1.0, 0), W, b, P, resolve_threads(n_jobs))
    return P


# Rows per call of the statistics pass: about 2^30 multiply-adds (tens of
# milliseconds), so that Python acts on Ctrl-C between calls. The blocks
# depend on the shape only, so the bits do not depend on the thread count.
_STATS_BLOCK_WORK = 1 << 30
# The same for CSR rows, in products of stored values (each a scattered
# update: about as long as 2^4 dense multiply-adds).
_STATS_BLOCK_WORK_CSR = 1 << 26


def sufficient_stats(problem: Problem, *, _kernel=None):
    """The centred statistics in one read of X. The rank update is the one
    ``_gram_kernel.choose`` picks for this shape; ``_kernel`` ("own" or
    "blas") forces one, for the tests and the benchmark only."""
    from .._stats import SufficientStats

    n, d = problem.X.shape
    k = problem.Y.shape[1]
    if is_sparse(problem.X):
        syrk = None
    else:
        kernel = _kernel or _gram_kernel.choose(n, d, k).kernel
        syrk = _gram_kernel.blas_syrk() if kernel == "blas" else None
    rows = _stats_block_rows(problem)
    if n <= rows:
        return _stats_pass(problem, syrk)
    total = None
    for start in range(0, n, rows):
        part = slice(start, start + rows)
        sw = None if problem.sample_weight is None else problem.sample_weight[part]
        block = Problem(
            problem.X[part],
            problem.Y[part],
            sw,
            float(problem.X[part].shape[0]) if sw is None else float(sw.sum()),
            problem.loss,
            problem.n_jobs,
        )
        if not block.weight_sum > 0:
            continue  # rows of weight 0 add nothing
        stats = SufficientStats(*_stats_pass(block, syrk))
        total = stats if total is None else total.merge(stats)
    return (
        total.weight_sum,
        total.mean_x,
        total.mean_y,
        np.ascontiguousarray(total.Cxx),
        total.Cxy,
        total.Cyy,
    )


def _stats_block_rows(problem: Problem) -> int:
    """Rows per call of the statistics pass (see _STATS_BLOCK_WORK)."""
    d, k = problem.X.shape[1], problem.Y.shape[1]
    if type(problem.X) is not np.ndarray and is_sparse(problem.X):
        return stats_rows_per_block(problem.X, k, _STATS_BLOCK_WORK_CSR)
    return max(1024, _STATS_BLOCK_WORK // max(1, d * (d + k)))


def _stats_pass(problem: Problem, syrk):
    d, k = problem.X.shape[1], problem.Y.shape[1]
    parts = (np.empty(d), np.empty(k), np.empty((d, d)), np.empty((d, k)), np.empty((k, k)))
    wsum = _core.sufficient_stats(
        _problem(problem), _core.Stats(1.0, *parts), resolve_threads(problem.n_jobs), syrk
    )
    return (wsum, *parts)


def column_moments(problem: Problem):
    d = problem.X.shape[1]
    mean, var = np.empty(d), np.empty(d)
    wsum = _core.column_moments(_problem(problem), mean, var, resolve_threads(problem.n_jobs))
    return wsum, mean, var


def curvature(problem: Problem, config: DescentConfig) -> float:
    return _core.curvature_stream(
        _problem(problem), _descent_params(config), resolve_threads(problem.n_jobs)
    )


def curvature_gram(stats, config: DescentConfig, n_jobs=None) -> float:
    return _core.curvature_gram(_stats(stats), _descent_params(config), resolve_threads(n_jobs))


def _descent_outcome(r, W, b, curve) -> DescentOutcome:
    curve = curve if r.n_iter == curve.shape[0] else curve[: r.n_iter].copy()  # a full run: as is
    status = _STATUS[r.status] if 0 <= r.status < len(_STATUS) else Status(r.status)
    return DescentOutcome(W, b, r.n_iter, status, r.last_loss, curve)


def descend(problem: Problem, config: DescentConfig, W0, b0) -> DescentOutcome:
    W, b = _model(W0, b0)
    curve = np.empty(config.max_iter)
    r = _core.descend_stream(
        _problem(problem),
        _descent_params(config),
        W,
        b,
        curve,
        resolve_threads(problem.n_jobs),
        config.progress,
    )
    return _descent_outcome(r, W, b, curve)


def descend_gram(stats, config: DescentConfig, W0, b0, n_jobs=None) -> DescentOutcome:
    W, b = _model(W0, b0)
    curve = np.empty(config.max_iter)
    r = _core.descend_gram(
        _stats(stats),
        _descent_params(config),
        W,
        b,
        curve,
        resolve_threads(n_jobs),
        config.progress,
    )
    return _descent_outcome(r, W, b, curve)


def replay_descent(stats, config: DescentConfig, W0, b0) -> DescentOutcome | None:
    """descend_gram's outcome for a plain fixed step in closed form (replay.hpp),
    or None where it cannot be certified (solvers/_replay.py's rules)."""
    W, b = _model(W0, b0)
    curve = np.empty(config.max_iter)
    r = _core.replay_descent(_stats(stats), _descent_params(config), W, b, curve)
    return None if r is None else _descent_outcome(r, W, b, curve)


def replay_rows(problem: Problem, config: DescentConfig, W0, b0):
    """sufficient_stats and replay_descent in one call (a tiny problem's
    fixed cost): ((weight_sum, mean_x, mean_y, Cxx, Cxy, Cyy), whether they
    are finite, the outcome or None): the same as the two calls, which run
    where sufficient_stats would not make one pass with the own rank update
    (many targets)."""
    n, d = problem.X.shape
    k = problem.Y.shape[1]
    # (d + k + 8)^2: the padded Gram's size, or more; a block is 1024 rows or more
    big = n > 1024 and n > _stats_block_rows(problem)
    if big or n * (d + k + 8) ** 2 >= _gram_kernel.MEASURE_ABOVE:
        from .._stats import SufficientStats

        parts = sufficient_stats(problem)
        stats = SufficientStats(*parts)
        finite = stats.is_finite()
        return parts, finite, replay_descent(stats, config, W0, b0) if finite else None
    W, b = _model(W0, b0)
    curve = np.empty(config.max_iter)
    params, threads = _descent_params(config), resolve_threads(problem.n_jobs)
    parts, finite, r = _core.replay_rows(_problem(problem), params, W, b, curve, threads)
    return parts, finite, None if r is None else _descent_outcome(r, W, b, curve)


def sgd(problem: Problem, config: SgdConfig, W0, b0) -> SgdOutcome:
    W, b = _model(W0, b0)
    p = _core.SgdParams()
    for field in ("max_epochs", "batch_size", "epoch_offset", "n_iter_no_change", "no_improvement"):
        setattr(p, field, int(getattr(config, field)))
    p.shuffle, p.fit_intercept = bool(config.shuffle), bool(config.fit_intercept)
    p.seed = int(config.seed)
    p.eta0 = float(config.eta0)
    _penalty(p, config.alpha)
    p.positive = bool(config.positive)
    p.tol = -1.0 if config.tol is None else float(config.tol)
    p.best_loss, p.ref_loss = float(config.best_loss), float(config.ref_loss)
    p.shift, p.scale = _f64(config.shift), _f64(config.scale)
    curve = np.empty(config.max_epochs)
    r = _core.descend_sgd(_problem(problem), p, W, b, curve, config.progress)
    return SgdOutcome(
        W,
        b,
        r.n_epochs,
        Status(r.status),
        r.best_loss,
        r.no_improvement,
        r.ref_loss,
        curve[: r.n_epochs].copy(),
    )


def hessian(problem: Problem, W, b) -> np.ndarray:
    """The compiled Newton pass's Hessian (numpy's for sparse X)."""
    if is_sparse(problem.X):
        return mean_loss_hessian(problem, W, b)
    return fused_hessian(problem, W, b)[3]


def fused_hessian(problem: Problem, W, b):
    """(mean loss, G (d, k), gb (k), H) at (W, b) in one read of X: the
    Newton pass (hessian.hpp), H as :func:`hessian` gives it. Sparse X: the
    fused pass and numpy's Hessian, two reads."""
    if is_sparse(problem.X):
        return (*fused_pass(problem, W, b), mean_loss_hessian(problem, W, b))
    W, b = _model(W, b)
    G, gb = np.empty_like(W), np.empty_like(b)
    size = (W.shape[0] + 1) * b.shape[0]
    H = np.empty((size, size))
    threads = resolve_threads(problem.n_jobs)
    loss = _core.fused_hessian(_problem(problem), W, b, G, gb, H, threads)
    return loss, G, gb, H
