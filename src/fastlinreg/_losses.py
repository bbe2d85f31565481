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

__all__ = ["Loss", "SQUARED", "get_loss"]


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
    """

    name: str
    kind: int
    curvature: float
    value: Callable[[np.ndarray, np.ndarray], np.ndarray]
    derivative: Callable[[np.ndarray, np.ndarray], np.ndarray]


SQUARED = Loss(
    name="squared",
    kind=0,
    curvature=1.0,
    value=lambda P, Y: 0.5 * ((P - Y) ** 2).sum(axis=1),
    derivative=lambda P, Y: P - Y,
)

_LOSSES = {loss.name: loss for loss in (SQUARED,)}


def get_loss(name: str) -> Loss:
    """The loss called ``name``."""
    try:
        return _LOSSES[name]
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; known: {sorted(_LOSSES)}") from None
