"""The CUDA backend: fastlinreg's fused kernels on an NVIDIA GPU.

The kernels live in the optional compiled module ``fastlinreg._cuda``
(``cuda/`` in the source tree), built when CMake finds ``nvcc``. Importing
this file imports nothing heavy: the module, the CUDA runtime and cuBLAS are
loaded on first use, and :func:`available` says in one sentence why the
backend cannot run here (no module, no driver, no device).

Inputs: a :class:`~fastlinreg.backends.Problem` whose X (and Y,
sample_weight) are numpy arrays is copied to the device once, at its first
call, and the copy serves every later call with the same Problem object (a
fit's column moments, curvature and descent); it is freed with the Problem.
Device arrays (CuPy, PyTorch, JAX, ...) come in through
``__cuda_array_interface__`` or DLPack and are read in place. float32 X
stays float32 on the device; every reduction accumulates in float64 in a
fixed order (no atomics), so the bits are the same on every run.

The model (W, b, shift, scale: a few d k numbers) crosses as host float64;
the loops map it to the descended space and back on the host exactly as
descent.hpp's ParamMap does. Everything runs on the legacy default stream.
"""

from __future__ import annotations

import functools
import glob
import os
import weakref
from dataclasses import dataclass

import numpy as np

from . import cpu
from ._cuda_arrays import DeviceProblem, cuda_module, device_output, device_view
from ._hessian import mean_loss_hessian
from ._protocol import (
    DescentConfig,
    DescentOutcome,
    Problem,
    SgdConfig,
    SgdOutcome,
    Status,
)
from .reference import top_curvature  # descent.hpp's, step for step

NAME = "cuda"

_module = cuda_module  # one name to stub in the tests


@dataclass
class Diagnostics:
    """What the last calls did, for the benchmark and the tests: blocking host
    waits of the last :func:`descend` (1: only the final copy-back) and the
    rank update of the last :func:`sufficient_stats` ("cublas" or "own")."""

    host_waits: int = 0
    stats_engine: str = ""


diagnostics = Diagnostics()


@functools.lru_cache(maxsize=1)
def available() -> tuple[bool, str]:
    """``(True, "")`` when a CUDA device can run the kernels, else ``(False, why)``.

    why starts with "fastlinreg was built without CUDA", "no CUDA driver" or
    "no CUDA device". Asking starts the CUDA runtime (once); it never raises.
    """
    try:
        mod = _module()
    except ImportError as exc:
        return False, (
            f"fastlinreg was built without CUDA: {exc}. Rebuild with nvcc on PATH "
            "(pip install . -Ccmake.define.FASTLINREG_CUDA=ON makes a missing nvcc an error)"
        )
    st = mod.device_status()
    if st["error_name"] == "cudaErrorNoDevice" or (st["error"] == 0 and st["device_count"] == 0):
        return False, "no CUDA device"
    if st["error"] != 0:
        return False, f"no CUDA driver: {st['message']} ({st['error_name']})"
    return True, ""


def device_name() -> str:
    """Device 0 and its compute capability, e.g. "NVIDIA H200 (compute capability 9.0)"."""
    st = _require().device_status()
    major, minor = st["compute_capability"]
    return f"{st['name']} (compute capability {major}.{minor})"


def _require():
    ok, reason = available()
    if not ok:
        raise ValueError(f"backend 'cuda' is not available here: {reason}")
    return _module()


def _cublas_candidates() -> list[str]:
    """Where cuBLAS may be: the nvidia-cublas wheel, then the CUDA toolkit."""
    found: list[str] = []
    try:
        import nvidia  # the namespace package of NVIDIA's runtime wheels

        for base in list(nvidia.__path__):
            found += sorted(glob.glob(os.path.join(base, "*", "lib", "libcublas.so.*")))
    except ImportError:
        pass
    for env in ("CUDA_HOME", "CUDA_PATH"):
        if os.environ.get(env):
            found += sorted(glob.glob(os.path.join(os.environ[env], "lib64", "libcublas.so.*")))
    found += sorted(glob.glob("/usr/local/cuda/lib64/libcublas.so.*"))
    major = _module().cuda_major
    return [p for p in found if p.endswith(f".so.{major}") or f".so.{major}." in p]


