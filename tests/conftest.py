"""Shared fixtures and the plain float64 numpy references the kernels are checked against."""

from __future__ import annotations

import numpy as np
import pytest

# Relative tolerances by the dtype of X: the kernels accumulate in double, so
# float32 inputs differ from the float64 reference only by the rounding of X
# itself (which the reference sees too) and by summation order.
RTOL = {np.float64: 1e-10, np.float32: 1e-5}


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def make_problem(rng, n, d, k=1, dtype=np.float64, layout="C", weights=False):
    """Random (X, Y (n, k) float64, sw or None) with X in the given layout.

    layout: "C", "F", "rows" (a row-strided view X[::2]) or "cols" (a view
    with a column stride, X[:, ::2]).
    """
    if layout == "rows":
        base = rng.standard_normal((2 * n, d))
        X = base.astype(dtype)[::2]
    elif layout == "cols":
        base = rng.standard_normal((n, 2 * d))
        X = base.astype(dtype)[:, ::2]
    else:
        X = np.asarray(rng.standard_normal((n, d)), dtype=dtype, order=layout)
    Y = rng.standard_normal((n, k))
    sw = rng.uniform(0.1, 2.0, size=n) if weights else None
    return X, Y, sw


def ref_fused(X, Y, W, b, sw=None):
    """Plain float64 numpy: loss sum(w r^2)/(2 sum w), G = X^T (w r)/sum w, gb = sum(w r)/sum w."""
    X = np.asarray(X, dtype=np.float64)
    w = np.ones(X.shape[0]) if sw is None else np.asarray(sw, dtype=np.float64)
    R = X @ W + b - Y
    ws = w.sum()
    loss = float((w[:, None] * R * R).sum() / (2 * ws))
    G = X.T @ (w[:, None] * R) / ws
    gb = (w[:, None] * R).sum(axis=0) / ws
    return loss, G, gb


def ref_gd(X, Y, W, b, lr, steps, sw=None, alpha=0.0, fit_intercept=True):
    """Plain gradient descent in float64 numpy; returns (W, b, losses)."""
    W, b = W.astype(np.float64).copy(), b.astype(np.float64).copy()
    losses = []
    for _ in range(steps):
        loss, G, gb = ref_fused(X, Y, W, b, sw)
        losses.append(loss + 0.5 * alpha * float((W * W).sum()))
        W -= lr * (G + alpha * W)
        if fit_intercept:
            b -= lr * gb
    return W, b, np.array(losses)


def ref_lstsq(X, y, sw=None, alpha=0.0, fit_intercept=True):
    """Weighted ridge least squares by numpy.linalg.lstsq on the centred,
    sqrt-weight-scaled problem (augmented with sqrt(alpha * sum w) I rows)."""
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(y, dtype=np.float64).reshape(X.shape[0], -1)
    w = np.ones(X.shape[0]) if sw is None else np.asarray(sw, dtype=np.float64)
    ws = w.sum()
    if fit_intercept:
        mx = (w[:, None] * X).sum(0) / ws
        my = (w[:, None] * Y).sum(0) / ws
    else:
        mx, my = np.zeros(X.shape[1]), np.zeros(Y.shape[1])
    s = np.sqrt(w)[:, None]
    A = s * (X - mx)
    B = s * (Y - my)
    if alpha:
        A = np.vstack([A, np.sqrt(alpha * ws) * np.eye(X.shape[1])])
        B = np.vstack([B, np.zeros((X.shape[1], Y.shape[1]))])
    coef = np.linalg.lstsq(A, B, rcond=None)[0]
    return coef, my - mx @ coef


def assert_close(actual, expected, rtol, scale=None):
    """|actual - expected| <= rtol * max(|expected|, scale) elementwise-by-norm."""
    actual, expected = np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    ref = max(float(np.max(np.abs(expected), initial=0.0)), scale or 0.0, 1e-300)
    err = float(np.max(np.abs(actual - expected), initial=0.0))
    assert err <= rtol * ref, f"max abs error {err:.3e} > {rtol:.1e} * {ref:.3e}"


# ---------------------------------------------------------------- backends
from fastlinreg._losses import SQUARED  # noqa: E402
from fastlinreg.backends import DescentConfig, Problem, backend_status, get_backend  # noqa: E402

# Every in-process backend. The cluster backend (dask) has its own suite,
# tests/test_dask.py, on a real LocalCluster: scheduling tasks for each of the
# hundreds of kernel and estimator tests here would cost CI minutes.
BACKENDS = [name for name in backend_status() if name != "dask"]


@pytest.fixture(params=BACKENDS)
def backend(request):
    """Every known backend; one that can't run here is skipped with its reason."""
    why = backend_status()[request.param]
    if why is not None:
        pytest.skip(f"backend {request.param!r}: {why}")
    return get_backend(request.param)


