"""The penalised mean loss over flat parameters: what ``lbfgs`` and ``newton``
minimise, and the check that an unpenalised classifier has a minimum."""

from __future__ import annotations

import numpy as np

from ..exceptions import ConvergenceWarning, warn_caller


class Objective:
    """``f(W, b) = sum_i w_i loss_i / sum_i w_i + alpha/2 ||W||²`` of a problem.

    The parameters are flat: ``x = [W.ravel() (d·k, row-major), b (k)]``, the
    intercepts only with ``fit_intercept``. Each :meth:`value_and_grad` is one
    fused pass of the backend (one read of X); ``passes`` counts them.

    Parameters
    ----------
    backend : module
        A backend (fastlinreg.backends).
    problem : Problem
        Rows, targets (n, k), weights and the loss.
    alpha : float
        L2 penalty on W (the intercepts are not penalised).
    fit_intercept : bool
    """

    def __init__(self, backend, problem, alpha: float, fit_intercept: bool):
        # A backend whose rows live elsewhere (dask) holds them for the many passes.
        hold = getattr(backend, "hold", None)
        self.backend, self.problem = backend, problem if hold is None else hold(problem)
        self.alpha, self.fit_intercept = float(alpha), bool(fit_intercept)
        self.d, self.k = problem.X.shape[1], problem.Y.shape[1]
        self.passes = 0
        self.last = None  # (x, f, grad) of the latest evaluation

    @property
    def size(self) -> int:
        return self.d * self.k + (self.k if self.fit_intercept else 0)

    def pack(self, W, b) -> np.ndarray:
        """x from (W (d, k), b (k))."""
        parts = [np.asarray(W, dtype=np.float64).ravel()]
        if self.fit_intercept:
            parts.append(np.asarray(b, dtype=np.float64).ravel())
        return np.concatenate(parts)

    def unpack(self, x) -> tuple[np.ndarray, np.ndarray]:
        """(W (d, k), b (k)) from x."""
        dk = self.d * self.k
        W = x[:dk].reshape(self.d, self.k)
        b = x[dk:].copy() if self.fit_intercept else np.zeros(self.k)
        return W, b

    def value_and_grad(self, x) -> tuple[float, np.ndarray]:
        """(f, ∇f) at x: one fused pass."""
        W, b = self.unpack(x)
        loss, G, gb = self.backend.fused_pass(self.problem, W, b)
        self.passes += 1
        f = float(loss) + 0.5 * self.alpha * float(np.dot(x[: W.size], x[: W.size]))
        grad = self.pack(G + self.alpha * W, gb)
        self.last = (x, f, grad)
        return f, grad

    def hessian(self, x) -> np.ndarray:
        """∇²f at x, (size, size): one more pass over X (the backend's
        weighted Gram, not fused with the gradient's pass)."""
        W, b = self.unpack(x)
        H = self.backend.hessian(self.problem, W, b)
        self.passes += 1
        return self._penalised_hessian(H)

    @property
    def fuses_hessian(self) -> bool:
        """True when one pass of the backend gives the Hessian with the gradient."""
        return hasattr(self.backend, "fused_hessian")

    def value_grad_hessian(self, x) -> tuple[float, np.ndarray, np.ndarray]:
        """(f, ∇f, ∇²f) at x: one pass where the backend fuses them
        (``fused_hessian``), else the fused pass and :meth:`hessian`."""
        if not self.fuses_hessian:
            f, grad = self.value_and_grad(x)
            return f, grad, self.hessian(x)
        W, b = self.unpack(x)
        loss, G, gb, H = self.backend.fused_hessian(self.problem, W, b)
        self.passes += 1
        f = float(loss) + 0.5 * self.alpha * float(np.dot(x[: W.size], x[: W.size]))
        grad = self.pack(G + self.alpha * W, gb)
        self.last = (x, f, grad)
        return f, grad, self._penalised_hessian(H)

    def _penalised_hessian(self, H: np.ndarray) -> np.ndarray:
        dk = self.d * self.k
        H[np.arange(dk), np.arange(dk)] += self.alpha
        return H if self.fit_intercept else H[:dk, :dk]


def warn_if_separable(objective: Objective, W, b, solver: str, max_iter: int) -> None:
    """With no penalty, rows that the model classifies all correctly are
    linearly separable: the loss has no minimum (it falls towards 0 as the
    coefficients grow), so no solver can converge. Say so."""
    if objective.alpha > 0 or not np.all(np.isfinite(W)):
        return
    problem, backend = objective.problem, objective.backend
    if hasattr(backend, "separated"):  # rows held elsewhere (dask): each block checked there
        apart = backend.separated(problem, W, b)
    else:
        P = backend.predict(problem.X, W, b, problem.n_jobs)
        apart = separated(P, problem.Y, problem.sample_weight)
    if apart:
        warn_caller(
            f"The classes are linearly separable, so with penalty=None the loss has no "
            f"minimum: its coefficients grow without bound. solver={solver!r} stopped after "
            f"max_iter={max_iter} or when the loss stopped falling; the model separates the "
            "training rows but its scale is arbitrary. Use penalty='l2' (a finite C) for a "
            "unique model.",
            ConvergenceWarning,
        )


def separated(P, Y, w) -> bool:
    """Whether the logits P (n, k) put every row of positive weight on its own
    class's side (Y (n, k) as the fused pass takes it, w (n,) or None)."""
    if Y.shape[1] == 1:
        margin = np.where(Y[:, 0] > 0.5, P[:, 0], -P[:, 0])
    else:
        true = (P * Y).sum(axis=1)
        margin = true - np.where(Y > 0.5, -np.inf, P).max(axis=1, initial=-np.inf)
    return bool(np.all((margin > 0) | ((w == 0) if w is not None else False)))
