"""Accurate (QR) path against the one-pass normal equations and numpy's lstsq.

Prints ratios measured in one run; never part of the test suite's pass/fail.
    python benchmarks/bench_accurate.py [--n 1000000] [--d 100]
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np

from fastlinreg import SufficientStats
from fastlinreg._accurate import qr_lstsq


def best_of(f, reps):
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - t0)
    return best


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--d", type=int, default=100)
    ap.add_argument("--reps", type=int, default=2)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    X = rng.standard_normal((args.n, args.d))
    y = X @ rng.standard_normal(args.d) + rng.standard_normal(args.n)

    def lstsq():
        A = np.empty((args.n, args.d + 1))
        A[:, 0] = 1.0
        A[:, 1:] = X
        np.linalg.lstsq(A, y, rcond=None)

    ts = best_of(lambda: SufficientStats.from_arrays(X, y).solve(), args.reps)
    tq = best_of(lambda: qr_lstsq(X, y, refine=False), args.reps)
    tr = best_of(lambda: qr_lstsq(X, y), args.reps)
    tl = best_of(lstsq, 1)
    print(f"{platform.processor() or platform.machine()}, n={args.n}, d={args.d}, float64")
    print("| method | time / normal equations |")
    print("|---|---|")
    for name, t in [
        ("normal equations (from_arrays + solve)", ts),
        ("qr_lstsq refine=False", tq),
        ("qr_lstsq (refined)", tr),
        ("numpy.linalg.lstsq on [1, X]", tl),
    ]:
        print(f"| {name} | {t / ts:.2f} |")


if __name__ == "__main__":
    main()
