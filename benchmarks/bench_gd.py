"""Gradient-descent benchmark: fastlinreg's fused step against the read floor,
numpy and PyTorch; the tutorial's 16-point fit against PyTensor and numpy;
scaling with problem size and threads; threads against a busy neighbour
process; peak memory of a fit.

Run from the repository root::

    python benchmarks/bench_gd.py            # full run, ~5 minutes
    python benchmarks/bench_gd.py --quick    # smaller arrays, under a minute

Writes ``benchmarks/results/gd.json``, ``gd.md`` and ``gd_scaling.png``
(``gd_quick.*`` with ``--quick``). Every reported figure is a ratio of two
measurements taken in this run; see ``benchmarks/README.md``.
"""

from __future__ import annotations

import sys
import time
import warnings
from dataclasses import dataclass

import _harness as H
import numpy as np

from fastlinreg import LinearRegression
from fastlinreg.datasets import TUTORIAL_LEARNING_RATE, TUTORIAL_STEPS, load_tutorial

# A step that is safe for standard-normal X (Hessian eigenvalues near 1).
LR = 1e-3
PASSES_TARGET = 1.25  # read-floor passes per fused step (PERF.md)
NUMPY_TARGET = 3.0  # speed-up over the numpy step (PERF.md)
# tutorial fit() vs the seed program on PyTensor (PERF.md): step by step, and "auto"
PYTENSOR_TARGET = {"fastlinreg": 200.0, "fastlinreg_n_jobs_1": 200.0, "fastlinreg_auto": 1000.0}
MEMORY_TARGET = 0.05  # extra peak memory during fit, as a fraction of size(X)


@dataclass(frozen=True)
class Case:
    label: str
    n: int
    d: int
    dtype: str
    k: int  # outputs
    quick_n: int
    target: bool  # whether PERF.md's per-step targets apply


CASES = [
    Case("f64 d=100", 1_000_000, 100, "float64", 1, 50_000, True),
    Case("f32 d=100", 2_000_000, 100, "float32", 1, 100_000, True),
    Case("f64 d=8", 10_000_000, 8, "float64", 1, 500_000, True),
    Case("f64 d=1000", 100_000, 1000, "float64", 1, 5_000, True),
    Case("f64 d=100 k=4", 1_000_000, 100, "float64", 4, 50_000, False),
]


def gd_model(steps: int, n_jobs: int, **kw) -> LinearRegression:
    return LinearRegression(
        solver="gd", learning_rate=LR, tol=None, max_iter=steps, n_jobs=n_jobs, **kw
    )


def fit_targets(Y: np.ndarray) -> np.ndarray:
    """The y handed to fit: 1-D for one output, as users pass it."""
    return Y[:, 0] if Y.shape[1] == 1 else Y


# ------------------------------------------------------------- peers
def numpy_step_fn(X, Y, lr):
    """The numpy step ``X.T @ (X @ W + b - Y)`` in X's dtype (a float64 W
    against a float32 X would make numpy copy X)."""
    dt = X.dtype
    Yd = Y.astype(dt, copy=False)
    W = np.zeros((X.shape[1], Y.shape[1]), dtype=dt)
    b = np.zeros(Y.shape[1], dtype=dt)
    if Y.shape[1] == 1:
        Yd, W = Yd[:, 0], W[:, 0]
    n = X.shape[0]

    def step():
        R = X @ W + b - Yd
        G = X.T @ R
        gb = R.sum(axis=0)
        W[...] -= dt.type(lr / n) * G
        b[...] -= dt.type(lr / n) * gb

    return step


def torch_step_fn(torch, X, Y, lr):
    """One autograd step of the same loss on the same memory (``from_numpy``)."""
    Xt = torch.from_numpy(X)
    Yd = Y.astype(X.dtype, copy=False)
    Yt = torch.from_numpy(Yd[:, 0] if Y.shape[1] == 1 else Yd)
    shape = (X.shape[1],) if Y.shape[1] == 1 else (X.shape[1], Y.shape[1])
    Wt = torch.zeros(shape, dtype=Xt.dtype, requires_grad=True)
    bt = torch.zeros(Y.shape[1], dtype=Xt.dtype, requires_grad=True)
    n = X.shape[0]

    def step():
        loss = ((Xt @ Wt + bt - Yt) ** 2).sum() / (2 * n)
        loss.backward()
        with torch.no_grad():
            Wt.sub_(lr * Wt.grad)
            bt.sub_(lr * bt.grad)
        Wt.grad = None
        bt.grad = None

    return step


