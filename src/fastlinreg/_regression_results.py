"""What an inference reports: the figures of each target, its table and frame.

Built by :func:`fastlinreg.inference.infer`; statsmodels' names throughout.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["TargetInference", "Summary"]


@dataclass(frozen=True)
class TargetInference:
    """The inference figures of one target, statsmodels' names.

    Arrays over the parameters have shape (p,) = (1 + n_features,) with an
    intercept (first), (n_features,) without; a coefficient that is not
    identified (rank deficiency) is NaN throughout.

    Attributes
    ----------
    names : list of str
    params, bse, tvalues, pvalues : ndarray of shape (p,)
    cov_params : ndarray of shape (p, p)
    scale : float
        σ̂², the weighted residual sum of squares over ``df_resid``.
    ssr, rsquared, rsquared_adj, fvalue, f_pvalue, llf, aic, bic : float
    nobs : int
        Rows with a positive weight.
    df_model, df_resid : int
    cov_type : str
    use_t : bool
        Student's t (nonrobust) or the normal distribution (HC0-HC3) for
        p-values and intervals, as statsmodels does by default.
    target : str
    weighted : bool
        Whether the fit had sample weights (a WLS table).
    """

    names: list
    params: np.ndarray
    bse: np.ndarray
    tvalues: np.ndarray
    pvalues: np.ndarray
    cov_params: np.ndarray
    scale: float
    ssr: float
    rsquared: float
    rsquared_adj: float
    fvalue: float
    f_pvalue: float
    llf: float
    aic: float
    bic: float
    nobs: int
    df_model: int
    df_resid: int
    cov_type: str
    use_t: bool
    target: str
    weighted: bool = False

    def _critical(self, alpha: float) -> float:
        import scipy.stats

        if not 0 < alpha < 1:
            raise ValueError(f"alpha must be in (0, 1); got {alpha!r}.")
        if self.use_t:
            return float(scipy.stats.t.ppf(1 - alpha / 2, self.df_resid))
        return float(scipy.stats.norm.ppf(1 - alpha / 2))

    def conf_int(self, alpha: float = 0.05) -> np.ndarray:
        """Confidence intervals at level ``1 - alpha``: shape (p, 2), lower and upper."""
        half = self._critical(alpha) * self.bse
        return np.column_stack([self.params - half, self.params + half])

    def confidence_band(self, X, alpha: float = 0.05):
        """The fitted mean at the rows of X (m, n_features) and its confidence
        interval at level ``1 - alpha``: three arrays of shape (m,)."""
        X = np.asarray(X, dtype=np.float64)
        ok = ~np.isnan(self.params)
        D = np.hstack([np.ones((X.shape[0], 1)), X]) if self.names[0] == "intercept" else X
        D = D[:, ok]
        fit = D @ self.params[ok]
        se = np.sqrt(np.einsum("ij,jk,ik->i", D, self.cov_params[np.ix_(ok, ok)], D))
        half = self._critical(alpha) * se
        return fit, fit - half, fit + half

    def to_frame(self, alpha: float = 0.05):
        """The coefficient table as a pandas DataFrame (needs pandas)."""
        import pandas as pd

        ci = self.conf_int(alpha)
        stat = "t" if self.use_t else "z"
        return pd.DataFrame(
            {
                "coef": self.params,
                "std err": self.bse,
                stat: self.tvalues,
                f"P>|{stat}|": self.pvalues,
                f"[{alpha / 2:g}": ci[:, 0],
                f"{1 - alpha / 2:g}]": ci[:, 1],
            },
            index=pd.Index(self.names, name=self.target),
        )

    def table(self, alpha: float = 0.05) -> str:
        """The statsmodels-style text table."""
        wls = "WLS" if self.weighted else "OLS"
        left = [
            ("Dep. Variable:", self.target),
            ("Model:", wls),
            ("Method:", "Least Squares"),
            ("No. Observations:", str(self.nobs)),
            ("Df Residuals:", str(self.df_resid)),
            ("Df Model:", str(self.df_model)),
            ("Covariance Type:", self.cov_type),
        ]
        right = [
            ("R-squared:", f"{self.rsquared:.3f}"),
            ("Adj. R-squared:", f"{self.rsquared_adj:.3f}"),
            ("F-statistic:", f"{self.fvalue:#.4g}"),
            ("Prob (F-statistic):", f"{self.f_pvalue:#.3g}"),
            ("Log-Likelihood:", f"{self.llf:#.5g}"),
            ("AIC:", f"{self.aic:#.4g}"),
            ("BIC:", f"{self.bic:#.4g}"),
        ]
        rule, thin = "=" * 78, "-" * 78
        lines = [f"{wls} Regression Results".center(78).rstrip(), rule]
        for (a, x), (b, y) in zip(left, right):
            lines.append(f"{a:<20}{x:>18}   {b:<20}{y:>17}")
        stat = "t" if self.use_t else "z"
        lo, hi = f"[{alpha / 2:g}", f"{1 - alpha / 2:g}]"
        width = max(10, max(len(n) for n in self.names) + 1)
        head = (
            f"{'':<{width}}{'coef':>11}{'std err':>11}{stat:>9}{f'P>|{stat}|':>9}{lo:>11}{hi:>11}"
        )
        lines += [rule, head, thin]
        ci = self.conf_int(alpha)
        for i, name in enumerate(self.names):
            cells = (self.params[i], self.bse[i], ci[i, 0], ci[i, 1])
            a, b, c, e = (_number(v) for v in cells)
            t, pv = f"{self.tvalues[i]:.3f}", f"{self.pvalues[i]:.3f}"
            lines.append(f"{name:<{width}}{a:>11}{b:>11}{t:>9}{pv:>9}{c:>11}{e:>11}")
        lines.append(rule)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def _number(x: float) -> str:
    """statsmodels' column format: fixed point for ordinary sizes, else exponent."""
    if not np.isfinite(x):
        return "nan"
    return f"{x:.4f}" if x == 0 or 1e-4 <= abs(x) < 1e4 else f"{x:.3e}"


