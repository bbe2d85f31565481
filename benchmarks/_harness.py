"""Shared measuring helpers for the benchmark scripts in this folder.

Everything here follows ``PERF.md``'s rules for honest numbers on a noisy,
shared machine: every figure worth quoting is a *ratio* between two
measurements taken in the same process and run; each timing is the median of
several; per-step costs are differences of two fits so that validation and
setup drop out; and the read floor is measured on the very arrays the fit
reads.

The scripts import this module by name (``python benchmarks/bench_gd.py`` puts
this folder on ``sys.path``); it is not part of the installed package.
"""

from __future__ import annotations

import datetime as _dt
import gc
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

RESULTS_DIR = Path(__file__).resolve().parent / "results"
REPO_ROOT = Path(__file__).resolve().parent.parent

# Environment variables that change which OpenBLAS kernel numpy runs (PERF.md).
BLAS_ENV_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


# ----------------------------------------------------------------- timing
@dataclass
class Timing:
    """Median and spread of repeated wall-clock measurements, in seconds."""

    median: float
    min: float
    max: float
    samples: list[float] = field(default_factory=list)


def _timed(fn: Callable[[], object]) -> float:
    was_enabled = gc.isenabled()
    gc.disable()  # a collection inside the timed call is noise, not cost
    try:
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0
    finally:
        if was_enabled:
            gc.enable()


def _summary(samples: Sequence[float]) -> Timing:
    s = [float(x) for x in samples]
    return Timing(float(np.median(s)), min(s), max(s), s)


def median_time(fn: Callable[[], object], repeat: int = 5, warmup: int = 1) -> Timing:
    """Median wall time of ``fn()`` over ``repeat`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    gc.collect()  # once, not per call: with torch/pytensor loaded a collection takes ~0.1 s
    return _summary([_timed(fn) for _ in range(repeat)])


@dataclass
class StepCost:
    """Per-step cost from fits of ``k1`` and ``k2`` steps.

    ``per_step`` is the median over repeats of ``(t(k2) - t(k1)) / (k2 - k1)``
    (each repeat times the two fits back to back, so slow drift cancels);
    ``fixed`` is the part of a fit that does not scale with the steps
    (validation, setup): ``median t(k1) - k1 * per_step``.
    """

    per_step: float
    fixed: float
    k1: int
    k2: int
    t_k1: Timing
    t_k2: Timing
    per_step_samples: list[float]


def per_step_cost(
    fit_steps: Callable[[int], object], k1: int, k2: int, repeat: int = 3, warmup: int = 1
) -> StepCost:
    """Cost of one step of ``fit_steps(k)`` (a whole fit running ``k`` steps)."""
    if not k2 > k1 >= 0:
        raise ValueError(f"need k2 > k1 >= 0, got k1={k1}, k2={k2}")
    for _ in range(warmup):
        fit_steps(k1)
    gc.collect()
    t1s, t2s, diffs = [], [], []
    for _ in range(repeat):
        t1 = _timed(lambda: fit_steps(k1))
        t2 = _timed(lambda: fit_steps(k2))
        t1s.append(t1)
        t2s.append(t2)
        diffs.append((t2 - t1) / (k2 - k1))
    per = float(np.median(diffs))
    return StepCost(
        per, float(np.median(t1s)) - k1 * per, k1, k2, _summary(t1s), _summary(t2s), diffs
    )


def steps_for_budget(
    fit_steps: Callable[[int], object], k1: int, budget_s: float, lo: int = 10, hi: int = 100_000
) -> int:
    """A ``k2`` such that ``k2 - k1`` steps take about ``budget_s`` seconds
    (estimated from one fit of ``k1 + lo`` steps against one of ``k1``)."""
    fit_steps(k1)  # warm-up
    t1 = _timed(lambda: fit_steps(k1))
    t2 = _timed(lambda: fit_steps(k1 + lo))
    est = max((t2 - t1) / lo, 1e-7)
    return k1 + int(np.clip(budget_s / est, lo, hi))


# ------------------------------------------------ interleaved measurement
# On a shared machine other processes come and go within seconds. Timing A
# five times and then B five times lets a burst of load land on one of them
# only; measuring A and B back to back in each round and taking the median of
# the per-round ratios keeps the ratio honest.
Sampler = Callable[[], float]


def sample_median(fn: Callable[[], object], k: int = 3) -> Sampler:
    """A sampler: the median wall time of ``k`` calls of ``fn``."""
    return lambda: float(np.median([_timed(fn) for _ in range(k)]))


def sample_mean(fn: Callable[[], object], reps: int) -> Sampler:
    """A sampler: the mean wall time of ``reps`` back-to-back calls (for calls
    too short to time one at a time)."""

    def run():
        for _ in range(reps):
            fn()

    return lambda: _timed(run) / reps


def sample_step(fit_steps: Callable[[int], object], k1: int, k2: int) -> Sampler:
    """A sampler: one per-step cost ``(t(k2) - t(k1)) / (k2 - k1)``."""

    def one():
        t1 = _timed(lambda: fit_steps(k1))
        t2 = _timed(lambda: fit_steps(k2))
        return (t2 - t1) / (k2 - k1)

    return one


def sample_read_floor(
    X: np.ndarray, *ys: np.ndarray | None, k: int = 3, threads: int = 1, reduce: str = "sum"
) -> Sampler:
    """A sampler for the time to read X (and ``ys``) once from memory.

    The default is PERF.md's read floor: numpy ``X.reshape(-1).sum()`` plus
    the sums of ``ys``, on the arrays measured, one thread. Where one core
    cannot stream memory at full speed (numpy's pairwise sum is then
    compute-bound), ``threads > 1`` splits the flat arrays into contiguous
    blocks reduced by that many Python threads (numpy releases the GIL), and
    ``reduce="max"`` uses ``np.max``, which does less work per element than
    the pairwise sum; both only make the floor lower (stricter).
    """
    if not X.flags.c_contiguous:
        raise ValueError("the read floor is defined on a C-contiguous X (reshape would copy)")
    op = {"sum": np.sum, "max": np.max}[reduce]
    flats = [X.reshape(-1)] + [np.ascontiguousarray(a).reshape(-1) for a in ys if a is not None]
    if threads <= 1:

        def read():
            for a in flats:
                op(a)
    else:
        from concurrent.futures import ThreadPoolExecutor

        pool = ThreadPoolExecutor(threads)
        blocks = [b for a in flats for b in np.array_split(a, threads)]

        def read():
            list(pool.map(op, blocks))

    read()  # warm-up
    return sample_median(read, k)


def sample_fastest(*samplers: Sampler) -> Sampler:
    """A sampler: the smallest of the samplers' samples, taken back to back."""
    return lambda: min(s() for s in samplers)


