"""fastlinreg.plot, headless (Agg): each function is checked by what it drew."""

from __future__ import annotations

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from scipy.stats import norm  # noqa: E402

from fastlinreg import LinearRegression, plot  # noqa: E402
from fastlinreg.datasets import load_tutorial  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture
def tutorial():
    x, y = load_tutorial()
    return x, y, LinearRegression(solver="exact").fit(x[:, None], y)


def test_fit_line_and_data(tutorial):
    x, y, model = tutorial
    ax = plot.plot_fit(model, x, y)
    points, line = ax.get_lines()
    np.testing.assert_array_equal(points.get_xdata(), x)
    np.testing.assert_array_equal(points.get_ydata(), y)
    gx, gy = line.get_xdata(), line.get_ydata()
    np.testing.assert_allclose(gy, model.coef_[0] * gx + model.intercept_, rtol=1e-12)
    assert not ax.collections  # no band unless asked


def test_fit_with_confidence_band(tutorial):
    x, y, model = tutorial
    _, ax = plt.subplots()
    assert plot.plot_fit(model, x, y, ax=ax, band=0.05) is ax
    (band,) = ax.collections
    verts = band.get_paths()[0].vertices
    grid = ax.get_lines()[1].get_xdata()
    _, lo, hi = model.summary(show=False).confidence_band(grid[:, None], 0.05)
    # fill_between's outline: the lower edge, then the upper edge back.
    assert np.isclose(verts[:, 1], lo[:, None]).any(axis=0).sum() >= grid.size - 1
    assert np.isclose(verts[:, 1], hi[:, None]).any(axis=0).sum() >= grid.size - 1
    assert (hi > lo).all()
    # Narrowest at the mean of x, as a band of the mean should be.
    assert abs(grid[np.argmin(hi - lo)] - x.mean()) < grid[1] - grid[0]
    assert "95% confidence band" in [t.get_text() for t in ax.get_legend().get_texts()]


def test_loss_curve_on_log_scale():
    x, y = load_tutorial()
    model = LinearRegression(solver="gd", learning_rate=0.01, max_iter=300, tol=None)
    model.fit(x[:, None], y)
    ax = plot.plot_loss_curve(model)
    (line,) = ax.get_lines()
    np.testing.assert_array_equal(line.get_ydata(), model.loss_curve_)
    np.testing.assert_array_equal(line.get_xdata(), np.arange(1, 301))
    assert ax.get_yscale() == "log" and ax.get_xlabel() == "step"


def test_residuals_against_fitted(tutorial):
    x, y, model = tutorial
    ax = plot.plot_residuals(model, x[:, None], y)
    (points,) = ax.collections
    fitted = model.predict(x[:, None])
    np.testing.assert_allclose(points.get_offsets(), np.column_stack([fitted, y - fitted]))
    (zero,) = ax.get_lines()
    assert set(zero.get_ydata()) == {0.0}


def test_normal_qq(tutorial):
    x, y, model = tutorial
    ax = plot.plot_qq(model, x[:, None], y)
    (points,) = ax.collections
    xy = np.asarray(points.get_offsets())
    n = len(y)
    np.testing.assert_allclose(xy[:, 0], norm.ppf((np.arange(1, n + 1) - 0.5) / n))
    r = y - model.predict(x[:, None])
    np.testing.assert_allclose(xy[:, 1], np.sort((r - r.mean()) / r.std()))
    (ref,) = ax.get_lines()
    np.testing.assert_array_equal(ref.get_xdata(), ref.get_ydata())


def test_coefficients_with_intervals():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 3))
    y = X @ [1.0, 0.0, -2.0] + rng.normal(size=80)
    model = LinearRegression().fit(X, y)
    ax = plot.plot_coefficients(model, alpha=0.1)
    (container,) = ax.containers
    data_line, _, (bars,) = container.lines
    np.testing.assert_allclose(data_line.get_xdata(), model.coef_)
    np.testing.assert_array_equal(data_line.get_ydata(), [2, 1, 0])
    ci = model.conf_int(0.1)[1:]
    segments = np.array([s[:, 0] for s in bars.get_segments()])
    np.testing.assert_allclose(segments, ci, rtol=1e-12)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["x1", "x2", "x3"]
    ax2 = plot.plot_coefficients(model, intercept=True)
    assert len(ax2.get_yticks()) == 4


def test_band_refused_where_inference_is():
    x, y = load_tutorial()
    model = LinearRegression(solver="gd", learning_rate=0.01, max_iter=10, tol=None)
    model.fit(x[:, None], y)
    with pytest.raises(ValueError, match="No inference for this fit"):
        plot.plot_fit(model, x, y, band=0.05)
