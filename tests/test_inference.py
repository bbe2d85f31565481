"""Inference from the sufficient statistics against statsmodels OLS/WLS.

Every figure of :mod:`fastlinreg.inference` (and LinearRegression.summary)
is compared with statsmodels' on its own datasets (longley, stackloss,
the Grunfeld panel) and on random data, for the nonrobust covariance and
HC0-HC3, weighted and not, with and without an intercept, in one fit and
streamed in chunks, to 1e-8 relative.
"""

from __future__ import annotations

import warnings
from fractions import Fraction

import numpy as np
import pytest
import scipy.stats

sm = pytest.importorskip("statsmodels.api")

from fastlinreg import IllConditionedWarning, LinearRegression, SufficientStats  # noqa: E402
from fastlinreg.inference import infer  # noqa: E402

RTOL = 1e-8
COV_TYPES = ["nonrobust", "HC0", "HC1", "HC2", "HC3"]
FIGURES = ["rsquared", "rsquared_adj", "fvalue", "llf", "aic", "bic", "scale", "ssr"]


def _longley():
    d = sm.datasets.longley.load_pandas()
    return d.exog.to_numpy(float), d.endog.to_numpy(float)


def _stackloss():
    d = sm.datasets.stackloss.load_pandas()
    return d.exog.to_numpy(float), d.endog.to_numpy(float)


def _grunfeld():
    d = sm.datasets.grunfeld.load_pandas().data
    return d[["value", "capital"]].to_numpy(float), d["invest"].to_numpy(float)


def _random(seed=0, n=137, d=5):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * rng.uniform(0.1, 100, d) + rng.uniform(-50, 50, d)
    # Heteroscedastic noise, so the HC covariances differ from the nonrobust one.
    y = X @ rng.normal(size=d) + 3.0 + rng.normal(size=n) * (1 + np.abs(X[:, 0]) / 50)
    return X, y


DATASETS = {"longley": _longley, "stackloss": _stackloss, "grunfeld": _grunfeld, "random": _random}


def _conditioned(name, cov_type, X, w):
    """X for the comparison. statsmodels' own HC0-HC3 covariances of raw
    longley are only about 1e-8 from the exact values (column means up to 4e5
    make the uncentred design's condition number 5e9), so for the robust
    covariances both sides fit longley's columns centred at their (weighted)
    means, where statsmodels is accurate to 1e-11;
    test_longley_robust_against_exact_arithmetic checks ours on the raw
    columns against exact arithmetic."""
    if name == "longley" and cov_type != "nonrobust":
        return X - np.average(X, axis=0, weights=w)
    return X


def _statsmodels(X, y, w, fit_intercept, cov_type):
    D = sm.add_constant(X, has_constant="add") if fit_intercept else X
    model = sm.OLS(y, D) if w is None else sm.WLS(y, D, weights=w)
    return model.fit(cov_type=cov_type)


def _close(actual, expected, what):
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=0, err_msg=what)


def _assert_matches(ours, ref):
    _close(ours.params, ref.params, "params")
    _close(ours.bse, ref.bse, "bse")
    _close(ours.tvalues, ref.tvalues, "tvalues")
    _close(ours.pvalues, ref.pvalues, "pvalues")
    # Covariances relative to sqrt(cov_ii cov_jj): an off-diagonal element
    # may be near 0 (uncorrelated estimates), where an elementwise relative
    # error is ill-posed. The diagonal is compared elementwise (bse above).
    cov, ref_cov = ours.cov_params, ref.cov_params()
    scale = np.sqrt(np.outer(np.diag(ref_cov), np.diag(ref_cov)))
    np.testing.assert_allclose(cov / scale, ref_cov / scale, rtol=0, atol=RTOL)
    _close(ours.conf_int(0.05), ref.conf_int(0.05), "conf_int")
    _close(ours.conf_int(0.1), ref.conf_int(0.1), "conf_int(0.1)")
    for name in FIGURES:
        _close(getattr(ours, name), getattr(ref, name), name)
    # The F test's p-value multiplies F's relative error by |d log p / d log F|
    # (about 4.5 on longley, where statsmodels' robust F is itself 9e-9 off the
    # exact value: test_longley_robust_against_exact_arithmetic), so it is
    # compared as the same function of the matched F.
    _close(ours.f_pvalue, scipy.stats.f.sf(ours.fvalue, ref.df_model, ref.df_resid), "f_pvalue")
    assert ours.df_resid == ref.df_resid and ours.df_model == ref.df_model
    assert ours.nobs == ref.nobs and ours.use_t == ref.use_t


