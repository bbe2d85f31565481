"""Every backend's operations against plain float64 numpy references (the
compiled kernels through the cpu backend, and the reference backend itself)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import RTOL, assert_close, descent, make_problem, problem, ref_fused, ref_gd
from hypothesis import given, settings
from hypothesis import strategies as st

from fastlinreg import LinearRegression, SufficientStats, _core
from fastlinreg.backends import cpu

SHAPES = [
    (1, 1),
    (1, 5),
    (2, 1),
    (3, 2),
    (5, 3),
    (17, 1),
    (17, 7),
    (33, 8),
    (101, 9),
    (1000, 1),
    (1003, 13),
    (4099, 100),
    (257, 1000),
]


@pytest.mark.parametrize("n,d", SHAPES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("k", [1, 3])
def test_fused_gradient_matches_numpy(backend, rng, n, d, dtype, k):
    X, Y, _ = make_problem(rng, n, d, k, dtype)
    W, b = rng.standard_normal((d, k)), rng.standard_normal(k)
    loss, G, gb = backend.fused_pass(problem(backend, X, Y), W, b)
    rl, rG, rgb = ref_fused(X, Y, W, b)
    assert_close(loss, rl, RTOL[dtype])
    assert_close(G, rG, RTOL[dtype], scale=np.abs(X).max() * np.abs(ref_resid(X, Y, W, b)).max())
    assert_close(gb, rgb, RTOL[dtype], scale=np.abs(ref_resid(X, Y, W, b)).max())


def ref_resid(X, Y, W, b):
    return np.asarray(X, dtype=np.float64) @ W + b - Y


@pytest.mark.parametrize("layout", ["F", "rows", "cols"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("d", [11, 301])  # 301: long tiles, which prefetch along each row
def test_fused_gradient_any_layout(backend, rng, layout, dtype, d):
    X, Y, sw = make_problem(rng, 203, d, 2, dtype, layout=layout, weights=True)
    W, b = rng.standard_normal((d, 2)), rng.standard_normal(2)
    loss, G, gb = backend.fused_pass(problem(backend, X, Y, sw), W, b)
    C = np.ascontiguousarray(X)
    loss_c, G_c, gb_c = backend.fused_pass(problem(backend, C, Y, sw), W, b)
    rl, rG, rgb = ref_fused(X, Y, W, b, sw)
    assert_close(loss, rl, RTOL[dtype])
    assert_close(G, rG, RTOL[dtype], scale=10.0)
    # A layout changes nothing: same bits as the C-ordered copy.
    assert loss == loss_c and np.array_equal(G, G_c) and np.array_equal(gb, gb_c)


@pytest.mark.parametrize("layout", ["C", "rows"])
@pytest.mark.parametrize("weights", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("d", [2, 3, 4, 5, 8])
def test_short_rows_as_square_tiles(backend, rng, layout, weights, dtype, d):
    """k = 1, d <= 8: the short-row kernel, which on AVX2 reads whole tiles of
    rows (masked loads past the row's end) instead of gathering columns; 1003
    rows leave a partial tile, and a row stride of 2d tests the tiles' offsets."""
    X, Y, sw = make_problem(rng, 1003, d, 1, dtype, layout=layout, weights=weights)
    W, b = rng.standard_normal((d, 1)), rng.standard_normal(1)
    loss, G, gb = backend.fused_pass(problem(backend, X, Y, sw), W, b)
    rl, rG, rgb = ref_fused(X, Y, W, b, sw)
    R = np.abs(ref_resid(X, Y, W, b)).max()
    assert_close(loss, rl, RTOL[dtype], scale=R * R)
    assert_close(G, rG, RTOL[dtype], scale=np.abs(X).max() * R)
    assert_close(gb, rgb, RTOL[dtype], scale=R)
    C = np.ascontiguousarray(X)
    loss_c, G_c, gb_c = backend.fused_pass(problem(backend, C, Y, sw), W, b)
    assert loss == loss_c and np.array_equal(G, G_c) and np.array_equal(gb, gb_c)


def test_row_strided_X_is_not_copied(rng):
    X, _, _ = make_problem(rng, 50, 4, layout="rows")
    assert cpu.prepare_X(X) is X
    C = np.ascontiguousarray(rng.standard_normal((50, 4)), dtype=np.float32)
    assert cpu.prepare_X(C) is C
    F = np.asfortranarray(C)
    assert cpu.prepare_X(F).flags.c_contiguous


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_weights_equal_repeated_rows(backend, rng, dtype):
    X, Y, _ = make_problem(rng, 40, 5, 2, dtype)
    reps = rng.integers(0, 4, size=40)
    reps[0] = 1
    W, b = rng.standard_normal((5, 2)), rng.standard_normal(2)
    lw, Gw, gbw = backend.fused_pass(problem(backend, X, Y, reps.astype(np.float64)), W, b)
    Xr, Yr = np.repeat(X, reps, axis=0), np.repeat(Y, reps, axis=0)
    lr, Gr, gbr = backend.fused_pass(problem(backend, Xr, Yr), W, b)
    assert_close(lw, lr, 1e-12)
    assert_close(Gw, Gr, 1e-12, scale=1.0)
    assert_close(gbw, gbr, 1e-12, scale=1.0)


@pytest.mark.skipif(not _core.has_openmp, reason="built without OpenMP")
@pytest.mark.parametrize("n,d,k", [(200_003, 7, 1), (50_001, 100, 1), (30_001, 33, 4), (7, 3, 1)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_thread_count_does_not_change_bits(rng, n, d, k, dtype):
    X, Y, sw = make_problem(rng, n, d, k, dtype, weights=True)
    W, b = rng.standard_normal((d, k)), rng.standard_normal(k)
    out1, out2, out3 = (cpu.fused_pass(problem(cpu, X, Y, sw, n_jobs=nj), W, b) for nj in (1, 2, 3))
    for o in (out2, out3):
        assert out1[0] == o[0]
        assert np.array_equal(out1[1], o[1]) and np.array_equal(out1[2], o[2])
    # And the whole loop: 20 steps, 1 vs 2 threads.
    runs = [
        cpu.descend(
            problem(cpu, X, Y, sw, n_jobs=nj),
            descent(20, 0.05, alpha=0.1),
            np.zeros((d, k)),
            np.zeros(k),
        )
        for nj in (1, 2)
    ]
    assert np.array_equal(runs[0].W, runs[1].W) and np.array_equal(runs[0].b, runs[1].b)
    assert np.array_equal(runs[0].curve, runs[1].curve)


def test_chunk_plan_depends_on_shape_only():
    plans = {_core.chunk_plan(10**6, 100, 1) for _ in range(3)}
    assert len(plans) == 1
    n_chunks, rows = _core.chunk_plan(10**6, 100, 1)
    assert n_chunks * rows >= 10**6 > (n_chunks - 1) * rows


@pytest.mark.parametrize("n,d,k", [(1, 1, 1), (16, 1, 1), (37, 5, 2), (503, 12, 1)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("weights", [False, True])
def test_descend_stream_matches_numpy_loop(backend, rng, n, d, k, dtype, weights):
    X, Y, sw = make_problem(rng, n, d, k, dtype, weights=weights)
    W0, b0 = rng.standard_normal((d, k)), rng.standard_normal(k)
    out = backend.descend(problem(backend, X, Y, sw), descent(50, 0.05, alpha=0.01), W0, b0)
    rW, rb, rl = ref_gd(X, Y, W0, b0, 0.05, 50, sw, alpha=0.01)
    assert out.n_iter == 50 and out.status == 0
    tol = 1e-9 if dtype == np.float64 else 1e-5
    assert_close(out.W, rW, tol, scale=1.0)
    assert_close(out.b, rb, tol, scale=1.0)
    assert_close(out.curve, rl, tol)


def test_descend_without_intercept_keeps_it_zero(backend, rng):
    X, Y, _ = make_problem(rng, 60, 3)
    out = backend.descend(
        problem(backend, X, Y), descent(30, 0.1, fit_intercept=False), np.zeros((3, 1)), np.ones(1)
    )
    rW, _, _ = ref_gd(X, Y, np.zeros((3, 1)), np.zeros(1), 0.1, 30, fit_intercept=False)
    assert out.b[0] == 0.0
    assert_close(out.W, rW, 1e-10, scale=1.0)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("rank_update", ["own", "blas", "backend"])
@pytest.mark.parametrize(
    "n,d,k",
    [(1, 1, 1), (2, 3, 1), (300, 1, 1), (9000, 2, 1), (1000, 17, 3), (5000, 40, 1), (600, 301, 2)],
)
def test_sufficient_stats_match_numpy(backend, rng, dtype, rank_update, n, d, k):
    if rank_update != "backend" and backend is not cpu:
        pytest.skip("the rank update choice is the cpu backend's")
    X, Y, sw = make_problem(rng, n, d, k, dtype, weights=True)
    X = X + np.asarray(1000.0, dtype=dtype)  # large means: centred form keeps the digits
    pr = problem(backend, X, Y, sw)
    if rank_update != "backend":
        parts = cpu.sufficient_stats(pr, _kernel=rank_update)
    else:
        parts = backend.sufficient_stats(pr)
    s = SufficientStats(*parts, n_samples=n)
    X64 = np.asarray(X, dtype=np.float64)
    ws = sw.sum()
    mx = (sw[:, None] * X64).sum(0) / ws
    my = (sw[:, None] * Y).sum(0) / ws
    Xc, Yc = X64 - mx, Y - my
    assert_close(s.weight_sum, ws, 1e-13)
    assert_close(s.mean_x, mx, 1e-13)
    assert_close(s.mean_y, my, 1e-13, scale=1.0)
    scale = max(1.0, float((sw[:, None] * Xc * Xc).sum(0).max()))
    assert_close(s.Cxx, Xc.T @ (sw[:, None] * Xc), 1e-9, scale=scale)
    assert_close(s.Cxy, Xc.T @ (sw[:, None] * Yc), 1e-9, scale=scale)
    assert_close(s.Cyy, Yc.T @ (sw[:, None] * Yc), 1e-9, scale=scale)
    assert np.array_equal(s.Cxx, s.Cxx.T)


def test_stats_merge_equals_concatenation(rng):
    X, Y, sw = make_problem(rng, 1000, 6, 2, weights=True)
    parts = [
        SufficientStats.from_arrays(X[a:b], Y[a:b], sw[a:b])
        for a, b in [(0, 1), (1, 400), (400, 401), (401, 1000)]
    ]
    merged = SufficientStats.empty(6, 2)
    for p in parts:
        merged = merged.merge(p)
    whole = SufficientStats.from_arrays(X, Y, sw)
    for name in ("mean_x", "mean_y", "Cxx", "Cxy", "Cyy"):
        assert_close(getattr(merged, name), getattr(whole, name), 1e-12, scale=1.0)
    assert_close(merged.weight_sum, whole.weight_sum, 1e-14)
    with pytest.raises(ValueError, match="same columns"):
        merged.merge(SufficientStats.empty(5, 2))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("weights", [False, True])
def test_column_moments(backend, rng, dtype, weights):
    X, _, sw = make_problem(rng, 777, 9, dtype=dtype, weights=weights)
    X = X * np.arange(1, 10, dtype=dtype) + np.asarray(50.0, dtype=dtype)
    ws, mean, var = backend.column_moments(problem(backend, X, None, sw))
    w = np.ones(777) if sw is None else sw
    X64 = X.astype(np.float64)
    rm = (w[:, None] * X64).sum(0) / w.sum()
    rv = (w[:, None] * (X64 - rm) ** 2).sum(0) / w.sum()
    assert_close(ws, w.sum(), 1e-14)
    assert_close(mean, rm, 1e-12)
    assert_close(var, rv, 1e-9)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("k", [1, 3])
def test_linear_predict(backend, rng, dtype, k):
    X, _, _ = make_problem(rng, 1001, 13, dtype=dtype, layout="rows")
    W, b = rng.standard_normal((13, k)), rng.standard_normal(k)
    assert_close(backend.predict(X, W, b), X.astype(np.float64) @ W + b, 1e-12, scale=1.0)


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_curvature_matches_eigvalsh(backend, rng, fit_intercept):
    X, Y, sw = make_problem(rng, 500, 6, weights=True)
    X = X * np.array([1.0, 10.0, 100.0, 1e3, 0.1, 1.0]) + 5.0
    X[:, 5] = X[:, 4] * 0.5 + 0.1 * X[:, 5]  # correlated columns
    _, mean, var = backend.column_moments(problem(backend, X, None, sw))
    shift = mean if fit_intercept else None
    spread = np.sqrt(var) if fit_intercept else np.sqrt(var + mean**2)
    Z = (X - (mean if fit_intercept else 0.0)) / spread
    H = Z.T @ (sw[:, None] * Z) / sw.sum() + 0.3 / spread**2 * np.eye(6)
    expected = np.linalg.eigvalsh(H)[-1]
    if fit_intercept:
        expected = max(expected, 1.0)
    config = descent(0, 0.0, alpha=0.3, fit_intercept=fit_intercept, shift=shift, scale=spread)
    got = backend.curvature(problem(backend, X, Y, sw), config)  # y is not read
    stats = SufficientStats(*backend.sufficient_stats(problem(backend, X, Y, sw)))
    got_gram = backend.curvature_gram(stats, config)
    assert_close(got, expected, 1e-3)
    assert_close(got_gram, got, 1e-9)


def test_kernels_reject_wrong_arrays(rng):
    X = rng.standard_normal((10, 3))
    Y = np.zeros((10, 1))
    W, b = np.zeros((3, 1)), np.zeros(1)
    G, gb = np.zeros((3, 1)), np.zeros(1)
    with pytest.raises(TypeError):  # int X is never converted silently
        _core.Problem(X.astype(np.int64), Y, None, 10.0)
    with pytest.raises(TypeError):  # nor is a list
        _core.Problem(X.tolist(), Y, None, 10.0)
    with pytest.raises(ValueError, match="shape"):
        _core.Problem(X, np.zeros((9, 1)), None, 10.0)
    with pytest.raises(ValueError, match="contiguous rows"):
        _core.Problem(X[:, ::2], Y, None, 10.0)
    with pytest.raises(ValueError, match="positive"):
        _core.Problem(X, Y, None, 0.0)
    with pytest.raises(ValueError, match="loss"):
        _core.Problem(X, Y, None, 10.0, loss=99)
    pr = _core.Problem(X, Y, None, 10.0)
    with pytest.raises(ValueError, match="W"):
        _core.fused_gradient(pr, np.zeros((2, 1)), b, G, gb)
    with pytest.raises(ValueError, match="outputs"):
        _core.fused_gradient(pr, np.zeros((3, 2)), np.zeros(2), np.zeros((3, 2)), np.zeros(2))
    with pytest.raises(ValueError, match="writable"):
        G.flags.writeable = False
        _core.fused_gradient(pr, W, b, G, gb)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 70),
    d=st.integers(1, 40),
    k=st.integers(1, 4),
    dtype=st.sampled_from([np.float64, np.float32]),
    weighted=st.booleans(),
    layout=st.sampled_from(["C", "F", "rows"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_fused_gradient_property(n, d, k, dtype, weighted, layout, seed):
    rng = np.random.default_rng(seed)
    X, Y, sw = make_problem(rng, n, d, k, dtype, layout=layout, weights=weighted)
    W, b = rng.standard_normal((d, k)), rng.standard_normal(k)
    loss, G, gb = cpu.fused_pass(problem(cpu, X, Y, sw), W, b)
    rl, rG, rgb = ref_fused(X, Y, W, b, sw)
    R = np.abs(ref_resid(X, Y, W, b)).max()
    assert_close(loss, rl, RTOL[dtype], scale=R * R)
    assert_close(G, rG, RTOL[dtype], scale=np.abs(X).max() * R)
    assert_close(gb, rgb, RTOL[dtype], scale=R)


@pytest.mark.skipif(not _core.has_openmp, reason="built without OpenMP")
@pytest.mark.parametrize("n,d,k", [(200_003, 5, 1), (3001, 1000, 2), (100, 2100, 1)])
def test_sufficient_stats_thread_count_does_not_change_bits(rng, n, d, k):
    # row-chunked (small and wide Gram) and tile-shared (Gram over budget) paths
    X, Y, sw = make_problem(rng, n, d, k, weights=True)
    one, two = (cpu.sufficient_stats(problem(cpu, X, Y, sw, n_jobs=nj)) for nj in (1, 2))
    assert all(np.array_equal(a, b) for a, b in zip(one, two))
    ref = SufficientStats.from_arrays(X[:, :3], Y, sw)  # and the values are right
    assert_close(one[3][:3, :3], ref.Cxx, 1e-12, scale=1.0)


@pytest.mark.skipif(not _core.has_openmp, reason="built without OpenMP")
@pytest.mark.parametrize("solver,n,d", [("gd", 20_000, 20), ("gram", 400, 300)])
def test_more_threads_than_cores_keep_the_bits(rng, solver, n, d):
    # Six threads on this machine's cores: threads that wait at the step
    # barrier sleep rather than spin, thread 0 runs spells of steps alone when
    # the others come late, and every thread must still see every step's model.
    X, Y, _ = make_problem(rng, n, d, 1)
    fits = [
        LinearRegression(solver=solver, learning_rate=0.01, max_iter=1000, tol=None, n_jobs=nj).fit(
            X, Y[:, 0]
        )
        for nj in (1, 6)
    ]
    assert fits[0].n_iter_ == fits[1].n_iter_ == 1000
    assert np.array_equal(fits[0].coef_, fits[1].coef_)
    assert fits[0].intercept_ == fits[1].intercept_
    assert np.array_equal(fits[0].loss_curve_, fits[1].loss_curve_)


@pytest.mark.skipif(not _core.has_openmp, reason="built without OpenMP")
def test_a_team_smaller_than_asked_for_does_not_hang():
    # OMP_THREAD_LIMIT=1 gives the descent a team of one whatever n_jobs asks:
    # its step barrier must count the threads it got, not the ones it asked for.
    code = textwrap.dedent("""
        import numpy as np
        from fastlinreg import LinearRegression
        rng = np.random.default_rng(0)
        X, y = rng.standard_normal((20_000, 20)), rng.standard_normal(20_000)
        a, b = (LinearRegression(solver="gd", learning_rate=0.01, max_iter=50, tol=None,
                                 n_jobs=nj).fit(X, y) for nj in (4, 1))
        assert np.array_equal(a.coef_, b.coef_), "bits differ"
        print("ok")
    """)
    env = dict(os.environ, OMP_THREAD_LIMIT="1")
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
