"""The reference backend: every operation of the protocol in plain numpy,
float64, written for clarity, not speed.

The tests use it as the oracle the other backends are compared with, and it
is the template a new backend copies. Its loops follow the compiled ones
step for step (the same tests, the same step sizes, the same SGD row order),
so their results agree to rounding.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse

from ._csr import as_csr, is_sparse
from ._hessian import mean_loss_hessian
from ._protocol import (
    DescentConfig,
    DescentOutcome,
    Problem,
    SgdConfig,
    SgdOutcome,
    Status,
)

NAME = "reference"

# Like the compiled kernels, the reference lets NaN and inf flow into its
# results without warnings: the solvers test the results and say what failed.
_quiet = np.errstate(all="ignore")
_DIVERGENCE_FACTOR = 1e8  # loss > factor * first loss counts as divergence (descent.hpp)
# descent.hpp's and sgd.hpp's persistent-growth rules (GrowthWatch): rises in a
# row, the margin over the first loss, and the relative rise over their start.
_DESCENT_RULE = (8, 1e-3, 0.0)
_SGD_RULE = (3, 1e-3, 1.0)


class _GrowthWatch:
    """descent.hpp's GrowthWatch: `needed` rises in a row above a margin."""

    def __init__(self):
        self.rises, self.prev, self.base, self.started = 0, 0.0, 0.0, False

    def grew(self, loss, needed, margin, rel):
        if self.started and loss > self.prev:
            self.rises += 1
        else:
            self.rises, self.base, self.started = 0, loss, True
        self.prev = loss
        return self.rises >= needed and loss - self.base > margin + rel * abs(self.base)


def available() -> tuple[bool, str]:
    return True, ""


def prepare_X(X):
    return as_csr(X) if is_sparse(X) else np.asarray(X)


def _float64(X):
    """X in float64, C-ordered (so a layout never changes a bit of a product),
    or CSR (scipy's products keep it sparse)."""
    return as_csr(X).astype(np.float64) if is_sparse(X) else np.ascontiguousarray(X, np.float64)


def _weights(problem: Problem) -> np.ndarray:
    n = problem.X.shape[0]
    return np.ones(n) if problem.sample_weight is None else np.asarray(problem.sample_weight)


def _targets(problem: Problem, k: int) -> np.ndarray:
    n = problem.X.shape[0]
    return np.zeros((n, k)) if problem.Y is None else np.asarray(problem.Y, dtype=np.float64)


def _mean_pass(X, Y, w, wsum, loss, W, b):
    """(mean loss, G, gb) of ``loss`` at (W, b)."""
    P = X @ W + b
    D = w[:, None] * loss.derivative(P, Y)
    return float(w @ loss.value(P, Y)) / wsum, X.T @ D / wsum, D.sum(axis=0) / wsum


@_quiet
def fused_pass(problem: Problem, W, b):
    W, b = np.asarray(W, dtype=np.float64), np.asarray(b, dtype=np.float64)
    X = _float64(problem.X)
    return _mean_pass(
        X, _targets(problem, b.shape[0]), _weights(problem), problem.weight_sum, problem.loss, W, b
    )


@_quiet
def predict(X, W, b, n_jobs=None) -> np.ndarray:
    return _float64(X) @ np.asarray(W) + np.asarray(b)


@_quiet
def sufficient_stats(problem: Problem):
    X = _float64(problem.X)
    Y = np.asarray(problem.Y, dtype=np.float64)
    w = _weights(problem)
    ws = float(w.sum())
    if is_sparse(X):
        return _sparse_stats(X, Y, w, ws)
    mx, my = _mean(X, w, ws), _mean(Y, w, ws)
    Xc, Yc = X - mx, Y - my
    Cxx, Cyy = (w[:, None] * Xc).T @ Xc, (w[:, None] * Yc).T @ Yc
    # Exactly symmetric, as the statistics promise.
    return ws, mx, my, 0.5 * (Cxx + Cxx.T), (w[:, None] * Xc).T @ Yc, 0.5 * (Cyy + Cyy.T)


