"""Model files without pickle: ``model.save(path)`` and ``fastlinreg.load(path)``.

A model file (by convention ``*.flr``) is a zip archive in numpy's ``.npz``
layout: one ``metadata.json`` member and ``.npy`` members (float64, little
endian, no object arrays). It reads without fastlinreg::

    import json, numpy as np
    with np.load("model.flr", allow_pickle=False) as f:
        meta = json.loads(f["metadata.json"])
        coef, intercept = f["coef"], f["intercept"]

``metadata.json`` holds ``format`` (``"fastlinreg-model"``),
``format_version`` (1), ``fastlinreg_version``, ``estimator``, ``params``
(the constructor's, JSON values only), ``n_features_in``, ``feature_names``
(or null), ``y_is_1d``, ``solver``, ``backend``, ``n_iter``,
``learning_rate`` and ``stream`` (what ``partial_fit`` and ``summary``
continue from: the solver, ``converged``, and the scalars of the statistics
or of SGD's state). The arrays are ``coef`` (as ``coef_``), ``intercept``
(0-d for one target), ``loss_curve``, and when kept ``stats_mean_x``,
``stats_mean_y``, ``stats_Cxx``, ``stats_Cxy``, ``stats_Cyy`` (the
:class:`~fastlinreg.SufficientStats`), ``sgd_W``, ``sgd_b``, ``sgd_shift``,
``sgd_scale`` and ``robust_meat``. A loaded model predicts bit for bit as
the saved one.

Loading is safe on a file from anywhere: arrays are read with
``allow_pickle=False``, the metadata is JSON, only the members named here are
read, and every value is checked (types, shapes, the estimator's parameter
validation) before the model is built.
"""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np

__all__ = ["save", "load", "FORMAT_VERSION"]

FORMAT = "fastlinreg-model"
FORMAT_VERSION = 1
_MAX_METADATA = 1 << 20  # bytes: a larger metadata member is not one of ours
_STATS = ("mean_x", "mean_y", "Cxx", "Cxy", "Cyy")
_SGD_ARRAYS = ("W", "b", "shift", "scale")
_SGD_SCALARS = ("eta0", "seed", "epochs", "best_loss", "no_improvement", "ref_loss")


def _json_params(model) -> dict:
    out = {}
    for name, value in model.get_params(deep=False).items():
        if isinstance(value, np.generic):
            value = value.item()
        # A RandomState instance has no JSON form; the file keeps None instead.
        out[name] = value if value is None or isinstance(value, (bool, int, float, str)) else None
    return out


