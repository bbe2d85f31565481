"""The cpu backend's rank update: its own tiled kernel and BLAS dsyrk, each
forced through the private hook, against a float64 numpy reference; the
automatic choice between them."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_close, make_problem, problem

from fastlinreg import SufficientStats, _core
from fastlinreg.backends import _gram_kernel, cpu

# Shapes around the tiles (4 x 12 panels with AVX2/SSE, 8 x 24 with
# AVX-512): n = 1, d = 1, widths one under, at and over a tile edge, a row
# count over one packed block, and a Gram too wide for per-chunk partials.
SHAPES = [(1, 1, 1), (1, 5, 2), (7, 1, 1), (33, 2, 1), (500, 9, 1), (700, 10, 3), (1500, 23, 1)]
LAYOUTS = ["C", "F", "rows", "cols"]


def reference(X, Y, sw):
    X = np.asarray(X, dtype=np.float64)
    ws = sw.sum()
    mx = (sw[:, None] * X).sum(0) / ws
    my = (sw[:, None] * Y).sum(0) / ws
    Xc, Yc = X - mx, Y - my
    return ws, mx, my, Xc.T @ (sw[:, None] * Xc), Xc.T @ (sw[:, None] * Yc)


@pytest.mark.parametrize("kernel", ["own", "blas"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("n,d,k", SHAPES)
def test_each_kernel_matches_numpy(rng, kernel, dtype, layout, n, d, k):
    X, Y, sw = make_problem(rng, n, d, k, dtype, layout=layout, weights=True)
    X0 = X.copy()
    s = SufficientStats(*cpu.sufficient_stats(problem(cpu, X, Y, sw), _kernel=kernel))
    ws, mx, my, Cxx, Cxy = reference(X, Y, sw)
    assert np.array_equal(X, X0)  # the user's array is never modified
    assert_close(s.weight_sum, ws, 1e-13)
    assert_close(s.mean_x, mx, 1e-12, scale=1.0)
    assert_close(s.mean_y, my, 1e-12, scale=1.0)
    scale = max(1.0, float(np.abs(np.diag(Cxx)).max()))
    assert_close(s.Cxx, Cxx, 1e-12, scale=scale)
    assert_close(s.Cxy, Cxy, 1e-12, scale=scale)
    assert np.array_equal(s.Cxx, s.Cxx.T)


@pytest.mark.skipif(not _core.has_openmp, reason="built without OpenMP")
@pytest.mark.parametrize("kernel", ["own", "blas"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
# Row chunks with a partial Gram each, and (d = 2050) output tiles shared
# by the threads of one block.
@pytest.mark.parametrize("n,d,k", [(40_003, 13, 1), (9_001, 45, 2), (1_001, 600, 1), (70, 2050, 1)])
def test_each_kernel_bitwise_equal_for_any_thread_count(rng, kernel, dtype, n, d, k):
    X, Y, sw = make_problem(rng, n, d, k, dtype, weights=True)
    one, two = (
        cpu.sufficient_stats(problem(cpu, X, Y, sw, n_jobs=nj), _kernel=kernel) for nj in (1, 2)
    )
    assert all(np.array_equal(a, b) for a, b in zip(one, two))
    _, mx, _, Cxx, _ = reference(X[:, :4], Y, sw)
    assert_close(one[1][:4], mx, 1e-12, scale=1.0)
    assert_close(one[3][:4, :4], Cxx, 1e-11, scale=float(np.diag(Cxx).max()))


def test_wide_instruction_sets_run_the_own_kernel_unmeasured(monkeypatch):
    _gram_kernel.forget()
    monkeypatch.setattr(_gram_kernel, "_measure", lambda *a: pytest.fail("measured"))
    for isa in sorted(_gram_kernel.OWN_ISAS):
        monkeypatch.setattr(_gram_kernel._core, "isa", isa)
        choice = _gram_kernel.choose(10**7, 40, 1)
        assert choice.kernel == "own" and isa in choice.reason


def test_choice_is_measured_once_and_kept(monkeypatch):
    monkeypatch.setattr(_gram_kernel, "OWN_ISAS", frozenset())  # as on the baseline set
    _gram_kernel.forget()
    small = _gram_kernel.choose(100, 10, 1)
    assert small.kernel == "own" and "too small" in small.reason
    calls = []
    real = _gram_kernel._measure
    monkeypatch.setattr(_gram_kernel, "_measure", lambda *a: calls.append(a) or real(*a))
    big = _gram_kernel.choose(10**7, 40, 1)
    again = _gram_kernel.choose(2 * 10**7, 40, 2)  # the same padded width
    assert big is again and len(calls) == 1
    width = _gram_kernel.padded_width(40, 1)
    assert big.kernel in ("own", "blas") and f"measured at width {width}" in big.reason
    assert big.own_s > 0 and big.blas_s > 0
    faster = "blas" if big.blas_s * _gram_kernel.BLAS_MARGIN < big.own_s else "own"
    assert big.kernel == faster
    _gram_kernel.forget()


@pytest.mark.parametrize("winner", ["own", "blas"])
def test_the_pass_runs_the_chosen_kernel(rng, monkeypatch, winner):
    X, Y, sw = make_problem(rng, 300, 6, 1, weights=True)
    pr = problem(cpu, X, Y, sw)
    chosen = _gram_kernel.KernelChoice(winner, "forced by the test")
    monkeypatch.setattr(_gram_kernel, "choose", lambda *a: chosen)
    got = cpu.sufficient_stats(pr)
    forced = cpu.sufficient_stats(pr, _kernel=winner)
    assert all(np.array_equal(a, b) for a, b in zip(got, forced))
