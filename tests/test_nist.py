"""NIST StRD linear regression: the accurate path against certified values.

Data and certified values are from NIST's Statistical Reference Datasets
(https://www.itl.nist.gov/div898/strd/lls/lls.shtml), files Norris.dat,
Pontius.dat, NoInt1.dat, NoInt2.dat, Filip.dat, Longley.dat and
Wampler1-5.dat; Wampler1 and Wampler2 are generated from their exact
polynomials. ``test_certified_values_are_the_exact_solution`` re-derives every
certified value from the data in rational arithmetic, so a mistyped digit in
either fails there.

The yardstick is ``numpy.linalg.lstsq`` (default rcond) on the certified
model's design matrix, a column of ones first where the model has an
intercept. LRE (log relative error) = -log10(|est - cert| / |cert|), or
-log10|est - cert| where cert is 0, capped at 15.
"""

from __future__ import annotations

import decimal
import warnings
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest
from conftest import assert_close, make_problem, ref_lstsq

import fastlinreg
from fastlinreg._accurate import (
    QRFactor,
    qr_lstsq,
)
from fastlinreg._stats import equilibrated_cholesky_rcond, needs_accurate_path

# fmt: off
NORRIS_X = [
    0.2, 337.4, 118.2, 884.6, 10.1, 226.5, 666.3, 996.3, 448.6, 777.0, 558.2, 0.4,
    0.6, 775.5, 666.9, 338.0, 447.5, 11.6, 556.0, 228.1, 995.8, 887.6, 120.2, 0.3,
    0.3, 556.8, 339.1, 887.2, 999.0, 779.0, 11.1, 118.3, 229.2, 669.1, 448.9, 0.5,
]
NORRIS_Y = [
    0.1, 338.8, 118.1, 888.0, 9.2, 228.1, 668.5, 998.5, 449.1, 778.9, 559.2, 0.3,
    0.1, 778.1, 668.8, 339.3, 448.9, 10.8, 557.7, 228.3, 998.0, 888.8, 119.6, 0.3,
    0.6, 557.6, 339.3, 888.0, 998.5, 778.9, 10.2, 117.6, 228.9, 668.4, 449.2, 0.2,
]
PONTIUS_X = [150000.0 * i for i in range(1, 21)] * 2
PONTIUS_Y = [
    .11019, .21956, .32949, .43899, .54803, .65694, .76562, .87487, .98292, 1.09146,
    1.20001, 1.30822, 1.41599, 1.52399, 1.63194, 1.73947, 1.84646, 1.95392, 2.06128, 2.16844,
    .11052, .22018, .32939, .43886, .54798, .65739, .76596, .87474, .98300, 1.09150,
    1.20004, 1.30818, 1.41613, 1.52408, 1.63159, 1.73965, 1.84696, 1.95445, 2.06177, 2.16829,
]
NOINT1_X = list(range(60, 71))
NOINT1_Y = list(range(130, 141))
NOINT2_X = [4, 5, 6]
NOINT2_Y = [3, 4, 4]
FILIP_X = [
    -6.860120914, -4.324130045, -4.358625055, -4.358426747, -6.955852379, -6.661145254,
    -6.355462942, -6.118102026, -7.115148017, -6.815308569, -6.519993057, -6.204119983,
    -5.853871964, -6.109523091, -5.79832982, -5.482672118, -5.171791386, -4.851705903,
    -4.517126416, -4.143573228, -3.709075441, -3.499489089, -6.300769497, -5.953504836,
    -5.642065153, -5.031376979, -4.680685696, -4.329846955, -3.928486195, -8.56735134,
    -8.363211311, -8.107682739, -7.823908741, -7.522878745, -7.218819279, -6.920818754,
    -6.628932138, -6.323946875, -5.991399828, -8.781464495, -8.663140179, -8.473531488,
    -8.247337057, -7.971428747, -7.676129393, -7.352812702, -7.072065318, -6.774174009,
    -6.478861916, -6.159517513, -6.835647144, -6.53165267, -6.224098421, -5.910094889,
    -5.598599459, -5.290645224, -4.974284616, -4.64454848, -4.290560426, -3.885055584,
    -3.408378962, -3.13200249, -8.726767166, -8.66695597, -8.511026475, -8.165388579,
    -7.886056648, -7.588043762, -7.283412422, -6.995678626, -6.691862621, -6.392544977,
    -6.067374056, -6.684029655, -6.378719832, -6.065855188, -5.752272167, -5.132414673,
    -4.811352704, -4.098269308, -3.66174277, -3.2644011,
]
FILIP_Y = [
    0.8116, 0.9072, 0.9052, 0.9039, 0.8053, 0.8377, 0.8667, 0.8809, 0.7975, 0.8162,
    0.8515, 0.8766, 0.8885, 0.8859, 0.8959, 0.8913, 0.8959, 0.8971, 0.9021, 0.909,
    0.9139, 0.9199, 0.8692, 0.8872, 0.89, 0.891, 0.8977, 0.9035, 0.9078, 0.7675,
    0.7705, 0.7713, 0.7736, 0.7775, 0.7841, 0.7971, 0.8329, 0.8641, 0.8804, 0.7668,
    0.7633, 0.7678, 0.7697, 0.77, 0.7749, 0.7796, 0.7897, 0.8131, 0.8498, 0.8741,
    0.8061, 0.846, 0.8751, 0.8856, 0.8919, 0.8934, 0.894, 0.8957, 0.9047, 0.9129,
    0.9209, 0.9219, 0.7739, 0.7681, 0.7665, 0.7703, 0.7702, 0.7761, 0.7809, 0.7961,
    0.8253, 0.8602, 0.8809, 0.8301, 0.8664, 0.8834, 0.8898, 0.8964, 0.8963, 0.9074,
    0.9119, 0.9228,
]
LONGLEY = [  # y, x1..x6
    (60323, 83.0, 234289, 2356, 1590, 107608, 1947),
    (61122, 88.5, 259426, 2325, 1456, 108632, 1948),
    (60171, 88.2, 258054, 3682, 1616, 109773, 1949),
    (61187, 89.5, 284599, 3351, 1650, 110929, 1950),
    (63221, 96.2, 328975, 2099, 3099, 112075, 1951),
    (63639, 98.1, 346999, 1932, 3594, 113270, 1952),
    (64989, 99.0, 365385, 1870, 3547, 115094, 1953),
    (63761, 100.0, 363112, 3578, 3350, 116219, 1954),
    (66019, 101.2, 397469, 2904, 3048, 117388, 1955),
    (67857, 104.6, 419180, 2822, 2857, 118734, 1956),
    (68169, 108.4, 442769, 2936, 2798, 120445, 1957),
    (66513, 110.8, 444546, 4681, 2637, 121950, 1958),
    (68655, 112.6, 482704, 3813, 2552, 123366, 1959),
    (69564, 114.2, 502601, 3931, 2514, 125368, 1960),
    (69331, 115.7, 518173, 4806, 2572, 127852, 1961),
    (70551, 116.9, 554894, 4007, 2827, 130081, 1962),
]
WAMPLER_X = list(range(21))
WAMPLER3_Y = [
    760, -2042, 2111, -1684, 3888, 1858, 11379, 17560, 39287, 64382, 113159, 175108, 273291,
    400186, 581243, 811568, 1121004, 1506550, 2002767, 2611612, 3369180,
]
WAMPLER4_Y = [
    75901, -204794, 204863, -204436, 253665, -200894, 214131, -185192, 221249, -138370,
    315911, -27644, 455253, 197434, 783995, 608816, 1370781, 1303798, 2205519, 2408860,
    3444321,
]
WAMPLER5_Y = [
    7590001, -20479994, 20480063, -20479636, 25231365, -20476094, 20489331, -20460392,
    18417449, -20413570, 20591111, -20302844, 18651453, -20077766, 21059195, -19666384,
    26348481, -18971402, 22480719, -17866340, 10958421,
]
# fmt: on
WAMPLER1_Y = [sum(Fraction(x) ** j for j in range(6)) for x in WAMPLER_X]
WAMPLER2_Y = [sum(Fraction(x) ** j / 10**j for j in range(6)) for x in WAMPLER_X]

