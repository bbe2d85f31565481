"""Figures of a fitted model (matplotlib, optional: ``pip install 'fastlinreg[plot]'``).

Every function draws into ``ax`` (a new figure when None) and returns the
Axes: the fitted line with the data and a confidence band (the tutorial's
figure), the loss curve, residuals against fitted values, a normal Q-Q plot
of the residuals, the coefficients with their confidence intervals, and a
binary classifier's probability curve with its threshold.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "plot_fit",
    "plot_loss_curve",
    "plot_residuals",
    "plot_qq",
    "plot_coefficients",
    "plot_classifier",
]


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


def plot_fit(model, x, y, path=None, *, ax=None, title=None, band=None):
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
    band : float, optional
        Also shade the ``1 - band`` confidence band of the fitted line (e.g.
        ``band=0.05`` for 95%), from :meth:`LinearRegression.summary`.

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
    if band is not None:
        _, lo_band, hi_band = model.summary(show=False).confidence_band(grid[:, None], band)
        label = f"{1 - band:.0%} confidence band"
        ax.fill_between(grid, lo_band, hi_band, color="b", alpha=0.2, label=label)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.legend()
    if title:
        ax.set_title(title)
    if path is not None:
        ax.figure.tight_layout()
        ax.figure.savefig(path, dpi=100)
    return ax


def _axes(ax):
    plt = _pyplot()
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    return ax


def plot_loss_curve(model, *, ax=None):
    """The loss at each step (``loss_curve_``) on a log scale.

    Parameters
    ----------
    model : fitted estimator with ``loss_curve_``
    ax : matplotlib Axes, optional

    Returns
    -------
    ax : matplotlib Axes
    """
    ax = _axes(ax)
    curve = np.asarray(model.loss_curve_, dtype=np.float64)
    ax.plot(np.arange(1, curve.size + 1), curve, "-", marker="." if curve.size < 50 else None)
    ax.set_yscale("log")
    ax.set_xlabel("step" if getattr(model, "solver_", "") != "sgd" else "epoch")
    ax.set_ylabel("loss")
    return ax


def _residuals(model, X, y, target):
    X = np.asarray(X)
    fitted = np.asarray(model.predict(X), dtype=np.float64).reshape(X.shape[0], -1)[:, target]
    y = np.asarray(y, dtype=np.float64).reshape(X.shape[0], -1)[:, target]
    return fitted, y - fitted


def plot_residuals(model, X, y, *, ax=None, target=0):
    """Residuals ``y - predict(X)`` against the fitted values.

    Parameters
    ----------
    model : fitted estimator
    X : array-like of shape (n_samples, n_features)
    y : array-like of shape (n_samples,) or (n_samples, n_targets)
    ax : matplotlib Axes, optional
    target : int, default=0
        Which target, for several.

    Returns
    -------
    ax : matplotlib Axes
    """
    ax = _axes(ax)
    fitted, resid = _residuals(model, X, y, target)
    ax.scatter(fitted, resid, s=12)
    ax.axhline(0.0, color="k", linewidth=0.8)
    ax.set_xlabel("fitted value")
    ax.set_ylabel("residual")
    return ax


def plot_qq(model, X, y, *, ax=None, target=0):
    """Normal Q-Q plot of the standardised residuals, with the identity line.

    The sorted residuals, centred and divided by their standard deviation,
    against the normal quantiles at ``(i - 0.5) / n``.

    Parameters
    ----------
    model : fitted estimator
    X : array-like of shape (n_samples, n_features)
    y : array-like of shape (n_samples,) or (n_samples, n_targets)
    ax : matplotlib Axes, optional
    target : int, default=0

    Returns
    -------
    ax : matplotlib Axes
    """
    from scipy.stats import norm

    ax = _axes(ax)
    _, resid = _residuals(model, X, y, target)
    spread = resid.std()
    z = np.sort((resid - resid.mean()) / (spread if spread > 0 else 1.0))
    theory = norm.ppf((np.arange(1, z.size + 1) - 0.5) / z.size)
    ax.scatter(theory, z, s=12)
    ends = np.array([theory[0], theory[-1]])
    ax.plot(ends, ends, "k-", linewidth=0.8)
    ax.set_xlabel("normal quantile")
    ax.set_ylabel("standardised residual")
    return ax


def plot_coefficients(model, *, alpha=0.05, ax=None, target=0, intercept=False):
    """The coefficients with their ``1 - alpha`` confidence intervals.

    Parameters
    ----------
    model : fitted LinearRegression that allows inference (see ``summary``)
    alpha : float, default=0.05
    ax : matplotlib Axes, optional
    target : int, default=0
    intercept : bool, default=False
        Also draw the intercept (often on another scale).

    Returns
    -------
    ax : matplotlib Axes
    """
    ax = _axes(ax)
    t = model.summary(show=False)[target]
    ci = t.conf_int(alpha)
    rows = [i for i, n in enumerate(t.names) if intercept or n != "intercept"]
    pos = np.arange(len(rows))[::-1]
    coef = t.params[rows]
    err = np.abs(ci[rows] - coef[:, None]).T
    ax.errorbar(coef, pos, xerr=err, fmt="o", capsize=3)
    ax.axvline(0.0, color="k", linewidth=0.8)
    ax.set_yticks(pos)
    ax.set_yticklabels([t.names[i] for i in rows])
    ax.set_xlabel(f"coefficient ({1 - alpha:.0%} confidence interval)")
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
