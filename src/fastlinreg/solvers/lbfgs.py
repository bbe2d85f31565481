"""L-BFGS on the fused pass: scipy's L-BFGS-B is the outer loop, each of its
function-and-gradient evaluations is one fused pass of the backend."""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize

from ..exceptions import ConvergenceWarning, warn_caller
from ._common import FitResult, Settings, Stream
from .objective import Objective, warn_if_separable


def run(settings: Settings, backend, problem, W0, b0) -> FitResult:
    """Minimise the penalised mean loss from (W0, b0).

    scikit-learn's stopping rule for its own "lbfgs": ``gtol=tol`` (the
    largest gradient component, on this objective, which is scikit-learn's
    divided by ``C·sum(w)``), ``ftol=64·eps``, at most ``max_iter``
    iterations and 50 line-search steps each.
    """
    objective = Objective(backend, problem, settings.alpha, settings.fit_intercept)
    curve: list[float] = []

    def record(xk):
        # L-BFGS-B evaluates each accepted iterate last, so the cached value is x_k's.
        last = objective.last
        curve.append(last[1] if last is not None and np.array_equal(last[0], xk) else np.nan)

    x0 = objective.pack(W0, b0)
    res = minimize(
        objective.value_and_grad,
        x0,
        jac=True,
        method="L-BFGS-B",
        callback=record,
        options={
            "maxiter": settings.max_iter,
            "maxls": 50,
            "gtol": settings.tol,
            "ftol": 64 * np.finfo(float).eps,
        },
    )
    if not np.all(np.isfinite(res.x)):
        raise FloatingPointError(
            "L-BFGS produced non-finite coefficients; check X for NaN, inf or huge values "
            "(rescale it, e.g. with sklearn.preprocessing.StandardScaler)."
        )
    W, b = objective.unpack(res.x)
    if res.status == 1:
        warn_caller(
            f"lbfgs reached max_iter={settings.max_iter} before the gradient fell to "
            f"tol={settings.tol}. Increase max_iter, or scale the data "
            "(sklearn.preprocessing.StandardScaler).",
            ConvergenceWarning,
        )
    else:
        warn_if_separable(objective, W, b, "lbfgs", settings.max_iter)
    return FitResult(
        "lbfgs", W, b, int(res.nit), np.asarray(curve), None, Stream("lbfgs", W.shape[1])
    )
