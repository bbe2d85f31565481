"""The dask backend against in-memory fastlinreg and dask-ml, on one LocalCluster.

Ratios measured in one run (median of --repeat fits each):
- exact: a Dask fit of X already in the workers' memory over the in-memory
  fit of the same numpy X (target <= 1.5x on one machine), the blocks
  scattered over the workers beforehand, on a 1-process 2-thread cluster,
  1 worker process x 2 threads, 1 x 1 and 2 x 1;
- gd: the per-step overhead of the Dask loop over the in-memory step;
- dask-ml's LinearRegression at equal answers (its coefficients' distance to
  the exact optimum is reported next to its time), if dask-ml is installed;
- scaling from 1 to 2 worker processes of 1 thread (exact).

Run: python benchmarks/bench_dask.py [--n 400000 --d 50 --repeat 3]
"""

from __future__ import annotations

import argparse
import os
import time

import _harness as h
import numpy as np


def _median_fit(fit, repeat):
    return h.median_time(fit, repeat=repeat, warmup=1).median


def _cluster(processes: bool, workers: int, threads: int):
    from distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=workers,
        threads_per_worker=threads,
        processes=processes,
        dashboard_address=":0",
    )
    return cluster, Client(cluster)


def _on_workers(client, rows, *arrays):
    """The arrays as dask arrays whose blocks are already on the workers, block i
    of each on worker i mod w, as data loaded by the workers would be."""
    import dask
    import dask.array as da

    workers = sorted(client.scheduler_info()["workers"])
    out = []
    for a in arrays:
        parts = [a[s : s + rows] for s in range(0, a.shape[0], rows)]
        held = [
            client.scatter(p, workers=[workers[i % len(workers)]], hash=False)
            for i, p in enumerate(parts)
        ]
        out.append(
            da.concatenate(
                [da.from_delayed(dask.delayed(f), p.shape, p.dtype) for f, p in zip(held, parts)]
            )
        )
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=400_000)
    p.add_argument("--d", type=int, default=50)
    p.add_argument("--blocks", type=int, default=8)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    t_start, load = time.perf_counter(), os.getloadavg()[0]

    from fastlinreg import LinearRegression

    dask_ml = h.optional_import("dask_ml.linear_model")
    X = h.random_matrix(args.n, args.d)
    rng = np.random.default_rng(1)
    y = X @ rng.standard_normal(args.d) + 0.5 + 0.1 * rng.standard_normal(args.n)
    rows = -(-args.n // args.blocks)
    exact = LinearRegression(solver="exact")
    t_mem = _median_fit(lambda: exact.fit(X, y), args.repeat)
    coef = exact.fit(X, y).coef_.copy()
    steps = (5, 25)
    gd = {s: LinearRegression(solver="gd", learning_rate=0.1, max_iter=s, tol=None) for s in steps}
    mem_step = (
        _median_fit(lambda: gd[steps[1]].fit(X, y), args.repeat)
        - _median_fit(lambda: gd[steps[0]].fit(X, y), args.repeat)
    ) / (steps[1] - steps[0])

    results, tables = {"in_memory_exact_s": t_mem, "in_memory_gd_step_s": mem_step}, []
    overhead = h.Table(
        "Dask over in-memory fastlinreg (same X, one machine)",
        ["cluster", "exact: dask / in-memory", "gd step: dask / in-memory", "gd step overhead"],
    )
    versus = h.Table(
        "dask-ml LinearRegression at equal answers (same cluster, same X)",
        ["cluster", "dask-ml / fastlinreg (time)", "dask-ml max|coef - exact|", "fastlinreg's"],
    )
    scaling = {}
    for name, processes, workers, threads in (
        ("1 process, 2 threads", False, 1, 2),
        ("1 worker process x 2 threads", True, 1, 2),
        ("1 worker process x 1 thread", True, 1, 1),
        ("2 worker processes x 1 thread", True, 2, 1),
    ):
        cluster, client = _cluster(processes, workers, threads)
        with cluster, client:
            Xd, yd = _on_workers(client, rows, X, y)
            t_dask = _median_fit(lambda Xd=Xd, yd=yd: exact.fit(Xd, yd), args.repeat)
            got = exact.fit(Xd, yd).coef_
            step = (
                _median_fit(lambda Xd=Xd, yd=yd: gd[steps[1]].fit(Xd, yd), args.repeat)
                - _median_fit(lambda Xd=Xd, yd=yd: gd[steps[0]].fit(Xd, yd), args.repeat)
            ) / (steps[1] - steps[0])
            scaling[name] = t_dask
            overhead.add(
                name,
                h.fmt_ratio(t_dask / t_mem),
                h.fmt_ratio(step / mem_step),
                f"{1e3 * (step - mem_step):.1f} ms",
            )
            entry = {"exact_s": t_dask, "gd_step_s": step, "coef_err": float(abs(got - coef).max())}
            if dask_ml is not None:
                ml = dask_ml.LinearRegression(solver="lbfgs", max_iter=200, tol=1e-10)
                t_ml = _median_fit(lambda Xd=Xd, yd=yd, ml=ml: ml.fit(Xd, yd), 1)
                err = float(np.abs(ml.fit(Xd, yd).coef_ - coef).max())
                versus.add(
                    name, h.fmt_ratio(t_ml / t_dask), f"{err:.1e}", f"{entry['coef_err']:.1e}"
                )
                entry.update(dask_ml_s=t_ml, dask_ml_coef_err=err)
            results[name] = entry
    if dask_ml is None:
        versus.notes.append("dask-ml is not installed here: no comparison.")
    versus.notes.append(
        "dask-ml ran solver='lbfgs', tol=1e-10 (its default, admm, was not measured); "
        "the error columns say how close each got to the exact optimum."
    )
    scale = h.Table("Scaling, exact, X persisted on the workers", ["from", "to", "speedup"])
    scale.add(
        "1 worker process x 1 thread",
        "2 worker processes x 1 thread",
        h.fmt_ratio(
            scaling["1 worker process x 1 thread"] / scaling["2 worker processes x 1 thread"]
        ),
    )
    overhead.notes.append(f"Load average (1 min) at the start of the run: {load:.1f}.")
    overhead.notes.append(
        "The in-memory fit uses 2 threads; every cluster but '1 worker process x 1 thread' "
        "runs 2 tasks at once (dask runs one single-threaded task per worker thread)."
    )
    tables = [overhead, versus, scale]
    info = h.machine_info(h.default_threads())
    payload = {"n": args.n, "d": args.d, "blocks": args.blocks, "results": results}
    for t in tables:
        print(t.text(), "\n")
    h.write_results(
        "dask", f"Dask backend, n={args.n}, d={args.d}", info, payload, tables, h.command_line()
    )
    print(f"total {time.perf_counter() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
