"""LinearRegression: the seed tutorial, every solver against numpy, step size, errors."""

from __future__ import annotations

import copy
import pickle
import signal
import threading
import time
import tracemalloc
import warnings

import numpy as np
import pytest
from conftest import assert_close, make_problem, ref_gd, ref_lstsq

from fastlinreg import (
    ConvergenceWarning,
    DivergenceError,
    IllConditionedWarning,
    LinearRegression,
)
from fastlinreg.datasets import load_tutorial

SEED_SLOPE, SEED_INTERCEPT = 0.28268087, 0.45053585


def tutorial_reference(lr=0.01, steps=10000, m=0.5, c=-0.25):
    """The tutorial's iterates, written the plainest way (its cost, its gradients)."""
    x, y = load_tutorial()
    n = x.shape[0]
    costs = []
    for _ in range(steps):
        pred = x * m + c
        costs.append(((pred - y) ** 2).sum() / (2 * n))
        gm = ((pred - y) * x).sum() / n
        gc = (pred - y).sum() / n
        m, c = m - lr * gm, c - lr * gc
    return m, c, np.array(costs)


@pytest.mark.parametrize("solver", ["gd", "gram"])
def test_seed_tutorial_iterates(backend, solver):
    x, y = load_tutorial()
    model = LinearRegression(
        backend=backend.NAME, solver=solver, learning_rate=0.01, max_iter=10000, tol=None
    )
    model.fit(x.reshape(-1, 1), y, coef_init=[0.5], intercept_init=-0.25)
    m, c, costs = tutorial_reference()
    assert abs(model.coef_[0] - m) <= 1e-9 * abs(m)
    assert abs(model.intercept_ - c) <= 1e-9 * abs(c)
    assert round(model.coef_[0], 8) == SEED_SLOPE
    assert round(model.intercept_, 8) == SEED_INTERCEPT
    assert model.n_iter_ == 10000 and model.loss_curve_.shape == (10000,)
    assert_close(model.loss_curve_, costs, 1e-9)
    assert model.solver_ == solver and model.learning_rate_ == 0.01


def test_seed_random_start_is_reproducible(backend):
    x, y = load_tutorial()
    a = LinearRegression(
        backend=backend.NAME,
        solver="gd",
        learning_rate=0.01,
        max_iter=100,
        tol=None,
        init="random",
        random_state=7,
    ).fit(x.reshape(-1, 1), y)
    b = LinearRegression(
        backend=backend.NAME,
        solver="gd",
        learning_rate=0.01,
        max_iter=100,
        tol=None,
        init="random",
        random_state=7,
    ).fit(x.reshape(-1, 1), y)
    assert np.array_equal(a.coef_, b.coef_) and a.intercept_ == b.intercept_
    rs = np.random.RandomState(7)
    m0, c0 = rs.standard_normal((1, 1))[0, 0], rs.standard_normal(1)[0]
    m, c, _ = tutorial_reference(steps=100, m=m0, c=c0)
    assert_close(a.coef_[0], m, 1e-12)
    assert_close(a.intercept_, c, 1e-12)


@pytest.mark.parametrize("k", [None, 1, 3])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("weights", [False, True])
def test_gd_and_gram_equal_numpy_gd(backend, rng, k, dtype, weights):
    X, Y, sw = make_problem(rng, 301, 7, k or 1, dtype, weights=weights)
    y = Y[:, 0] if k is None else Y
    kw = dict(learning_rate=0.05, max_iter=200, tol=None, alpha=0.1)
    gd = LinearRegression(backend=backend.NAME, solver="gd", **kw).fit(X, y, sample_weight=sw)
    gram = LinearRegression(backend=backend.NAME, solver="gram", **kw).fit(X, y, sample_weight=sw)
    W, b, losses = ref_gd(
        X, Y, np.zeros((7, Y.shape[1])), np.zeros(Y.shape[1]), 0.05, 200, sw, alpha=0.1
    )
    tol = 1e-9 if dtype == np.float64 else 1e-5
    expected_coef = W[:, 0] if k is None else W.T
    for model in (gd, gram):
        assert model.coef_.shape == expected_coef.shape
        assert_close(model.coef_, expected_coef, tol, scale=1.0)
        assert_close(model.intercept_, b[0] if k is None else b, tol, scale=1.0)
        assert_close(model.loss_curve_, losses, tol)
    # gram replays gd's iterates exactly (to 1e-9 relative in float64)
    assert_close(gram.coef_, gd.coef_, 1e-9 if dtype == np.float64 else 1e-6, scale=1.0)
    assert_close(gram.loss_curve_, gd.loss_curve_, 1e-9 if dtype == np.float64 else 1e-6)