def _weights(n, seed=1):
    return np.random.default_rng(seed).uniform(0.2, 3.0, n)


@pytest.mark.parametrize("data", sorted(DATASETS))
@pytest.mark.parametrize("cov_type", COV_TYPES)
@pytest.mark.parametrize("weighted", [False, True])
def test_one_fit_matches_statsmodels(data, cov_type, weighted):
    X, y = DATASETS[data]()
    w = _weights(len(y)) if weighted else None
    X = _conditioned(data, cov_type, X, w)
    model = LinearRegression(solver="exact", cov_type=cov_type).fit(X, y, sample_weight=w)
    _assert_matches(model.summary(show=False), _statsmodels(X, y, w, True, cov_type))


@pytest.mark.parametrize("cov_type", COV_TYPES)
@pytest.mark.parametrize("weighted", [False, True])
def test_without_intercept_matches_statsmodels(cov_type, weighted):
    X, y = _random(3)
    w = _weights(len(y)) if weighted else None
    model = LinearRegression(fit_intercept=False, cov_type=cov_type).fit(X, y, sample_weight=w)
    _assert_matches(model.summary(show=False), _statsmodels(X, y, w, False, cov_type))


@pytest.mark.parametrize("data", ["longley", "random"])
@pytest.mark.parametrize("cov_type", COV_TYPES)
@pytest.mark.parametrize("weighted", [False, True])
def test_streamed_matches_statsmodels(data, cov_type, weighted):
    X, y = DATASETS[data]()
    w = _weights(len(y)) if weighted else np.ones(len(y))
    X = _conditioned(data, cov_type, X, w)
    cuts = [0, 5, 9, len(y)]  # uneven chunks, one of them tiny
    chunks = [slice(a, b) for a, b in zip(cuts[:-1], cuts[1:])]
    model = LinearRegression(solver="exact", cov_type=cov_type)
    for c in chunks:
        model.partial_fit(X[c], y[c], sample_weight=w[c])
    if cov_type != "nonrobust":
        with pytest.raises(ValueError, match="robust_pass"):
            model.summary(show=False)
        for c in chunks:
            model.robust_pass(X[c], y[c], sample_weight=w[c])
    ref = _statsmodels(X, y, w if weighted else None, True, cov_type)
    _assert_matches(model.summary(show=False), ref)


def test_merged_blocks_match_statsmodels():
    X, y = _stackloss()
    stats = SufficientStats.from_arrays(X[:7], y[:7]).merge(
        SufficientStats.from_arrays(X[7:], y[7:])
    )
    _assert_matches(infer(stats)[0], _statsmodels(X, y, None, True, "nonrobust"))


def test_multi_output_is_one_table_per_target():
    X, y1 = _random(4)
    y2 = np.random.default_rng(5).normal(size=len(y1)) + X[:, 1]
    model = LinearRegression(cov_type="HC3").fit(X, np.column_stack([y1, y2]))
    s = model.summary(show=False)
    assert len(s) == 2 and [t.target for t in s] == ["y1", "y2"]
    for t, y in zip(s, (y1, y2)):
        _assert_matches(t, _statsmodels(X, y, None, True, "HC3"))
    assert model.conf_int().shape == (2, 6, 2)
    assert str(s).count("OLS Regression Results") == 2
    with pytest.raises(AttributeError, match=r"summary\[q\]"):
        s.bse  # noqa: B018