# name: (X columns as exact decimals, y, intercept?, certified coefficients
# (intercept first), certified residual standard deviation, certified R²)
# fmt: off
CERTIFIED = {
    "Norris": ([-0.262323073774029, 1.00211681802045], 0.884796396144373, 0.999993745883712),
    "Pontius": ([0.673565789473684E-03, 0.732059160401003E-06, -0.316081871345029E-14],
                0.205177424076185E-03, 0.999999900178537),
    "NoInt1": ([2.07438016528926], 3.56753034006338, 0.999365492298663),
    "NoInt2": ([0.727272727272727], 0.369274472937998, 0.993348115299335),
    "Filip": ([-1467.48961422980, -2772.17959193342, -2316.37108160893, -1127.97394098372,
               -354.478233703349, -75.1242017393757, -10.8753180355343, -1.06221498588947,
               -0.670191154593408E-01, -0.246781078275479E-02, -0.402962525080404E-04],
              0.334801051324544E-02, 0.996727416185620),
    "Longley": ([-3482258.63459582, 15.0618722713733, -0.358191792925910E-01,
                 -2.02022980381683, -1.03322686717359, -0.511041056535807E-01,
                 1829.15146461355], 304.854073561965, 0.995479004577296),
    "Wampler1": ([1.0] * 6, 0.0, 1.0),
    "Wampler2": ([1.0, 0.1, 0.01, 0.001, 0.0001, 0.00001], 0.0, 1.0),
    "Wampler3": ([1.0] * 6, 2360.14502379268, 0.999995559025820),
    "Wampler4": ([1.0] * 6, 236014.502379268, 0.957478440825662),
    "Wampler5": ([1.0] * 6, 23601450.2379268, 0.224668921574940E-02),
}
# fmt: on


