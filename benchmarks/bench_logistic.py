"""LogisticRegression against scikit-learn's lbfgs at equal final objective.

For each problem the optimum's objective f* comes from a tight Newton fit;
each solver is then fitted with tol 1e-4, 1e-5, ... until its objective is
within 1e-8 relative of f*, and the time of that first fit is the one
compared. Also: the cost of one function-and-gradient evaluation in reads of
X (one fused pass against numpy's single-threaded read of X), evaluations
per fit, and the passes over X Newton needs. Ratios measured in one run.
    python benchmarks/bench_logistic.py [--quick] [--sections binary,multinomial,newton]
A subset of the sections writes logistic_<sections>.md/json, never the full table's files.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import time
import warnings

import _harness as h
import numpy as np
from sklearn import linear_model as sk
from sklearn.linear_model._linear_loss import LinearModelLoss

from fastlinreg import ConvergenceWarning, LogisticRegression
from fastlinreg._losses import LOGISTIC, SOFTMAX
from fastlinreg.backends import Problem, cpu
from fastlinreg.solvers import _warm

sklearnex = h.optional_import("sklearnex")
if sklearnex is not None:
    import sklearnex.linear_model

SECTIONS = ("binary", "multinomial", "newton")
GAP = 1e-8  # relative objective gap that counts as "equal"
TOLS = (1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-10, 1e-12)


def problem(n, d, k, dtype, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(dtype)
    W = rng.standard_normal((d, k)) / np.sqrt(d) * 2.0
    Z = X @ W + rng.gumbel(size=(n, k)) if k > 1 else X @ W + rng.logistic(size=(n, 1))
    y = Z.argmax(axis=1) if k > 1 else (Z[:, 0] > 0).astype(np.int64)
    return X, y


def objective(model, X, y, C):
    """scikit-learn's C·Σ logloss + ½‖coef‖², in float64 numpy."""
    Z = np.asarray(X, dtype=np.float64) @ model.coef_.T + model.intercept_
    if Z.shape[1] == 1:
        Z = np.column_stack([np.zeros(len(y)), Z[:, 0]])
    lse = np.logaddexp.reduce(Z, axis=1)
    return C * float((lse - Z[np.arange(len(y)), y]).sum()) + 0.5 * float((model.coef_**2).sum())


class Counter:
    """Counts the cpu backend's passes over X: fused (loss and gradient),
    Newton (loss, gradient and Hessian in one read) and Hessian-only; rows
    counts the fused passes in passes over all ``n`` rows (a subsample's
    pass reads a fraction), rows_hessian the same for the Hessian passes."""

    def __init__(self, n=None):
        self.n = n

    def __enter__(self):
        self.passes = self.newton = self.hessians = 0
        self.rows = self.rows_hessian = 0.0
        self._saved = cpu.fused_pass, cpu.fused_hessian, cpu.hessian

        def counting(fn, field, rows):
            def call(problem, *a, **kw):
                setattr(self, field, getattr(self, field) + 1)
                if self.n:
                    setattr(self, rows, getattr(self, rows) + problem.X.shape[0] / self.n)
                return fn(problem, *a, **kw)

            return call

        cpu.fused_pass = counting(self._saved[0], "passes", "rows")
        cpu.fused_hessian = counting(self._saved[1], "newton", "rows_hessian")
        cpu.hessian = counting(self._saved[2], "hessians", "rows_hessian")
        return self

    def __exit__(self, *exc):
        cpu.fused_pass, cpu.fused_hessian, cpu.hessian = self._saved


class SklearnCounter:
    """Counts scikit-learn's loss-and-gradient evaluations (its lbfgs calls
    LinearModelLoss.loss_gradient once per evaluation) and their time."""

    def __enter__(self):
        self.evals, self.seconds = 0, 0.0
        self._saved = LinearModelLoss.loss_gradient

        def call(*a, **kw):
            t0 = time.perf_counter()
            out = self._saved(*a, **kw)
            self.seconds += time.perf_counter() - t0
            self.evals += 1
            return out

        LinearModelLoss.loss_gradient = call
        return self

    def __exit__(self, *exc):
        LinearModelLoss.loss_gradient = self._saved


@contextlib.contextmanager
def cold_start():
    """lbfgs without its subsample start (solvers/_warm.py): L-BFGS from zero
    on all rows, as before the start was added."""
    saved = _warm.applies
    _warm.applies = lambda *a: False
    try:
        yield
    finally:
        _warm.applies = saved


