"""lbfgs's subsample start (solvers/_warm.py): forced on small problems by
lowering its row thresholds, it must reach scikit-learn's optimum, stop by the
plain run's rule, give the same bits for any thread count, and fall back to
the plain start where the subsample is unusable."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg as sla
import sklearn
from conftest import classification, sk_objective
from sklearn import linear_model as sk

from fastlinreg import LogisticRegression
from fastlinreg._losses import LOGISTIC, SOFTMAX
from fastlinreg.backends import Problem, get_backend
from fastlinreg.solvers import _warm
from fastlinreg.solvers.objective import Objective

SKLEARN_VERSION = tuple(int(p) for p in sklearn.__version__.split(".")[:2])


@pytest.fixture
def forced(monkeypatch):
    """The subsample start on a few thousand rows, and a record of its use."""
    monkeypatch.setattr(_warm, "STRIDE", 4)
    monkeypatch.setattr(_warm, "MIN_SUBSAMPLE_ROWS", 50)
    monkeypatch.setattr(_warm, "ROWS_PER_PARAMETER", 20)
    monkeypatch.setattr(_warm, "HESSIAN_ROWS", 200)
    used = []
    real = _warm.precondition

    def spy(*args, **kwargs):
        pre = real(*args, **kwargs)
        used.append(pre is not None)
        return pre

    monkeypatch.setattr(_warm, "precondition", spy)
    return used


def reference_gradient(coef, intercept, X, y, sw, C):
    """The gradient of the scaled objective (what tol bounds), in float64 numpy."""
    w = np.ones(len(y)) if sw is None else sw
    p = 1.0 / (1.0 + np.exp(-(X @ coef[0] + intercept[0])))
    r = w * (p - (y == y.max())) / w.sum()
    return np.concatenate([X.T @ r + coef[0] / (C * w.sum()), [r.sum()]])


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("class_weight", [None, "balanced"])
def test_matches_scikit_learn_lbfgs(backend, rng, forced, weighted, class_weight):
    X, y, sw = classification(rng, 3000, 6, 2, weighted)
    kw = dict(C=0.7, tol=1e-10, max_iter=2000, class_weight=class_weight)
    ours = LogisticRegression(solver="lbfgs", backend=backend.NAME, **kw).fit(X, y, sw)
    if class_weight == "balanced" and weighted and SKLEARN_VERSION < (1, 7):
        # scikit-learn < 1.7 counts classes without the sample weights: give it 1.7's weights
        totals = np.array([sw[y == c].sum() for c in (0, 1)])
        kw["class_weight"] = dict(enumerate(sw.sum() / (2 * totals)))
    theirs = sk.LogisticRegression(solver="lbfgs", **kw).fit(X, y, sw)
    assert forced == [True]
    scale = np.abs(theirs.coef_).max()
    assert np.abs(ours.coef_ - theirs.coef_).max() <= 1e-6 * scale
    assert np.abs(ours.intercept_ - theirs.intercept_).max() <= 1e-6 * max(scale, 1.0)
    cw = np.ones(len(y)) if sw is None else sw.copy()
    if class_weight == "balanced":
        totals = np.array([cw[y == c].sum() for c in (0, 1)])
        cw = cw * (cw.sum() / (2 * totals))[y]
    f_ours = sk_objective(ours.coef_, ours.intercept_, X, y, 0.7, cw)
    f_theirs = sk_objective(theirs.coef_, theirs.intercept_, X, y, 0.7, cw)
    assert abs(f_ours - f_theirs) <= 1e-9 * abs(f_theirs)


@pytest.mark.parametrize("tol", [1e-3, 1e-5])
def test_stops_by_the_plain_rule(rng, forced, tol):
    X, y, _ = classification(rng, 4000, 5, 2)
    model = LogisticRegression(solver="lbfgs", tol=tol, C=2.0).fit(X, y)
    assert forced == [True]
    g = reference_gradient(model.coef_, model.intercept_, X, y, None, 2.0)
    assert np.abs(g).max() <= tol
    assert model.loss_curve_.shape == (model.n_iter_[0],)
    assert np.all(np.isfinite(model.loss_curve_)) and np.all(np.diff(model.loss_curve_) <= 0)


def test_same_bits_for_any_thread_count(rng, forced):
    X, y, sw = classification(rng, 6001, 7, 2, weights=True)
    layouts = [(X, y, sw), (X.astype(np.float32), y, sw), (np.asfortranarray(X), y, sw)]
    for data, labels, weights in layouts + [(X[::2], y[::2], sw[::2])]:
        fits = [
            LogisticRegression(solver="lbfgs", tol=1e-8, n_jobs=j).fit(data, labels, weights)
            for j in (1, 2, 3)
        ]
        for other in fits[1:]:
            assert np.array_equal(other.coef_, fits[0].coef_)
            assert np.array_equal(other.intercept_, fits[0].intercept_)
    assert all(forced)


def test_preconditioner_maps_gradients_by_the_chain_rule(rng):
    size = 6
    A = rng.standard_normal((size, size))
    factor = np.linalg.cholesky(A @ A.T + size * np.eye(size))
    pre = _warm.Preconditioner(rng.standard_normal(size), factor, 0.37)
    P = 0.37 * np.linalg.inv(factor).T  # x(z) = x0 + P z, so the gradient in z is P^T g
    z, g = rng.standard_normal(size), rng.standard_normal(size)
    np.testing.assert_allclose(pre.x(z), pre.x0 + P @ z, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(pre.grad(g), P.T @ g, rtol=1e-12, atol=1e-12)
    assert np.array_equal(pre.x(np.zeros(size)), pre.x0)
    # the unit step along -grad in z is the Newton step of H = L L^T (scale |L^-1 g|)
    pre.scale = float(np.linalg.norm(sla.solve_triangular(factor, g, lower=True)))
    gz = pre.grad(g)
    newton = -np.linalg.solve(factor @ factor.T, g)
    np.testing.assert_allclose(pre.x(-gz / np.linalg.norm(gz)) - pre.x0, newton, rtol=1e-10)


def objective_of(rng, n, d, k, alpha=1e-3, sw=None):
    X, y, _ = classification(rng, n, d, max(k, 2))
    Y = (y == 1).astype(float)[:, None] if k == 1 else np.eye(k)[y]
    total = float(n) if sw is None else float(sw.sum())
    problem = Problem(X, Y, sw, total, LOGISTIC if k == 1 else SOFTMAX)
    return Objective(get_backend("cpu"), problem, alpha, True)


def test_applies_only_to_cold_penalised_binary_fits_on_many_rows(rng, forced):
    obj = objective_of(rng, 2000, 4, 1)
    x0 = np.zeros(obj.size)
    assert _warm.applies(obj, x0)
    assert not _warm.applies(obj, x0 + 0.1)  # a warm start of the caller's
    assert not _warm.applies(objective_of(rng, 2000, 4, 3), np.zeros(15))  # softmax
    assert not _warm.applies(objective_of(rng, 2000, 4, 1, alpha=0.0), x0)  # no penalty
    assert not _warm.applies(objective_of(rng, 150, 4, 1), x0)  # too few rows


def test_no_weight_in_the_subsample_falls_back(rng, forced):
    sw = np.ones(2000)
    sw[::4] = 0.0  # every row the subsample would take
    obj = objective_of(rng, 2000, 4, 1, sw=sw)
    assert _warm.precondition(obj, np.zeros(obj.size), 100) is None
    X, y, _ = classification(rng, 2000, 4, 2)
    model = LogisticRegression(solver="lbfgs", tol=1e-8).fit(X, y, sw)
    plain = sk.LogisticRegression(solver="lbfgs", tol=1e-8).fit(X, y, sw)
    assert forced[-1] is False
    assert np.abs(model.coef_ - plain.coef_).max() <= 1e-5 * np.abs(plain.coef_).max()
