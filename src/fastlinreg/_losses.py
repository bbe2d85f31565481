"""Losses, as the solvers and backends see them.

A loss is a name, the ``LossKind`` that selects its policy in the compiled
kernels (cpp/include/fastlinreg/losses.hpp), the bound on its second
derivative in the prediction (which scales the automatic step), and plain
numpy formulas for the reference backend. Adding a loss: its policy in
losses.hpp, its entry in ``dispatch_loss`` there, and a ``Loss`` here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

__all__ = ["Loss", "SQUARED", "LOGISTIC", "SOFTMAX", "get_loss"]


@dataclass(frozen=True)
class Loss:
    """A loss over a row's k predictions.

    Attributes
    ----------
    name : str
    kind : int
        The ``LossKind`` of the compiled policy.
    curvature : float
        Bound on the largest eigenvalue of the row loss's Hessian in the
        predictions: the loss's Hessian in W is at most
        ``curvature * XᵀWX / sum(w)``.
    value : callable
        ``value(P (n, k), Y (n, k)) -> (n,)``, the row losses.
    derivative : callable
        ``derivative(P, Y) -> (n, k)``, d value / d P.
    hessian_weights : callable or None
        ``hessian_weights(P, Y) -> (n, k, k)``, d² value / d P², for the
        Newton solver's Hessian (backends/_hessian.py).
    """

    name: str
    kind: int
    curvature: float
    value: Callable[[np.ndarray, np.ndarray], np.ndarray]
    derivative: Callable[[np.ndarray, np.ndarray], np.ndarray]
    hessian_weights: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None


SQUARED = Loss(
    name="squared",
    kind=0,
    curvature=1.0,
    value=lambda P, Y: 0.5 * ((P - Y) ** 2).sum(axis=1),
    derivative=lambda P, Y: P - Y,
    hessian_weights=lambda P, Y: np.broadcast_to(
        np.eye(P.shape[1]), (P.shape[0],) + P.shape[1:] * 2
    ),
)


def _logistic_value(P, Y):
    # log(1 + e^P) - Y P, from e^-|P| alone: finite at any margin
    return (np.maximum(P, 0.0) + np.log1p(np.exp(-np.abs(P))) - Y * P).sum(axis=1)


def _sigmoid(P):
    e = np.exp(-np.abs(P))
    return np.where(P >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _log_sum_exp(P):
    m = P.max(axis=1, keepdims=True)
    return m + np.log(np.exp(P - m).sum(axis=1, keepdims=True))


def _softmax_value(P, Y):
    return (Y * (_log_sum_exp(P) - P)).sum(axis=1)


def _logistic_hessian(P, Y):
    s = _sigmoid(P)
    return (s * (1.0 - s))[:, :, None]


def _softmax_hessian(P, Y):
    S = np.exp(P - _log_sum_exp(P))
    return Y.sum(axis=1)[:, None, None] * (
        S[:, :, None] * np.eye(S.shape[1]) - S[:, :, None] * S[:, None, :]
    )


def _softmax_derivative(P, Y):
    S = np.exp(P - _log_sum_exp(P))
    return Y.sum(axis=1, keepdims=True) * S - Y


# Binary cross-entropy on the logit, Y in {0, 1}: its second derivative
# sigmoid (1 - sigmoid) is at most 1/4.
LOGISTIC = Loss(
    name="logistic",
    kind=1,
    curvature=0.25,
    value=_logistic_value,
    derivative=lambda P, Y: _sigmoid(P) - Y,
    hessian_weights=_logistic_hessian,
)

# Multinomial cross-entropy over a row's k logits, Y one-hot: the Hessian
# diag(s) - s sᵀ of the softmax s has eigenvalues at most 1/2.
SOFTMAX = Loss(
    name="softmax",
    kind=2,
    curvature=0.5,
    value=_softmax_value,
    derivative=_softmax_derivative,
    hessian_weights=_softmax_hessian,
)

_LOSSES = {loss.name: loss for loss in (SQUARED, LOGISTIC, SOFTMAX)}


def get_loss(name: str) -> Loss:
    """The loss called ``name``."""
    try:
        return _LOSSES[name]
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; known: {sorted(_LOSSES)}") from None
