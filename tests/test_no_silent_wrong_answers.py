"""Hostile inputs (issue 10, section 3): each either fits correctly or
raises an error that says what to do; never a silently wrong model."""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest
from conftest import descent, problem

from fastlinreg import LinearRegression, SufficientStats, cli
from fastlinreg.exceptions import DivergenceError, IllConditionedWarning
from fastlinreg.solvers.descent import plain_lipschitz


def _data(n=200, d=5, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    return X, X @ rng.normal(size=d) + 0.1 * rng.normal(size=n)


def _safe_step(X, y):
    return 2.0 / plain_lipschitz(SufficientStats.from_arrays(X, y), 0.0, True, 1.0)


def test_sgd_with_a_step_too_large_raises(backend):
    X, y = _data()
    model = LinearRegression(solver="sgd", learning_rate=10.0, backend=backend.NAME)
    with pytest.raises(DivergenceError, match="grew without bound"):
        model.fit(X, y)
    assert not hasattr(model, "coef_")


@pytest.mark.parametrize("solver", ["gd", "gram"])
def test_descent_past_the_safe_step_raises_long_before_1e8(backend, solver):
    X, y = _data()
    model = LinearRegression(
        solver=solver,
        learning_rate=1.05 * _safe_step(X, y),
        max_iter=100,
        tol=None,
        backend=backend.NAME,
    )
    with pytest.raises(DivergenceError) as info:
        model.fit(X, y)
    assert info.value.step < 100


@pytest.mark.parametrize("factor", [0.5, 0.98, 0.9999])
def test_safe_steps_never_count_as_divergence(backend, factor):
    """Below 2/L descent on a quadratic is monotone: the growth rule must not fire, not
    even on a perfect fit whose loss sits at the rounding floor for thousands of steps."""
    X, _ = _data(seed=1)
    y = X @ np.arange(1.0, 6.0) + 3.0  # loss falls to rounding, then wanders there
    step = factor * _safe_step(X, y)
    model = LinearRegression(
        solver="gd", learning_rate=step, max_iter=4000, tol=None, backend=backend.NAME
    )
    model.fit(X, y)
    assert model.n_iter_ == 4000
    curve = model.loss_curve_
    assert np.all(np.diff(curve) <= 1e-12 * curve[0])  # monotone, up to rounding
    assert curve[-1] < 0.5 * curve[0]


def test_the_growth_rule_follows_the_loss_curve_on_both_backends():
    """The reference mirrors descent.hpp's rule: the same step of detection."""
    from fastlinreg.backends import get_backend

    X, y = _data()
    Y = y.reshape(-1, 1)
    cfg = descent(300, 1.02 * _safe_step(X, y))
    outs = [
        b.descend(problem(b, X, Y), cfg, np.zeros((5, 1)), np.zeros(1))
        for b in (get_backend("cpu"), get_backend("reference"))
    ]
    assert outs[0].status == outs[1].status == 2  # DIVERGED
    assert outs[0].n_iter == outs[1].n_iter < 300


@pytest.mark.parametrize("value", [1e18, 1e25])
@pytest.mark.parametrize("solver", ["gd", "gram", "sgd"])
def test_a_large_constant_column_gets_coefficient_zero(backend, solver, value):
    X, y = _data()
    X[:, 2] = value
    with pytest.warns(IllConditionedWarning):
        exact = LinearRegression(solver="exact").fit(X, y)
    model = LinearRegression(solver=solver, backend=backend.NAME, random_state=0).fit(X, y)
    assert model.coef_[2] == 0.0
    assert model.score(X, y) == pytest.approx(exact.score(X, y), abs=1e-3)
    np.testing.assert_allclose(np.delete(model.coef_, 2), np.delete(exact.coef_, 2), atol=5e-3)


@pytest.mark.parametrize("solver", ["gd", "gram", "sgd"])
def test_every_column_constant_at_1e150_fits_the_mean(backend, solver):
    X, y = _data()
    X[:] = 1e150
    model = LinearRegression(solver=solver, backend=backend.NAME).fit(X, y)
    np.testing.assert_array_equal(model.coef_, 0.0)
    assert model.intercept_ == pytest.approx(y.mean(), rel=1e-3)


@pytest.mark.parametrize("solver", ["auto", "gd", "sgd"])
def test_tiny_x_fits_as_the_unscaled_x_does(backend, solver):
    X, y = _data()
    tiny = X * 1e-200
    kw = dict(solver=solver, backend=backend.NAME, random_state=0, tol=1e-10, max_iter=5000)
    model = LinearRegression(**kw).fit(tiny, y)
    plain = LinearRegression(**kw).fit(X, y)
    assert model.score(tiny, y) == pytest.approx(plain.score(X, y), abs=1e-6)
    np.testing.assert_allclose(
        model.coef_ * 1e-200, plain.coef_, rtol=1e-3 if solver == "sgd" else 1e-6
    )


@pytest.mark.parametrize("solver", ["gd", "sgd"])
@pytest.mark.parametrize("power", [-700, 520])
def test_a_column_whose_squares_leave_float64_is_fitted_not_dropped(backend, solver, power):
    """One column times 2**520 (~1e156: its squares summed overflow) or 2**-700
    (they underflow): the automatic step's standardisation reads it at its own
    scale, so its coefficient is the plain fit's times 2**-power, never 0 as
    for a constant column. (A variance computed as inf - inf once came back
    0 and froze the coefficient.)"""
    X, y = _data()
    X = X + 1.0
    s = np.ldexp(1.0, power)
    scaled = X.copy()
    scaled[:, 1] *= s
    kw = dict(solver=solver, backend=backend.NAME, random_state=0, tol=None, max_iter=200)
    model, plain = LinearRegression(**kw).fit(scaled, y), LinearRegression(**kw).fit(X, y)
    assert model.coef_[1] != 0.0
    unscaled = model.coef_.copy()
    unscaled[1] *= s
    np.testing.assert_allclose(unscaled, plain.coef_, rtol=1e-9)
    np.testing.assert_allclose(model.intercept_, plain.intercept_, rtol=1e-9)


@pytest.mark.parametrize("solver", ["exact", "gram"])
def test_tiny_x_where_the_statistics_underflow_raises(backend, solver):
    X, y = _data()
    with pytest.raises(ValueError, match="Rescale X"):
        LinearRegression(solver=solver, backend=backend.NAME).fit(X * 1e-200, y)


@pytest.mark.parametrize("solver", ["exact", "gd", "gram", "sgd"])
@pytest.mark.parametrize("power", [-1000, 1000])
def test_tiny_or_huge_y_is_the_same_fit_bit_for_bit(backend, solver, power):
    """The squared loss is linear in y: a fit on y * 2**p is 2**p times the fit on y."""
    X, y = _data()
    s = np.ldexp(1.0, power)
    kw = dict(solver=solver, backend=backend.NAME, random_state=0)
    model, plain = LinearRegression(**kw).fit(X, y * s), LinearRegression(**kw).fit(X, y)
    assert model.n_iter_ == plain.n_iter_
    np.testing.assert_array_equal(model.coef_, plain.coef_ * s)
    assert model.intercept_ == plain.intercept_ * s


@pytest.mark.parametrize("solver", ["exact", "sgd"])
def test_partial_fit_keeps_the_first_chunks_scale_of_y(backend, solver):
    X, y = _data()
    s = np.ldexp(1.0, -1000)
    kw = dict(solver=solver, backend=backend.NAME, random_state=0)
    model = LinearRegression(**kw).partial_fit(X[:120], y[:120] * s)
    model.partial_fit(X[120:], y[120:] * s)
    plain = LinearRegression(**kw).partial_fit(X[:120], y[:120]).partial_fit(X[120:], y[120:])
    np.testing.assert_array_equal(model.coef_, plain.coef_ * s)


def test_y_times_1e_minus_300_runs_more_than_one_step(backend):
    X, y = _data()
    exact = LinearRegression(solver="exact").fit(X, y)
    model = LinearRegression(solver="gd", backend=backend.NAME, tol=1e-8).fit(X, y * 1e-300)
    assert model.n_iter_ > 1
    np.testing.assert_allclose(model.coef_ * 1e300, exact.coef_, rtol=1e-6)


def test_overflow_errors_name_the_input_that_overflowed(backend):
    X, y = _data()
    name = backend.NAME
    with pytest.raises(ValueError, match="sample_weight is too large"):
        LinearRegression(solver="exact", backend=name).fit(X, y, sample_weight=np.full(200, 1e308))
    with pytest.raises(ValueError, match="sample_weight is too large"):
        LinearRegression(solver="gd", backend=name).fit(X, y, sample_weight=np.full(200, 1e308))
    model = LinearRegression(solver="exact", backend=name).partial_fit(X, y)
    with pytest.raises(ValueError, match="moments of y overflow"):
        model.partial_fit(X, y * 1e300)
    with pytest.raises(ValueError, match="moments of X overflow"):
        LinearRegression(solver="exact", backend=name).fit(X * 1e300, y)


def test_huge_y_now_fits():
    X, y = _data()
    model = LinearRegression(solver="exact").fit(X, y * 1e300)
    exact = LinearRegression(solver="exact").fit(X, y)
    np.testing.assert_allclose(model.coef_ / 1e300, exact.coef_, rtol=1e-12)


def _interrupt_after(seconds):
    """Send this process SIGINT after `seconds`; returns the time it was sent."""
    sent = []

    def fire():
        sent.append(time.perf_counter())
        os.kill(os.getpid(), signal.SIGINT)

    threading.Timer(seconds, fire).start()
    return sent


def _interrupted_soon(call, whole):
    """SIGINT a tenth of the way into ``call`` (of duration ``whole``): the
    KeyboardInterrupt must come within half of ``whole`` of the signal. The
    call repeats until it comes, so a timer thread that fires late (it needs
    the GIL) still lands inside a call rather than after the last one."""
    sent = _interrupt_after(0.1 * whole)
    with pytest.raises(KeyboardInterrupt):
        for _ in range(50):
            call()
    assert sent, "the interrupt was not sent"
    assert time.perf_counter() - sent[0] < 0.5 * whole


@pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="needs POSIX signals")
def test_ctrl_c_stops_the_automatic_steps_curvature_passes(sigint_raises):
    """The automatic step's Lanczos passes over X (10, ~0.13 s): Ctrl-C must not wait for them."""
    from fastlinreg.backends import get_backend

    cpu = get_backend("cpu")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400_000, 64))
    p = problem(cpu, X)
    cfg = descent(0, 0.0, shift=np.zeros(64), scale=np.ones(64))
    t0 = time.perf_counter()
    cpu.curvature(p, cfg)
    whole = time.perf_counter() - t0
    if whole < 0.05:
        pytest.skip(f"the curvature took {whole:.2f} s here: too fast to interrupt")
    _interrupted_soon(lambda: cpu.curvature(p, cfg), whole)


