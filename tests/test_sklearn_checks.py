"""scikit-learn's own estimator checks, with no xfails."""

from __future__ import annotations

from sklearn.utils.estimator_checks import parametrize_with_checks

from fastlinreg import LinearRegression


@parametrize_with_checks([LinearRegression()])
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
