"""Run scikit-learn's own LinearRegression and Ridge tests against fastlinreg.

The tests are read from the INSTALLED scikit-learn (sklearn/linear_model/tests/
in site-packages); nothing of them is copied here. Before the test modules are
imported, ``sklearn.linear_model.LinearRegression`` (and ``Ridge``) are
replaced by fastlinreg's estimator (and a thin Ridge shim that maps
scikit-learn's ``alpha`` onto this package's scaling), so the tests'
``from sklearn.linear_model import LinearRegression`` picks them up.

Usage::

    python benchmarks/sklearn_parity.py            # both files, a summary
    python benchmarks/sklearn_parity.py -- -x -q   # extra pytest arguments

Prints the pass/fail counts per file and the failing test ids.
"""

from __future__ import annotations

import inspect
import os
import re
import sys

import numpy as np
import pytest
import sklearn.linear_model

import fastlinreg


class Ridge(fastlinreg.LinearRegression):
    """scikit-learn's Ridge objective ``||y - Xw||² + alpha ||w||²`` (weighted:
    ``sum w r²``) as fastlinreg's ``sum w r² / (2 sum w) + alpha'/2 ||w||²``:
    ``alpha' = alpha / sum w``. Solved exactly; sklearn's solver names map to
    "exact" (the tests compare solvers' answers, which is what this checks)."""

    def __init__(
        self,
        alpha=1.0,
        *,
        fit_intercept=True,
        copy_X=True,
        max_iter=None,
        tol=1e-4,
        solver="auto",
        positive=False,
        random_state=None,
    ):
        self.alpha = alpha
        self.fit_intercept = fit_intercept
        self.copy_X = copy_X
        self.max_iter = max_iter
        self.tol = tol
        self.solver = solver
        self.positive = positive
        self.random_state = random_state

    def fit(self, X, y, sample_weight=None):
        params = self.get_params()
        alpha = np.asarray(self.alpha, dtype=np.float64)
        wsum = X.shape[0] if sample_weight is None else float(np.sum(sample_weight))
        if np.ndim(sample_weight) == 0 and sample_weight is not None:
            wsum = float(sample_weight) * X.shape[0]
        est = fastlinreg.LinearRegression(
            alpha=alpha / wsum if alpha.ndim else float(alpha) / wsum,
            fit_intercept=self.fit_intercept,
            solver="exact",
            **({"positive": True} if self.positive else {}),
        )
        est.fit(X, y, sample_weight=sample_weight)
        for name, value in vars(est).items():
            if name.endswith("_") and not name.startswith("_"):
                setattr(self, name, value)
        self._fitted = est
        self.set_params(**params)
        return self

    def predict(self, X):
        return self._fitted.predict(X)


class _OnlyTestsUsing:
    """Keep the tests whose body constructs the swapped class (``Name(``), so
    the counts are of tests that exercise fastlinreg, not of scikit-learn's
    other estimators in the same file."""

    def __init__(self, pattern: str):
        self.pattern = re.compile(pattern)

    def pytest_collection_modifyitems(self, config, items):
        keep, drop = [], []
        for item in items:
            try:
                source = inspect.getsource(item.function)
            except (OSError, TypeError, AttributeError):
                source = ""
            (keep if self.pattern.search(source) else drop).append(item)
        items[:] = keep
        config.hook.pytest_deselected(items=drop)


def main(argv: list[str]) -> int:
    tests = os.path.join(os.path.dirname(sklearn.linear_model.__file__), "tests")
    sklearn.linear_model.LinearRegression = fastlinreg.LinearRegression
    sklearn.linear_model.Ridge = Ridge
    files = [
        (os.path.join(tests, "test_base.py"), r"\bLinearRegression\("),
        (os.path.join(tests, "test_ridge.py"), r"\bRidge\("),
    ]
    # scikit-learn's own conftest.py (its fixtures, e.g. global_random_seed)
    # must load: by default pytest reads none outside the caller's rootdir.
    here = os.path.dirname(sklearn.__file__)
    args = ["-p", "no:cacheprovider", "-q", "-W", "ignore", "-o", "addopts=", "--rootdir", here]
    args += ["--confcutdir", os.path.dirname(here), *argv]
    rc = 0
    for path, pattern in files:
        print(f"== {path} (tests that construct {pattern})", flush=True)
        rc |= pytest.main([path, "-rf", "--tb=no", *args], plugins=[_OnlyTestsUsing(pattern)])
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[2:] if sys.argv[1:2] == ["--"] else sys.argv[1:]))
