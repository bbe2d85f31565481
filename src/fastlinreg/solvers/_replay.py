"""Gradient descent with a fixed step on the squared loss, in closed form.

A backend with ``replay_descent`` (cpu: cpp/src/replay.cpp, the same rules
on the statistics alone, in one call) answers for a scalar penalty; this
module's numpy version answers otherwise.

Plain gradient descent on (W, b) with step η is linear: with H the Hessian
of the mean loss in θ = (W, b) (from the sufficient statistics) and
H = Q diag(λ) Qᵀ, the gradient after t steps is Q (rᵗ ∘ u₀) with
r = 1 - ηλ and u₀ = Qᵀ∇₀, so

    θ_T  = θ₀ - Q diag((1 - r^T) / λ) u₀,
    ‖∇_t‖² = Σ r^{2t} u₀²,
    loss_t = loss_∞ + ½ Σ (u₀² / λ) r^{2t},

where ∇₀, loss₀ and loss_∞ (at θ₀ - Q(u₀/λ)) come from the backend's own
fused pass, so the gradient at the start is the one the step loop sees.
The whole curve costs O(√T) powers and one (T/m × modes) @ (modes × m)
product instead of T dependent steps.

:func:`run` returns None, and the caller runs the step loop, wherever the
closed form cannot certify the loop's result cheaply: a step within 1e-6
of instability or a diverging one (the loop's GrowthWatch decides those),
H too ill-conditioned for 1e-9 agreement, a start already at rounding
level, or a ``tol`` crossing within the loop's rounding of the threshold.
Otherwise no divergence rule can fire: for |r| < 1 the loss never rises.
"""

from __future__ import annotations

import math

import numpy as np

from ..backends import DescentConfig, Status
from . import descent, exact
from ._common import FitResult, Settings, Stream, raise_not_finite, warn_max_iter

__all__ = ["fit_tiny", "run", "hessian"]

_EPS = float(np.finfo(np.float64).eps)
# |1 - ηλ| must stay this far below 1: nearer, rounding may grow the loss.
_STABILITY_MARGIN = 1e-6
# λmax / λmin above this and θ's rounding (κ·eps) nears 1e-9 of the loop's.
_MAX_CONDITION = 1e6
# How far the loop's gradient norm may sit from the exact one, in units of
# eps times the magnitudes it cancels (a generous bound on its rounding).
_NORM_ROUNDINGS = 1e3
# The t = 0 loss from the closed form must match the pass's within this.
_SELF_CHECK = 1e-8


def hessian(stats, alpha: float, fit_intercept: bool) -> tuple[np.ndarray, np.ndarray]:
    """(H (p, p), g (p, k)): the mean loss is ½θᵀHθ - gᵀθ + const in
    θ = [W; b] (p = d + 1 with an intercept, else d), penalty included."""
    d = stats.n_features
    p = d + 1 if fit_intercept else d
    H = np.empty((p, p))
    g = np.empty((p, stats.n_targets))
    m, my = stats.mean_x, stats.mean_y
    H[:d, :d] = stats.Cxx / stats.weight_sum + np.outer(m, m)
    H[:d, :d].flat[:: d + 1] += alpha
    g[:d] = stats.Cxy / stats.weight_sum + np.outer(m, my)
    if fit_intercept:
        H[:d, d] = H[d, :d] = m
        H[d, d] = 1.0
        g[d] = my
    return H, g


def _spectra(settings: Settings, stats):
    """[(λ (p,), Q (p, p), outputs)]: one eigendecomposition, or one per
    output when each has its own alpha."""
    alpha = settings.alpha
    if np.ndim(alpha) == 0:
        H, _ = hessian(stats, alpha, settings.fit_intercept)
        return [(*np.linalg.eigh(H), slice(None))]
    out = []
    for q, a in enumerate(alpha):
        H, _ = hessian(stats, float(a), settings.fit_intercept)
        out.append((*np.linalg.eigh(H), slice(q, q + 1)))
    return out


def _one_minus_power_over(lam: np.ndarray, eta: float, T: int) -> np.ndarray:
    """(1 - (1 - ηλ)^T) / λ for |1 - ηλ| <= 1, without cancellation for
    small ηλ (ηT at λ = 0)."""
    x = eta * lam
    small = -np.expm1(T * np.log1p(-np.minimum(x, 0.5)))  # 1 - r^T where r > 1/2
    top = np.where(x < 0.5, small, 1.0 - np.power(1.0 - x, T))
    zero = lam == 0.0
    return np.where(zero, eta * T, top / np.where(zero, 1.0, lam))


