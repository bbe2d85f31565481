"""The inference methods of a fitted least-squares estimator (summary,
conf_int, the robust second pass); the math is fastlinreg.inference's."""

from __future__ import annotations

import numpy as np
from sklearn.utils.validation import check_is_fitted, validate_data

from ._validation import KERNEL_DTYPES, check_weights
from .inference import COV_TYPES, Basis, RobustPass, Summary, infer

__all__ = ["InferenceMixin"]


class InferenceMixin:
    """Adds ``summary``, ``conf_int`` and ``robust_pass`` to an estimator
    whose fits keep their sufficient statistics in ``_stream.stats`` and
    whose ``cov_type`` parameter names the covariance."""

    def summary(self, alpha: float = 0.05, *, show: bool = True) -> Summary:
        """Standard errors, tests and fit statistics, as statsmodels' OLS/WLS.

        Computed from the sufficient statistics of every row the fit saw (one
        ``fit``, or all ``partial_fit`` chunks), with the covariance named by
        ``cov_type``. Parameters are the intercept (first) and the
        coefficients. Refused, with a ValueError, for ridge (``alpha > 0``),
        for fits that keep no statistics (``solver="gd"``, ``"sgd"``) and
        for gradient-descent fits that stopped before converging: their
        coefficients are not the least-squares optimum the figures describe.

        Parameters
        ----------
        alpha : float, default=0.05
            The intervals' level is ``1 - alpha``.
        show : bool, default=True
            Print the table (one per target).

        Returns
        -------
        Summary
            ``str()`` is the table; the figures are attributes (``bse``,
            ``pvalues``, ``rsquared``, ...), one :class:`TargetInference` per
            target (``summary[q]``); ``to_frame()`` needs pandas.
        """
        stats = self._inference_stats()
        robust = None
        if self.cov_type != "nonrobust":
            robust = getattr(self, "_robust", None)
            if robust is None or robust.cov_type != self.cov_type:
                raise ValueError(
                    f"cov_type={self.cov_type!r} needs a second pass over the rows, which "
                    "partial_fit cannot take: call robust_pass(X, y) on every chunk after the "
                    "last partial_fit (fit takes it by itself)."
                )
        names = getattr(self, "feature_names_in_", None)
        k = stats.n_targets
        out = infer(
            stats,
            self.fit_intercept,
            robust=robust,
            feature_names=None if names is None else [str(n) for n in names],
            target_names=None if k > 1 else ["y"],
            weighted=stats.log_weight_sum != 0 or stats.weight_sum != stats.n_samples,
        )
        if show:
            print(out.table(alpha) if len(out) == 1 else out)
        return out

    def conf_int(self, alpha: float = 0.05) -> np.ndarray:
        """Confidence intervals of the intercept and coefficients.

        Returns
        -------
        ndarray of shape (p, 2) or (n_targets, p, 2)
            Lower and upper bounds at level ``1 - alpha``; p is
            ``1 + n_features`` with an intercept (first), else ``n_features``.
        """
        return self.summary(alpha, show=False).conf_int(alpha)

    def robust_pass(self, X, y, sample_weight=None):
        """Add one chunk of rows to the second pass of an HC0-HC3 covariance.

        ``fit`` takes this pass itself when ``cov_type`` is robust; after a
        ``partial_fit`` stream, call this once with every chunk (the same
        rows and weights) before :meth:`summary`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self
        """
        if self.cov_type == "nonrobust":
            raise ValueError(
                f"cov_type is 'nonrobust', which needs no second pass; set cov_type to one of "
                f"{COV_TYPES[1:]} first."
            )
        stats = self._inference_stats()
        X, y = validate_data(
            self, X, y, dtype=list(KERNEL_DTYPES), y_numeric=True, multi_output=True, reset=False
        )
        Y = np.asarray(y, dtype=np.float64).reshape(X.shape[0], -1)
        sw, _ = check_weights(sample_weight, X)
        self._add_robust_rows(stats, X, Y, sw)
        return self

    def _add_robust_rows(self, stats, X, Y, sw) -> None:
        """Fold rows into ``_robust`` (a new pass when the last was of another cov_type)."""
        part = RobustPass.of_rows(
            Basis.from_stats(stats, self.fit_intercept), self.cov_type, X, Y, sw
        )
        last = getattr(self, "_robust", None)
        self._robust = part if last is None or last.cov_type != part.cov_type else last + part

    def _robust_after_fit(self, problem) -> None:
        """fit's second pass, when cov_type asks for one and the fit allows inference."""
        self._robust = None
        if self.cov_type != "nonrobust" and self._inference_refusal() is None:
            self._add_robust_rows(self._stream.stats, problem.X, problem.Y, problem.sample_weight)

    def _inference_refusal(self) -> str | None:
        """Why this fit allows no inference, or None."""
        stream = self._stream
        if self.alpha > 0:
            return (
                f"the model was fitted with alpha={self.alpha} (ridge): its coefficients are "
                "shrunk, and the OLS/WLS standard errors would misdescribe them. Refit with "
                "alpha=0 for inference."
            )
        if stream.stats is None:
            return (
                f"solver {self.solver_!r} keeps no sufficient statistics of the rows. Refit with "
                "solver='exact' (or 'gram') for inference."
            )
        if not stream.converged:
            return (
                f"gradient descent (solver {self.solver_!r}) stopped after {self.n_iter_} steps "
                "before converging, so the coefficients are not the least-squares optimum. "
                "Refit with solver='exact', or with a larger max_iter and a tol."
            )
        return None

    def _inference_stats(self):
        check_is_fitted(self)
        why = self._inference_refusal()
        if why is not None:
            raise ValueError(f"No inference for this fit: {why}")
        return self._stream.stats