def test_max_iter_beyond_the_loss_curve_is_rejected_clearly():
    X, y = _data()
    with pytest.raises(ValueError, match="max_iter"):
        LinearRegression(solver="gd", max_iter=10**11).fit(X, y)


def _cli_error(argv, capsys):
    code = cli.main(argv)
    err = capsys.readouterr().err
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_cli_errors_are_one_line(tmp_path, capsys):
    missing = tmp_path / "missing.csv"
    assert "missing.csv" in _cli_error(["fit", str(missing), "--target", "y"], capsys)
    _cli_error(["fit", str(tmp_path), "--target", "y"], capsys)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    _cli_error(["fit", str(empty), "--target", "y"], capsys)
    bad = tmp_path / "bad.csv"
    bad.write_text('a,y\n1,2\n3,"4\n5,6,7,8\n')
    _cli_error(["fit", str(bad), "--target", "y"], capsys)
    text = tmp_path / "text.csv"
    text.write_text("a,y\n1,x\n2,z\n")
    _cli_error(["fit", str(text), "--target", "y"], capsys)
    assert "diverged" in _cli_error(["--learning-rate", "10", "--seed", "0"], capsys)


def test_sufficient_stats_from_arrays_validates(backend):
    X, y = _data(n=5, d=2)
    for kw in ({"sample_weight": [1, 2, np.nan, 1, 1]}, {"sample_weight": [1, 2]}):
        with pytest.raises(ValueError, match="sample_weight"):
            SufficientStats.from_arrays(X, y, backend=backend.NAME, **kw)
    with pytest.raises(ValueError, match="y must"):
        SufficientStats.from_arrays(X, y[:4], backend=backend.NAME)
    with pytest.raises(ValueError, match="y must"):
        SufficientStats.from_arrays(X, ["a"] * 5, backend=backend.NAME)
    with pytest.raises(ValueError, match="X must"):
        SufficientStats.from_arrays(X[0], y, backend=backend.NAME)


