"""The logistic and softmax loss policies in the fused pass, on every backend,
against plain float64 numpy formulas written here from their definitions."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import RTOL, assert_close, make_problem
from scipy.special import expit

from fastlinreg import _core
from fastlinreg._losses import LOGISTIC, SOFTMAX
from fastlinreg.backends import DescentConfig, Problem, cpu

SHAPES = [(1, 1), (2, 1), (5, 3), (17, 7), (33, 8), (101, 9), (1003, 13), (4099, 100), (257, 301)]


def numpy_logistic(X, y, W, b, sw):
    """Mean binary cross-entropy and its gradients, by the textbook formulas."""
    p = np.asarray(X, dtype=np.float64) @ W[:, 0] + b[0]
    prob = expit(p)  # 1 / (1 + e^-p) without overflow
    value = np.logaddexp(0.0, p) - y * p
    ws = sw.sum()
    r = sw * (prob - y)
    return float(sw @ value) / ws, (np.asarray(X, np.float64).T @ r / ws)[:, None], r.sum() / ws


def numpy_softmax(X, Y, W, b, sw):
    """Mean multinomial cross-entropy and its gradients, by the textbook formulas."""
    P = np.asarray(X, dtype=np.float64) @ W + b
    lse = np.logaddexp.reduce(P, axis=1)
    S = np.exp(P - lse[:, None])
    ws = sw.sum()
    R = sw[:, None] * (S - Y)
    loss = float(sw @ (lse - (Y * P).sum(axis=1))) / ws
    return loss, np.asarray(X, np.float64).T @ R / ws, R.sum(axis=0) / ws


def labels(rng, n, k):
    """(n, 1) 0/1 targets for k == 1, else (n, k) one-hot."""
    if k == 1:
        return rng.integers(0, 2, size=(n, 1)).astype(np.float64)
    return np.eye(k)[rng.integers(0, k, size=n)]


def loss_problem(backend, X, Y, sw, loss, n_jobs=None):
    X = backend.prepare_X(X)
    ws = float(X.shape[0] if sw is None else np.sum(sw))
    return Problem(X, Y, sw, ws, loss, n_jobs)


def check_pass(backend, X, Y, sw, W, b, rtol):
    n = X.shape[0]
    k = Y.shape[1]
    loss, numpy_pass = (LOGISTIC, numpy_logistic) if k == 1 else (SOFTMAX, numpy_softmax)
    got = backend.fused_pass(loss_problem(backend, X, Y, sw, loss), W, b)
    w = np.ones(n) if sw is None else sw
    want = numpy_pass(X, Y[:, 0] if k == 1 else Y, W, b, w)
    for g, e in zip(got, want):
        assert np.all(np.isfinite(g))
        assert_close(g, e, rtol, scale=1.0)


@pytest.mark.parametrize("n,d", SHAPES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("k", [1, 3])
def test_fused_pass_matches_numpy(backend, rng, n, d, dtype, k):
    X, _, sw = make_problem(rng, n, d, dtype=dtype, weights=n % 2 == 1)
    W, b = rng.standard_normal((d, k)) / np.sqrt(d), rng.standard_normal(k)
    check_pass(backend, X, labels(rng, n, k), sw, W, b, RTOL[dtype])


@pytest.mark.parametrize("layout", ["F", "rows", "cols"])
@pytest.mark.parametrize("k", [1, 4])
def test_fused_pass_any_layout(backend, rng, layout, k):
    X, _, sw = make_problem(rng, 203, 11, layout=layout, weights=True)
    W, b = rng.standard_normal((11, k)), rng.standard_normal(k)
    Y = labels(rng, 203, k)
    check_pass(backend, X, Y, sw, W, b, 1e-10)


@pytest.mark.parametrize("layout", ["F", "rows", "cols"])
@pytest.mark.parametrize("k", [1, 4])
def test_layout_does_not_change_the_compiled_bits(rng, layout, k):
    X, _, sw = make_problem(rng, 203, 11, layout=layout, weights=True)
    W, b = rng.standard_normal((11, k)), rng.standard_normal(k)
    Y = labels(rng, 203, k)
    loss = LOGISTIC if k == 1 else SOFTMAX
    a = cpu.fused_pass(loss_problem(cpu, X, Y, sw, loss), W, b)
    c = cpu.fused_pass(loss_problem(cpu, np.ascontiguousarray(X), Y, sw, loss), W, b)
    assert a[0] == c[0] and np.array_equal(a[1], c[1]) and np.array_equal(a[2], c[2])


@pytest.mark.parametrize("k", [1, 3])
def test_extreme_margins_stay_finite(backend, rng, k):
    # Margins of +-1000 (and 1e6): the value is the margin or 0, the
    # gradient a difference of probabilities, never inf or NaN.
    X = np.array([[1000.0], [-1000.0], [1e6], [-1e6], [0.0]])
    Y = labels(rng, 5, k)
    W, b = np.ones((1, k)) * np.arange(1, k + 1), np.zeros(k)
    check_pass(backend, X, Y, None, W, b, 1e-12)


def test_logistic_margins_have_the_limits(backend):
    X = np.array([[1000.0], [-1000.0]])
    Y = np.array([[0.0], [1.0]])  # both wrong by a margin of 1000
    loss, G, gb = backend.fused_pass(
        loss_problem(backend, X, Y, None, LOGISTIC), np.ones((1, 1)), [0.0]
    )
    assert loss == 1000.0 and gb[0] == 0.0 and G[0, 0] == 1000.0


@pytest.mark.skipif(not _core.has_openmp, reason="built without OpenMP")
@pytest.mark.parametrize("k", [1, 5])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_thread_count_does_not_change_bits(rng, k, dtype):
    X, _, sw = make_problem(rng, 30_011, 37, dtype=dtype, weights=True)
    Y = labels(rng, 30_011, k)
    W, b = rng.standard_normal((37, k)) / 6, rng.standard_normal(k)
    loss = LOGISTIC if k == 1 else SOFTMAX
    runs = [cpu.fused_pass(loss_problem(cpu, X, Y, sw, loss, nt), W, b) for nt in (1, 2, 3, 7)]
    for r in runs[1:]:
        assert r[0] == runs[0][0] and np.array_equal(r[1], runs[0][1])
        assert np.array_equal(r[2], runs[0][2])


@pytest.mark.parametrize("k", [1, 3])
def test_curvature_uses_the_loss_bound(backend, rng, k):
    # L = curvature bound * lambda_max of the standardised Gram (with the intercept's row).
    X, _, _ = make_problem(rng, 500, 6)
    loss = LOGISTIC if k == 1 else SOFTMAX
    cfg = DescentConfig(0, 0.0, None, 0.0, False, None, None)
    L = backend.curvature(loss_problem(backend, X, labels(rng, 500, k), None, loss), cfg)
    expect = loss.curvature * np.linalg.eigvalsh(X.T @ X / 500)[-1]
    assert abs(L - expect) <= 1e-3 * expect


@pytest.mark.parametrize("k", [1, 3])
def test_descend_matches_reference(rng, k):
    from fastlinreg.backends import reference

    X, _, sw = make_problem(rng, 300, 5, weights=True)
    Y = labels(rng, 300, k)
    loss = LOGISTIC if k == 1 else SOFTMAX
    cfg = DescentConfig(40, 0.5, None, 0.01, True, None, None)
    W0, b0 = np.zeros((5, k)), np.zeros(k)
    a = cpu.descend(loss_problem(cpu, X, Y, sw, loss), cfg, W0, b0)
    r = reference.descend(loss_problem(reference, X, Y, sw, loss), cfg, W0, b0)
    assert_close(a.W, r.W, 1e-10, scale=1.0)
    assert_close(a.curve, r.curve, 1e-10)
