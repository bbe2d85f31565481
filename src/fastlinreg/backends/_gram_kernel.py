"""Which rank update the cpu backend's statistics pass runs: fastlinreg's own
tiled kernel or BLAS dsyrk (scipy's, through its capsule).

Where the own kernel has its wide tiles (AVX2 and AVX-512) it runs without
asking: it was 3x BLAS on an AVX-512 Xeon, and on an AVX2 AMD EPYC it ran at
the FMA limit (1.02x OpenBLAS dsyrk's speed at width 104), while a timing
taken as neighbours ran had once put BLAS at 9x and the fit then took 70x
its floor. Elsewhere (the x86-64-v2 baseline, other architectures) the
instruction set and BLAS build decide it, so the code decides, per process
and per padded width of the augmented Gram, by a one-time measurement of
both on the same synthetic block (a few milliseconds), kept for the life of
the process. Passes too small to be worth
a measurement always run the own kernel. BLAS must win by a margin
(``BLAS_MARGIN``), so that two close timings keep the same, own answer from
one process to the next. Either kernel gives the same bits for any thread
count; the two kernels differ from each other in the last bits.
"""

from __future__ import annotations

import functools
import threading
import time
from dataclasses import dataclass

import numpy as np

from .. import _core

# A pass under this many multiply-adds (about 25 ms) runs the own kernel
# without measuring: a measurement would cost more than it could save.
MEASURE_ABOVE = 1 << 30
# Multiply-adds per timed run of the measurement (about 1-2 ms each).
_PROBE_WORK = 1 << 25
# BLAS is chosen only when its time is below the own kernel's by this factor.
BLAS_MARGIN = 1.1
_ROUNDS = 3
# Instruction sets whose own tiles are at least as fast as BLAS (measured).
OWN_ISAS = frozenset({"avx2", "avx512"})


@dataclass(frozen=True)
class KernelChoice:
    """The rank update chosen for one padded width, and why.

    Attributes
    ----------
    kernel : str
        ``"own"`` or ``"blas"``.
    reason : str
        One sentence: measured (with the times), below the measuring
        threshold, or no BLAS.
    own_s, blas_s : float or None
        The measured times of one probe pass (seconds), when measured.
    """

    kernel: str
    reason: str
    own_s: float | None = None
    blas_s: float | None = None


_lock = threading.Lock()
_choices: dict[int, KernelChoice] = {}


def padded_width(d: int, k: int) -> int:
    """The augmented Gram's width as the pass pads it: x, y and the constant
    column, to whole tiles (8 with AVX-512, else 4)."""
    pad = 8 if _core.simd_lanes == 8 else 4
    return -(-(d + k + 1) // pad) * pad


@functools.lru_cache(maxsize=1)
def blas_syrk():
    """scipy's BLAS dsyrk as a capsule, or None where scipy has none."""
    try:
        from scipy.linalg import cython_blas
    except ImportError:  # pragma: no cover - scipy is a dependency
        return None
    return cython_blas.__pyx_capi__.get("dsyrk")


def choose(n: int, d: int, k: int) -> KernelChoice:
    """The rank update for a pass over n rows of d columns and k targets.

    The measurement runs both at the default thread count (OpenMP's, as BLAS
    runs its own), whatever the caller's ``n_jobs``: the choice, and so the
    bits, never depend on the thread count asked for.
    """
    mp = padded_width(d, k)
    if _core.isa in OWN_ISAS:
        return KernelChoice("own", f"instruction set {_core.isa}: own kernel, not measured")
    if n * mp * mp < MEASURE_ABOVE:
        return KernelChoice("own", "pass too small to be worth measuring: own kernel")
    if blas_syrk() is None:  # pragma: no cover - scipy is a dependency
        return KernelChoice("own", "no BLAS dsyrk to compare with: own kernel")
    with _lock:
        if mp not in _choices:
            _choices[mp] = _measure(d, k)
        return _choices[mp]


def _measure(d: int, k: int) -> KernelChoice:
    """Time both kernels on one synthetic block of the same width, alternating,
    best of ``_ROUNDS`` each."""
    mp = padded_width(d, k)
    rows = max(256, _PROBE_WORK // (mp * mp))
    rng = np.random.default_rng(0)
    X = rng.standard_normal((rows, d))
    Y = rng.standard_normal((rows, k))
    problem = _core.Problem(X, Y, None, float(rows), 0)
    parts = (np.empty(d), np.empty(k), np.empty((d, d)), np.empty((d, k)), np.empty((k, k)))
    out = _core.Stats(1.0, *parts)
    syrk = blas_syrk()
    best = {"own": np.inf, "blas": np.inf}
    for _ in range(_ROUNDS):
        for name, capsule in (("own", None), ("blas", syrk)):
            t0 = time.perf_counter()
            _core.sufficient_stats(problem, out, 0, capsule)
            best[name] = min(best[name], time.perf_counter() - t0)
    own_s, blas_s = best["own"], best["blas"]
    if blas_s * BLAS_MARGIN < own_s:
        kernel, verdict = "blas", f"BLAS dsyrk {own_s / blas_s:.2f}x faster"
    else:
        kernel, verdict = "own", f"own kernel {blas_s / own_s:.2f}x BLAS dsyrk's speed"
    return KernelChoice(
        kernel,
        f"measured at width {mp} ({rows} rows, best of {_ROUNDS}): {verdict}",
        own_s,
        blas_s,
    )


def forget() -> None:
    """Drop the measured choices (tests and benchmarks measure afresh)."""
    with _lock:
        _choices.clear()
