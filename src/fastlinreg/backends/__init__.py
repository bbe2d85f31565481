"""Where work runs: one module per backend, behind one protocol.

``available_backends()`` imports each known backend module and asks it;
``backend_status()`` also says why a backend is missing. Solvers get a
backend from :func:`get_backend` and never import the compiled modules.
"""

from __future__ import annotations

import importlib
import sys

from ._protocol import (
    Backend,
    DescentConfig,
    DescentOutcome,
    Problem,
    SgdConfig,
    SgdOutcome,
    Status,
)

__all__ = [
    "available_backends",
    "backend_status",
    "get_backend",
    "Backend",
    "Problem",
    "DescentConfig",
    "DescentOutcome",
    "SgdConfig",
    "SgdOutcome",
    "Status",
]

# Known backends. "auto" prefers them in _AUTO_ORDER; the reference backend
# is the tests' oracle, never chosen by "auto"; "dask" is chosen by the data;
# nor is cuda chosen until a GPU run measures where it overtakes the CPU
# (issue 11: kernel-launch latency keeps small problems on the CPU).
_KNOWN = ("cpu", "reference", "dask", "cuda")
_AUTO_ORDER = ("cpu",)


def _load(name: str):
    full = f"{__name__}.{name}"
    module = sys.modules.get(full) or importlib.import_module(full)  # a fit's fixed cost
    ok, why = module.available()
    return module, (None if ok else why)


def backend_status() -> dict[str, str | None]:
    """Each known backend: None when it can run here, else the reason it can't."""
    status = {}
    for name in _KNOWN:
        try:
            status[name] = _load(name)[1]
        except ImportError as exc:
            status[name] = f"its module failed to import: {exc}"
    return status


def available_backends() -> list[str]:
    """Names of the backends that can run here (``"cpu"`` on every build)."""
    return [name for name, why in backend_status().items() if why is None]


def _is_dask_collection(data) -> bool:
    # A dask collection can only exist once its user imported dask: never import it here.
    dask = sys.modules.get("dask")
    return dask is not None and dask.is_dask_collection(data)


def get_backend(name: str = "auto", data=None) -> Backend:
    """The backend module called ``name``, or for ``"auto"`` the one for ``data``:
    "dask" for a dask array or DataFrame, else the first available.

    Raises ValueError, with the reason, for an unknown or unavailable name.
    """
    if name == "auto" and _is_dask_collection(data):
        name = "dask"
    if name == "auto":
        for candidate in _AUTO_ORDER:
            module, why = _load(candidate)
            if why is None:
                return module
        raise RuntimeError("no backend can run here: " + repr(backend_status()))
    if name not in _KNOWN:
        raise ValueError(f"unknown backend {name!r}; known: {', '.join(_KNOWN)}")
    module, why = _load(name)
    if why is not None:
        raise ValueError(f"backend {name!r} is not available here: {why}")
    return module