def _powers(x, degree):
    return [
        [Fraction(repr(v) if isinstance(v, float) else v) ** j for j in range(1, degree + 1)]
        for v in x
    ]


def _exact_problem(name):
    """(rows of X as Fractions, y as Fractions, fit_intercept)."""
    if name == "Longley":
        rows = [[Fraction(repr(float(v))) for v in r[1:]] for r in LONGLEY]
        return rows, [Fraction(r[0]) for r in LONGLEY], True
    x, y, degree, icpt = {
        "Norris": (NORRIS_X, NORRIS_Y, 1, True),
        "Pontius": (PONTIUS_X, PONTIUS_Y, 2, True),
        "NoInt1": (NOINT1_X, NOINT1_Y, 1, False),
        "NoInt2": (NOINT2_X, NOINT2_Y, 1, False),
        "Filip": (FILIP_X, FILIP_Y, 10, True),
        "Wampler1": (WAMPLER_X, WAMPLER1_Y, 5, True),
        "Wampler2": (WAMPLER_X, WAMPLER2_Y, 5, True),
        "Wampler3": (WAMPLER_X, WAMPLER3_Y, 5, True),
        "Wampler4": (WAMPLER_X, WAMPLER4_Y, 5, True),
        "Wampler5": (WAMPLER_X, WAMPLER5_Y, 5, True),
    }[name]
    ys = [
        v if isinstance(v, Fraction) else Fraction(repr(v) if isinstance(v, float) else v)
        for v in y
    ]
    return _powers(x, degree), ys, icpt


