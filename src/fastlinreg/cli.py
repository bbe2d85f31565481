"""Command line: ``python -m fastlinreg`` (or ``fastlinreg``).

With no arguments it runs the classic tutorial: gradient descent with
learning rate 0.01 for 10000 steps on its 16 points, from a random start.
``fastlinreg fit data.csv --target COLUMN`` fits a CSV file's columns.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from .datasets import TUTORIAL_LEARNING_RATE, TUTORIAL_STEPS, load_tutorial
from .linear_model import LinearRegression


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fastlinreg",
        description="Fit linear models with fastlinreg's fused C++ kernels. "
        "With no command: the classic tutorial's gradient-descent fit.",
    )
    p.add_argument("--plot", metavar="PATH", help="save the tutorial's figure (needs matplotlib)")
    p.add_argument(
        "--seed",
        type=int,
        default=None,
        help="seed of the random start (default: a fresh random start)",
    )
    p.add_argument("--steps", type=int, default=TUTORIAL_STEPS, help="gradient-descent steps")
    p.add_argument("--learning-rate", type=float, default=TUTORIAL_LEARNING_RATE)
    p.add_argument("--verbose", action="store_true", help="print the cost of every step")
    sub = p.add_subparsers(dest="command")
    f = sub.add_parser("fit", help="fit a CSV file: all numeric columns but --target are features")
    f.add_argument("csv", help="CSV file with a header row")
    f.add_argument("--target", required=True, help="name of the column to predict")
    f.add_argument("--solver", default="auto", choices=["auto", "gd", "gram", "exact"])
    f.add_argument("--alpha", type=float, default=0.0, help="L2 penalty")
    return p


def _run_tutorial(args) -> int:
    x, y = load_tutorial()
    rng = np.random.default_rng(args.seed)
    m0, c0 = rng.standard_normal(2)
    model = LinearRegression(
        solver="gd", learning_rate=args.learning_rate, max_iter=args.steps, tol=None
    )
    t0 = time.perf_counter()
    model.fit(x.reshape(-1, 1), y, coef_init=[m0], intercept_init=c0)
    elapsed = time.perf_counter() - t0
    if args.verbose:
        for cost in model.loss_curve_:
            print(cost)
    print("Linear regression by gradient descent (the classic tutorial, 16 points)")
    print(f"start      : slope {m0:.8f}, intercept {c0:.8f}")
    print(f"Slope      : {model.coef_[0]:.8f}")
    print(f"Intercept  : {model.intercept_:.8f}")
    print(f"final cost : {model.loss_curve_[-1]:.8f}")
    print(f"steps      : {model.n_iter_} (learning rate {args.learning_rate})")
    print(f"time       : {elapsed * 1e3:.3f} ms for the whole fit()")
    if args.plot:
        from .plot import plot_fit

        plot_fit(model, x, y, args.plot, title="fastlinreg: the tutorial's fit")
        print(f"figure     : {args.plot}")
    return 0


def _run_fit(args) -> int:
    try:
        import pandas as pd
    except ImportError:
        pd = None
    if pd is not None:
        frame = pd.read_csv(args.csv)
        if args.target not in frame.columns:
            raise SystemExit(
                f"error: column {args.target!r} is not in {args.csv}; "
                f"columns are {list(frame.columns)}"
            )
        y = frame[args.target].to_numpy(dtype=np.float64)
        features = frame.drop(columns=[args.target]).select_dtypes("number")
        names = list(features.columns)
        X = features.to_numpy(dtype=np.float64)
    else:
        data = np.genfromtxt(args.csv, delimiter=",", names=True)
        cols = list(data.dtype.names)
        if args.target not in cols:
            raise SystemExit(
                f"error: column {args.target!r} is not in {args.csv}; columns are {cols}"
            )
        names = [c for c in cols if c != args.target]
        X = np.column_stack([data[c] for c in names]).astype(np.float64)
        y = np.asarray(data[args.target], dtype=np.float64)
    if not names:
        raise SystemExit("error: no numeric feature columns besides the target")
    model = LinearRegression(solver=args.solver, alpha=args.alpha)
    t0 = time.perf_counter()
    model.fit(X, y)
    elapsed = time.perf_counter() - t0
    print(
        f"fitted {X.shape[0]} rows x {X.shape[1]} features of {args.csv} "
        f"(solver {model.solver_}, {elapsed * 1e3:.2f} ms)"
    )
    width = max(len(n) for n in names + ["intercept"])
    for name, coef in zip(names, model.coef_):
        print(f"{name:<{width}}  {coef: .8g}")
    print(f"{'intercept':<{width}}  {model.intercept_: .8g}")
    print(f"R^2 (training): {model.score(X, y):.6f}")
    return 0


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    if args.steps < 1:
        raise SystemExit("error: --steps must be at least 1")
    if not args.learning_rate > 0:
        raise SystemExit("error: --learning-rate must be positive")
    try:
        return _run_fit(args) if args.command == "fit" else _run_tutorial(args)
    except (OSError, ValueError, ImportError) as exc:
        # A missing or unreadable file, a CSV pandas cannot parse, a non-numeric
        # column, a diverging step: one line, not a traceback.
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
