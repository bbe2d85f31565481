"""scikit-learn parity beyond the defaults: dtypes and shapes of the learned
attributes, one alpha per target, and positive=True, on every backend."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize
from sklearn.linear_model import LinearRegression as SkLinearRegression
from sklearn.linear_model import Ridge

from fastlinreg import LinearRegression

SOLVERS = ["exact", "gram", "gd"]


def _data(rng, n=60, d=4, k=None, dtype=np.float64):
    X = rng.normal(size=(n, d)).astype(dtype)
    shape = (n,) if k is None else (n, k)
    y = rng.normal(size=shape) + X[:, :1].astype(np.float64) * 2.0
    return X, y


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("y_shape", ["1d", "n1", "n3"])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_dtype_and_shapes_follow_sklearn(rng, backend, dtype, y_shape, fit_intercept):
    k = {"1d": None, "n1": 1, "n3": 3}[y_shape]
    X, y = _data(rng, k=k, dtype=dtype)
    ours = LinearRegression(fit_intercept=fit_intercept, backend=backend.NAME).fit(X, y)
    sk = SkLinearRegression(fit_intercept=fit_intercept).fit(X, y)
    assert ours.coef_.shape == sk.coef_.shape
    assert ours.coef_.dtype == sk.coef_.dtype == dtype
    assert np.shape(ours.intercept_) == np.shape(sk.intercept_) or not fit_intercept
    if fit_intercept:
        assert np.asarray(ours.intercept_).dtype == np.asarray(sk.intercept_).dtype
    P = ours.predict(X)
    assert P.shape == sk.predict(X).shape and P.dtype == dtype
    rtol = 1e-4 if dtype == np.float32 else 1e-9
    np.testing.assert_allclose(ours.coef_, sk.coef_, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("solver", SOLVERS + ["sgd"])
def test_alpha_per_target_equals_one_fit_per_target(rng, backend, solver):
    X, Y = _data(rng, n=80, d=5, k=3)
    alpha = np.array([0.0, 0.3, 2.0])
    kw = dict(solver=solver, backend=backend.NAME, max_iter=200 if solver == "sgd" else 5000)
    kw.update(tol=None, random_state=0)
    if solver == "sgd":  # the automatic step would follow the largest alpha
        kw["learning_rate"] = 0.01
    both = LinearRegression(alpha=alpha, **kw).fit(X, Y)
    for q in range(3):
        one = LinearRegression(alpha=alpha[q], **kw).fit(X, Y[:, q])
        # The targets do not couple: each column is the single-target fit
        # (converged, or sgd's trajectory: its row order does not depend on y).
        np.testing.assert_allclose(both.coef_[q], one.coef_, rtol=1e-9, atol=1e-10)
        np.testing.assert_allclose(both.intercept_[q], one.intercept_, rtol=1e-9, atol=1e-10)


def test_alpha_per_target_matches_sklearn_ridge(rng, backend):
    X, Y = _data(rng, n=50, d=6, k=2)
    alpha = np.array([0.5, 7.0])
    ours = LinearRegression(alpha=alpha / X.shape[0], backend=backend.NAME).fit(X, Y)
    sk = Ridge(alpha=alpha).fit(X, Y)
    np.testing.assert_allclose(ours.coef_, sk.coef_, rtol=1e-10)
    np.testing.assert_allclose(ours.intercept_, sk.intercept_, rtol=1e-10)


@pytest.mark.parametrize(
    "alpha,match",
    [
        ([1.0, 2.0], "penalties do not correspond: 2 != 3"),
        ([[1.0, 2.0, 3.0]], "alpha"),
        ([-1.0, 1.0, 1.0], "alpha"),
        ("x", "alpha"),
    ],
)
def test_bad_alpha_is_a_clear_error(rng, alpha, match):
    X, Y = _data(rng, k=3)
    model = LinearRegression(alpha=alpha)
    with pytest.raises((ValueError, TypeError), match=match):
        model.fit(X, Y)
    assert not hasattr(model, "coef_")


def _nnls_reference(X, y, sw=None, alpha=0.0, fit_intercept=True):
    """scipy.optimize.nnls on the rows themselves: centred (the intercept is
    free), weighted by sqrt(w), with sqrt(alpha * sum w) I stacked for ridge."""
    w = np.ones(len(y)) if sw is None else sw
    if fit_intercept:
        mx, my = w @ X / w.sum(), w @ y / w.sum()
    else:
        mx, my = np.zeros(X.shape[1]), 0.0
    A = np.sqrt(w)[:, None] * (X - mx)
    b = np.sqrt(w) * (y - my)
    if alpha:
        A = np.vstack([A, np.sqrt(alpha * w.sum()) * np.eye(X.shape[1])])
        b = np.concatenate([b, np.zeros(X.shape[1])])
    coef = scipy.optimize.nnls(A, b)[0]
    return coef, (my - mx @ coef) if fit_intercept else 0.0


@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("alpha", [0.0, 0.1])
def test_positive_exact_equals_scipy_nnls(rng, backend, fit_intercept, weighted, alpha):
    n, d = 70, 8
    X = rng.normal(size=(n, d))
    y = X @ np.array([1.0, -2.0, 0.5, 0.0, -0.1, 3.0, -1.0, 0.2]) + 0.1 * rng.normal(size=n)
    sw = rng.uniform(0.5, 2.0, size=n) if weighted else None
    model = LinearRegression(
        positive=True, fit_intercept=fit_intercept, alpha=alpha, backend=backend.NAME
    ).fit(X, y, sample_weight=sw)
    coef, intercept = _nnls_reference(X, y, sw, alpha, fit_intercept)
    assert (model.coef_ >= 0).all() and (coef == 0).any()
    np.testing.assert_allclose(model.coef_, coef, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(model.intercept_, intercept, rtol=1e-9, atol=1e-10)


def test_positive_with_collinear_columns_matches_nnls(rng, backend):
    X = rng.normal(size=(30, 3))
    X = np.column_stack([X, X[:, 0] + X[:, 1]])  # singular XᵀX
    y = X @ np.array([1.0, 2.0, -1.0, 0.0]) + 0.01 * rng.normal(size=30)
    model = LinearRegression(positive=True, backend=backend.NAME).fit(X, y)
    coef, intercept = _nnls_reference(X, y)
    # The optimum's value is unique even where the minimiser is not.
    obj = lambda c, b: np.sum((X @ c + b - y) ** 2)  # noqa: E731
    assert obj(model.coef_, model.intercept_) == pytest.approx(obj(coef, intercept), rel=1e-9)
    assert (model.coef_ >= 0).all()


def test_positive_on_a_single_row_gives_zero_coefficients(backend):
    # Centred, one row has XᵀX = 0: the minimum-norm answer is coef 0.
    model = LinearRegression(positive=True, backend=backend.NAME).fit([[1.0]], [0.0])
    assert model.coef_.tolist() == [0.0] and model.intercept_ == 0.0


@pytest.mark.parametrize("solver", ["gd", "gram"])
@pytest.mark.parametrize("learning_rate", ["auto", 0.05])
def test_positive_descent_reaches_the_nnls_optimum(rng, backend, solver, learning_rate):
    n, d = 120, 5
    X = rng.normal(size=(n, d)) + 1.0
    y = X @ np.array([1.0, -2.0, 0.5, 0.0, 1.5]) + 0.05 * rng.normal(size=n)
    model = LinearRegression(
        positive=True,
        solver=solver,
        learning_rate=learning_rate,
        max_iter=20000,
        tol=1e-10,
        backend=backend.NAME,
    ).fit(X, y)
    coef, intercept = _nnls_reference(X, y)
    assert (model.coef_ >= 0).all()
    np.testing.assert_allclose(model.coef_, coef, atol=1e-6)
    np.testing.assert_allclose(model.intercept_, intercept, atol=1e-6)


def test_positive_sgd_stays_feasible_and_near_the_optimum(rng, backend):
    n, d = 2000, 4
    X = rng.normal(size=(n, d))
    y = X @ np.array([1.0, -2.0, 0.5, 0.0]) + 0.05 * rng.normal(size=n)
    model = LinearRegression(
        positive=True, solver="sgd", max_iter=50, tol=None, random_state=0, backend=backend.NAME
    ).fit(X, y)
    coef, _ = _nnls_reference(X, y)
    assert (model.coef_ >= 0).all() and model.coef_[1] == 0.0
    np.testing.assert_allclose(model.coef_, coef, atol=0.02)


@pytest.mark.parametrize("solver", ["gd", "gram", "sgd"])
def test_positive_descent_matches_the_reference_backend(rng, solver):
    X, y = _data(rng, n=90, d=6, k=2)
    kw = dict(positive=True, solver=solver, max_iter=40, tol=None, random_state=1)
    kw["alpha"] = np.array([0.01, 0.2])
    cpu = LinearRegression(backend="cpu", **kw).fit(X, y)
    ref = LinearRegression(backend="reference", **kw).fit(X, y)
    np.testing.assert_allclose(cpu.coef_, ref.coef_, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(cpu.loss_curve_, ref.loss_curve_, rtol=1e-10)
