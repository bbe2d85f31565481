"""Exact least-squares benchmark: fastlinreg's one-pass statistics + solve
against scikit-learn, scikit-learn-intelex and numpy normal equations; the
compute floor at this run's measured BLAS rate; Gram replay against the exact
fit; the BLAS and hand-written paths of the sufficient statistics, and which
one the code chose.

Run from the repository root::

    python benchmarks/bench_exact.py            # full run, ~5 minutes
    python benchmarks/bench_exact.py --quick    # smaller arrays, under a minute

Writes ``benchmarks/results/exact.json`` and ``exact.md`` (``exact_quick.*``
with ``--quick``). Every reported figure is a ratio of two measurements taken
in this run; see ``benchmarks/README.md``.
"""

from __future__ import annotations

import logging
import sys
import time
import warnings

import _harness as H
import numpy as np
from sklearn.linear_model import LinearRegression as SkLinearRegression

from fastlinreg import LinearRegression, SufficientStats, _core
from fastlinreg._losses import SQUARED
from fastlinreg.backends import DescentConfig, Problem, _gram_kernel, cpu

SKLEARN_TARGET = 20.0  # exact fit vs scikit-learn (PERF.md)
SKLEARNEX_TARGET = 2.0  # exact fit vs scikit-learn-intelex (PERF.md)
GRAM_LR = 1e-3  # a safe step for standard-normal X
GRAM_STEPS = 10_000
COEF_RTOL = 1e-8