def problem(name):
    """(X (n, d) float64, y (n,) float64, fit_intercept)."""
    rows, y, icpt = _exact_problem(name)
    return np.array(rows, dtype=np.float64), np.array(y, dtype=np.float64), icpt


def lre(est, cert):
    """Log relative error per entry, capped at 15 (absolute error where cert is 0)."""
    est, cert = np.atleast_1d(np.asarray(est, dtype=np.float64)), np.atleast_1d(cert)
    err = np.abs(est - cert) / np.where(cert == 0, 1.0, np.abs(cert))
    with np.errstate(divide="ignore"):
        return np.minimum(15.0, -np.log10(err))


def summary(coef_with_intercept, X, y, icpt):
    """(coefficients, residual standard deviation, R²) as NIST defines them:
    R² about the mean with an intercept, about zero without."""
    A = np.column_stack([np.ones(len(y)), X]) if icpt else X
    r = y - A @ coef_with_intercept
    rss = float(r @ r)
    tss = float(((y - y.mean()) ** 2).sum() if icpt else y @ y)
    return coef_with_intercept, np.sqrt(rss / (len(y) - A.shape[1])), 1.0 - rss / tss


def lstsq_fit(X, y, icpt):
    A = np.column_stack([np.ones(len(y)), X]) if icpt else X
    return np.linalg.lstsq(A, y, rcond=None)[0]


def qr_fit(X, y, icpt, refine=True):
    """Coefficients (``qr_lstsq``), residual SD and R² from the QR factor (no residual pass)."""
    factor = QRFactor.from_arrays(X, y, fit_intercept=icpt)
    coef, intercept = qr_lstsq(X, y, fit_intercept=icpt, refine=refine)
    rss = float(factor.residual_sum_of_squares(coef)[0])
    tss = float(factor.total_sum_of_squares()[0])
    beta = np.r_[intercept, coef[:, 0]] if icpt else coef[:, 0]
    return beta, np.sqrt(rss / (len(y) - len(beta))), 1.0 - rss / tss


def normal_equations_fit(X, y, icpt):
    """The exact solver's answer and the figure the switch rule reads."""
    stats = fastlinreg.SufficientStats.from_arrays(X, y)
    with warnings.catch_warnings():
        # Filip's Cxx is past Cholesky; the minimum-norm fallback warns.
        warnings.simplefilter("ignore", fastlinreg.IllConditionedWarning)
        coef, intercept = stats.solve(fit_intercept=icpt)
    beta = np.r_[intercept, coef[:, 0]] if icpt else coef[:, 0]
    rcond = equilibrated_cholesky_rcond(stats.Cxx if icpt else stats.raw_xtx())
    return beta, rcond


def hybrid_fit(X, y, icpt):
    """What the exact solver returns with the rule wired in."""
    beta, rcond = normal_equations_fit(X, y, icpt)
    return qr_fit(X, y, icpt)[0] if needs_accurate_path(rcond) else beta


NAMES = list(CERTIFIED)


@pytest.mark.parametrize("name", NAMES)
def test_certified_values_are_the_exact_solution(name):
    # Rational least squares on the typed-in data must reproduce every
    # printed digit (NIST rounds to 15 significant digits).
    rows, y, icpt = _exact_problem(name)
    if icpt:
        rows = [[Fraction(1)] + r for r in rows]
    p = len(rows[0])
    M = [
        [sum(r[i] * r[j] for r in rows) for j in range(p)]
        + [sum(r[i] * v for r, v in zip(rows, y))]
        for i in range(p)
    ]
    for c in range(p):  # Gauss-Jordan, exact
        M[c] = [v / M[c][c] for v in M[c]]
        for i in range(p):
            if i != c:
                M[i] = [a - M[i][c] * b for a, b in zip(M[i], M[c])]
    beta = [M[i][p] for i in range(p)]
    res = [v - sum(b * x for b, x in zip(beta, r)) for r, v in zip(rows, y)]
    rss = sum(e * e for e in res)
    mean = sum(y) / len(y)
    tss = sum((v - mean) ** 2 for v in y) if icpt else sum(v * v for v in y)
    cert_beta, cert_sd, cert_r2 = CERTIFIED[name]
    assert [_digits15(b) for b in beta] == [_digits15(c) for c in cert_beta]
    sd = _EXACT.sqrt(_EXACT.divide(_decimal(rss), len(y) - p))
    assert _digits15(sd) == _digits15(cert_sd)
    assert _digits15(1 - rss / tss) == _digits15(cert_r2)


