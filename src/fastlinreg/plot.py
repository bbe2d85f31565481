"""The tutorial's figures: the training points with the fitted line, or
with a classifier's sigmoid and threshold."""

from __future__ import annotations

import numpy as np

__all__ = ["plot_fit", "plot_classifier"]


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(
            "plotting needs matplotlib: pip install 'fastlinreg[plot]' (or pip install matplotlib)"
        ) from exc
    return plt


def plot_fit(model, x, y, path=None, *, ax=None, title=None):
    """Plot 1-D training points and a fitted model's line.

    Parameters
    ----------
    model : fitted estimator with one feature and one target
    x : array-like of shape (n_samples,) or (n_samples, 1)
    y : array-like of shape (n_samples,)
    path : str or path-like, optional
        Save the figure there (PNG, PDF, ... by extension).
    ax : matplotlib Axes, optional
        Draw into these axes instead of a new figure.
    title : str, optional

    Returns
    -------
    ax : matplotlib Axes
    """
    plt = _pyplot()
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    lo, hi = min(0.0, float(x.min())), max(10.0, float(x.max()))
    grid = np.linspace(lo, hi, 100)
    ax.plot(x, y, "ro", label="training data")
    ax.plot(grid, model.predict(grid.reshape(-1, 1)), "b-", label="fitted line")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.legend()
    if title:
        ax.set_title(title)
    if path is not None:
        ax.figure.tight_layout()
        ax.figure.savefig(path, dpi=100)
    return ax


def plot_classifier(model, x, y, path=None, *, ax=None, title=None):
    """Plot 1-D 0/1 points, a fitted binary classifier's P(y = 1) and its
    threshold (the x where P = 0.5).

    Parameters
    ----------
    model : fitted LogisticRegression with one feature and two classes
    x : array-like of shape (n_samples,) or (n_samples, 1)
    y : array-like of shape (n_samples,)
        Labels of the model's classes; the second class is drawn at 1.
    path : str or path-like, optional
        Save the figure there (PNG, PDF, ... by extension).
    ax : matplotlib Axes, optional
    title : str, optional

    Returns
    -------
    ax : matplotlib Axes
    """
    plt = _pyplot()
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    y = (np.asarray(y).reshape(-1) == model.classes_[1]).astype(np.float64)
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    grid = np.linspace(float(x.min()), float(x.max()), 300)
    threshold = -float(model.intercept_[0]) / float(model.coef_[0, 0])
    ax.plot(x, y, "o", color="tab:red", alpha=0.4, label="training data")
    ax.plot(grid, model.predict_proba(grid.reshape(-1, 1))[:, 1], "b-", label="P(y = 1)")
    ax.axvline(threshold, color="k", linestyle="--", label=f"threshold {threshold:.2f}")
    ax.set_xlabel("x")
    ax.set_ylabel("y / probability")
    ax.legend()
    if title:
        ax.set_title(title)
    if path is not None:
        ax.figure.tight_layout()
        ax.figure.savefig(path, dpi=100)
    return ax
