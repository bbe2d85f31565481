"""Property-based tests (hypothesis) over solvers, dtypes, layouts and
scales: a fit returns a finite, sensible model or raises a clear error;
the solvers agree where they should; a refit is bit-identical."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from fastlinreg import LinearRegression
from fastlinreg.exceptions import ConvergenceWarning, IllConditionedWarning

SETTINGS = settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)


@st.composite
def problems(draw, min_rows=1):
    """(X, y, sample_weight or None): random shapes, dtype, layout and scales,
    with a constant column now and then."""
    n = draw(st.integers(min_rows, 40))
    d = draw(st.integers(1, 5))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * np.ldexp(1.0, draw(st.sampled_from([-400, -60, 0, 60, 300])))
    X += rng.normal(size=d) * draw(st.sampled_from([0.0, 1.0, 1e6]))
    if d > 1 and draw(st.booleans()):
        X[:, draw(st.integers(0, d - 1))] = draw(st.sampled_from([0.0, 3.0, 1e18, -1e150]))
    scale_y = np.ldexp(1.0, draw(st.sampled_from([-1000, -30, 0, 30, 900])))
    y = (X @ rng.normal(size=d) / (np.abs(X).max() or 1.0) + rng.normal(size=n)) * scale_y
    dtype = draw(st.sampled_from([np.float64, np.float32]))
    with np.errstate(over="ignore", under="ignore"):
        X = X.astype(dtype)
    assume(np.isfinite(X).all())
    layout = draw(st.sampled_from(["C", "F", "rows"]))
    if layout == "F":
        X = np.asfortranarray(X)
    elif layout == "rows":
        X = np.repeat(X, 2, axis=0)[::2]
    sw = rng.uniform(0.1, 2.0, size=n) if draw(st.booleans()) else None
    return X, y, sw


ALLOWED = (ValueError, FloatingPointError)  # DivergenceError is both


def _fit(X, y, sw, **params):
    """The fitted model, or None when it raised one of the documented errors."""
    model = LinearRegression(random_state=0, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", IllConditionedWarning)
        try:
            return model.fit(X, y, sample_weight=sw)
        except ALLOWED as exc:
            assert str(exc), "an error must say what went wrong"
            assert not hasattr(model, "coef_"), "a failed fit leaves the estimator unfitted"
            return None


def _train_loss(model, X, y, sw):
    with np.errstate(all="ignore"):
        r = (model.predict(X) - y) / max(np.abs(y).max(), 1e-300)
    w = np.ones(len(y)) if sw is None else sw
    return float(w @ (r * r) / w.sum())


@SETTINGS
@given(problems(), st.sampled_from(["exact", "gd", "gram", "sgd"]), st.booleans())
def test_a_fit_is_finite_and_no_worse_than_the_mean(data, solver, fit_intercept):
    X, y, sw = data
    model = _fit(X, y, sw, solver=solver, fit_intercept=fit_intercept)
    if model is None:
        return
    assert np.isfinite(model.coef_).all() and np.isfinite(model.intercept_)
    with np.errstate(all="ignore"):
        pred = model.predict(X)
    assume(np.isfinite(pred).all())  # coefficients of 1e300 times X of 1e-300 may round so
    if fit_intercept and solver in ("exact", "gd", "gram"):
        # Least squares, or monotone descent from zero past the intercept's own
        # optimum: never worse than predicting the weighted mean.
        w = np.ones(len(y)) if sw is None else sw
        mean_model = np.average(y, weights=w)
        with np.errstate(all="ignore"):
            r0 = (y - mean_model) / max(np.abs(y).max(), 1e-300)
        base = float(w @ (r0 * r0) / w.sum())
        assert _train_loss(model, X, y, sw) <= base * (1 + 1e-4) + 1e-12


@SETTINGS
@given(problems(), st.sampled_from(["exact", "gd", "gram", "sgd"]))
def test_a_refit_is_bit_identical(data, solver):
    X, y, sw = data
    first = _fit(X, y, sw, solver=solver)
    second = _fit(X, y, sw, solver=solver)
    assert (first is None) == (second is None)
    if first is not None:
        assert np.array_equal(first.coef_, second.coef_)
        assert first.intercept_ == second.intercept_ or np.isnan(first.intercept_)
        assert first.n_iter_ == second.n_iter_


@SETTINGS
@given(problems(min_rows=2), st.floats(0.05, 0.9))
def test_gd_and_gram_take_the_same_steps(data, fraction):
    """With a float step gd over X and gram over the statistics are the same iterates."""
    X, y, sw = data
    X = X.astype(np.float64)
    stats_scale = max(np.abs(X).max(), 1e-300) ** 2 + 1.0
    step = fraction / stats_scale  # below 2/L, as L <= max|x|^2 + 1 for the mean loss
    kw = dict(learning_rate=step, max_iter=50, tol=None)
    gd, gram = _fit(X, y, sw, solver="gd", **kw), _fit(X, y, sw, solver="gram", **kw)
    assume(gd is not None and gram is not None)
    scale = max(np.abs(gd.coef_).max(), abs(gd.intercept_), np.abs(y).max(), 1e-300)
    np.testing.assert_allclose(gram.coef_, gd.coef_, rtol=0, atol=1e-8 * scale)
    assert gram.intercept_ == pytest.approx(gd.intercept_, abs=1e-8 * scale)


@SETTINGS
@given(st.integers(0, 2**32 - 1), st.integers(20, 60), st.integers(1, 4), st.booleans())
def test_descent_reaches_the_exact_optimum(seed, n, d, weighted):
    """On well-conditioned data gd and gram with the automatic step converge to exact's answer."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * rng.uniform(0.1, 10.0, size=d) + rng.normal(size=d) * 5
    y = X @ rng.normal(size=d) + rng.normal(size=n)
    sw = rng.uniform(0.5, 2.0, size=n) if weighted else None
    exact = _fit(X, y, sw, solver="exact")
    assume(exact is not None)
    cond = np.linalg.cond(X - X.mean(0))
    assume(cond < 30)
    for solver in ("gd", "gram"):
        model = _fit(X, y, sw, solver=solver, tol=1e-12, max_iter=20000)
        np.testing.assert_allclose(model.predict(X), exact.predict(X), rtol=1e-6, atol=1e-6)
