"""What progress reporting costs: fits with verbose=0 against verbose=1.

The descent loops call their check hook about every 2**25 elements read;
verbose=1 makes that hook call a Python Progress object. Here Progress is
made to report at every call (no 2 s delay, a line each time, written to
/dev/null), the worst case, and the fits are timed in interleaved rounds in
one process: the ratio is median(t verbose=1 / t verbose=0) over rounds.
Prints a table; never part of the test suite's pass/fail.

    python benchmarks/bench_progress.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from _harness import RESULTS_DIR, interleaved, machine_info, machine_line, median, median_ratio

import fastlinreg.solvers.descent as descent
from fastlinreg import LinearRegression, _progress
from fastlinreg.datasets import load_tutorial

_DEVNULL = open(os.devnull, "w")  # noqa: SIM115


class _Counting(_progress.Progress):
    """Reports at every call of the hook, a line each time, to /dev/null."""

    DELAY = 0.0
    EVERY = 0.0
    calls = 0

    def __init__(self, total, unit="step", **_):
        super().__init__(total, unit, file=_DEVNULL, use_tqdm=False)

    def __call__(self, step, loss):
        type(self).calls += 1
        super().__call__(step, loss)


def _sampler(fit, verbose, repeat):
    def one():
        t0 = time.perf_counter()
        for _ in range(repeat):
            fit(verbose)
        return (time.perf_counter() - t0) / repeat

    return one


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--n", type=int, default=1 << 18)
    ap.add_argument("--d", type=int, default=64)
    ap.add_argument("--steps", type=int, default=60)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    X = rng.standard_normal((args.n, args.d))
    y = X @ rng.standard_normal(args.d) + rng.standard_normal(args.n)
    x16, y16 = load_tutorial()
    descent.Progress = _Counting  # what the gd/gram solver builds for verbose=1
    # name: (fit(verbose), fits per timed sample)
    cases = {
        f"gd over X, n={args.n} d={args.d}, {args.steps} steps": (
            1,
            lambda v: LinearRegression(
                solver="gd", learning_rate=0.01, max_iter=args.steps, tol=None, verbose=v
            ).fit(X, y),
        ),
        "the tutorial: gd, 16 points, 10000 steps": (
            200,
            lambda v: LinearRegression(
                solver="gd", learning_rate=0.01, max_iter=10000, tol=None, verbose=v
            ).fit(x16[:, None], y16),
        ),
    }
    lines = [
        machine_line(machine_info(0)),
        "",
        "| fit | verbose=0 | verbose=1 | ratio | progress calls per fit |",
        "|---|---|---|---|---|",
    ]
    for name, (repeat, fit) in cases.items():
        fit(0), fit(1)  # warm up
        _Counting.calls = 0
        samples, _ = interleaved(
            {"quiet": _sampler(fit, 0, repeat), "verbose": _sampler(fit, 1, repeat)}, args.rounds
        )
        per_fit = _Counting.calls / (len(samples["verbose"]) * repeat)
        ratio = median_ratio(samples["verbose"], samples["quiet"])
        if repeat == 1:
            gd_samples, gd_calls = samples, per_fit
        lines.append(
            f"| {name} | {median(samples['quiet']) * 1e3:.3f} ms | "
            f"{median(samples['verbose']) * 1e3:.3f} ms | {ratio:.3f} | {per_fit:.0f} |"
        )
    # The ratio above is as noisy as the machine; the hook's own cost is not:
    # the Python side of one report, timed over many calls.
    p, calls = _Counting(10**9), 20000
    t0 = time.perf_counter()
    for i in range(calls):
        p(i, 1.0)
    per_call = (time.perf_counter() - t0) / calls
    fit_s = median(gd_samples["quiet"])
    lines.append(
        f"\nratio: median over {args.rounds} interleaved rounds of t(verbose=1)/t(verbose=0). "
        f"One report (Progress.__call__, a line to /dev/null) costs {per_call * 1e6:.1f} us; "
        f"{gd_calls:.0f} of them are {gd_calls * per_call / fit_s:.2e} of the gd fit's time."
    )
    text = "\n".join(lines)
    print(text)
    (RESULTS_DIR / "progress.md").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
