"""Newton's method with the full Hessian (IRLS), for problems whose
(d + 1)·k parameters are at most a few hundred.

Each iteration reads X once where the backend fuses the Hessian with the
loss and gradient (``fused_hessian``: the cpu backend's Newton pass gives
the weighted Gram XᵀDX in the same read), else twice (the fused pass and the
backend's ``hessian``). A backtracking line search keeps every step a
descent step: its full step is such a pass, whose Hessian the next
iteration reuses; shorter trial steps are plain fused passes (the Hessian
then costs one more pass at the accepted point).
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from ..exceptions import ConvergenceWarning, warn_caller
from ._common import FitResult, Settings, Stream
from .objective import Objective, warn_if_separable

_ARMIJO = 1e-4  # sufficient decrease, as a fraction of the predicted decrease
_MAX_HALVINGS = 30


def newton_step(H: np.ndarray, g: np.ndarray, objective: Objective) -> np.ndarray:
    """The Newton direction -H⁻¹g. The softmax loss is flat along adding one
    constant to every class's intercept; its gradient has no part along that
    direction, so adding the projector onto it to H picks the step with none
    either. Singular H otherwise (no penalty): the least-squares step."""
    k, dk = objective.k, objective.d * objective.k
    if k > 1 and objective.fit_intercept:
        H = H.copy()
        H[dk:, dk:] += 1.0 / k
    try:
        return -scipy.linalg.cho_solve(scipy.linalg.cho_factor(H), g)
    except (np.linalg.LinAlgError, ValueError):
        return -np.linalg.lstsq(H, g, rcond=None)[0]


def run(settings: Settings, backend, problem, W0, b0) -> FitResult:
    """Minimise the penalised mean loss from (W0, b0); stop when the largest
    gradient component is at most ``tol`` (scikit-learn's newton-cholesky rule)."""
    objective = Objective(backend, problem, settings.alpha, settings.fit_intercept)
    x = objective.pack(W0, b0)
    f, g, H = objective.value_grad_hessian(x)
    curve, converged, n_iter = [f], False, 0
    while n_iter < settings.max_iter:
        if float(np.max(np.abs(g), initial=0.0)) <= settings.tol:
            converged = True
            break
        step = newton_step(objective.hessian(x) if H is None else H, g, objective)
        slope = float(g @ step)
        if not slope < 0:  # rounding: no descent direction left
            converged = True
            break
        t = 1.0
        for _ in range(_MAX_HALVINGS):
            if t == 1.0 and objective.fuses_hessian:
                f_new, g_new, H_new = objective.value_grad_hessian(x + step)
            else:
                (f_new, g_new), H_new = objective.value_and_grad(x + t * step), None
            if np.isfinite(f_new) and f_new <= f + _ARMIJO * t * slope:
                break
            t *= 0.5
        else:  # no decrease at any step length: f is flat to rounding here
            converged = True
            break
        x, f, g, H = x + t * step, f_new, g_new, H_new
        curve.append(f)
        n_iter += 1
    W, b = objective.unpack(x)
    if not converged:
        warn_caller(
            f"newton reached max_iter={settings.max_iter} before the gradient fell to "
            f"tol={settings.tol}. Increase max_iter.",
            ConvergenceWarning,
        )
    else:
        warn_if_separable(objective, W, b, "newton", settings.max_iter)
    result = FitResult("newton", W, b, n_iter, np.asarray(curve[1:]), None)
    result.stream = Stream("newton", W.shape[1])
    return result
