"""Sparse X as every backend reads it: CSR, float32/float64, canonical.

scipy.sparse matrices and sparse arrays of any format are taken. CSR with
float data and no duplicate entries is used as is (never densified, never
copied); CSC and the other formats are converted to CSR once, which copies
the index structure and the values (scikit-learn's estimators do the same).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse

__all__ = ["is_sparse", "as_csr", "stats_rows_per_block"]


def is_sparse(X) -> bool:
    """True for a scipy.sparse matrix or sparse array."""
    return scipy.sparse.issparse(X)


def as_csr(X):
    """X (sparse) as CSR with float32/float64 data and no duplicate entries."""
    if X.format != "csr":
        X = X.tocsr()  # CSC, COO, ...: one conversion, a copy
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float64)
    if not X.has_canonical_format:
        X = X.copy()  # the user's arrays are never modified
        X.sum_duplicates()
    if X.indices.dtype != X.indptr.dtype:
        index = np.promote_types(X.indices.dtype, X.indptr.dtype)
        X = X.copy()
        X.indices, X.indptr = X.indices.astype(index), X.indptr.astype(index)
    return X


def stats_rows_per_block(X, n_targets: int, work: float) -> int:
    """Rows per call of the statistics pass over CSR ``X`` (n, d).

    A row of r stored values costs r (r + 1) / 2 products for XᵀX's upper
    triangle and r k for XᵀY; a call holds about ``work`` of them (so that
    Python hears Ctrl-C between calls), and at least 64 d (d + k), so that
    each call's O(d²) outputs and their merge stay a small part of it. The
    blocks depend on X's row lengths only, never on the thread count.
    """
    n, d = X.shape
    floor = max(work, 64.0 * d * (d + n_targets))
    lengths = np.diff(X.indptr)
    # The longest row bounds the products (equals them when rows are of one
    # length); where the bound fits one call, X is one call whatever the
    # exact count, a float pass over every row, would say.
    longest = float(lengths.max()) if n else 0.0
    products = float(X.nnz) * ((longest + 1.0) / 2.0 + n_targets)
    if products > floor:
        lengths = lengths.astype(np.float64)
        products = float(lengths @ (lengths + 1.0)) / 2.0 + float(X.nnz) * n_targets
    per_row = max(1.0, products / max(1, n))
    return max(1024, int(floor / per_row))