def save(model, path) -> None:
    """Write a fitted LinearRegression to ``path`` (see the module docstring).

    Parameters
    ----------
    model : LinearRegression
        Fitted.
    path : str or path-like
        Written as is (no extension is added).
    """
    from sklearn.utils.validation import check_is_fitted

    from . import __version__

    check_is_fitted(model)
    stream = model._stream
    arrays = {
        "coef": np.asarray(model.coef_, dtype=np.float64),
        "intercept": np.asarray(model.intercept_, dtype=np.float64),
        "loss_curve": np.asarray(model.loss_curve_, dtype=np.float64),
    }
    stream_meta = {"solver": stream.solver, "n_targets": stream.n_targets}
    stream_meta["converged"] = bool(stream.converged)
    if stream.stats is not None:
        s = stream.stats
        arrays.update({f"stats_{n}": np.asarray(getattr(s, n), np.float64) for n in _STATS})
        stream_meta["stats"] = {
            "weight_sum": float(s.weight_sum),
            "n_samples": int(s.n_samples),
            "log_weight_sum": float(s.log_weight_sum),
        }
    if stream.sgd is not None:
        g = stream.sgd
        for n in _SGD_ARRAYS:
            if getattr(g, n) is not None:
                arrays[f"sgd_{n}"] = np.asarray(getattr(g, n), np.float64)
        scalars = (getattr(g, n) for n in _SGD_SCALARS)
        stream_meta["sgd"] = {
            n: v.item() if isinstance(v, np.generic) else v for n, v in zip(_SGD_SCALARS, scalars)
        }
    robust = getattr(model, "_robust", None)
    if robust is not None:
        arrays["robust_meat"] = robust.meat
        stream_meta["robust"] = {
            "cov_type": robust.cov_type,
            "weight_sum": float(robust.weight_sum),
            "n_samples": int(robust.n_samples),
        }
    names = getattr(model, "feature_names_in_", None)
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "fastlinreg_version": __version__,
        "estimator": type(model).__name__,
        "params": _json_params(model),
        "n_features_in": int(model.n_features_in_),
        "feature_names": None if names is None else [str(n) for n in names],
        "y_is_1d": bool(np.ndim(model.coef_) == 1),
        "solver": model.solver_,
        "backend": model.backend_,
        "n_iter": int(model.n_iter_),
        "learning_rate": model.learning_rate_,
        "stream": stream_meta,
    }
    with zipfile.ZipFile(os.fspath(path), "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("metadata.json", json.dumps(meta, indent=1, allow_nan=True))
        for name, a in arrays.items():
            with z.open(f"{name}.npy", "w") as f:
                np.lib.format.write_array(f, np.array(a, order="C"), allow_pickle=False)


class _Reader:
    """Checked access to the members of one model file."""

    def __init__(self, z: zipfile.ZipFile, path: str):
        self.z, self.path, self.names = z, path, set(z.namelist())

    def bad(self, why: str) -> ValueError:
        return ValueError(f"{self.path} is not a valid fastlinreg model file: {why}")

    def metadata(self) -> dict:
        if "metadata.json" not in self.names:
            raise self.bad("it has no metadata.json member")
        if self.z.getinfo("metadata.json").file_size > _MAX_METADATA:
            raise self.bad("its metadata.json is too large")
        try:
            meta = json.loads(self.z.read("metadata.json"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise self.bad(f"metadata.json is not JSON ({exc})") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise self.bad(f"metadata.json does not say format {FORMAT!r}")
        version = meta.get("format_version")
        if type(version) is not int or not 1 <= version <= FORMAT_VERSION:
            raise self.bad(
                f"format_version {version!r}; this fastlinreg reads versions 1 to "
                f"{FORMAT_VERSION} (a newer fastlinreg may read it)"
            )
        return meta

    def array(self, name: str, shape: tuple, required: bool = True):
        """The float64 array ``name`` of exactly ``shape``, or None when absent and optional."""
        member = f"{name}.npy"
        if member not in self.names:
            if required:
                raise self.bad(f"the array {name!r} is missing")
            return None
        with self.z.open(member) as f:
            try:
                major, _ = np.lib.format.read_magic(f)
                reader = np.lib.format.read_array_header_1_0
                if major != 1:
                    reader = np.lib.format.read_array_header_2_0
                found, fortran, dtype = reader(f)
            except ValueError as exc:
                raise self.bad(f"{member} is not a .npy array ({exc})") from None
            # The header is checked before any data is read or allocated; a
            # dimension given as None may have any length the member can hold.
            size = self.z.getinfo(member).file_size // 8
            fits = len(found) == len(shape) and all(
                f == s if s is not None else 0 <= f <= size for f, s in zip(found, shape)
            )
            if not fits or dtype != np.dtype("<f8") or fortran:
                raise self.bad(
                    f"{name} should be float64 of shape {tuple(shape)}; it is {dtype} {found}"
                )
        with self.z.open(member) as f:
            return np.lib.format.read_array(f, allow_pickle=False)


def _field(meta: dict, key: str, types, reader: _Reader):
    value = meta.get(key)
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        raise reader.bad(f"metadata field {key!r} is {value!r}")
    return value


def load(path):
    """Read a model written by :meth:`LinearRegression.save`.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    LinearRegression
        Fitted: it predicts bit for bit as the saved model, and continues
        ``partial_fit`` and ``summary`` where the saved one would.

    Raises
    ------
    ValueError
        When the file is not a valid model file (a sentence says what is wrong).
    """
    path = os.fspath(path)
    try:
        z = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise ValueError(f"{path} is not a fastlinreg model file (not a zip archive)") from None
    with z:
        r = _Reader(z, path)
        return _build(r, r.metadata())


def _build(r: _Reader, meta: dict):
    from .linear_model import LinearRegression

    if meta.get("estimator") != "LinearRegression":
        raise r.bad(f"estimator {meta.get('estimator')!r} is not one this fastlinreg reads")
    params = _field(meta, "params", (dict,), r)
    known = LinearRegression().get_params()
    if not set(params) <= set(known):
        raise r.bad(f"unknown parameters {sorted(set(params) - set(known))}")
    model = LinearRegression(**params)
    model._validate_params()
    d = _field(meta, "n_features_in", (int,), r)
    one = _field(meta, "y_is_1d", (bool,), r)
    st = _field(meta, "stream", (dict,), r)
    k = _field(st, "n_targets", (int,), r)
    if d < 1 or k < 1 or (one and k != 1):
        raise r.bad(f"n_features_in={d}, n_targets={k}, y_is_1d={one} do not fit together")
    names = meta.get("feature_names")
    if names is not None and (
        not isinstance(names, list) or len(names) != d or not all(isinstance(n, str) for n in names)
    ):
        raise r.bad(f"feature_names should be {d} strings")
    coef = r.array("coef", (d,) if one else (k, d))
    intercept = r.array("intercept", () if one else (k,))
    n_iter = _field(meta, "n_iter", (int,), r)
    curve = r.array("loss_curve", (None,))
    model._stream, model._robust = _stream(r, st, d, k, one)
    model.coef_ = coef
    model.intercept_ = intercept[()] if one else intercept  # np.float64, as fit stores it
    model.n_iter_ = n_iter
    model.loss_curve_ = curve
    lr = meta.get("learning_rate")
    model.learning_rate_ = (
        None if lr is None else float(_field(meta, "learning_rate", (int, float), r))
    )
    model.solver_ = _field(meta, "solver", (str,), r)
    model.backend_ = _field(meta, "backend", (str,), r)
    model.n_features_in_ = d
    if names is not None:
        model.feature_names_in_ = np.asarray(names, dtype=object)
    return model


def _stream(r: _Reader, st: dict, d: int, k: int, one: bool):
    """(the Stream partial_fit continues from, the robust pass or None)."""
    from ._stats import SufficientStats
    from .inference import COV_TYPES, RobustPass
    from .solvers import Stream
    from .solvers._common import SgdState

    stats = sgd = robust = None
    if "stats" in st:
        s = _field(st, "stats", (dict,), r)
        arrays = [
            r.array(f"stats_{n}", sh) for n, sh in zip(_STATS, [(d,), (k,), (d, d), (d, k), (k, k)])
        ]
        stats = SufficientStats(
            float(_field(s, "weight_sum", (int, float), r)),
            *arrays,
            n_samples=_field(s, "n_samples", (int,), r),
            log_weight_sum=float(_field(s, "log_weight_sum", (int, float), r)),
        )
    if "sgd" in st:
        g = _field(st, "sgd", (dict,), r)
        W, b = r.array("sgd_W", (d, k)), r.array("sgd_b", (k,))
        shift, scale = (r.array(f"sgd_{n}", (d,), required=False) for n in ("shift", "scale"))
        scalars = {n: _field(g, n, (int, float), r) for n in _SGD_SCALARS}
        sgd = SgdState(W, b, shift, scale, **scalars)
    if "robust" in st:
        q = _field(st, "robust", (dict,), r)
        cov_type = q.get("cov_type")
        if cov_type not in COV_TYPES[1:]:
            raise r.bad(f"robust cov_type {cov_type!r}")
        meat = r.array("robust_meat", (k, None, None))
        if meat.shape[1] != meat.shape[2] or meat.shape[1] > d + 1:
            raise r.bad(f"robust_meat has shape {meat.shape}")
        robust = RobustPass(
            cov_type,
            meat,
            float(_field(q, "weight_sum", (int, float), r)),
            _field(q, "n_samples", (int,), r),
        )
    solver = _field(st, "solver", (str,), r)
    if solver not in ("exact", "gram", "gd", "sgd"):
        raise r.bad(f"stream solver {solver!r}")
    converged = _field(st, "converged", (bool,), r)
    return Stream(solver, k, stats, sgd, one, converged), robust
