"""solver="auto" with a float step on a tiny problem replays gradient descent
in closed form (solvers/_replay.py): the same iterates, loss curve, n_iter_,
warnings and errors as the step-by-step loop of solver="gd"."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from fastlinreg import LinearRegression
from fastlinreg.datasets import TUTORIAL_LEARNING_RATE, TUTORIAL_STEPS, load_tutorial
from fastlinreg.exceptions import ConvergenceWarning, DivergenceError
from fastlinreg.solvers import _replay, descent


@pytest.fixture
def replays(monkeypatch):
    """One entry per tiny fit (_replay.fit_tiny) during the test: True where
    the closed form answered, False where it handed over to the step loop."""
    seen, inside = [], []
    fit_tiny, loop = _replay.fit_tiny, descent.run

    def spy_fit(*args, **kwargs):
        inside.append(True)
        try:
            return fit_tiny(*args, **kwargs)
        finally:
            seen.append(inside.pop())

    def spy_loop(*args, **kwargs):
        if inside:
            inside[-1] = False
        return loop(*args, **kwargs)

    monkeypatch.setattr(_replay, "fit_tiny", spy_fit)
    monkeypatch.setattr(descent, "run", spy_loop)
    return seen


def _fit(solver, X, y, **params):
    """(model, ConvergenceWarnings raised) of one fit."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = LinearRegression(solver=solver, **params).fit(X, y)
    return model, [w for w in caught if issubclass(w.category, ConvergenceWarning)]


