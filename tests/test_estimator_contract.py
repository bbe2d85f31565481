"""The scikit-learn contract beyond check_estimator: pandas, pipelines, search,
pickle, threads, SGD, partial_fit streaming, warm start."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
from conftest import assert_close, make_problem, ref_lstsq
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from fastlinreg import ConvergenceWarning, LinearRegression, _core


def test_lists_and_pandas_with_feature_names(rng):
    pd = pytest.importorskip("pandas")
    X, Y, _ = make_problem(rng, 80, 3)
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    model = LinearRegression().fit(frame, pd.Series(Y[:, 0]))
    assert list(model.feature_names_in_) == ["a", "b", "c"]
    assert_close(model.predict(frame), LinearRegression().fit(X, Y[:, 0]).predict(X), 1e-12, 1.0)
    # scikit-learn's rules: renamed columns are an error, bare arrays a warning
    with pytest.raises(ValueError, match="feature names should match"):
        model.predict(frame.rename(columns={"a": "z"}))
    with pytest.warns(UserWarning, match="feature names"):
        model.predict(X)
    as_lists = LinearRegression().fit(X.tolist(), Y[:, 0].tolist())
    assert_close(as_lists.coef_, model.coef_, 1e-12)


def test_clone_params_pipeline_and_grid_search(rng):
    X, Y, _ = make_problem(rng, 120, 4)
    y = X @ np.array([1.0, 2.0, 0.0, -1.0]) + 0.1 * Y[:, 0]
    model = LinearRegression(alpha=0.5, solver="gd", max_iter=50, tol=None)
    twin = clone(model)
    assert twin.get_params() == model.get_params() and not hasattr(twin, "coef_")
    assert model.set_params(alpha=0.1) is model and model.alpha == 0.1
    pipe = make_pipeline(StandardScaler(), LinearRegression())
    assert pipe.fit(X, y).score(X, y) > 0.99
    search = GridSearchCV(LinearRegression(), {"alpha": [0.0, 0.1, 10.0]}, cv=3).fit(X, y)
    assert search.best_params_["alpha"] in (0.0, 0.1)
    assert cross_val_score(LinearRegression(), X, y, cv=3).min() > 0.9


@pytest.mark.parametrize("solver", ["gd", "gram", "exact", "sgd"])
def test_pickle_predicts_bit_identically(rng, solver):
    X, Y, _ = make_problem(rng, 200, 5, 2, dtype=np.float32)
    model = LinearRegression(solver=solver, max_iter=20, tol=None, random_state=0).fit(X, Y)
    again = pickle.loads(pickle.dumps(model))
    assert np.array_equal(again.predict(X), model.predict(X))


@pytest.mark.skipif(not _core.has_openmp, reason="built without OpenMP")
def test_threads_follow_n_jobs_and_threadpoolctl(rng):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    with threadpoolctl.threadpool_limits(1, user_api="openmp"):
        assert _core.max_threads() == 1
    X, Y, _ = make_problem(rng, 100_003, 20)
    kw = dict(solver="gd", learning_rate=0.1, max_iter=10, tol=None)
    one = LinearRegression(n_jobs=1, **kw).fit(X, Y[:, 0])
    two = LinearRegression(n_jobs=2, **kw).fit(X, Y[:, 0])
    every = LinearRegression(n_jobs=-1, **kw).fit(X, Y[:, 0])
    assert np.array_equal(one.coef_, two.coef_) and np.array_equal(one.coef_, every.coef_)


# ----------------------------------------------------------------------- SGD
def test_sgd_reproducible_and_converges(rng):
    X, Y, sw = make_problem(rng, 3000, 6, weights=True)
    y = X @ rng.standard_normal(6) + 2.0 + 0.1 * Y[:, 0]
    kw = dict(solver="sgd", max_iter=60, tol=None, batch_size=64, random_state=3)
    a = LinearRegression(**kw).fit(X, y, sample_weight=sw)
    b = LinearRegression(**kw).fit(X, y, sample_weight=sw)
    assert np.array_equal(a.coef_, b.coef_) and a.intercept_ == b.intercept_
    assert np.array_equal(a.loss_curve_, b.loss_curve_)
    c = LinearRegression(**{**kw, "random_state": 4}).fit(X, y, sample_weight=sw)
    assert not np.array_equal(a.coef_, c.coef_)
    exact = LinearRegression(solver="exact").fit(X, y, sample_weight=sw)
    assert_close(a.coef_, exact.coef_, 2e-2)
    assert a.score(X, y) > exact.score(X, y) - 1e-3
    assert a.n_iter_ == 60 and a.loss_curve_.shape == (60,) and a.solver_ == "sgd"


def test_sgd_batch_is_the_fused_gradient(rng):
    # One epoch, one batch holding every row, no shuffle: exactly one GD step.
    X, Y, sw = make_problem(rng, 50, 3, 2, weights=True)
    sgd = LinearRegression(
        solver="sgd",
        learning_rate=0.1,
        batch_size=50,
        shuffle=False,
        max_iter=1,
        tol=None,
        alpha=0.3,
    ).fit(X, Y, sample_weight=sw)
    gd = LinearRegression(solver="gd", learning_rate=0.1, max_iter=1, tol=None, alpha=0.3).fit(
        X, Y, sample_weight=sw
    )
    assert_close(sgd.coef_, gd.coef_, 1e-14, scale=1.0)
    assert_close(sgd.loss_curve_, gd.loss_curve_, 1e-14)


def test_sgd_early_stopping_rule(rng):
    X, Y, _ = make_problem(rng, 500, 3)
    model = LinearRegression(
        solver="sgd", max_iter=1000, tol=1e-3, n_iter_no_change=3, random_state=0
    ).fit(X, Y[:, 0])
    assert model.n_iter_ < 1000
    # Replay the documented rule on the recorded epoch losses: it must fire
    # at the last epoch and not before.
    curve = model.loss_curve_
    margin = 1e-3 * curve[0]
    best, count, fired = np.inf, 0, []
    for loss in curve:
        count = count + 1 if loss > best - margin else 0
        best = min(best, loss)
        fired.append(count >= 3)
    assert fired[-1] and not any(fired[:-1])
    with pytest.warns(ConvergenceWarning):
        LinearRegression(solver="sgd", max_iter=2, tol=1e-3, random_state=0).fit(X, Y[:, 0])


@pytest.mark.parametrize("k", [None, 2])
@pytest.mark.parametrize("weights", [False, True])
@pytest.mark.parametrize("alpha", [0.0, 0.01])
def test_sgd_multi_output_weights_alpha_near_exact(rng, k, weights, alpha):
    # A mild penalty: with a strong one the per-row gradients stay large at the
    # optimum and SGD's noise floor, not its correctness, sets the error (the
    # exact batch gradient, penalty included, is checked above).
    X, Y, sw = make_problem(rng, 2000, 4, k or 1, weights=weights)
    # Little noise, so SGD's remaining iterate noise (step * noise / batch) is small.
    y = 0.01 * (Y[:, 0] if k is None else Y)
    y = y + X @ (np.arange(4.0) if k is None else np.arange(8.0).reshape(4, 2))
    sgd = LinearRegression(
        solver="sgd", alpha=alpha, max_iter=80, tol=None, batch_size=32, random_state=1
    ).fit(X, y, sample_weight=sw)
    exact = LinearRegression(solver="exact", alpha=alpha).fit(X, y, sample_weight=sw)
    assert_close(sgd.coef_, exact.coef_, 3e-2)
    assert_close(sgd.intercept_, exact.intercept_, 3e-2, scale=1.0)


# ---------------------------------------------------------------- streaming
@pytest.mark.parametrize("solver", ["exact", "gram", "auto"])
@pytest.mark.parametrize("k", [None, 3])
def test_partial_fit_chunks_equal_one_fit(rng, solver, k):
    X, Y, sw = make_problem(rng, 1000, 7, k or 1, weights=True)
    X = X + 100.0
    y = Y[:, 0] if k is None else Y
    kw = dict(solver=solver, alpha=0.2, max_iter=50, tol=None)
    streamed = LinearRegression(**kw)
    for a, b in [(0, 1), (1, 300), (300, 301), (301, 1000)]:
        streamed.partial_fit(X[a:b], y[a:b], sample_weight=sw[a:b])
    whole = LinearRegression(**kw).fit(X, y, sample_weight=sw)
    assert_close(streamed.coef_, whole.coef_, 1e-10, scale=1.0)
    assert_close(streamed.intercept_, whole.intercept_, 1e-10, scale=1.0)


def test_partial_fit_from_memmap_matches_lstsq(tmp_path, rng):
    X, Y, _ = make_problem(rng, 20_000, 5)
    y = X @ np.array([1.0, -1.0, 2.0, 0.5, 0.0]) + 3.0 + Y[:, 0]
    path = tmp_path / "X.f64"
    X.tofile(path)
    mm = np.memmap(path, dtype=np.float64, mode="r", shape=X.shape)
    model = LinearRegression(solver="exact")
    for start in range(0, 20_000, 3000):
        model.partial_fit(mm[start : start + 3000], y[start : start + 3000])
    coef, intercept = ref_lstsq(X, y)
    assert_close(model.coef_, coef[:, 0], 1e-10)
    assert_close(model.intercept_, intercept[0], 1e-10, scale=1.0)


def test_partial_fit_continues_a_fit(rng):
    X, Y, _ = make_problem(rng, 400, 3)
    model = LinearRegression().fit(X[:150], Y[:150, 0]).partial_fit(X[150:], Y[150:, 0])
    whole = LinearRegression().fit(X, Y[:, 0])
    assert_close(model.coef_, whole.coef_, 1e-10)


def test_partial_fit_sgd_one_epoch_per_call(rng):
    X, Y, _ = make_problem(rng, 4000, 4)
    y = X @ np.array([1.0, 2.0, 3.0, 4.0]) + 5.0 + 0.01 * Y[:, 0]
    model = LinearRegression(solver="sgd", batch_size=50, random_state=0)
    for _ in range(30):
        for start in range(0, 4000, 1000):
            model.partial_fit(X[start : start + 1000], y[start : start + 1000])
    assert model.n_iter_ == 1 and model.solver_ == "sgd"
    assert model.score(X, y) > 0.999
    twin = LinearRegression(solver="sgd", batch_size=50, random_state=0)
    for _ in range(30):
        for start in range(0, 4000, 1000):
            twin.partial_fit(X[start : start + 1000], y[start : start + 1000])
    assert np.array_equal(twin.coef_, model.coef_)


def test_partial_fit_errors_leave_state(rng):
    X, Y, _ = make_problem(rng, 100, 3, 2)
    assert not hasattr(LinearRegression(solver="gd"), "partial_fit")  # gd cannot stream
    with pytest.raises(AttributeError, match="partial_fit"):
        LinearRegression(solver="gd").partial_fit(X, Y)
    auto_gd = LinearRegression(learning_rate=0.01, tol=None).fit(X[:2, :], Y[:2])  # d > n: gd
    assert auto_gd.solver_ == "gd"
    with pytest.raises(ValueError, match="nothing to continue from"):
        auto_gd.partial_fit(X, Y)
    model = LinearRegression().partial_fit(X[:50], Y[:50])
    coef = model.coef_.copy()
    with pytest.raises(ValueError, match="features"):
        model.partial_fit(X[50:, :2], Y[50:])
    with pytest.raises(ValueError, match="target"):
        model.partial_fit(X[50:], Y[50:, 0])
    with pytest.raises(ValueError):
        model.partial_fit(np.full((3, 3), np.nan), Y[:3])
    assert np.array_equal(model.coef_, coef)
    model.partial_fit(X[50:], Y[50:])
    assert_close(model.coef_, LinearRegression().fit(X, Y).coef_, 1e-10)


def test_warm_start_and_coef_init_for_sgd(rng):
    X, Y, _ = make_problem(rng, 300, 3)
    kw = dict(solver="sgd", learning_rate=0.01, tol=None, shuffle=False, batch_size=300)
    once = LinearRegression(max_iter=1, **kw).fit(
        X, Y[:, 0], coef_init=[1.0, 2.0, 3.0], intercept_init=4.0
    )
    gd = LinearRegression(solver="gd", learning_rate=0.01, max_iter=1, tol=None).fit(
        X, Y[:, 0], coef_init=[1.0, 2.0, 3.0], intercept_init=4.0
    )
    assert_close(once.coef_, gd.coef_, 1e-14, scale=1.0)
    warm = LinearRegression(max_iter=1, warm_start=True, **kw).fit(X, Y[:, 0])
    first = warm.coef_.copy()
    warm.fit(X, Y[:, 0])
    assert not np.array_equal(first, warm.coef_)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        LinearRegression(solver="sgd", max_iter=3, tol=None).fit(X, Y[:, 0])