@functools.lru_cache(maxsize=1)
def _load_cublas() -> str | None:
    """The cuBLAS loaded (a path or soname), or None: sufficient_stats then
    runs its own Gram kernel."""
    try:
        return _module().load_cublas(_cublas_candidates())
    except RuntimeError:
        return None


def to_device(X, Y=None, sample_weight=None) -> DeviceProblem:
    """``(X, Y, sample_weight)`` on the device; host arrays copied once.

    A Problem's X may be the result: its arrays then serve every call."""
    _require()
    return DeviceProblem(X, Y, sample_weight)


# The device copies of the Problems in use, by id; each goes with its Problem.
_resident: dict[int, DeviceProblem] = {}


def _on_device(problem: Problem) -> DeviceProblem:
    if isinstance(problem.X, DeviceProblem):
        return problem.X
    key = id(problem)
    if key not in _resident:
        _require()
        _resident[key] = DeviceProblem(problem.X, problem.Y, problem.sample_weight)
        weakref.finalize(problem, _resident.pop, key, None)
    return _resident[key]


def _checked(problem: Problem, with_y: bool = True):
    return _on_device(problem).problem(float(problem.weight_sum), problem.loss.kind, with_y)


def prepare_X(X):
    """A device array as is (read in place); host X as the CPU backend reads it
    (copied to the device at the first call)."""
    if isinstance(X, DeviceProblem) or device_view(X) is not None:
        return X
    return cpu.prepare_X(X)


def _model(W, b):
    return (
        np.array(W, dtype=np.float64, order="C", copy=True),
        np.array(b, dtype=np.float64, copy=True).reshape(-1),
    )


def _f64(a):
    return None if a is None else np.ascontiguousarray(a, dtype=np.float64)


def fused_pass(problem: Problem, W, b):
    W, b = _model(W, b)
    G, gb = np.empty_like(W), np.empty_like(b)
    loss = _module().fused_pass(_checked(problem), W, b, G, gb)
    return loss, G, gb


def predict(X, W, b, n_jobs=None):
    """``X W + b``, (n, k) float64 accumulated in double: a numpy array for host
    X, a device array for device X (torch for torch, else CuPy, else a
    :class:`~fastlinreg.backends._cuda_arrays.DeviceArray`). ``n_jobs`` is unused."""
    mod = _require()
    on_device = isinstance(X, DeviceProblem) or device_view(X) is not None
    dev = X if isinstance(X, DeviceProblem) else DeviceProblem(prepare_X(X))
    W, b = _model(W, b)
    shape = (dev.n, b.shape[0])
    out = device_output(X, shape) if on_device else None
    if out is not None:
        mod.predict(dev.problem(1.0, with_y=False), W, b, device_view(out).ptr)
        return out
    buf = mod.DeviceBuffer(max(8 * shape[0] * shape[1], 1))
    mod.predict(dev.problem(1.0, with_y=False), W, b, buf.ptr)
    P = np.empty(shape)
    buf.download(P)
    return P


def sufficient_stats(problem: Problem):
    """Centred statistics in one read of X; the rank update in cuBLAS dsyrk
    when cuBLAS loads, else in the module's own Gram kernel."""
    d, k = problem.shape[1], _on_device(problem).k
    parts = (np.empty(d), np.empty(k), np.empty((d, d)), np.empty((d, k)), np.empty((k, k)))
    use_cublas = _load_cublas() is not None
    wsum, diagnostics.stats_engine = _module().sufficient_stats(
        _checked(problem), *parts, use_cublas
    )
    return (wsum, *parts)