def test_rank_deficient_gives_nan_and_names_the_columns():
    X, y = _random(6, d=4)
    X = np.column_stack([X[:, :2], X[:, 0] + 2 * X[:, 1], X[:, 2:], np.full(len(y), 3.0)])
    names = ["a", "b", "a_plus_2b", "c", "d", "const"]
    import pandas as pd

    frame = pd.DataFrame(X, columns=names)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IllConditionedWarning)  # the fit's own warning
        model = LinearRegression().fit(frame, y)
    with pytest.warns(IllConditionedWarning, match="a_plus_2b, const"):
        s = model.summary(show=False)
    assert s.names == ["intercept", *names]
    nan = np.isnan(s.params)
    assert nan.tolist() == [False, False, False, True, False, False, True]
    assert np.isnan(s.bse[nan]).all() and np.isfinite(s.bse[~nan]).all()
    # The identified part is the fit without the redundant columns.
    keep = [0, 1, 3, 4]
    ref = _statsmodels(X[:, keep], y, None, True, "nonrobust")
    _close(s.params[~nan], ref.params, "params")
    _close(s.bse[~nan], ref.bse, "bse")
    _close(s.rsquared, ref.rsquared, "rsquared")
    assert s.df_model == ref.df_model


@pytest.mark.parametrize(
    ("params", "fit_kw", "match"),
    [
        ({"alpha": 0.5}, {}, "ridge"),
        ({"solver": "gd", "tol": 1e-12, "max_iter": 5}, {}, "keeps no sufficient statistics"),
        ({"solver": "sgd", "max_iter": 2}, {}, "keeps no sufficient statistics"),
        ({"solver": "gram", "learning_rate": 1e-6, "max_iter": 3}, {}, "before converging"),
    ],
)
def test_refused_where_the_figures_would_be_wrong(params, fit_kw, match):
    X, y = _random(7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings of the short runs
        model = LinearRegression(**params).fit(X, y, **fit_kw)
    with pytest.raises(ValueError, match=match):
        model.summary(show=False)
    with pytest.raises(ValueError, match=match):
        model.conf_int()


def test_converged_gram_fit_is_allowed():
    X, y = _random(8, d=3)
    Xs = (X - X.mean(0)) / X.std(0)
    model = LinearRegression(solver="gram", tol=1e-10, max_iter=100000).fit(Xs, y)
    ref = _statsmodels(Xs, y, None, True, "nonrobust")
    np.testing.assert_allclose(model.summary(show=False).bse, ref.bse, rtol=RTOL)


def test_summary_prints_a_table_and_has_a_frame(capsys):
    X, y = _longley()
    model = LinearRegression().fit(X, y)
    s = model.summary(alpha=0.1)
    out = capsys.readouterr().out
    assert "OLS Regression Results" in out and "[0.05" in out and "x6" in out
    assert f"{s.rsquared:.3f}" in out and "Covariance Type:" in out
    frame = s.to_frame()
    assert frame.shape == (7, 6)
    np.testing.assert_array_equal(frame["std err"].to_numpy(), s.bse)
    assert model.conf_int().shape == (7, 2)


def test_robust_pass_checks_the_rows():
    X, y = _random(9)
    model = LinearRegression(cov_type="HC1")
    model.partial_fit(X, y)
    model.robust_pass(X[:50], y[:50])
    with pytest.raises(ValueError, match="saw 50 rows but the fit 137"):
        model.summary(show=False)
    with pytest.raises(ValueError, match="needs no second pass"):
        LinearRegression().fit(X, y).robust_pass(X, y)


def test_too_few_rows_is_a_clear_error():
    X, y = _random(10, n=4, d=3)
    with pytest.raises(ValueError, match="no residual degrees of freedom"):
        LinearRegression().fit(X, y).summary(show=False)


def _exact_sandwich(X, y, power):
    """HC0 (power 0) or HC3 (power 2) covariance and robust F of OLS with an
    intercept, in rational arithmetic from the float data: no rounding at all."""
    Z = [[Fraction(1)] + [Fraction(v) for v in row] for row in X]
    Y = [Fraction(v) for v in y]
    n, p = len(Z), len(Z[0])
    A_inv = _rational_inverse([[sum(r[a] * r[b] for r in Z) for b in range(p)] for a in range(p)])
    Zty = [sum(Z[i][a] * Y[i] for i in range(n)) for a in range(p)]
    beta = [sum(A_inv[a][b] * Zty[b] for b in range(p)) for a in range(p)]
    AZ = [[sum(A_inv[a][b] * Z[i][b] for b in range(p)) for a in range(p)] for i in range(n)]
    scale = []
    for i in range(n):
        e = Y[i] - sum(Z[i][a] * beta[a] for a in range(p))
        h = sum(Z[i][a] * AZ[i][a] for a in range(p))
        scale.append(e * e / (1 - h) ** power)
    # cov = A^-1 (sum s_i z_i z_i^T) A^-1 = sum s_i (A^-1 z_i)(A^-1 z_i)^T
    cov = [
        [sum(scale[i] * AZ[i][a] * AZ[i][b] for i in range(n)) for b in range(p)] for a in range(p)
    ]
    V_inv = _rational_inverse([row[1:] for row in cov[1:]])
    wald = sum(beta[1 + a] * V_inv[a][b] * beta[1 + b] for a in range(p - 1) for b in range(p - 1))
    return np.array([[float(v) for v in row] for row in cov]), float(wald / (p - 1))


def _rational_inverse(A):
    m = len(A)
    M = [list(A[i]) + [Fraction(int(i == j)) for j in range(m)] for i in range(m)]
    for c in range(m):
        pivot = next(r for r in range(c, m) if M[r][c] != 0)
        M[c], M[pivot] = M[pivot], M[c]
        M[c] = [v / M[c][c] for v in M[c]]
        for r in range(m):
            if r != c and M[r][c] != 0:
                f = M[r][c]
                M[r] = [a - f * b for a, b in zip(M[r], M[c])]
    return [row[m:] for row in M]


@pytest.mark.parametrize(("cov_type", "power"), [("HC0", 0), ("HC3", 2)])
def test_longley_robust_against_exact_arithmetic(cov_type, power):
    X, y = _longley()
    cov, fvalue = _exact_sandwich(X, y, power)
    s = LinearRegression(cov_type=cov_type).fit(X, y).summary(show=False)
    np.testing.assert_allclose(s.cov_params, cov, rtol=1e-11)
    np.testing.assert_allclose(s.fvalue, fvalue, rtol=1e-11)


@pytest.mark.parametrize("layout", ["float32", "fortran", "strided", "one_feature"])
@pytest.mark.parametrize("cov_type", ["nonrobust", "HC2"])
def test_layouts_and_dtypes(layout, cov_type):
    X, y = _random(11, n=90, d=3)
    if layout == "float32":
        X = X.astype(np.float32)
    elif layout == "fortran":
        X = np.asfortranarray(X)
    elif layout == "strided":
        X = np.repeat(X, 2, axis=1)[:, ::2]
    else:
        X = X[:, :1].copy()
    before = X.copy()
    model = LinearRegression(cov_type=cov_type).fit(X, y)
    # The reference sees the same numbers (float32 values widened exactly).
    ref = _statsmodels(X.astype(np.float64), y, None, True, cov_type)
    _assert_matches(model.summary(show=False), ref)
    np.testing.assert_array_equal(X, before)  # the user's array is untouched


def test_summary_repr_is_short_and_str_is_the_table():
    X, y = _random(12)
    s = LinearRegression().fit(X, y).summary(show=False)
    assert repr(s) == "<Summary of 1 target(s), nonrobust: print() it for the table>"
    assert str(s) == s.table() and str(s).startswith(" " * 28 + "OLS Regression Results")
