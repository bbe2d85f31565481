"""Statistical inference for least-squares fits, from the sufficient statistics.

Everything here reads a :class:`~fastlinreg.SufficientStats` (one fit, a
``partial_fit`` stream or merged blocks), never X, except the robust
covariances HC0-HC3, whose "meat" ``sum_i w_i^2 e_i^2 z_i z_i^T`` needs the
residual of every row: a second blocked pass over the rows
(:class:`RobustPass`), which never forms anything n x n.

``nobs`` counts the rows with a positive weight (statsmodels' WLS also
counts rows of weight zero, which add nothing else to the fit). The
parameters are ordered as statsmodels orders ``add_constant(X)``: the
intercept first (named ``"intercept"``), then the coefficients. Figures match
statsmodels ``OLS``/``WLS``: t-based p-values and intervals for the nonrobust
covariance, normal ones for HC0-HC3 (statsmodels' ``use_t`` default); the F
statistic is the Wald test of all coefficients but the intercept, which for the
nonrobust covariance is the classic ``(ESS / df_model) / (SSR / df_resid)``.

Internally the design is centred, ``z_i = (1, x_i - mean_x)``: then
``Z^T W Z = diag(sum w, Cxx)`` is block diagonal, so the intercept never
mixes into the inverse and large column means cost no digits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg

from ._regression_results import Summary, TargetInference
from ._stats import SufficientStats
from .exceptions import IllConditionedWarning, warn_caller

__all__ = ["COV_TYPES", "Basis", "RobustPass", "TargetInference", "Summary", "infer"]

COV_TYPES = ("nonrobust", "HC0", "HC1", "HC2", "HC3")

_EPS = np.finfo(np.float64).eps
# Rows per block of the second pass: about 2**20 float64 of centred X.
_BLOCK_ELEMENTS = 1 << 20


def identified_columns(A: np.ndarray) -> np.ndarray:
    """Which columns of a normal matrix ``A`` (d, d) are identified: a column
    is dropped when, after equilibration, its residual variance given the
    earlier kept columns is at most ``d * eps * 100`` (the rank test of
    ``SufficientStats.solve``). Earlier columns win, as in R's ``lm``.

    Returns a boolean mask of shape (d,).
    """
    d = A.shape[0]
    diag = np.diag(A)
    keep = diag > 0
    if d == 0 or not keep.any():
        return keep
    s = 1.0 / np.sqrt(np.where(keep, diag, 1.0))
    As = A * s[:, None] * s[None, :]
    try:  # the common case: all columns with variance are independent
        c = scipy.linalg.cholesky(As[np.ix_(keep, keep)], lower=True, check_finite=False)
        if np.min(np.diag(c)) ** 2 > d * _EPS * 100:
            return keep
    except np.linalg.LinAlgError:
        pass
    # Cholesky column by column, skipping a column whose pivot is (relatively) zero.
    kept: list[int] = []
    L = np.zeros((d, d))
    for j in np.flatnonzero(keep):
        r = len(kept)
        a = As[kept, j]
        v = scipy.linalg.solve_triangular(L[:r, :r], a, lower=True) if r else a
        resid = As[j, j] - v @ v
        if resid <= d * _EPS * 100:
            keep[j] = False
            continue
        L[r, :r], L[r, r] = v, np.sqrt(resid)
        kept.append(j)
    return keep


@dataclass(frozen=True)
class Basis:
    """The least-squares optimum of some statistics and the inverse normal
    matrix, restricted to the identified columns.

    Attributes
    ----------
    keep : ndarray of bool, shape (d,)
    coef : ndarray of shape (d_kept, k)
    intercept : ndarray of shape (k,)
        Zero without an intercept.
    inverse : ndarray of shape (d_kept, d_kept)
        ``Cxx^-1`` (with an intercept) or ``(X^T W X)^-1`` (without), kept columns.
    mean_x, mean_y : ndarray of shape (d_kept,), (k,)
        The centring (zeros without an intercept).
    weight_sum : float
    fit_intercept : bool
    """

    keep: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray
    inverse: np.ndarray
    mean_x: np.ndarray
    mean_y: np.ndarray
    weight_sum: float
    fit_intercept: bool

    @classmethod
    def from_stats(cls, stats: SufficientStats, fit_intercept: bool = True) -> Basis:
        A = stats.Cxx if fit_intercept else stats.raw_xtx()
        B = stats.Cxy if fit_intercept else stats.raw_xty()
        keep = identified_columns(A)
        idx = np.flatnonzero(keep)
        Ak, Bk = A[np.ix_(idx, idx)], B[idx]
        s = 1.0 / np.sqrt(np.diag(Ak)) if idx.size else np.ones(0)
        # Equilibrated Cholesky: the inverse's accuracy then follows the
        # conditioning of the correlations, not of the units.
        factor = scipy.linalg.cho_factor(Ak * s[:, None] * s[None, :], check_finite=False)
        coef = scipy.linalg.cho_solve(factor, Bk * s[:, None], check_finite=False) * s[:, None]
        inverse = scipy.linalg.cho_solve(factor, np.diag(s), check_finite=False) * s[:, None]
        k = stats.n_targets
        if fit_intercept:
            mean_x, mean_y = stats.mean_x[idx], stats.mean_y
            intercept = mean_y - mean_x @ coef
        else:
            mean_x, mean_y, intercept = np.zeros(idx.size), np.zeros(k), np.zeros(k)
        return cls(keep, coef, intercept, inverse, mean_x, mean_y, stats.weight_sum, fit_intercept)

    @property
    def n_params(self) -> int:
        return int(self.coef.shape[0] + self.fit_intercept)

    def bread(self) -> np.ndarray:
        """``(Z^T W Z)^-1`` in the centred coordinates (p, p)."""
        if not self.fit_intercept:
            return self.inverse
        p = self.n_params
        out = np.zeros((p, p))
        out[0, 0] = 1.0 / self.weight_sum
        out[1:, 1:] = self.inverse
        return out

    def uncentre(self) -> np.ndarray:
        """T (p, p) with (intercept, coef) = T (centred intercept, coef)."""
        T = np.eye(self.n_params)
        if self.fit_intercept:
            T[0, 1:] = -self.mean_x
        return T


@dataclass(frozen=True)
class RobustPass:
    """The meat of a sandwich covariance, summed over blocks of rows.

    ``meat[q] = sum_i w_i^2 e_iq^2 z_i z_i^T / (1 - h_i)^m`` with ``m`` 0 for
    HC0/HC1, 1 for HC2, 2 for HC3, ``z_i`` the centred design row (kept
    columns) and ``h_i = w_i z_i^T (Z^T W Z)^-1 z_i`` its leverage. Passes over
    disjoint rows add (``+``); :func:`infer` checks that the pass saw the same
    rows as the statistics.

    Attributes
    ----------
    cov_type : str
    meat : ndarray of shape (k, p, p)
    weight_sum : float
    n_samples : int
    """

    cov_type: str
    meat: np.ndarray
    weight_sum: float
    n_samples: int

    @classmethod
    def of_rows(cls, basis: Basis, cov_type: str, X, Y, sample_weight=None) -> RobustPass:
        """One pass over X (n, d), Y (n, k), weights (n,) or None, in blocks."""
        if cov_type not in COV_TYPES[1:]:
            raise ValueError(f"cov_type must be one of {COV_TYPES[1:]}; got {cov_type!r}.")
        n, d = X.shape
        k, p = basis.coef.shape[1], basis.n_params
        power = {"HC0": 0, "HC1": 0, "HC2": 1, "HC3": 2}[cov_type]
        bread = basis.bread()
        meat = np.zeros((k, p, p))
        wsum, count = 0.0, 0
        step = max(1, _BLOCK_ELEMENTS // max(d, 1))
        for lo in range(0, n, step):
            Z = _centred_rows(basis, X[lo : lo + step])
            Zx = Z[:, 1:] if basis.fit_intercept else Z
            E = np.asarray(Y[lo : lo + step], dtype=np.float64) - basis.mean_y - Zx @ basis.coef
            w = np.ones(Z.shape[0]) if sample_weight is None else sample_weight[lo : lo + step]
            wsum += float(w.sum())
            count += int(np.count_nonzero(w))
            scale = w[:, None] ** 2 * E**2
            if power:
                h = w * np.einsum("ij,ij->i", Z @ bread, Z)
                scale = scale / (1.0 - h)[:, None] ** power
            for q in range(k):
                meat[q] += Z.T @ (Z * scale[:, q : q + 1])
        return cls(cov_type, meat, wsum, count)

    def __add__(self, other: RobustPass) -> RobustPass:
        if other.cov_type != self.cov_type or other.meat.shape != self.meat.shape:
            raise ValueError("cannot add robust passes of different cov_type or shape")
        return RobustPass(
            self.cov_type,
            self.meat + other.meat,
            self.weight_sum + other.weight_sum,
            self.n_samples + other.n_samples,
        )


def _centred_rows(basis: Basis, X) -> np.ndarray:
    """The centred design rows of a block: (rows, p), float64."""
    Xk = np.asarray(X, dtype=np.float64)[:, basis.keep]
    if not basis.fit_intercept:
        return Xk
    return np.hstack([np.ones((Xk.shape[0], 1)), Xk - basis.mean_x])


def infer(
    stats: SufficientStats,
    fit_intercept: bool = True,
    *,
    robust: RobustPass | None = None,
    feature_names=None,
    target_names=None,
    weighted: bool = False,
) -> Summary:
    """Inference for the least-squares fit of the rows behind ``stats``.

    Parameters
    ----------
    stats : SufficientStats
        Of all the rows the fit saw (one fit, a stream, merged blocks).
    fit_intercept : bool, default=True
    robust : RobustPass, optional
        The second pass for an HC0-HC3 covariance, over the same rows;
        ``None`` gives the nonrobust covariance ``σ̂² (Z^T W Z)^-1``.
    feature_names : sequence of str, optional
        Default ``x1, ..., xd`` (statsmodels' names).
    target_names : sequence of str, optional
        Default ``y`` (one target) or ``y1, ..., yk``.
    weighted : bool, default=False
        Whether the rows had sample weights (the table then says WLS).

    Returns
    -------
    Summary
        One :class:`TargetInference` per target.

    Examples
    --------
    >>> import numpy as np
    >>> from fastlinreg import SufficientStats
    >>> from fastlinreg.inference import infer
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 2))
    >>> y = X @ [1.0, -2.0] + 3 + rng.normal(size=200)
    >>> s = infer(SufficientStats.from_arrays(X, y))
    >>> s.names, s.params.round(1), round(s.rsquared, 2)
    (['intercept', 'x1', 'x2'], array([ 3. ,  0.9, -1.9]), 0.81)
    """
    d, k = stats.n_features, stats.n_targets
    names = list(feature_names) if feature_names is not None else [f"x{j + 1}" for j in range(d)]
    if target_names is None:
        target_names = ["y"] if k == 1 else [f"y{q + 1}" for q in range(k)]
    basis = Basis.from_stats(stats, fit_intercept)
    if not basis.keep.all():
        dropped = ", ".join(n for n, kept in zip(names, basis.keep) if not kept)
        warn_caller(
            f"columns {dropped} are constant or linear combinations of earlier columns: their "
            "coefficients are not identified and are reported as NaN.",
            IllConditionedWarning,
        )
    fit = _Fit.of(stats, basis, names, robust, weighted)
    tss = np.diag(stats.Cyy) + (0.0 if fit_intercept else stats.weight_sum * stats.mean_y**2)
    B = stats.Cxy if fit_intercept else stats.raw_xty()
    # At the optimum SSR = TSS - β·(Xᵀy); a sum of squares, so negative is rounding.
    ssr = np.maximum(tss - np.einsum("jq,jq->q", basis.coef, B[basis.keep]), 0.0)
    T, bread = basis.uncentre(), basis.bread()
    hc1 = fit.n / fit.df_resid if robust is not None and robust.cov_type == "HC1" else 1.0
    out = []
    for q in range(k):
        params = np.concatenate([basis.intercept[q : q + 1], basis.coef[:, q]])
        params = params if fit_intercept else params[1:]
        if robust is None:
            cov_c = float(ssr[q] / fit.df_resid) * bread
        else:
            cov_c = bread @ robust.meat[q] @ bread * hc1
        cov = T @ cov_c @ T.T
        out.append(_figures(fit, params, cov, float(ssr[q]), float(tss[q]), str(target_names[q])))
    return Summary(out)


@dataclass(frozen=True)
class _Fit:
    """What every target's figures share."""

    names: list  # (p_full,): "intercept" (with one), then the features
    full: np.ndarray  # (p_full,) bool: identified
    n: int
    df_model: int
    df_resid: int
    fit_intercept: bool
    llf_const: float  # the WLS likelihood's 0.5 * sum(log w)
    robust: RobustPass | None
    weighted: bool

    @classmethod
    def of(cls, stats, basis: Basis, names, robust, weighted) -> _Fit:
        n, p, k = int(stats.n_samples), basis.n_params, stats.n_targets
        if n - p <= 0:
            raise ValueError(
                f"inference needs more rows with a positive weight ({n}) than parameters "
                f"({p}): there are no residual degrees of freedom to estimate the noise from."
            )
        if robust is not None and (robust.n_samples != n or robust.meat.shape != (k, p, p)):
            raise ValueError(
                f"the robust pass saw {robust.n_samples} rows but the fit {n}: pass every row "
                "the fit saw (each chunk once) before asking for the summary."
            )
        fi = basis.fit_intercept
        full = np.concatenate([[True], basis.keep]) if fi else basis.keep
        all_names = (["intercept"] if fi else []) + list(names)
        llf_const = 0.5 * stats.log_weight_sum
        return cls(all_names, full, n, p - int(fi), n - p, fi, llf_const, robust, weighted)