@_quiet
def column_moments(problem: Problem):
    X = _float64(problem.X)
    w = _weights(problem)
    ws = float(w.sum())
    if is_sparse(X):
        # Centred exactly: the stored entries, then the implicit zeros at -mean.
        mean = X.T @ w / ws
        C = X.tocoo()
        wr, d = w[C.row], X.shape[1]
        stored = np.bincount(C.col, wr * (C.data - mean[C.col]) ** 2, minlength=d)
        zeros = ws - np.bincount(C.col, wr, minlength=d)
        return ws, mean, (stored + zeros * mean**2) / ws
    mean = _mean(X, w, ws)
    return ws, mean, w @ (X - mean) ** 2 / ws


def _sparse_stats(X, Y, w, ws):
    """The statistics of CSR rows without centring X (that would densify it):
    Cxx = XᵀWX - ws·m mᵀ, Cxy = XᵀW(Y - my)."""
    mx, my = X.T @ w / ws, w @ Y / ws
    Xw = scipy.sparse.diags(w) @ X
    Cxx = (X.T @ Xw).toarray() - ws * np.outer(mx, mx)
    Yc = Y - my
    Cyy = (w[:, None] * Yc).T @ Yc
    return ws, mx, my, 0.5 * (Cxx + Cxx.T), np.asarray(Xw.T @ Yc), 0.5 * (Cyy + Cyy.T)


def _mean(X, w, ws):
    """Weighted column means, corrected once by the mean residual: exact to
    rounding, so a constant column's centred values are 0, as the kernels'."""
    mean = w @ X / ws
    return mean + w @ (X - mean) / ws


class _Map:
    """The model <-> descended map of types.hpp's Standardisation."""

    def __init__(self, c: DescentConfig | SgdConfig, d: int):
        self.shift = None if c.shift is None else np.asarray(c.shift)
        self.scale = None if c.scale is None else np.asarray(c.scale)
        self.fit_intercept = c.fit_intercept
        # A scale of +inf freezes a constant column at coefficient 0.
        self.frozen = np.zeros(d, bool) if self.scale is None else np.isinf(self.scale)

    def to_descended(self, W, b):
        W = np.where(self.frozen[:, None], 0.0, W)
        V = (
            np.where(self.frozen[:, None], 0.0, W * self.scale[:, None])
            if self.scale is not None
            else W
        )
        c = b + self.shift @ W if self.shift is not None else b.copy()
        return V, c if self.fit_intercept else np.zeros_like(b)

    def to_model(self, V, c):
        W = V * (1.0 / self.scale)[:, None] if self.scale is not None else V.copy()
        b = c - self.shift @ W if self.shift is not None else c.copy()
        return W, b if self.fit_intercept else np.zeros_like(c)

    def gradient(self, G, gb, W, alpha):
        """Raw mean gradient at (W, b) -> the gradient in (V, c)."""
        G = G + alpha * W
        if self.shift is not None and self.fit_intercept:
            G = G - np.outer(self.shift, gb)
        if self.scale is not None:
            G = np.where(self.frozen[:, None], 0.0, G / self.scale[:, None])
        return G, gb if self.fit_intercept else np.zeros_like(gb)


def _penalty(alpha, W) -> float:
    """alpha/2 |W|², alpha a float or one per output (k,); 0 without a penalty
    (a coefficient held at inf by a constant column must not make 0·inf)."""
    alpha = np.asarray(alpha)
    return 0.5 * float((alpha * W * W).sum()) if np.any(alpha) else 0.0