def reference_step(X, Y, W0, b0, lr, chunk=65536):
    """One plain GD step in float64 numpy, chunked so that a float32 X is
    never converted whole. W0 (d, k), b0 (k); returns (W1, b1)."""
    n = X.shape[0]
    G = np.zeros_like(W0)
    gb = np.zeros_like(b0)
    for s in range(0, n, chunk):
        Xc = X[s : s + chunk].astype(np.float64)
        R = Xc @ W0 + b0 - Y[s : s + chunk]
        G += Xc.T @ R
        gb += R.sum(axis=0)
    return W0 - lr * G / n, b0 - lr * gb / n


def check_one_step(X, Y, threads, seed=1) -> dict:
    """fastlinreg's first step equals numpy's: compare the coefficient updates."""
    rng = np.random.default_rng(seed)
    d, k = X.shape[1], Y.shape[1]
    W0 = 0.1 * rng.standard_normal((d, k))
    b0 = 0.1 * rng.standard_normal(k)
    m = gd_model(1, threads).fit(
        X,
        fit_targets(Y),
        coef_init=W0[:, 0] if k == 1 else W0.T,
        intercept_init=b0[0] if k == 1 else b0,
    )
    W1 = np.asarray(m.coef_).reshape(k, d).T
    b1 = np.atleast_1d(m.intercept_)
    Wr, br = reference_step(X, Y, W0, b0, LR)
    upd = np.concatenate([(Wr - W0).ravel(), br - b0])
    # coef_ follows X's dtype: a float32 X's model is stored in float32, so
    # the comparison allows half an ulp of that storage on top of 1e-8.
    err = np.concatenate([(W1 - Wr).ravel(), b1 - br])
    stored = float(np.max(np.abs(np.concatenate([Wr.ravel(), br]))))
    storage = 0.5 * float(np.spacing(np.asarray(stored, dtype=m.coef_.dtype)))
    rel = float(np.max(np.abs(err)) / np.max(np.abs(upd)))
    ok = float(np.max(np.abs(err))) <= 1e-8 * float(np.max(np.abs(upd))) + storage
    return {
        "max_rel_err_of_update": rel,
        "storage_ulp_of_update": storage / np.max(np.abs(upd)),
        "ok": ok,
    }


