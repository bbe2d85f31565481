"""The dask backend's rows: collections checked and aligned into row blocks,
and the tasks that run on the workers, each on the block it is given.

Imported only by backends/dask.py, once dask is known to be installed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields

import numpy as np

try:  # only used once backends/dask.py has found dask installed
    import dask
    import dask.array as da
    import distributed
except ImportError:
    pass

from .._losses import SQUARED, get_loss
from .._stats import SufficientStats
from . import _dask_graph, cpu
from ._protocol import Problem

_FAN_IN = _dask_graph.FAN_IN


def is_dataframe(data) -> bool:
    return hasattr(data, "to_dask_array") and hasattr(data, "dtypes")


def numeric_array(data, what: str):
    """A dask DataFrame/Series/array as a dask array with known row chunks.

    A DataFrame's non-numeric columns are named in the error; its partition
    lengths are computed (one read of the index), as dask needs them to align.
    """
    if is_dataframe(data):
        dtypes = data.dtypes.items() if hasattr(data.dtypes, "items") else [(data.name, data.dtype)]
        bad = [str(c) for c, t in dtypes if getattr(t, "kind", "O") not in "biuf"]
        if bad:
            raise ValueError(
                f"{what} has non-numeric column(s) {', '.join(map(repr, bad))}: fastlinreg fits "
                "numbers only. Drop them or encode them as numbers (e.g. with "
                "dask_ml.preprocessing.Categorizer and DummyEncoder) first."
            )
        data = data.to_dask_array(lengths=True)
    if not isinstance(data, da.Array):
        data = da.from_array(np.asarray(data), chunks=-1)
    if data.dtype.kind not in "biuf":
        raise ValueError(f"{what} must hold numbers; got dtype {data.dtype}.")
    if any(np.isnan(c) for c in data.chunks[0]):
        data = data.compute_chunk_sizes()
    return data


def feature_names(data):
    """The DataFrame's column names when they are all strings (scikit-learn's rule)."""
    if is_dataframe(data) and hasattr(data, "columns"):
        names = list(data.columns)
        if names and all(isinstance(c, str) for c in names):
            return np.asarray(names, dtype=object)
    return None


def as_rows(X) -> da.Array:
    """X (n, d) as the blocks read it: float32/float64, one chunk across columns."""
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float64)
    return X.rechunk({1: -1}) if len(X.chunks[1]) > 1 else X


def aligned(a, chunks):
    """``a`` (n,) or (n, k) as a float64 dask array with X's row ``chunks``."""
    if a is None:
        return None
    if not isinstance(a, da.Array):
        a = np.asarray(a, dtype=np.float64)
        return da.from_array(a, chunks=(chunks,) + a.shape[1:])
    a = a.astype(np.float64)
    return a.rechunk((chunks,) + ((-1,) if a.ndim == 2 else ()))


# A group of in-memory blocks run as one task holds at most this fraction
# (1 / _GROUP_SHARE) of its worker's memory limit (Rows._resident_groups).
_GROUP_SHARE = 20


