"""The CUDA backend: what can be checked without a GPU always runs (the build
produced the module it promised, the module imports without a driver,
availability gives a reason, the pointer parsing and the launch plan); the
kernel comparisons against float64 numpy and the CPU backend skip without a
device."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from importlib import resources

import numpy as np
import pytest
from conftest import RTOL, make_problem, ref_fused

from fastlinreg.backends import cuda as cuda_backend

FUNCTIONS = [
    "device_status",
    "load_cublas",
    "cublas_loaded",
    "dlpack_info",
    "fused_plan",
    "fused_pass",
    "predict",
    "column_moments",
    "sufficient_stats",
    "descend",
    "sgd",
    "DeviceBuffer",
    "DeviceData",
    "DescentSettings",
    "SgdSettings",
]


def _build_config():
    try:
        text = resources.files("fastlinreg").joinpath("_cuda_build.json").read_text()
    except FileNotFoundError:
        pytest.skip("no _cuda_build.json: not a CMake build of fastlinreg")
    return json.loads(text)


def _cuda_module():
    cfg = _build_config()
    if not cfg["module"]:
        pytest.skip(f"built without the CUDA module ({cfg})")
    from fastlinreg import _cuda

    return _cuda


def test_build_made_the_module_it_promised():
    cfg = _build_config()
    found = importlib.util.find_spec("fastlinreg._cuda") is not None
    if cfg["mode"] == "OFF":
        assert not cfg["module"]
    elif cfg["compiler"]:
        assert cfg["module"], "a CUDA compiler was found but _cuda was not built"
    assert found == cfg["module"]


def test_module_exposes_its_functions():
    mod = _cuda_module()
    missing = [name for name in FUNCTIONS if not hasattr(mod, name)]
    assert not missing
    assert mod.cuda_major >= 12


def test_imports_stay_lazy():
    code = (
        "import sys, fastlinreg, fastlinreg.backends.cuda\n"
        "assert 'fastlinreg._cuda' not in sys.modules, 'imported eagerly'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_available_gives_a_reason():
    ok, reason = cuda_backend.available()
    assert isinstance(ok, bool) and reason
    if not ok:
        assert reason.startswith(
            ("fastlinreg was built without CUDA", "no CUDA driver", "no CUDA device")
        ), reason
        with pytest.raises(RuntimeError, match="not available"):
            cuda_backend.CudaBackend().fused_pass(np.ones((2, 1)), None, np.ones(1), np.zeros(1))


def test_without_a_module_the_reason_says_so(monkeypatch):
    def missing():
        raise ImportError("No module named 'fastlinreg._cuda'")

    monkeypatch.setattr(cuda_backend, "_module", missing)
    cuda_backend.available.cache_clear()
    try:
        ok, reason = cuda_backend.available()
    finally:
        cuda_backend.available.cache_clear()
    assert not ok and reason.startswith("fastlinreg was built without CUDA")


def test_device_status_never_raises():
    st = _cuda_module().device_status()
    assert st["runtime_version"] >= 12000
    assert (st["error"] == 0) == (st["message"] == "no error")


@pytest.mark.parametrize(
    "n, d, k, itemsize",
    [
        (1, 1, 1, 4),
        (1, 1, 1, 8),
        (7, 3, 2, 8),
        (10**7, 100, 1, 4),
        (1000, 5000, 1, 8),
        (300, 20000, 1, 4),
        (50, 10, 700, 8),
        (123457, 33, 3, 4),
    ],
)
def test_fused_plan_depends_on_the_shape_alone(n, d, k, itemsize):
    p = _cuda_module().fused_plan(n, d, d, k, itemsize)
    assert p["n_elems"] == (d + 1) * k + 1
    assert p["n_groups"] * 1024 >= p["n_elems"]
    assert p["rows_per_block"] % p["tile_rows"] == 0
    assert p["n_blocks"] * p["rows_per_block"] >= n > (p["n_blocks"] - 1) * p["rows_per_block"]
    assert p["smem_bytes"] <= 48 * 1024
    assert p["n_blocks"] <= 8192
    if p["staged"]:
        assert p["tile_rows"] >= 8


def test_dlpack_info_reads_a_capsule():
    mod = _cuda_module()
    a = np.arange(24, dtype=np.float32).reshape(6, 4)[::2]  # a row stride of 8 elements
    info = mod.dlpack_info(a.__dlpack__())
    assert info["ptr"] == a.ctypes.data
    assert info["shape"] == (3, 4) and info["strides"] == (8, 1)
    assert info["typestr"] == "<f4" and info["device_type"] == 1  # kDLCPU


def test_cuda_array_interface_parsing():
    class Fake:
        __cuda_array_interface__ = {  # noqa: RUF012
            "shape": (5, 3),
            "typestr": "<f4",
            "data": (4096, False),
            "version": 3,
            "strides": (32, 4),
        }

    v = cuda_backend._device_view(Fake())
    assert v.ptr == 4096 and v.shape == (5, 3) and v.strides == (8, 1)
    assert v.dtype == np.float32
    assert cuda_backend._device_view(np.ones(3)) is None


# ---- on a GPU ------------------------------------------------------------------


def _backend():
    ok, reason = cuda_backend.available()
    if not ok:
        pytest.skip(reason)
    return cuda_backend.CudaBackend()


SHAPES = [
    (1, 1, 1),
    (2, 1, 1),
    (17, 3, 1),
    (1000, 100, 1),
    (513, 7, 3),
    (4099, 129, 2),
    (200, 6001, 1),
    (64, 10, 9),
]


@pytest.mark.parametrize("n, d, k", SHAPES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("weights", [False, True])
def test_fused_pass_matches_numpy(rng, n, d, k, dtype, weights):
    be = _backend()
    X, Y, sw = make_problem(rng, n, d, k, dtype=dtype, weights=weights)
    W = rng.standard_normal((d, k))
    b = rng.standard_normal(k)
    loss, G, gb = be.fused_pass(X, Y, W, b, sample_weight=sw)
    rl, rG, rgb = ref_fused(X, Y, W, b, sw)
    tol = RTOL[dtype] if dtype == np.float64 else 1e-9  # X is exact in both: sums in double
    np.testing.assert_allclose(loss, rl, rtol=tol)
    np.testing.assert_allclose(G, rG, rtol=tol, atol=tol * np.abs(rG).max())
    np.testing.assert_allclose(gb, rgb, rtol=tol, atol=tol * np.abs(rgb).max())


def test_fused_pass_is_deterministic(rng):
    be = _backend()
    X, Y, _ = make_problem(rng, 100_003, 37, 2, dtype=np.float32)
    p = be.to_device(X, Y)
    W, b = rng.standard_normal((37, 2)), rng.standard_normal(2)
    first = be.fused_pass(p, None, W, b)
    for _ in range(3):
        again = be.fused_pass(p, None, W, b)
        assert again[0] == first[0]
        assert np.array_equal(again[1], first[1]) and np.array_equal(again[2], first[2])


@pytest.mark.parametrize("layout", ["rows"])
def test_fused_pass_row_strided_host_input(rng, layout):
    be = _backend()
    X, Y, _ = make_problem(rng, 301, 5, 1, layout=layout)
    W, b = rng.standard_normal((5, 1)), rng.standard_normal(1)
    loss, G, gb = be.fused_pass(X, Y, W, b)
    rl, rG, rgb = ref_fused(X, Y, W, b)
    np.testing.assert_allclose([loss, *G.ravel(), *gb], [rl, *rG.ravel(), *rgb], rtol=1e-10)


def _cpu():
    from fastlinreg import _backend as cpu  # becomes fastlinreg.backends.cpu after the refactor

    return cpu


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("weights", [False, True])
@pytest.mark.parametrize("standardise", [False, True])
def test_descent_matches_cpu_backend(rng, dtype, weights, standardise):
    be = _backend()
    cpu = _cpu()
    n, d, k = 2000, 13, 2
    X, Y, sw = make_problem(rng, n, d, k, dtype=dtype, weights=weights)
    X = X + 3.0 * np.arange(d, dtype=dtype)  # columns with means: the shift matters
    wsum = float(n if sw is None else sw.sum())
    shift = X.mean(0).astype(np.float64) if standardise else None
    scale = X.std(0).astype(np.float64) if standardise else None
    kw = dict(
        sample_weight=sw,
        weight_sum=wsum,
        max_iter=60,
        learning_rate=0.05,
        tol=-1.0,
        alpha=0.01,
        fit_intercept=True,
        shift=shift,
        scale=scale,
    )
    V0, c0 = np.zeros((d, k)), np.zeros(k)
    Vc, cc = V0.copy(), c0.copy()
    rc = cpu.descend_stream(X, Y, Vc, cc, n_jobs=1, **kw)
    Vg, cg = V0.copy(), c0.copy()
    rg = be.descend(X, Y, Vg, cg, **kw)
    tol = 1e-10 if dtype == np.float64 else 1e-6
    assert rg[0] == rc[0] and rg[1] == rc[1]
    np.testing.assert_allclose(rg[5], rc[5], rtol=tol)
    np.testing.assert_allclose(Vg, Vc, rtol=tol, atol=tol * np.abs(Vc).max())
    np.testing.assert_allclose(cg, cc, rtol=tol, atol=tol * np.abs(cc).max())
    assert be.last_host_waits == 1  # tol < 0: only the final copy-back waits


def test_descent_stops_on_tol_and_divergence(rng):
    be = _backend()
    cpu = _cpu()
    X, Y, _ = make_problem(rng, 500, 4, 1)
    for lr, tol in [(0.5, 1e-6), (50.0, -1.0)]:  # converges; diverges
        kw = dict(
            sample_weight=None,
            weight_sum=500.0,
            max_iter=5000,
            learning_rate=lr,
            tol=tol,
            alpha=0.0,
            fit_intercept=True,
            shift=None,
            scale=None,
        )
        Vc, cc, Vg, cg = np.zeros((4, 1)), np.zeros(1), np.zeros((4, 1)), np.zeros(1)
        rc = cpu.descend_stream(X, Y, Vc, cc, n_jobs=1, **kw)
        rg = be.descend(X, Y, Vg, cg, **kw)
        assert rg[1] == rc[1] and rg[0] == rc[0]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("weights", [False, True])
def test_stats_and_moments_match_cpu(rng, dtype, weights):
    be = _backend()
    cpu = _cpu()
    X, Y, sw = make_problem(rng, 5001, 21, 2, dtype=dtype, weights=weights)
    X = X + 100.0
    got = be.sufficient_stats(X, Y, sample_weight=sw)
    want = cpu.sufficient_stats(X, Y, sample_weight=sw, n_jobs=1)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-9 * np.abs(w).max())
    gm = be.column_moments(X, sample_weight=sw)
    wm = cpu.column_moments(X, sample_weight=sw, n_jobs=1)
    for g, w in zip(gm, wm):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)


def test_stats_own_kernel_matches_cublas(rng):
    be = _backend()
    X, Y, _ = make_problem(rng, 3000, 40, 1)
    mod = cuda_backend._module()
    p = be.to_device(X, Y)
    out = [np.empty(40), np.empty(1), np.empty((40, 40)), np.empty((40, 1)), np.empty((1, 1))]
    ws, engine = mod.sufficient_stats(p.data, *out, False)
    assert engine == "own"
    ref = be.sufficient_stats(p, None)
    for g, w in zip([ws, *out], ref):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-10)


def test_sgd_matches_cpu_backend(rng):
    be = _backend()
    cpu = _cpu()
    X, Y, sw = make_problem(rng, 1000, 6, 1, weights=True)
    kw = dict(
        sample_weight=sw,
        weight_sum=float(sw.sum()),
        max_epochs=4,
        batch_size=64,
        shuffle=True,
        seed=7,
        eta0=0.05,
        power_t=0.5,
        epoch_offset=0,
        alpha=0.001,
        tol=1e-3,
        n_iter_no_change=5,
        best_loss=np.inf,
        no_improvement=0,
        ref_loss=0.0,
        fit_intercept=True,
        shift=None,
        scale=None,
    )
    Vc, cc, Vg, cg = np.zeros((6, 1)), np.zeros(1), np.zeros((6, 1)), np.zeros(1)
    rc = cpu.descend_sgd(X, Y, Vc, cc, **kw)
    rg = be.sgd(X, Y, Vg, cg, **kw)
    assert rg[0] == rc[0] and rg[1] == rc[1]
    np.testing.assert_allclose(rg[5], rc[5], rtol=1e-10)
    np.testing.assert_allclose(Vg, Vc, rtol=1e-10, atol=1e-12)


def test_predict_host_and_device(rng):
    be = _backend()
    X, _, _ = make_problem(rng, 777, 9, 1, dtype=np.float32)
    W, b = rng.standard_normal((9, 3)), rng.standard_normal(3)
    want = X.astype(np.float64) @ W + b
    np.testing.assert_allclose(be.predict(X, W, b), want, rtol=1e-12, atol=1e-12)
    cupy = pytest.importorskip("cupy")
    P = be.predict(cupy.asarray(X), W, b)
    assert isinstance(P, cupy.ndarray)
    np.testing.assert_allclose(cupy.asnumpy(P), want, rtol=1e-12, atol=1e-12)


def test_torch_input_without_copy(rng):
    be = _backend()
    torch = pytest.importorskip("torch")
    X, Y, _ = make_problem(rng, 300, 4, 1)
    Xt = torch.from_numpy(X).cuda()
    Yt = torch.from_numpy(Y).cuda()
    p = be.to_device(Xt, Yt)
    assert p._ptrs[0] == Xt.data_ptr()  # read in place
    W, b = rng.standard_normal((4, 1)), rng.standard_normal(1)
    loss, G, gb = be.fused_pass(p, None, W, b)
    rl, rG, _ = ref_fused(X, Y, W, b)
    np.testing.assert_allclose([loss, *G.ravel()], [rl, *rG.ravel()], rtol=1e-10)


def test_cublas_failure_lists_each_try():
    mod = _cuda_module()
    if cuda_backend.available()[0]:
        pytest.skip("a device is present: cuBLAS may load")
    with pytest.raises(RuntimeError, match=r"cuBLAS could not be loaded:\n  /nonexistent/"):
        mod.load_cublas(["/nonexistent/libcublas.so.13"])
    assert not mod.cublas_loaded()