# ------------------------------------------------------------ sections
def bench_cases(args, torch) -> tuple[list[dict], H.Table]:
    T = args.threads
    table = H.Table(
        "Fused GD step: per-step cost (fit k₂ steps − fit k₁ steps)/(k₂−k₁), in read-floor "
        "passes, and speed-ups",
        [
            "case",
            "n",
            "size(X)",
            "step ÷ floor",
            "step ÷ fastest read",
            "numpy step ÷ floor",
            "speed-up vs numpy",
            "speed-up vs torch",
            f"≤{PASSES_TARGET} passes (floor / fastest read)",
            f"≥{NUMPY_TARGET:g}× numpy",
            "gradient check",
            "others' load",
        ],
    )
    results = []
    for ci, case in enumerate(CASES):
        n = case.quick_n if args.quick else case.n
        print(f"[cases] {case.label} n={n} ...", flush=True)
        X = H.random_matrix(n, case.d, case.dtype, seed=10 + ci)
        Y = np.random.default_rng(100 + ci).standard_normal((n, case.k))
        y_fit = fit_targets(Y)

        def fit_steps(s, X=X, y_fit=y_fit):
            gd_model(s, T).fit(X, y_fit)

        k1 = 2
        k2 = H.steps_for_budget(fit_steps, k1, 0.1 if args.quick else 1.0, lo=10, hi=10_000)
        with H.thread_limits(T):
            samplers = {
                "floor": H.sample_read_floor(X, Y, k=3),
                "read_T": H.sample_read_floor(X, Y, k=3, threads=T, reduce="max"),
            }
            samplers["fastlinreg"] = H.sample_step(fit_steps, k1, k2)
            np_step = numpy_step_fn(X, Y, LR)
            np_step()
            samplers["numpy"] = H.sample_median(np_step, 2)
            if torch is not None:
                t_step = torch_step_fn(torch, X, Y, LR)
                t_step()
                t_step()
                samplers["torch"] = H.sample_median(t_step, 2)
            S, rounds = H.interleaved(
                samplers, args.repeat, settle_after=("numpy", "torch"), patience=args.patience
            )
        check = check_one_step(X, Y, T)
        S["fastest_read"] = list(np.minimum(S["floor"], S["read_T"]))
        r = {
            "label": case.label,
            "n": n,
            "d": case.d,
            "k": case.k,
            "dtype": case.dtype,
            "x_bytes": X.nbytes,
            "k1": k1,
            "k2": k2,
            "samples": S,
            "check": check,
            "others_load_cores": rounds.load,
            "rounds": rounds,
            "passes": H.median_ratio(S["fastlinreg"], S["floor"]),
            "passes_fastest": H.median_ratio(S["fastlinreg"], S["fastest_read"]),
            "numpy_passes": H.median_ratio(S["numpy"], S["floor"]),
            "torch_passes": H.median_ratio(S["torch"], S["floor"]) if "torch" in S else None,
            "vs_numpy": H.median_ratio(S["numpy"], S["fastlinreg"]),
            "vs_torch": H.median_ratio(S["torch"], S["fastlinreg"]) if "torch" in S else None,
            "read_gbps": (X.nbytes + Y.nbytes) / H.median(S["floor"]) / 1e9,
            "fastest_read_gbps": (X.nbytes + Y.nbytes) / H.median(S["fastest_read"]) / 1e9,
        }
        results.append(r)
        table.add(
            case.label,
            f"{n:.0e}".replace("+0", ""),
            H.bytes_h(X.nbytes),
            f"{r['passes']:.2f}",
            f"{r['passes_fastest']:.2f}",
            f"{r['numpy_passes']:.2f}",
            H.fmt_ratio(r["vs_numpy"]),
            H.fmt_ratio(r["vs_torch"]),
            (
                f"{H.fmt_check(r['passes'] <= PASSES_TARGET)} / "
                f"{H.fmt_check(r['passes_fastest'] <= PASSES_TARGET)}"
            )
            if case.target
            else "— (no target)",
            H.fmt_check(r["vs_numpy"] >= NUMPY_TARGET) if case.target else "— (no target)",
            f"{'ok' if check['ok'] else '**FAILED**'} ({check['max_rel_err_of_update']:.0e})",
            H.fmt_load(rounds.load, rounds),
        )
        print(
            f"    floor {H.median(S['floor']) * 1e3:.1f} ms ({r['read_gbps']:.1f} GB/s), "
            f"fastest read {r['fastest_read_gbps']:.1f} GB/s; "
            f"fastlinreg {H.median(S['fastlinreg']) * 1e3:.1f} ms/step = {r['passes']:.2f} "
            f"passes; numpy {H.median(S['numpy']) * 1e3:.1f} ms; torch "
            f"{H.median(S['torch']) * 1e3 if 'torch' in S else float('nan'):.1f} ms; "
            f"check {check['max_rel_err_of_update']:.1e}; others' load "
            f"{H.fmt_load(rounds.load, rounds)}",
            flush=True,
        )
        del X, Y, y_fit, samplers, np_step
    table.notes += [
        "floor = numpy `X.reshape(-1).sum()` + `y.sum()` on the same arrays (one thread: "
        "PERF.md's read floor). fastest read = the faster, in each round, of that floor and "
        f"`np.max` over {T} contiguous blocks in {T} threads: where one core cannot stream "
        "memory at full speed, the sum is compute-bound and this is the stricter floor. "
        "Ratios are medians over rounds that each time every contender back to back.",
        f"fastlinreg: `LinearRegression(solver='gd', learning_rate={LR}, tol=None, "
        f"n_jobs={T})`; numpy: `X.T @ (X @ w + b - y)` in X's dtype; torch: one autograd "
        f"step on `torch.from_numpy(X)`; all with {T} threads.",
        "gradient check: the coefficients after one fastlinreg step against a float64 numpy "
        "step, max |difference| ÷ max |update|; ok below 1e-8 plus half an ulp of the "
        "coefficients' storage (coef_ follows X's dtype: float32 for a float32 X).",
        "others' load: median CPU cores used by other processes during the rounds kept (0 = "
        f"quiet machine), with how many kept rounds were quiet (≤{H.QUIET_CORES} cores) and how "
        "many rounds ran (loaded rounds are redone, within a time budget). Under load the "
        "multi-threaded contenders are slowed far more than the one-thread floor.",
        "the k=4 (multi-output) case has no target in PERF.md; it is shown for comparison.",
    ]
    return results, table


