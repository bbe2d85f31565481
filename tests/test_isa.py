"""One build for every x86-64 CPU: each instruction set the CPU has gives
the reference's answers, and no code for a wider one can leak into the
others."""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess
import sys
import textwrap

import pytest

from fastlinreg import _core

MULTI = _core.compiled_isas != "native"
LANES = {"x86-64-v2": 2, "avx2": 4, "avx512": 8}

CHECK = textwrap.dedent("""
    import numpy as np
    from fastlinreg import LinearRegression, _core
    rng = np.random.default_rng(0)
    out = [_core.isa, str(_core.simd_lanes)]
    for dtype in (np.float64, np.float32):
        for n, d, k in ((1, 1, 1), (37, 3, 1), (1003, 13, 2), (2000, 100, 1), (257, 301, 3)):
            X = rng.standard_normal((n, d)).astype(dtype)
            Y = rng.standard_normal((n, k))
            sw = rng.uniform(0.5, 2.0, n)
            ref = np.linalg.lstsq(np.c_[np.ones(n), X.astype(np.float64)] * np.sqrt(sw)[:, None],
                                  Y * np.sqrt(sw)[:, None], rcond=None)[0]
            for solver in ("exact", "gd"):
                m = LinearRegression(solver=solver, max_iter=20, tol=None, learning_rate=0.01)
                m.fit(X, Y if k > 1 else Y[:, 0], sample_weight=sw)
                W = np.atleast_2d(m.coef_).T
                W0, b0 = np.zeros((d, k)), np.zeros(k)
                for _ in range(20):
                    R = X.astype(np.float64) @ W0 + b0 - Y
                    W0 -= 0.01 * X.astype(np.float64).T @ (sw[:, None] * R) / sw.sum()
                    b0 -= 0.01 * (sw[:, None] * R).sum(0) / sw.sum()
                want = ref[1:] if solver == "exact" and n > d + 1 else W0
                if solver == "exact" and n <= d + 1:
                    continue
                err = np.abs(W - want).max() / max(1.0, np.abs(want).max())
                assert err < (1e-9 if dtype == np.float64 else 1e-4), (solver, dtype, n, d, k, err)
    print(" ".join(out))
""")


def _supported() -> list[str]:
    cpuinfo = pathlib.Path("/proc/cpuinfo")
    flags = cpuinfo.read_text() if cpuinfo.exists() else ""
    isas = ["x86-64-v2"]
    if re.search(r"\bavx2\b", flags) and re.search(r"\bfma\b", flags):
        isas.append("avx2")
    if all(re.search(rf"\b{f}\b", flags) for f in ("avx512f", "avx512vl", "avx512dq", "avx512bw")):
        isas.append("avx512")
    return isas


def test_the_best_instruction_set_runs():
    if not MULTI:
        assert _core.isa == "native"
        return
    assert _core.isa == _supported()[-1]
    assert _core.simd_lanes == LANES[_core.isa]


@pytest.mark.skipif(not MULTI, reason="a single-target build (FASTLINREG_NATIVE or not x86-64)")
@pytest.mark.parametrize("isa", ["x86-64-v2", "avx2", "avx512"])
def test_each_instruction_set_matches_numpy(isa):
    if isa not in _supported():
        pytest.skip(f"this CPU has no {isa}")
    env = dict(os.environ, FASTLINREG_ISA=isa)
    out = subprocess.run(
        [sys.executable, "-c", CHECK], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [isa, str(LANES[isa])]


ROOT = pathlib.Path(__file__).resolve().parents[1]


def _variants() -> dict[str, tuple[str, str, str]]:
    """CMakeLists.txt's instruction-set variants: name -> (target, lanes, avx2)."""
    text = (ROOT / "CMakeLists.txt").read_text()
    found = re.findall(r'"(\w+)\|([^|"]+)\|(\d)\|(\d)"', text)
    return {name: (target, lanes, avx2) for name, target, lanes, avx2 in found}


@pytest.fixture(scope="module")
def compiled_variants(tmp_path_factory):
    """kernels.cpp compiled with CMake's definitions for the avx2 and avx512
    variants, both at once: name -> object file. At -O0, a quarter of -O3's
    compile time: a function's instruction set comes from where it is defined
    (the pragma), not from the optimiser, and -O0 inlines nothing away, so
    every function that could carry wide instructions is in the object."""
    variants, out, jobs = _variants(), tmp_path_factory.mktemp("isa"), {}
    for isa in ("avx2", "avx512"):
        target, lanes, avx2 = variants[isa]
        command = [
            "g++",
            "-std=c++17",
            "-O0",
            "-fopenmp",
            "-DFASTLINREG_HAVE_OPENMP=1",
            f"-I{ROOT / 'cpp' / 'include'}",
            f"-DFASTLINREG_ISA_NAMESPACE=isa_{isa}",
            f'-DFASTLINREG_ISA_TARGET="{target}"',
            f"-DFASTLINREG_LANES={lanes}",
            *(["-DFASTLINREG_AVX2=1"] if avx2 == "1" else []),
            "-c",
            str(ROOT / "cpp" / "src" / "kernels.cpp"),
            "-o",
            str(out / f"{isa}.o"),
        ]
        jobs[isa] = subprocess.Popen(command)
    try:
        for isa, job in jobs.items():
            assert job.wait(timeout=280) == 0, f"compiling the {isa} variant failed"
    finally:
        for job in jobs.values():
            job.kill()
    return {isa: out / f"{isa}.o" for isa in jobs}


@pytest.mark.skipif(not MULTI, reason="a single-target build (FASTLINREG_NATIVE or not x86-64)")
@pytest.mark.skipif(
    shutil.which("objdump") is None or shutil.which("g++") is None,
    reason="needs g++ and binutils' objdump",
)
@pytest.mark.skipif(
    os.environ.get("FASTLINREG_COMPILER_CHECKED") == "1",
    reason="a check of g++'s output, the same for every Python: .ci/run runs it in its first suite",
)
@pytest.mark.parametrize("isa", ["avx2", "avx512"])
def test_wide_instructions_stay_in_their_namespaces(isa, compiled_variants):
    # Any function outside fastlinreg::isa_<name> that used a VEX or EVEX
    # instruction could be the copy the linker keeps for every caller, and
    # crash a CPU without AVX (the standard library's templates above all).
    # The module is stripped, so the fixture compiles the variant.
    obj = compiled_variants[isa]
    dump = subprocess.run(
        ["objdump", "-d", "-C", "--no-show-raw-insn", str(obj)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    name, wide, leaks = None, 0, set()
    for line in dump.splitlines():
        head = re.match(r"^[0-9a-f]+ <(.*)>:$", line)
        if head:
            name = head.group(1)
        elif name and re.match(r"^\s+[0-9a-f]+:\s+v[a-z]", line):
            wide += 1
            if f"isa_{isa}::" not in name:
                leaks.add(name)
    assert wide > 0, "the variant has no wide instructions at all: its target pragma is lost"
    assert not leaks, sorted(leaks)[:10]