@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("weights", [False, True])
@pytest.mark.parametrize("alpha", [0.0, 0.5])
@pytest.mark.parametrize("k", [None, 2])
def test_exact_matches_lstsq(backend, rng, fit_intercept, weights, alpha, k):
    X, Y, sw = make_problem(rng, 500, 12, k or 1, weights=weights)
    X = X * np.logspace(-2, 2, 12) + 3.0
    y = Y[:, 0] if k is None else Y
    model = LinearRegression(
        backend=backend.NAME, solver="exact", fit_intercept=fit_intercept, alpha=alpha
    )
    model.fit(X, y, sample_weight=sw)
    coef, intercept = ref_lstsq(X, Y, sw, alpha, fit_intercept)
    expected = coef[:, 0] if k is None else coef.T
    assert_close(model.coef_, expected, 1e-8)
    assert_close(model.intercept_, intercept[0] if k is None else intercept, 1e-8, scale=1.0)
    assert model.n_iter_ == 1 and model.solver_ == "exact"
    resid = X @ expected.T + model.intercept_ - (Y[:, 0] if k is None else Y)
    w = np.ones(500) if sw is None else sw
    objective = (w @ resid**2).sum() / (2 * w.sum()) + 0.5 * alpha * (coef**2).sum()
    assert_close(model.loss_curve_, [objective], 1e-9)


def test_exact_float32_agrees_to_1e_5(backend, rng):
    X, Y, _ = make_problem(rng, 2000, 10, dtype=np.float32)
    model = LinearRegression(backend=backend.NAME, solver="exact").fit(X, Y[:, 0])
    coef, intercept = ref_lstsq(X.astype(np.float64), Y)
    assert_close(model.coef_, coef[:, 0], 1e-5)


def test_exact_rank_deficient_and_wide(backend, rng):
    X, Y, _ = make_problem(rng, 50, 4)
    Xd = np.column_stack([X, X[:, 0] + X[:, 1]])  # exactly collinear column
    with pytest.warns(IllConditionedWarning):
        model = LinearRegression(backend=backend.NAME, solver="exact").fit(Xd, Y[:, 0])
    coef, intercept = ref_lstsq(Xd, Y)
    assert_close(model.coef_, coef[:, 0], 1e-8)
    assert_close(model.intercept_, intercept[0], 1e-8, scale=1.0)
    Xw, Yw, _ = make_problem(rng, 8, 30)  # d > n: singular by shape, the min-norm answer, silently
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        wide = LinearRegression(backend=backend.NAME, solver="exact").fit(Xw, Yw[:, 0])
    coef, intercept = ref_lstsq(Xw, Yw)
    assert_close(wide.coef_, coef[:, 0], 1e-8)
    assert_close(wide.predict(Xw), Yw[:, 0], 1e-8, scale=1.0)  # interpolates


def badly_scaled(rng, n=2000):
    """Unscaled, uncentred columns whose scales differ by 1000x and more."""
    X = rng.standard_normal((n, 4)) * np.array([1.0, 1000.0, 0.01, 50.0]) + np.array(
        [10.0, -3000.0, 0.5, 200.0]
    )
    y = X @ np.array([2.0, 0.003, -40.0, 0.1]) + 7.0 + rng.standard_normal(n)
    return X, y


@pytest.mark.parametrize("solver", ["gd", "gram"])
def test_auto_step_converges_on_badly_scaled_data(backend, rng, solver):
    X, y = badly_scaled(rng)
    exact = LinearRegression(backend=backend.NAME, solver="exact").fit(X, y)
    model = LinearRegression(
        backend=backend.NAME, solver=solver, learning_rate="auto", max_iter=300, tol=None
    )
    model.fit(X, y)
    assert abs(model.score(X, y) - exact.score(X, y)) <= 1e-6
    assert np.all(np.diff(model.loss_curve_) <= 1e-12 * model.loss_curve_[:-1])  # monotone
    assert 0 < model.learning_rate_ <= 1.0
    # the tutorial's fixed step diverges on the same data
    with pytest.raises(DivergenceError) as info:
        LinearRegression(
            backend=backend.NAME, solver=solver, learning_rate=0.01, max_iter=300, tol=None
        ).fit(X, y)
    err = info.value
    assert isinstance(err, FloatingPointError) and isinstance(err, ValueError)
    assert "learning_rate='auto'" in str(err)
    assert err.max_safe_learning_rate is not None and err.max_safe_learning_rate < 0.01


