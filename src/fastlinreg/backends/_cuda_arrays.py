"""Device-array plumbing of the CUDA backend: the compiled module, device
arrays read through ``__cuda_array_interface__`` or DLPack, host arrays
copied to the device, and what ``predict`` hands back for device input.

Nothing here imports CuPy, PyTorch or the compiled module at import time.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import numpy as np

__all__ = ["DeviceArray", "DeviceProblem", "cuda_module", "device_output", "device_view"]

_FLOAT_X = (np.dtype(np.float32), np.dtype(np.float64))
_CUDA_DEVICE_TYPES = (2, 3, 13)  # DLPack: kDLCUDA, kDLCUDAHost, kDLCUDAManaged


@functools.lru_cache(maxsize=1)
def cuda_module():
    """``fastlinreg._cuda``; raises ImportError when the build had no nvcc."""
    from .. import _cuda

    return _cuda


class DeviceView(NamedTuple):
    """A device array seen through its interface."""

    ptr: int
    shape: tuple[int, ...]
    strides: tuple[int, ...]  # in elements
    dtype: np.dtype
    owner: Any  # keeps the memory (or the DLPack capsule) alive


def device_view(obj) -> DeviceView | None:
    """The device array behind obj, or None when obj is host data."""
    if obj is None or isinstance(obj, np.ndarray):
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
        return DeviceView(int(cai["data"][0]), shape, strides, dtype, obj)
    if hasattr(obj, "__dlpack__") and hasattr(obj, "__dlpack_device__"):
        if obj.__dlpack_device__()[0] not in _CUDA_DEVICE_TYPES:
            return None
        try:
            capsule = obj.__dlpack__(stream=1)  # 1: the legacy default stream, ours
        except TypeError:
            capsule = obj.__dlpack__()
        info = cuda_module().dlpack_info(capsule)
        if info["lanes"] != 1:
            raise ValueError("vector-typed DLPack arrays are not supported")
        dtype = np.dtype(info["typestr"])
        return DeviceView(
            info["ptr"], tuple(info["shape"]), tuple(info["strides"]), dtype, (obj, capsule)
        )
    return None


def c_contiguous(view: DeviceView) -> bool:
    expect = 1
    for size, stride in zip(reversed(view.shape), reversed(view.strides)):
        if size > 1 and stride != expect:
            return False
        expect *= size
    return True


def as_float64_device(obj):
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
    """``(X, Y, sample_weight)`` in device memory, for the calls of one fit.

    Host arrays are copied to device buffers here, once; device arrays
    (``__cuda_array_interface__`` or DLPack) are referenced, never copied.
    X: (n, d) float32/float64 with contiguous rows (any row stride); float32
    stays float32. Y: (n, k) or (n,) float64 or None; sample_weight: (n,)
    float64 or None (device ones of another dtype are converted by their
    own library).
    """

    def __init__(self, X, Y=None, sample_weight=None):
        mod = cuda_module()
        self._keep: list[Any] = []
        self.rows = self._put_X(mod, X)  # a _cuda.DeviceRows
        self.n, self.d = self.rows.n, self.rows.d
        self.y_ptr, self.k = 0, 1
        if Y is not None:
            self.y_ptr, self.k = self._put_float64(mod, Y, self.n, "y")
        self.sw_ptr = 0
        if sample_weight is not None:
            self.sw_ptr, _ = self._put_float64(mod, sample_weight, self.n, "sample_weight", True)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n, self.d)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.float32 if self.rows.itemsize == 4 else np.float64)

    def problem(self, weight_sum: float, loss_kind: int = 0, with_y: bool = True):
        """The checked ``_cuda.Problem`` of these arrays."""
        return cuda_module().Problem(
            self.rows, self.y_ptr if with_y else 0, self.k, self.sw_ptr, weight_sum, loss_kind
        )

    def _put_X(self, mod, X):
        view = device_view(X)
        if view is None:
            X = np.asarray(X)
            if X.ndim != 2:
                raise ValueError("X must be 2-D")
            if X.dtype not in _FLOAT_X:
                X = X.astype(np.float64)
            X = np.ascontiguousarray(X)  # a row-strided view is packed before the copy
            buf = mod.DeviceBuffer(max(X.nbytes, 1))
            buf.upload(X)
            self._keep.append(buf)
            n, d = X.shape
            return mod.DeviceRows(buf.ptr, X.dtype.itemsize, n, d, d)
        if len(view.shape) != 2:
            raise ValueError("X must be 2-D")
        if view.dtype not in _FLOAT_X:
            raise TypeError(f"X on the device must be float32 or float64, not {view.dtype}")
        n, d = view.shape
        if (d > 1 and view.strides[1] != 1) or (n > 1 and view.strides[0] < d):
            raise ValueError(
                "X on the device must have contiguous rows (C order, any row stride); "
                "pass a C-contiguous copy"
            )
        self._keep.append(view.owner)
        return mod.DeviceRows(view.ptr, view.dtype.itemsize, n, d, view.strides[0] if n > 1 else d)

    def _put_float64(self, mod, a, n, name, vector=False):
        view = device_view(a)
        if view is not None:
            if not (view.dtype == np.float64 and c_contiguous(view)):
                a = as_float64_device(a)
                view = device_view(a)
            shape = view.shape
            if len(shape) == 0 or shape[0] != n or (vector and len(shape) != 1) or len(shape) > 2:
                raise ValueError(f"{name} must have {n} rows")
            self._keep.append(view.owner)
            return view.ptr, 1 if len(shape) == 1 else shape[1]
        host = np.ascontiguousarray(a, dtype=np.float64)
        if host.ndim == 0 or host.shape[0] != n or (vector and host.ndim != 1) or host.ndim > 2:
            raise ValueError(f"{name} must have {n} rows")
        buf = mod.DeviceBuffer(max(host.nbytes, 1))
        buf.upload(host)
        self._keep.append(buf)
        return buf.ptr, 1 if host.ndim == 1 else host.shape[1]


def device_output(like, shape):
    """An empty float64 device array of the library of ``like``: torch for a
    torch tensor, else CuPy when it imports, else a :class:`DeviceArray`."""
    if type(like).__module__.startswith("torch"):
        import torch

        return torch.empty(shape, dtype=torch.float64, device=like.device)
    try:
        import cupy

        return cupy.empty(shape, dtype=cupy.float64)
    except ImportError:
        pass
    mod = cuda_module()
    return DeviceArray(mod.DeviceBuffer(max(8 * int(np.prod(shape)), 1)), shape)


class DeviceArray:
    """Device memory with ``__cuda_array_interface__`` (float64, C order):
    what ``predict`` returns for device input when neither CuPy nor torch is
    the input's library."""

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
