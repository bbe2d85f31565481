"""The dask backend on a real distributed cluster (2 worker processes x 1
thread): the same answers as the in-memory fit, worker loss, out-of-core
data and bad input. Skipped cleanly without the ``[dask]`` extra."""

from __future__ import annotations

import concurrent.futures
import os
import signal

import numpy as np
import pytest
from conftest import DASK_MEMORY_LIMIT as MEMORY_LIMIT
from conftest import RowsReachingClient, assert_close, make_problem

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")


from fastlinreg import LinearRegression  # noqa: E402
from fastlinreg.backends import dask as dask_backend  # noqa: E402

# Uneven blocks, a one-row block and an empty partition.
CHUNKS = (37, 1, 0, 100, 62)


class PeakMemory(distributed.WorkerPlugin):
    """The most bytes a worker held at once, and how many it spilled to disk."""

    def setup(self, worker):
        self.worker, self.peak = worker, 0

    def transition(self, key, start, finish, **kwargs):
        self.peak = max(self.peak, self.worker.state.nbytes)

    def read(self):
        spilled = self.worker.data.cumulative_metrics.get(("disk-write", "count"), 0)
        peak, self.peak = self.peak, 0
        return peak, spilled


@pytest.fixture(scope="module")
def client(dask_client):
    """The shared cluster's client (conftest.py), each worker's peak memory recorded."""
    dask_client.register_plugin(PeakMemory(), name="peak")
    yield dask_client


def blocks(a, chunks=CHUNKS):
    return da.from_array(a, chunks=(chunks,) + a.shape[1:])


@pytest.mark.parametrize("solver", ["exact", "gram", "auto"])
@pytest.mark.parametrize("k", [1, 3])
def test_exact_equals_in_memory(client, rng, solver, k):
    X, Y, sw = make_problem(rng, sum(CHUNKS), 6, k, weights=True)
    X = X * np.linspace(1.0, 50.0, 6) + 4.0
    y = Y[:, 0] if k == 1 else Y
    params = dict(solver=solver, alpha=0.01, tol=None, max_iter=50)
    params["learning_rate"] = 5e-4 if solver == "gram" else "auto"
    want = LinearRegression(**params).fit(X, y, sample_weight=sw)
    got = LinearRegression(**params).fit(blocks(X), blocks(y), sample_weight=blocks(sw))
    assert got.backend_ == "dask" and got.solver_ == want.solver_
    assert_close(got.coef_, want.coef_, 1e-10)
    assert_close(got.intercept_, want.intercept_, 1e-10, scale=1.0)
    assert_close(got.loss_curve_, want.loss_curve_, 1e-10)


def test_an_exact_fit_is_one_task_per_block(client, rng, monkeypatch):
    """Each block's own lineage (from_delayed, concatenate, reshape, y made from
    X's block) runs inside the task that reduces it, each block made once; a
    task that all blocks share runs once."""
    X, Y, _ = make_problem(rng, sum(CHUNKS), 4)
    starts = np.concatenate([[0], np.cumsum(CHUNKS)[:-1]])
    shared = dask.delayed(np.asarray, pure=True)(X, dtype=np.float32)  # one task, all blocks
    parts = [
        dask.delayed(lambda A, s, c: A[s : s + c].astype(np.float64))(shared, s, c)
        for s, c in zip(starts, CHUNKS)
    ]
    Xd = da.concatenate([da.from_delayed(p, (c, 4), np.float64) for p, c in zip(parts, CHUNKS)])
    beta = np.array([1.0, -2.0, 0.5, 3.0])
    yd = Xd @ beta + da.from_array(Y[:, 0], chunks=Xd.chunks[0])  # y's blocks read X's
    X32 = X.astype(np.float32).astype(np.float64)
    want = LinearRegression(solver="exact").fit(X32, X32 @ beta + Y[:, 0])
    with distributed.get_task_stream(client) as stream:
        got = LinearRegression(solver="exact").fit(Xd, yd)
    assert_close(got.coef_, want.coef_, 1e-10)
    names = sorted(dask.utils.key_split(t["key"]) for t in stream.data)
    assert names.count("block_stats") == len(Xd.chunks[0])  # concatenate drops the 0 block
    others = [n for n in names if n != "block_stats"]
    assert "asarray" in others and len(others) <= 2  # X's source and beta: shared, run once
    # dask without the task specification: one delayed task per block, the same answer.
    monkeypatch.setattr(dask_backend.rows._dask_graph, "FUSES", False)
    old = LinearRegression(solver="exact").fit(Xd, yd)
    assert_close(old.coef_, want.coef_, 1e-10)


