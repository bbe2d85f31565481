"""Command line: ``python -m fastlinreg`` (or ``fastlinreg``).

With no arguments it runs the classic tutorial: gradient descent with
learning rate 0.01 for 10000 steps on its 16 points, from a random start.
``fastlinreg fit data.csv --target COLUMN [--save model.flr]`` fits a CSV
file's columns; ``fastlinreg predict model.flr data.csv`` writes predictions
as CSV and ``fastlinreg summary model.flr`` prints the inference table.
``fastlinreg classify`` fits the 0/1 question (0 below 100, 1 above) with
LogisticRegression and prints the probabilities and the learned threshold.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from .backends import get_backend
from .datasets import TUTORIAL_LEARNING_RATE, TUTORIAL_STEPS, load_threshold, load_tutorial
from .linear_model import LinearRegression
from .logistic import LogisticRegression


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
    f.add_argument("--save", metavar="MODEL", help="write the model file (e.g. model.flr)")
    pr = sub.add_parser("predict", help="predict a CSV file's rows with a saved model (CSV out)")
    pr.add_argument("model", help="model file written by fit --save")
    pr.add_argument("csv", help="CSV file with a header row holding the model's feature columns")
    pr.add_argument("-o", "--output", help="write the predictions here (default: stdout)")
    sm = sub.add_parser("summary", help="print a saved model's statsmodels-style summary")
    sm.add_argument("model", help="model file written by fit --save")
    sm.add_argument("--alpha", type=float, default=0.05, help="intervals at level 1 - alpha")
    c = sub.add_parser(
        "classify", help="logistic regression on the 0/1 data: 0 below 100, 1 above, noisily"
    )
    c.add_argument("--plot", metavar="PATH", help="save the points, sigmoid and threshold")
    c.add_argument("--C", type=float, default=1.0, help="inverse L2 penalty strength")
    return p


def _run_tutorial(args) -> int:
    x, y = load_tutorial()
    rng = np.random.default_rng(args.seed)
    m0, c0 = rng.standard_normal(2)
    model = LinearRegression(
        solver="gd",
        learning_rate=args.learning_rate,
        max_iter=args.steps,
        tol=None,
        verbose=int(sys.stderr.isatty()),  # shows only past 2 s (a huge --steps)
    )
    get_backend("auto")  # load the compiled module now: the time below is the fit's
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


def _read_csv(path, target=None):
    """(X, y or None, feature names) of a CSV file with a header: every numeric
    column but ``target`` is a feature."""
    try:
        import pandas as pd
    except ImportError:
        pd = None
    if pd is not None:
        # Every digit as written: pandas < 3's default float parser can be 1 ulp off.
        exact = {} if int(pd.__version__.split(".")[0]) >= 3 else {"float_precision": "round_trip"}
        frame = pd.read_csv(path, **exact)
        cols = list(frame.columns)
        numeric = list(frame.select_dtypes("number").columns)
    else:
        data = np.genfromtxt(path, delimiter=",", names=True)
        cols = numeric = list(data.dtype.names)
    if target is not None and target not in cols:
        raise SystemExit(f"error: column {target!r} is not in {path}; columns are {cols}")
    names = [c for c in numeric if c != target]
    column = (lambda c: frame[c].to_numpy(np.float64)) if pd is not None else data.__getitem__
    X = np.column_stack([column(c) for c in names]).astype(np.float64) if names else None
    y = None if target is None else np.asarray(column(target), dtype=np.float64)
    return X, y, names


def _frame(X, names):
    """X as a DataFrame with the column names when pandas is there (so a
    saved model keeps them), else as is."""
    try:
        import pandas as pd
    except ImportError:
        return X
    return pd.DataFrame(X, columns=list(names))


def _run_fit(args) -> int:
    X, y, names = _read_csv(args.csv, args.target)
    if not names:
        raise SystemExit("error: no numeric feature columns besides the target")
    # Progress (for descent fits past 2 s) by default on a terminal only.
    model = LinearRegression(solver=args.solver, alpha=args.alpha, verbose=int(sys.stderr.isatty()))
    t0 = time.perf_counter()
    try:
        model.fit(_frame(X, names), y)
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None
    elapsed = time.perf_counter() - t0
    print(
        f"fitted {X.shape[0]} rows x {X.shape[1]} features of {args.csv} "
        f"(solver {model.solver_}, {elapsed * 1e3:.2f} ms)"
    )
    width = max(len(n) for n in names + ["intercept"])
    for name, coef in zip(names, model.coef_):
        print(f"{name:<{width}}  {coef: .8g}")
    print(f"{'intercept':<{width}}  {model.intercept_: .8g}")
    print(f"R^2 (training): {model.score(_frame(X, names), y):.6f}")
    if args.save:
        model.save(args.save)
        print(f"saved      : {args.save}")
    return 0


def _load(path):
    from .model_file import load

    try:
        return load(path)
    except (OSError, ValueError) as exc:
        raise SystemExit(f"error: {exc}") from None


def _run_predict(args) -> int:
    model = _load(args.model)
    X, _, names = _read_csv(args.csv)
    wanted = getattr(model, "feature_names_in_", None)
    if wanted is not None:
        missing = [c for c in wanted if c not in names]
        if missing:
            raise SystemExit(f"error: {args.csv} lacks the model's columns {missing}")
        X = _frame(X[:, [names.index(c) for c in wanted]], wanted)
    if X is None or X.shape[1] != model.n_features_in_:
        raise SystemExit(
            f"error: the model takes {model.n_features_in_} features; {args.csv} has "
            f"{0 if X is None else X.shape[1]} numeric columns"
        )
    P = model.predict(X).reshape(X.shape[0], -1)
    head = ["prediction"] if P.shape[1] == 1 else [f"prediction_{q + 1}" for q in range(P.shape[1])]
    out = open(args.output, "w") if args.output else sys.stdout  # noqa: SIM115
    try:
        out.write(",".join(head) + "\n")
        np.savetxt(out, P, delimiter=",", fmt="%.17g")
    finally:
        if args.output:
            out.close()
    return 0


def _run_summary(args) -> int:
    model = _load(args.model)
    try:
        model.summary(alpha=args.alpha)
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None
    return 0


def _run_classify(args) -> int:
    if not args.C > 0:
        raise SystemExit("error: --C must be positive")
    x, y = load_threshold()
    model = LogisticRegression(C=args.C)
    get_backend("auto")  # load the compiled module now: the time below is the fit's
    t0 = time.perf_counter()
    model.fit(x.reshape(-1, 1), y)
    elapsed = time.perf_counter() - t0
    threshold = -model.intercept_[0] / model.coef_[0, 0]
    print(f"Logistic regression on {x.size} noisy points: 0 below 100, 1 above")
    print(f"coef {model.coef_[0, 0]:.6f}, intercept {model.intercept_[0]:.6f} ({model.solver_})")
    for value in (80.0, 95.0, 100.0, 105.0, 120.0):
        p1 = model.predict_proba([[value]])[0, 1]
        print(f"P(y = 1 | x = {value:g}) = {p1:.4f}")
    print(f"threshold (p = 0.5): {threshold:.4f}")
    print(f"time: {elapsed * 1e3:.3f} ms for the whole fit()")
    if args.plot:
        from .plot import plot_classifier

        plot_classifier(model, x, y, args.plot, title="fastlinreg: 0 below 100, 1 above")
        print(f"figure: {args.plot}")
    return 0


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    if args.steps < 1:
        raise SystemExit("error: --steps must be at least 1")
    if not args.learning_rate > 0:
        raise SystemExit("error: --learning-rate must be positive")
    commands = {
        "fit": _run_fit,
        "predict": _run_predict,
        "summary": _run_summary,
        "classify": _run_classify,
    }
    try:
        return commands.get(args.command, _run_tutorial)(args)
    except (OSError, ValueError, ImportError) as exc:
        # A missing or unreadable file, a CSV pandas cannot parse, a non-numeric
        # column, a diverging step: one line, not a traceback.
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
