"""The backend seam: discovery, clear errors, the protocol, and every
available backend against the plain-numpy reference backend."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys
import warnings

import numpy as np
import pytest
from conftest import assert_close, descent, make_problem, problem

import fastlinreg
from fastlinreg import IllConditionedWarning, LinearRegression, SufficientStats
from fastlinreg.backends import Backend, SgdConfig, backend_status, get_backend, reference

PROTOCOL = sorted(
    n for n, _ in inspect.getmembers(Backend, inspect.isfunction) if not n.startswith("_")
)


def test_discovery_says_why_a_backend_is_missing():
    status = backend_status()
    assert status["cpu"] is None and status["reference"] is None
    assert set(fastlinreg.available_backends()) == {n for n, why in status.items() if why is None}
    with pytest.raises(ValueError, match="unknown backend 'tpu'"):
        get_backend("tpu")
    with pytest.raises(ValueError, match="unknown backend"):
        LinearRegression(backend="tpu").fit([[1.0], [2.0]], [1.0, 2.0])
    assert get_backend("auto").NAME == "cpu"


@pytest.mark.parametrize("name", list(backend_status()))
def test_every_backend_module_implements_the_protocol(name):
    # Every known module, available here or not (cluster and device ones too).
    module = importlib.import_module(f"fastlinreg.backends.{name}")
    missing = [op for op in PROTOCOL if not callable(getattr(module, op, None))]
    assert not missing
    ok, why = module.available()
    assert ok == (backend_status()[name] is None) and (ok or why)


def test_estimator_records_its_backend(backend, rng):
    X, Y, _ = make_problem(rng, 50, 3)
    model = LinearRegression(backend=backend.NAME).fit(X, Y[:, 0])
    assert model.backend_ == backend.NAME


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("k", [1, 3])
def test_backend_equals_reference(backend, rng, dtype, k):
    """Every operation of the protocol, on one weighted problem, against the reference."""
    n, d = 257, 11
    X, Y, sw = make_problem(rng, n, d, k, dtype, weights=True)
    X = X * np.linspace(0.5, 20.0, d).astype(dtype) + dtype(3.0)
    W, b = rng.standard_normal((d, k)), rng.standard_normal(k)
    ours, ref = problem(backend, X, Y, sw), problem(reference, X, Y, sw)
    rtol = 1e-10 if dtype == np.float64 else 1e-6

    for got, want in zip(backend.fused_pass(ours, W, b), reference.fused_pass(ref, W, b)):
        assert_close(got, want, rtol, scale=1.0)
    assert_close(backend.predict(X, W, b), reference.predict(X, W, b), 1e-12, scale=1.0)
    stats = [
        SufficientStats(*b_.sufficient_stats(p)) for b_, p in ((backend, ours), (reference, ref))
    ]
    for name in ("weight_sum", "mean_x", "mean_y", "Cxx", "Cxy", "Cyy"):
        assert_close(getattr(stats[0], name), getattr(stats[1], name), 1e-9, scale=1.0)
    for got, want in zip(backend.column_moments(ours), reference.column_moments(ref)):
        assert_close(got, want, 1e-9)

    _, mean, var = reference.column_moments(ref)
    auto = descent(0, 0.0, alpha=0.1, shift=mean, scale=np.sqrt(var))
    L = reference.curvature(ref, auto)
    assert_close(backend.curvature(ours, auto), L, 1e-9)
    assert_close(backend.curvature_gram(stats[0], auto), L, 1e-9)
    for config in (
        descent(40, 0.5 / L, alpha=0.1, shift=mean, scale=np.sqrt(var)),
        descent(40, 1e-4, tol=1e-3, fit_intercept=False),
    ):
        want = reference.descend(ref, config, W, b)
        for got in (
            backend.descend(ours, config, W, b),
            backend.descend_gram(stats[0], config, W, b),
        ):
            assert (got.n_iter, got.status) == (want.n_iter, want.status)
            assert_close(got.W, want.W, 1e-8, scale=1.0)
            assert_close(got.b, want.b, 1e-8, scale=1.0)
            assert_close(got.curve, want.curve, 1e-8)

    sgd = SgdConfig(
        max_epochs=3,
        batch_size=50,
        shuffle=True,
        seed=7,
        eta0=1e-3,
        alpha=0.01,
        tol=None,
        n_iter_no_change=5,
        fit_intercept=True,
        epoch_offset=2,
    )
    got, want = backend.sgd(ours, sgd, W, b), reference.sgd(ref, sgd, W, b)
    assert (got.n_epochs, got.status) == (want.n_epochs, want.status)
    assert_close(got.W, want.W, 1e-9, scale=1.0)
    assert_close(got.curve, want.curve, 1e-9)


def test_import_loads_no_compiled_or_optional_module():
    code = (
        "import sys, fastlinreg, fastlinreg.exceptions; "
        "print(sorted(m for m in ('fastlinreg._core', 'matplotlib', 'dask', 'cupy', 'torch') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_float_step_fit_then_partial_fit_continues(rng):
    # Was: "partial_fit got 1 target(s) with solver='exact', but the model so far has 1 with
    # solver='gram'", blaming the user for the library's own two choosers.
    X, Y, _ = make_problem(rng, 400, 4)
    for n in (400, 40):  # auto ran "gram", and "gd" on a tiny problem
        model = LinearRegression(learning_rate=0.01, tol=None).fit(X[:n], Y[:n, 0])
        model.partial_fit(X[:n], Y[:n, 0])
        assert model.solver_ == "gram"
        both = LinearRegression(learning_rate=0.01, tol=None, solver="gram").fit(
            np.vstack([X[:n], X[:n]]), np.concatenate([Y[:n, 0], Y[:n, 0]])
        )
        assert_close(model.coef_, both.coef_, 1e-10)


def test_warnings_point_at_the_callers_line(rng):
    X, Y, _ = make_problem(rng, 50, 3)
    X = np.hstack([X, X[:, :1]])  # collinear: the exact solve warns
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        LinearRegression(solver="exact").fit(X, Y[:, 0])
    (w,) = [w for w in caught if issubclass(w.category, IllConditionedWarning)]
    assert w.filename == __file__


def test_sufficient_stats_from_arrays_validates(rng):
    X, Y, _ = make_problem(rng, 20, 2)
    listed = SufficientStats.from_arrays(X.tolist(), Y[:, 0].tolist())
    assert_close(listed.Cxx, SufficientStats.from_arrays(X, Y[:, 0]).Cxx, 1e-14)
    with pytest.raises(ValueError, match="non-negative"):
        SufficientStats.from_arrays(X, Y, sample_weight=-np.ones(20))
    with pytest.raises(ValueError, match="2-D"):
        SufficientStats.from_arrays(X[:, 0], Y)
    with pytest.raises(ValueError, match="y must have shape"):
        SufficientStats.from_arrays(X, Y[:5])
    assert SufficientStats.from_arrays(X, Y, sample_weight=np.zeros(20)).weight_sum == 0.0