QUIET_CORES = 0.2  # others' load (cores) under which a round counts as quiet


@dataclass
class RoundsInfo:
    """How the interleaved rounds went: others' load (cores) during each kept
    round, how many rounds ran in all, and how many of the kept were quiet."""

    loads: list[float]
    rounds_run: int
    quiet_kept: int

    measured: bool = True  # False: psutil is missing, the loads are unknown (0 in ``loads``)

    @property
    def load(self) -> float | None:
        return float(np.median(self.loads)) if self.loads and self.measured else None


def interleaved(
    samplers: dict[str, Sampler],
    rounds: int,
    settle_after: Sequence[str] = (),
    patience: float = 0.0,
) -> tuple[dict[str, list[float]], RoundsInfo]:
    """Run every sampler once per round, in order; returns the samples per
    name (one per kept round) and a :class:`RoundsInfo`.

    Names in ``settle_after`` are followed by :func:`settle` (their library's
    worker threads keep spinning a while). Each round's others' load is
    measured. With ``patience > 0``, rounds during which other processes used
    more than ``QUIET_CORES`` are redone (after waiting for a quiet moment)
    until ``rounds`` quiet rounds are in, for at most ``patience`` times the
    time the first ``rounds`` rounds took; then the ``rounds`` least-loaded
    rounds are kept. A busy neighbour hurts multi-threaded code far more than
    one-threaded code (a thread barrier waits for a descheduled thread), so a
    loaded round would distort exactly the ratios this measures.
    """
    records: list[tuple[float, dict[str, float]]] = []
    t0 = time.perf_counter()
    deadline = None
    while True:
        n_quiet = sum(load <= QUIET_CORES for load, _ in records)
        if n_quiet >= rounds:
            break
        if len(records) >= rounds:
            if deadline is None:
                deadline = time.perf_counter() + patience * (time.perf_counter() - t0)
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                break
            wait_quiet(QUIET_CORES, window=0.5, timeout=min(10.0, remaining))
        gc.collect()
        sample: dict[str, float] = {}
        with LoadMonitor() as mon:
            for name, sampler in samplers.items():
                sample[name] = sampler()
                if name in settle_after:
                    settle()
        records.append((mon.cores if mon.cores is not None else 0.0, sample))
    kept = sorted(sorted(range(len(records)), key=lambda i: records[i][0])[:rounds])
    out = {name: [records[i][1][name] for i in kept] for name in samplers}
    loads = [records[i][0] for i in kept]
    measured = LoadMonitor.available()
    return out, RoundsInfo(loads, len(records), sum(x <= QUIET_CORES for x in loads), measured)


