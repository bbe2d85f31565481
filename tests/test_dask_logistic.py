"""LogisticRegression on dask arrays and DataFrames, on the shared LocalCluster
(conftest.py's ``dask_client``: 2 worker processes x 1 thread): the in-memory
fit's answers, labels and class weights summarised on the workers, lazy
predictions, bad input, and no rows ever sent to the client. Skipped cleanly
without the ``[dask]`` extra."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import RowsReachingClient, assert_close, classification

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")


from sklearn.exceptions import ConvergenceWarning  # noqa: E402

from fastlinreg import LogisticRegression  # noqa: E402

# Uneven blocks, a one-row block and an empty partition (200 rows).
CHUNKS = (37, 1, 0, 100, 62)
NAMES = np.array(["ant", "bee", "cat"])


def blocks(a, chunks=CHUNKS):
    return da.from_array(a, chunks=(chunks,) + a.shape[1:])


def one_block(a):
    return da.from_array(a, chunks=a.shape)


def data(rng, k, weights=True, d=4):
    X, y, sw = classification(rng, sum(CHUNKS), d, k, weights=weights)
    X = X * np.linspace(1.0, 5.0, d) + 1.0
    return X, (NAMES[y] if k == 3 else y), sw


def fit_both(params, X, y, sw, chunks=CHUNKS):
    """(in-memory fit, dask fit) of the same rows."""
    want = LogisticRegression(**params).fit(X, y, sample_weight=sw)
    Xd, yd = blocks(X, chunks), blocks(y, chunks)
    got = LogisticRegression(**params).fit(
        Xd, yd, sample_weight=None if sw is None else blocks(sw, chunks)
    )
    assert got.backend_ == "dask" and got.solver_ == want.solver_
    np.testing.assert_array_equal(got.classes_, want.classes_)
    return want, got


# The passes sum the blocks' partials in another order than the in-memory pass
# sums its rows: rounding-level differences, which Newton's and gd's iterates
# keep at that level and L-BFGS's path (stopped at tol 1e-10) amplifies to ~1e-11.
SOLVERS = {
    "lbfgs": (dict(tol=1e-10, C=0.5), 1e-9),
    "newton": (dict(tol=1e-10), 1e-12),
    "gd": (dict(tol=None, max_iter=15), 1e-12),
}


@pytest.mark.parametrize("solver", list(SOLVERS))
@pytest.mark.parametrize("k, class_weight", [(2, None), (3, "balanced")])
def test_solvers_equal_in_memory(dask_client, rng, solver, k, class_weight):
    X, y, sw = data(rng, k)
    params, rtol = SOLVERS[solver]
    want, got = fit_both(dict(solver=solver, class_weight=class_weight, **params), X, y, sw)
    assert got.n_iter_ == want.n_iter_
    assert_close(got.coef_, want.coef_, rtol)
    assert_close(got.intercept_, want.intercept_, rtol, scale=1.0)
    assert_close(got.loss_curve_, want.loss_curve_, rtol)


def test_rows_held_in_memory_give_the_same_fit(dask_client, rng):
    """X, y (labels) and weights persisted on the workers: their passes run one
    task per worker thread (the labels' pass too, over 1-D blocks), with the
    bits of one task per block."""
    X, y, sw = data(rng, 3)
    lazy = [blocks(X), blocks(y), blocks(sw)]
    held = dask_client.persist(lazy)
    distributed.wait(held)
    params = dict(solver="newton", tol=1e-10, class_weight="balanced")
    want = LogisticRegression(**params).fit(*lazy[:2], sample_weight=lazy[2])
    got = LogisticRegression(**params).fit(*held[:2], sample_weight=held[2])
    np.testing.assert_array_equal(got.classes_, want.classes_)
    np.testing.assert_array_equal(got.coef_, want.coef_)
    np.testing.assert_array_equal(got.intercept_, want.intercept_)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("solver", ["lbfgs", "newton", "gd", "sgd"])
def test_one_block_is_the_in_memory_fit_bit_for_bit(dask_client, rng, solver):
    """One block: the same passes (the block's weight sums, class weights and
    pass are the in-memory ones), so the same bits; sgd runs the in-memory
    epochs on the worker that holds the block."""
    X, y, sw = data(rng, 3)
    params = dict(solver=solver, class_weight="balanced", max_iter=6, tol=None, random_state=4)
    want, got = fit_both(params, X, y, sw, chunks=(sum(CHUNKS),))
    np.testing.assert_array_equal(got.coef_, want.coef_)
    np.testing.assert_array_equal(got.intercept_, want.intercept_)
    np.testing.assert_array_equal(got.loss_curve_, want.loss_curve_)


def test_sgd_is_reproducible_and_partial_fit_streams(dask_client, rng):
    X, y, _ = data(rng, 3, weights=False)
    params = dict(solver="sgd", random_state=3, max_iter=6, tol=None)
    a = LogisticRegression(**params).fit(blocks(X), blocks(y))
    b = LogisticRegression(**params).fit(blocks(X), blocks(y))
    np.testing.assert_array_equal(a.coef_, b.coef_)
    assert a.n_iter_[0] == 6 and a.loss_curve_[-1] < 0.5 * a.loss_curve_[0]
    # Each chunk one block: the in-memory epoch, on the worker holding it.
    streamed, in_memory = LogisticRegression(**params), LogisticRegression(**params)
    for part in (slice(0, 80), slice(80, 200)):
        streamed.partial_fit(one_block(X[part]), one_block(y[part]), classes=NAMES)
        in_memory.partial_fit(X[part], y[part], classes=NAMES)
    assert streamed.backend_ == "dask"
    np.testing.assert_array_equal(streamed.coef_, in_memory.coef_)
    with pytest.raises(ValueError, match="not in classes"):
        streamed.partial_fit(one_block(X[:50]), one_block(np.full(50, "dog")))


def test_predictions_are_lazy_and_equal_in_memory(dask_client, rng):
    X, y, sw = data(rng, 3)
    model = LogisticRegression(solver="newton").fit(X, y, sample_weight=sw)
    binary = LogisticRegression(solver="newton").fit(X, y == "bee")
    Xd = blocks(X)
    for m in (model, binary):
        for method in ("decision_function", "predict", "predict_proba", "predict_log_proba"):
            got = getattr(m, method)(Xd)
            assert isinstance(got, da.Array) and got.chunks[0] == CHUNKS, method
            np.testing.assert_array_equal(got.compute(), getattr(m, method)(X))
    assert model.predict(Xd).dtype == model.classes_.dtype
    assert model.score(Xd, blocks(y)) == model.score(X, y)
    assert_close(model.score(Xd, blocks(y), blocks(sw)), model.score(X, y, sw), 1e-15)


def test_labels_and_weights_are_checked_as_in_memory(dask_client, rng):
    X, y, sw = data(rng, 2)
    Xd = blocks(X)
    with pytest.raises(ValueError, match="Unknown label type: continuous"):
        LogisticRegression().fit(Xd, blocks(X[:, 0]))
    with pytest.raises(ValueError, match="contains only one class"):
        LogisticRegression().fit(Xd, blocks(np.ones(len(y), dtype=int)))
    only = np.where(y == 1, 0.0, sw)
    with pytest.raises(ValueError, match="Only one class has samples of positive weight"):
        LogisticRegression().fit(Xd, blocks(y), sample_weight=blocks(only))
    negative = sw.copy()
    negative[50] = -1.0  # in block 3 (rows 38 to 137)
    with pytest.raises(ValueError, match=r"sample_weight must be finite.*block 3 \(rows 38 "):
        LogisticRegression().fit(Xd, blocks(y), sample_weight=blocks(negative))
    weights = {0: 2.0, 1: 0.5}
    want, got = fit_both(dict(solver="newton", class_weight=weights), X, y, sw)
    assert_close(got.coef_, want.coef_, 1e-12)
    no_one = {0: 1.0, 1: 0.0}
    with pytest.raises(ValueError, match="Only one class has samples of positive weight"):
        LogisticRegression(class_weight=no_one).fit(Xd, blocks(y))


def test_unpenalised_fits_and_separable_rows(dask_client, rng):
    X, y, sw = data(rng, 3)
    want, got = fit_both(dict(solver="newton", penalty=None), X, y, sw)
    assert_close(got.coef_, want.coef_, 1e-12)
    apart = np.r_[X[:100] - 50.0, X[100:] + 50.0]  # each block checked where it is
    labels = np.r_[np.zeros(100, dtype=int), np.ones(100, dtype=int)]
    with pytest.warns(ConvergenceWarning, match="linearly separable"):
        LogisticRegression(penalty=None, solver="newton", max_iter=20).fit(
            blocks(apart), blocks(labels)
        )


def test_dataframes_and_bad_input_say_what_is_wrong(dask_client, rng):
    pd = pytest.importorskip("pandas")
    dd = pytest.importorskip("dask.dataframe")
    X, y, _ = data(rng, 3, weights=False, d=3)
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    labels = pd.Series(y, name="kind")
    got = LogisticRegression(solver="newton").fit(
        dd.from_pandas(frame, npartitions=3), dd.from_pandas(labels, npartitions=3)
    )
    want = LogisticRegression(solver="newton").fit(frame, labels)
    assert list(got.feature_names_in_) == ["a", "b", "c"] and got.backend_ == "dask"
    assert_close(got.coef_, want.coef_, 1e-12)
    frames = dd.from_pandas(frame, npartitions=3)
    np.testing.assert_array_equal(got.predict(frames).compute(), got.predict(frame))
    assert got.score(frames, dd.from_pandas(labels, npartitions=3)) == got.score(frame, y)
    frame["city"] = ["x", "y", "z", "w"] * 50
    with pytest.raises(ValueError, match="non-numeric column.*'city'"):
        LogisticRegression().fit(dd.from_pandas(frame, npartitions=3), blocks(y))


@pytest.mark.parametrize("solver", ["lbfgs", "newton", "gd", "sgd"])
def test_nan_names_its_block(dask_client, rng, solver):
    X, y, _ = data(rng, 2, weights=False, d=3)
    X[140, 2] = np.nan  # block 3 holds rows 38 to 137; block 4 starts at 138
    model = LogisticRegression(solver=solver, max_iter=3)
    with pytest.raises(ValueError, match=r"block 4 \(rows 138 to 199\), column 2"):
        model.fit(blocks(X), blocks(y))
    assert not hasattr(model, "coef_")


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_no_rows_reach_the_client(dask_client, rng, monkeypatch):
    X, y, sw = data(rng, 3)
    Xd, yd, swd = blocks(X), blocks(y), blocks(sw)
    guard = RowsReachingClient(monkeypatch, rows=30)  # a block has 37 rows or more
    Xd.sum(axis=1).compute()  # the guard sees a gather of the rows (it can fail)
    assert guard.seen == [(len(X),)]
    guard.seen.clear()
    for solver in ("lbfgs", "newton", "gd", "sgd"):
        model = LogisticRegression(solver=solver, class_weight="balanced", max_iter=3, tol=None)
        model.fit(Xd, yd, sample_weight=swd)
        model.score(Xd, yd, sample_weight=swd)
    LogisticRegression(solver="sgd").partial_fit(Xd, yd, classes=NAMES)
    assert guard.seen == []


def test_backend_dask_takes_numpy_as_one_block(dask_client, rng):
    X, y, sw = data(rng, 2)
    want = LogisticRegression(solver="lbfgs").fit(X, y, sample_weight=sw)
    got = LogisticRegression(solver="lbfgs", backend="dask").fit(X, y, sample_weight=sw)
    assert got.backend_ == "dask"
    np.testing.assert_array_equal(got.coef_, want.coef_)
    np.testing.assert_array_equal(got.predict(X), want.predict(X))
