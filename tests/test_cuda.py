"""The CUDA backend. What can be checked without a GPU always runs: the build
produced the module it promised, the module imports without a driver and
exposes its functions, availability gives a reason (and backend="cuda" raises
it), the checked objects refuse bad input, the DLPack and
__cuda_array_interface__ parsing, the launch plan, and the per-Problem
device copy. The comparisons with float64 numpy and the CPU backend skip
without a device; on a GPU the `backend` fixture also runs the whole
parametrized kernel and estimator suite on "cuda"."""

from __future__ import annotations

import gc
import importlib.util
import json
import subprocess
import sys
from importlib import resources

import numpy as np
import pytest
from conftest import RTOL, descent, make_problem, ref_fused

from fastlinreg import LinearRegression
from fastlinreg._losses import SQUARED
from fastlinreg.backends import Problem, SgdConfig, _cuda_arrays, cpu, get_backend
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
    "DeviceRows",
    "Problem",
    "DescentParams",
    "SgdParams",
    "DescentResult",
    "SgdResult",
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


def test_available_gives_a_reason(rng):
    ok, reason = cuda_backend.available()
    assert isinstance(ok, bool)
    if ok:
        assert reason == ""
        return
    assert reason.startswith(
        ("fastlinreg was built without CUDA", "no CUDA driver", "no CUDA device")
    ), reason
    X, Y, _ = make_problem(rng, 20, 2)
    with pytest.raises(ValueError, match="backend 'cuda' is not available here: " + reason[:10]):
        get_backend("cuda")
    model = LinearRegression(backend="cuda")
    with pytest.raises(ValueError, match="not available here"):
        model.fit(X, Y[:, 0])
    assert not hasattr(model, "coef_")  # a failed fit leaves the estimator as it was


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


def test_checked_objects_refuse_bad_input():
    """Made without touching the device: the pointers are never read here."""
    mod = _cuda_module()
    rows = mod.DeviceRows(4096, 4, 10, 3, 8)
    assert (rows.ptr, rows.n, rows.d, rows.ldx, rows.itemsize) == (4096, 10, 3, 8, 4)
    assert mod.DeviceRows(4096, 8, 1, 3, 0).ldx == 3  # one row: the stride is unused
    with pytest.raises(ValueError, match="float32"):
        mod.DeviceRows(4096, 2, 10, 3, 3)
    with pytest.raises(ValueError, match="row stride"):
        mod.DeviceRows(4096, 8, 10, 3, 2)
    with pytest.raises(ValueError, match="null device pointer"):
        mod.DeviceRows(0, 8, 10, 3, 3)
    p = mod.Problem(rows, 8192, 2, 0, 10.0)
    assert (p.n, p.d, p.k, p.weight_sum) == (10, 3, 2, 10.0)
    with pytest.raises(ValueError, match="weights must be positive"):
        mod.Problem(rows, 0, 1, 0, 0.0)
    with pytest.raises(ValueError, match="unknown loss kind"):
        mod.Problem(rows, 0, 1, 0, 1.0, 7)
    W, b = np.zeros((3, 1)), np.zeros(1)
    with pytest.raises(ValueError, match="2 columns"):  # checked before any launch
        mod.fused_pass(p, W, b, np.empty((3, 1)), np.empty(1))
    params = mod.DescentParams()
    params.shift = np.zeros(4)
    with pytest.raises(ValueError, match="shift must be a 1-D float64 array of length 3"):
        mod.descend(mod.Problem(rows, 8192, 1, 0, 10.0), params, W, b, np.empty(100))


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


class _FakeDeviceArray:
    """A device array as __cuda_array_interface__ shows it (the pointer is never read)."""

    def __init__(self, shape=(5, 3), strides=(32, 4), typestr="<f4"):
        self.__cuda_array_interface__ = {
            "shape": shape,
            "typestr": typestr,
            "data": (4096, False),
            "version": 3,
            "strides": strides,
        }


def test_cuda_array_interface_parsing():
    v = _cuda_arrays.device_view(_FakeDeviceArray())
    assert v.ptr == 4096 and v.shape == (5, 3) and v.strides == (8, 1)
    assert v.dtype == np.float32
    c = _cuda_arrays.device_view(_FakeDeviceArray(strides=None, typestr="<f8"))
    assert c.strides == (3, 1) and _cuda_arrays.c_contiguous(c)
    assert _cuda_arrays.device_view(np.ones(3)) is None
    with pytest.raises(ValueError, match="whole elements"):
        _cuda_arrays.device_view(_FakeDeviceArray(strides=(32, 2)))