def problem(backend, X, Y=None, sw=None, n_jobs=None):
    """The backend's Problem for rows (X, Y, sw) and the squared loss."""
    X = backend.prepare_X(X)
    ws = float(X.shape[0] if sw is None else np.sum(sw))
    return Problem(X, Y, sw, ws, SQUARED, n_jobs)


def descent(
    max_iter, learning_rate, *, tol=None, alpha=0.0, fit_intercept=True, shift=None, scale=None
):
    return DescentConfig(max_iter, learning_rate, tol, alpha, fit_intercept, shift, scale)


@pytest.fixture
def sigint_raises():
    """SIGINT raises KeyboardInterrupt during the test, whatever the process inherited.

    Python installs its KeyboardInterrupt handler only when SIGINT's disposition
    at start-up is the default; a process started in the background by a
    non-interactive shell (``cmd &`` in a script) inherits SIG_IGN, and there a
    SIGINT does nothing at all, so an interrupt test would wait forever.
    """
    import signal

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def classification(rng, n, d, k, weights=False):
    """(X, labels, sample weights or None): Gaussian classes around random centres."""
    X = rng.standard_normal((n, d))
    centres = 1.5 * rng.standard_normal((k, d))
    y = rng.integers(0, k, size=n)
    X += centres[y]
    sw = rng.uniform(0.2, 3.0, size=n) if weights else None
    return X, y, sw


def sk_objective(coef, intercept, X, y, C, sw):
    """scikit-learn's objective C·Σ wᵢ·loglossᵢ + ½‖coef‖², computed here."""
    Z = X @ coef.T + intercept
    if Z.shape[1] == 1:
        Z = np.column_stack([np.zeros(len(y)), Z[:, 0]])
    codes = np.searchsorted(np.unique(y), y)
    lse = np.logaddexp.reduce(Z, axis=1)
    loss = lse - Z[np.arange(len(y)), codes]
    w = np.ones(len(y)) if sw is None else sw
    return C * float(w @ loss) + 0.5 * float((coef * coef).sum())


# ---------------------------------------------------------------- dask
# One distributed LocalCluster (2 worker processes x 1 thread) serves every
# dask test file: started by the first test that asks for ``dask_client``,
# closed after the last file that does (a cluster costs seconds to start).
DASK_MEMORY_LIMIT = 32 * 2**20  # each worker's; see tests/test_dask.py
_DASK: dict = {}


def _dask_cluster():
    if "cluster" not in _DASK:
        import dask
        import distributed

        # What dask holds spills to disk past 60% of the limit; the thresholds on
        # the process's whole memory are off: an idle worker's interpreter alone
        # (~170 MiB) is over any limit this low and would pause, running nothing.
        quiet = {f"distributed.worker.memory.{k}": False for k in ("spill", "pause", "terminate")}
        _DASK["config"] = dask.config.set(quiet)
        _DASK["cluster"] = distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            memory_limit=DASK_MEMORY_LIMIT,
            dashboard_address=":0",
        )
    return _DASK["cluster"]


@pytest.fixture(scope="module")
def dask_client():
    """A Client on the shared LocalCluster, for one test file."""
    distributed = pytest.importorskip("distributed")
    with distributed.Client(_dask_cluster()) as client:
        yield client


def pytest_collection_modifyitems(items):
    users = [item for item in items if "dask_client" in getattr(item, "fixturenames", ())]
    if users:  # the last item of the last file that uses the cluster
        module = users[-1].module
        _DASK["close_after"] = [item for item in items if getattr(item, "module", 0) is module][-1]


class RowsReachingClient:
    """Records every array of at least ``rows`` rows (or columns) that the
    client receives from the cluster: all results pass Client._gather_remote."""

    def __init__(self, monkeypatch, rows):
        import distributed

        self.rows, self.seen = rows, []
        original = distributed.Client._gather_remote

        async def gather_remote(client, *args, **kwargs):
            response = await original(client, *args, **kwargs)
            self._walk(response.get("data", {}))
            return response

        monkeypatch.setattr(distributed.Client, "_gather_remote", gather_remote)

    def _walk(self, value):
        if isinstance(value, np.ndarray):
            if value.ndim and max(value.shape) >= self.rows:
                self.seen.append(value.shape)
        elif isinstance(value, dict):
            for v in value.values():
                self._walk(v)
        elif isinstance(value, (list, tuple)):
            for v in value:
                self._walk(v)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item, nextitem):
    yield  # the file's fixtures (its Client) are torn down first
    if item is _DASK.get("close_after") and "cluster" in _DASK:
        _DASK.pop("cluster").close()
        _DASK.pop("config").__exit__(None, None, None)