@dataclass
class Rows:
    """A problem's X (n, d), Y (n, k) and weights (n,) as aligned row blocks."""

    X: da.Array
    Y: da.Array | None
    w: da.Array | None
    weight_sum: float
    loss_name: str
    n_jobs: int | None

    @classmethod
    def of(cls, problem: Problem) -> Rows:
        if isinstance(problem, HeldProblem):
            return problem.rows
        X = as_rows(problem.X)
        return cls(
            X,
            aligned(problem.Y, X.chunks[0]),
            aligned(problem.sample_weight, X.chunks[0]),
            float(problem.weight_sum),
            problem.loss.name,
            problem.n_jobs,
        )

    def persisted(self) -> Rows:
        """The same rows held in the workers' memory, for passes that repeat,
        if they fit in half the cluster's memory limit; otherwise the rows
        themselves, each pass reading its blocks from their source again.

        On a distributed cluster the blocks are packed into one shard per
        worker thread (consecutive blocks, their X, Y and w together), so a
        pass is one task per shard, with no graph to build and no block to
        move; the lineage stays with the scheduler, which recomputes a lost
        shard."""
        client = _client()
        if client is None:
            X, Y, w = dask.persist(self.X, self.Y, self.w)
            return Rows(X, Y, w, self.weight_sum, self.loss_name, self.n_jobs)
        workers = client.scheduler_info(n_workers=-1)["workers"]
        limit = sum(float(info.get("memory_limit") or np.inf) for info in workers.values())
        if self.nbytes > limit / 2:  # out of core: persisting would spill to disk
            return self
        out = Rows(self.X, self.Y, self.w, self.weight_sum, self.loss_name, self.n_jobs)
        slots = [a for a, info in sorted(workers.items()) for _ in range(info["nthreads"])]
        blocks = self.blocks()
        shards = np.array_split(np.arange(len(blocks)), max(1, min(len(slots), len(blocks))))
        out._shards = [
            client.compute(
                dask.delayed(_pack)([blocks[i] for i in shard]),
                workers=[slot],
                allow_other_workers=True,
            )
            for shard, slot in zip(shards, slots)
        ]
        out._client = client
        return out

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.X, self.Y, self.w) if a is not None)

    def blocks(self):
        """[(index, first row, X block, Y block or None, w block or None)], as delayed."""
        if getattr(self, "_blocks", None) is None:
            self._blocks = self._split()
        return self._blocks

    def starts(self):
        """Each block's first row."""
        return np.concatenate([[0], np.cumsum(self.X.chunks[0])[:-1]]).astype(np.int64)

    def _split(self):
        starts = self.starts()
        xs = self.X.to_delayed().ravel()
        ys = self.Y.to_delayed().ravel() if self.Y is not None else [None] * len(xs)
        ws = self.w.to_delayed().ravel() if self.w is not None else [None] * len(xs)
        return [(i, int(s), x, y, w) for i, (s, x, y, w) in enumerate(zip(starts, xs, ys, ws))]

    def map_reduce(self, task, combine, *args):
        """``combine`` of ``task(index, first_row, X, Y, w, *args)`` over the blocks,
        tree-reduced on the workers: one round trip, each block's lineage fused
        into its task where dask allows (_dask_graph), else one delayed task
        per block, combined to one result on the workers."""
        if getattr(self, "_shards", None) is not None:
            return self._submit(task, combine, args)
        if _dask_graph.FUSES:
            arrays = (self.X, self.Y, self.w)
            starts = self.starts()
            return _dask_graph.map_reduce(
                arrays, starts, task, combine, args, self._resident_groups
            )
        parts = [dask.delayed(task, pure=True)(*blk, *args) for blk in self.blocks()]
        while len(parts) > 1:
            parts = [
                dask.delayed(combine, pure=True)(*parts[i : i + _FAN_IN])
                for i in range(0, len(parts), _FAN_IN)
            ]
        return dask.compute(parts[0])[0]

    def _resident_groups(self, sources):
        """X's blocks by the worker thread that holds them, where every block is
        already in the cluster's memory (persisted, or scattered and wrapped by
        from_delayed; ``sources``: the keys outside the pass's graph that each
        block is made from): one task per worker thread instead of one per block,
        each task costing a scheduler message and a few ms of a worker's time.
        None otherwise: a block still to be read (from a file, from its
        lineage) stays a task of its own, so a worker holds one such block at
        a time. In memory means: each block is made from one key the cluster
        holds, of at least the block's bytes.
        """
        client = _client()
        if client is None or len(self.X.chunks[0]) < 2:
            return None
        if not all(len(src) == 1 for src in sources):
            return None
        keys = [next(iter(src)) for src in sources]
        futures = {f.key: f for f in distributed.futures_of(self.X)}
        if not all(k in futures for k in keys):
            return None
        held = [futures[k] for k in dict.fromkeys(keys)]
        who = client.who_has(held)
        size = client.nbytes([f.key for f in held], summary=False)
        rows_bytes = self.X.dtype.itemsize * int(np.prod(self.X.shape[1:]))
        for k, n in zip(keys, self.X.chunks[0]):
            if not who.get(k) or size.get(k, 0) < n * rows_bytes:
                return None
        workers = client.scheduler_info(n_workers=-1)["workers"]
        by_worker: dict = {}
        for i, k in enumerate(keys):
            by_worker.setdefault(sorted(who[k])[0], []).append(i)
        groups = []
        for worker, members in sorted(by_worker.items()):
            info = workers.get(worker, {})
            # A group's blocks may each be copied on their way in (a DataFrame's
            # partitions to arrays, say), all alive until the group's task ends:
            # a group stays under a twentieth of the worker's memory limit.
            cap = float(info.get("memory_limit") or 0) / _GROUP_SHARE or np.inf
            total = sum(int(self.X.chunks[0][i]) for i in members) * rows_bytes
            parts = max(int(info.get("nthreads", 1)), int(np.ceil(total / cap)))
            parts = max(1, min(parts, len(members)))
            groups += [list(map(int, g)) for g in np.array_split(members, parts)]
        return groups

    def chain(self, task, state, per_block, *args):
        """The last ``state = task(index, first_row, X, Y, w, state, per_block[index],
        *args)`` over the blocks in order, each task on the worker holding its block."""
        if getattr(self, "_shards", None) is not None:
            for shard in self._shards:
                state = self._client.submit(
                    _shard_chain, task, shard, state, per_block, *args, pure=False
                )
            return state.result()
        for blk in self.blocks():
            state = dask.delayed(task, pure=True)(*blk, state, per_block[blk[0]], *args)
        return dask.compute(state)[0]

    def _submit(self, task, combine, args):
        """map_reduce over the shards: one task each, sent to the scheduler as
        one graph (one message for all shards); their few partials are
        combined on the client, in block order."""
        m = len(self._shards)
        parts = self._client.map(
            _shard_pass,
            [task] * m,
            [combine] * m,
            self._shards,
            *([a] * m for a in args),
            pure=False,
        )
        return combine(*self._client.gather(parts))