def to_equal_objective(make, X, y, C, f_star, counter=contextlib.nullcontext):
    """(seconds, tol, gap, model, counter) of the first fit of ``make(tol)``
    within GAP of f*; counter: a fresh one counted that fit."""
    for tol in TOLS:
        model = make(tol)
        with warnings.catch_warnings(), counter() as count:
            warnings.simplefilter("ignore")
            t0 = time.perf_counter()
            model.fit(X, y)
            seconds = time.perf_counter() - t0
        gap = (objective(model, X, y, C) - f_star) / abs(f_star)
        if gap <= GAP:
            break
    return seconds, tol, gap, model, count


_none = contextlib.nullcontext


def fit_sampler(make, tol, X, y, context=_none):
    """A sampler: the seconds of one fit of ``make(tol)``."""

    def one():
        model = make(tol)
        with warnings.catch_warnings(), context():
            warnings.simplefilter("ignore")
            return h._timed(lambda: model.fit(X, y))

    return one


def retime(runs, X, y, args, cold):
    """Each side's fit at the tol it needed, refitted in interleaved rounds
    (others' load measured, busy rounds redone within --patience): the
    median seconds of each side, and the rounds' info."""
    samplers = {
        name: fit_sampler(make, tol, X, y, cold_start if cold and name == "ours" else _none)
        for name, (make, tol) in runs.items()
    }
    samples, info = h.interleaved(
        samplers, args.repeat, settle_after=tuple(runs), patience=args.patience
    )
    return {name: h.median(v) for name, v in samples.items()}, info


def compare(table, label, X, y, C, args, payload, cold=False):
    threads = args.threads
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        best = LogisticRegression(C=C, solver="newton", tol=1e-12, max_iter=50, n_jobs=threads)
        f_star = objective(best.fit(X, y), X, y, C)
    makers = {
        "ours": lambda tol: LogisticRegression(
            C=C, solver="lbfgs", tol=tol, n_jobs=threads, max_iter=1000
        ),
        "theirs": lambda tol: sk.LogisticRegression(C=C, solver="lbfgs", tol=tol, max_iter=1000),
    }
    if sklearnex is not None:
        makers["sklearnex"] = lambda tol: sklearnex.linear_model.LogisticRegression(
            C=C, solver="lbfgs", tol=tol, max_iter=1000
        )
    with cold_start() if cold else contextlib.nullcontext():
        ours = to_equal_objective(makers["ours"], X, y, C, f_star, lambda: Counter(len(y)))
    theirs = to_equal_objective(makers["theirs"], X, y, C, f_star, SklearnCounter)
    intel = None
    if sklearnex is not None:
        intel = to_equal_objective(makers["sklearnex"], X, y, C, f_star)
    found = {"ours": ours, "theirs": theirs} | ({"sklearnex": intel} if intel else {})
    seconds, rounds = retime(
        {name: (makers[name], r[1]) for name, r in found.items()}, X, y, args, cold
    )
    W, b = ours[3].coef_.T.copy(), ours[3].intercept_.copy()
    k = W.shape[1]
    Y = np.eye(k)[y] if k > 1 else y[:, None].astype(np.float64)
    prob = Problem(X, Y, None, float(len(y)), LOGISTIC if k == 1 else SOFTMAX, threads)
    one_pass = h.median_time(lambda: cpu.fused_pass(prob, W, b), repeat=5).median
    read = h.read_floor(X).median
    count, sk_count = ours[4], theirs[4]
    table.add(
        label + (" (cold start)" if cold else ""),
        h.fmt_ratio(seconds["theirs"] / seconds["ours"]),
        "n/a" if intel is None else h.fmt_ratio(seconds["sklearnex"] / seconds["ours"]),
        f"{ours[1]:g} / {theirs[1]:g}",
        f"{ours[2]:.1e} / {theirs[2]:.1e}",
        f"{count.passes} ({count.rows:.2f}) / {sk_count.evals}",
        f"{count.rows_hessian:.2f}",
        f"{one_pass / read:.2f}",
        f"{sk_count.seconds / sk_count.evals / read:.2f}",
        f"{ours[3].n_iter_[0]} / {theirs[3].n_iter_[0]}",
        h.fmt_load(rounds.load, rounds),
    )
    payload[label + (" cold" if cold else "")] = dict(
        ours_s=seconds["ours"],
        sklearn_s=seconds["theirs"],
        sklearnex_s=seconds.get("sklearnex"),
        first_fit_s={name: r[0] for name, r in found.items()},
        others_load_cores=rounds.load,
        rounds_run=rounds.rounds_run,
        sklearnex_tol=None if intel is None else intel[1],
        sklearnex_gap=None if intel is None else intel[2],
        ours_tol=ours[1],
        sklearn_tol=theirs[1],
        ours_gap=ours[2],
        sklearn_gap=theirs[2],
        pass_s=one_pass,
        read_s=read,
        ours_passes=count.passes,
        ours_passes_in_full_rows=count.rows,
        ours_hessian_rows=count.rows_hessian,
        sklearn_evals=sk_count.evals,
        sklearn_eval_s=sk_count.seconds / sk_count.evals,
        f_star=f_star,
    )