def _descend(oracle, config: DescentConfig, W0, b0) -> DescentOutcome:
    """descent.hpp's loop, one step at a time; ``oracle(W, b) -> (loss, G, gb)``."""
    m = _Map(config, W0.shape[0])
    V, c = m.to_descended(np.asarray(W0, dtype=np.float64), np.asarray(b0, dtype=np.float64))
    V = np.maximum(V, 0.0) if config.positive else V
    W, b = m.to_model(V, c)
    curve, status, loss0, norm0, last = [], Status.MAX_ITER, 0.0, 0.0, 0.0
    watch, (rises, margin, rel) = _GrowthWatch(), _DESCENT_RULE
    for t in range(config.max_iter):
        loss, G, gb = oracle(W, b)
        loss += _penalty(config.alpha, W)
        loss0 = loss if t == 0 else loss0
        last = loss
        grew = watch.grew(loss, rises, margin * loss0, rel)
        if not np.isfinite(loss) or (t > 0 and loss > _DIVERGENCE_FACTOR * loss0) or grew:
            status = Status.DIVERGED
            break
        G, gb = m.gradient(G, gb, W, config.alpha)
        # With positive=True only the directions the projection lets move count.
        Gm = np.where((V > 0) | (G < 0), G, 0.0) if config.positive else G
        norm = float(np.sqrt((Gm * Gm).sum() + (gb * gb).sum()))
        norm0 = norm if t == 0 else norm0
        if not np.isfinite(norm):
            status = Status.DIVERGED
            break
        curve.append(loss)
        if config.progress is not None:
            config.progress(t + 1, loss)
        V, c = V - config.learning_rate * G, c - config.learning_rate * gb
        V = np.maximum(V, 0.0) if config.positive else V
        W, b = m.to_model(V, c)
        if config.tol is not None and norm <= config.tol * norm0:
            status = Status.CONVERGED
            break
    return DescentOutcome(W, b, len(curve), status, last, np.array(curve))


@_quiet
def descend(problem: Problem, config: DescentConfig, W0, b0) -> DescentOutcome:
    X = _float64(problem.X)
    Y, w = _targets(problem, np.shape(b0)[0]), _weights(problem)
    return _descend(
        lambda W, b: _mean_pass(X, Y, w, problem.weight_sum, problem.loss, W, b), config, W0, b0
    )


def _gram_pass(stats, W, b):
    """gram.hpp's oracle: the squared loss and its gradient from the statistics."""
    ws = stats.weight_sum
    m = b + stats.mean_x @ W - stats.mean_y
    E = stats.Cxx @ W
    quad = np.einsum("jq,jq->", W, E - 2.0 * stats.Cxy) + np.trace(stats.Cyy)
    return 0.5 * quad / ws + 0.5 * m @ m, (E - stats.Cxy) / ws + np.outer(stats.mean_x, m), m


@_quiet
def descend_gram(stats, config: DescentConfig, W0, b0, n_jobs=None) -> DescentOutcome:
    return _descend(lambda W, b: _gram_pass(stats, W, b), config, W0, b0)


# descent.hpp's kCurvaturePasses: the Lanczos steps that bound the curvature.
CURVATURE_PASSES = 10
CURVATURE_ROUNDING = 1e-10  # kCurvatureRounding: the bound's margin for rounding


def top_curvature(probe, config: DescentConfig, d: int, intercept_curvature: float) -> float:
    """descent.hpp's top_curvature: the same start vector, at most
    CURVATURE_PASSES Lanczos steps with full reorthogonalisation, and the
    bound theta + beta (the top Ritz value plus the last residual's norm),
    exact when the Krylov space becomes invariant."""
    m = _Map(config, d)
    state, v = 0x9E3779B97F4A7C15, np.empty(d)
    for j in range(d):
        state = (state * 6364136223846793005 + 1442695040888963407) % 2**64
        v[j] = 1.0 + 0.5 * ((state >> 11) / 9007199254740992.0 - 0.5)
    Q = [v / np.sqrt(v @ v)]
    alpha, beta, bound = [], [], 0.0
    for it in range(min(d, CURVATURE_PASSES)):
        W, b = m.to_model(Q[it][:, None], np.zeros(1))
        G, gb = probe(W, b)
        G, _ = m.gradient(G, gb, W, config.alpha)
        g = G[:, 0].copy()
        alpha.append(float(Q[it] @ g))
        if not np.isfinite(alpha[-1]):
            bound = alpha[-1]
            break
        for _ in range(2):
            for u in Q:
                g -= (u @ g) * u
        beta.append(float(np.sqrt(g @ g)))
        invariant = not beta[-1] > 1e-13 * max(abs(a) for a in alpha) or it + 1 == d
        T = np.diag(alpha) + np.diag(beta[:-1], 1) + np.diag(beta[:-1], -1)
        bound = float(np.linalg.eigvalsh(T)[-1]) + (0.0 if invariant else beta[-1])
        if invariant or not np.isfinite(beta[-1]):
            break
        Q.append(g / beta[-1])
    bound *= 1.0 + CURVATURE_ROUNDING
    return max(bound, intercept_curvature) if config.fit_intercept else bound


