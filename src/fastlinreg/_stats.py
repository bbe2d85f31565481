"""Mergeable one-pass sufficient statistics of a weighted least-squares problem."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.optimize

from ._losses import SQUARED
from .exceptions import IllConditionedWarning, warn_caller

__all__ = ["SufficientStats"]

ILL_CONDITIONED = (
    "XᵀX is singular or ill-conditioned (collinear or constant columns); using the "
    "minimum-norm least-squares solution. Consider alpha > 0 (ridge) or removing "
    "redundant columns."
)


@dataclass(frozen=True)
class SufficientStats:
    """Everything a squared-loss fit needs from the rows, in centred form.

    Attributes
    ----------
    weight_sum : float
        Sum of the sample weights (the number of rows when unweighted).
    mean_x : ndarray of shape (n_features,)
        Weighted column means of X.
    mean_y : ndarray of shape (n_targets,)
        Weighted means of y.
    Cxx : ndarray of shape (n_features, n_features)
        ``sum_i w_i (x_i - mean_x)(x_i - mean_x)^T``.
    Cxy : ndarray of shape (n_features, n_targets)
        ``sum_i w_i (x_i - mean_x)(y_i - mean_y)^T``.
    Cyy : ndarray of shape (n_targets, n_targets)
        ``sum_i w_i (y_i - mean_y)(y_i - mean_y)^T``.
    n_samples : int
        Rows with a positive weight: with no more of them than columns (plus
        one for the intercept), XᵀX is singular by shape, not by accident.
    log_weight_sum : float
        Sum of the logs of the positive weights (0 when unweighted): the
        constant a weighted fit's Gaussian log-likelihood needs.

    The raw moments follow: ``XᵀWX = Cxx + weight_sum * outer(mean_x, mean_x)``
    and so on. Centred moments merge exactly (Chan, Golub and LeVeque's
    pairwise update) and do not lose digits to large column means.

    Examples
    --------
    >>> import numpy as np
    >>> from fastlinreg import SufficientStats
    >>> rng = np.random.default_rng(0)
    >>> X, y = rng.normal(size=(100, 3)), rng.normal(size=100)
    >>> a = SufficientStats.from_arrays(X[:40], y[:40])
    >>> b = SufficientStats.from_arrays(X[40:], y[40:])
    >>> both = SufficientStats.from_arrays(X, y)
    >>> bool(np.allclose(a.merge(b).Cxx, both.Cxx))
    True
    """

    weight_sum: float
    mean_x: np.ndarray
    mean_y: np.ndarray
    Cxx: np.ndarray
    Cxy: np.ndarray
    Cyy: np.ndarray
    n_samples: int = 0
    log_weight_sum: float = 0.0

    @property
    def n_features(self) -> int:
        return self.mean_x.shape[0]

    @property
    def n_targets(self) -> int:
        return self.mean_y.shape[0]

    @classmethod
    def from_arrays(cls, X, y, sample_weight=None, *, n_jobs=None, backend="auto"):
        """Statistics of the rows of ``X`` (n, d) and ``y`` (n,) or (n, k), in
        one read of X.

        X and y must be finite numbers (a NaN or inf makes the statistics
        non-finite: see :meth:`is_finite`); ``sample_weight`` (n,) must be
        finite and non-negative. ``backend`` names where the pass runs (see
        :func:`fastlinreg.available_backends`).
        """
        from .backends import Problem, get_backend

        X = np.asarray(X)
        if X.ndim != 2 or X.dtype.kind not in "biuf":
            raise ValueError(
                f"X must be a 2-D array of numbers; got shape {X.shape} and dtype {X.dtype}."
            )
        try:
            y = np.asarray(y, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError("y must be an array of numbers, of shape (n,) or (n, k).") from None
        if y.ndim == 1:
            y = y.reshape(-1, 1)
        if y.ndim != 2 or y.shape[0] != X.shape[0]:
            raise ValueError(
                f"y must have shape ({X.shape[0]},) or ({X.shape[0]}, n_targets); got {y.shape}."
            )
        impl = get_backend(backend)
        sw, n_samples, log_wsum = None, X.shape[0], 0.0
        if sample_weight is not None:
            sw = np.asarray(sample_weight, dtype=np.float64)
            if sw.shape != (X.shape[0],) or not np.isfinite(sw).all() or (sw < 0).any():
                raise ValueError(
                    f"sample_weight must be {X.shape[0]} finite, non-negative numbers (one per "
                    "row of X)."
                )
            n_samples = int(np.count_nonzero(sw))
            log_wsum = float(np.log(sw[sw > 0]).sum())
        wsum = float(X.shape[0]) if sw is None else float(sw.sum())
        if not wsum > 0:
            return cls.empty(X.shape[1], y.shape[1])
        problem = Problem(impl.prepare_X(X), y, sw, wsum, SQUARED, n_jobs)
        return cls(*impl.sufficient_stats(problem), n_samples=n_samples, log_weight_sum=log_wsum)

    @classmethod
    def empty(cls, n_features: int, n_targets: int) -> SufficientStats:
        """The statistics of no rows: the identity of :meth:`merge`."""
        d, k = n_features, n_targets
        return cls(
            0.0, np.zeros(d), np.zeros(k), np.zeros((d, d)), np.zeros((d, k)), np.zeros((k, k))
        )

    def merge(self, other: SufficientStats) -> SufficientStats:
        """Statistics of the rows of both: equal to computing them on the
        concatenated rows (up to rounding)."""
        if (self.n_features, self.n_targets) != (other.n_features, other.n_targets):
            raise ValueError(
                f"cannot merge statistics of {self.n_features} features/{self.n_targets} "
                f"targets with {other.n_features}/{other.n_targets}: the blocks must come "
                "from the same columns"
            )
        wa, wb = self.weight_sum, other.weight_sum
        w = wa + wb
        if wa == 0.0:
            return other
        if wb == 0.0:
            return self
        fb = wb / w
        dx = other.mean_x - self.mean_x
        dy = other.mean_y - self.mean_y
        cross = wa * wb / w
        return SufficientStats(
            w,
            self.mean_x + fb * dx,
            self.mean_y + fb * dy,
            self.Cxx + other.Cxx + cross * np.outer(dx, dx),
            self.Cxy + other.Cxy + cross * np.outer(dx, dy),
            self.Cyy + other.Cyy + cross * np.outer(dy, dy),
            self.n_samples + other.n_samples,
            self.log_weight_sum + other.log_weight_sum,
        )

    __add__ = merge

    def is_finite(self) -> bool:
        """True when every statistic is finite (a NaN or inf in the rows makes
        them non-finite, so this doubles as the rows' finiteness check)."""
        parts = (self.mean_x, self.mean_y, self.Cxx, self.Cxy, self.Cyy)
        if sum(np.size(a) for a in parts) <= 4096:  # one check for all: a tiny fit's fixed cost
            flat = np.concatenate([np.ravel(a) for a in parts])
            return bool(np.isfinite(self.weight_sum) and np.isfinite(flat).all())
        return bool(
            np.isfinite(self.weight_sum)
            and np.isfinite(self.mean_x).all()
            and np.isfinite(self.mean_y).all()
            and np.isfinite(self.Cxx).all()
            and np.isfinite(self.Cxy).all()
            and np.isfinite(self.Cyy).all()
        )

    def raw_xtx(self) -> np.ndarray:
        """``Xᵀ W X`` (uncentred)."""
        return self.Cxx + self.weight_sum * np.outer(self.mean_x, self.mean_x)

    def raw_xty(self) -> np.ndarray:
        """``Xᵀ W y`` (uncentred), shape (d, k)."""
        return self.Cxy + self.weight_sum * np.outer(self.mean_x, self.mean_y)

    def loss(self, coef: np.ndarray, intercept: np.ndarray, alpha: float = 0.0) -> float:
        """The objective ``sum w (Xβ + b - y)^2 / (2 sum w) + alpha/2 |β|^2`` at
        ``coef`` (d, k), ``intercept`` (k,), summed over the k targets,
        without reading X."""
        m = intercept + self.mean_x @ coef - self.mean_y
        quad = np.einsum("jq,jq->", coef, self.Cxx @ coef - 2.0 * self.Cxy) + np.trace(self.Cyy)
        data = 0.5 * quad / self.weight_sum + 0.5 * m @ m
        # A sum of squares: a negative value is rounding (Cyy - β·Cxy cancels at a perfect fit).
        # alpha may be one penalty per target (k,): it broadcasts along coef's columns.
        return float(max(data, 0.0) + 0.5 * np.sum(np.asarray(alpha) * coef**2))

    def normal_equations(self, alpha: float = 0.0, fit_intercept: bool = True):
        """``(A (d, d), B (d, k))`` with ``A coef = B`` at the optimum: the
        centred (or, without an intercept, raw) XᵀWX plus ``alpha·Σw·I``, and
        XᵀWy."""
        if fit_intercept:
            A, B = self.Cxx.copy(), self.Cxy
        else:
            A, B = self.raw_xtx(), self.raw_xty()
        if alpha:
            A[np.diag_indices(A.shape[0])] += alpha * self.weight_sum
        return A, B

    def underdetermined(self, fit_intercept: bool = True) -> bool:
        """Fewer rows with weight than unknowns: singular by shape."""
        return self.n_samples - int(fit_intercept) < self.n_features

    def solve(self, alpha=0.0, fit_intercept: bool = True, positive: bool = False):
        """Minimiser of ``sum w (Xβ + b - y)^2 / (2 sum w) + alpha/2 |β|^2``.

        ``alpha`` is a float or one penalty per target, shape (k,).
        Returns ``(coef (d, k), intercept (k,))``; ``intercept`` is zero
        without ``fit_intercept``. Cholesky when the system is well
        conditioned; otherwise (singular, d > n, collinear columns) an
        eigendecomposition giving the minimum-norm solution, with an
        :class:`IllConditionedWarning`. ``positive``: the minimiser over
        β >= 0, by an active-set NNLS (scipy.optimize.nnls) on a square root
        of the statistics; the intercept stays free (it is the centring).
        """
        if fit_intercept:
            A0, B = self.Cxx, self.Cxy
        else:
            A0, B = self.raw_xtx(), self.raw_xty()
        d = A0.shape[0]
        alphas = np.broadcast_to(np.asarray(alpha, dtype=np.float64), (self.n_targets,))
        # Fewer rows than unknowns: singular by shape, and the minimum-norm
        # solution is the expected answer, so no warning.
        underdetermined = self.n_samples - int(fit_intercept) < d

        def penalised(a: float) -> np.ndarray:
            A = A0.copy()
            A[np.diag_indices(d)] += a * self.weight_sum
            return A

        if positive:
            coef = np.column_stack(
                [_nnls_normal(penalised(a), B[:, q]) for q, a in enumerate(alphas)]
            ).reshape(d, -1)
        elif np.all(alphas == alphas[0]):
            coef = _solve_spd(penalised(alphas[0]), B, warn=not underdetermined)
        else:  # one system per target
            coef = np.column_stack(
                [
                    _solve_spd(penalised(a), B[:, q : q + 1], warn=not underdetermined)[:, 0]
                    for q, a in enumerate(alphas)
                ]
            ).reshape(d, -1)
        if fit_intercept:
            intercept = self.mean_y - self.mean_x @ coef
        else:
            intercept = np.zeros(self.n_targets)
        return coef, intercept


def _solve_spd(A: np.ndarray, B: np.ndarray, warn: bool = True) -> np.ndarray:
    """Solve ``A x = B`` for symmetric positive semi-definite A.

    Cholesky (LAPACK potrf) with a reciprocal-condition check; a singular or
    ill-conditioned A falls back to the eigendecomposition's pseudo-inverse,
    the minimum-norm least-squares solution.
    """
    d = A.shape[0]
    if d == 0:
        return np.zeros((0, B.shape[1]))
    # Equilibrate so the condition estimate reflects the problem, not the units.
    diag = np.diag(A).copy()
    scale = np.where(diag > 0, 1.0 / np.sqrt(np.where(diag > 0, diag, 1.0)), 1.0)
    As = A * scale[:, None] * scale[None, :]
    Bs = B * scale[:, None]
    eps = np.finfo(np.float64).eps
    if np.all(diag > 0):
        try:
            c, lower = scipy.linalg.cho_factor(As, lower=False, check_finite=False)
            # rcond of the Cholesky factor squared bounds that of A.
            rcond_r = _tri_rcond(c)
            if rcond_r**2 > d * eps * 1e2:
                x = scipy.linalg.cho_solve((c, lower), Bs, check_finite=False)
                return x * scale[:, None]
        except np.linalg.LinAlgError:
            pass
    if warn:
        warn_caller(ILL_CONDITIONED, IllConditionedWarning)
    # Minimum norm in the caller's coordinates (as numpy.linalg.lstsq), so
    # the decomposition is of A itself, not of the equilibrated matrix.
    evals, evecs = scipy.linalg.eigh(A, check_finite=False)
    cutoff = max(evals[-1], 0.0) * d * eps * 10
    inv = np.where(evals > cutoff, 1.0 / np.where(evals > cutoff, evals, 1.0), 0.0)
    return evecs @ (inv[:, None] * (evecs.T @ B))


def _nnls_normal(A: np.ndarray, b: np.ndarray) -> np.ndarray:
    """argmin over x >= 0 of ``x·A x / 2 - b·x`` for symmetric PSD A (d, d), b (d,).

    With A = RᵀR this is ``min |R x - R⁻ᵀ b|`` over x >= 0, which
    scipy.optimize.nnls (Lawson-Hanson active set) solves. R is the Cholesky
    factor, or the eigendecomposition's root when A is singular (b lies in
    A's range for statistics of real rows, so nothing is lost).
    """
    d = A.shape[0]
    if d == 0:
        return np.zeros(0)
    try:
        R = scipy.linalg.cholesky(A, lower=False, check_finite=False)
        if _tri_rcond(R) ** 2 <= d * np.finfo(np.float64).eps * 1e2:
            raise np.linalg.LinAlgError("ill-conditioned")
        c = scipy.linalg.solve_triangular(R, b, trans="T", check_finite=False)
    except np.linalg.LinAlgError:
        evals, evecs = scipy.linalg.eigh(A, check_finite=False)
        keep = evals > max(evals[-1], 0.0) * d * np.finfo(np.float64).eps * 10
        if not keep.any():  # A = 0 (e.g. one row, centred): every x >= 0 is optimal
            return np.zeros(d)
        root = np.sqrt(evals[keep])
        R = root[:, None] * evecs[:, keep].T
        c = (evecs[:, keep].T @ b) / root
    x, _ = scipy.optimize.nnls(R, c, maxiter=max(50, 10 * d))
    return x


def _tri_rcond(R: np.ndarray) -> float:
    """Reciprocal 1-norm condition number of an upper-triangular factor R (d, d).

    LAPACK trcon's O(d²) estimate where scipy wraps it (scipy >= 1.14); on an
    older scipy, the value trcon estimates, 1 / (||R||_1 ||R⁻¹||_1), from the
    explicit inverse (trtri, d³/3 flops: no more than the Cholesky factor).
    """
    try:
        (trcon,) = scipy.linalg.get_lapack_funcs(("trcon",), (R,))
    except ValueError:  # "LAPACK function dtrcon could not be found"
        (trtri,) = scipy.linalg.get_lapack_funcs(("trtri",), (R,))
        R_inv, info = trtri(R, lower=0, unitdiag=0)
        if info != 0:  # a zero on the diagonal: R is singular
            return 0.0
        norm_R = np.abs(np.triu(R)).sum(axis=0).max()
        norm_inv = np.abs(np.triu(R_inv)).sum(axis=0).max()
        rcond = 1.0 / (norm_R * norm_inv)
        return float(rcond) if np.isfinite(rcond) else 0.0
    rcond, info = trcon(R, norm="1", uplo="U", diag="N")
    return float(rcond) if info == 0 else 0.0


def needs_accurate_path(rcond_factor: float, max_digits_lost: float = 1.0) -> bool:
    """Whether the normal-equations answer may fall more than ``max_digits_lost``
    decimal digits short of a QR's, so the caller should take :func:`qr_lstsq`.

    ``rcond_factor`` is the reciprocal 1-norm condition estimate of the
    Cholesky factor of the equilibrated normal matrix (``D Cxx D``, ``D =
    diag(Cxx)**-1/2``, ridge term included), as :func:`equilibrated_cholesky_rcond`
    returns (0 when Cholesky fails): it estimates ``1 / cond(sqrt(w) (X - mean) D)``.
    """
    # Normal equations lose ~log10(kappa**2) digits, QR ~log10(kappa): the gap is log10(kappa).
    return not rcond_factor > 10.0 ** (-max_digits_lost)


def equilibrated_cholesky_rcond(A: np.ndarray) -> float:
    """Reciprocal condition estimate of the Cholesky factor of the
    equilibrated symmetric matrix ``A`` (d, d): the figure
    :func:`needs_accurate_path` takes. 0.0 when ``A`` is not positive definite.
    """
    A = np.asarray(A, dtype=np.float64)
    if A.shape[0] == 0:
        return 1.0
    diag = np.diag(A)
    if not np.all(diag > 0):
        return 0.0
    scale = 1.0 / np.sqrt(diag)
    try:
        c, _ = scipy.linalg.cho_factor(
            A * scale[:, None] * scale[None, :], lower=False, check_finite=False
        )
    except np.linalg.LinAlgError:
        return 0.0
    return _tri_rcond(c)