def column_moments(problem: Problem):
    d = problem.shape[1]
    mean, var = np.empty(d), np.empty(d)
    wsum = _module().column_moments(_checked(problem, with_y=False), mean, var)
    return wsum, mean, var


def curvature(problem: Problem, config: DescentConfig) -> float:
    """descent.hpp's top_curvature (Lanczos) on the device's fused pass
    of the squared loss at y = 0, scaled by the loss's curvature bound: the
    pass of descent.hpp's CurvatureProbe."""
    mod = _module()
    probe_problem = _on_device(problem).problem(float(problem.weight_sum), 0, with_y=False)
    c = problem.loss.curvature

    def probe(W, b):
        W, b = _model(W, b)
        G, gb = np.empty_like(W), np.empty_like(b)
        mod.fused_pass(probe_problem, W, b, G, gb)
        return c * G, c * gb

    return top_curvature(probe, config, problem.shape[1], c)


def curvature_gram(stats, config: DescentConfig, n_jobs=None) -> float:
    """O(d^2) a step on the host: the CPU backend's."""
    return cpu.curvature_gram(stats, config, n_jobs)


def descend(problem: Problem, config: DescentConfig, W0, b0) -> DescentOutcome:
    """Every step on the device; with ``tol`` None the host waits once, at the end."""
    mod = _module()
    p = mod.DescentParams()
    p.max_iter, p.learning_rate = int(config.max_iter), float(config.learning_rate)
    p.tol = -1.0 if config.tol is None else float(config.tol)
    p.alpha, p.fit_intercept = float(config.alpha), bool(config.fit_intercept)
    p.shift, p.scale = _f64(config.shift), _f64(config.scale)
    W, b = _model(W0, b0)
    curve = np.empty(config.max_iter)
    r = mod.descend(_checked(problem), p, W, b, curve)
    diagnostics.host_waits = r.host_waits
    return DescentOutcome(W, b, r.n_iter, Status(r.status), r.last_loss, curve[: r.n_iter].copy())


def hessian(problem: Problem, W, b):
    """Newton's Hessian, on the host (backends/_hessian.py) for a host X; a
    device X is refused: there is no device Hessian pass yet."""
    if not isinstance(problem.X, np.ndarray):
        raise ValueError(
            "the cuda backend has no Hessian pass for device arrays yet: use solver='lbfgs', or "
            "pass X as a numpy array"
        )
    return mean_loss_hessian(problem, W, b)


def descend_gram(stats, config: DescentConfig, W0, b0, n_jobs=None) -> DescentOutcome:
    """O(d^2 k) a step needs no GPU: the CPU backend's loop."""
    return cpu.descend_gram(stats, config, W0, b0, n_jobs)


def sgd(problem: Problem, config: SgdConfig, W0, b0) -> SgdOutcome:
    """Epochs on the device in the CPU backend's row order; one host wait an epoch."""
    mod = _module()
    p = mod.SgdParams()
    for field in ("max_epochs", "batch_size", "epoch_offset", "n_iter_no_change", "no_improvement"):
        setattr(p, field, int(getattr(config, field)))
    p.shuffle, p.fit_intercept = bool(config.shuffle), bool(config.fit_intercept)
    p.seed = int(config.seed)
    p.eta0, p.alpha = float(config.eta0), float(config.alpha)
    p.tol = -1.0 if config.tol is None else float(config.tol)
    p.best_loss, p.ref_loss = float(config.best_loss), float(config.ref_loss)
    p.shift, p.scale = _f64(config.shift), _f64(config.scale)
    W, b = _model(W0, b0)
    curve = np.empty(config.max_epochs)
    r = mod.sgd(_checked(problem), p, W, b, curve)
    return SgdOutcome(
        W,
        b,
        r.n_epochs,
        Status(r.status),
        r.best_loss,
        r.no_improvement,
        r.ref_loss,
        curve[: r.n_epochs].copy(),
    )
