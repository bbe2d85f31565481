"""The compiled Newton pass (hessian.hpp): loss, gradient and Hessian of the
mean loss in one read of X, against the float64 numpy Hessian and formulas."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import make_problem

from fastlinreg import ConvergenceWarning, LogisticRegression, _core
from fastlinreg._losses import LOGISTIC, SOFTMAX, SQUARED
from fastlinreg.backends import Problem, cpu, reference
from fastlinreg.backends._hessian import mean_loss_hessian


def targets(rng, n, k, loss):
    if loss is SOFTMAX:
        return np.eye(k)[rng.integers(0, k, n)]
    if loss is LOGISTIC:
        return rng.integers(0, 2, (n, k)).astype(np.float64)
    return rng.standard_normal((n, k))


def check(X, Y, sw, loss, W, b, rtol, n_jobs=1):
    ws = float(X.shape[0] if sw is None else sw.sum())
    prob = Problem(cpu.prepare_X(X), Y, sw, ws, loss, n_jobs)
    loss_v, G, gb, H = cpu.fused_hessian(prob, W, b)
    ref = Problem(X, Y, sw, ws, loss, n_jobs)
    want = reference.fused_pass(ref, W, b)
    Hw = mean_loss_hessian(ref, W, b)
    for got, exp in ((loss_v, want[0]), (G, want[1]), (gb, want[2]), (H, Hw)):
        got, exp = np.asarray(got), np.asarray(exp)
        assert np.all(np.isfinite(got))
        scale = max(1.0, float(np.abs(exp).max()))
        assert float(np.abs(got - exp).max()) <= rtol * scale
    assert np.array_equal(H, H.T)
    return loss_v, G, gb, H


@pytest.mark.parametrize("n,d", [(1, 1), (2, 1), (7, 3), (65, 5), (130, 9), (301, 17)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("loss,k", [(LOGISTIC, 1), (SOFTMAX, 3), (SQUARED, 2)])
def test_newton_pass_matches_numpy(rng, n, d, dtype, loss, k):
    X, _, sw = make_problem(rng, n, d, dtype=dtype, weights=n % 2 == 1)
    W, b = rng.standard_normal((d, k)) / np.sqrt(d), rng.standard_normal(k)
    check(X, targets(rng, n, k, loss), sw, loss, W, b, 1e-10 if dtype == np.float64 else 1e-5)


@pytest.mark.parametrize("layout", ["F", "rows", "cols"])
def test_newton_pass_any_layout(rng, layout):
    X, _, sw = make_problem(rng, 97, 6, layout=layout, weights=True)
    W, b = rng.standard_normal((6, 4)), rng.standard_normal(4)
    check(X, targets(rng, 97, 4, SOFTMAX), sw, SOFTMAX, W, b, 1e-10)


@pytest.mark.parametrize("k", [1, 3])
def test_newton_pass_at_extreme_margins(rng, k):
    X = np.array([[1000.0], [-1000.0], [1e6], [-1e6], [0.0]])
    loss = LOGISTIC if k == 1 else SOFTMAX
    W, b = np.ones((1, k)) * np.arange(1, k + 1), np.zeros(k)
    check(X, targets(rng, 5, k, loss), None, loss, W, b, 1e-12)


@pytest.mark.skipif(not _core.has_openmp, reason="built without OpenMP")
@pytest.mark.parametrize("k", [1, 3])
def test_newton_pass_bits_do_not_depend_on_threads(rng, k):
    n = 15_001 if k == 1 else 3_001  # several chunks: n (d + 1)^2 k (k + 1) / 2 > 2^23
    X, _, sw = make_problem(rng, n, 23, weights=True)
    loss = LOGISTIC if k == 1 else SOFTMAX
    Y = targets(rng, n, k, loss)
    W, b = rng.standard_normal((23, k)) / 5, rng.standard_normal(k)
    one = check(X, Y, sw, loss, W, b, 1e-10, n_jobs=1)
    two = check(X, Y, sw, loss, W, b, 1e-10, n_jobs=2)
    assert one[0] == two[0] and all(np.array_equal(a, c) for a, c in zip(one[1:], two[1:]))


def test_sparse_rows_take_two_passes(rng):
    X = sp.random(50, 7, density=0.3, random_state=1, format="csr")
    Y = targets(rng, 50, 1, LOGISTIC)
    W, b = rng.standard_normal((7, 1)), np.zeros(1)
    got = cpu.fused_hessian(Problem(X, Y, None, 50.0, LOGISTIC, 1), W, b)
    dense = Problem(X.toarray(), Y, None, 50.0, LOGISTIC, 1)
    np.testing.assert_allclose(got[3], mean_loss_hessian(dense, W, b), rtol=1e-12, atol=1e-14)


def test_newton_reads_x_once_per_iteration(rng):
    X, y = rng.standard_normal((3000, 30)), rng.integers(0, 2, 3000)
    calls = {"fused": 0, "newton": 0, "hessian": 0}
    saved = cpu.fused_pass, cpu.fused_hessian, cpu.hessian

    def counting(fn, key):
        def call(*a, **kw):
            calls[key] += 1
            return fn(*a, **kw)

        return call

    cpu.fused_pass = counting(saved[0], "fused")
    cpu.fused_hessian = counting(saved[1], "newton")
    cpu.hessian = counting(saved[2], "hessian")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", ConvergenceWarning)
            model = LogisticRegression(solver="newton", tol=1e-10, backend="cpu").fit(X, y)
    finally:
        cpu.fused_pass, cpu.fused_hessian, cpu.hessian = saved
    assert calls["hessian"] == 0 and calls["fused"] == 0
    assert calls["newton"] == model.n_iter_[0] + 1 <= 15