@_quiet
def curvature(problem: Problem, config: DescentConfig) -> float:
    X = _float64(problem.X)
    w, ws, c = _weights(problem), problem.weight_sum, problem.loss.curvature

    def probe(W, b):
        P = w[:, None] * (X @ W + b) * c
        return X.T @ P / ws, P.sum(axis=0) / ws

    return top_curvature(probe, config, X.shape[1], c)


@_quiet
def curvature_gram(stats, config: DescentConfig, n_jobs=None) -> float:
    def probe(W, b):
        m = b + stats.mean_x @ W
        return stats.Cxx @ W / stats.weight_sum + np.outer(stats.mean_x, m), m

    return top_curvature(probe, config, stats.n_features, 1.0)


class _SplitMix64:
    """sgd.hpp's generator, bit for bit."""

    M = 2**64 - 1

    def __init__(self, state: int):
        self.state = state & self.M

    def next(self) -> int:
        self.state = (self.state + 0x9E3779B97F4A7C15) & self.M
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & self.M
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & self.M
        return z ^ (z >> 31)

    def below(self, bound: int) -> int:
        while True:
            m = self.next() * bound
            low = m & self.M
            if low >= bound or low >= ((-bound) & self.M) % bound:
                return m >> 64


@_quiet
def sgd(problem: Problem, config: SgdConfig, W0, b0) -> SgdOutcome:
    X = _float64(problem.X)
    n = X.shape[0]
    Y, w = _targets(problem, np.shape(b0)[0]), _weights(problem)
    B = max(1, min(config.batch_size, n))
    mean_w = problem.weight_sum / n
    m = _Map(config, X.shape[1])
    V, c = m.to_descended(np.asarray(W0, dtype=np.float64), np.asarray(b0, dtype=np.float64))
    V = np.maximum(V, 0.0) if config.positive else V
    rng = _SplitMix64(config.seed ^ ((0xD1B54A32D192ED03 * (config.epoch_offset + 1)) % 2**64))
    order = np.arange(n)
    best, no_imp, ref = config.best_loss, config.no_improvement, config.ref_loss
    curve, status = [], Status.MAX_ITER
    watch, (rises, margin, rel) = _GrowthWatch(), _SGD_RULE
    for e in range(config.max_epochs):
        if config.shuffle:
            for i in range(n - 1, 0, -1):
                j = rng.below(i + 1)
                order[i], order[j] = order[j], order[i]
        eta = config.eta0 / np.sqrt(1.0 + config.epoch_offset + e)
        epoch_loss, finite = 0.0, True
        for s in range(0, n, B):
            rows = order[s : s + B]
            W, b = m.to_model(V, c)
            loss, G, gb = _mean_pass(
                X[rows], Y[rows], w[rows], len(rows) * mean_w, problem.loss, W, b
            )
            loss += _penalty(config.alpha, W)
            G, gb = m.gradient(G, gb, W, config.alpha)
            if not np.isfinite(loss):
                finite = False
                break
            epoch_loss += loss * len(rows)
            V, c = V - eta * G, c - eta * gb
            V = np.maximum(V, 0.0) if config.positive else V
        epoch_loss /= n
        if not finite or not np.isfinite(epoch_loss):
            status = Status.DIVERGED
            break
        curve.append(epoch_loss)
        if config.progress is not None:
            config.progress(e + 1, epoch_loss)
        if not ref > 0.0:
            ref = epoch_loss
        if watch.grew(epoch_loss, rises, margin * ref, rel):
            status = Status.DIVERGED
            break
        if config.tol is not None:
            no_imp = no_imp + 1 if epoch_loss > best - config.tol * ref else 0
            if no_imp >= config.n_iter_no_change:
                best = min(best, epoch_loss)
                status = Status.CONVERGED
                break
        best = min(best, epoch_loss)
    W, b = m.to_model(V, c)
    return SgdOutcome(W, b, len(curve), status, best, no_imp, ref, np.array(curve))


def hessian(problem: Problem, W, b) -> np.ndarray:
    return mean_loss_hessian(problem, W, b)