def make_problem(n: int, d: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Standard-normal X, y = X w + 3 + noise with O(1) coefficients (so a
    coefficient check compares numbers of a meaningful size)."""
    X = H.random_matrix(n, d, "float64", seed=seed)
    rng = np.random.default_rng(seed + 1)
    w = rng.standard_normal(d)
    y = X @ w
    y += 3.0 + 0.1 * rng.standard_normal(n)
    return X, y, w


def normal_equations(X, y):
    """The plain numpy peer: centred copy of X, then solve (XcᵀXc) w = Xcᵀyc."""
    xm, ym = X.mean(axis=0), y.mean()
    Xc = X - xm
    w = np.linalg.solve(Xc.T @ Xc, Xc.T @ (y - ym))
    return w, ym - xm @ w


def lstsq_reference(X, y):
    """numpy lstsq on the centred problem (the check's reference; not timed
    against the others)."""
    xm, ym = X.mean(axis=0), y.mean()
    w = np.linalg.lstsq(X - xm, y - ym, rcond=None)[0]
    return w, ym - xm @ w


def coef_error(w, b, w_ref, b_ref) -> float:
    scale = max(np.max(np.abs(w_ref)), abs(b_ref))
    return float(max(np.max(np.abs(np.asarray(w) - w_ref)), abs(b - b_ref)) / scale)


class _DaalRan(logging.Handler):
    """Counts sklearnex's log lines saying a call ran on oneDAL, so the table
    can tell whether the intelex peer really ran accelerated."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.accelerated = 0
        self.fallback = 0

    def emit(self, record):
        msg = record.getMessage().lower()
        if "fallback" in msg:  # "...: fallback to original Scikit-learn"
            self.fallback += 1
        elif "accelerated" in msg:  # "...: running accelerated version on CPU"
            self.accelerated += 1


def stats_agree(a, b, rtol: float = 1e-10) -> bool:
    """Whether two ``sufficient_stats`` results agree to ``rtol`` of the data's
    scale: covariance blocks relative to their largest diagonal entry (an
    off-diagonal entry near 0 carries the rounding of sums of size n·var),
    means relative to a standard deviation."""
    wa, mxa, mya, Cxxa, Cxya, Cyya = a
    wb, mxb, myb, Cxxb, Cxyb, Cyyb = b
    scale = max(
        np.max(np.abs(np.diag(Cxxa)), initial=0.0),
        np.max(np.abs(np.diag(Cyya)), initial=0.0),
        1e-300,
    )
    sd = np.sqrt(scale / wa)
    return bool(
        abs(wa - wb) <= rtol * abs(wa)
        and all(
            np.max(np.abs(u - v), initial=0.0) <= rtol * max(sd, 1.0)
            for u, v in ((mxa, mxb), (mya, myb))
        )
        and all(
            np.max(np.abs(u - v), initial=0.0) <= rtol * scale
            for u, v in ((Cxxa, Cxxb), (Cxya, Cxyb), (Cyya, Cyyb))
        )
    )


# ------------------------------------------------------------ sections
def bench_exact(args, SkxLinearRegression) -> tuple[dict, list[H.Table]]:
    T = args.threads
    n, d = (100_000, 100) if args.quick else (1_000_000, 100)
    print(f"[exact] n={n} d={d} float64 ...", flush=True)
    X, y, _ = make_problem(n, d, seed=3)

    models = {
        "fastlinreg": lambda: LinearRegression(solver="exact", n_jobs=T).fit(X, y),
        "sklearn": lambda: SkLinearRegression().fit(X, y),
    }
    if SkxLinearRegression is not None:
        models["sklearnex"] = lambda: SkxLinearRegression().fit(X, y)
    gram_model = LinearRegression(
        solver="gram", learning_rate=GRAM_LR, max_iter=GRAM_STEPS, tol=None, n_jobs=T
    )

    # Results and checks first (untimed).
    t0 = time.perf_counter()
    w_ref, b_ref = lstsq_reference(X, y)
    lstsq_s = time.perf_counter() - t0
    checks = {}
    daal = _DaalRan()
    skx_log = logging.getLogger("sklearnex")
    saved = skx_log.level, skx_log.propagate, skx_log.handlers[:]
    skx_log.handlers = [daal]  # count its lines, print none
    skx_log.setLevel(logging.INFO)
    skx_log.propagate = False
    for name, fit in models.items():
        m = fit()
        checks[name] = coef_error(m.coef_, float(m.intercept_), w_ref, b_ref)
    checks["numpy_normal_equations"] = coef_error(*normal_equations(X, y), w_ref, b_ref)
    skx_log.setLevel(saved[0])
    skx_log.propagate = saved[1]
    skx_log.handlers = saved[2]
    # Gram replay and plain GD follow the same iterates: check on 3 steps.
    kw = dict(learning_rate=GRAM_LR, max_iter=3, tol=None, n_jobs=T)
    g3 = LinearRegression(solver="gram", **kw).fit(X, y)
    s3 = LinearRegression(solver="gd", **kw).fit(X, y)
    gram_vs_gd = float(np.max(np.abs(g3.coef_ - s3.coef_)) / np.max(np.abs(s3.coef_)))

    # The dgemm rate, on a square-ish product of the same dtype, in this run.
    m_rows, m_cols = (4000, 1000) if args.quick else (8000, 1600)
    A = H.random_matrix(m_rows, m_cols, "float64", seed=11)
    B = H.random_matrix(m_rows, m_cols, "float64", seed=12)
    with H.thread_limits(T):
        A.T @ B  # warm-up
        samplers = {name: H.sample_median(fit, 1) for name, fit in models.items()}
        samplers["numpy_normal_equations"] = H.sample_median(lambda: normal_equations(X, y), 1)
        samplers["numpy_xtx"] = H.sample_median(lambda: X.T @ X, 2)
        samplers["gram"] = H.sample_median(lambda: gram_model.fit(X, y), 1)
        samplers["dgemm"] = H.sample_median(lambda: A.T @ B, 3)  # gemm: 2·r·c² flops
        samplers["dsyrk"] = H.sample_median(lambda: A.T @ A, 3)  # numpy uses syrk: r·c·(c+1)
        S, rounds = H.interleaved(
            samplers, args.repeat, settle_after=tuple(samplers), patience=args.patience
        )
        # A replayed step is microseconds against a fit of tenths of a second:
        # time the replay alone, on statistics computed once.
        stats = SufficientStats.from_arrays(X, y, n_jobs=T)

        def replay(k):
            cpu.descend_gram(
                stats, DescentConfig(k, GRAM_LR, None, 0.0, True), np.zeros((d, 1)), np.zeros(1), T
            )

        gram_step = H.per_step_cost(replay, 10, GRAM_STEPS, repeat=args.repeat)
    gemm_rate = [2.0 * m_rows * m_cols * m_cols / t for t in S["dgemm"]]
    syrk_rate = [m_rows * m_cols * (m_cols + 1.0) / t for t in S["dsyrk"]]
    flops = n * d * (d + 1.0)  # forming XᵀX, symmetric
    S["compute_floor"] = [flops / r for r in gemm_rate]
    S["compute_floor_syrk"] = [flops / r for r in syrk_rate]
    fl = S["fastlinreg"]
    exact_choice = _gram_kernel.choose(n, d, 1)
    res = {
        "gram_kernel": {"kernel": exact_choice.kernel, "why": exact_choice.reason},
        "n": n,
        "d": d,
        "samples": S,
        "checks": checks,
        "lstsq_s": lstsq_s,
        "gram_vs_gd_3_steps": gram_vs_gd,
        "gram_per_step": gram_step,
        "gemm_gflops": H.median(gemm_rate) / 1e9,
        "syrk_gflops": H.median(syrk_rate) / 1e9,
        "gemm_shape": [m_rows, m_cols],
        "others_load_cores": rounds.load,
        "rounds": rounds,
        "sklearnex_log": {"accelerated": daal.accelerated, "fallback": daal.fallback},
    }
    res["speedup"] = {k: H.median_ratio(S[k], fl) for k in S}
    res["vs_floor"] = H.median_ratio(fl, S["compute_floor"])
    res["vs_floor_syrk"] = H.median_ratio(fl, S["compute_floor_syrk"])

    t1 = H.Table(
        f"Exact OLS, n={n:.0e} d={d} float64: fastlinreg `solver='exact'` against peers",
        [
            "contender",
            "its time ÷ fastlinreg's (fastlinreg speed-up)",
            "its time ÷ compute floor",
            "coefficients vs numpy lstsq (max rel. diff)",
            "target",
        ],
    )
    rows = [
        ("fastlinreg `LinearRegression(solver='exact')`", "fastlinreg", None),
        ("scikit-learn `LinearRegression`", "sklearn", SKLEARN_TARGET),
        ("scikit-learn-intelex `LinearRegression`", "sklearnex", SKLEARNEX_TARGET),
        ("numpy normal equations (centred copy + solve)", "numpy_normal_equations", None),
        ("numpy `X.T @ X` alone (no centring, no solve)", "numpy_xtx", None),
    ]
    for label, key, target in rows:
        if key not in S:
            t1.add(label, "n/a (not importable)", "n/a", "n/a", f"≥{target:g}×" if target else "—")
            continue
        sp = res["speedup"][key]
        err = checks.get(key)
        t1.add(
            label,
            H.fmt_ratio(sp),
            f"{H.median_ratio(S[key], S['compute_floor']):.2f}",
            "—" if err is None else f"{'ok' if err < COEF_RTOL else '**FAILED**'} ({err:.0e})",
            f"≥{target:g}×: {H.fmt_check(sp >= target)}" if target else "—",
        )
    t1.notes += [
        f"compute floor = n·d·(d+1) = {flops:.2e} flops (forming the symmetric XᵀX) at this "
        f"run's dgemm rate, {res['gemm_gflops']:.0f} GFLOP/s (`A.T @ B`, A and B "
        f"{m_rows}×{m_cols} float64, {T} BLAS threads); at numpy's syrk rate (`A.T @ A`, "
        f"{res['syrk_gflops']:.0f} GFLOP/s) fastlinreg is {res['vs_floor_syrk']:.2f}× its floor.",
        f"reference: `np.linalg.lstsq` on the centred problem ({lstsq_s:.1f} s, untimed); the "
        f"check passes below {COEF_RTOL:g} (max |Δcoef| ÷ max |coef|).",
        f"fastlinreg's rank update here: {exact_choice.kernel} ({exact_choice.reason}); "
        f"instruction set {_core.isa}.",
        "scikit-learn-intelex log lines seen during its check fit: "
        f"{daal.accelerated} accelerated, {daal.fallback} fallback."
        if SkxLinearRegression is not None
        else "scikit-learn-intelex not importable: n/a.",
        f"others' load during the rounds kept: {H.fmt_load(rounds.load, rounds)}.",
    ]

    t2 = H.Table(
        f"Gram replay: `solver='gram'`, {GRAM_STEPS} steps (learning_rate={GRAM_LR}), "
        f"n={n:.0e} d={d}",
        ["measure", "ratio"],
    )
    t2.add("gram fit time ÷ exact fit time", f"{H.median_ratio(S['gram'], fl):.2f}")
    t2.add(
        f"one replayed step ÷ one exact fit ({gram_step.per_step * 1e6:.1f} µs/step)",
        f"{gram_step.per_step / H.median(fl):.1e}",
    )
    t2.add(
        "gram iterates vs gd iterates after 3 steps (max rel. diff)",
        f"{'ok' if gram_vs_gd < 1e-9 else '**FAILED**'} ({gram_vs_gd:.0e})",
    )
    t2.notes += [
        "both fits read X once for the statistics; the gram fit then replays its "
        "steps at O(d²) each."
    ]
    print(
        f"    fastlinreg {H.median(fl):.3f} s; sklearn x{res['speedup']['sklearn']:.1f}; "
        f"sklearnex x{res['speedup'].get('sklearnex', float('nan')):.2f}; numpy NE "
        f"x{res['speedup']['numpy_normal_equations']:.2f}; floor ratio {res['vs_floor']:.2f}; "
        f"gemm {res['gemm_gflops']:.0f} GFLOP/s; others' load {H.fmt_load(rounds.load, rounds)}",
        flush=True,
    )
    return res, [t1, t2]


def bench_stats(args) -> tuple[list[dict], H.Table]:
    T = args.threads
    elements = 4e6 if args.quick else 5e7
    table = H.Table(
        "Sufficient statistics: the cpu backend's rank update, own loops or BLAS dsyrk",
        [
            "d",
            "n",
            "size(X)",
            "hand-written loops time ÷ BLAS time",
            "faster",
            "chosen by the code, and why",
            "results agree (1e-10 of the data's scale)",
            "others' load",
        ],
    )
    out = []
    for d in (8, 100):
        n = int(elements) // d
        print(f"[stats] d={d} n={n} ...", flush=True)
        X = H.random_matrix(n, d, "float64", seed=20 + d)
        Y = np.random.default_rng(30 + d).standard_normal((n, 1))
        pr = Problem(X, Y, None, float(n), SQUARED, T)
        blas = cpu.sufficient_stats(pr, _kernel="blas")
        plain = cpu.sufficient_stats(pr, _kernel="own")
        agree = stats_agree(blas, plain)
        choice = _gram_kernel.choose(n, d, 1)
        with H.thread_limits(T):
            S, rounds = H.interleaved(
                {
                    "blas": H.sample_median(
                        lambda pr=pr: cpu.sufficient_stats(pr, _kernel="blas"), 2
                    ),
                    "plain": H.sample_median(
                        lambda pr=pr: cpu.sufficient_stats(pr, _kernel="own"), 2
                    ),
                },
                args.repeat,
                settle_after=("blas",),
                patience=args.patience,
            )
        ratio = H.median_ratio(S["plain"], S["blas"])
        r = {
            "d": d,
            "n": n,
            "samples": S,
            "plain_over_blas": ratio,
            "agree": agree,
            "chosen": choice.kernel,
            "why": choice.reason,
            "others_load_cores": rounds.load,
            "rounds": rounds,
        }
        out.append(r)
        table.add(
            d,
            f"{n:.1e}",
            H.bytes_h(X.nbytes),
            f"{ratio:.2f}",
            "BLAS" if ratio > 1 else "hand-written loops",
            f"{choice.kernel}: {choice.reason}",
            "ok" if agree else "**FAILED**",
            H.fmt_load(rounds.load, rounds),
        )
        print(
            f"    plain/blas = {ratio:.2f}; agree {agree}; others' load "
            f"{H.fmt_load(rounds.load, rounds)}",
            flush=True,
        )
        del X, Y, pr
    table.notes += [
        f"{T} threads. BLAS: the rank update of each block of rows goes to "
        "scipy's dsyrk through its capsule; own loops: fastlinreg's tiled kernel "
        f"(instruction set {_core.isa}). Both forced through the cpu backend's private "
        "`_kernel`; a fit runs the one `backends/_gram_kernel.py` chose, by instruction "
        "set or its one-time measurement (the choice column; timings there are its own, "
        "in the same process). Same blocks, same result."
    ]
    return out, table


def main(argv=None) -> int:
    p = H.base_parser(
        __doc__,
        threads_help="threads for fastlinreg (n_jobs) and the BLAS (default: the cores available)",
        repeat_help="interleaved rounds per measurement (default 3)",
    )
    p.add_argument(
        "--sections", default="exact,stats", help="comma-separated subset of: exact,stats"
    )
    args = p.parse_args(argv)
    args.name = "exact_quick" if args.quick else "exact"
    if args.repeat is None:
        args.repeat = 3
    if args.patience is None:
        args.patience = 0.0 if args.quick else 0.5
    sections = set(args.sections.split(","))
    H.warn_blas_env()
    warnings.simplefilter("error", RuntimeWarning)

    skx = None
    if "exact" in sections:
        mod = H.optional_import("sklearnex.linear_model")
        skx = getattr(mod, "LinearRegression", None)
    info = H.machine_info(args.threads)
    info["versions"]["sklearnex"] = H._version("sklearnex") if skx is not None else None
    print(H.machine_line(info), flush=True)

    t_start = time.perf_counter()
    payload, tables = {"quick": args.quick, "section_wall_s": {}}, []
    if "exact" in sections:
        t0 = time.perf_counter()
        payload["exact"], ts = bench_exact(args, skx)
        tables += ts
        payload["section_wall_s"]["exact"] = time.perf_counter() - t0
    if "stats" in sections:
        t0 = time.perf_counter()
        payload["stats"], t = bench_stats(args)
        tables.append(t)
        payload["section_wall_s"]["stats"] = time.perf_counter() - t0
    return H.finish(args, "bench_exact: exact least squares", info, payload, tables, t_start)


if __name__ == "__main__":
    sys.exit(main())
