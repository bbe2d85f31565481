"""The CUDA backend: fastlinreg's fused kernels on an NVIDIA GPU.

The kernels live in the optional compiled module ``fastlinreg._cuda``
(``cuda/`` in the source tree), built when CMake finds ``nvcc``. Importing
this file imports nothing heavy: the module, the CUDA runtime and cuBLAS are
loaded on first use, and :func:`available` says in one sentence why the
backend cannot run here (no module, no driver, no device).

Inputs
------
``X`` (and ``y``, ``sample_weight``) may be

* numpy arrays: copied to the device once per call. A fit that makes several
  calls should copy once with :meth:`CudaBackend.to_device` and pass the
  returned :class:`DeviceProblem` as ``X`` (``y`` and ``sample_weight`` then
  come from it);
* device arrays (CuPy, PyTorch, JAX, Numba...) through
  ``__cuda_array_interface__`` or DLPack: read in place, never copied. X must
  have contiguous rows (any row stride), float32 or float64; float32 stays
  float32 on the device. ``y`` and ``sample_weight`` are float64 on the
  device (converted with the array's own library when they are not).

Every reduction accumulates in float64 in a fixed order (no atomics), so the
results are the same bits on every run; they match the CPU backend to about
1e-12 relative for float64 X (the orders of the sums differ).

Everything runs on the legacy default CUDA stream.
"""

from __future__ import annotations

import functools
import glob
import os
from typing import Any, NamedTuple

import numpy as np

__all__ = ["CudaBackend", "DeviceProblem", "available"]

_FLOAT_X = (np.dtype(np.float32), np.dtype(np.float64))
_CUDA_DEVICE_TYPES = (2, 3, 13)  # DLPack: kDLCUDA, kDLCUDAHost, kDLCUDAManaged


@functools.lru_cache(maxsize=1)
def _module():
    """``fastlinreg._cuda``; raises ImportError when the build had no nvcc."""
    from .. import _cuda

    return _cuda


