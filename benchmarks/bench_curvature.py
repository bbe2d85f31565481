"""The automatic step's curvature: passes over X before the first step, and
their time, at n=1.5e6, d=100 (issue 10).

"Now": the backend's Lanczos bound (at most 10 passes). "Before": the power
iteration it replaced (up to 100 passes, stopping when the Rayleigh quotient
moves by less than 1e-4), replayed on the same standardised XᵀX/n from the
statistics to count its passes; its time is that count times the measured
time of one pass. Both include the column-moments pass.

    python benchmarks/bench_curvature.py [--n 1500000] [--d 100]
"""

from __future__ import annotations

import argparse

import _harness as H
import numpy as np

from fastlinreg._losses import SQUARED
from fastlinreg._stats import SufficientStats
from fastlinreg.backends import DescentConfig, Problem, cpu
from fastlinreg.solvers import _curvature


def old_power_passes(A: np.ndarray) -> tuple[int, float]:
    """(passes, estimate) of the power iteration that came before: the same
    start vector and stopping rule (max 100 passes, rtol 1e-4)."""
    d = A.shape[0]
    state, v = 0x9E3779B97F4A7C15, np.empty(d)
    for j in range(d):
        state = (state * 6364136223846793005 + 1442695040888963407) % 2**64
        v[j] = 1.0 + 0.5 * ((state >> 11) / 9007199254740992.0 - 0.5)
    v /= np.linalg.norm(v)
    lam = 0.0
    for it in range(100):
        g = A @ v
        prev, lam = lam, float(v @ g)
        v = g / np.linalg.norm(g)
        if it > 2 and abs(lam - prev) <= 1e-4 * abs(lam):
            return it + 1, lam
    return 100, lam


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1_500_000)
    p.add_argument("--d", type=int, default=100)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--correlated", action="store_true", help="a dominant top eigenvalue")
    args = p.parse_args()
    print(H.machine_line(H.machine_info(H.default_threads())))
    X = H.random_matrix(args.n, args.d)
    if args.correlated:  # else the columns are independent: clustered top eigenvalues
        X[:, 1] = 0.6 * X[:, 0] + 0.8 * X[:, 1]
    y = np.zeros(args.n)
    problem = Problem(X, y[:, None], None, float(args.n), SQUARED, None)
    _, mean, var = cpu.column_moments(problem)
    scale = np.sqrt(var)
    config = DescentConfig(0, 0.0, None, 0.0, True, mean, scale)

    def moments():
        cpu.column_moments(problem)

    def lanczos():
        return cpu.curvature(problem, config)

    t_pass = H.median_time(moments, repeat=args.repeat).median
    t_new = H.median_time(lanczos, repeat=args.repeat).median
    L = lanczos()
    stats = SufficientStats(*cpu.sufficient_stats(problem))
    A = _curvature._standardised(stats, mean, scale, 0.0)
    top = float(np.linalg.eigvalsh(A)[-1])
    old_passes, old_L = old_power_passes(A)
    new_passes = min(args.d, 10)
    t_old = old_passes * t_new / new_passes
    print(f"n={args.n}, d={args.d}; load {open('/proc/loadavg').read().split()[:3]}")
    print(f"one pass (column moments): {t_pass * 1e3:.0f} ms")
    print(
        f"before: power iteration, {old_passes} passes (+1 moments) ≈ "
        f"{(t_old + t_pass) * 1e3:.0f} ms; L = {old_L:.6g} "
        f"(λmax {top:.6g}, ratio {old_L / top:.4f})"
    )
    print(
        f"now: Lanczos, {new_passes} passes (+1 moments) = {(t_new + t_pass) * 1e3:.0f} ms; "
        f"L = {L:.6g} (ratio to λmax {L / top:.4f})"
    )
    print(
        f"passes before the first step: {old_passes + 1} → {new_passes + 1} "
        f"({(old_passes + 1) / (new_passes + 1):.1f}× fewer); time "
        f"{(t_old + t_pass) / (t_new + t_pass):.1f}× less"
    )


if __name__ == "__main__":
    main()