_EXACT = decimal.Context(prec=40)


def _decimal(q: Fraction) -> Decimal:
    return _EXACT.divide(Decimal(q.numerator), Decimal(q.denominator))


def _digits15(v):
    """``v`` (Fraction, Decimal or float) at NIST's 15 significant digits."""
    if isinstance(v, float):
        return Decimal(repr(v)).normalize()
    if isinstance(v, Fraction):
        v = _decimal(v)
    return decimal.Context(prec=15, rounding=decimal.ROUND_HALF_UP).plus(v).normalize()


@pytest.mark.parametrize("name", NAMES)
def test_qr_keeps_lstsq_digits(name):
    X, y, icpt = problem(name)
    cert_beta, cert_sd, cert_r2 = CERTIFIED[name]
    ours = qr_fit(X, y, icpt)
    theirs = summary(lstsq_fit(X, y, icpt), X, y, icpt)
    for what, a, b, cert in zip(
        ("coef", "residual sd", "R²"), ours, theirs, (cert_beta, cert_sd, cert_r2)
    ):
        a_lre, b_lre = lre(a, np.array(cert)), lre(b, np.array(cert))
        assert np.all(a_lre >= b_lre - 1.0), f"{name} {what}: QR LRE {a_lre} vs lstsq {b_lre}"


@pytest.mark.parametrize("name", NAMES)
def test_exact_solver_with_switch_keeps_lstsq_digits(name):
    X, y, icpt = problem(name)
    cert = np.array(CERTIFIED[name][0])
    ours = lre(hybrid_fit(X, y, icpt), cert)
    theirs = lre(lstsq_fit(X, y, icpt), cert)
    assert np.all(ours >= theirs - 1.0), f"{name}: LRE {ours} vs lstsq {theirs}"


def test_switch_sends_only_the_well_conditioned_to_normal_equations():
    # Measured: normal equations fall log10(1/rcond) digits short of QR
    # (Longley 2.2 at 1/rcond = 140, Wampler 3.3 at 2.2e3).
    fine = {n for n in NAMES if not needs_accurate_path(normal_equations_fit(*problem(n))[1])}
    assert fine == {"Norris", "NoInt1", "NoInt2"}


@pytest.mark.parametrize("name", ["Longley", "Wampler1", "Wampler2", "Wampler3"])
def test_normal_equations_lose_what_the_switch_predicts(name):
    # The rule's premise, checked where it fires: QR keeps >= log10(1/rcond) - 1
    # digits more than the normal equations.
    X, y, icpt = problem(name)
    cert = np.array(CERTIFIED[name][0])
    ne, rcond = normal_equations_fit(X, y, icpt)
    gap = lre(qr_fit(X, y, icpt)[0], cert).min() - lre(ne, cert).min()
    assert gap >= np.log10(1.0 / rcond) - 1.0


def test_filip_is_solved_where_lstsq_gives_up():
    # cond of Filip's [1, x, ..., x^10] is ~1e15 in the caller's units:
    # lstsq's default cutoff drops a direction and keeps no digit; the QR's
    # full-rank test on equilibrated columns keeps ~8 (measured 7.9).
    X, y, icpt = problem("Filip")
    cert = np.array(CERTIFIED["Filip"][0])
    assert lre(lstsq_fit(X, y, icpt), cert).min() < 1.0
    assert lre(qr_fit(X, y, icpt)[0], cert).min() >= 7.0