def test_the_statistics_pass_in_blocks_equals_one_pass(monkeypatch):
    """The cpu backend splits a long statistics pass into row blocks (so Ctrl-C is
    heard between them) and merges them: the same statistics, to rounding."""
    from fastlinreg.backends import cpu

    rng = np.random.default_rng(3)
    X, Y = rng.normal(size=(5000, 7)) + 10.0, rng.normal(size=(5000, 2))
    sw = rng.uniform(0.0, 2.0, size=5000)
    sw[1024:2048] = 0.0  # a block that weighs nothing
    p = problem(cpu, X, Y, sw)
    whole = cpu.sufficient_stats(p)
    monkeypatch.setattr(cpu, "_STATS_BLOCK_WORK", 1024 * 7 * 9)
    blocked = cpu.sufficient_stats(p)
    for a, b in zip(whole, blocked):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12 * np.max(np.abs(a)))
    assert np.array_equal(blocked[3], blocked[3].T)


@pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="needs POSIX signals")
def test_ctrl_c_stops_the_statistics_pass(monkeypatch, sigint_raises):
    """Blocks of 2^26 multiply-adds here (2^30 in use), so a small X has many."""
    from fastlinreg.backends import cpu

    monkeypatch.setattr(cpu, "_STATS_BLOCK_WORK", 1 << 26)
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(60_000, 256)), rng.normal(size=(60_000, 1))
    p = problem(cpu, X, Y)
    t0 = time.perf_counter()
    cpu.sufficient_stats(p)
    whole = time.perf_counter() - t0
    if whole < 0.05:
        pytest.skip(f"the statistics pass took {whole:.2f} s here: too fast to interrupt")
    _interrupted_soon(lambda: cpu.sufficient_stats(p), whole)