def _scattered(client, a, chunks):
    """``a`` as a dask array of blocks scattered to the workers beforehand."""
    starts = np.concatenate([[0], np.cumsum(chunks)[:-1]])
    parts = [a[s : s + c] for s, c in zip(starts, chunks)]
    futures = [client.scatter(p, hash=False) for p in parts]
    return da.concatenate(
        [da.from_delayed(dask.delayed(f), p.shape, p.dtype) for f, p in zip(futures, parts)]
    )


@pytest.mark.parametrize("held_by", ["persist", "scatter"])
@pytest.mark.parametrize("chunks", [CHUNKS, (20,) * 10 + (37, 1, 0, 62), (5000,) * 40])
def test_blocks_in_memory_run_one_task_per_worker_thread(client, rng, chunks, held_by):
    """X in the workers' memory (persisted, or scattered and wrapped by
    from_delayed): each worker thread's blocks run in one task, and the
    partials combine in block order as before (more than FAN_IN blocks too),
    so the bits are those of one task per block."""
    n = sum(chunks)
    X, Y, sw = make_problem(rng, n, 4, weights=True)
    lazy = [blocks(a, chunks) for a in (X, Y[:, 0], sw)]
    if held_by == "persist":
        held = client.persist(lazy)
        distributed.wait(held)
    else:
        held = [_scattered(client, a, [c for c in chunks if c]) for a in (X, Y[:, 0], sw)]
    per_block = LinearRegression(solver="exact").fit(*lazy[:2], sample_weight=lazy[2])
    with distributed.get_task_stream(client) as stream:
        got = LinearRegression(solver="exact").fit(*held[:2], sample_weight=held[2])
    names = [dask.utils.key_split(t["key"]) for t in stream.data]
    threads = sum(client.nthreads().values())
    groups = names.count("group_block_stats")
    # A group holds at most 1/20 of a worker's limit (1.6 MiB here): 6.4 MB of
    # X takes 4 groups or more (one more at most per worker for the rounding).
    least = int(np.ceil(X.nbytes / (MEMORY_LIMIT / dask_backend.rows._GROUP_SHARE)))
    if least <= threads:
        assert groups == threads
    else:
        assert least <= groups <= least + len(client.nthreads())
    assert "block_stats" not in names
    np.testing.assert_array_equal(got.coef_, per_block.coef_)
    np.testing.assert_array_equal(got.intercept_, per_block.intercept_)
    want = LinearRegression(solver="exact").fit(X, Y[:, 0], sample_weight=sw)
    assert_close(got.coef_, want.coef_, 1e-10)


class GraphCount(distributed.diagnostics.plugin.SchedulerPlugin):
    """How many graphs the client sent to the scheduler: its round trips."""

    count = 0

    def update_graph(self, scheduler, **kwargs):
        self.count += 1


def test_an_exact_fit_is_one_round_trip(client, rng):
    X, Y, sw = make_problem(rng, sum(CHUNKS), 3, weights=True)
    sw[::7] = 0.0
    graphs, scheduler = GraphCount(), client.cluster.scheduler  # LocalCluster's, in this process
    scheduler.add_plugin(graphs, name="graph-count")
    try:
        LinearRegression(solver="exact").fit(blocks(X), blocks(Y[:, 0]))
        unweighted = graphs.count
        got = LinearRegression(solver="exact").fit(
            blocks(X), blocks(Y[:, 0]), sample_weight=blocks(sw)
        )
    finally:
        scheduler.remove_plugin("graph-count")
    assert unweighted == 1
    assert graphs.count - unweighted == 2  # the weights' sum and sign, then the pass
    want = LinearRegression(solver="exact").fit(X, Y[:, 0], sample_weight=sw)
    assert got._stream.stats.n_samples == want._stream.stats.n_samples == np.count_nonzero(sw)
    assert_close(got._stream.stats.log_weight_sum, want._stream.stats.log_weight_sum, 1e-12)
    assert_close(got.coef_, want.coef_, 1e-10)


@pytest.mark.parametrize("learning_rate", ["auto", 0.02])
def test_gd_iterates_equal_in_memory(client, rng, learning_rate):
    X, Y, sw = make_problem(rng, sum(CHUNKS), 5, weights=True)
    X = X * np.linspace(1.0, 10.0, 5) + 2.0
    params = dict(solver="gd", learning_rate=learning_rate, max_iter=25, tol=None, alpha=0.1)
    want = LinearRegression(**params).fit(X, Y[:, 0], sample_weight=sw)
    got = LinearRegression(**params).fit(blocks(X), blocks(Y[:, 0]), sample_weight=blocks(sw))
    assert got.n_iter_ == want.n_iter_ == 25
    assert_close(got.learning_rate_, want.learning_rate_, 1e-9)
    assert_close(got.loss_curve_, want.loss_curve_, 1e-9)
    assert_close(got.coef_, want.coef_, 1e-9)
    assert_close(got.intercept_, want.intercept_, 1e-9, scale=1.0)