def bench_tutorial(args, pytensor_mods) -> tuple[dict, H.Table]:
    print("[tutorial] 16 points, 10000 steps ...", flush=True)
    x, y = load_tutorial()
    X1 = x.reshape(-1, 1)
    lr, steps, m0, c0 = TUTORIAL_LEARNING_RATE, TUTORIAL_STEPS, 0.5, -0.25

    def fl_fit(n_jobs=None, solver="gd", max_iter=steps):
        return LinearRegression(
            solver=solver, learning_rate=lr, max_iter=max_iter, tol=None, n_jobs=n_jobs
        ).fit(X1, y, coef_init=[m0], intercept_init=c0)

    ref = fl_fit()
    fm, fc = float(ref.coef_[0]), float(ref.intercept_)
    auto_solver = fl_fit(solver="auto").solver_

    # The plain numpy loop: the tutorial's arithmetic, one step per iteration.
    def numpy_loop():
        m, c, n = m0, c0, x.shape[0]
        for _ in range(steps):
            r = x * m + c - y
            _cost = (r @ r) / (2 * n)
            gm, gc = (r @ x) / n, r.sum() / n
            m, c = m - lr * gm, c - lr * gc
        return m, c

    nm, nc = numpy_loop()
    samplers = {
        "fastlinreg": H.sample_median(fl_fit, 5),
        "fastlinreg_n_jobs_1": H.sample_median(lambda: fl_fit(n_jobs=1), 5),
        "fastlinreg_auto": H.sample_median(lambda: fl_fit(solver="auto"), 5),
        "numpy_loop": H.sample_median(numpy_loop, 1),
    }
    pt_res = None
    if pytensor_mods is not None:
        pytensor, pt = pytensor_mods
        t0 = time.perf_counter()
        # The seed program, as written in the tutorial (Theano -> PyTensor).
        m = pytensor.shared(m0, name="m")
        c = pytensor.shared(c0, name="c")
        xv, yv = pt.vector("x"), pt.vector("y")
        num_samples = x.shape[0]
        prediction = pt.dot(xv, m) + c
        cost = pt.sum(pt.pow(prediction - yv, 2)) / (2 * num_samples)
        gradm, gradc = pt.grad(cost, m), pt.grad(cost, c)
        train = pytensor.function(
            [xv, yv], cost, updates=[(m, m - lr * gradm), (c, c - lr * gradc)]
        )
        train(x, y)  # the first call compiles the backend's code (numba JIT / C thunks)
        compile_s = time.perf_counter() - t0

        def pt_loop():
            m.set_value(m0)
            c.set_value(c0)
            for _ in range(steps):
                train(x, y)

        pt_loop()
        pm, pc = float(m.get_value()), float(c.get_value())
        samplers["pytensor_loop"] = H.sample_median(pt_loop, 1)
        pt_res = {
            "compile_s": compile_s,
            "m": pm,
            "c": pc,
            "version": pytensor.__version__,
            "linker": str(pytensor.config.linker),
            "mode": str(pytensor.config.mode),
            "agrees": abs(pm - fm) < 1e-9 and abs(pc - fc) < 1e-9,
        }

    S, rounds = H.interleaved(samplers, max(5, args.repeat), patience=args.patience)
    with H.LoadMonitor() as load:
        overhead = H.per_step_cost(lambda s: fl_fit(max_iter=s), 100, steps, repeat=5)
        overhead_1 = H.per_step_cost(lambda s: fl_fit(n_jobs=1, max_iter=s), 100, steps, repeat=5)
    res = {
        "samples": S,
        "auto_solver": auto_solver,
        "per_step": overhead,
        "per_step_n_jobs_1": overhead_1,
        "fastlinreg_coef": fm,
        "fastlinreg_intercept": fc,
        "numpy_m": nm,
        "numpy_c": nc,
        "numpy_agrees": abs(nm - fm) < 1e-9 and abs(nc - fc) < 1e-9,
        "pytensor": pt_res,
        "others_load_cores": rounds.load,
        "rounds": rounds,
        "others_load_cores_per_step": load.cores,
    }
    table = H.Table(
        f"Tutorial workload: 16 points, {steps} steps, lr {lr} (the whole `fit()` call)",
        [
            "fastlinreg fit() variant",
            "speed-up vs PyTensor loop",
            "speed-up vs numpy loop",
            "PERF.md target vs PyTensor (gd ≥200×, auto ≥1000×)",
        ],
    )
    variants = [
        ("solver='gd', n_jobs=None (default threads)", "fastlinreg"),
        ("solver='gd', n_jobs=1", "fastlinreg_n_jobs_1"),
        (f"solver='auto' (→ '{auto_solver}')", "fastlinreg_auto"),
    ]
    for label, key in variants:
        r_pt = H.median_ratio(S["pytensor_loop"], S[key]) if pt_res else None
        r_np = H.median_ratio(S["numpy_loop"], S[key])
        res[f"vs_pytensor_{key}"], res[f"vs_numpy_{key}"] = r_pt, r_np
        table.add(
            label,
            H.fmt_ratio(r_pt),
            H.fmt_ratio(r_np),
            H.fmt_check(r_pt >= PYTENSOR_TARGET[key]) if r_pt else "n/a",
        )
    fit_med = H.median(S["fastlinreg"])
    table.notes += [
        f"per-step cost inside fit() ((fit {steps} − fit 100 steps)/{steps - 100}): "
        f"{overhead.per_step * 1e9:.0f} ns with default threads, "
        f"{overhead_1.per_step * 1e9:.0f} ns with n_jobs=1; fixed cost of one fit "
        f"(validation, setup): {overhead.fixed * 1e6:.0f} µs / {overhead_1.fixed * 1e6:.0f} µs, "
        f"i.e. {overhead.fixed / fit_med:.0%} of the default fit.",
        (
            "PyTensor: the seed program, `pytensor.function([x, y], cost, updates=...)`, the "
            f"{steps}-call loop timed alone ({H.median(S['pytensor_loop']) / steps * 1e6:.1f} µs "
            f"per call); building the function + its first call took {pt_res['compile_s']:.2f} s, "
            f"not in the ratio; PyTensor {pt_res['version']}, linker '{pt_res['linker']}'."
        )
        if pt_res
        else "PyTensor not importable here: n/a.",
        f"final (m, c): fastlinreg ({fm:.9f}, {fc:.9f}); numpy loop agrees: "
        f"{res['numpy_agrees']}; PyTensor agrees: {pt_res['agrees'] if pt_res else 'n/a'}.",
        f"others' load: {H.fmt_load(rounds.load, rounds)} during the ratios, "
        f"{H.fmt_load(load.cores)} during the per-step measurement.",
    ]
    print(
        f"    fit {fit_med * 1e3:.2f} ms; PyTensor loop "
        f"{H.median(S['pytensor_loop']) * 1e3 if pt_res else float('nan'):.1f} ms; numpy "
        f"loop {H.median(S['numpy_loop']) * 1e3:.1f} ms; {overhead.per_step * 1e9:.0f} ns/step, "
        f"fixed {overhead.fixed * 1e6:.0f} µs",
        flush=True,
    )
    return res, table