# Random well-conditioned problems against the float64 numpy reference.

# X is widened to float64 exactly, so float32 inputs meet the float64 tolerance.
QR_RTOL = 1e-10

CASES = [
    # n, d, k, dtype, layout, weights, alpha, fit_intercept
    (200, 5, 1, np.float64, "C", False, 0.0, True),
    (200, 5, 1, np.float64, "C", False, 0.0, False),
    (300, 7, 3, np.float64, "F", True, 0.0, True),
    (300, 7, 3, np.float32, "C", True, 0.3, True),
    (257, 9, 2, np.float32, "F", False, 0.0, False),
    (150, 6, 2, np.float64, "rows", True, 0.1, False),
    (150, 6, 1, np.float64, "cols", False, 0.0, True),
    (1, 3, 1, np.float64, "C", False, 0.0, True),
    (1, 3, 2, np.float64, "C", True, 0.0, False),
    (50, 1, 1, np.float64, "C", True, 0.0, True),
    (50, 1, 1, np.float32, "F", False, 2.0, False),
    (5, 12, 2, np.float64, "C", True, 0.0, True),
    (5, 12, 1, np.float64, "F", False, 0.0, False),
    (5, 12, 2, np.float64, "C", False, 0.5, True),
]


@pytest.mark.parametrize("n,d,k,dtype,layout,weights,alpha,fit_intercept", CASES)
@pytest.mark.parametrize("block_rows", [None, 1, 64])
def test_qr_lstsq_matches_reference(
    rng, n, d, k, dtype, layout, weights, alpha, fit_intercept, block_rows
):
    X, Y, sw = make_problem(rng, n, d, k, dtype=dtype, layout=layout, weights=weights)
    X_before = X.copy()
    coef, intercept = qr_lstsq(
        X, Y, sw, alpha=alpha, fit_intercept=fit_intercept, block_rows=block_rows
    )
    ref_coef, ref_intercept = ref_lstsq(X, Y, sw, alpha=alpha, fit_intercept=fit_intercept)
    assert coef.shape == (d, k) and intercept.shape == (k,)
    assert_close(coef, ref_coef, QR_RTOL, scale=1.0)
    assert_close(intercept, ref_intercept, QR_RTOL, scale=1.0)
    np.testing.assert_array_equal(X, X_before)


def test_qr_lstsq_accepts_1d_y(rng):
    X, Y, _ = make_problem(rng, 40, 3)
    a = qr_lstsq(X, Y[:, 0])
    b = qr_lstsq(X, Y)
    np.testing.assert_array_equal(a[0], b[0])


def test_ill_conditioned_at_lstsq_grade(rng):
    # scikit-learn's sample-weight test fails the normal equations at cond ~2e5;
    # here cond(X) = 1e7, a consistent system, no intercept: QR's error is
    # ~cond * eps, lstsq-grade, where the normal equations would lose ~cond² * eps.
    n, d = 100, 20
    U, _ = np.linalg.qr(rng.standard_normal((n, d)))
    V, _ = np.linalg.qr(rng.standard_normal((d, d)))
    X = (U * np.logspace(0, -7, d)) @ V.T
    beta = rng.standard_normal((d, 1))
    coef, _ = qr_lstsq(X, X @ beta, fit_intercept=False)
    ref = np.linalg.lstsq(X, X @ beta, rcond=None)[0]
    err, ref_err = np.abs(coef - beta).max(), np.abs(ref - beta).max()
    assert err <= max(10 * ref_err, 1e-12)