@dataclass
class HeldProblem(Problem):
    """A Problem whose rows are held (persisted) for repeated passes."""

    rows: Rows | None = None

    @classmethod
    def of(cls, problem: Problem, held: Rows) -> HeldProblem:
        return cls(**{f.name: getattr(problem, f.name) for f in fields(Problem)}, rows=held)


def _client():
    """The distributed Client dask computes on by default, if there is one."""
    try:
        return distributed.default_client()
    except ValueError:
        return None


def _pack(blocks):
    """A shard: [(index, first row, X, Y, w)] of consecutive blocks (no copy)."""
    return blocks


def _shard_pass(task, combine, shard, *args):
    return combine(*[task(*block, *args) for block in shard])


def _shard_chain(task, shard, state, per_block, *args):
    for block in shard:
        state = task(*block, state, per_block[block[0]], *args)
    return state


def _block_problem(X, Y, w, weight_sum, loss_name, n_jobs) -> Problem:
    return Problem(cpu.prepare_X(X), Y, w, weight_sum, get_loss(loss_name), task_threads(n_jobs))


def task_threads(n_jobs):
    """A block task's threads: the user's n_jobs, else one, as dask runs one task
    per core (distributed's worker processes set OMP_NUM_THREADS=1 for this), or
    whatever OMP_NUM_THREADS says where it is set."""
    if n_jobs is None and "OMP_NUM_THREADS" not in os.environ:
        return 1
    return n_jobs


def _bad_block(index, start, X, Y, what) -> str:
    """Which block (and column) holds a NaN or inf, or that the values overflow."""
    rows = f"block {index} (rows {start} to {start + X.shape[0] - 1})"
    cols = np.flatnonzero(~np.isfinite(X).all(axis=0))
    if cols.size:
        return (
            f"Input X contains NaN or infinity in {rows}, column {int(cols[0])}. "
            "Remove or impute those values."
        )
    if Y is not None and not np.isfinite(Y).all():
        return f"Input y contains NaN or infinity in {rows}. Remove or impute those values."
    return f"The {what} of X {rows} overflow float64: rescale X (e.g. with a StandardScaler)."


def block_stats(index, start, X, Y, w, n_jobs):
    """SufficientStats of one block by the compiled kernels (None for no rows)."""
    ws = float(X.shape[0]) if w is None else float(np.sum(w))
    if X.shape[0] == 0 or not ws > 0:
        return None
    problem = _block_problem(X, Y, w, ws, SQUARED.name, n_jobs)
    n = X.shape[0] if w is None else int(np.count_nonzero(w))
    log_wsum = 0.0 if w is None else float(np.log(w[w > 0]).sum())
    stats = SufficientStats(*cpu.sufficient_stats(problem), n_samples=n, log_weight_sum=log_wsum)
    if not stats.is_finite():
        raise ValueError(_bad_block(index, start, X, Y, "moments"))
    return stats


def merge_stats(*parts):
    out = None
    for p in parts:
        if p is not None:
            out = p if out is None else out.merge(p)
    return out