class Summary:
    """The inference of a fit: one :class:`TargetInference` per target.

    ``str(summary)`` is the statsmodels-style table (one per target); the
    repr is one line, as ``summary()`` has printed the table already. With a
    single target, the figures are also attributes of the summary itself
    (``summary.bse``, ``summary.rsquared``, ...).
    """

    def __init__(self, targets: list):
        self.targets = list(targets)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, q: int) -> TargetInference:
        return self.targets[q]

    def __iter__(self):
        return iter(self.targets)

    def __getattr__(self, name):
        targets = self.__dict__.get("targets")
        if targets is not None and len(targets) == 1 and not name.startswith("_"):
            return getattr(targets[0], name)
        raise AttributeError(
            f"'Summary' has no attribute {name!r}"
            + ("; with several targets, use summary[q].{name}" if targets else "")
        )

    def conf_int(self, alpha: float = 0.05) -> np.ndarray:
        """Intervals (p, 2) for one target, (k, p, 2) for several."""
        ci = np.stack([t.conf_int(alpha) for t in self.targets])
        return ci[0] if len(self.targets) == 1 else ci

    def to_frame(self, alpha: float = 0.05):
        """All coefficient tables as one pandas DataFrame, indexed by (target, name)."""
        import pandas as pd

        return pd.concat({t.target: t.to_frame(alpha) for t in self.targets}, names=["target"])

    def __str__(self) -> str:
        return "\n\n".join(t.table() for t in self.targets)

    def __repr__(self) -> str:
        # Short: summary() has printed the table already, and a REPL echoes this.
        kinds = sorted({t.cov_type for t in self.targets})
        return f"<Summary of {len(self)} target(s), {', '.join(kinds)}: print() it for the table>"
