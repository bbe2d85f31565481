"""L-BFGS on the fused pass: scipy's L-BFGS-B is the outer loop, each of its
function-and-gradient evaluations is one fused pass of the backend."""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize

from ..exceptions import ConvergenceWarning, warn_caller
from . import _warm
from ._common import FitResult, Settings, Stream
from .objective import Objective, warn_if_separable


def run(settings: Settings, backend, problem, W0, b0) -> FitResult:
    """Minimise the penalised mean loss from (W0, b0).

    scikit-learn's stopping rule for its own "lbfgs": ``gtol=tol`` (the
    largest gradient component, on this objective, which is scikit-learn's
    divided by ``C·sum(w)``), ``ftol=64·eps``, at most ``max_iter``
    iterations and 50 line-search steps each. On many rows of a binary
    problem the run starts from a subsample's fit, preconditioned by its
    Hessian (solvers/_warm.py), with the same stopping rule.
    """
    objective = Objective(backend, problem, settings.alpha, settings.fit_intercept)
    x0 = objective.pack(W0, b0)
    with _serial_blas():
        pre = (
            _warm.precondition(objective, x0, settings.max_iter)
            if _warm.applies(objective, x0)
            else None
        )
        if pre is None:
            x, status, nit, curve = _plain(objective, x0, settings)
        else:
            x, status, nit, curve = _preconditioned(objective, pre, settings)
    if not np.all(np.isfinite(x)):
        raise FloatingPointError(
            "L-BFGS produced non-finite coefficients; check X for NaN, inf or huge values "
            "(rescale it, e.g. with sklearn.preprocessing.StandardScaler)."
        )
    W, b = objective.unpack(x)
    if status == 1:
        warn_caller(
            f"lbfgs reached max_iter={settings.max_iter} before the gradient fell to "
            f"tol={settings.tol}. Increase max_iter, or scale the data "
            "(sklearn.preprocessing.StandardScaler).",
            ConvergenceWarning,
        )
    else:
        warn_if_separable(objective, W, b, "lbfgs", settings.max_iter)
    return FitResult("lbfgs", W, b, nit, np.asarray(curve), None, Stream("lbfgs", W.shape[1]))


_CONTROLLER: list = []  # threadpoolctl's view of the loaded BLAS, found once (~1 ms)


def _serial_blas():
    """A context in which BLAS runs on one thread. The outer loop's BLAS calls
    (L-BFGS-B's O(m·size) updates, the preconditioner's triangular solves)
    are microseconds of work: on more threads each wakes OpenBLAS's workers,
    which then spin against the fused pass's OpenMP threads (2-core EPYC,
    1010 parameters: 7 ms a setulb call instead of 0.03, and slower passes)."""
    from threadpoolctl import ThreadpoolController

    if not _CONTROLLER:
        _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0].limit(limits=1, user_api="blas")


def _options(settings: Settings, gtol: float) -> dict:
    return {
        "maxiter": settings.max_iter,
        "maxls": 50,
        "gtol": gtol,
        "ftol": 64 * np.finfo(float).eps,
    }


def _plain(objective: Objective, x0, settings: Settings):
    """(x, status, iterations, curve) of L-BFGS-B in the model's own variables."""
    curve: list[float] = []

    def record(xk):
        # L-BFGS-B evaluates each accepted iterate last, so the cached value is x_k's.
        last = objective.last
        curve.append(last[1] if last is not None and np.array_equal(last[0], xk) else np.nan)

    res = minimize(
        objective.value_and_grad,
        x0,
        jac=True,
        method="L-BFGS-B",
        callback=record,
        options=_options(settings, settings.tol),
    )
    return res.x, res.status, int(res.nit), curve


class _Converged(Exception):
    """Raised by the preconditioned run's callback when the gradient in x is small
    enough: scipy < 1.11 has no way for a callback to stop L-BFGS-B."""

    def __init__(self, z):
        super().__init__()
        self.z = z


def _preconditioned(objective: Objective, pre: _warm.Preconditioner, settings: Settings):
    """(x, status, iterations, curve) of L-BFGS-B in z, x = pre.x(z). scipy's
    own gradient test would read the gradient in z, so it is off (gtol 0) and
    the callback stops on the largest component of the gradient in x."""
    curve: list[float] = []
    first = objective.last  # precondition() evaluated all rows at pre.x0

    def value_and_grad(z):
        if not np.any(z):
            f, g = first[1], first[2]  # x(0) is x0: the evaluation already made
            objective.last = first
        else:
            f, g = objective.value_and_grad(pre.x(z))
        return f, pre.grad(g)

    def record(zk):
        # The plain ndarray form of the callback: every scipy the package supports calls it so.
        last = objective.last
        same = last is not None and np.array_equal(last[0], pre.x(zk))
        curve.append(last[1] if same else np.nan)
        if same and np.max(np.abs(last[2])) <= settings.tol:
            raise _Converged(np.array(zk))

    if np.max(np.abs(first[2])) <= settings.tol:
        return pre.x0, 0, 0, curve
    try:
        res = minimize(
            value_and_grad,
            np.zeros_like(pre.x0),
            jac=True,
            method="L-BFGS-B",
            callback=record,
            options=_options(settings, 0.0),
        )
    except _Converged as stop:
        return pre.x(stop.z), 0, len(curve), curve
    return pre.x(res.x), res.status, int(res.nit), curve
