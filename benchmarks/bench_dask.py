"""The dask backend against in-memory fastlinreg and dask-ml, on one LocalCluster.

Ratios measured in one run, each row's fits interleaved round by round
(in-memory, then Dask, --repeat rounds after one warm-up; the median of the
per-round ratios), on four one-machine clusters: 1 process with 2 threads,
1 worker process x 2 threads, 1 x 1 and 2 x 1. Two sizes:
- small (--n x --d, default 400000 x 50): X drawn on the client, its blocks
  scattered over the workers beforehand;
- large (--big-n x --big-d, default 4000000 x 100, a real job for one
  machine): X and y made on the workers by one dask graph (dask's seeded
  generator) and persisted there; the in-memory fit reads the same values,
  made once by the same graph on the client (checked on a row sample).
Measured:
- exact: the Dask fit over the in-memory fit on as many threads as the
  cluster computes with (target <= 1.5x), and the difference (the overhead);
- gd (small size): the per-step overhead of the Dask loop over the in-memory
  step, from fits of 5 and 25 steps;
- dask-ml's LinearRegression at equal answers (its coefficients' distance to
  the exact optimum next to its time), where n*d <= --dask-ml-cells (dask-ml
  takes minutes on the large size);
- scaling of the exact fit from 1 to 2 worker processes of 1 thread;
- LogisticRegression (--logistic-n x --logistic-d, binary, on 2 worker processes
  x 1 thread): dask-ml's at the same objective, and the in-memory fit
  (benchmarks/_dask_logistic.py says how the objectives are matched).

Run: python benchmarks/bench_dask.py [--repeat 5] [--big-n 0 to skip the large size]
"""

from __future__ import annotations

import argparse
import os
import time

import _harness as h
import numpy as np

CLUSTERS = (
    ("1 process, 2 threads", False, 1, 2),
    ("1 worker process x 2 threads", True, 1, 2),
    ("1 worker process x 1 thread", True, 1, 1),
    ("2 worker processes x 1 thread", True, 2, 1),
)
GD_STEPS = (5, 25)


class OthersLoad:
    """Cores used by processes other than this one and its children (the
    cluster's workers) while a block runs; None without psutil."""

    def __enter__(self):
        self.cores, self._start = None, self._sample()
        return self

    def __exit__(self, *exc):
        end = self._sample()
        if self._start and end and end[0] > self._start[0]:
            busy = (end[1] - self._start[1]) - (end[2] - self._start[2])
            self.cores = max(0.0, busy / (end[0] - self._start[0]))
        return False

    @staticmethod
    def _sample():
        try:
            import psutil
        except ImportError:
            return None
        t = psutil.cpu_times()
        me = psutil.Process()
        own = 0.0
        for p in [me, *me.children(recursive=True)]:
            try:
                c = p.cpu_times()
            except psutil.Error:  # a process that ended meanwhile
                continue
            own += c.user + c.system
        return time.perf_counter(), t.user + t.nice + t.system, own


def _cluster(processes: bool, workers: int, threads: int):
    from distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=workers, threads_per_worker=threads, processes=processes, dashboard_address=":0"
    )
    return cluster, Client(cluster)


def _scattered(client, rows, *arrays):
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


def _graph(n: int, d: int, rows: int, seed: int = 0):
    """Lazy X (n, d) and y = X beta + 0.5 + noise, made block by block by dask's
    seeded generator: the same values wherever they are computed."""
    import dask.array as da

    X = da.random.default_rng(seed).standard_normal((n, d), chunks=(rows, d))
    beta = np.random.default_rng(seed + 1).standard_normal(d)
    noise = da.random.default_rng(seed + 2).standard_normal(n, chunks=rows)
    return X, X @ beta + 0.5 + 0.1 * noise


def _in_memory(n, d, rows):
    """The large size's X and y in this process (blocks stored in place, no concatenated copy)."""
    import dask.array as da

    Xg, yg = _graph(n, d, rows)
    X, y = np.empty((n, d)), np.empty(n)
    da.store([Xg, yg], [X, y], lock=False, scheduler="threads", num_workers=2)
    return X, y


