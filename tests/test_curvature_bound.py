"""The automatic step's curvature: at most 10 Lanczos passes, an upper bound
of λmax of the standardised XᵀX/n on adversarial spectra, and its reuse
across warm starts and partial_fit (solvers/_curvature.py)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import problem

from fastlinreg import LinearRegression
from fastlinreg._stats import SufficientStats
from fastlinreg.backends import DescentConfig, reference
from fastlinreg.solvers import _curvature


def _spectrum(name, d, rng):
    if name == "flat":
        return np.ones(d)
    if name == "dominant":
        return np.r_[rng.uniform(0, 1e-2, d - 1), 1.0]
    if name == "clustered":
        top = min(d, 5)
        return np.r_[np.linspace(0.0, 0.5, d - top), 1.0 - 1e-3 * rng.random(top)]
    return np.linspace(1.0 / d, 1.0, d)  # "dense": the slowest case for Lanczos


def _stats(lam, rng):
    d = lam.size
    Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    C = (Q * lam) @ Q.T
    return SufficientStats(1.0, np.zeros(d), np.zeros(1), C, np.zeros((d, 1)), np.zeros((1, 1)))


SPECTRA = ["flat", "dominant", "clustered", "dense"]


@pytest.mark.parametrize("d", [1, 2, 9, 40, 150])
@pytest.mark.parametrize("spectrum", SPECTRA)
def test_bound_is_above_lambda_max(backend, d, spectrum):
    rng = np.random.default_rng(d)
    stats = _stats(_spectrum(spectrum, d, rng), rng)
    config = DescentConfig(0, 0.0, None, 0.0, False, None, np.ones(d))
    L = backend.curvature_gram(stats, config)
    top = np.linalg.eigvalsh(stats.Cxx)[-1]
    assert top <= L <= 1.4 * top
    if d <= 10:  # the Krylov space is all of R^d: exact up to rounding
        assert L <= top * (1 + 1e-9)


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_bound_over_x_with_correlated_columns(backend, rng, fit_intercept):
    n, d = 400, 30
    X = rng.standard_normal((n, d)) * rng.uniform(0.1, 100.0, d) + 3.0
    X[:, 1:6] = X[:, [0]] / X[:, 0].std() + 0.01 * rng.standard_normal((n, 5))  # a top cluster
    X = np.ascontiguousarray(X)
    mean = X.mean(0)
    spread = X.std(0) if fit_intercept else np.sqrt(X.var(0) + mean**2)
    Z = (X - (mean if fit_intercept else 0.0)) / spread
    top = np.linalg.eigvalsh(Z.T @ Z / n)[-1]
    config = DescentConfig(
        0, 0.0, None, 0.0, fit_intercept, mean if fit_intercept else None, spread
    )
    L = backend.curvature(problem(backend, X), config)
    assert max(top, 1.0 if fit_intercept else 0.0) <= L <= 1.4 * top


def test_at_most_ten_passes():
    rng = np.random.default_rng(0)
    A = _stats(_spectrum("dense", 200, rng), rng).Cxx
    passes = []

    def probe(W, b):
        passes.append(1)
        return A @ W, np.zeros(1)

    config = DescentConfig(0, 0.0, None, 0.0, False, None, np.ones(200))
    L = reference.top_curvature(probe, config, 200, 1.0)
    assert len(passes) == reference.CURVATURE_PASSES == 10
    assert np.linalg.eigvalsh(A)[-1] <= L


def _counting(monkeypatch, backend):
    calls = []
    for name in ("curvature", "curvature_gram"):
        original = getattr(backend, name)

        def counted(*args, _original=original, **kwargs):
            calls.append(1)
            return _original(*args, **kwargs)

        monkeypatch.setattr(backend, name, counted)
    return calls


def test_warm_start_reuses_the_estimate_on_the_same_rows(backend, rng, monkeypatch):
    calls = _counting(monkeypatch, backend)
    X, y = rng.standard_normal((300, 12)), rng.standard_normal(300)
    model = LinearRegression(solver="gd", max_iter=30, tol=None, warm_start=True)
    model.set_params(backend=backend.NAME).fit(X, y)
    first = model.learning_rate_
    model.fit(X, y)
    assert len(calls) == 1 and model.learning_rate_ == first
    X2 = X.copy()
    X2[7, 3] += 1.0  # a row the sample does not see, but the moments do
    model.fit(X2, y)
    assert len(calls) == 2
    X3 = X.copy()
    X3[:, 2] = X3[::-1, 2]  # the same column moments, other correlations
    model.fit(X3, y)
    assert len(calls) == 3
    model.set_params(warm_start=False).fit(X3, y)
    assert len(calls) == 4


def test_partial_fit_reuses_the_estimate_within_weyls_bound(backend, rng, monkeypatch):
    calls = _counting(monkeypatch, backend)
    X, y = rng.standard_normal((4000, 8)), rng.standard_normal(4000)
    model = LinearRegression(solver="gram", max_iter=50, tol=None).set_params(backend=backend.NAME)
    model.partial_fit(X[:2000], y[:2000])
    est = model._stream.curvature
    model.partial_fit(X[2000:2100], y[2000:2100])  # a small chunk: the bound moves a little
    again = model._stream.curvature
    assert len(calls) == 1 and est.L < again.L <= est.L * 1.05
    A = _curvature._standardised(model._stream.stats, again.shift, again.scale, 0.0)
    assert np.linalg.eigvalsh(A)[-1] <= again.L
    model.partial_fit(10.0 * X[:500], y[:500])  # other scales: recomputed
    assert len(calls) == 2
