"""The dask backend: the protocol on dask arrays and DataFrames, on any dask
scheduler (a ``distributed`` cluster when a ``Client`` is active).

The compiled CPU kernels run on the workers, each on the blocks it holds;
only the small results cross the network (a block's SufficientStats, a
pass's (loss, G, gb)), tree-reduced on the workers. The client keeps the
d x d solve and, for gradient descent, the loop itself: one pass over the
persisted blocks per step, then descent.hpp's update and its tol and
divergence rules, run by the same code as the reference backend's. SGD
visits the blocks in turn, each running an epoch of the compiled SGD on its
worker and handing the model on.

``fit`` picks this backend by itself for a dask collection (see
``backends.get_backend``); ``backend="dask"`` also takes numpy input, as one
block.
"""

from __future__ import annotations

import numpy as np

from .._losses import SQUARED
from ._protocol import DescentConfig, DescentOutcome, Problem, SgdConfig, SgdOutcome, Status

try:
    import dask
    import dask.array as da
    import distributed  # noqa: F401  (the cluster side; required by the extra)

    from . import _dask_rows as rows
except ImportError:
    dask = None

from . import cpu, reference

NAME = "dask"

_MISSING = "dask/distributed is not installed: pip install 'fastlinreg[dask]'"


def available() -> tuple[bool, str]:
    return (False, _MISSING) if dask is None else (True, "")


# ------------------------------------------------------------------ input
def prepare_X(X):
    """A dask array (n, d) with known row chunks; numpy input as one block (not copied)."""
    if isinstance(X, da.Array) or rows.is_dataframe(X):
        return rows.as_rows(rows.numeric_array(X, "X"))
    return da.from_array(cpu.prepare_X(X), chunks=-1)


def validate_fit_data(estimator, X, y, *, reset=True):
    """The estimator's check of (X, y) for dask collections (scikit-learn's for
    the rest): shapes, numbers, feature names; nothing is computed but a
    DataFrame's partition lengths."""
    from .._validation import validate_fit_data as in_memory

    if not dask.is_dask_collection(X):
        return in_memory(estimator, X, y, reset=reset)
    X = validate_rows(estimator, X, reset=reset)
    y = rows.numeric_array(y, "y")
    if y.ndim not in (1, 2) or y.shape[0] != X.shape[0]:
        raise ValueError(
            f"y must have shape ({X.shape[0]},) or ({X.shape[0]}, n_targets); got {y.shape}."
        )
    return X, y


def validate_rows(estimator, X, *, reset=True):
    """A fit's X as a dask array (n, d) of numbers, its feature count and
    names stored (``reset``) or checked; nothing computed but a DataFrame's
    partition lengths."""
    names = rows.feature_names(X)
    X = prepare_X(X)
    if X.ndim != 2 or X.shape[0] < 1 or X.shape[1] < 1:
        raise ValueError(f"X must be a non-empty 2-D array; got shape {X.shape}.")
    if reset:
        estimator.n_features_in_ = X.shape[1]
        if names is None:
            estimator.__dict__.pop("feature_names_in_", None)
        else:
            estimator.feature_names_in_ = names
    elif X.shape[1] != estimator.n_features_in_:
        raise ValueError(
            f"X has {X.shape[1]} features, but {type(estimator).__name__} is expecting "
            f"{estimator.n_features_in_} features as input."
        )
    return X


def validate_predict_data(estimator, X):
    """X for predict: a dask array (n, n_features_in_), left lazy."""
    X = prepare_X(X)
    if X.ndim != 2 or X.shape[1] != estimator.n_features_in_:
        raise ValueError(
            f"X has shape {X.shape}, but {type(estimator).__name__} is expecting "
            f"{estimator.n_features_in_} features as input."
        )
    return X


