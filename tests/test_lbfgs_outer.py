"""lbfgs's outer loop: scipy's L-BFGS-B and the preconditioner run their
small BLAS calls on one thread (solvers/lbfgs.py, _serial_blas), and the
caller's BLAS threads are back after the fit, failed or not."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import classification
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