def bench_scaling(args) -> tuple[dict, H.Table]:
    d, T = 100, args.threads
    sizes = [1e4, 1e5, 1e6, 4e6] if args.quick else [1e4, 3e4, 1e5, 3e5, 1e6, 3e6, 1e7, 3e7, 1e8]
    thread_counts = sorted({1, T})
    n_max = int(sizes[-1]) // d
    print(f"[scaling] d={d}, n·d from {sizes[0]:.0e} to {sizes[-1]:.0e} ...", flush=True)
    Xall = H.random_matrix(n_max, d, "float64", seed=7)
    yall = np.random.default_rng(8).standard_normal(n_max)
    rows = []
    for el in sizes:
        n = int(el) // d
        X, y = Xall[:n], yall[:n]  # row prefixes of a C-contiguous array: no copy
        samplers = {
            "floor": H.sample_read_floor(X, y, k=5),
            "read_T": H.sample_read_floor(X, y, k=5, threads=T, reduce="max"),
        }
        ks = {}
        for nj in thread_counts:

            def fit_steps(s, nj=nj, X=X, y=y):
                gd_model(s, nj).fit(X, y)

            ks[nj] = H.steps_for_budget(fit_steps, 2, 0.08 if args.quick else 0.3, lo=10, hi=50_000)
            samplers[f"fastlinreg_{nj}"] = H.sample_step(fit_steps, 2, ks[nj])
        step = numpy_step_fn(X, y.reshape(-1, 1), LR)
        # Enough numpy steps per sample that Python's call overhead averages out.
        reps = int(np.clip(0.05 / max(4 * samplers["floor"](), 1e-7), 1, 2000))
        samplers["numpy"] = H.sample_mean(step, reps)
        with H.thread_limits(T):
            S, rounds = H.interleaved(
                samplers, args.repeat, settle_after=("numpy",), patience=args.patience
            )
        S["fastest_read"] = list(np.minimum(S["floor"], S["read_T"]))
        row = {
            "elements": n * d,
            "n": n,
            "k2": ks,
            "numpy_reps": reps,
            "samples": S,
            "others_load_cores": rounds.load,
            "rounds": rounds,
        }
        rows.append(row)
        s = "; ".join(
            f"{nj} thr {H.median_ratio(S[f'fastlinreg_{nj}'], S['floor']):.2f} passes"
            for nj in thread_counts
        )
        print(
            f"    n·d={n * d:.0e}: floor {H.median(S['floor']) / (n * d) * 1e9:.3f} ns/el; "
            f"{s}; others' load {H.fmt_load(rounds.load, rounds)}",
            flush=True,
        )
    del Xall, yall

    table = H.Table(
        f"Scaling, d={d} float64: per-step cost in read-floor passes (one-thread floor)",
        ["n·d", "size(X)"]
        + [f"fastlinreg n_jobs={nj}" for nj in thread_counts]
        + [f"fastlinreg n_jobs={T} ÷ fastest read"]
        + ([f"n_jobs={T} vs 1 (speed-up)"] if T > 1 else [])
        + [f"speed-up vs numpy ({T} thr)", "others' load"],
    )
    for row in rows:
        S = row["samples"]
        cells = [f"{row['elements']:.0e}".replace("+0", ""), H.bytes_h(row["elements"] * 8)]
        cells += [
            f"{H.median_ratio(S[f'fastlinreg_{nj}'], S['floor']):.2f}" for nj in thread_counts
        ]
        cells.append(f"{H.median_ratio(S[f'fastlinreg_{T}'], S['fastest_read']):.2f}")
        if T > 1:
            cells.append(H.fmt_ratio(H.median_ratio(S["fastlinreg_1"], S[f"fastlinreg_{T}"])))
        cells.append(H.fmt_ratio(H.median_ratio(S["numpy"], S[f"fastlinreg_{T}"])))
        cells.append(H.fmt_load(row["rounds"].load, row["rounds"]))
        table.add(*cells)
    table.notes += [
        "below ~1e6 elements X sits in cache, and the floor (a numpy call) is dominated by "
        "Python call overhead, so passes < 1 there are expected.",
        f"plot: results/{args.name}_scaling.png (ns per element of X per step, log-log).",
    ]
    plot_scaling(args, rows, thread_counts)
    return {"d": d, "rows": rows}, table