def make_problem(X, y, sample_weight, loss=SQUARED, n_jobs=None) -> Problem:
    """The Problem of dask rows: y as (n, k) float64 and the weights aligned
    with X's blocks; the weights' sum and sign are checked in one small pass."""
    X = prepare_X(X)
    chunks = X.chunks[0]
    y = y if isinstance(y, da.Array) else np.asarray(y, dtype=np.float64)
    Y = rows.aligned(y.reshape(X.shape[0], -1), chunks)
    if sample_weight is None:
        return Problem(X, Y, None, float(X.shape[0]), loss, n_jobs)
    sw = rows.aligned(rows.numeric_array(sample_weight, "sample_weight"), chunks)
    if sw.ndim != 1 or sw.shape[0] != X.shape[0]:
        raise ValueError(f"sample_weight must have shape ({X.shape[0]},); got {sw.shape}.")
    wsum, lowest = dask.compute(sw.sum(), sw.min())
    if not (np.isfinite(wsum) and lowest >= 0):
        raise ValueError("sample_weight must be finite and non-negative.")
    if not wsum > 0:
        raise ValueError("sample_weight sums to zero: at least one sample needs a positive weight.")
    return Problem(X, Y, sw, float(wsum), loss, n_jobs)


# ------------------------------------------------------------------ passes
@np.errstate(all="ignore")
def fused_pass(problem: Problem, W, b):
    W, b = np.asarray(W, dtype=np.float64), np.asarray(b, dtype=np.float64)
    r = rows.Rows.of(problem)
    return _oracle(r)(W, b)


def _oracle(r):
    """(W, b) -> (mean loss, G, gb): one pass over the blocks, summed on the workers."""

    def oracle(W, b):
        return r.map_reduce(
            rows.block_pass, rows.sum_passes, W, b, r.weight_sum, r.loss_name, r.n_jobs
        )

    return oracle


def hessian(problem: Problem, W, b):
    """The mean loss's Hessian in [W.ravel(), b] (Newton's), summed over the
    blocks on the workers."""
    W, b = np.asarray(W, dtype=np.float64), np.asarray(b, dtype=np.float64)
    r = rows.Rows.of(problem)
    return r.map_reduce(
        rows.block_hessian, rows.sum_arrays, W, b, r.weight_sum, r.loss_name, r.n_jobs
    )


def fused_hessian(problem: Problem, W, b):
    """(mean loss, G, gb, H) in one read of each block: the compiled Newton
    pass on its worker, the four summed over the blocks."""
    W, b = np.asarray(W, dtype=np.float64), np.asarray(b, dtype=np.float64)
    r = rows.Rows.of(problem)
    return r.map_reduce(
        rows.block_fused_hessian, rows.sum_passes, W, b, r.weight_sum, r.loss_name, r.n_jobs
    )