def median_ratio(num: Sequence[float], den: Sequence[float]) -> float:
    """Median over rounds of ``num[i] / den[i]``."""
    return float(np.median(np.asarray(num, dtype=float) / np.asarray(den, dtype=float)))


def median(xs: Sequence[float]) -> float:
    return float(np.median(xs))


def read_floor(X: np.ndarray, *ys: np.ndarray | None, repeat: int = 7) -> Timing:
    """Time to read X (and the targets) once, single-threaded numpy sums,
    ``repeat`` samples (see :func:`sample_read_floor`)."""
    s = sample_read_floor(X, *ys, k=1)
    return _summary([s() for _ in range(repeat)])


# ----------------------------------------------------- machine contention
class LoadMonitor:
    """CPU used by *other* processes while a block runs, in cores (0: the
    machine was ours; 1: another process kept one core busy throughout).
    Reported next to results so a reader can tell a clean run from a
    contended one."""

    def __enter__(self):
        self.cores = None
        self._start = self._sample()
        return self

    def __exit__(self, *exc):
        end = self._sample()
        if self._start and end:
            wall = end[0] - self._start[0]
            busy = end[1] - self._start[1]
            own = end[2] - self._start[2]
            if wall > 0:
                self.cores = max(0.0, (busy - own) / wall)
        return False

    @staticmethod
    def available() -> bool:
        try:
            import psutil  # noqa: F401
        except ImportError:
            return False
        return True

    @staticmethod
    def _sample():
        try:
            import psutil
        except ImportError:
            return None
        t = psutil.cpu_times()
        busy = t.user + t.nice + t.system + getattr(t, "irq", 0) + getattr(t, "softirq", 0)
        me = psutil.Process().cpu_times()
        return time.perf_counter(), busy, me.user + me.system


def wait_quiet(
    max_cores: float = QUIET_CORES, window: float = 1.0, timeout: float = 30.0
) -> float | None:
    """Wait (up to ``timeout`` s) until other processes use at most
    ``max_cores`` over a ``window``; returns the last load seen (None without
    psutil). Best effort: on a busy shared machine it gives up, and the
    contention is reported instead."""
    if timeout <= 0:
        return None
    deadline = time.perf_counter() + timeout
    while True:
        with LoadMonitor() as mon:
            time.sleep(window)
        if mon.cores is None or mon.cores <= max_cores or time.perf_counter() > deadline:
            return mon.cores


def settle(seconds: float = 0.3) -> None:
    """Let idle BLAS/OpenMP worker threads stop spinning (OpenBLAS and libgomp
    busy-wait for a while after a call) before the next timing, so one
    library's spinning threads are not charged to the next one measured."""
    time.sleep(seconds)


def gflops(flops: float, seconds: float) -> float:
    return flops / seconds / 1e9


# ------------------------------------------------------------------ data
def random_matrix(n: int, d: int, dtype=np.float64, seed: int = 0) -> np.ndarray:
    """A fresh standard-normal C-contiguous (n, d) array, drawn in place (no
    float64 temporary for float32)."""
    rng = np.random.default_rng(seed)
    X = np.empty((n, d), dtype=dtype)
    rng.standard_normal(out=X, dtype=X.dtype)
    return X


