"""The vectorised logistic and softmax policies of the compiled fused pass
(vecmath.hpp's exp and log in SIMD lanes) against float64 numpy, on every
instruction set this CPU has: one-ulp-level values at any margin, finite at
±1000, independent of the thread count and of a row's place in a tile."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from test_isa import MULTI, _supported

from fastlinreg import _core
from fastlinreg._losses import LOGISTIC, SOFTMAX
from fastlinreg.backends import Problem, cpu

EPS = np.finfo(np.float64).eps


def sigmoid(p):
    """1 / (1 + e^-p) with subnormal results kept (scipy's expit flushes them to 0)."""
    e = np.exp(-np.abs(p))
    return np.where(p >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def margins_pass(p, y, d):
    """Per-row (value, derivative) of the logistic loss at margins p through
    the fused pass, one row per call: X's row holds p in its last column
    (d = 1 takes the short-row kernel, d = 9 the long-row one)."""
    out = np.empty((p.size, 2))
    W = np.zeros((d, 1))
    W[-1, 0] = 1.0
    for i, (pi, yi) in enumerate(zip(p, y)):
        X = np.zeros((1, d))
        X[0, -1] = pi
        loss, _, gb = cpu.fused_pass(Problem(X, np.array([[yi]]), None, 1.0, LOGISTIC, 1), W, [0])
        out[i] = loss, gb[0]
    return out


@pytest.mark.parametrize("d", [1, 9])
def test_logistic_margins_to_an_ulp(d):
    rng = np.random.default_rng(3)
    p = np.concatenate(
        [
            [0.0, -0.0, 1e-300, -1e-300, 1e-17, 0.4, -0.4, 745.0, -745.0, -745.5, 1000.0, -1000.0],
            rng.uniform(-40, 40, 150),
            rng.uniform(-1e-3, 1e-3, 30),
            rng.uniform(-800, 800, 30),
        ]
    )
    for yv in (0.0, 1.0, 0.25):
        y = np.full(p.size, yv)
        got = margins_pass(p, y, d)
        assert np.all(np.isfinite(got))
        value = np.logaddexp(0.0, p) - y * p
        scale = np.maximum(p, 0.0) + np.log1p(np.exp(-np.abs(p))) + np.abs(y * p)
        assert np.all(np.abs(got[:, 0] - value) <= 4 * EPS * scale), yv
        s = sigmoid(p)
        assert np.all(np.abs(got[:, 1] - (s - y)) <= 3 * EPS * (s + y)), yv
    y0 = margins_pass(p, np.zeros(p.size), d)  # y = 0: value and derivative keep relative accuracy
    value0 = np.logaddexp(0.0, p)
    np.testing.assert_allclose(y0[:, 0], value0, rtol=4 * EPS, atol=0)
    np.testing.assert_allclose(y0[:, 1], sigmoid(p), rtol=4 * EPS, atol=0)


CHECK = textwrap.dedent("""
    import numpy as np
    from scipy.special import expit
    from fastlinreg import _core
    from fastlinreg._losses import LOGISTIC, SOFTMAX
    from fastlinreg.backends import Problem, cpu

    def numpy_pass(X, Y, W, b, sw):
        P = np.asarray(X, np.float64) @ W + b
        if Y.shape[1] == 1:
            V = np.logaddexp(0.0, P[:, 0]) - Y[:, 0] * P[:, 0]
            R = (expit(P) - Y) * sw[:, None]
        else:
            lse = np.logaddexp.reduce(P, axis=1)
            V = lse - (Y * P).sum(axis=1)
            R = (np.exp(P - lse[:, None]) - Y) * sw[:, None]
        ws = sw.sum()
        return float(sw @ V) / ws, np.asarray(X, np.float64).T @ R / ws, R.sum(axis=0) / ws

    rng = np.random.default_rng(7)
    worst = 0.0
    for dtype in (np.float64, np.float32):
        for n, d, k in ((1, 1, 1), (3, 2, 1), (13, 5, 1), (37, 8, 1), (7, 9, 1), (203, 13, 1),
                        (1001, 100, 1), (1, 1, 2), (5, 3, 3), (203, 11, 4), (501, 37, 5),
                        (130, 100, 10)):
            for layout in ("C", "F", "rows") if n < 1000 else ("C",):
                base = rng.standard_normal((2 * n, d)).astype(dtype)
                X = base[::2] if layout == "rows" else np.asarray(base[:n], order=layout)
                W = rng.standard_normal((d, k)) / np.sqrt(d)
                W *= 3000.0 if n % 2 else 3.0  # margins of about +-1000 in half the cases
                b = rng.standard_normal(k)
                Y = (np.eye(k)[rng.integers(0, k, n)] if k > 1
                     else rng.integers(0, 2, (n, 1)).astype(np.float64))
                sw = rng.uniform(0.5, 2.0, n) if d % 2 else np.ones(n)
                loss = SOFTMAX if k > 1 else LOGISTIC
                prob = Problem(X, Y, sw if d % 2 else None, float(sw.sum()), loss, 1)
                got = cpu.fused_pass(prob, W, b)
                want = numpy_pass(X, Y, W, b, sw)
                for g, e in zip(got, want):
                    g, e = np.asarray(g), np.asarray(e)
                    assert np.all(np.isfinite(g)), (dtype, n, d, k, layout)
                    scale = max(1.0, float(np.abs(e).max()))
                    err = float(np.abs(g - e).max()) / scale
                    worst = max(worst, err)
                    assert err < 1e-11, (dtype, n, d, k, layout, err)
    print(_core.isa, worst)
""")


@pytest.mark.parametrize("isa", ["x86-64-v2", "avx2", "avx512"])
def test_each_instruction_set_matches_numpy(isa):
    if not MULTI and isa != "x86-64-v2":
        pytest.skip("a single-target build: its one instruction set is the x86-64-v2 case")
    if MULTI and isa not in _supported():
        pytest.skip(f"this CPU has no {isa}")
    env = dict(os.environ, FASTLINREG_ISA=isa)
    out = subprocess.run(
        [sys.executable, "-c", CHECK], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[0] == (isa if MULTI else "native")


@pytest.mark.skipif(not _core.has_openmp, reason="built without OpenMP")
@pytest.mark.parametrize("n,d,k", [(40_003, 3, 1), (20_001, 61, 1), (9_001, 23, 7)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_bits_do_not_depend_on_threads(n, d, k, dtype):
    rng = np.random.default_rng(11)
    X = rng.standard_normal((n, d)).astype(dtype)
    Y = np.eye(k)[rng.integers(0, k, n)] if k > 1 else rng.integers(0, 2, (n, 1)) * 1.0
    W, b = rng.standard_normal((d, k)), rng.standard_normal(k)
    sw = rng.uniform(0.5, 2.0, n)
    loss = SOFTMAX if k > 1 else LOGISTIC
    one, two = (cpu.fused_pass(Problem(X, Y, sw, float(sw.sum()), loss, nt), W, b) for nt in (1, 2))
    assert one[0] == two[0] and np.array_equal(one[1], two[1]) and np.array_equal(one[2], two[2])


@pytest.mark.parametrize("k", [1, 3])
def test_a_row_gives_the_same_bits_anywhere(k):
    # Row r alone, and row r inside a block of rows: the same value and
    # gradient contributions (lanes are independent; tiles and tails agree).
    rng = np.random.default_rng(5)
    n, d = 11, 13
    X = rng.standard_normal((n, d)) * 50
    Y = np.eye(k)[rng.integers(0, k, n)] if k > 1 else rng.integers(0, 2, (n, 1)) * 1.0
    W, b = rng.standard_normal((d, k)), rng.standard_normal(k)
    loss = SOFTMAX if k > 1 else LOGISTIC
    alone = [
        cpu.fused_pass(Problem(X[i : i + 1], Y[i : i + 1], None, 1.0, loss, 1), W, b)
        for i in range(n)
    ]
    Z = np.zeros((n, 1))  # weights selecting one row at a time from the block
    for i in range(n):
        sw = Z[:, 0].copy()
        sw[i] = 1.0
        got = cpu.fused_pass(Problem(X, Y, sw, 1.0, loss, 1), W, b)
        assert got[0] == alone[i][0] and np.array_equal(got[2], alone[i][2])
