"""lbfgs's start on many rows: L-BFGS on a strided subsample of the rows to a
loose tolerance, then that subsample's Hessian as a preconditioner for the
L-BFGS on all rows.

From a cold start L-BFGS spends its first iterations learning the curvature,
each one a pass over all of X. A subsample of every STRIDE-th row has nearly
the same optimum and Hessian (their errors shrink as 1/sqrt(rows)), at a
STRIDE-th of the cost per pass. L-BFGS on all rows then runs in the variables
z of ``x = x0 + s L^-T z`` (``L L^T`` the subsample's Hessian at its
optimum x0): there the Hessian is close to ``s² I``, and ``s`` makes the
first, unit-length step the Newton step. The stopping rule stays the plain
run's: the largest component of the gradient in x (the caller checks it after
each iteration) and the same objective values for ``ftol``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla
from scipy.optimize import minimize

from ..backends import Problem
from .objective import Objective

STRIDE = 10  # every STRIDE-th row
SUB_TOL = 1e-3  # the subsample fit's gtol: loose, its optimum is 1/sqrt(rows) off anyway
MAX_PARAMETERS = 256  # above: the subsample's Hessian costs more than the passes it saves
# The subsample's rows at least: 5000, and 500 a parameter (at 100 a parameter
# its optimum is too far off to save any iteration on all rows: measured).
MIN_SUBSAMPLE_ROWS = 5000
ROWS_PER_PARAMETER = 500
# The Hessian from this many of the subsample's rows (at least 100 a parameter):
# at 20000 of n = 1e6 (d = 100) all rows need 3 iterations to tol 1e-5, at 50000 two.
HESSIAN_ROWS = 50000


@dataclass
class Preconditioner:
    """``x(z) = x0 + scale · L^-T z``, and the gradient in z of a gradient in x."""

    x0: np.ndarray
    factor: np.ndarray  # L, lower triangular
    scale: float

    def x(self, z: np.ndarray) -> np.ndarray:
        return self.x0 + sla.solve_triangular(self.factor, z * self.scale, lower=True, trans="T")

    def grad(self, g: np.ndarray) -> np.ndarray:
        return sla.solve_triangular(self.factor, g, lower=True) * self.scale


def applies(objective: Objective, x0: np.ndarray) -> bool:
    """Binary (k = 1), L2-penalised, dense X of enough rows, a cold start."""
    problem = objective.problem
    n = problem.X.shape[0] if hasattr(problem.X, "shape") else 0
    return (
        isinstance(problem.X, np.ndarray)
        and objective.k == 1
        and objective.alpha > 0
        and objective.size <= MAX_PARAMETERS
        and n // STRIDE >= max(MIN_SUBSAMPLE_ROWS, ROWS_PER_PARAMETER * objective.size)
        and not np.any(x0)
    )


def subsample(problem: Problem, stride: int) -> Problem:
    """Every stride-th row: a view of X (no copy), contiguous targets and weights."""
    sw = problem.sample_weight
    sub_sw = None if sw is None else np.ascontiguousarray(sw[::stride])
    Y = np.ascontiguousarray(problem.Y[::stride])
    total = float(Y.shape[0]) if sub_sw is None else float(sub_sw.sum())
    return Problem(problem.X[::stride], Y, sub_sw, total, problem.loss, problem.n_jobs)


def precondition(objective: Objective, x0: np.ndarray, max_iter: int) -> Preconditioner | None:
    """The subsample's optimum and Hessian factor, with the scale set by the
    gradient of all rows there (evaluated now: the caller's first evaluation
    finds it in ``objective.last``). None where the subsample gives nothing
    usable (no positive weight, a non-finite result, a Hessian that is not
    positive definite): the caller then starts plainly from x0."""
    sub_problem = subsample(objective.problem, STRIDE)
    if not sub_problem.weight_sum > 0:
        return None
    sub = Objective(objective.backend, sub_problem, objective.alpha, objective.fit_intercept)
    res = minimize(
        sub.value_and_grad,
        x0,
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": max_iter, "maxls": 50, "gtol": SUB_TOL, "ftol": 1e-10},
    )
    if not np.all(np.isfinite(res.x)):
        return None
    # Its error shrinks as sqrt(parameters / rows): fewer rows than the fit's do.
    rows = max(HESSIAN_ROWS, 100 * objective.size)
    few = subsample(sub_problem, max(1, sub_problem.X.shape[0] // rows))
    if not few.weight_sum > 0:
        return None
    H = Objective(objective.backend, few, objective.alpha, objective.fit_intercept).hessian(res.x)
    try:
        factor = np.linalg.cholesky(H)
    except np.linalg.LinAlgError:
        return None
    _, g = objective.value_and_grad(res.x)
    scale = float(np.linalg.norm(sla.solve_triangular(factor, g, lower=True)))
    if not (np.isfinite(scale) and np.all(np.isfinite(factor))) or scale == 0.0:
        return None
    return Preconditioner(res.x, factor, scale)
