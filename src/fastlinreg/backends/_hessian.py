"""The Hessian of a problem's mean loss, by numpy BLAS over blocks of rows.

The reference backend's Hessian, and the cpu backend's for sparse X (its
dense rows take the compiled Newton pass, hessian.hpp, which gives the
Hessian with the loss and gradient in one read): one more read of X.
Blocks are converted to dense float64, so a float32 X accumulates in double.
"""

from __future__ import annotations

import numpy as np

from ._csr import is_sparse
from ._protocol import Problem

# Rows per block: a float64 copy of 8192 rows of 100 columns is 6.5 MB.
_BLOCK_ELEMENTS = 1 << 20


def mean_loss_hessian(problem: Problem, W, b) -> np.ndarray:
    """∇² of ``sum_i w_i loss_i / sum_i w_i`` in ``[W.ravel() (d·k), b (k)]``.

    The (j, q), (j', q') entry is ``sum_i w_i x̃_ij x̃_ij' D_i[q, q'] / sum w``
    with x̃_i = [x_i, 1] and D_i the loss's k x k second derivative in the
    row's predictions (``Loss.hessian_weights``). Returns a fresh
    ((d + 1)·k, (d + 1)·k) float64 array.
    """
    X = problem.X
    n, d = X.shape
    W, b = np.asarray(W, dtype=np.float64), np.asarray(b, dtype=np.float64)
    k = b.shape[0]
    w = np.ones(n) if problem.sample_weight is None else np.asarray(problem.sample_weight)
    H = np.zeros((d + 1, k, d + 1, k))
    rows = max(1, _BLOCK_ELEMENTS // max(1, d))
    with np.errstate(all="ignore"):
        for start in range(0, n, rows):
            Xb = X[start : start + rows]
            Xb = np.asarray(Xb.toarray() if is_sparse(Xb) else Xb, dtype=np.float64)
            Xa = np.hstack([Xb, np.ones((Xb.shape[0], 1))])
            Yb = problem.Y[start : start + rows]
            D = problem.loss.hessian_weights(Xb @ W + b, Yb) * w[start : start + rows, None, None]
            for q in range(k):
                for r in range(q, k):
                    block = (Xa * D[:, q, r, None]).T @ Xa
                    H[:, q, :, r] += block
                    if r != q:
                        H[:, r, :, q] += block
    H = H.reshape((d + 1) * k, (d + 1) * k) / problem.weight_sum
    return 0.5 * (H + H.T)