def newton_passes(table, label, X, y, C, threads, payload):
    with Counter() as count:
        t0 = time.perf_counter()
        model = LogisticRegression(C=C, solver="newton", tol=1e-8, n_jobs=threads).fit(X, y)
        seconds = time.perf_counter() - t0
    total = count.passes + count.newton + count.hessians
    table.add(label, count.passes, count.newton, count.hessians, total, model.n_iter_[0])
    payload[label] = dict(
        seconds=seconds, fused=count.passes, newton=count.newton, hessian=count.hessians
    )


def main() -> int:
    p = h.base_parser(
        __doc__,
        threads_help="threads (n_jobs)",
        repeat_help="interleaved rounds of each side's fit at its tol (default 3)",
    )
    p.add_argument("--name", default=None)
    p.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help="comma-separated subset of: " + ",".join(SECTIONS),
    )
    args = p.parse_args()
    if args.repeat is None:
        args.repeat = 3
    if args.patience is None:
        args.patience = 0.0 if args.quick else 0.5
    sections = [s for s in SECTIONS if s in args.sections.split(",")]
    if args.name is None:  # a quick or partial run never overwrites the full table
        partial = "" if sections == list(SECTIONS) else "_" + "_".join(sections)
        args.name = "logistic" + ("_quick" if args.quick else "") + partial
    t_start = time.perf_counter()
    scale = 10 if args.quick else 1
    info = h.machine_info(args.threads)
    print(h.machine_line(info))
    payload: dict = {"gap": GAP}
    vs = h.Table(
        f"LogisticRegression(solver='lbfgs') vs scikit-learn's lbfgs, equal objective ({GAP:g})",
        [
            "problem",
            "speed-up",
            "vs sklearnex",
            "tol ours / theirs",
            "gap ours / theirs",
            "evals ours (in all rows) / theirs",
            "our Hessian rows",
            "eval ÷ read: ours",
            "theirs",
            "iterations ours / theirs",
            "others' load",
        ],
        notes=[
            "eval ÷ read: one fused pass (loss and gradient) over one single-threaded "
            "numpy read of X (PERF.md's floor); theirs: scikit-learn's mean "
            "LinearModelLoss.loss_gradient time in the timed fit over the same read.",
            "speed-up, vs sklearnex: medians of each side's fit at the tol it needed, "
            "refitted in --repeat interleaved rounds (busy rounds redone within --patience); "
            "others' load: the CPU other processes used during the rounds kept (cores).",
            "evals ours: fused passes of the timed fit, in brackets counted in passes over all "
            "rows (lbfgs's subsample start, solvers/_warm.py, passes over every 10th row); "
            "our Hessian rows: the subsample's Hessian pass, in passes over all rows. "
            "Iterations: those on all rows.",
            "vs sklearnex: scikit-learn-intelex's LogisticRegression(solver='lbfgs') time at "
            "equal objective over ours (n/a: not installed).",
            "(cold start): lbfgs with the subsample start off, L-BFGS from zero on all rows.",
        ],
    )
    nb = 1_000_000 // scale
    for dtype in (np.float64, np.float32) if "binary" in sections else ():
        X, y = problem(nb, 100, 1, dtype)
        label = f"binary n={nb} d=100 {np.dtype(dtype).name}"
        compare(vs, label, X, y, 1.0, args, payload)
        compare(vs, label, X, y, 1.0, args, payload, cold=True)
    nm = 200_000 // scale
    if "multinomial" in sections:
        X, y = problem(nm, 100, 10, np.float64)
        compare(vs, f"multinomial k=10 n={nm} d=100 float64", X, y, 1.0, args, payload)
    nt = h.Table(
        "Newton: passes over X to tol 1e-8",
        ["problem", "fused passes", "Newton passes", "Hessian passes", "total", "iterations"],
        notes=["Newton pass: loss, gradient and Hessian XᵀDX in one read of X (hessian.hpp)."],
    )
    for d in (20, 100, 200) if "newton" in sections else ():
        X, y = problem(nb // 4, d, 1, np.float64, seed=d)
        newton_passes(nt, f"binary n={nb // 4} d={d}", X, y, 1.0, args.threads, payload)
    if sklearnex is not None:
        version = importlib.metadata.version("scikit-learn-intelex")
        vs.notes.append(f"scikit-learn-intelex {version}")
    tables = ([vs] if {"binary", "multinomial"} & set(sections) else []) + (
        [nt] if "newton" in sections else []
    )
    return h.finish(args, "LogisticRegression vs scikit-learn", info, payload, tables, t_start)


if __name__ == "__main__":
    raise SystemExit(main())
