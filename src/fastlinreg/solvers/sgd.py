"""Mini-batch SGD: epochs of the fused pass on batches of rows."""

from __future__ import annotations

import numpy as np
from sklearn.utils import check_random_state

from .._progress import Progress
from ..backends import SgdConfig, Status
from ..exceptions import ConvergenceWarning, warn_caller
from . import _curvature, descent
from ._common import FitResult, Settings, SgdState, Stream


def start(settings: Settings, backend, problem, W0, b0) -> SgdState:
    """The first epoch's state: standardisation, step and seed from the rows
    at hand (the first chunk, for partial_fit)."""
    n, d = problem.X.shape
    shift, scale = descent.standardisation(settings, backend, problem)
    if scale is not None:
        L = _curvature.estimate(settings, backend, problem, None, shift, scale).L
        # The batch curvature bound: the mean squared row norm of the
        # standardised rows is d + 1.
        eta0 = 1.0 / (L + (d + 1) / min(settings.batch_size, n))
    else:
        eta0 = float(settings.learning_rate)
    seed = int(check_random_state(settings.random_state).randint(np.iinfo(np.int32).max))
    return SgdState(W0, b0, shift, scale, eta0, seed)


def run(settings: Settings, backend, problem, state: SgdState, epochs: int) -> FitResult:
    """``epochs`` epochs from ``state``; the result carries the state to continue from."""
    config = SgdConfig(
        max_epochs=epochs,
        batch_size=settings.batch_size,
        shuffle=settings.shuffle,
        seed=state.seed,
        eta0=state.eta0,
        alpha=settings.alpha,
        tol=settings.tol,
        n_iter_no_change=settings.n_iter_no_change,
        fit_intercept=settings.fit_intercept,
        shift=state.shift,
        scale=state.scale,
        epoch_offset=state.epochs,
        best_loss=state.best_loss,
        no_improvement=state.no_improvement,
        ref_loss=state.ref_loss,
        progress=Progress(epochs, "epoch") if settings.verbose else None,
        positive=settings.positive,
    )
    out = backend.sgd(problem, config, state.W, state.b)
    if config.progress is not None:
        config.progress.close(out.n_epochs, out.curve[-1] if out.n_epochs else np.nan)
    if out.status == Status.DIVERGED:
        raise descent.divergence_error(
            settings,
            backend,
            problem,
            None,
            state.eta0,
            state.epochs + out.n_epochs,
            out.curve[-1] if out.curve.size else np.inf,
            what="epoch",
        )
    if epochs > 1 and settings.tol is not None and out.status != Status.CONVERGED:
        warn_caller(
            f"SGD ran max_iter={settings.max_iter} epochs without {settings.n_iter_no_change} "
            f"epochs in a row failing to improve the loss by tol={settings.tol} times the "
            "first epoch's loss. Increase max_iter, or use solver='exact' for the "
            "least-squares optimum.",
            ConvergenceWarning,
        )
    after = SgdState(
        out.W,
        out.b,
        state.shift,
        state.scale,
        state.eta0,
        state.seed,
        state.epochs + out.n_epochs,
        out.best_loss,
        out.no_improvement,
        out.ref_loss,
    )
    return FitResult(
        "sgd",
        out.W,
        out.b,
        out.n_epochs,
        out.curve,
        state.eta0,
        Stream("sgd", out.b.shape[0], sgd=after),
    )