def test_auto_step_gd_and_gram_agree(backend, rng):
    X, y = badly_scaled(rng, 500)
    gd = LinearRegression(backend=backend.NAME, solver="gd", max_iter=50, tol=None).fit(X, y)
    gram = LinearRegression(backend=backend.NAME, solver="gram", max_iter=50, tol=None).fit(X, y)
    assert_close(gd.learning_rate_, gram.learning_rate_, 1e-8)
    assert_close(gd.coef_, gram.coef_, 1e-7)
    assert_close(gd.loss_curve_, gram.loss_curve_, 1e-8)


def test_divergence_guard_leaves_estimator_unfitted(backend):
    x, y = load_tutorial()
    model = LinearRegression(
        backend=backend.NAME, solver="gd", learning_rate=0.1, max_iter=10000, tol=None
    )
    with pytest.raises(DivergenceError, match=r"2/L = 0\.0"):
        model.fit(x.reshape(-1, 1), y)
    assert not hasattr(model, "coef_")
    # the error's safe step is right: just below it converges, above it diverges
    safe = 0.0
    try:
        model.fit(x.reshape(-1, 1), y)
    except DivergenceError as e:
        safe = e.max_safe_learning_rate
    LinearRegression(
        backend=backend.NAME, solver="gd", learning_rate=0.98 * safe, max_iter=5000, tol=None
    ).fit(x.reshape(-1, 1), y)
    with pytest.raises(DivergenceError):
        LinearRegression(
            backend=backend.NAME, solver="gd", learning_rate=1.05 * safe, max_iter=5000, tol=None
        ).fit(x.reshape(-1, 1), y)


def test_tol_stops_early_and_warns_when_not_reached(backend, rng):
    X, y = badly_scaled(rng, 300)
    model = LinearRegression(backend=backend.NAME, solver="gd", tol=1e-8, max_iter=5000).fit(X, y)
    assert model.n_iter_ < 5000
    assert model.loss_curve_.shape == (model.n_iter_,)
    with pytest.warns(ConvergenceWarning, match="max_iter"):
        LinearRegression(backend=backend.NAME, solver="gd", tol=1e-12, max_iter=3).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        LinearRegression(backend=backend.NAME, solver="gd", tol=None, max_iter=3).fit(
            X, y
        )  # tol=None: no warning


@pytest.mark.parametrize("solver", ["gd", "gram", "exact"])
def test_multi_output_equals_separate_fits(backend, rng, solver):
    X, Y, sw = make_problem(rng, 400, 5, 3, weights=True)
    kw = dict(solver=solver, max_iter=100, tol=None, alpha=0.2)
    joint = LinearRegression(backend=backend.NAME, **kw).fit(X, Y, sample_weight=sw)
    assert joint.coef_.shape == (3, 5) and joint.intercept_.shape == (3,)
    for q in range(3):
        single = LinearRegression(backend=backend.NAME, **kw).fit(X, Y[:, q], sample_weight=sw)
        assert_close(joint.coef_[q], single.coef_, 1e-12, scale=1.0)
        assert_close(joint.intercept_[q], single.intercept_, 1e-12, scale=1.0)
    assert joint.predict(X).shape == (400, 3)


@pytest.mark.parametrize("solver", ["gd", "gram", "exact"])
def test_integer_weights_equal_repeated_rows(backend, rng, solver):
    X, Y, _ = make_problem(rng, 60, 3)
    reps = rng.integers(0, 3, size=60)
    kw = dict(solver=solver, learning_rate=0.1, max_iter=50, tol=None)
    w = LinearRegression(backend=backend.NAME, **kw).fit(X, Y[:, 0], sample_weight=reps)
    r = LinearRegression(backend=backend.NAME, **kw).fit(
        np.repeat(X, reps, 0), np.repeat(Y[:, 0], reps)
    )
    assert_close(w.coef_, r.coef_, 1e-10, scale=1.0)
    assert_close(w.intercept_, r.intercept_, 1e-10, scale=1.0)