def _series(coef: np.ndarray, rate: np.ndarray, start: int, count: int) -> np.ndarray:
    """Σ_i coef_i · rate_i^t for t = start .. start + count - 1 (rate_i >= 0):
    rate^(start + m·a + b) = rate^(start + m·a) · rate^b, one small product."""
    m = max(1, math.isqrt(count - 1) + 1)
    rows = -(-count // m)
    A = np.power(rate, (start + m * np.arange(rows))[:, None]) * coef  # (rows, modes)
    B = np.power(rate[:, None], np.arange(m))  # (modes, m)
    return (A @ B).ravel()[:count]


def _first_below(coef, rate, threshold: float, T: int) -> int:
    """The first t in [1, T) with Σ coef·rate^t <= threshold (non-increasing
    in t), or T: a coarse search on a √T grid, then within one cell."""
    m = max(1, math.isqrt(T) + 1)
    grid = np.arange(0, T + m, m)
    below = np.flatnonzero(np.power(rate, grid[:, None]) @ coef <= threshold)
    if below.size == 0:
        return T
    j = int(below[0])
    if j == 0:  # a tie at t = 0, which the loop's own test decided: the caller's window catches it
        return 1
    lo = int(grid[j - 1]) + 1
    hits = np.flatnonzero(_series(coef, rate, lo, int(grid[j]) - lo + 1) <= threshold)
    return min(T, lo + int(hits[0])) if hits.size else min(T, int(grid[j]))


def fit_tiny(settings: Settings, backend, problem, W0, b0, previous=None) -> FitResult:
    """solver="auto" with a float step on a problem too small for a statistics
    pass to pay per step. The statistics cost nothing here: the trajectory
    follows from them in closed form (:func:`run`; the step loop where it
    cannot certify the result), and partial_fit continues from them. A
    backend with ``replay_rows`` (cpu) takes the pass and the closed form in
    one call: the same statistics and result, without the fixed cost of two."""
    fused = getattr(backend, "replay_rows", None)
    result = None
    if fused is None:
        stats = exact.statistics(backend, problem)
        if not settings.positive:
            result = run(settings, backend, problem, stats, W0, b0)
    else:
        config = _plain_config(settings)
        parts, finite, out = fused(problem, config, W0, b0)
        if not finite:
            raise_not_finite(problem.X)
        stats = exact.from_pass(problem, parts)
        if out is not None:
            return _compiled_result(settings, out, Stream("gram", out.b.shape[0], stats))
        if not settings.positive and np.ndim(settings.alpha) != 0:
            result = run(settings, backend, problem, stats, W0, b0)  # numpy's, per target
    if result is None:
        result = descent.run("gd", settings, backend, problem, None, W0, b0, previous)
    result.stream = Stream("gram", W0.shape[1], stats, converged=result.stream.converged)
    return result


def _plain_config(settings: Settings) -> DescentConfig:
    """The backend's replay parameters: a float step, no standardisation."""
    return DescentConfig(
        int(settings.max_iter),
        float(settings.learning_rate),
        settings.tol,
        settings.alpha,
        settings.fit_intercept,
        positive=settings.positive,
    )


def _compiled_result(settings: Settings, out, stream: Stream) -> FitResult:
    """A backend's replayed outcome as the step loop's FitResult, warning as
    it would; ``stream`` gets whether it converged."""
    stream.converged = converged = out.status == Status.CONVERGED
    if settings.tol is not None and not converged:
        warn_max_iter(settings)
    lr = float(settings.learning_rate)
    return FitResult("gd", out.W, out.b, out.n_iter, out.curve, lr, stream)


def run(settings: Settings, backend, problem, stats, W0, b0) -> FitResult | None:
    """The step loop's (W, b, n_iter, loss curve) for a float step on the
    squared loss, from the statistics in closed form; None where it cannot
    be certified (see the module docstring): then run the loop."""
    eta, T, fi = float(settings.learning_rate), int(settings.max_iter), settings.fit_intercept
    d, k = W0.shape
    compiled = getattr(backend, "replay_descent", None)
    if compiled is not None and np.ndim(settings.alpha) == 0:  # the same rules in C++
        out = compiled(stats, _plain_config(settings), W0, b0)
        return None if out is None else _compiled_result(settings, out, Stream("gd", k))
    spectra = _spectra(settings, stats)
    lam_all = np.concatenate([s[0] for s in spectra]) if len(spectra) > 1 else spectra[0][0]
    lo, hi = float(lam_all[0]) if len(spectra) == 1 else float(lam_all.min()), float(lam_all.max())
    if not (hi > 0 and lo >= hi / _MAX_CONDITION and eta * hi <= 2.0 * (1.0 - _STABILITY_MARGIN)):
        return None
    alpha = settings.alpha
    b0 = b0 if fi else np.zeros(k)
    loss0, G, gb = backend.fused_pass(problem, W0, b0)
    if np.any(alpha):
        G = G + alpha * W0
        loss0 += 0.5 * float(np.sum(alpha * W0 * W0))
    grad0 = np.vstack([G, gb]) if fi else G  # (p, k): the loop's first gradient
    theta0 = np.vstack([W0, b0]) if fi else W0
    norm0 = math.sqrt(float(np.vdot(grad0, grad0)))
    size = 0.5 * (float(np.trace(stats.Cyy)) / stats.weight_sum + _sq(stats.mean_y))
    if not (np.isfinite(loss0) and loss0 > 1e6 * _EPS * (size + hi * _sq(theta0))):
        return None  # a start at rounding level: the loop's rises are rounding's

    us = [(Q.T @ grad0[:, cols], lam, Q, cols) for lam, Q, cols in spectra]  # u = Qᵀ∇₀ (p, k')
    u2 = np.concatenate([np.einsum("ij,ij->i", u, u) for u, *_ in us])
    rate = np.square(1.0 - eta * lam_all)
    coef = u2 / lam_all
    newton = np.empty_like(grad0)  # H⁻¹∇₀: from θ₀ to the optimum
    for u, lam, Q, cols in us:
        newton[:, cols] = Q @ (u / lam[:, None])

    status, n_iter = Status.MAX_ITER, T
    if settings.tol is not None:
        if math.sqrt(norm0 * norm0) <= settings.tol * norm0:  # the loop's own test at t = 0
            status, n_iter = Status.CONVERGED, 1
        else:
            n_iter = _tol_stop(settings.tol, norm0, u2, rate, T, (stats, theta0, newton, eta, hi))
            if n_iter is None:
                return None
            status = Status.CONVERGED if n_iter <= T else Status.MAX_ITER
            n_iter = min(n_iter, T)

    # loss_∞ = loss₀ - ½Σu²/λ, unless that cancels: then a pass at θ₀ - H⁻¹∇₀.
    loss_inf = loss0 - 0.5 * float(coef.sum())
    if not loss_inf >= 1e-4 * loss0:
        theta_inf = theta0 - newton
        W_inf, b_inf = theta_inf[:d], theta_inf[d] if fi else np.zeros(k)
        loss_inf = backend.fused_pass(problem, W_inf, b_inf)[0]
        loss_inf += 0.5 * float(np.sum(alpha * W_inf * W_inf))
        if not abs(loss_inf + 0.5 * coef.sum() - loss0) <= _SELF_CHECK * loss0:
            return None
    curve = _series(coef, rate, 0, n_iter)
    curve *= 0.5
    curve += loss_inf
    curve[0] = loss0
    theta = theta0.copy()
    for u, lam, Q, cols in us:  # θ_T = θ₀ - Q diag((1 - r^T)/λ) u
        theta[:, cols] -= Q @ (_one_minus_power_over(lam, eta, n_iter)[:, None] * u)
    W, b = theta[:d], theta[d].copy() if fi else np.zeros(k)
    stream = Stream("gd", k, None, converged=status == Status.CONVERGED)
    if settings.tol is not None and status != Status.CONVERGED:
        warn_max_iter(settings)
    return FitResult("gd", np.ascontiguousarray(W), b, n_iter, curve, eta, stream)


def _sq(a) -> float:
    a = np.asarray(a)
    return float(np.vdot(a, a))


def _tol_stop(tol, norm0, u2, rate, T, magnitudes) -> int | None:
    """n_iter where the loop's tol rule stops (T + 1: never, within T), or
    None when the crossing lies within the loop's rounding of tol·‖∇₀‖."""
    # The loop's gradient is formed from residuals: its rounding is eps times
    # the magnitudes of g = Hθ - ∇, Hθ and the iterate's drift θ/η, generously.
    stats, theta0, newton, eta, hi = magnitudes
    theta_mag = math.sqrt(max(_sq(theta0), _sq(theta0 - newton)))
    g_mag = math.sqrt(_sq(stats.Cxy) / stats.weight_sum**2 + _sq(stats.mean_x) + _sq(stats.mean_y))
    noise = _NORM_ROUNDINGS * _EPS * (g_mag + hi * theta_mag + theta_mag / eta)
    target = tol * norm0
    t = _first_below(u2, rate, target * target, T)  # first t with ‖∇_t‖ <= target
    window = noise + 1e-7 * target
    if t < T:
        at = math.sqrt(max(float(_series(u2, rate, t, 1)[0]), 0.0))
        if at > target - window:
            return None
    before = math.sqrt(max(float(_series(u2, rate, t - 1, 1)[0]), 0.0))
    if before < target + window:
        return None
    return t + 1 if t < T else T + 1
