"""The CUDA backend on one GPU, as ratios measured in one run (issue 11's targets).

* GD step on n x d float32 X (default 1e7 x 100) against a plain read
  kernel over X (the device's read bandwidth, same run): target >= 0.8.
* The same step against a torch.cuda autograd step (loss, backward): >= 3x.
* The exact fit (sufficient statistics + the d x d solve) against cuBLAS
  syrk alone on X: <= 1.5x.
* 1000 GD steps with X on the device: one host synchronisation in all.
* Where "auto" should move to the GPU: a GD step of the CPU backend and of
  this one on host float32 X of growing n (d as above), copy included.

Needs CuPy (device data, the read kernel, syrk); torch is optional. Writes
gpu.md and gpu.json to --out. Never part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from fastlinreg._losses import SQUARED
from fastlinreg.backends import DescentConfig, Problem

READ_KERNEL = r"""
extern "C" __global__ void read_all(const float4* __restrict__ x, long long n4, float* out) {
  float acc = 0.f;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n4;
       i += (long long)gridDim.x * blockDim.x) {
    float4 v = __ldg(x + i);
    acc += v.x + v.y + v.z + v.w;
  }
  if (acc == 1234.5f) out[0] = acc;  // keeps the loads; never true for random data in practice
}
"""


def timed(fn, repeat, cupy):
    """Mean seconds per call over `repeat` calls after one warm-up, by CUDA events."""
    fn()
    start, stop = cupy.cuda.Event(), cupy.cuda.Event()
    start.record()
    for _ in range(repeat):
        fn()
    stop.record()
    stop.synchronize()
    return cupy.cuda.get_elapsed_time(start, stop) / 1e3 / repeat


def auto_threshold(d, steps=20):
    """Seconds per GD step of a fit on host float32 X (the estimator's case),
    the device copy included, on the CPU backend and on this one."""
    from fastlinreg.backends import cpu
    from fastlinreg.backends import cuda as cb

    rng = np.random.default_rng(0)
    out = []
    for n in (1_000, 10_000, 100_000, 1_000_000, 4_000_000):
        X = rng.standard_normal((n, d), dtype=np.float32)
        y = rng.standard_normal((n, 1))
        config = DescentConfig(steps, 0.1, None, 0.0, True)
        W0, b0 = np.zeros((d, 1)), np.zeros(1)
        row = {"n": n}
        for name, be in (("cpu", cpu), ("cuda", cb)):
            be.descend(Problem(X, y, None, float(n), SQUARED), config, W0, b0)  # warm-up
            t0 = time.perf_counter()
            be.descend(Problem(X, y, None, float(n), SQUARED), config, W0, b0)
            row[name] = (time.perf_counter() - t0) / steps
        out.append(row)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000_000)
    ap.add_argument("--d", type=int, default=100)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = ap.parse_args()
    from fastlinreg.backends import cuda as cb

    ok, reason = cb.available()
    if not ok:
        raise SystemExit(f"no GPU run: {reason}")
    import cupy

    n, d = args.n, args.d
    rs = cupy.random.RandomState(0)
    X = rs.standard_normal((n, d), dtype=cupy.float32)
    w_true = rs.standard_normal(d, dtype=cupy.float64)
    y = X.astype(cupy.float64) @ w_true + 0.1 * rs.standard_normal(n, dtype=cupy.float64)
    cupy.cuda.Device().synchronize()
    rows = {}
    xbytes = X.nbytes

    read = cupy.RawKernel(READ_KERNEL, "read_all")
    sink = cupy.zeros(1, dtype=cupy.float32)
    sms = cupy.cuda.Device().attributes["MultiProcessorCount"]
    t_read = timed(lambda: read((sms * 8,), (256,), (X, np.int64(X.size // 4), sink)), 20, cupy)
    rows["read kernel over X"] = {"seconds": t_read, "GB/s": xbytes / t_read / 1e9}

    p = Problem(cb.to_device(X, y), None, None, float(n), SQUARED)
    W0, b0 = np.zeros((d, 1)), np.zeros(1)
    steps_for_rate = 50
    config = DescentConfig(steps_for_rate, 0.1, None, 0.0, True)
    cb.descend(p, config, W0, b0)  # warm-up
    t0 = time.perf_counter()
    cb.descend(p, config, W0, b0)
    t_step = (time.perf_counter() - t0) / steps_for_rate
    rows["GD step (descend, per step)"] = {"seconds": t_step, "GB/s": xbytes / t_step / 1e9}
    t_pass = timed(lambda: cb.fused_pass(p, W0, b0), 10, cupy)
    rows["one fused_pass call (with its host copies)"] = {
        "seconds": t_pass,
        "GB/s": xbytes / t_pass / 1e9,
    }
    ratios = {"GD step / read bandwidth": t_read / t_step}

    try:
        import torch

        Xt = torch.as_tensor(X, device="cuda")
        yt = torch.as_tensor(y, device="cuda").float()
        wt = torch.zeros(d, device="cuda", requires_grad=True)
        bt = torch.zeros(1, device="cuda", requires_grad=True)

        def torch_step():
            loss = ((Xt @ wt + bt - yt) ** 2).mean() / 2
            gw, gbias = torch.autograd.grad(loss, (wt, bt))
            with torch.no_grad():
                wt.sub_(0.1 * gw)
                bt.sub_(0.1 * gbias)

        t_torch = timed(torch_step, 20, cupy)
        rows["torch.cuda autograd step (float32)"] = {
            "seconds": t_torch,
            "GB/s": xbytes / t_torch / 1e9,
        }
        ratios["torch step / GD step"] = t_torch / t_step
    except ImportError:
        ratios["torch step / GD step"] = None

    def exact():
        _, mx, my, Cxx, Cxy, _ = cb.sufficient_stats(p)
        return np.linalg.solve(Cxx, Cxy)

    t_exact = timed(exact, 3, cupy)
    rows[f"exact fit (stats via {cb.diagnostics.stats_engine} + solve)"] = {
        "seconds": t_exact,
        "GB/s": xbytes / t_exact / 1e9,
    }
    try:
        from cupy import cublas

        t_syrk = timed(lambda: cublas.syrk("T", X, lower=True), 3, cupy)
        label = "cuBLAS ssyrk on X alone"
    except Exception:  # noqa: BLE001  (any CuPy without a usable syrk)
        t_syrk = timed(lambda: X.T @ X, 3, cupy)
        label = "cuBLAS sgemm X^T X alone (no syrk in CuPy)"
    rows[label] = {"seconds": t_syrk, "GB/s": xbytes / t_syrk / 1e9}
    ratios["exact fit / syrk alone"] = t_exact / t_syrk

    t0 = time.perf_counter()
    res = cb.descend(p, DescentConfig(args.steps, 0.1, None, 0.0, True), W0, b0)
    t_many = time.perf_counter() - t0
    rows[f"{args.steps} GD steps"] = {"seconds": t_many, "GB/s": args.steps * xbytes / t_many / 1e9}
    ratios["host waits in the long descent"] = cb.diagnostics.host_waits
    ratios["its steps run"] = int(res.n_iter)
    crossover = auto_threshold(d)

    st = cupy.cuda.runtime.getDeviceProperties(0)
    report = {
        "device": st["name"].decode() if isinstance(st["name"], bytes) else st["name"],
        "n": n,
        "d": d,
        "dtype": "float32",
        "rows": rows,
        "ratios": ratios,
        "auto_threshold": crossover,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu.json").write_text(json.dumps(report, indent=2))
    lines = [
        f"# bench_gpu: {report['device']}, X {n} x {d} float32",
        "",
        "| what | ms | GB/s of X |",
        "| --- | ---: | ---: |",
    ]
    for name, r in rows.items():
        lines.append(f"| {name} | {1e3 * r['seconds']:.3f} | {r['GB/s']:.0f} |")
    lines += ["", "| ratio | value | target |", "| --- | ---: | --- |"]
    targets = {
        "GD step / read bandwidth": ">= 0.8",
        "torch step / GD step": ">= 3",
        "exact fit / syrk alone": "<= 1.5",
        "host waits in the long descent": "1",
    }
    for name, v in ratios.items():
        val = "n/a" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))
        lines.append(f"| {name} | {val} | {targets.get(name, '')} |")
    lines += ["", f"| n (host X, d={d}) | cpu step ms | cuda step ms (copy included) |"]
    lines += ["| ---: | ---: | ---: |"]
    for r in crossover:
        lines.append(f"| {r['n']} | {1e3 * r['cpu']:.3f} | {1e3 * r['cuda']:.3f} |")
    text = "\n".join(lines) + "\n"
    (args.out / "gpu.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
