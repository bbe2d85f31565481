"""The softmax pass's blocks (fused.hpp, coupled_tiles: margins of a block of
rows in tiles of rows x outputs, then the gradient in tiles of outputs x
columns held over the block's rows) at the shapes that exercise every tile:
row counts around the block and tile sizes, more outputs than one tile holds,
columns with a whole, a half and a partial vector of gradient tile. Checked
against the float64 numpy formulas of test_loss_kernels and across thread
counts; rows of weight zero add nothing."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import RTOL, assert_close, make_problem
from test_loss_kernels import labels, loss_problem, numpy_softmax

from fastlinreg import _core
from fastlinreg._losses import SOFTMAX
from fastlinreg.backends import cpu


@pytest.mark.parametrize("n", [1, 3, 31, 32, 33, 65, 130])
@pytest.mark.parametrize("d", [1, 5, 13, 21])
@pytest.mark.parametrize("k", [2, 7, 12])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_blocks_match_numpy(rng, n, d, k, dtype):
    X, _, sw = make_problem(rng, n, d, dtype=dtype, weights=n % 2 == 1)
    W, b = rng.standard_normal((d, k)) / np.sqrt(d), rng.standard_normal(k)
    Y = labels(rng, n, k)
    got = cpu.fused_pass(loss_problem(cpu, X, Y, sw, SOFTMAX), W, b)
    want = numpy_softmax(X, Y, W, b, np.ones(n) if sw is None else sw)
    for g, e in zip(got, want):
        assert np.all(np.isfinite(g))
        assert_close(g, e, RTOL[dtype], scale=1.0)


def test_zero_weight_rows_add_nothing(rng):
    X, _, sw = make_problem(rng, 101, 13, weights=True)
    Y = labels(rng, 101, 7)
    W, b = rng.standard_normal((13, 7)), rng.standard_normal(7)
    sw[50:] = 0.0
    whole = cpu.fused_pass(loss_problem(cpu, X, Y, sw, SOFTMAX), W, b)
    part = cpu.fused_pass(loss_problem(cpu, X[:50], Y[:50], sw[:50], SOFTMAX), W, b)
    for g, e in zip(whole, part):
        assert_close(g, e, 1e-13, scale=1.0)


@pytest.mark.skipif(not _core.has_openmp, reason="built without OpenMP")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_thread_count_does_not_change_bits(rng, dtype):
    X, _, sw = make_problem(rng, 20_011, 21, dtype=dtype, weights=True)
    Y = labels(rng, 20_011, 12)
    W, b = rng.standard_normal((21, 12)) / 4, rng.standard_normal(12)
    runs = [cpu.fused_pass(loss_problem(cpu, X, Y, sw, SOFTMAX, nt), W, b) for nt in (1, 2, 5)]
    for r in runs[1:]:
        assert r[0] == runs[0][0] and np.array_equal(r[1], runs[0][1])
        assert np.array_equal(r[2], runs[0][2])