@functools.lru_cache(maxsize=1)
def available() -> tuple[bool, str]:
    """Whether the CUDA backend can run here, and why (not).

    Returns ``(True, "<device name> (compute capability X.Y)")`` or
    ``(False, reason)`` with reason one of "fastlinreg was built without
    CUDA: ...", "no CUDA driver: ..." or "no CUDA device". Asking starts the
    CUDA runtime (once); it never raises.
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
    major, minor = st["compute_capability"]
    return True, f"{st['name']} (compute capability {major}.{minor})"


def _require():
    ok, reason = available()
    if not ok:
        raise RuntimeError(f"the CUDA backend is not available: {reason}")
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


class _View(NamedTuple):
    """A device array seen through its interface."""

    ptr: int
    shape: tuple[int, ...]
    strides: tuple[int, ...]  # in elements
    dtype: np.dtype
    owner: Any  # keeps the memory (or the DLPack capsule) alive


def _device_view(obj) -> _View | None:
    """The device array behind obj, or None when obj is host data."""
    if isinstance(obj, np.ndarray):
        return None
    try:
        cai = obj.__cuda_array_interface__
    except (AttributeError, RuntimeError):  # torch raises RuntimeError when grad is required
        cai = None
    if cai is not None:
        dtype = np.dtype(cai["typestr"])
        shape = tuple(int(s) for s in cai["shape"])
        if cai.get("strides") is None:
            strides = tuple(int(np.prod(shape[i + 1 :])) for i in range(len(shape)))
        else:
            if any(s % dtype.itemsize for s in cai["strides"]):
                raise ValueError("device array strides are not whole elements")
            strides = tuple(int(s) // dtype.itemsize for s in cai["strides"])
        return _View(int(cai["data"][0]), shape, strides, dtype, obj)
    if hasattr(obj, "__dlpack__") and hasattr(obj, "__dlpack_device__"):
        if obj.__dlpack_device__()[0] not in _CUDA_DEVICE_TYPES:
            return None
        try:
            capsule = obj.__dlpack__(stream=1)  # 1: the legacy default stream, ours
        except TypeError:
            capsule = obj.__dlpack__()
        info = _module().dlpack_info(capsule)
        if info["lanes"] != 1:
            raise ValueError("vector-typed DLPack arrays are not supported")
        dtype = np.dtype(info["typestr"])
        return _View(
            info["ptr"], tuple(info["shape"]), tuple(info["strides"]), dtype, (obj, capsule)
        )
    return None


def _as_float64_device(obj):
    """A float64 C-contiguous copy of a device array, made by its own library."""
    try:
        import cupy

        return cupy.ascontiguousarray(cupy.asarray(obj), dtype=cupy.float64)
    except ImportError:
        pass
    if type(obj).__module__.startswith("torch"):
        import torch

        return obj.detach().to(dtype=torch.float64).contiguous()
    raise TypeError(
        "y and sample_weight on the device must be C-contiguous float64 "
        "(install CuPy to have them converted)"
    )


class DeviceProblem:
    """``(X, y, sample_weight)`` in device memory, for the calls of one fit.

    Made by :meth:`CudaBackend.to_device`; holds device buffers for the
    arrays that came from the host, and references to those already there.
    ``data`` is the ``_cuda.DeviceData`` (pointers and shape) the kernels take.
    Host arrays are copied here, once; device arrays are referenced, not copied.
    """

    def __init__(self, X, y=None, sample_weight=None):
        mod = _require()
        self._keep: list[Any] = []
        xptr, n, d, ldx, dtype = self._put_X(mod, X)
        self.n, self.d, self.dtype = n, d, dtype
        self.k = 1
        yptr = 0
        if y is not None:
            yptr, self.k = self._put_float64(mod, y, n, "y")
        swptr = 0
        if sample_weight is None:
            self.weight_sum = float(n)
        else:
            swptr, _ = self._put_float64(mod, sample_weight, n, "sample_weight", vector=True)
            self.weight_sum = self._weight_sum(sample_weight)
        self.has_y = y is not None
        self._ptrs = (xptr, dtype.itemsize, n, d, ldx, yptr, swptr)

    @property
    def data(self):
        """The ``_cuda.DeviceData`` of these arrays (raises for a weight sum <= 0)."""
        return self.device_data()

    def device_data(self, k=None, weight_sum=None, with_y=True, with_weights=True):
        """The ``_cuda.DeviceData`` of these arrays, with k (outputs, for y = 0),
        the weight sum, y and the weights overridable."""
        xptr, itemsize, n, d, ldx, yptr, swptr = self._ptrs
        return _module().DeviceData(
            xptr,
            itemsize,
            n,
            d,
            ldx,
            yptr if with_y else 0,
            self.k if k is None else int(k),
            swptr if with_weights else 0,
            self.weight_sum if weight_sum is None else float(weight_sum),
        )

    def _put_X(self, mod, X):
        view = _device_view(X)
        if view is None:
            X = np.asarray(X)
            if X.ndim != 2:
                raise ValueError("X must be 2-D")
            if X.dtype not in _FLOAT_X:
                X = X.astype(np.float64)
            X = np.ascontiguousarray(X)
            buf = mod.DeviceBuffer(max(X.nbytes, 1))
            buf.upload(X)
            self._keep.append(buf)
            n, d = X.shape
            return buf.ptr, n, d, d, X.dtype
        if len(view.shape) != 2:
            raise ValueError("X must be 2-D")
        if view.dtype not in _FLOAT_X:
            raise TypeError(f"X on the device must be float32 or float64, not {view.dtype}")
        n, d = view.shape
        if d > 1 and view.strides[1] != 1 or n > 1 and view.strides[0] < d:
            raise ValueError(
                "X on the device must have contiguous rows (C order, any row stride); "
                "pass a C-contiguous copy"
            )
        self._keep.append(view.owner)
        return view.ptr, n, d, (view.strides[0] if n > 1 else d), view.dtype

    def _put_float64(self, mod, a, n, name, vector=False):
        view = _device_view(a)
        if view is not None:
            ok = view.dtype == np.float64 and _c_contiguous(view)
            if not ok:
                a = _as_float64_device(a)
                view = _device_view(a)
            shape = view.shape
            k = 1 if len(shape) == 1 else shape[1]
            if shape[0] != n or (vector and len(shape) != 1) or len(shape) > 2:
                raise ValueError(f"{name} must have {n} rows")
            self._keep.append(view.owner)
            return view.ptr, k
        host = np.ascontiguousarray(a, dtype=np.float64)
        if host.ndim == 0 or host.shape[0] != n or (vector and host.ndim != 1) or host.ndim > 2:
            raise ValueError(f"{name} must have {n} rows")
        buf = mod.DeviceBuffer(max(host.nbytes, 1))
        buf.upload(host)
        self._keep.append(buf)
        return buf.ptr, 1 if host.ndim == 1 else host.shape[1]

    @staticmethod
    def _weight_sum(sw) -> float:
        view = _device_view(sw)
        if view is None:
            return float(np.sum(np.asarray(sw, dtype=np.float64)))
        try:
            import cupy

            return float(cupy.asarray(sw).sum(dtype=cupy.float64))
        except ImportError:
            return float(sw.double().sum())  # torch


def _c_contiguous(view: _View) -> bool:
    expect = 1
    for size, stride in zip(reversed(view.shape), reversed(view.strides)):
        if size > 1 and stride != expect:
            return False
        expect *= size
    return True


def _vec(a) -> np.ndarray | None:
    return None if a is None else np.ascontiguousarray(a, dtype=np.float64)


class CudaBackend:
    """Where the work runs on an NVIDIA GPU.

    Each method mirrors the CPU backend's function of the same role, takes
    host float64 arrays for the model (W, V, c, shift, scale: a few d*k
    numbers) and returns host numpy arrays, except :meth:`predict` on device
    input. Shapes: X (n, d), y (n, k) (or (n,) for k = 1), W and V (d, k),
    b and c (k,), sample_weight (n,).
    """

    name = "cuda"

    def __init__(self):
        self.last_host_waits = 0  # blocking waits of the last descend() (1: only the final copy)
        self.last_stats_engine = ""  # "cublas" or "own": the rank update of the last stats call

    @staticmethod
    def available() -> tuple[bool, str]:
        """``(ok, reason)``: see the module-level :func:`available`."""
        return available()

    def to_device(self, X, y=None, sample_weight=None) -> DeviceProblem:
        """Put ``(X, y, sample_weight)`` on the device once, for the calls of a fit."""
        return DeviceProblem(X, y, sample_weight)

    @staticmethod
    def _problem(X, y=None, sample_weight=None) -> DeviceProblem:
        if isinstance(X, DeviceProblem):
            return X
        return DeviceProblem(X, y, sample_weight)

    def fused_pass(self, X, y, W, b, sample_weight=None, weight_sum=None):
        """One fused pass at the model ``(W (d, k), b (k))``.

        Returns ``(loss, G (d, k), gb (k))``: the mean loss
        ``sum(w (XW + b - y)^2) / (2 sum w)`` and its mean gradients (host
        float64). ``y`` None means y = 0. ``weight_sum`` overrides the
        normaliser (default: the sum of the weights, or n).
        """
        mod = _require()
        p = self._problem(X, y, sample_weight)
        W = np.ascontiguousarray(W, dtype=np.float64).reshape(p.d, -1)
        b = np.ascontiguousarray(b, dtype=np.float64).reshape(-1)
        data = p.device_data(k=p.k if p.has_y else b.shape[0], weight_sum=weight_sum)
        G = np.empty((p.d, b.shape[0]))
        gb = np.empty(b.shape[0])
        loss = mod.fused_pass(data, W, b, G, gb)
        return loss, G, gb

    def sufficient_stats(self, X, y, sample_weight=None):
        """Centred sufficient statistics in one read of X.

        Returns ``(weight_sum, mean_x (d), mean_y (k), Cxx (d, d), Cxy (d, k),
        Cyy (k, k))`` (host float64), the CPU backend's layout. The rank
        update runs in cuBLAS dsyrk when cuBLAS loads, else in a built-in
        kernel; ``self.last_stats_engine`` says which.
        """
        mod = _require()
        p = self._problem(X, y, sample_weight)
        if not p.has_y:
            raise ValueError("sufficient_stats needs y")
        d, k = p.d, p.k
        mean_x, mean_y = np.empty(d), np.empty(k)
        Cxx, Cxy, Cyy = np.empty((d, d)), np.empty((d, k)), np.empty((k, k))
        use = _load_cublas() is not None
        wsum, self.last_stats_engine = mod.sufficient_stats(
            p.data, mean_x, mean_y, Cxx, Cxy, Cyy, use
        )
        return wsum, mean_x, mean_y, Cxx, Cxy, Cyy

    def column_moments(self, X, sample_weight=None):
        """Weighted column means and variances: ``(weight_sum, mean (d), var (d))``."""
        mod = _require()
        p = self._problem(X, None, sample_weight)
        mean, var = np.empty(p.d), np.empty(p.d)
        wsum = mod.column_moments(p.data, mean, var)
        return wsum, mean, var

    def descend(
        self,
        X,
        y,
        V,
        c,
        *,
        sample_weight=None,
        weight_sum=None,
        max_iter,
        learning_rate,
        tol,
        alpha,
        fit_intercept,
        shift,
        scale,
        n_jobs=None,
        check_every=16,
    ):
        """Gradient descent, every step on the device.

        ``V`` (d, k) and ``c`` (k) (host float64, C-contiguous) hold the start
        and receive the last iterate, in the standardised space of ``shift``
        and ``scale`` (descent.hpp). Returns ``(n_iter, status, grad_norm0,
        grad_norm, last_loss, loss_curve (n_iter,))``, status 0 max_iter,
        1 converged, 2 diverged (the CPU backend's codes). With ``tol < 0``
        the host never waits on the device before the end; with ``tol >= 0``
        it reads the device's stop flag every ``check_every`` steps, two
        batches behind. ``n_jobs`` is ignored.
        """
        mod = _require()
        p = self._problem(X, y, sample_weight)
        data = p.device_data(weight_sum=weight_sum)
        s = mod.DescentSettings()
        s.max_iter = int(max_iter)
        s.learning_rate = float(learning_rate)
        s.tol = float(tol)
        s.alpha = float(alpha)
        s.fit_intercept = bool(fit_intercept)
        s.check_every = int(check_every)
        curve = np.empty(max(int(max_iter), 0))
        n_iter, status, g0, g, last, waits = mod.descend(
            data, s, V, c, curve, _vec(shift), _vec(scale)
        )
        self.last_host_waits = waits
        return n_iter, status, g0, g, last, curve[:n_iter]

    def descend_gram(
        self,
        stats,
        V,
        c,
        *,
        max_iter,
        learning_rate,
        tol,
        alpha,
        fit_intercept,
        shift,
        scale,
        n_jobs=None,
    ):
        """Gradient descent replayed from sufficient statistics, on the host:
        O(d^2 k) a step needs no GPU. Same arguments and return value as the
        CPU backend's ``descend_gram``."""
        from .. import _core  # the host kernels

        curve = np.empty(max_iter, dtype=np.float64)
        n_iter, status, g0, g, last = _core.descend_gram(
            stats.weight_sum,
            stats.mean_x,
            stats.mean_y,
            stats.Cxx,
            stats.Cxy,
            stats.Cyy,
            V,
            c,
            curve,
            int(max_iter),
            float(learning_rate),
            float(tol),
            float(alpha),
            bool(fit_intercept),
            _vec(shift),
            _vec(scale),
            0 if n_jobs is None else int(n_jobs),
        )
        return n_iter, status, g0, g, last, curve[:n_iter]

    def sgd(
        self,
        X,
        y,
        V,
        c,
        *,
        sample_weight=None,
        weight_sum=None,
        max_epochs,
        batch_size,
        shuffle,
        seed,
        eta0,
        power_t,
        epoch_offset,
        alpha,
        tol,
        n_iter_no_change,
        best_loss,
        no_improvement,
        ref_loss,
        fit_intercept,
        shift,
        scale,
    ):
        """Mini-batch SGD epochs on the device, visiting the rows in the CPU
        backend's order for the same seed.

        Updates ``V`` (d, k) and ``c`` (k) in place. Returns ``(n_epochs,
        status, best_loss, no_improvement, ref_loss, loss_curve (n_epochs,))``,
        as the CPU backend's ``descend_sgd``. The host reads one number back
        per epoch (the epoch's loss, for the tol rule).
        """
        mod = _require()
        p = self._problem(X, y, sample_weight)
        data = p.device_data(weight_sum=weight_sum)
        s = mod.SgdSettings()
        s.max_epochs, s.batch_size, s.shuffle = int(max_epochs), int(batch_size), bool(shuffle)
        s.seed, s.eta0, s.power_t = int(seed), float(eta0), float(power_t)
        s.epoch_offset, s.alpha, s.tol = int(epoch_offset), float(alpha), float(tol)
        s.n_iter_no_change, s.best_loss = int(n_iter_no_change), float(best_loss)
        s.no_improvement, s.ref_loss = int(no_improvement), float(ref_loss)
        s.fit_intercept = bool(fit_intercept)
        curve = np.empty(max(int(max_epochs), 0))
        n_epochs, status, best, no_imp, ref = mod.sgd(
            data, s, V, c, curve, _vec(shift), _vec(scale)
        )
        return n_epochs, status, best, no_imp, ref, curve[:n_epochs]

    def predict(self, X, W, b):
        """``X @ W + b`` as (n, k) float64, accumulated in double.

        Host X gives a numpy array. Device X gives a device array: CuPy when
        CuPy imports, else a torch tensor for torch input, else a
        :class:`DeviceArray` (``__cuda_array_interface__``).
        """
        mod = _require()
        on_device = not isinstance(X, DeviceProblem) and _device_view(X) is not None
        p = self._problem(X)
        W = np.ascontiguousarray(W, dtype=np.float64).reshape(p.d, -1)
        b = np.ascontiguousarray(b, dtype=np.float64).reshape(-1)
        k = b.shape[0]
        data = p.device_data(k=k, weight_sum=1.0, with_y=False, with_weights=False)
        out = _device_output(X, (p.n, k)) if on_device else None
        if out is None:
            buf = mod.DeviceBuffer(max(8 * p.n * k, 1))
            mod.predict(data, W, b, buf.ptr)
            if not on_device:
                P = np.empty((p.n, k))
                buf.download(P)
                return P
            return DeviceArray(buf, (p.n, k))
        mod.predict(data, W, b, _device_view(out).ptr)
        return out


def _device_output(like, shape):
    """An empty float64 device array of the library of ``like``, or None."""
    try:
        import cupy

        return cupy.empty(shape, dtype=cupy.float64)
    except ImportError:
        pass
    if type(like).__module__.startswith("torch"):
        import torch

        return torch.empty(shape, dtype=torch.float64, device=like.device)
    return None


class DeviceArray:
    """Device memory with ``__cuda_array_interface__`` (float64, C order):
    what :meth:`CudaBackend.predict` returns for device input without CuPy."""

    def __init__(self, buffer, shape):
        self._buffer = buffer
        self.shape = tuple(shape)
        self.dtype = np.dtype(np.float64)

    @property
    def __cuda_array_interface__(self):
        return {
            "shape": self.shape,
            "typestr": "<f8",
            "data": (self._buffer.ptr, False),
            "version": 3,
            "strides": None,
        }

    def get(self) -> np.ndarray:
        """A host copy."""
        out = np.empty(self.shape)
        self._buffer.download(out)
        return out