def block_moments(index, start, X, Y, w, n_jobs):
    """(weight sum, mean (d), weighted sum of squared deviations (d), variance (d))
    of one block (the variance as computed, for a one-block X's exact moments)."""
    ws = float(X.shape[0]) if w is None else float(np.sum(w))
    if X.shape[0] == 0 or not ws > 0:
        return None
    ws, mean, var = cpu.column_moments(_block_problem(X, None, w, ws, SQUARED.name, n_jobs))
    if not np.isfinite(mean).all():  # a NaN or inf in X (named), or the sums overflow
        raise ValueError(_bad_block(index, start, X, None, "moments"))
    with np.errstate(over="ignore", under="ignore"):
        # a variance out of float64's range is the client's to redo, as in memory
        return ws, mean, ws * var, var


@np.errstate(over="ignore", under="ignore", invalid="ignore")
def merge_moments(*parts):
    """Chan, Golub and LeVeque's pairwise update of (weight, mean, M2); a merged
    pair's variance is left to M2 (None)."""
    out = None
    for p in parts:
        if p is None:
            continue
        if out is None:
            out = p
            continue
        wa, ma, sa, _ = out
        wb, mb, sb, _ = p
        w = wa + wb
        delta = mb - ma
        out = (w, ma + (wb / w) * delta, sa + sb + (wa * wb / w) * delta * delta, None)
    return out


def block_pass(index, start, X, Y, w, W, b, weight_sum, loss_name, n_jobs):
    """(loss, G, gb) of one block, each already divided by the whole problem's
    weight sum, so the blocks' partials add up to the means."""
    if X.shape[0] == 0:
        return None
    out = cpu.fused_pass(_block_problem(X, Y, w, weight_sum, loss_name, n_jobs), W, b)
    return _finite_input(out, index, start, X, Y)


def block_fused_hessian(index, start, X, Y, w, W, b, weight_sum, loss_name, n_jobs):
    """(loss, G, gb, H) of one block by the compiled Newton pass, divided by the
    whole weight sum."""
    if X.shape[0] == 0:
        return None
    out = cpu.fused_hessian(_block_problem(X, Y, w, weight_sum, loss_name, n_jobs), W, b)
    return _finite_input(out, index, start, X, Y)


def _finite_input(out, index, start, X, Y):
    """``out``, unless its loss is not finite because the block's X or y is not
    (a large model's loss may overflow; NaN or inf input is the user's to fix)."""
    if not np.isfinite(out[0]) and not (
        np.isfinite(X).all() and (Y is None or np.isfinite(Y).all())
    ):
        raise ValueError(_bad_block(index, start, X, Y, "values"))
    return out


def sum_passes(*parts):
    """The blocks' (loss, G, gb[, H]) summed, in block order."""
    parts = [p for p in parts if p is not None]
    if not parts:
        return None
    total = parts[0]
    for other in parts[1:]:
        total = tuple(a + b for a, b in zip(total, other))
    return total


def block_hessian(index, start, X, Y, w, W, b, weight_sum, loss_name, n_jobs):
    """The mean loss's Hessian over one block, divided by the whole weight sum."""
    if X.shape[0] == 0:
        return None
    return cpu.hessian(_block_problem(X, Y, w, weight_sum, loss_name, n_jobs), W, b)


def block_columns(index, start, X, Y, w, cols, block, *args):
    """``block`` of this block's columns ``cols`` as float64 (None for no rows)."""
    if X.shape[0] == 0:
        return None
    Xc = np.asarray(X[:, cols], dtype=np.float64)
    return block(Xc, None if w is None else np.asarray(w)[:, None], *args)


def max_arrays(*parts):
    parts = [p for p in parts if p is not None]
    return np.maximum.reduce(parts) if parts else None


def sum_arrays(*parts):
    parts = [p for p in parts if p is not None]
    return sum(parts[1:], parts[0]) if parts else None


def block_sgd(index, start, X, Y, w, state, config, mean_weight, loss_name, n_jobs):
    """One epoch of the compiled SGD over this block, from the model ``state``
    (W, b, rows-weighted loss so far, diverged) the previous block handed on."""
    W, b, total, diverged = state
    if diverged or X.shape[0] == 0:
        return state
    problem = _block_problem(X, Y, w, X.shape[0] * mean_weight, loss_name, n_jobs)
    out = cpu.sgd(problem, config, W, b)
    if out.n_epochs == 0:
        return W, b, total, True
    return out.W, out.b, total + out.curve[0] * X.shape[0], False


def block_predict(X, W, b, n_jobs):
    return cpu.predict(X, W, b, task_threads(n_jobs))