def bytes_h(nbytes: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(nbytes) < 1024 or unit == "GiB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    return f"{nbytes:.1f} GiB"


# ------------------------------------------------------------- threading
class thread_limits:
    """Limit numpy's BLAS (threadpoolctl) and torch (if imported) to ``n``
    threads inside the block. fastlinreg gets ``n_jobs`` explicitly."""

    def __init__(self, n: int):
        self.n = n
        self._ctl = None
        self._torch_prev = None

    def __enter__(self):
        from threadpoolctl import threadpool_limits

        self._ctl = threadpool_limits(limits=self.n, user_api="blas")
        torch = sys.modules.get("torch")
        if torch is not None:
            self._torch_prev = torch.get_num_threads()
            torch.set_num_threads(self.n)
        return self

    def __exit__(self, *exc):
        self._ctl.restore_original_limits()
        torch = sys.modules.get("torch")
        if torch is not None and self._torch_prev is not None:
            torch.set_num_threads(self._torch_prev)
        return False


def default_threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


# --------------------------------------------------------------- machine
def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_flags() -> list[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = line.split(":", 1)[1].split()
                    return sorted(f for f in flags if f in {"avx2", "fma", "avx512f", "avx512vl"})
    except OSError:
        pass
    return []


def _mem_total() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _version(module: str) -> str | None:
    try:
        mod = __import__(module)
    except Exception:  # noqa: BLE001 - an optional peer that fails to import is just absent
        return None
    return getattr(mod, "__version__", "?")


def _git_commit() -> str | None:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src", "cpp"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + (" (src/cpp modified)" if dirty.stdout.strip() else "")


def _built_time(pkg) -> str | None:
    """When the installed compiled module was built (its file's mtime): the
    repository's HEAD at run time need not be what was installed."""
    import glob

    libs = glob.glob(os.path.join(os.path.dirname(pkg.__file__), "_core*"))
    if not libs:
        return None
    t = _dt.datetime.fromtimestamp(os.path.getmtime(libs[0]), _dt.timezone.utc)
    return t.strftime("%Y-%m-%d %H:%M UTC")


def blas_info() -> list[dict]:
    """threadpoolctl's view of the BLAS libraries loaded, marking numpy's."""
    from threadpoolctl import threadpool_info

    out = []
    for lib in threadpool_info():
        if lib.get("user_api") != "blas":
            continue
        path = lib.get("filepath", "")
        owner = next(
            (
                p
                for p in ("numpy", "scipy", "torch", "daal", "sklearn")
                if f"{os.sep}{p}" in path or f"{p}.libs" in path
            ),
            "?",
        )
        out.append(
            {
                "owner": owner,
                "internal_api": lib.get("internal_api"),
                "version": lib.get("version"),
                "architecture": lib.get("architecture"),  # the OpenBLAS kernel that runs
                "threading_layer": lib.get("threading_layer"),
                "num_threads": lib.get("num_threads"),
                "filepath": path,
            }
        )
    return out


def machine_info(threads: int) -> dict:
    """What ran: CPU, cores, memory, numpy's BLAS kernel, library versions."""
    import fastlinreg

    try:
        from fastlinreg import _core

        openmp = bool(_core.has_openmp)
    except Exception:  # noqa: BLE001
        openmp = None
    blas = blas_info()
    numpy_blas = next((b for b in blas if b["owner"] == "numpy"), None)
    return {
        "cpu": _cpu_model(),
        "cpu_flags": _cpu_flags(),
        "cores_available": default_threads(),
        "cpu_count": os.cpu_count(),
        "mem_total_bytes": _mem_total(),
        "threads_used": threads,
        "numpy_blas": numpy_blas,
        "blas_libraries": blas,
        "blas_env": {v: os.environ.get(v) for v in BLAS_ENV_VARS},
        "omp_num_threads_env": os.environ.get("OMP_NUM_THREADS"),
        "python": platform.python_version(),
        "versions": {
            "fastlinreg": getattr(fastlinreg, "__version__", "?"),
            "numpy": np.__version__,
            "scipy": _version("scipy"),
            "sklearn": _version("sklearn"),
        },
        "fastlinreg_path": os.path.dirname(fastlinreg.__file__),
        "fastlinreg_built": _built_time(fastlinreg),
        "fastlinreg_openmp": openmp,
        "git_commit": _git_commit(),
    }


def machine_line(info: dict) -> str:
    nb = info.get("numpy_blas") or {}
    blas = (
        f"{nb.get('internal_api')} {nb.get('version')} kernel {nb.get('architecture')}"
        if nb
        else "unknown"
    )
    mem = info.get("mem_total_bytes")
    env = ", ".join(f"{k}={v}" for k, v in info["blas_env"].items() if v is not None)
    return (
        f"{info['cpu']} ({', '.join(info['cpu_flags'])}); {info['cores_available']} cores; "
        f"{bytes_h(mem) if mem else '?'} RAM; threads used: {info['threads_used']}; "
        f"numpy BLAS: {blas}" + (f"; {env} set" if env else "; OPENBLAS_* unset")
    )


def warn_blas_env() -> None:
    set_vars = {v: os.environ[v] for v in BLAS_ENV_VARS if v in os.environ}
    if set_vars:
        print(
            f"note: {set_vars} are set and can slow numpy's BLAS down; to compare against "
            "numpy fairly, rerun with `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE ...` "
            "(see benchmarks/README.md)",
            file=sys.stderr,
        )


# ---------------------------------------------------------------- output
def _jsonable(obj):
    if isinstance(obj, (np.floating, np.integer, np.bool_)):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if hasattr(obj, "__dataclass_fields__"):
        return asdict(obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON-serialisable: {type(obj)!r}")


@dataclass
class Table:
    """A markdown table: a title, a header row, data rows and footnotes."""

    title: str
    header: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *cells) -> None:
        self.rows.append([str(c) for c in cells])

    def markdown(self) -> str:
        lines = [
            f"## {self.title}",
            "",
            "| " + " | ".join(self.header) + " |",
            "|" + "|".join("---" for _ in self.header) + "|",
        ]
        lines += ["| " + " | ".join(r) + " |" for r in self.rows]
        if self.notes:
            lines.append("")
            lines += [f"- {n}" for n in self.notes]
        return "\n".join(lines) + "\n"

    def text(self) -> str:
        cells = [self.header] + self.rows
        widths = [max(len(r[i]) for r in cells) for i in range(len(self.header))]
        fmt = "  ".join(f"{{:<{w}}}" for w in widths)
        out = [self.title, fmt.format(*self.header), fmt.format(*("-" * w for w in widths))]
        out += [fmt.format(*r) for r in self.rows]
        out += [f"  * {n}" for n in self.notes]
        return "\n".join(out)


def write_results(
    name: str,
    title: str,
    info: dict,
    payload: dict,
    tables: Sequence[Table],
    command: str,
    out_dir: Path = RESULTS_DIR,
) -> tuple[Path, Path]:
    """Write ``<name>.json`` (everything, absolute times included) and
    ``<name>.md`` (date, machine, then the ratio tables)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    doc = {
        "name": name,
        "date": now,
        "command": command,
        "machine": info,
        **payload,
        "tables": [asdict(t) for t in tables],
    }
    jpath, mpath = out_dir / f"{name}.json", out_dir / f"{name}.md"
    jpath.write_text(json.dumps(doc, indent=1, default=_jsonable) + "\n")
    md = [
        f"# {title}",
        "",
        f"- Date: {now}",
        f"- Machine: {machine_line(info)}",
        f"- fastlinreg: {info['versions']['fastlinreg']}, compiled module built "
        f"{info.get('fastlinreg_built')}; repository HEAD at run time: "
        f"{info.get('git_commit')}",
        f"- Command: `{command}`",
        "- Every figure is a ratio of two measurements taken in this one run "
        "(absolute times are in the JSON next to this file).",
        "",
    ]
    md += [t.markdown() for t in tables]
    mpath.write_text("\n".join(md))
    return jpath, mpath


def fmt_ratio(x: float | None, digits: int = 2) -> str:
    if x is None or not np.isfinite(x):
        return "n/a"
    if x >= 100:
        return f"{x:.0f}×"
    return f"{x:.{digits}f}×"


def fmt_load(cores: float | None, info: RoundsInfo | None = None) -> str:
    """Others' load for a table cell, with the quiet/run round counts when known."""
    if cores is None:
        return "n/a"
    if info is None:
        return f"{cores:.2f} cores"
    return f"{cores:.2f} ({info.quiet_kept}/{len(info.loads)} quiet, {info.rounds_run} run)"


def fmt_check(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "**missed**")


# ---------------------------------------------------------------- memory
_PEAK_RSS_CHILD = r"""
import json, resource, sys
import numpy as np

args = json.loads(sys.argv[1])

def status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)

def reset_peak():
    # Linux >= 4.0: writing 5 resets VmHWM (the peak RSS) to the current RSS.
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False

from fastlinreg import LinearRegression

dtype = np.dtype(args["dtype"])
n, d = args["n"], args["d"]
rng = np.random.default_rng(args["seed"])
# Warm-up on a small problem first, so that imports, thread pools and
# allocator arenas are part of the baseline, not charged to the fit.
Xs = rng.standard_normal((256, d), dtype=dtype)
LinearRegression(**args["params"]).fit(Xs, rng.standard_normal(256))
del Xs
X = np.empty((n, d), dtype=dtype)
rng.standard_normal(out=X, dtype=dtype)  # drawn in place: no temporary
y = rng.standard_normal(n)
reset = reset_peak()
base = status_kib("VmRSS")
peak_before = status_kib("VmHWM")
maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
model = LinearRegression(**args["params"]).fit(X, y)
peak_after = status_kib("VmHWM")
maxrss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"x_bytes": int(X.nbytes), "y_bytes": int(y.nbytes), "baseline": base,
                  "peak_before_fit": peak_before, "peak_after_fit": peak_after,
                  "hwm_reset": reset, "ru_maxrss_before": maxrss_before,
                  "ru_maxrss_after": maxrss_after, "solver": model.solver_}))
"""


def peak_rss_of_fit(
    n: int, d: int, dtype, params: dict, seed: int = 0, timeout: float = 300
) -> dict:
    """Peak resident memory a ``LinearRegression(**params).fit(X, y)`` adds
    above the baseline with X (n, d) and y already allocated, measured in a
    fresh subprocess.

    The peak is the kernel's VmHWM, reset to the current RSS just before the
    fit (``/proc/self/clear_refs``); ``ru_maxrss`` is recorded too but cannot
    be reset, and a child starts with its parent's value (Linux carries it
    over fork and exec), so it is useless when the parent is big.
    ``extra`` = peak during the fit − RSS just before it. The claim "no copy
    of X" holds when ``extra <= 5% of size(X)``.
    """
    arg = json.dumps(
        {"n": n, "d": d, "dtype": np.dtype(dtype).name, "params": params, "seed": seed}
    )
    proc = subprocess.run(
        [sys.executable, "-c", _PEAK_RSS_CHILD, arg],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"peak-RSS child failed:\n{proc.stderr[-2000:]}")
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    r["extra"] = r["peak_after_fit"] - r["baseline"]
    r["extra_over_x"] = r["extra"] / r["x_bytes"]
    r["peak_over_x"] = (r["x_bytes"] + max(r["extra"], 0)) / r["x_bytes"]
    r["no_copy_of_x"] = bool(r["hwm_reset"]) and r["extra"] <= 0.05 * r["x_bytes"]
    return r


# ------------------------------------------------------------------ misc
def optional_import(name: str):
    """The module, or None when it is not installed (a peer that is missing
    is reported as n/a, not as a failure)."""
    try:
        return __import__(name, fromlist=["_"])
    except Exception as exc:  # noqa: BLE001 - ImportError or a broken install alike
        print(
            f"note: {name} not usable here ({type(exc).__name__}: {exc}); skipping it",
            file=sys.stderr,
        )
        return None


def command_line() -> str:
    env = " ".join(f"{v}={os.environ[v]}" for v in BLAS_ENV_VARS if v in os.environ)
    script = os.path.relpath(sys.argv[0], REPO_ROOT) if sys.argv else "?"
    return " ".join(filter(None, [env, "python", script, *sys.argv[1:]]))


def base_parser(doc: str, *, threads_help: str, repeat_help: str):
    """The options every benchmark script takes (--quick, --threads, --repeat,
    --patience); scripts add their own --sections and the like."""
    import argparse

    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smaller arrays (under a minute)")
    p.add_argument("--threads", type=int, default=default_threads(), help=threads_help)
    p.add_argument("--repeat", type=int, default=None, help=repeat_help)
    p.add_argument(
        "--patience",
        type=float,
        default=None,
        help="redo rounds during which other processes were busy, for up to this "
        "many times the time of the first rounds (default 0.75, 0 with "
        "--quick)",
    )
    return p


def finish(args, title, info, payload, tables, t_start) -> int:
    """Print the tables, write the JSON and markdown results, report where."""
    payload["wall_s"] = time.perf_counter() - t_start
    print()
    for t in tables:
        print(t.text(), end="\n\n")
    jpath, mpath = write_results(
        args.name,
        title + (" (--quick)" if args.quick else ""),
        info,
        payload,
        tables,
        command_line(),
    )
    print(f"wrote {jpath} and {mpath} ({payload['wall_s']:.0f} s)")
    return 0