@pytest.mark.parametrize("solver", ["gd", "sgd"])
def test_columns_whose_moments_underflow_or_overflow_stay_on_the_workers(
    client, rng, monkeypatch, solver
):
    """A column at 1e-200 (its variance underflows) and one at 1e200 (it
    overflows): the automatic step's second look at them runs block by block
    on the workers, and the fit is the in-memory one."""
    X, Y, sw = make_problem(rng, sum(CHUNKS), 4, weights=True)
    X = X + 1.0
    X[:, 1] *= 1e-200
    X[:, 2] *= 1e200
    params = dict(solver=solver, max_iter=25, tol=None, random_state=0)
    want = LinearRegression(**params).fit(X, Y[:, 0], sample_weight=sw)
    guard = RowsReachingClient(monkeypatch, rows=30)  # a block has 37 rows or more
    blocks(X).sum(axis=1).compute()  # the guard sees a gather of the rows (it can fail)
    assert guard.seen == [(len(X),)]
    guard.seen.clear()
    got = LinearRegression(**params).fit(blocks(X), blocks(Y[:, 0]), sample_weight=blocks(sw))
    assert guard.seen == []
    assert np.isfinite(want.coef_).all() and np.abs(want.coef_[[1, 2]]).min() > 0
    if solver == "gd":
        assert_close(got.loss_curve_, want.loss_curve_, 1e-9)
        assert_close(got.coef_, want.coef_, 1e-9)
    else:  # each block runs its own epoch: only one block repeats the in-memory order
        one = LinearRegression(**params).fit(
            blocks(X, (len(X),)), blocks(Y[:, 0], (len(X),)), sample_weight=blocks(sw, (len(X),))
        )
        assert_close(one.coef_, want.coef_, 1e-12)


def test_gd_stops_on_tol_as_in_memory(client, rng):
    X, Y, _ = make_problem(rng, 200, 4)
    want = LinearRegression(solver="gd", tol=1e-3).fit(X, Y[:, 0])
    got = LinearRegression(solver="gd", tol=1e-3).fit(
        blocks(X, (50, 70, 80)), blocks(Y[:, 0], (50, 70, 80))
    )
    assert got.n_iter_ == want.n_iter_ < 1000
    assert_close(got.coef_, want.coef_, 1e-9)


def test_predict_is_lazy_block_by_block(client, rng):
    X, Y, _ = make_problem(rng, sum(CHUNKS), 4, 2)
    model = LinearRegression().fit(X, Y)
    P = model.predict(blocks(X))
    assert isinstance(P, da.Array) and P.chunks[0] == CHUNKS
    assert_close(P.compute(), model.predict(X), 1e-12, scale=1.0)
    one = LinearRegression().fit(blocks(X), blocks(Y[:, 0]))
    assert one.predict(blocks(X)).shape == (sum(CHUNKS),)


def test_sgd_is_reproducible_and_partial_fit_streams(client, rng):
    X, Y, _ = make_problem(rng, sum(CHUNKS), 3)
    y = X @ np.array([1.0, -2.0, 0.5]) + 0.3
    params = dict(solver="sgd", random_state=3, max_iter=8, batch_size=16, tol=None)
    a = LinearRegression(**params).fit(blocks(X), blocks(y))
    b = LinearRegression(**params).fit(blocks(X), blocks(y))
    np.testing.assert_array_equal(a.coef_, b.coef_)
    assert a.n_iter_ == 8 and a.loss_curve_[-1] < 0.1 * a.loss_curve_[0]
    # One block is the in-memory SGD, run on the worker that holds it.
    one = LinearRegression(**params).fit(da.from_array(X), da.from_array(y))
    assert_close(one.coef_, LinearRegression(**params).fit(X, y).coef_, 1e-12)
    streamed, in_memory = LinearRegression(solver="exact"), LinearRegression(solver="exact")
    for part, chunks in ((slice(0, 80), (30, 0, 50)), (slice(80, 200), (120,))):
        streamed.partial_fit(blocks(X[part], chunks), blocks(y[part], chunks))
        in_memory.partial_fit(X[part], y[part])
    assert_close(streamed.coef_, in_memory.coef_, 1e-10)


def test_dataframe_input_and_its_bad_column(client, rng):
    pd = pytest.importorskip("pandas")
    dd = pytest.importorskip("dask.dataframe")
    X, Y, _ = make_problem(rng, 120, 3)
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    got = LinearRegression().fit(
        dd.from_pandas(frame, npartitions=3), blocks(Y[:, 0], (40, 40, 40))
    )
    want = LinearRegression().fit(frame, Y[:, 0])
    assert list(got.feature_names_in_) == ["a", "b", "c"]
    assert_close(got.coef_, want.coef_, 1e-10)
    frame["city"] = ["x", "y", "z"] * 40
    with pytest.raises(ValueError, match="non-numeric column.*'city'"):
        LinearRegression().fit(dd.from_pandas(frame, npartitions=3), blocks(Y[:, 0], (40, 40, 40)))


