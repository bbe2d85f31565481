"""Rebuild the README's gallery from the tutorial's embedded data.

    python docs/make_gallery.py        # writes docs/gallery/*.png and summary.txt

Every figure comes from fastlinreg.plot on a fit of the 16 points shipped in
fastlinreg.datasets, so the images follow the code rather than a drawing.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from fastlinreg import LinearRegression, plot  # noqa: E402
from fastlinreg.datasets import TUTORIAL_LEARNING_RATE, TUTORIAL_STEPS, load_tutorial  # noqa: E402

OUT = Path(__file__).resolve().parent / "gallery"


def _save(fig, name: str) -> None:
    fig.tight_layout()
    fig.savefig(OUT / name, dpi=90)
    plt.close(fig)
    print(f"wrote {OUT / name}")


def main() -> int:
    OUT.mkdir(exist_ok=True)
    x, y = load_tutorial()
    X = x.reshape(-1, 1)
    exact = LinearRegression().fit(X, y)
    gd = LinearRegression(
        solver="gd", learning_rate=TUTORIAL_LEARNING_RATE, max_iter=TUTORIAL_STEPS, tol=None
    ).fit(X, y, coef_init=[0.0], intercept_init=0.0)

    with contextlib.redirect_stdout(io.StringIO()) as table:
        exact.summary()
    (OUT / "summary.txt").write_text(table.getvalue())
    print(f"wrote {OUT / 'summary.txt'}")

    fig, ax = plt.subplots(figsize=(6, 4))
    plot.plot_fit(exact, x, y, ax=ax, band=0.05, title="the tutorial's fit, 95% band")
    _save(fig, "fit_band.png")

    fig, ax = plt.subplots(figsize=(6, 4))
    plot.plot_loss_curve(gd, ax=ax)
    ax.set_title(f"gradient descent, learning rate {TUTORIAL_LEARNING_RATE}")
    _save(fig, "loss_curve.png")

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    plot.plot_residuals(exact, X, y, ax=left)
    plot.plot_qq(exact, X, y, ax=right)
    left.set_title("residuals against fitted values")
    right.set_title("normal Q-Q of the residuals")
    _save(fig, "residuals_qq.png")

    fig, ax = plt.subplots(figsize=(6, 2.6))
    plot.plot_coefficients(exact, ax=ax, intercept=True)
    ax.set_title("coefficients with 95% confidence intervals")
    _save(fig, "coefficients.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
