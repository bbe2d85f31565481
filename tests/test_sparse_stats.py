"""The CSR statistics pass (sparse_gram.hpp: rows in slices, each its own
packed triangle, added in slice order) against a plain float64 numpy
reference, on shapes that make one slice and several, and its bits for any
thread count."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import problem

from fastlinreg import _core
from fastlinreg.backends import cpu


def reference_stats(X, Y, sw):
    """(weight sum, mean_x, mean_y, Cxx, Cxy, Cyy) in float64 from dense X."""
    A = np.asarray(X.toarray(), dtype=np.float64)
    w = np.ones(A.shape[0]) if sw is None else sw
    ws = w.sum()
    mx, my = w @ A / ws, w @ Y / ws
    Ac, Yc = A - mx, Y - my
    return ws, mx, my, (Ac * w[:, None]).T @ Ac, (Ac * w[:, None]).T @ Yc, (Yc * w[:, None]).T @ Yc


def csr_with(rng, n, d, per_row, dtype):
    """CSR rows of 0..2*per_row values (some rows empty), columns drawn with
    replacement (duplicates summed by the Python layer), unsorted within rows."""
    lengths = rng.integers(0, 2 * per_row + 1, size=n)
    lengths[:: max(1, n // 5)] = 0
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    cols = rng.integers(0, d, size=indptr[-1])
    vals = rng.normal(size=indptr[-1]) + 2.0  # column means away from zero
    return sp.csr_matrix((vals.astype(dtype), cols, indptr), shape=(n, d))


# (n, d, values per row): one slice; several slices (many products for a
# small triangle); n=1; d=1; sizes that divide nothing.
SHAPES = [(1, 1, 1), (1, 9, 4), (50, 1, 1), (37, 13, 3), (3001, 7, 3), (1999, 61, 5)]


@pytest.mark.parametrize("n,d,per_row", SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("index", [np.int32, np.int64])
def test_csr_statistics_equal_numpy_and_any_thread_count(
    rng, n, d, per_row, dtype, weighted, index
):
    X = csr_with(rng, n, d, per_row, dtype)
    if index is np.int64:  # canonical first; int32 keeps the unsorted duplicates
        X.sum_duplicates()
        X.indices, X.indptr = X.indices.astype(index), X.indptr.astype(index)
    Y = rng.normal(size=(n, 2)) + 3.0
    sw = rng.uniform(0.1, 2.0, size=n) if weighted else None
    if sw is not None:
        sw[0] = 1.0  # a nonzero weight sum even for n = 1
    runs = [cpu.sufficient_stats(problem(cpu, X, Y, sw, n_jobs=t)) for t in (1, 2, 3)]
    expected = reference_stats(X, Y, sw)
    for parts in zip(*runs, expected):
        got, e = parts[:3], parts[3]
        assert np.array_equal(got[0], got[1]) and np.array_equal(got[0], got[2])
        scale = max(1.0, float(np.max(np.abs(e))))
        np.testing.assert_allclose(got[0], e, rtol=1e-11, atol=1e-11 * scale)
    Cxx = runs[0][3]
    assert np.array_equal(Cxx, Cxx.T)


@pytest.mark.parametrize("fmt", [sp.csc_matrix, sp.csr_array])
def test_csr_statistics_of_other_formats(rng, fmt):
    X = csr_with(rng, 400, 23, 4, np.float64)
    Y = rng.normal(size=(400, 1))
    got = cpu.sufficient_stats(problem(cpu, fmt(X), Y))
    for a, e in zip(got, reference_stats(X, Y, None)):
        np.testing.assert_allclose(a, e, rtol=1e-11, atol=1e-11 * max(1.0, np.max(np.abs(e))))


@pytest.mark.parametrize("index", [np.int32, np.int64])
def test_csr_structure_check_finds_a_fault_anywhere(rng, index):
    """The structure check (csr_check.hpp) runs in blocks of rows, flat over
    each block's values: a valid X with empty rows and falling indices at
    row starts passes; one fault deep in a later block is found."""
    n, d = 9000, 50
    lengths = rng.integers(0, 6, size=n)
    lengths[4090:4110] = 0  # empty rows across a block boundary
    indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(index)
    indices = np.concatenate([np.sort(rng.choice(d, r, replace=False)) for r in lengths])
    indices = indices.astype(index)
    data = np.ones(indptr[-1])

    def check(ind, ptr):
        return _core.Problem.csr(data, ind, ptr, d, None, None, float(n))

    check(indices, indptr)
    row = int(np.flatnonzero(lengths[6000:] >= 2)[0]) + 6000
    unsorted = indices.copy()
    first = int(indptr[row])
    unsorted[first], unsorted[first + 1] = indices[first + 1], indices[first]
    with pytest.raises(ValueError, match="increase"):
        check(unsorted, indptr)
    outside = indices.copy()
    outside[indptr[row] + 1] = d
    with pytest.raises(ValueError, match="outside"):
        check(outside, indptr)
    falling = indptr.copy()
    falling[row + 1] = falling[row] - 1
    with pytest.raises(ValueError, match="non-decreasing"):
        check(indices, falling)
