"""Input checks of the estimators: parameters, arrays, weights, starts.

Errors are scikit-learn's where scikit-learn has one, worded to say what to
do otherwise. A failed fit leaves the estimator as it was.
"""

from __future__ import annotations

import math
import types

import numpy as np
from sklearn.utils import check_random_state
from sklearn.utils.validation import _check_sample_weight, validate_data

from .backends._protocol import Problem

__all__ = [
    "validate_for",
    "rows_problem",
    "first_model",
    "check_params",
    "check_alpha",
    "validate_fit_data",
    "check_weights",
    "check_start",
    "restore_on_error",
    "KERNEL_DTYPES",
    "SPARSE_FORMATS",
]

KERNEL_DTYPES = (np.float64, np.float32)
_F64 = np.dtype(np.float64)
# Sparse X is taken as CSR or CSC (other formats convert to CSR); see backends/_csr.py.
SPARSE_FORMATS = ("csr", "csc")

# Parameter sets that passed scikit-learn's validation, per estimator class.
_VALID_PARAMS: dict = {}


def check_params(estimator) -> None:
    """scikit-learn's parameter validation, run once per distinct set of
    parameter values: it costs ~0.1 ms, as much as the tutorial's whole
    10000-step descent, and a fresh estimator per fit is the usual idiom.
    Values are keyed with their types (so ``1`` is not taken for ``True``);
    unhashable values are always validated."""
    values = tuple(map(estimator.__dict__.get, estimator._parameter_constraints))
    key = (values, tuple(map(type, values)))
    seen = _VALID_PARAMS.setdefault(type(estimator), set())
    try:
        if key in seen:
            return
    except TypeError:  # an unhashable value
        estimator._validate_params()
        return
    estimator._validate_params()
    if len(seen) >= 256:
        seen.clear()
    seen.add(key)


def check_alpha(alpha, n_targets: int):
    """alpha as a float, or a float64 array of shape (n_targets,) (one penalty
    per target, as scikit-learn's Ridge takes it)."""
    if type(alpha) is float or np.ndim(alpha) == 0:
        return float(alpha)
    a = np.asarray(alpha, dtype=np.float64)
    if a.shape == (1,):
        return float(a[0])
    if a.ndim == 1 and a.shape != (n_targets,):
        # scikit-learn's Ridge words this error so; its tests match on it.
        raise ValueError(
            f"Number of targets and number of penalties do not correspond: {a.shape[0]} != "
            f"{n_targets}. Pass alpha as a float, or an array of shape ({n_targets},)."
        )
    if a.shape != (n_targets,) or not np.isfinite(a).all() or (a < 0).any():
        raise ValueError(
            f"alpha must be a non-negative number or {n_targets} non-negative numbers (one per "
            f"target); got shape {np.shape(alpha)}. Pass a float, or an array of shape "
            f"({n_targets},)."
        )
    return a


def validate_fit_data(estimator, X, y, *, reset=True):
    """validate_data(X, y), with a fast path for input that is already
    exactly what it would return: float ndarrays of the right shapes, y
    finite. Anything else, or anything doubtful, goes through scikit-learn's
    checks, which also word the errors.

    The fast path leaves X's finiteness to the solver's own pass: a NaN or
    inf makes the statistics, the column moments or the first loss
    non-finite, and the solver then raises scikit-learn's error. That saves
    a whole read of X, 15-20% of an exact fit."""
    if (
        reset
        and type(X) is np.ndarray
        and type(y) is np.ndarray
        and X.ndim == 2
        and (X.dtype is _F64 or X.dtype in KERNEL_DTYPES)
        and X.shape[0] >= 1
        and X.shape[1] >= 1
        and y.dtype.kind == "f"
        and y.shape[0] == X.shape[0]
        and (y.ndim == 1 or (y.ndim == 2 and y.shape[1] >= 1))
        and _finite_sum(y)
    ):
        estimator.n_features_in_ = X.shape[1]
        estimator.__dict__.pop("feature_names_in_", None)
        return X, y
    return validate_data(
        estimator,
        X,
        y,
        dtype=list(KERNEL_DTYPES),
        accept_sparse=SPARSE_FORMATS,
        y_numeric=True,
        multi_output=True,
        reset=reset,
    )


