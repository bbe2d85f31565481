"""The tiny fit's fast path: solver="auto" with a float step below the
statistics pass's size switch takes the statistics and the closed-form
replay in one backend call (cpu: ``replay_rows``), with the same bits as the
two calls it replaces; and the estimator's cheap input checks give the
errors scikit-learn's checks give."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from conftest import make_problem, ref_gd
from sklearn.utils._param_validation import InvalidParameterError

from fastlinreg import LinearRegression
from fastlinreg._losses import SQUARED
from fastlinreg._validation import check_start
from fastlinreg.backends import DescentConfig, Problem, cpu, get_backend
from fastlinreg.datasets import TUTORIAL_LEARNING_RATE, TUTORIAL_STEPS, load_tutorial
from fastlinreg.solvers import _SMALL, Settings, _replay, _scale, exact

SHAPES = [(1, 1, 1), (2, 1, 1), (16, 1, 1), (7, 3, 2), (40, 5, 1), (64, 63, 1), (200, 2, 3)]


def _rows(rng, n, d, k, dtype, layout, weights):
    X, Y, sw = make_problem(rng, n, d, k, dtype=dtype, layout=layout, weights=weights)
    X = X + np.linspace(-1.0, 1.0, d).astype(dtype)  # column means away from 0
    return X, Y, sw


def _lr(X, sw):
    A = np.hstack([np.asarray(X, dtype=np.float64), np.ones((X.shape[0], 1))])
    w = np.ones(X.shape[0]) if sw is None else sw
    return 0.9 / np.linalg.eigvalsh(A.T @ (w[:, None] * A) / w.sum())[-1]


@pytest.mark.parametrize("n,d,k", SHAPES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("layout", ["C", "F", "rows", "cols"])
def test_replay_rows_is_the_two_calls_it_replaces(n, d, k, dtype, layout):
    rng = np.random.default_rng(n * 100 + d * 10 + k)
    X, Y, sw = _rows(rng, n, d, k, dtype, layout, weights=n % 2 == 0)
    wsum = float(n) if sw is None else float(sw.sum())
    problem = Problem(X, Y, sw, wsum, SQUARED, None)
    W0, b0 = rng.standard_normal((d, k)), rng.standard_normal(k)
    config = DescentConfig(300, float(_lr(X, sw)), 1e-6, 0.0, True)
    parts, finite, out = cpu.replay_rows(problem, config, W0, b0)
    assert finite
    stats = exact.statistics(cpu, problem)
    for got, want in zip(parts, cpu.sufficient_stats(problem)):
        np.testing.assert_array_equal(got, want)
    # ...and the statistics are those of the float64 numpy reference.
    reference = get_backend("reference").sufficient_stats(problem)
    for got, want in zip(parts, reference):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12 * max(1.0, wsum))
    two_calls = cpu.replay_descent(stats, config, W0, b0)
    assert (out is None) == (two_calls is None)
    if out is not None:
        assert (out.n_iter, out.status, out.last_loss) == (
            two_calls.n_iter,
            two_calls.status,
            two_calls.last_loss,
        )
        for a, b in ((out.W, two_calls.W), (out.b, two_calls.b), (out.curve, two_calls.curve)):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("n,d,k", SHAPES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("layout", ["C", "F", "rows"])
def test_tiny_auto_fit_is_the_step_loop(n, d, k, dtype, layout):
    rng = np.random.default_rng(n + 7 * d + 31 * k)
    X, Y, sw = _rows(rng, n, d, k, dtype, layout, weights=d % 2 == 1)
    y = Y[:, 0] if k == 1 else Y
    lr, steps = float(_lr(X, sw)), 150
    params = dict(learning_rate=lr, max_iter=steps, tol=None)
    auto = LinearRegression(solver="auto", **params).fit(X, y, sample_weight=sw)
    gd = LinearRegression(solver="gd", **params).fit(X, y, sample_weight=sw)
    assert auto.solver_ == gd.solver_ == "gd" and auto.n_iter_ == gd.n_iter_ == steps
    rtol = 1e-9 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(auto.coef_, gd.coef_, rtol=rtol, atol=1e-10)
    np.testing.assert_allclose(auto.intercept_, gd.intercept_, rtol=rtol, atol=1e-10)
    np.testing.assert_allclose(auto.loss_curve_, gd.loss_curve_, rtol=1e-9, atol=1e-14)
    assert auto.loss_curve_.shape == (steps,) and auto.coef_.dtype == X.dtype
    W, b, losses = ref_gd(X, Y, np.zeros((d, k)), np.zeros(k), lr, steps, sw=sw)
    np.testing.assert_allclose(auto.loss_curve_, losses, rtol=1e-8, atol=1e-14)
    coef = W[:, 0] if k == 1 else W.T
    np.testing.assert_allclose(auto.coef_, coef, rtol=max(rtol, 1e-8), atol=1e-8)
    # partial_fit continues from the statistics the one call returned
    assert auto._stream.solver == "gram" and auto._stream.stats.n_samples == n


def _spy(monkeypatch):
    calls = []
    original = cpu.replay_rows

    def spy(*args, **kwargs):
        calls.append(args[0].X.shape)
        return original(*args, **kwargs)

    monkeypatch.setattr(cpu, "replay_rows", spy)
    return calls


@pytest.mark.parametrize("n,d,tiny", [(4095, 1, True), (4096, 1, False), (91, 45, True)])
def test_the_size_switch(monkeypatch, n, d, tiny):
    calls = _spy(monkeypatch)
    rng = np.random.default_rng(n + d)
    X, Y, _ = _rows(rng, n, d, 1, np.float64, "C", weights=False)
    model = LinearRegression(learning_rate=float(_lr(X, None)), max_iter=20, tol=None)
    model.fit(X, Y[:, 0])
    assert (n * d < _SMALL) == tiny
    assert calls == ([(n, d)] if tiny else [])
    assert model.solver_ == ("gd" if tiny else "gram")
    # the automatic step fits the optimum ("exact"): never this path
    LinearRegression().fit(X, Y[:, 0])
    assert len(calls) == (1 if tiny else 0)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_x_on_the_tiny_path_raises_as_elsewhere(bad):
    rng = np.random.default_rng(3)
    X, Y, _ = _rows(rng, 20, 2, 1, np.float64, "C", weights=False)
    X[5, 1] = bad
    messages = []
    for backend in ("cpu", "reference"):
        model = LinearRegression(learning_rate=0.01, max_iter=10, backend=backend)
        with pytest.raises(ValueError) as info:
            model.fit(X, Y[:, 0])
        messages.append(str(info.value))
        assert not hasattr(model, "coef_")  # a failed fit leaves the estimator as it was
    assert messages[0] == messages[1] and "Input X contains" in messages[0]


@pytest.mark.parametrize("n", [5, 100])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_cheap_checks_give_scikit_learns_errors(n, bad):
    X = np.random.default_rng(n).standard_normal((n, 2))
    y = np.ones(n)
    y[n // 2] = bad
    word = "NaN" if np.isnan(bad) else "infinity"
    with pytest.raises(ValueError, match=f"Input y contains {word}"):
        LinearRegression(learning_rate=0.1).fit(X, y)
    y = np.full(n, 1e308)  # finite values whose sum overflows: the full checks accept them
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the huge y's own warnings are not this test's
        try:
            LinearRegression(solver="exact").fit(X, y)
        except ValueError as exc:
            assert "contains" not in str(exc)
    for coef, intercept in (([bad, 0.0], None), ([0.0, 0.0], bad), ([1.0] * 3, None)):
        with pytest.raises(ValueError, match="coef_init must|intercept_init must"):
            LinearRegression(learning_rate=0.1).fit(
                X, np.ones(n), coef_init=coef, intercept_init=intercept
            )


def test_the_parameter_cache_tells_values_of_other_types_apart():
    X, y = np.random.default_rng(0).standard_normal((6, 2)), np.arange(6.0)
    LinearRegression(fit_intercept=True).fit(X, y)
    with pytest.raises(InvalidParameterError, match="fit_intercept"):
        LinearRegression(fit_intercept=1).fit(X, y)
    LinearRegression(alpha=[0.5]).fit(X, y)  # unhashable: validated every time
    with pytest.raises(InvalidParameterError, match="max_iter"):
        LinearRegression(max_iter=10.0).fit(X, y)


@pytest.mark.parametrize("size", [1, 3, 64, 65, 500])
@pytest.mark.parametrize("magnitude", [1e-30, 1.0, 1e30])
def test_target_scale_on_a_few_values_as_on_many(size, magnitude):
    rng = np.random.default_rng(size)
    Y = rng.standard_normal((size, 1)) * magnitude
    Y[rng.integers(size), 0] = -3.5 * magnitude  # the peak is negative
    problem = Problem(np.ones((size, 1)), Y, None, float(size), SQUARED, None)
    peak = float(np.max(np.abs(Y)))
    want = 1.0 if 2.0**-60 <= peak <= 2.0**60 else float(np.ldexp(1.0, -np.frexp(peak)[1]))
    assert _scale.target_scale(problem) == want


def test_the_one_call_s_curve_is_numpy_s_closed_form():
    # The tutorial's 10000 steps: the C++ curve (eight entries at a time,
    # in registers) against solvers/_replay.py's numpy version.
    x, y = load_tutorial()
    X, Y = x.reshape(-1, 1), y.reshape(-1, 1)
    problem = Problem(X, Y, None, float(x.size), SQUARED, None)
    W0, b0 = np.array([[0.5]]), np.array([-0.25])
    settings = Settings(
        "auto", TUTORIAL_LEARNING_RATE, TUTORIAL_STEPS, None, 0.0, True, 1, True, 1, None, None
    )
    parts, finite, out = cpu.replay_rows(problem, _replay._plain_config(settings), W0, b0)
    stats = exact.from_pass(problem, parts)
    numpy_twin = _replay.run(settings, get_backend("reference"), problem, stats, W0, b0)
    assert finite and out is not None and numpy_twin is not None
    np.testing.assert_allclose(out.curve, numpy_twin.curve, rtol=1e-13)
    np.testing.assert_allclose(out.W, numpy_twin.W, rtol=1e-12)


def test_where_the_pass_would_be_blocks_the_two_calls_run(monkeypatch):
    # Rows past one block of the statistics pass (made small here; in use,
    # hundreds of thousands of targets): the blocks' merged statistics, as
    # sufficient_stats gives them, then replay_descent.
    monkeypatch.setattr(cpu, "_STATS_BLOCK_WORK", 1)  # 1024 rows a block
    rng = np.random.default_rng(5)
    X, Y, sw = _rows(rng, 1500, 2, 1, np.float64, "C", weights=True)
    problem = Problem(X, Y, sw, float(sw.sum()), SQUARED, None)
    config = DescentConfig(200, float(_lr(X, sw)), None, 0.0, True)
    W0, b0 = np.zeros((2, 1)), np.zeros(1)
    parts, finite, out = cpu.replay_rows(problem, config, W0, b0)
    want = cpu.sufficient_stats(problem)
    assert finite and out is not None
    for got, expect in zip(parts, want):
        np.testing.assert_array_equal(got, expect)
    stats = exact.statistics(cpu, problem)
    np.testing.assert_array_equal(out.curve, cpu.replay_descent(stats, config, W0, b0).curve)


def test_plain_descent_params_are_made_once_per_value():
    config = DescentConfig(500, 0.25, None, 0.0, True)
    first = cpu._descent_params(config)
    assert cpu._descent_params(DescentConfig(500, 0.25, None, 0.0, True)) is first
    assert (first.max_iter, first.learning_rate, first.tol, first.alpha) == (500, 0.25, -1.0, 0.0)
    for other in (
        DescentConfig(500, 0.25, None, -0.0, True),  # equal to 0.0, another sign
        DescentConfig(500, 0.25, 1e-4, 0.0, True),
        DescentConfig(500, 0.25, None, 0.0, False),
        DescentConfig(500, 0.25, None, 0.0, True, positive=True),
        DescentConfig(501, 0.25, None, 0.0, True),
    ):
        made = cpu._descent_params(other)
        assert made is not first
        assert (made.max_iter, made.tol, made.fit_intercept, made.positive) == (
            other.max_iter,
            -1.0 if other.tol is None else other.tol,
            other.fit_intercept,
            other.positive,
        )
    assert np.signbit(cpu._descent_params(DescentConfig(500, 0.25, None, -0.0, True)).alpha)
    # standardised or per-target runs are made afresh
    shifted = DescentConfig(500, 0.25, None, 0.0, True, np.zeros(1), np.ones(1))
    assert cpu._descent_params(shifted) is not cpu._descent_params(shifted)


@pytest.mark.parametrize("k", [1, 3])
def test_a_float_intercept_init_as_any_other_scalar(k):
    W0, b0 = np.zeros((2, k)), np.zeros(k)
    coef = np.arange(2.0 * k).reshape(k, 2)
    fast = check_start(coef, -0.25, W0, b0, True)  # a Python float: the short path
    general = check_start(coef, np.float64(-0.25), W0, b0, True)
    for a, b in zip(fast, general):
        assert a.dtype == b.dtype and a.flags.c_contiguous and b.flags.c_contiguous
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="intercept_init must be a finite scalar"):
        check_start(coef, float("nan"), W0, b0, True)