def separated(problem: Problem, W, b) -> bool:
    """solvers.objective.separated on each block where it is, and-ed: one round trip."""
    from . import _dask_labels

    r = rows.Rows.of(problem)
    W, b = np.asarray(W, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return r.map_reduce(_dask_labels.block_separated, _dask_labels.all_of, W, b, r.n_jobs)


def hold(problem: Problem) -> Problem:
    """The problem with its rows persisted on the workers (``Rows.persisted``)
    for a solver that passes over them many times (lbfgs, newton); they are
    released with the returned problem."""
    return rows.HeldProblem.of(problem, rows.Rows.of(problem).persisted())


def predict(X, W, b, n_jobs=None):
    """X W + b (n, k), block by block: lazy for a dask collection, computed for numpy."""
    lazy = dask.is_dask_collection(X)
    X = prepare_X(X)
    W, b = np.asarray(W, dtype=np.float64), np.asarray(b, dtype=np.float64)
    P = X.map_blocks(
        rows.block_predict, W, b, n_jobs, dtype=np.float64, chunks=(X.chunks[0], (b.shape[0],))
    )
    return P if lazy else P.compute()


def statistics(problem: Problem):
    """The SufficientStats of the rows: each block's on its worker, merged up a
    tree, in one round trip; the weights' count and log-sum come with them."""
    from .._stats import SufficientStats

    r = rows.Rows.of(problem)
    stats = r.map_reduce(rows.block_stats, rows.merge_stats, r.n_jobs)
    if stats is None:  # no rows with weight
        d, k = problem.X.shape[1], problem.Y.shape[1]
        zeros = (np.zeros(d), np.zeros(k), np.zeros((d, d)), np.zeros((d, k)), np.zeros((k, k)))
        return SufficientStats(0.0, *zeros)
    return stats


def sufficient_stats(problem: Problem):
    """Each block's statistics on its worker, merged up a tree; X stays there."""
    s = statistics(problem)
    return s.weight_sum, s.mean_x, s.mean_y, s.Cxx, s.Cxy, s.Cyy


@np.errstate(over="ignore", under="ignore")
def column_moments(problem: Problem):
    r = rows.Rows.of(problem)
    ws, mean, m2, var = r.map_reduce(rows.block_moments, rows.merge_moments, r.n_jobs)
    return ws, mean, m2 / ws if var is None else var


def over_columns(problem: Problem, cols, block, how, *args):
    """``block(X_i[:, cols], w_i[:, None], *args)`` on each block where it is,
    combined by ``how`` ("max" or "sum") up the tree: the columns whose
    moments need a second look (solvers/descent.py) stay on the workers."""
    r = rows.Rows.of(problem)
    combine = rows.max_arrays if how == "max" else rows.sum_arrays
    return r.map_reduce(rows.block_columns, combine, np.asarray(cols), block, *args)


# A column's weighted second moment outside this range (descent.py's
# _MOMENT_RANGE) under- or overflows in XᵀWX.
_GRAM_RANGE = (1e-280, 1e280)


def _gram_in_range(problem: Problem, config: DescentConfig) -> bool:
    """Whether XᵀWX holds every column's moment: no standardised column's
    weighted square (scale² Σw) lies outside float64's safe range. Where one
    does (a column at 1e200 or 1e-200), the Lanczos products are passes over
    the blocks, which scale the columns as they read them."""
    if config.scale is None:
        return True
    s = config.scale[np.isfinite(config.scale)]
    with np.errstate(over="ignore", under="ignore"):
        v = s * s * problem.weight_sum
    return bool(np.all((v > _GRAM_RANGE[0]) & (v < _GRAM_RANGE[1])))


# Up to this many features the Lanczos bound runs on XᵀWX from one pass's
# statistics (one round trip instead of one per Lanczos pass).
_GRAM_CURVATURE_FEATURES = 256


@np.errstate(all="ignore")
def curvature(problem: Problem, config: DescentConfig) -> float:
    """The reference's top_curvature (Lanczos): on the merged statistics'
    XᵀWX for few features (the same products, summed in another order), else
    each product one pass over the persisted blocks."""
    d, c = problem.X.shape[1], problem.loss.curvature
    one_pass = d <= _GRAM_CURVATURE_FEATURES and _gram_in_range(problem, config)
    if one_pass and len(problem.X.chunks[0]) > 1:
        ws, mean, _, Cxx, _, _ = sufficient_stats(problem)

        def gram_probe(W, b):
            m = b + mean @ W
            return c * (Cxx @ W / ws + np.outer(mean, m)), c * m

        return reference.top_curvature(gram_probe, config, d, c)
    if len(problem.X.chunks[0]) == 1:  # the compiled bound, for the problem's own loss
        return _on_one_block("curvature", rows.Rows.of(problem), config)
    p = Problem(problem.X, None, problem.sample_weight, problem.weight_sum, SQUARED, problem.n_jobs)
    r = rows.Rows.of(p).persisted()
    oracle = _oracle(r)

    def probe(W, b):
        # The squared loss's gradient with y = 0 is XᵀWXv/Σw: the loss's probe over c.
        _, G, gb = oracle(W, b)
        return c * G, c * gb

    return reference.top_curvature(probe, config, d, c)


def curvature_gram(stats, config: DescentConfig, n_jobs=None) -> float:
    return cpu.curvature_gram(stats, config, n_jobs)  # d x d, on the client


@np.errstate(all="ignore")
def descend(problem: Problem, config: DescentConfig, W0, b0) -> DescentOutcome:
    """descent.hpp's loop on the client (the reference's, step for step), each
    step one fused pass over the persisted blocks."""
    r = rows.Rows.of(problem).persisted()
    if len(r.blocks()) == 1:  # the compiled loop, on the worker holding the block
        return _on_one_block("descend", r, config, W0, b0)
    return reference._descend(_oracle(r), config, W0, b0)


def descend_gram(stats, config: DescentConfig, W0, b0, n_jobs=None) -> DescentOutcome:
    return cpu.descend_gram(stats, config, W0, b0, n_jobs)  # d x d, on the client


# ------------------------------------------------------------------ SGD
def _block_seed(seed: int, index: int) -> int:
    # Block 0 keeps the seed, so one block draws the in-memory order.
    return (seed ^ (0x9E3779B97F4A7C15 * index)) % 2**63


def sgd(problem: Problem, config: SgdConfig, W0, b0) -> SgdOutcome:
    """Epochs over the blocks in turn: each block runs one epoch of the compiled
    SGD on its worker from the model the previous block handed on. One block
    runs the whole schedule there, exactly the in-memory SGD. The stopping
    rule runs on the client once per epoch (reference.sgd's)."""
    r = rows.Rows.of(problem).persisted()
    blocks = r.blocks()
    if len(blocks) == 1:
        return _on_one_block("sgd", r, config, W0, b0)
    n = problem.X.shape[0]
    mean_weight = r.weight_sum / n
    W, b = np.asarray(W0, dtype=np.float64), np.asarray(b0, dtype=np.float64)
    best, no_imp, ref = config.best_loss, config.no_improvement, config.ref_loss
    curve, status = [], Status.MAX_ITER
    for e in range(config.max_epochs):
        configs = {
            index: _block_config(config, _block_seed(config.seed, index), config.epoch_offset + e)
            for index, *_ in blocks
        }
        W, b, total, diverged = r.chain(
            rows.block_sgd, (W, b, 0.0, False), configs, mean_weight, r.loss_name, r.n_jobs
        )
        epoch_loss = total / n
        if diverged or not np.isfinite(epoch_loss):
            status = Status.DIVERGED
            break
        curve.append(epoch_loss)
        if not ref > 0.0:
            ref = epoch_loss
        if config.tol is not None:
            no_imp = no_imp + 1 if epoch_loss > best - config.tol * ref else 0
            if no_imp >= config.n_iter_no_change:
                best = min(best, epoch_loss)
                status = Status.CONVERGED
                break
        best = min(best, epoch_loss)
    return SgdOutcome(W, b, len(curve), status, best, no_imp, ref, np.array(curve))


def _block_config(config: SgdConfig, seed: int, epoch: int) -> SgdConfig:
    """One epoch (numbered ``epoch``) of ``config`` on one block, without stopping rules."""
    from dataclasses import replace

    return replace(config, max_epochs=1, seed=seed, epoch_offset=epoch, tol=None)


def _on_one_block(operation: str, r, *args):
    """The cpu backend's ``operation`` run where the only block is: the
    in-memory loop itself, with no round trip per step."""
    (_, _, X, Y, w) = r.blocks()[0]
    task = dask.delayed(_run_cpu, pure=True)
    return task(operation, X, Y, w, r.weight_sum, r.loss_name, r.n_jobs, *args).compute()


def _run_cpu(operation, X, Y, w, weight_sum, loss_name, n_jobs, *args):
    from .._losses import get_loss

    problem = Problem(cpu.prepare_X(X), Y, w, weight_sum, get_loss(loss_name), n_jobs)
    return getattr(cpu, operation)(problem, *args)