def _figures(fit: _Fit, params_k, cov_k, ssr: float, tss: float, target: str) -> TargetInference:
    """One target's figures from its identified parameters and their covariance."""
    import scipy.stats  # here, not at import: it costs `import fastlinreg` ~0.3 s

    n, df_model, df_resid = fit.n, fit.df_model, fit.df_resid
    full, P = fit.full, fit.full.shape[0]
    params, cov = np.full(P, np.nan), np.full((P, P), np.nan)
    params[full] = params_k
    cov[np.ix_(full, full)] = cov_k
    bse = np.sqrt(np.diag(cov))
    with np.errstate(divide="ignore", invalid="ignore"):
        tvalues = params / bse
    use_t = fit.robust is None
    dist = scipy.stats.t(df_resid) if use_t else scipy.stats.norm()
    pvalues = 2 * dist.sf(np.abs(tvalues))
    slopes = slice(1, None) if fit.fit_intercept else slice(None)
    if df_model == 0:
        fvalue = f_pvalue = float("nan")
    else:
        if use_t:
            fvalue = ((tss - ssr) / df_model) / (ssr / df_resid) if ssr > 0 else float("inf")
        else:  # the Wald test of the slopes with the robust covariance (statsmodels' f_test)
            b, V = params_k[slopes], cov_k[slopes, slopes]
            fvalue = float(b @ np.linalg.solve(V, b)) / df_model
        f_pvalue = float(scipy.stats.f.sf(fvalue, df_model, df_resid))
    llf = (
        -0.5 * n * (1.0 + np.log(2 * np.pi * ssr / n)) + fit.llf_const if ssr > 0 else float("inf")
    )
    k_params = df_model + int(fit.fit_intercept)
    rsquared = 1.0 - ssr / tss if tss > 0 else float("nan")
    rsquared_adj = 1.0 - (n - int(fit.fit_intercept)) / df_resid * (1.0 - rsquared)
    return TargetInference(
        fit.names, params, bse, tvalues, pvalues, cov, ssr / df_resid, ssr,
        float(rsquared), float(rsquared_adj), float(fvalue), f_pvalue, float(llf),
        float(-2 * llf + 2 * k_params), float(-2 * llf + np.log(n) * k_params),
        n, df_model, df_resid,
        fit.robust.cov_type if fit.robust is not None else "nonrobust",
        use_t, target, fit.weighted,
    )  # fmt: skip