@pytest.mark.parametrize("solver", ["exact", "gd", "sgd"])
def test_nan_names_its_block(client, rng, solver):
    X, Y, _ = make_problem(rng, sum(CHUNKS), 3)
    X[140, 2] = np.nan  # block 3 holds rows 38 to 137; block 4 starts at 138
    model = LinearRegression(solver=solver, max_iter=3)
    with pytest.raises(ValueError, match=r"block 4 \(rows 138 to 199\), column 2"):
        model.fit(blocks(X), blocks(Y[:, 0]))
    assert not hasattr(model, "coef_")


def test_a_lost_worker_changes_nothing(client, rng, monkeypatch):
    X, Y, _ = make_problem(rng, 400, 5)
    chunks = (100, 100, 100, 100)
    params = dict(solver="gd", learning_rate=0.05, max_iter=12, tol=None)
    want = LinearRegression(**params).fit(X, Y[:, 0])
    pids = client.run(os.getpid)
    oracle = dask_backend._oracle

    def killing_oracle(rows):
        step = oracle(rows)
        calls = []

        def one_step(W, b):
            calls.append(1)
            if len(calls) == 6:  # mid-fit: the blocks held there are gone
                os.kill(next(iter(pids.values())), signal.SIGKILL)
            return step(W, b)

        return one_step

    monkeypatch.setattr(dask_backend, "_oracle", killing_oracle)
    got = LinearRegression(**params).fit(blocks(X, chunks), blocks(Y[:, 0], chunks))
    assert_close(got.coef_, want.coef_, 1e-9)
    assert_close(got.loss_curve_, want.loss_curve_, 1e-9)
    client.wait_for_workers(2, timeout=60)


class NpyRows:
    """A .npy file that dask reads block by block: each task maps the file and
    copies out its rows, so no process ever holds the whole array."""

    def __init__(self, path):
        whole = np.load(path, mmap_mode="r")
        self.path, self.shape, self.dtype = str(path), whole.shape, whole.dtype
        self.ndim = whole.ndim

    def __getitem__(self, key):
        return np.array(np.load(self.path, mmap_mode="r")[key])


def within(seconds, fit, *data):
    """``fit(*data)``, or a TimeoutError after ``seconds`` (a stuck cluster fails the
    test instead of hanging the run; closing the client frees the waiting thread)."""
    pool = concurrent.futures.ThreadPoolExecutor(1)
    try:
        return pool.submit(fit, *data).result(timeout=seconds)
    finally:
        pool.shutdown(wait=False)


def test_out_of_core_data_fits_without_spilling(client, tmp_path):
    n, d, rows = 800_000, 8, 32_000  # X: 51 MB on disk, 1.5 times a worker's limit
    rng = np.random.default_rng(5)
    X = rng.standard_normal((n, d)) * np.linspace(1.0, 4.0, d) + 1.0
    y = X @ rng.standard_normal(d) - 2.0 + rng.standard_normal(n)
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y)
    assert X.nbytes > 1.5 * MEMORY_LIMIT
    Xd = da.from_array(NpyRows(tmp_path / "X.npy"), chunks=(rows, d))
    yd = da.from_array(NpyRows(tmp_path / "y.npy"), chunks=rows)
    workers = set(client.scheduler_info()["workers"])
    client.run(lambda dask_worker: dask_worker.plugins["peak"].read())
    for params in (dict(solver="exact"), dict(solver="gd", learning_rate="auto", max_iter=2)):
        want = LinearRegression(**params, tol=None).fit(X, y)
        got = within(60, LinearRegression(**params, tol=None).fit, Xd, yd)
        assert_close(got.coef_, want.coef_, 1e-10 if params["solver"] == "exact" else 1e-9)
        assert_close(got.intercept_, want.intercept_, 1e-9, scale=1.0)
        held = client.run(lambda dask_worker: dask_worker.plugins["peak"].read())
        for peak, spilled in held.values():  # a few blocks at a time, none on disk
            assert 0 < peak < X.nbytes / 3 and spilled == 0
    assert set(client.scheduler_info()["workers"]) == workers  # none restarted


def test_without_dask_the_backend_says_how_to_get_it(monkeypatch):
    monkeypatch.setattr(dask_backend, "dask", None)
    assert dask_backend.available() == (
        False,
        "dask/distributed is not installed: pip install 'fastlinreg[dask]'",
    )
