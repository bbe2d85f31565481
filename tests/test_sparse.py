"""Sparse X (scipy.sparse CSR/CSC, matrices and arrays): every backend
operation and every solver against the same rows held dense; X is never
densified or modified; peak memory stays O(nnz + d²) (exact) and O(nnz + d)
(gd)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import problem

from fastlinreg import LinearRegression, _core

FORMATS = [sp.csr_matrix, sp.csr_array, sp.csc_matrix, sp.csc_array, sp.coo_matrix]


def random_sparse(rng, n, d, density=0.3, dtype=np.float64, index=np.int32, empty_rows=True):
    """A CSR matrix with some empty rows and columns, values of both signs."""
    X = sp.random(n, d, density=density, format="csr", random_state=rng, dtype=np.float64)
    X.data = (X.data * 4.0 - 2.0).astype(dtype)
    if empty_rows and n > 2:
        X = sp.csr_matrix(X.multiply((np.arange(n) % 3 != 1)[:, None]))
    X = sp.csr_matrix(X, dtype=dtype)
    X.indices, X.indptr = X.indices.astype(index), X.indptr.astype(index)
    return X


SHAPES = [(1, 1), (1, 5), (7, 1), (37, 5), (300, 17), (2000, 40)]


@pytest.mark.parametrize("n,d", SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("index", [np.int32, np.int64])
@pytest.mark.parametrize("k", [1, 3])
def test_fused_pass_on_csr_equals_dense(rng, backend, n, d, dtype, index, k):
    X = random_sparse(rng, n, d, dtype=dtype, index=index)
    Y = rng.normal(size=(n, k))
    sw = rng.uniform(0.1, 2.0, size=n)
    W, b = rng.normal(size=(d, k)), rng.normal(size=k)
    dense = problem(backend, X.toarray(), Y, sw)
    sparse = problem(backend, X, Y, sw)
    loss_d, G_d, gb_d = backend.fused_pass(dense, W, b)
    loss_s, G_s, gb_s = backend.fused_pass(sparse, W, b)
    np.testing.assert_allclose(loss_s, loss_d, rtol=1e-12)
    np.testing.assert_allclose(G_s, G_d, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(gb_s, gb_d, rtol=1e-11, atol=1e-13)
    P = backend.predict(X, W, b)
    np.testing.assert_allclose(P, X.toarray().astype(np.float64) @ W + b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n,d", SHAPES)
@pytest.mark.parametrize("weighted", [False, True])
def test_statistics_and_moments_on_csr_equal_dense(rng, backend, n, d, weighted):
    X = random_sparse(rng, n, d)
    X.data += 3.0  # column means far from zero: the algebraic centring's hard case
    Y = rng.normal(size=(n, 2)) + 5.0
    sw = rng.uniform(0.1, 2.0, size=n) if weighted else None
    dense = backend.sufficient_stats(problem(backend, X.toarray(), Y, sw))
    sparse = backend.sufficient_stats(problem(backend, X, Y, sw))
    scale = max(1.0, float(np.abs(dense[3]).max()))
    for a, e in zip(sparse, dense):
        np.testing.assert_allclose(a, e, rtol=1e-11, atol=1e-11 * scale)
    for a, e in zip(
        backend.column_moments(problem(backend, X, None, sw)),
        backend.column_moments(problem(backend, X.toarray(), None, sw)),
    ):
        np.testing.assert_allclose(a, e, rtol=1e-11, atol=1e-12)


def test_csr_kernels_are_bitwise_the_same_for_any_thread_count(rng):
    from fastlinreg.backends import cpu

    X = random_sparse(rng, 20000, 60, density=0.05)
    Y = rng.normal(size=(20000, 1))
    W, b = rng.normal(size=(60, 1)), rng.normal(size=1)
    one = [problem(cpu, X, Y, n_jobs=1), problem(cpu, X, Y, n_jobs=2)]
    passes = [cpu.fused_pass(p, W, b) for p in one]
    stats = [cpu.sufficient_stats(p) for p in one]
    for a, e in zip(passes[0] + stats[0], passes[1] + stats[1]):
        assert np.array_equal(a, e)


@pytest.mark.parametrize("weighted", [False, True])
def test_statistics_in_row_blocks_equal_dense_and_any_thread_count(rng, monkeypatch, weighted):
    """The statistics pass over CSR rows in blocks (merged in Python) agrees
    with the one-call pass and the dense statistics, and its bits do not
    depend on the thread count; the exact fit on it matches the dense one."""
    from fastlinreg.backends import cpu

    n, d = 5000, 30
    X = random_sparse(rng, n, d, density=0.2)
    X.data += 1.5  # column means away from zero
    Y = rng.normal(size=(n, 2)) + 4.0
    sw = rng.uniform(0.1, 2.0, size=n) if weighted else None
    whole = cpu.sufficient_stats(problem(cpu, X, Y, sw))
    dense = cpu.sufficient_stats(problem(cpu, X.toarray(), Y, sw))
    monkeypatch.setattr(cpu, "stats_rows_per_block", lambda X, k, work: 1024)  # 5 blocks
    blocked = [cpu.sufficient_stats(problem(cpu, X, Y, sw, n_jobs=t)) for t in (1, 2)]
    for a1, a2, w, e in zip(*blocked, whole, dense):
        assert np.array_equal(a1, a2)
        scale = max(1.0, float(np.abs(e).max()))
        np.testing.assert_allclose(a1, w, rtol=1e-12, atol=1e-12 * scale)
        np.testing.assert_allclose(a1, e, rtol=1e-11, atol=1e-11 * scale)
    kw = dict(solver="exact", backend="cpu")
    sparse_fit = LinearRegression(**kw).fit(X, Y, sample_weight=sw)
    dense_fit = LinearRegression(**kw).fit(X.toarray(), Y, sample_weight=sw)
    np.testing.assert_allclose(sparse_fit.coef_, dense_fit.coef_, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(sparse_fit.intercept_, dense_fit.intercept_, rtol=1e-10)


def test_statistics_blocks_follow_the_stored_values():
    from fastlinreg.backends._csr import stats_rows_per_block

    def rows_of(lengths, d):
        indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        indices = np.concatenate([np.arange(r) for r in lengths]).astype(np.int32)
        X = sp.csr_matrix((np.ones(indptr[-1]), indices, indptr), shape=(len(lengths), d))
        return stats_rows_per_block(X, 1, 2.0**26)

    assert rows_of([0] * 50, 4) >= 1024  # no stored values: no division by zero
    short, long = rows_of([2] * 4000, 100), rows_of([40] * 4000, 100)
    assert short > long >= 1024
    # 40 values a row: 820 pairs and 40 products with y, about 2^26 a call.
    assert long == int(2.0**26 / 860)
    # d² outputs per call are a small part of it: 64 d (d + 1) products at least
    # (2 values a row: 3 pairs and 2 products with y).
    assert rows_of([2] * 10, 5000) == int(64 * 5000 * 5001 / 5)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_exact_fit_sparse_equals_dense(rng, backend, fmt, fit_intercept):
    Xd = random_sparse(rng, 200, 12).toarray()
    y = Xd @ rng.normal(size=12) + 0.1 * rng.normal(size=200) + 3.0
    sw = rng.uniform(0.5, 2.0, size=200)
    kw = dict(solver="exact", fit_intercept=fit_intercept, backend=backend.NAME, alpha=0.01)
    dense = LinearRegression(**kw).fit(Xd, y, sample_weight=sw)
    sparse = LinearRegression(**kw).fit(fmt(Xd), y, sample_weight=sw)
    np.testing.assert_allclose(sparse.coef_, dense.coef_, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(sparse.intercept_, dense.intercept_, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(sparse.predict(fmt(Xd)), dense.predict(Xd), rtol=1e-10)


@pytest.mark.parametrize("solver", ["gd", "gram", "sgd"])
@pytest.mark.parametrize("learning_rate", ["auto", 0.05])
@pytest.mark.parametrize("k", [1, 2])
def test_descent_iterates_sparse_equal_dense(rng, backend, solver, learning_rate, k):
    Xd = random_sparse(rng, 150, 9).toarray()
    Y = Xd @ rng.normal(size=(9, k)) + 1.0 + 0.1 * rng.normal(size=(150, k))
    Y = Y[:, 0] if k == 1 else Y
    kw = dict(solver=solver, learning_rate=learning_rate, max_iter=30, tol=None)
    kw.update(backend=backend.NAME, random_state=0, batch_size=16)
    dense = LinearRegression(**kw).fit(Xd, Y)
    sparse = LinearRegression(**kw).fit(sp.csr_array(Xd), Y)
    np.testing.assert_allclose(sparse.loss_curve_, dense.loss_curve_, rtol=1e-10)
    np.testing.assert_allclose(sparse.coef_, dense.coef_, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(sparse.intercept_, dense.intercept_, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("solver", ["exact", "gd", "sgd"])
def test_positive_and_per_target_alpha_on_sparse(rng, backend, solver):
    Xd = random_sparse(rng, 120, 6).toarray()
    Y = Xd @ rng.normal(size=(6, 2))
    kw = dict(solver=solver, positive=True, alpha=np.array([0.0, 0.1]), max_iter=50, tol=None)
    kw.update(backend=backend.NAME, random_state=0)
    dense = LinearRegression(**kw).fit(Xd, Y)
    sparse = LinearRegression(**kw).fit(sp.csc_matrix(Xd), Y)
    assert (sparse.coef_ >= 0).all()
    np.testing.assert_allclose(sparse.coef_, dense.coef_, rtol=1e-9, atol=1e-11)


def test_user_matrix_with_duplicates_is_not_modified(rng, backend):
    # Row 0 holds column 2 twice (1.0 + 2.0) and its columns out of order.
    X = sp.csr_matrix(
        (np.array([1.0, 5.0, 2.0, 4.0]), np.array([2, 0, 2, 1]), np.array([0, 3, 4])),
        shape=(2, 3),
    )
    before = (X.data.copy(), X.indices.copy(), X.indptr.copy())
    y = np.array([1.0, 2.0])
    model = LinearRegression(backend=backend.NAME, alpha=0.1).fit(X, y)
    for a, e in zip((X.data, X.indices, X.indptr), before):
        assert np.array_equal(a, e)
    dense = LinearRegression(backend=backend.NAME, alpha=0.1).fit(X.toarray(), y)
    np.testing.assert_allclose(model.coef_, dense.coef_, rtol=1e-12)


def test_float32_sparse_keeps_float32_attributes(rng):
    X = random_sparse(rng, 50, 4, dtype=np.float32)
    model = LinearRegression().fit(X, rng.normal(size=50))
    assert model.coef_.dtype == np.float32 and model.predict(X).dtype == np.float32


@pytest.mark.parametrize(
    "indices,indptr,match",
    [
        ([0, 3], [0, 1, 2], "outside"),
        ([0, -1], [0, 1, 2], "outside"),
        ([0, 1], [0, 2, 1], "non-decreasing"),
        ([0, 1], [1, 1, 2], "start at 0"),
        ([0, 1], [0, 1, 5], "end within"),
        ([2, 1], [0, 2, 2], "increase"),
        ([1, 1], [0, 2, 2], "increase"),
    ],
)
def test_bad_csr_arrays_are_refused(indices, indptr, match):
    data = np.ones(2)
    indices, indptr = np.array(indices, dtype=np.int32), np.array(indptr, dtype=np.int32)
    with pytest.raises(ValueError, match=match):
        _core.Problem.csr(data, indices, indptr, 3, None, None, 2.0)


def test_wide_sparse_auto_runs_gd(rng):
    X = random_sparse(rng, 50, 5000, density=0.002)
    model = LinearRegression(max_iter=20, tol=None).fit(X, rng.normal(size=50))
    assert model.solver_ == "gd"


_MEMORY_SCRIPT = """
import sys
import numpy as np, scipy.sparse as sp
from fastlinreg import LinearRegression

