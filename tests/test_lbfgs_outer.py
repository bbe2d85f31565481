"""lbfgs's outer loop: scipy's L-BFGS-B and the preconditioner run their
small BLAS calls on one thread (solvers/lbfgs.py, _serial_blas), and the
caller's BLAS threads are back after the fit, failed or not. Fits of many
classes (several output tiles of the softmax blocks) reach scikit-learn's
objective and give the same bits for any thread count."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import classification, sk_objective
from sklearn import linear_model as sk
from threadpoolctl import threadpool_info, threadpool_limits

from fastlinreg import LogisticRegression
from fastlinreg.backends import cpu


def blas_threads() -> list[int]:
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


@pytest.fixture
def seen(monkeypatch):
    """The BLAS thread counts at each fused pass of a fit."""
    record = []
    real = cpu.fused_pass

    def spy(problem, W, b):
        record.append(blas_threads())
        return real(problem, W, b)

    monkeypatch.setattr(cpu, "fused_pass", spy)
    return record


@pytest.mark.parametrize("k", [2, 4])
def test_blas_serial_during_the_fit_and_restored_after(rng, seen, k):
    X, y, _ = classification(rng, 300, 5, k)
    with threadpool_limits(2, user_api="blas"):
        before = blas_threads()
        LogisticRegression(solver="lbfgs", tol=1e-8, backend="cpu").fit(X, y)
        assert blas_threads() == before
    assert seen and all(threads == [1] * len(before) for threads in seen)


def test_blas_restored_after_a_failed_fit(rng, monkeypatch):
    X, y, _ = classification(rng, 300, 5, 3)

    def fail(*args):
        raise FloatingPointError("injected")

    monkeypatch.setattr(cpu, "fused_pass", fail)
    with threadpool_limits(2, user_api="blas"):
        before = blas_threads()
        with pytest.raises(FloatingPointError):
            LogisticRegression(solver="lbfgs", backend="cpu").fit(X, y)
        assert blas_threads() == before


def test_same_coefficients_whatever_the_blas_threads(rng):
    X, y, _ = classification(rng, 2000, 8, 5)
    fits = []
    for threads in (1, 2):
        with threadpool_limits(threads, user_api="blas"):
            fits.append(LogisticRegression(solver="lbfgs", tol=1e-8).fit(X, y))
    assert np.array_equal(fits[0].coef_, fits[1].coef_)
    assert np.array_equal(fits[0].intercept_, fits[1].intercept_)


@pytest.mark.parametrize("weighting", ["none", "sample", "class"])
def test_many_classes_match_scikit_learn(rng, weighting):
    # k = 7: two tiles of outputs in the softmax blocks; n not a multiple of a block
    X, y, sw = classification(rng, 1001, 13, 7, weights=weighting != "none")
    cw = {c: 0.5 + 0.25 * c for c in range(7)} if weighting == "class" else None
    kw = dict(C=0.7, tol=1e-10, max_iter=3000, class_weight=cw)
    ours = LogisticRegression(solver="lbfgs", **kw).fit(X, y, sw)
    theirs = sk.LogisticRegression(solver="lbfgs", **kw).fit(X, y, sw)
    w = (np.ones(len(y)) if sw is None else sw) * (1.0 if cw is None else np.vectorize(cw.get)(y))
    f_ours = sk_objective(ours.coef_, ours.intercept_, X, y, 0.7, w)
    f_theirs = sk_objective(theirs.coef_, theirs.intercept_, X, y, 0.7, w)
    # The objectives, not the coefficients: here both L-BFGS runs stop by ftol some
    # 1e-6 (relative) from the optimum along a flat direction, each its own way.
    assert abs(f_ours - f_theirs) <= 1e-9 * abs(f_theirs)


def test_many_classes_same_bits_for_any_thread_count(rng):
    X, y, sw = classification(rng, 3001, 21, 12, weights=True)
    fits = [LogisticRegression(solver="lbfgs", tol=1e-8, n_jobs=j).fit(X, y, sw) for j in (1, 2, 3)]
    for other in fits[1:]:
        assert np.array_equal(other.coef_, fits[0].coef_)
        assert np.array_equal(other.intercept_, fits[0].intercept_)