def test_prepare_x_reads_what_it_can_in_place(rng):
    X, _, _ = make_problem(rng, 30, 4, dtype=np.float32)
    assert cuda_backend.prepare_X(X) is X  # host: as the CPU backend reads it, no copy
    fake = _FakeDeviceArray()
    assert cuda_backend.prepare_X(fake) is fake  # device: read in place at the call


def test_a_problem_goes_to_the_device_once(rng, monkeypatch):
    """A fit's calls share one device copy of its Problem, freed with it."""
    made = []

    class Counting:
        def __init__(self, X, Y, sw):
            made.append(X)
            self.k = 1

        def problem(self, weight_sum, loss_kind=0, with_y=True):
            return (weight_sum, loss_kind, with_y)

    monkeypatch.setattr(cuda_backend, "DeviceProblem", Counting)
    monkeypatch.setattr(cuda_backend, "_require", lambda: None)
    X, Y, _ = make_problem(rng, 30, 4)
    p = Problem(X, Y, None, 30.0, SQUARED)
    assert cuda_backend._checked(p) == (30.0, 0, True)
    assert cuda_backend._checked(p, with_y=False) == (30.0, 0, False)
    assert len(made) == 1 and made[0] is X
    del p
    gc.collect()
    assert not cuda_backend._resident


def test_cublas_failure_lists_each_try():
    mod = _cuda_module()
    if cuda_backend.available()[0]:
        pytest.skip("a device is present: cuBLAS may load")
    with pytest.raises(RuntimeError, match=r"cuBLAS could not be loaded:\n  /nonexistent/"):
        mod.load_cublas(["/nonexistent/libcublas.so.13"])
    assert not mod.cublas_loaded()


# ---- on a GPU ------------------------------------------------------------------


@pytest.fixture
def gpu():
    ok, reason = cuda_backend.available()
    if not ok:
        pytest.skip(reason)
    return cuda_backend


def _problem(X, Y=None, sw=None):
    return Problem(X, Y, sw, float(X.shape[0] if sw is None else np.sum(sw)), SQUARED)


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
def test_fused_pass_matches_numpy(gpu, rng, n, d, k, dtype, weights):
    X, Y, sw = make_problem(rng, n, d, k, dtype=dtype, weights=weights)
    W, b = rng.standard_normal((d, k)), rng.standard_normal(k)
    loss, G, gb = gpu.fused_pass(_problem(X, Y, sw), W, b)
    rl, rG, rgb = ref_fused(X, Y, W, b, sw)
    tol = RTOL[dtype] if dtype == np.float64 else 1e-9  # X is exact in both: sums in double
    np.testing.assert_allclose(loss, rl, rtol=tol)
    np.testing.assert_allclose(G, rG, rtol=tol, atol=tol * np.abs(rG).max())
    np.testing.assert_allclose(gb, rgb, rtol=tol, atol=tol * np.abs(rgb).max())


def test_fused_pass_is_deterministic(gpu, rng):
    X, Y, _ = make_problem(rng, 100_003, 37, 2, dtype=np.float32)
    p = _problem(gpu.to_device(X, Y))
    W, b = rng.standard_normal((37, 2)), rng.standard_normal(2)
    first = gpu.fused_pass(p, W, b)
    for _ in range(3):
        again = gpu.fused_pass(p, W, b)
        assert again[0] == first[0]
        assert np.array_equal(again[1], first[1]) and np.array_equal(again[2], first[2])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("weights", [False, True])