def test_ridge_gd_converges_to_exact(backend, rng):
    X, Y, sw = make_problem(rng, 300, 6, 2, weights=True)
    exact = LinearRegression(backend=backend.NAME, solver="exact", alpha=0.7).fit(
        X, Y, sample_weight=sw
    )
    gd = LinearRegression(
        backend=backend.NAME, solver="gd", alpha=0.7, max_iter=5000, tol=1e-12
    ).fit(X, Y, sample_weight=sw)
    assert_close(gd.coef_, exact.coef_, 1e-8)
    assert_close(gd.intercept_, exact.intercept_, 1e-8, scale=1.0)


def test_solver_auto_choice(rng):
    X, Y, _ = make_problem(rng, 2000, 4)
    assert LinearRegression().fit(X, Y[:, 0]).solver_ == "exact"
    assert LinearRegression(learning_rate=0.01, tol=None).fit(X, Y[:, 0]).solver_ == "gram"
    x, y = load_tutorial()  # tiny: X stays in L1, a fused step is as cheap as a replayed one
    assert LinearRegression(learning_rate=0.01, tol=None).fit(x.reshape(-1, 1), y).solver_ == "gd"
    Xw, Yw, _ = make_problem(rng, 10, 40)
    assert LinearRegression(learning_rate=0.01, tol=None).fit(Xw, Yw[:, 0]).solver_ == "gd"


@pytest.mark.parametrize("solver", ["gd", "gram", "exact"])
def test_float32_stays_float32_and_is_not_copied(rng, solver):
    X = np.ascontiguousarray(rng.standard_normal((20000, 50)), dtype=np.float32)
    y = rng.standard_normal(20000)
    model = LinearRegression(solver=solver, learning_rate=0.01, max_iter=5, tol=None)
    model.fit(X[:200], y[:200])  # warm imports and caches
    tracemalloc.start()
    model.fit(X, y)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 0.1 * X.nbytes, f"fit allocated {peak} bytes for X of {X.nbytes}"


def test_user_arrays_are_not_modified(rng):
    X, Y, sw = make_problem(rng, 100, 3, 2, weights=True)
    Xc, Yc, swc = X.copy(), Y.copy(), sw.copy()
    coef0, b0 = np.ones((2, 3)), np.ones(2)
    for solver in ("gd", "gram", "exact"):
        LinearRegression(solver=solver, max_iter=20, tol=None).fit(
            X, Y, sample_weight=sw, coef_init=coef0, intercept_init=b0
        )
    assert np.array_equal(X, Xc) and np.array_equal(Y, Yc) and np.array_equal(sw, swc)
    assert np.array_equal(coef0, np.ones((2, 3))) and np.array_equal(b0, np.ones(2))


BAD_INPUTS = [
    (np.array([[1.0], [np.nan]]), np.array([1.0, 2.0]), "NaN"),
    (np.array([[1.0], [np.inf]]), np.array([1.0, 2.0]), "infinity"),
    (np.array([[1.0], [2.0]]), np.array([1.0, np.nan]), "NaN"),
    (np.array([[1.0], [2.0], [3.0]]), np.array([1.0, 2.0]), "inconsistent numbers of samples"),
    (np.empty((0, 2)), np.empty(0), "0 sample"),
    (np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.0]), r"reshape\(-1, 1\)"),
    (np.array([["a", "b"], ["c", "d"]]), np.array([1.0, 2.0]), "convert"),
]


@pytest.mark.parametrize("X,y,match", BAD_INPUTS)
def test_bad_input_raises_clear_error(X, y, match):
    model = LinearRegression()
    with pytest.raises(ValueError, match=match):
        model.fit(X, y)
    assert not hasattr(model, "coef_")


@pytest.mark.parametrize(
    "params,match",
    [
        (dict(learning_rate=0.0), "learning_rate"),
        (dict(learning_rate=-0.1), "learning_rate"),
        (dict(max_iter=0), "max_iter"),
        (dict(solver="newton"), "solver"),
        (dict(alpha=-1.0), "alpha"),
        (dict(tol=-1.0), "tol"),
    ],
)
def test_bad_parameters_raise(params, match):
    with pytest.raises(ValueError, match=match):
        LinearRegression(**params).fit([[1.0], [2.0]], [1.0, 2.0])