def test_factors_merge_like_the_rows(rng):
    X, Y, sw = make_problem(rng, 120, 4, 2, weights=True)
    whole = QRFactor.from_arrays(X, Y, sw)
    parts = [QRFactor.from_arrays(X[a:b], Y[a:b], sw[a:b]) for a, b in [(0, 3), (3, 70), (70, 120)]]
    merged = QRFactor.empty(4, 2).merge(parts[0]).merge(parts[1] + parts[2])
    assert_close(merged.R, whole.R, 1e-12, scale=1.0)
    assert merged.weight_sum == pytest.approx(whole.weight_sum, rel=1e-14)
    assert merged.n_samples == whole.n_samples == 120
    for got, want in zip(merged.solve(0.2), whole.solve(0.2)):
        assert_close(got, want, 1e-11, scale=1.0)


def test_merge_rejects_other_shapes(rng):
    X, Y, _ = make_problem(rng, 10, 3)
    with pytest.raises(ValueError, match="cannot merge"):
        QRFactor.from_arrays(X, Y).merge(QRFactor.from_arrays(X[:, :2], Y))


def test_negative_weights_are_rejected(rng):
    X, Y, _ = make_problem(rng, 10, 3)
    with pytest.raises(ValueError, match="non-negative"):
        qr_lstsq(X, Y, -np.ones(10))


def test_collinear_columns_give_the_minimum_norm_answer(rng):
    # A duplicated column: rank-deficient R, same answer as lstsq (coefficient split evenly).
    X, Y, _ = make_problem(rng, 60, 3)
    X = np.column_stack([X, X[:, 1]])
    coef, intercept, rank = QRFactor.from_arrays(X, Y).solve(return_rank=True)
    ref_coef, ref_intercept = ref_lstsq(X, Y)
    assert rank == 3
    assert_close(coef, ref_coef, 1e-10, scale=1.0)
    assert_close(intercept, ref_intercept, 1e-10, scale=1.0)


def test_residual_and_total_sums_of_squares(rng):
    X, Y, sw = make_problem(rng, 80, 4, 2, weights=True)
    for fit_intercept in (True, False):
        factor = QRFactor.from_arrays(X, Y, sw, fit_intercept=fit_intercept)
        coef, intercept = factor.solve()
        R = Y - X @ coef - intercept
        assert_close(factor.residual_sum_of_squares(coef), (sw[:, None] * R**2).sum(0), 1e-10)
        Yc = Y - (sw @ Y) / sw.sum() if fit_intercept else Y
        assert_close(factor.total_sum_of_squares(), (sw[:, None] * Yc**2).sum(0), 1e-10)


@pytest.mark.parametrize(
    "rcond,expected", [(1.0, False), (0.2, False), (0.05, True), (0.0, True), (float("nan"), True)]
)
def test_switch_rule(rcond, expected):
    assert needs_accurate_path(rcond) is expected


@pytest.mark.parametrize("solver", ["exact", "auto"])
@pytest.mark.parametrize("name", NAMES)
def test_linear_regression_keeps_lstsq_digits(name, solver):
    # The estimator itself, switch included: within a digit of LAPACK's lstsq
    # on every certified coefficient (Filip: lstsq keeps none, we keep ~7.6).
    X, y, icpt = problem(name)
    cert = np.array(CERTIFIED[name][0])
    model = fastlinreg.LinearRegression(solver=solver, fit_intercept=icpt).fit(X, y)
    ours = np.r_[model.intercept_, model.coef_] if icpt else model.coef_
    assert model.solver_ == "exact"
    assert np.all(lre(ours, cert) >= lre(lstsq_fit(X, y, icpt), cert) - 1.0)
    if name == "Filip":
        assert lre(ours, cert).min() >= 7.0


def test_well_conditioned_data_stays_on_the_one_pass_path(rng, monkeypatch):
    def no_qr(*args, **kwargs):
        raise AssertionError("took the QR path on well-conditioned data")

    monkeypatch.setattr(fastlinreg._accurate.QRFactor, "from_arrays", no_qr)
    X = rng.standard_normal((2000, 20))
    y = X @ rng.standard_normal(20) + 0.1 * rng.standard_normal(2000)
    fastlinreg.LinearRegression(solver="exact").fit(X, y)