def _same_trajectory(auto, gd):
    assert auto.solver_ == gd.solver_ == "gd"
    assert auto.n_iter_ == gd.n_iter_
    np.testing.assert_allclose(auto.coef_, gd.coef_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(auto.intercept_, gd.intercept_, rtol=1e-9, atol=1e-12)
    floor = 1e-12 * float(gd.loss_curve_[0])
    np.testing.assert_allclose(auto.loss_curve_, gd.loss_curve_, rtol=1e-9, atol=floor)
    assert auto.learning_rate_ == gd.learning_rate_


def _problem(rng, n, d, k, weights):
    X = rng.standard_normal((n, d)) * rng.uniform(0.5, 2.0, d) + rng.uniform(-1, 1, d)
    W = rng.standard_normal((d, k))
    Y = X @ W + 0.5 + 0.3 * rng.standard_normal((n, k))
    sw = rng.uniform(0.2, 2.0, n) if weights else None
    return X, (Y[:, 0] if k == 1 else Y), sw


def _lambda_max(X, sw, alpha, fit_intercept):
    A = np.hstack([X, np.ones((X.shape[0], 1))]) if fit_intercept else X
    w = np.ones(X.shape[0]) if sw is None else sw
    H = A.T @ (w[:, None] * A) / w.sum()
    H[: X.shape[1], : X.shape[1]] += alpha * np.eye(X.shape[1])
    return np.linalg.eigvalsh(H)[-1]


@pytest.mark.parametrize("d", [1, 2, 3, 5])
@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("tol", [None, 1e-4])
def test_closed_form_matches_the_step_loop(backend, replays, d, k, fit_intercept, tol):
    rng = np.random.default_rng(1000 * d + 10 * k + fit_intercept + (tol is None) * 7)
    X, y, sw = _problem(rng, 30, d, k, weights=d % 2 == 1)
    alpha = 0.05 if d == 3 else 0.0
    lr = rng.uniform(0.2, 1.9) / _lambda_max(X, sw, alpha, fit_intercept)
    params = dict(learning_rate=lr, max_iter=400, tol=tol, alpha=alpha)
    params.update(fit_intercept=fit_intercept, backend=backend.NAME)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        auto = LinearRegression(solver="auto", **params).fit(X, y, sample_weight=sw)
        gd = LinearRegression(solver="gd", **params).fit(X, y, sample_weight=sw)
    assert replays == [True]
    _same_trajectory(auto, gd)


@pytest.mark.parametrize("max_iter", [1, 2, 50, 3000])
def test_tol_stop_and_warning_match(backend, replays, max_iter):
    rng = np.random.default_rng(max_iter)
    X, y, _ = _problem(rng, 40, 2, 2, weights=False)
    lr = 0.5 / _lambda_max(X, None, 0.0, True)
    params = dict(learning_rate=lr, max_iter=max_iter, tol=1e-3, backend=backend.NAME)
    auto, warned_auto = _fit("auto", X, y, **params)
    gd, warned_gd = _fit("gd", X, y, **params)
    assert replays == [True]
    _same_trajectory(auto, gd)
    assert len(warned_auto) == len(warned_gd) == (1 if gd.n_iter_ == max_iter else 0)
    if max_iter == 3000:
        assert gd.n_iter_ < max_iter  # this case stops on tol, the others on max_iter


def test_per_target_alpha_and_warm_start(backend, replays):
    rng = np.random.default_rng(7)
    X, y, _ = _problem(rng, 25, 3, 2, weights=False)
    lr = 1.0 / _lambda_max(X, None, 0.0, True)
    params = dict(learning_rate=lr, max_iter=200, tol=None, alpha=[0.0, 0.3], backend=backend.NAME)
    auto, _ = _fit("auto", X, y, **params)
    gd, _ = _fit("gd", X, y, **params)
    _same_trajectory(auto, gd)
    # From the previous model: the start is near the optimum already.
    W0, b0 = gd.coef_, gd.intercept_
    auto = LinearRegression(solver="auto", **params).fit(X, y, coef_init=W0, intercept_init=b0)
    gd = LinearRegression(solver="gd", **params).fit(X, y, coef_init=W0, intercept_init=b0)
    assert replays == [True, True]
    _same_trajectory(auto, gd)


def test_a_diverging_step_raises_as_the_loop_does(backend, replays):
    rng = np.random.default_rng(3)
    X, y, _ = _problem(rng, 30, 2, 1, weights=False)
    lr = 2.2 / _lambda_max(X, None, 0.0, True)
    errors = []
    for solver in ("auto", "gd"):
        model = LinearRegression(solver=solver, learning_rate=lr, max_iter=500, tol=None)
        model.set_params(backend=backend.NAME)
        with pytest.raises(DivergenceError) as info:
            model.fit(X, y)
        errors.append((info.value.step, str(info.value)))
    assert replays == [False]  # the closed form leaves divergence to the loop's rule
    assert errors[0] == errors[1]


def test_tutorial_fit(backend, replays):
    x, y = load_tutorial()
    X = x.reshape(-1, 1)
    for tol in (None, 1e-4):
        params = dict(
            learning_rate=TUTORIAL_LEARNING_RATE,
            max_iter=TUTORIAL_STEPS,
            tol=tol,
            backend=backend.NAME,
        )
        models = [
            LinearRegression(solver=s, **params).fit(X, y, coef_init=[0.5], intercept_init=-0.25)
            for s in ("auto", "gd")
        ]
        _same_trajectory(*models)
    assert replays == [True, True]


def test_closed_form_primitives_match_brute_force():
    rng = np.random.default_rng(0)
    coef, rate = rng.uniform(0.1, 2.0, 3), np.array([0.0, 0.5, 0.999])
    t = np.arange(5, 5 + 137)
    want = (coef * rate ** t[:, None]).sum(axis=1)
    np.testing.assert_allclose(_replay._series(coef, rate, 5, 137), want, rtol=1e-13)
    values = (coef * rate ** np.arange(1000)[:, None]).sum(axis=1)
    for threshold in (values[1] * 1.0001, values[17], values[999], values[999] * 0.5):
        hits = np.flatnonzero(values[1:] <= threshold)
        expect = int(hits[0]) + 1 if hits.size else 1000
        assert _replay._first_below(coef, rate, threshold, 1000) == expect
    lam = np.array([0.0, 1e-20, 0.3, 1.5])
    T, eta = 40, 1.0
    brute = [eta * T, eta * T, (1 - (1 - 0.3) ** T) / 0.3, (1 - (1 - 1.5) ** T) / 1.5]
    np.testing.assert_allclose(_replay._one_minus_power_over(lam, eta, T), brute, rtol=1e-12)
