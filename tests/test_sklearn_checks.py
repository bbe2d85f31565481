"""scikit-learn's own estimator checks, for every solver.

The default estimator, LinearRegression(), passes every check with no
expected failure. So do gd and gram. SGD has one expected failure (on dense and on
sparse data), the one scikit-learn also expects of its own SGDRegressor: integer weights equal
repeated rows only in expectation for a stochastic method, because the
repeated rows land in other mini-batches. (Our test of the batch gradient
shows the weighting itself is exact.)
"""

from __future__ import annotations

from sklearn.utils.estimator_checks import parametrize_with_checks

from fastlinreg import LinearRegression

ESTIMATORS = [
    LinearRegression(),
    LinearRegression(solver="gd"),
    LinearRegression(solver="gram", alpha=0.1),
    LinearRegression(solver="sgd", random_state=0),
]


def expected_failed_checks(estimator):
    if estimator.solver == "sgd":
        why = (
            "SGD visits weighted and repeated rows in different mini-batches, so the two "
            "agree only in expectation (as for scikit-learn's SGDRegressor)"
        )
        return {
            "check_sample_weight_equivalence_on_dense_data": why,
            "check_sample_weight_equivalence_on_sparse_data": why,
        }
    return {}


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=expected_failed_checks)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


def test_default_estimator_has_no_expected_failures():
    assert expected_failed_checks(LinearRegression()) == {}