def check_weights(sample_weight, X):
    """(weights (n,) float64 or None, their sum): non-negative, not all zero."""
    if sample_weight is None:
        return None, float(X.shape[0])
    sw = _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True)
    with np.errstate(over="ignore"):  # an infinite sum: the solver says which input overflowed
        wsum = float(sw.sum())
    if not wsum > 0:
        raise ValueError("sample_weight sums to zero: at least one sample needs a positive weight.")
    return np.ascontiguousarray(sw), wsum


def check_start(coef_init, intercept_init, W, b, fit_intercept):
    """(W (d, k), b (k)) with the user's coef_init / intercept_init put in."""
    d, k = W.shape
    if coef_init is not None:
        c0 = np.array(coef_init, dtype=np.float64)
        if c0.shape == (d,) and k == 1:
            c0 = c0.reshape(1, d)
        if c0.shape != (k, d) or not all_finite(c0):
            raise ValueError(
                f"coef_init must be finite with shape ({d},) for 1-D y or ({k}, {d}) "
                f"(like coef_); got shape {c0.shape}."
            )
        W = c0.reshape(d, 1) if k == 1 else np.ascontiguousarray(c0.T)  # c0 is a fresh copy
    if intercept_init is not None:
        if not fit_intercept:
            raise ValueError("intercept_init was given but fit_intercept=False.")
        if type(intercept_init) is float and math.isfinite(intercept_init):
            return W, np.array([intercept_init] * k)  # the usual scalar: no checks below
        i0 = np.array(intercept_init, dtype=np.float64, ndmin=1).reshape(-1)
        if i0.shape == (1,) and k > 1:
            i0 = np.repeat(i0, k)
        if i0.shape != (k,) or not all_finite(i0):
            raise ValueError(
                f"intercept_init must be a finite scalar or have shape ({k},); "
                f"got shape {np.shape(intercept_init)}."
            )
        b = i0
    return W, b


def _finite_sum(a: np.ndarray) -> bool:
    """Whether the sum of a float array is finite (then so is every value)."""
    if a.size <= 64:  # a few values: summed in Python, without a reduction's fixed cost
        return math.isfinite(sum(a.ravel().tolist()))
    return math.isfinite(a.sum())


def all_finite(a: np.ndarray) -> bool:
    """Whether every value of a float array is finite: a few values one by
    one (a ufunc's fixed cost is a tiny fit's), more at once."""
    if a.size <= 8:
        return all(map(math.isfinite, a.ravel().tolist()))
    return bool(np.isfinite(a).all())


class restore_on_error:
    """``with restore_on_error(estimator):`` leaves the estimator exactly as
    it was if the block raises (including KeyboardInterrupt): attributes are
    only ever replaced, never mutated. (A class: a generator-based context
    manager costs microseconds per fit.)"""

    __slots__ = ("estimator", "saved")

    def __init__(self, estimator):
        self.estimator = estimator

    def __enter__(self):
        self.saved = dict(self.estimator.__dict__)

    def __exit__(self, kind, value, traceback):
        if kind is not None:
            self.estimator.__dict__.clear()
            self.estimator.__dict__.update(self.saved)
        return False


def validate_for(backend):
    """The backend's own check of (X, y) where it has one (dask: nothing is
    gathered to the client), :func:`validate_fit_data` otherwise."""
    return _member(backend, "validate_fit_data") or validate_fit_data


def _member(backend, name: str):
    """``getattr(backend, name, None)``; for a module, without the
    AttributeError a missing name raises and getattr catches (~1 us a fit)."""
    if type(backend) is types.ModuleType:
        return backend.__dict__.get(name)
    return getattr(backend, name, None)


def rows_problem(backend, X, y, sample_weight, loss, n_jobs):
    """The validated rows as the backend's Problem (Y as (n, k) float64)."""
    make_problem = _member(backend, "make_problem")
    if make_problem is not None:  # rows that stay where they are (dask)
        return make_problem(X, y, sample_weight, loss, n_jobs)
    X = backend.prepare_X(X)
    Y = np.ascontiguousarray(y.reshape(X.shape[0], -1), dtype=np.float64)
    sw, wsum = check_weights(sample_weight, X)
    return Problem(X, Y, sw, wsum, loss, n_jobs)


def first_model(estimator, d, k, random):
    """(W (d, k), b (k)) before coef_init: random draws with init="random"
    (unless coef_init is given, ``random`` False), else zeros."""
    if random and estimator.init == "random":
        rng = check_random_state(estimator.random_state)
        W = rng.standard_normal((d, k))
        b = rng.standard_normal(k) if estimator.fit_intercept else np.zeros(k)
        return W, b
    return np.zeros((d, k)), np.zeros(k)