@pytest.mark.parametrize("standardise", [False, True])
def test_descent_matches_cpu_backend(gpu, rng, dtype, weights, standardise):
    n, d, k = 2000, 13, 2
    X, Y, sw = make_problem(rng, n, d, k, dtype=dtype, weights=weights)
    X = X + 3.0 * np.arange(d, dtype=dtype)  # columns with means: the shift matters
    shift = X.mean(0).astype(np.float64) if standardise else None
    scale = X.std(0).astype(np.float64) if standardise else None
    config = descent(60, 0.05, alpha=0.01, shift=shift, scale=scale)
    W0, b0 = rng.standard_normal((d, k)), rng.standard_normal(k)
    p = _problem(X, Y, sw)
    want = cpu.descend(p, config, W0, b0)
    got = gpu.descend(p, config, W0, b0)
    tol = 1e-10 if dtype == np.float64 else 1e-6
    assert (got.n_iter, got.status) == (want.n_iter, want.status)
    np.testing.assert_allclose(got.curve, want.curve, rtol=tol)
    np.testing.assert_allclose(got.W, want.W, rtol=tol, atol=tol * np.abs(want.W).max())
    np.testing.assert_allclose(got.b, want.b, rtol=tol, atol=tol * np.abs(want.b).max())
    assert gpu.diagnostics.host_waits == 1  # tol None: only the final copy-back waits


def test_descent_stops_on_tol_and_divergence(gpu, rng):
    X, Y, _ = make_problem(rng, 500, 4, 1)
    p = _problem(X, Y)
    for config in (descent(5000, 0.5, tol=1e-6), descent(5000, 50.0)):  # converges; diverges
        want = cpu.descend(p, config, np.zeros((4, 1)), np.zeros(1))
        got = gpu.descend(p, config, np.zeros((4, 1)), np.zeros(1))
        assert (got.status, got.n_iter) == (want.status, want.n_iter)


def test_stats_own_kernel_matches_cublas(gpu, rng):
    X, Y, _ = make_problem(rng, 3000, 40, 1)
    p = _problem(X, Y)
    mod = gpu._module()
    out = [np.empty(40), np.empty(1), np.empty((40, 40)), np.empty((40, 1)), np.empty((1, 1))]
    ws, engine = mod.sufficient_stats(gpu._checked(p), *out, False)
    assert engine == "own"
    for g, w in zip([ws, *out], gpu.sufficient_stats(p)):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-10)


def test_sgd_matches_cpu_backend(gpu, rng):
    X, Y, sw = make_problem(rng, 1000, 6, 1, weights=True)
    config = SgdConfig(4, 64, True, 7, 0.05, 0.001, 1e-3, 5, True)
    p = _problem(X, Y, sw)
    want = cpu.sgd(p, config, np.zeros((6, 1)), np.zeros(1))
    got = gpu.sgd(p, config, np.zeros((6, 1)), np.zeros(1))
    assert (got.n_epochs, got.status) == (want.n_epochs, want.status)
    np.testing.assert_allclose(got.curve, want.curve, rtol=1e-10)
    np.testing.assert_allclose(got.W, want.W, rtol=1e-10, atol=1e-12)


def test_predict_host_and_cupy(gpu, rng):
    X, _, _ = make_problem(rng, 777, 9, 1, dtype=np.float32)
    W, b = rng.standard_normal((9, 3)), rng.standard_normal(3)
    want = X.astype(np.float64) @ W + b
    np.testing.assert_allclose(gpu.predict(X, W, b), want, rtol=1e-12, atol=1e-12)
    cupy = pytest.importorskip("cupy")
    P = gpu.predict(cupy.asarray(X), W, b)
    assert isinstance(P, cupy.ndarray)
    np.testing.assert_allclose(cupy.asnumpy(P), want, rtol=1e-12, atol=1e-12)


def test_torch_input_is_read_in_place(gpu, rng):
    torch = pytest.importorskip("torch")
    X, Y, _ = make_problem(rng, 300, 4, 1)
    Xt, Yt = torch.from_numpy(X).cuda(), torch.from_numpy(Y).cuda()
    dev = gpu.to_device(Xt, Yt)
    assert dev.rows.ptr == Xt.data_ptr()  # no copy
    W, b = rng.standard_normal((4, 1)), rng.standard_normal(1)
    loss, G, _ = gpu.fused_pass(Problem(Xt, Yt, None, 300.0, SQUARED), W, b)
    rl, rG, _ = ref_fused(X, Y, W, b)
    np.testing.assert_allclose([loss, *G.ravel()], [rl, *rG.ravel()], rtol=1e-10)
    P = gpu.predict(Xt, W, b)
    assert isinstance(P, torch.Tensor) and P.is_cuda