def test_bad_weights_and_inits(rng):
    X, Y, _ = make_problem(rng, 10, 2)
    with pytest.raises(ValueError, match="non-zero|sums to zero"):
        LinearRegression().fit(X, Y[:, 0], sample_weight=np.zeros(10))
    with pytest.raises(ValueError, match="(?i)negative"):
        LinearRegression().fit(X, Y[:, 0], sample_weight=-np.ones(10))
    with pytest.raises(ValueError, match="coef_init"):
        LinearRegression(solver="gd").fit(X, Y[:, 0], coef_init=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="intercept_init"):
        LinearRegression(solver="gd").fit(X, Y[:, 0], intercept_init=[1.0, 2.0])
    zero_some = np.ones(10)
    zero_some[:3] = 0.0
    a = LinearRegression(solver="exact").fit(X, Y[:, 0], sample_weight=zero_some)
    b = LinearRegression(solver="exact").fit(X[3:], Y[3:, 0])
    assert_close(a.coef_, b.coef_, 1e-10)


def test_predict_errors(rng):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        LinearRegression().predict([[1.0]])
    model = LinearRegression().fit(rng.standard_normal((10, 3)), rng.standard_normal(10))
    with pytest.raises(ValueError, match="features"):
        model.predict(rng.standard_normal((4, 2)))


def test_failed_fit_leaves_fitted_estimator_unchanged(rng):
    X, Y, _ = make_problem(rng, 50, 3)
    model = LinearRegression(solver="gd", learning_rate=0.1, max_iter=50, tol=None).fit(X, Y[:, 0])
    before = copy.deepcopy(model.__dict__)
    with pytest.raises(ValueError):
        model.fit(np.full((5, 3), np.nan), np.ones(5))
    model.set_params(learning_rate=1e6)
    with pytest.raises(DivergenceError):
        model.fit(X, Y[:, 0])
    after = model.__dict__
    for key in ("coef_", "intercept_", "loss_curve_", "n_iter_", "n_features_in_"):
        assert np.array_equal(np.asarray(before[key]), np.asarray(after[key])), key


def test_score_and_pickle(rng):
    X, Y, _ = make_problem(rng, 200, 4)
    y = X @ np.array([1.0, -2.0, 0.5, 3.0]) + 0.01 * Y[:, 0]
    model = LinearRegression().fit(X, y)
    assert model.score(X, y) > 0.999
    again = pickle.loads(pickle.dumps(model))
    assert np.array_equal(again.predict(X), model.predict(X))


def test_interrupt_raises_keyboardinterrupt_and_keeps_estimator(rng, sigint_raises):
    X = rng.standard_normal((200_000, 20))
    y = rng.standard_normal(200_000)
    # Seconds of steps, not hours: a lost signal fails the test instead of hanging it.
    model = LinearRegression(solver="gd", learning_rate=1e-3, max_iter=20_000, tol=None)
    timer = threading.Timer(0.3, lambda: signal.raise_signal(signal.SIGINT))
    t0 = time.perf_counter()
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        model.fit(X, y)
    timer.cancel()
    assert time.perf_counter() - t0 < 10.0
    assert not hasattr(model, "coef_")


def test_warm_start_continues(backend, rng):
    X, Y, _ = make_problem(rng, 100, 3)
    kw = dict(solver="gd", learning_rate=0.05, tol=None)
    once = LinearRegression(backend=backend.NAME, max_iter=40, **kw).fit(X, Y[:, 0])
    twice = LinearRegression(backend=backend.NAME, max_iter=20, warm_start=True, **kw).fit(
        X, Y[:, 0]
    )
    twice.fit(X, Y[:, 0])
    assert_close(twice.coef_, once.coef_, 1e-12, scale=1.0)
    assert_close(twice.intercept_, once.intercept_, 1e-12, scale=1.0)


@pytest.mark.parametrize("solver", ["exact", "gram", "gd", "sgd"])
@pytest.mark.parametrize("learning_rate", ["auto", 0.01])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_nonfinite_X_is_caught_by_every_solver(backend, rng, solver, learning_rate, bad, dtype):
    # The fast validation path leaves X's finiteness to the solver's own pass.
    X = rng.standard_normal((50, 3)).astype(dtype)
    X[7, 1] = bad
    model = LinearRegression(
        backend=backend.NAME, solver=solver, learning_rate=learning_rate, max_iter=5, tol=None
    )
    with pytest.raises(ValueError, match="Input X contains (NaN|infinity)"):
        model.fit(X, np.ones(50))
    assert not hasattr(model, "coef_")