def _round_load(row) -> float | None:
    """Others' load of a scaling row, live (RoundsInfo) or read back from JSON."""
    r = row["rounds"]
    return (
        r.load
        if isinstance(r, H.RoundsInfo)
        else (float(np.median(r["loads"])) if r["loads"] else None)
    )


def replot(args) -> int:
    """Redraw the scaling PNG from an existing results JSON (no measuring)."""
    import json

    doc = json.loads((H.RESULTS_DIR / f"{args.name}.json").read_text())
    rows = doc["scaling"]["rows"]
    args.info, args.threads = doc["machine"], doc["machine"]["threads_used"]
    counts = sorted(int(k.split("_")[1]) for k in rows[0]["samples"] if k.startswith("fastlinreg_"))
    plot_scaling(args, rows, counts)
    return 0


def plot_scaling(args, rows, thread_counts) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    el = np.array([r["elements"] for r in rows], dtype=float)
    fl = np.array([H.median(r["samples"]["floor"]) for r in rows]) / el * 1e9
    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=110)
    ax.loglog(el, fl, "k--", label="read floor (numpy sum, 1 thread)")
    flT = np.array([H.median(r["samples"]["fastest_read"]) for r in rows]) / el * 1e9
    ax.loglog(
        el,
        flT,
        "--",
        color="tab:brown",
        label=f"fastest read (sum, or max in {args.threads} threads)",
    )
    ax.loglog(
        el, flT * PASSES_TARGET, ":", color="grey", label=f"{PASSES_TARGET}× fastest read (target)"
    )
    for nj, style in zip(thread_counts, ("o-", "s-", "^-")):
        per = np.array([H.median(r["samples"][f"fastlinreg_{nj}"]) for r in rows]) / el * 1e9
        ax.loglog(el, per, style, label=f"fastlinreg GD step, n_jobs={nj}")
    npy = np.array([H.median(r["samples"]["numpy"]) for r in rows]) / el * 1e9
    ax.loglog(el, npy, "x-", color="tab:red", label=f"numpy X.T@(X@w+b−y), {args.threads} thr")
    busy = [i for i, r in enumerate(rows) if (_round_load(r) or 0.0) > H.QUIET_CORES]
    for j, i in enumerate(busy):  # sizes measured while other processes were busy
        ax.axvspan(
            el[i] / 1.25,
            el[i] * 1.25,
            color="tab:red",
            alpha=0.08,
            lw=0,
            label=f"others' load > {H.QUIET_CORES} cores" if j == 0 else None,
        )
    ax.set_xlabel("elements of X (n·d), d=100, float64")
    ax.set_ylabel("ns per element per step")
    ax.set_title(
        f"GD step cost vs size — {args.info['cpu']}, {args.info['cores_available']} cores",
        fontsize=9,
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = H.RESULTS_DIR / f"{args.name}_scaling.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    print(f"    wrote {path}", flush=True)


def bench_neighbour(args) -> tuple[dict, H.Table]:
    """Threads against a busy neighbour: one other process spinning on a core.

    The per-step barrier must not make a multi-threaded fit slower than a
    one-thread fit when a core is taken: the late thread has no core, and a
    partner spinning at the barrier keeps it off the other one. Measured
    quiet, then with the neighbour, at sizes from cache to memory.
    """
    import subprocess

    d, T = 100, args.threads
    if T < 2:
        print("[neighbour] skipped: needs --threads >= 2", flush=True)
        return {"skipped": "threads < 2"}, H.Table("Busy neighbour: skipped (one thread)", [""])
    sizes = [3e5, 3e6] if args.quick else [3e5, 3e6, 3e7]
    print(
        f"[neighbour] d={d}, n·d {', '.join(f'{e:.0e}' for e in sizes)}, one busy process",
        flush=True,
    )
    rows = []
    for el in sizes:
        n = int(el) // d
        X = H.random_matrix(n, d, "float64", seed=11)
        y = np.random.default_rng(12).standard_normal(n)
        samplers, ks = {}, {}
        for nj in (1, T):

            def fit_steps(s, nj=nj, X=X, y=y):
                gd_model(s, nj).fit(X, y)

            ks[nj] = H.steps_for_budget(fit_steps, 2, 0.05 if args.quick else 0.2, lo=10, hi=50_000)
            samplers[f"fastlinreg_{nj}"] = H.sample_step(fit_steps, 2, ks[nj])
        quiet, quiet_rounds = H.interleaved(samplers, args.repeat, patience=args.patience)
        spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            time.sleep(0.2)  # let it be scheduled
            busy, busy_rounds = H.interleaved(samplers, args.repeat)
        finally:
            spin.kill()
            spin.wait()
        rows.append(
            {
                "elements": n * d,
                "n": n,
                "k2": ks,
                "quiet": quiet,
                "busy": busy,
                "quiet_load_cores": quiet_rounds.load,
                "busy_load_cores": busy_rounds.load,
            }
        )
        print(
            f"    n·d={n * d:.0e}: {T} thr ÷ 1 thr quiet "
            f"{H.median_ratio(quiet[f'fastlinreg_{T}'], quiet['fastlinreg_1']):.2f}, "
            f"busy {H.median_ratio(busy[f'fastlinreg_{T}'], busy['fastlinreg_1']):.2f} "
            f"(others' load {H.fmt_load(busy_rounds.load)})",
            flush=True,
        )

    table = H.Table(
        f"Busy neighbour: n_jobs={T} step ÷ n_jobs=1 step, d={d} float64, quiet and with one "
        "other process spinning on a core",
        ["n·d", "size(X)", "quiet", "busy neighbour", "others' load (quiet / busy)"],
    )
    for row in rows:
        q = H.median_ratio(row["quiet"][f"fastlinreg_{T}"], row["quiet"]["fastlinreg_1"])
        b = H.median_ratio(row["busy"][f"fastlinreg_{T}"], row["busy"]["fastlinreg_1"])
        table.add(
            f"{row['elements']:.0e}".replace("+0", ""),
            H.bytes_h(row["elements"] * 8),
            f"{q:.2f}",
            f"{b:.2f}",
            f"{H.fmt_load(row['quiet_load_cores'])} / {H.fmt_load(row['busy_load_cores'])}",
        )
    table.notes += [
        "below 1: the threads help; 1: as fast as one thread. With a core taken, one thread's "
        "worth is the most the machine has to give, so the aim is not to lose to it.",
        "the descent's threads meet at a barrier that spins at most 50 µs, then sleeps "
        "(cpp/include/fastlinreg/parallel.hpp; libgomp's `omp barrier` spins for "
        "milliseconds), and when thread 0's recent waits for the others exceed what they "
        "save, it runs the rest of the fit alone (cpp/include/fastlinreg/descent.hpp). The "
        "steps before that switch are in the per-step figure.",
    ]
    return {"d": d, "rows": rows}, table


def bench_memory(args) -> tuple[list[dict], H.Table]:
    scale = 25 if args.quick else 1
    specs = [
        (
            "gd, lr float",
            1_000_000 // scale,
            100,
            "float64",
            {"solver": "gd", "learning_rate": LR, "max_iter": 3, "tol": None},
        ),
        (
            "gd, lr float",
            2_000_000 // scale,
            100,
            "float32",
            {"solver": "gd", "learning_rate": LR, "max_iter": 3, "tol": None},
        ),
        (
            "gd, lr 'auto'",
            1_000_000 // scale,
            100,
            "float64",
            {"solver": "gd", "learning_rate": "auto", "max_iter": 3, "tol": None},
        ),
        ("exact", 1_000_000 // scale, 100, "float64", {"solver": "exact"}),
    ]
    table = H.Table(
        "Memory: peak RSS during fit on a C-contiguous X (fresh subprocess, VmHWM)",
        [
            "fit",
            "dtype",
            "size(X)",
            "extra peak ÷ size(X)",
            "peak ÷ size(X)",
            f"no copy of X (≤{MEMORY_TARGET:.0%})",
        ],
    )
    out = []
    for name, n, d, dtype, params in specs:
        print(f"[memory] {name} {dtype} n={n} ...", flush=True)
        r = H.peak_rss_of_fit(n, d, dtype, {**params, "n_jobs": args.threads})
        r.update({"fit": name, "dtype": dtype, "n": n, "d": d, "params": params})
        out.append(r)
        table.add(
            name,
            dtype,
            H.bytes_h(r["x_bytes"]),
            f"{r['extra_over_x']:.3f}",
            f"{r['peak_over_x']:.3f}",
            H.fmt_check(r["no_copy_of_x"]),
        )
        print(f"    extra {H.bytes_h(r['extra'])} = {r['extra_over_x']:.3%} of X", flush=True)
    table.notes += [
        "extra = peak RSS during the fit (VmHWM, reset just before it) − RSS with X and y "
        "allocated; peak ÷ size(X) = (size(X) + extra) ÷ size(X).",
        "y is float64 (n values), allocated before the baseline.",
    ]
    return out, table


def main(argv=None) -> int:
    p = H.base_parser(
        __doc__,
        threads_help="threads for fastlinreg (n_jobs), numpy's BLAS and torch (default: the "
        "cores available)",
        repeat_help="interleaved rounds per measurement (default 5, 3 with --quick)",
    )
    p.add_argument(
        "--replot", action="store_true", help="only redraw the scaling PNG from the existing JSON"
    )
    p.add_argument(
        "--sections",
        default="cases,tutorial,scaling,neighbour,memory",
        help="comma-separated subset of: cases,tutorial,scaling,neighbour,memory",
    )
    args = p.parse_args(argv)
    args.name = "gd_quick" if args.quick else "gd"
    if args.repeat is None:
        args.repeat = 3 if args.quick else 5
    if args.patience is None:
        args.patience = 0.0 if args.quick else 0.75
    if args.replot:
        return replot(args)
    sections = set(args.sections.split(","))
    H.warn_blas_env()
    warnings.simplefilter("error", RuntimeWarning)

    torch = H.optional_import("torch") if "cases" in sections else None
    pytensor_mods = None
    if "tutorial" in sections:
        pytensor = H.optional_import("pytensor")
        if pytensor is not None:
            import pytensor.tensor as pt

            pytensor_mods = (pytensor, pt)
    args.info = info = H.machine_info(args.threads)
    info["versions"]["torch"] = getattr(torch, "__version__", None)
    info["versions"]["pytensor"] = pytensor_mods[0].__version__ if pytensor_mods else None
    print(H.machine_line(info), flush=True)

    t_start = time.perf_counter()
    payload, tables = {"quick": args.quick, "learning_rate": LR, "section_wall_s": {}}, []
    runners = {
        "cases": lambda: bench_cases(args, torch),
        "tutorial": lambda: bench_tutorial(args, pytensor_mods),
        "scaling": lambda: bench_scaling(args),
        "neighbour": lambda: bench_neighbour(args),
        "memory": lambda: bench_memory(args),
    }
    for name, run in runners.items():
        if name in sections:
            t0 = time.perf_counter()
            payload[name], t = run()
            tables.append(t)
            payload["section_wall_s"][name] = time.perf_counter() - t0
            print(f"    ({name}: {payload['section_wall_s'][name]:.0f} s)", flush=True)
    return H.finish(args, "bench_gd: fused gradient-descent step", info, payload, tables, t_start)


if __name__ == "__main__":
    sys.exit(main())