def _on_workers(client, X, y, n, d, rows):
    """The large size's X and y made and persisted on the workers; a row sample
    is checked against the client's copy."""
    from distributed import wait

    Xd, yd = client.persist(list(_graph(n, d, rows)))
    wait([Xd, yd])
    sample = slice(rows // 2, n, max(1, n // 97))
    if not np.array_equal(Xd[sample].compute(), X[sample]):
        raise RuntimeError("the workers' X differs from the in-memory copy")
    return Xd, yd


def _timed(fn) -> float:
    return h.sample_median(fn, k=1)()


def _exact_rounds(fit_mem, fit_dask, repeat):
    """(in-memory times, Dask times, others' load): one warm-up, then ``repeat``
    rounds of one in-memory and one Dask fit."""
    fit_mem(), fit_dask()
    mem, dsk = [], []
    with OthersLoad() as load:
        for _ in range(repeat):
            mem.append(_timed(fit_mem))
            dsk.append(_timed(fit_dask))
    return mem, dsk, load.cores


def _gd_rounds(X, y, Xd, yd, repeat):
    """Per-step times (in-memory, Dask) from fits of GD_STEPS, interleaved."""
    from fastlinreg import LinearRegression

    def steps(data):
        def fit(k):
            LinearRegression(solver="gd", learning_rate=0.1, max_iter=k, tol=None).fit(*data)

        return h.sample_step(fit, *GD_STEPS)

    samplers = {"mem": steps((X, y)), "dask": steps((Xd, yd))}
    for s in samplers.values():
        s()  # warm-up
    out = {k: [] for k in samplers}
    for _ in range(repeat):
        for k, s in samplers.items():
            out[k].append(s())
    return out["mem"], out["dask"]


def _dask_ml(dask_ml, Xd, yd, coef):
    ml = dask_ml.LinearRegression(solver="lbfgs", max_iter=200, tol=1e-10)
    ml.fit(Xd, yd)
    t = _timed(lambda: ml.fit(Xd, yd))
    return t, float(np.abs(ml.coef_ - coef).max())


def run_size(label, n, d, blocks, repeat, made_on_workers, dask_ml, tables, results):
    """Every cluster on one size: rows of the exact, gd and dask-ml tables."""
    from fastlinreg import LinearRegression

    exact_t, gd_t, ml_t, scale_t = tables
    rows = -(-n // blocks)
    if made_on_workers:
        X, y = _in_memory(n, d, rows)
    else:
        X = h.random_matrix(n, d)
        rng = np.random.default_rng(1)
        y = X @ rng.standard_normal(d) + 0.5 + 0.1 * rng.standard_normal(n)
    exact = LinearRegression(solver="exact")
    coef = exact.fit(X, y).coef_.copy()
    loads, times = [os.getloadavg()[0]], {}
    for name, processes, workers, threads in CLUSTERS:
        cluster, client = _cluster(processes, workers, threads)
        with cluster, client:
            if made_on_workers:
                Xd, yd = _on_workers(client, X, y, n, d, rows)
            else:
                Xd, yd = _scattered(client, rows, X, y)
            # The in-memory fit on as many threads as the cluster computes with.
            mem_fit = LinearRegression(solver="exact", n_jobs=workers * threads)
            mem, dsk, others = _exact_rounds(
                lambda m=mem_fit: m.fit(X, y), lambda Xd=Xd, yd=yd: exact.fit(Xd, yd), repeat
            )
            err = float(np.abs(exact.fit(Xd, yd).coef_ - coef).max())
            ratio = h.median_ratio(dsk, mem)
            times[name] = h.median(dsk)
            entry = {"in_memory_s": mem, "dask_s": dsk, "others_cores": others, "coef_err": err}
            exact_t.add(
                label,
                name,
                workers * threads,
                h.fmt_ratio(ratio),
                f"{1e3 * h.median(np.subtract(dsk, mem)):.0f} ms",
                f"{err:.1e}",
                h.fmt_load(others),
                h.fmt_check(ratio <= 1.5),
            )
            if not made_on_workers:
                m_step, d_step = _gd_rounds(X, y, Xd, yd, repeat)
                entry.update(gd_step_in_memory_s=m_step, gd_step_dask_s=d_step)
                gd_t.add(
                    label,
                    name,
                    h.fmt_ratio(h.median_ratio(d_step, m_step)),
                    f"{1e3 * h.median(np.subtract(d_step, m_step)):.1f} ms",
                )
            if dask_ml is not None and n * d <= results["dask_ml_cells"]:
                t_ml, ml_err = _dask_ml(dask_ml, Xd, yd, coef)
                entry.update(dask_ml_s=t_ml, dask_ml_coef_err=ml_err)
                ml_t.add(
                    label, name, h.fmt_ratio(t_ml / times[name]), f"{ml_err:.1e}", f"{err:.1e}"
                )
            results[f"{label}: {name}"] = entry
    loads.append(os.getloadavg()[0])
    one, two = "1 worker process x 1 thread", "2 worker processes x 1 thread"
    scale_t.add(label, one, two, h.fmt_ratio(times[one] / times[two]))
    return loads


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=400_000)
    p.add_argument("--d", type=int, default=50)
    p.add_argument("--big-n", type=int, default=4_000_000, help="0: skip the large size")
    p.add_argument("--big-d", type=int, default=100)
    p.add_argument("--blocks", type=int, default=8)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--dask-ml-cells", type=float, default=2e7, help="largest n*d dask-ml runs on")
    p.add_argument("--logistic-n", type=int, default=100_000, help="0: skip LogisticRegression")
    p.add_argument("--logistic-d", type=int, default=20)
    args = p.parse_args()
    t_start = time.perf_counter()
    dask_ml = h.optional_import("dask_ml.linear_model")
    exact_t = h.Table(
        "Exact fit: Dask over in-memory fastlinreg (same data, one machine)",
        [
            "data",
            "cluster",
            "in-memory threads",
            "dask / in-memory",
            "overhead",
            "max abs coef diff (vs in-memory)",
            "others' load",
            "≤ 1.5×",
        ],
    )
    gd_t = h.Table(
        "GD step: Dask over in-memory fastlinreg",
        ["data", "cluster", "dask / in-memory", "overhead"],
    )
    ml_t = h.Table(
        "dask-ml LinearRegression at equal answers (same cluster, same X)",
        ["data", "cluster", "dask-ml / fastlinreg (time)", "dask-ml max abs(coef - exact)", "ours"],
    )
    scale_t = h.Table("Scaling, exact, X on the workers", ["data", "from", "to", "speedup"])
    tables = (exact_t, gd_t, ml_t, scale_t)
    results = {"dask_ml_cells": args.dask_ml_cells}
    sizes = [(f"{args.n}x{args.d}, scattered", args.n, args.d, False)]
    if args.big_n > 0:
        sizes.append(
            (f"{args.big_n}x{args.big_d}, made on the workers", args.big_n, args.big_d, True)
        )
    loads = {}
    for label, n, d, on_workers in sizes:
        loads[label] = run_size(
            label, n, d, args.blocks, args.repeat, on_workers, dask_ml, tables, results
        )
    if args.logistic_n > 0:  # LogisticRegression: one cluster, benchmarks/_dask_logistic.py
        import _dask_logistic

        tables += _dask_logistic.tables()
        n, d = args.logistic_n, args.logistic_d
        cluster, client = _cluster(True, 2, 1)
        with cluster, client:
            _dask_logistic.run(
                f"{n}x{d} binary, scattered",
                n,
                d,
                -(-n // args.blocks),
                args.repeat,
                dask_ml,
                tables[-2:],
                results,
                _dask_logistic.CLUSTER,
                lambda rows, *arrays: _scattered(client, rows, *arrays),
                _timed,
            )
    exact_t.notes += [
        f"{args.blocks} row blocks; median of {args.repeat} interleaved rounds (in-memory fit, "
        "then Dask fit) after one warm-up; overhead: the median of the rounds' differences.",
        "Load average (1 min) at the start and end of each size: "
        + "; ".join(f"{k}: {a:.1f} to {b:.1f}" for k, (a, b) in loads.items())
        + ". Others' load: cores used by processes other than this one and its workers.",
        "The in-memory fit runs on as many threads as the cluster computes with (n_jobs): 2, "
        "but 1 against '1 worker process x 1 thread'; dask runs one single-threaded block "
        "task per worker thread.",
    ]
    gd_t.notes.append(
        f"Per step: (fit of {GD_STEPS[1]} steps - fit of {GD_STEPS[0]}) / "
        f"{GD_STEPS[1] - GD_STEPS[0]}, in-memory on 2 threads, small size only (each step is "
        "one round trip: "
        "the overhead does not grow with n)."
    )
    ml_t.notes.append(
        "dask-ml ran solver='lbfgs', tol=1e-10 (its default, admm, was not measured), one "
        f"timed fit after one warm-up; not run where n*d > {args.dask_ml_cells:.0e} "
        "(it takes minutes there)."
    )
    if dask_ml is None:
        ml_t.notes.append("dask-ml is not installed here: no comparison.")
    info = h.machine_info(h.default_threads())
    payload = {"sizes": [s[:3] for s in sizes], "blocks": args.blocks, "results": results}
    for t in tables:
        print(t.text(), "\n")
    title = "Dask backend, " + " and ".join(s[0].split(",")[0] for s in sizes)
    h.write_results("dask", title, info, payload, tables, h.command_line())
    print(f"total {time.perf_counter() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
