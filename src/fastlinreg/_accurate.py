"""LAPACK-grade least squares: a streaming TSQR whose R factors merge like the statistics.

The exact solver's normal equations (Cholesky of ``Cxx``) lose about
``log10(cond(A)**2)`` digits; a QR of the weighted design ``A`` loses about
``log10(cond(A))``. This module is the accurate path: one pass over row blocks
of X, each block folded into a small triangular factor by Householder QR
(LAPACK ``geqrf``), so memory stays ``O(block_rows * d)`` and two factors of
disjoint rows merge into the factor of their union, as
:meth:`fastlinreg.SufficientStats.merge` does for the statistics. Plain
numpy/scipy; nothing here calls the compiled kernels.

Columns of the factored matrix are ``[sqrt(w), sqrt(w) X, sqrt(w) Y]`` (the
first only with an intercept). A Householder step on the ``sqrt(w)`` column
centres the rest implicitly, so the trailing block of ``R`` is the factor of
the centred problem (``T^T T = [[Cxx, Cxy], [Cxy^T, Cyy]]``) and its first row
holds the weighted means: the intercept is recovered exactly as
``mean_y - mean_x @ coef``, and the minimum-norm fallback penalises ``coef``
only, as ``SufficientStats.solve`` does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg
from scipy.linalg import lapack

from ._stats import _tri_rcond

__all__ = [
    "QRFactor",
    "qr_lstsq",
    "refine_solution",
]

_EPS = np.finfo(np.float64).eps
# A block of about 2**21 float64 (16 MiB): large enough for geqrf's level-3
# updates to dominate, small enough that no copy of X is ever large.
_BLOCK_ELEMENTS = 1 << 21


@dataclass(frozen=True)
class QRFactor:
    """Triangular factor of the weighted, intercept-augmented design: the
    QR analogue of :class:`fastlinreg.SufficientStats`.

    Attributes
    ----------
    R : ndarray of shape (m, m), m = fit_intercept + n_features + n_targets
        Upper triangular with a non-negative diagonal, ``R^T R = A^T A`` for
        ``A = [sqrt(w), sqrt(w) X, sqrt(w) Y]`` (no ``sqrt(w)`` column
        without an intercept). Only ``A^T A`` is determined by the rows, so
        factors merge exactly (up to rounding) in any order or grouping.
    weight_sum : float
        Sum of the sample weights.
    n_samples : int
        Rows with a positive weight.
    n_features : int
    fit_intercept : bool

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X, y = rng.normal(size=(100, 3)), rng.normal(size=(100, 1))
    >>> a = QRFactor.from_arrays(X[:40], y[:40])
    >>> b = QRFactor.from_arrays(X[40:], y[40:])
    >>> both = QRFactor.from_arrays(X, y)
    >>> bool(np.allclose(a.merge(b).R, both.R))
    True
    """

    R: np.ndarray
    weight_sum: float
    n_samples: int
    n_features: int
    fit_intercept: bool = True

    @property
    def n_targets(self) -> int:
        return self.R.shape[1] - self.n_features - int(self.fit_intercept)

    @classmethod
    def empty(cls, n_features: int, n_targets: int, fit_intercept: bool = True) -> QRFactor:
        """The factor of no rows: the identity of :meth:`merge`."""
        m = int(fit_intercept) + n_features + n_targets
        return cls(np.zeros((m, m)), 0.0, 0, n_features, fit_intercept)

    @classmethod
    def from_arrays(
        cls, X, Y, sample_weight=None, *, fit_intercept: bool = True, block_rows: int | None = None
    ) -> QRFactor:
        """Factor of the rows of ``X`` (n, d) float32/float64, any layout, and
        ``Y`` (n,) or (n, k), in one read of X by blocks of ``block_rows``
        rows, each copied once as float64 (never the whole X)."""
        X = np.asarray(X)
        if X.ndim != 2:
            raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {X.shape}")
        Y = np.asarray(Y, dtype=np.float64)
        if Y.ndim == 1:
            Y = Y.reshape(-1, 1)
        n, d = X.shape
        k = Y.shape[1]
        if Y.shape[0] != n:
            raise ValueError(f"X has {n} rows but Y has {Y.shape[0]}")
        if sample_weight is None:
            sw = None
            weight_sum, n_pos = float(n), n
        else:
            w = np.asarray(sample_weight, dtype=np.float64).reshape(-1)
            if w.shape[0] != n:
                raise ValueError(f"sample_weight has {w.shape[0]} entries for {n} rows")
            if not (np.all(np.isfinite(w)) and np.all(w >= 0)):
                raise ValueError("sample_weight must be finite and non-negative")
            sw = np.sqrt(w)
            weight_sum, n_pos = float(w.sum()), int(np.count_nonzero(w))
        p0 = int(fit_intercept)
        m = p0 + d + k
        if block_rows is None:
            block_rows = max(_BLOCK_ELEMENTS // max(m, 1), 2 * m, 1)
        block_rows = int(max(1, min(block_rows, max(n, 1))))
        # One Fortran buffer reused for every block: [R so far; the block's rows].
        buf = np.zeros((m + block_rows, m), order="F")
        R = np.zeros((m, m))
        for start in range(0, n, block_rows):
            stop = min(start + block_rows, n)
            b = stop - start
            rows = buf[: m + b]
            rows[:m] = R
            s = None if sw is None else sw[start:stop, None]
            if p0:
                rows[m:, 0] = 1.0 if s is None else s[:, 0]
            if s is None:
                rows[m:, p0 : p0 + d] = X[start:stop]
                rows[m:, p0 + d :] = Y[start:stop]
            else:
                np.multiply(X[start:stop], s, out=rows[m:, p0 : p0 + d])
                np.multiply(Y[start:stop], s, out=rows[m:, p0 + d :])
            R = _triangular_factor(rows)
        return cls(R, weight_sum, n_pos, d, bool(fit_intercept))

    def merge(self, other: QRFactor) -> QRFactor:
        """Factor of the rows of both: ``R`` of ``[R_self; R_other]``, equal to
        factoring the concatenated rows (up to rounding)."""
        if (self.n_features, self.n_targets, self.fit_intercept) != (
            other.n_features,
            other.n_targets,
            other.fit_intercept,
        ):
            raise ValueError(
                "cannot merge QR factors of different shapes: "
                f"{self.n_features} features/{self.n_targets} targets/intercept "
                f"{self.fit_intercept} with {other.n_features}/{other.n_targets}/"
                f"{other.fit_intercept}"
            )
        R = _triangular_factor(np.vstack([self.R, other.R]))
        return QRFactor(
            R,
            self.weight_sum + other.weight_sum,
            self.n_samples + other.n_samples,
            self.n_features,
            self.fit_intercept,
        )

    __add__ = merge

    def _centred(self) -> np.ndarray:
        """Factor (d+k, d+k) of the centred, weighted ``[X, Y]``."""
        p0 = int(self.fit_intercept)
        return self.R[p0:, p0:]

    def solve(self, alpha: float = 0.0, *, return_rank: bool = False):
        """Minimiser of ``sum w (X coef + b - y)^2 / (2 sum w) + alpha/2 |coef|^2``.

        Returns ``(coef (d, k), intercept (k,))``, and the numerical rank of
        the (ridge-augmented) coefficient block with ``return_rank=True``. A
        triangular solve where that block is of full rank; otherwise the
        minimum-norm ``coef`` from its SVD (as ``numpy.linalg.lstsq``, with
        the same cutoff, ``max(n, d) * eps`` of the largest singular value).
        The intercept is ``mean_y - mean_x @ coef`` (zero without
        ``fit_intercept``).
        """
        coef, intercept, rank, _ = self._solve(alpha)
        return (coef, intercept, rank) if return_rank else (coef, intercept)

    def _solve(self, alpha: float):
        """``(coef, intercept, rank, R_full)``; R_full (p, p), p = fit_intercept + d,
        is the factor of the ridge-augmented design ``[1, X]``, for :func:`refine_solution`."""
        d, k = self.n_features, self.n_targets
        p0 = int(self.fit_intercept)
        T = self._centred()
        if alpha:
            # Ridge as d extra rows sqrt(alpha * sum w) [I, 0]: (Cxx + alpha W I) coef = Cxy.
            ridge = np.zeros((d, d + k))
            ridge[:, :d] = np.sqrt(alpha * self.weight_sum) * np.eye(d)
            T = _triangular_factor(np.vstack([T, ridge]))
        tol = max(self.n_samples + (d if alpha else 0), d, 1) * _EPS
        coef, rank = _min_norm_triangular_solve(T[:d, :d], T[:d, d:], tol)
        if self.fit_intercept and self.R[0, 0] > 0:
            r0 = self.R[0]
            intercept = (r0[1 + d :] - r0[1 : 1 + d] @ coef) / r0[0]
        else:
            intercept = np.zeros(k)
        # The ridge rows are zero in the intercept column, so they leave R's first row as it is.
        R_full = np.zeros((p0 + d, p0 + d))
        if p0:
            R_full[0] = self.R[0, : 1 + d]
        R_full[p0:, p0:] = T[:d, :d]
        return coef, intercept, rank, R_full

    def residual_sum_of_squares(self, coef: np.ndarray, intercept=None) -> np.ndarray:
        """``sum w (X coef + b - y)^2`` per target (k,), at the intercept
        that fits best for ``coef`` (``mean_y - mean_x @ coef``), without
        reading X. At the least-squares ``coef`` it is the squared norm of
        the factor's residual block: no cancellation, unlike ``Cyy - coef Cxy``.
        """
        d, k = self.n_features, self.n_targets
        coef = np.asarray(coef, dtype=np.float64).reshape(d, k)
        T = self._centred()
        E = T[:, :d] @ coef - T[:, d:]
        return np.einsum("ij,ij->j", E, E)

    def total_sum_of_squares(self) -> np.ndarray:
        """``sum w (y - mean_y)^2`` per target (k,) with an intercept,
        ``sum w y^2`` without (the denominators of R² as NIST defines it)."""
        cols = self.R[:, -self.n_targets :] if self.n_targets else self.R[:, :0]
        if self.fit_intercept:
            cols = cols[1:]
        return np.einsum("ij,ij->j", cols, cols)


def qr_lstsq(
    X,
    Y,
    sample_weight=None,
    alpha: float = 0.0,
    fit_intercept: bool = True,
    block_rows: int | None = None,
    refine: bool = True,
):
    """Weighted ridge least squares by a streaming Householder QR (TSQR).

    Minimises ``sum w (X coef + b - y)^2 / (2 sum w) + alpha/2 |coef|^2``
    with the accuracy of ``numpy.linalg.lstsq`` (digits lost ~ log10 of the
    condition number, not of its square), reading X once in blocks, and once
    more for the refinement step.

    Parameters
    ----------
    X : array of shape (n, d), float32 or float64, any memory layout
    Y : array of shape (n, k) or (n,), float64
    sample_weight : array of shape (n,) or None
        Non-negative weights.
    alpha : float
        Ridge strength (the penalty does not touch the intercept).
    fit_intercept : bool
    block_rows : int or None
        Rows per block (default: about 16 MiB of float64 per block).
    refine : bool
        One step of iterative refinement (:func:`refine_solution`): a second read of X.

    Returns
    -------
    coef : ndarray of shape (d, k)
    intercept : ndarray of shape (k,)
        Zero without ``fit_intercept``.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(21.0)
    >>> X = np.vander(x, 6, increasing=True)[:, 1:]
    >>> coef, intercept = qr_lstsq(X, X.sum(1, keepdims=True) + 1.0)  # NIST Wampler1
    >>> bool(np.allclose(coef, 1.0, rtol=1e-12) and np.allclose(intercept, 1.0, rtol=1e-12))
    True
    """
    factor = QRFactor.from_arrays(
        X, Y, sample_weight, fit_intercept=fit_intercept, block_rows=block_rows
    )
    if not refine:
        return factor.solve(alpha)
    return refine_solution(factor, X, Y, sample_weight, alpha=alpha, block_rows=block_rows)


def refine_solution(
    factor: QRFactor, X, Y, sample_weight=None, *, alpha: float = 0.0, block_rows: int | None = None
):
    """The factor's solution after one step of iterative refinement.

    Semi-normal equations (Björck): with ``z = [b; coef]``, the residual
    ``r = y - [1, X] z`` and the gradient ``g = [1, X]^T W r - alpha W [0; coef]``
    are accumulated in long double over row blocks of X (a second read), and
    ``z += R^-1 R^-T g`` with the factor's ``R``. A float64 residual would
    carry an error of ``eps |y|``, as large as the error being corrected; the
    extended one lets a step recover up to ~4 more digits where
    ``cond(R)**2 * eps < 1`` (NIST Wampler1-5). Without long double (where it
    is float64) the step is harmless. Rank-deficient systems are returned
    unrefined (their minimum-norm answer is not the one the step converges to).

    Returns ``(coef (d, k), intercept (k,))``.
    """
    coef, intercept, rank, R_full = factor._solve(alpha)
    d, k = factor.n_features, factor.n_targets
    if rank < d or factor.n_samples == 0:
        return coef, intercept
    X = np.asarray(X)
    Y = np.asarray(Y, dtype=np.float64).reshape(X.shape[0], -1)
    w = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    n = X.shape[0]
    if block_rows is None:
        block_rows = max(_BLOCK_ELEMENTS // max(d + k, 1), 1)
    ld = np.longdouble
    coef_l, intercept_l = coef.astype(ld), intercept.astype(ld)
    g_x, g_b = np.zeros((d, k), dtype=ld), np.zeros(k, dtype=ld)
    for start in range(0, n, int(block_rows)):
        stop = min(start + int(block_rows), n)
        xb = X[start:stop].astype(ld)
        r = Y[start:stop] - xb @ coef_l - intercept_l
        if w is not None:
            r *= w[start:stop, None]
        g_x += xb.T @ r
        g_b += r.sum(axis=0)
    g = np.asarray(g_x, dtype=np.float64)
    if alpha:
        g -= alpha * factor.weight_sum * coef
    if factor.fit_intercept:
        g = np.vstack([np.asarray(g_b, dtype=np.float64)[None, :], g])
    dz = scipy.linalg.solve_triangular(
        R_full,
        scipy.linalg.solve_triangular(R_full, g, trans="T", check_finite=False),
        check_finite=False,
    )
    if factor.fit_intercept:
        return coef + dz[1:], intercept + dz[0]
    return coef + dz, intercept


def _triangular_factor(A: np.ndarray) -> np.ndarray:
    """R (m, m) of the QR of ``A`` (r >= m rows, m columns) with a
    non-negative diagonal; ``A`` (float64, Fortran order) is overwritten."""
    r, m = A.shape
    if m == 0:
        return np.zeros((0, 0))
    a = np.asfortranarray(A, dtype=np.float64)
    (geqrf,) = lapack.get_lapack_funcs(("geqrf",), (a,))
    qr, _tau, _work, info = geqrf(a, overwrite_a=True)
    if info != 0:
        raise np.linalg.LinAlgError(f"geqrf failed (info={info})")
    R = np.triu(qr[:m])
    # R is unique up to the signs of its rows: fix them, so factors compare and merge alike.
    R *= np.where(np.diag(R) < 0, -1.0, 1.0)[:, None]
    return R


def _min_norm_triangular_solve(T11: np.ndarray, T12: np.ndarray, tol: float):
    """Solve ``T11 x = T12`` for upper-triangular T11 (d, d); returns ``(x, rank)``.

    Back substitution when T11, with its columns scaled to unit norm, has a
    reciprocal condition above ``tol`` (column scaling does not change a
    triangular solve's accuracy, so units must not trigger the fallback).
    Otherwise the minimum-norm solution in the caller's coordinates, from
    the SVD with singular values below ``tol * s_max`` dropped.
    """
    d = T11.shape[0]
    if d == 0:
        return np.zeros((0, T12.shape[1])), 0
    norms = np.sqrt(np.einsum("ij,ij->j", T11, T11))
    if np.all(norms > 0) and np.all(np.isfinite(T11)):
        if _tri_rcond(T11 / norms[None, :]) > tol:
            x = scipy.linalg.solve_triangular(T11, T12, lower=False, check_finite=False)
            return x, d
    U, s, Vt = scipy.linalg.svd(T11, check_finite=False, lapack_driver="gesvd")
    keep = s > tol * (s[0] if s.size else 0.0)
    inv = np.where(keep, 1.0 / np.where(keep, s, 1.0), 0.0)
    return Vt.T @ (inv[:, None] * (U.T @ T12)), int(np.count_nonzero(keep))