def kib(field):
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith(field + ":"))

n, d, nnz_per_row = 60000, 1000, 10
rng = np.random.default_rng(0)
indptr = np.arange(0, n * nnz_per_row + 1, nnz_per_row, dtype=np.int32)
indices = rng.integers(0, d, size=n * nnz_per_row, dtype=np.int32)
X = sp.csr_matrix((rng.normal(size=indices.size), indices, indptr), shape=(n, d))
X.sum_duplicates()
y = rng.normal(size=n)
LinearRegression(solver=sys.argv[1], max_iter=3, tol=None).fit(X[:100], y[:100])  # warm imports
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # VmHWM (the peak RSS) := the RSS now
base = kib("VmRSS")
LinearRegression(solver=sys.argv[1], max_iter=3, tol=None).fit(X, y)
print(X.data.nbytes + X.indices.nbytes, (kib("VmHWM") - base) * 1024)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self (Linux)")
@pytest.mark.parametrize("solver", ["exact", "gd"])
def test_sparse_fit_peak_memory(solver):
    """Peak RSS growth of a fit (VmHWM reset just before it, Linux): the
    dense X would be 480 MB; the CSR arrays are 7 MB, d² doubles 8 MB. The
    bound allows the statistics (a few d² arrays: Cxx and the solve's
    copies) and O(nnz) temporaries, nothing n·d."""
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_MEMORY_SCRIPT), solver],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "OMP_NUM_THREADS": "2"},
    )
    nnz_bytes, grew = map(int, out.stdout.split())
    d2_bytes = 1000 * 1000 * 8
    bound = 2 * nnz_bytes + (6 * d2_bytes if solver == "exact" else 0) + 16 * 2**20
    assert grew < bound, (grew, bound)
    if solver == "exact":  # the measurement sees the d x d statistics it allows for
        assert grew >= d2_bytes, grew
