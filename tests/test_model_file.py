"""Model files: bit-identical round trips, readable without fastlinreg, and
safe (clear errors, no pickle) on files that are not ours."""

from __future__ import annotations

import json
import warnings
import zipfile

import numpy as np
import pytest

import fastlinreg
from fastlinreg import LinearRegression


def _data(k=1, seed=0, n=300, d=4):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    Y = X @ rng.normal(size=(d, k)) + rng.normal(size=(n, k))
    return X, (Y[:, 0] if k == 1 else Y)


def _same(a, b):
    """Bit-identical arrays (same dtype, shape and bytes)."""
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.mark.parametrize(
    "params",
    [
        {"solver": "exact"},
        {"solver": "exact", "cov_type": "HC3", "fit_intercept": False},
        {"solver": "gram", "learning_rate": 0.05, "max_iter": 50, "tol": None},
        {"solver": "gd", "alpha": 0.1},
        {"solver": "sgd", "max_iter": 3, "random_state": 0},
    ],
)
@pytest.mark.parametrize("k", [1, 3])
def test_round_trip_is_bit_identical(tmp_path, params, k):
    X, y = _data(k)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the short descents' ConvergenceWarning
        model = LinearRegression(**params).fit(X, y)
    path = tmp_path / "model.flr"
    model.save(path)
    loaded = fastlinreg.load(path)
    assert loaded.get_params() == model.get_params()
    for name in ("coef_", "intercept_", "loss_curve_"):
        assert _same(getattr(loaded, name), getattr(model, name)), name
    assert type(loaded.intercept_) is type(model.intercept_)
    for name in ("n_iter_", "solver_", "backend_", "learning_rate_", "n_features_in_"):
        assert getattr(loaded, name) == getattr(model, name), name
    assert _same(loaded.predict(X), model.predict(X))


def test_a_loaded_stream_continues_and_summarises(tmp_path):
    X, y = _data(seed=1)
    model = LinearRegression(cov_type="HC1").fit(X[:200], y[:200])
    model.save(tmp_path / "m.flr")
    loaded = fastlinreg.load(tmp_path / "m.flr")
    assert str(loaded.summary(show=False)) == str(model.summary(show=False))
    both = [m.partial_fit(X[200:], y[200:]) for m in (model, loaded)]
    assert _same(both[0].coef_, both[1].coef_)


def test_sgd_stream_continues_the_same_after_loading(tmp_path):
    X, y = _data(seed=2)
    model = LinearRegression(solver="sgd", random_state=3).partial_fit(X[:150], y[:150])
    model.save(tmp_path / "m.flr")
    loaded = fastlinreg.load(tmp_path / "m.flr")
    model.partial_fit(X[150:], y[150:])
    loaded.partial_fit(X[150:], y[150:])
    assert _same(model.coef_, loaded.coef_)


def test_feature_names_survive(tmp_path):
    pd = pytest.importorskip("pandas")
    X, y = _data(seed=4, d=2)
    frame = pd.DataFrame(X, columns=["height", "width"])
    model = LinearRegression().fit(frame, y)
    model.save(tmp_path / "m.flr")
    loaded = fastlinreg.load(tmp_path / "m.flr")
    assert list(loaded.feature_names_in_) == ["height", "width"]
    assert _same(loaded.predict(frame), model.predict(frame))
    assert loaded.summary(show=False).names == ["intercept", "height", "width"]


def test_readable_without_fastlinreg(tmp_path):
    X, y = _data(seed=5)
    model = LinearRegression().fit(X, y)
    model.save(tmp_path / "m.flr")
    with np.load(tmp_path / "m.flr", allow_pickle=False) as f:
        meta = json.loads(f["metadata.json"])
        coef, intercept = f["coef"], f["intercept"]
    assert meta["format"] == "fastlinreg-model" and meta["format_version"] == 1
    assert meta["fastlinreg_version"] == fastlinreg.__version__
    assert meta["params"]["solver"] == "auto"
    assert _same(coef, model.coef_) and float(intercept) == model.intercept_


def _rewrite(src, dst, *, meta=None, members=None):
    """A copy of the model file src with its metadata or members replaced."""
    with zipfile.ZipFile(src) as z:
        contents = {n: z.read(n) for n in z.namelist()}
    if meta is not None:
        contents["metadata.json"] = json.dumps(meta).encode()
    contents.update(members or {})
    with zipfile.ZipFile(dst, "w") as z:
        for name, data in contents.items():
            if data is not None:
                z.writestr(name, data)
    return dst


def _npy(a) -> bytes:
    import io

    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asarray(a), allow_pickle=True)
    return buf.getvalue()


@pytest.fixture
def saved(tmp_path):
    X, y = _data(seed=6)
    path = tmp_path / "good.flr"
    LinearRegression().fit(X, y).save(path)
    with zipfile.ZipFile(path) as z:
        meta = json.loads(z.read("metadata.json"))
    return path, meta


def test_not_a_model_file(tmp_path):
    path = tmp_path / "x.flr"
    path.write_bytes(b"hello")
    with pytest.raises(ValueError, match="not a zip archive"):
        fastlinreg.load(path)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda m: m.update(format="other"), "does not say format"),
        (lambda m: m.update(format_version=99), "format_version 99"),
        (lambda m: m["params"].update(evil="x"), "unknown parameters"),
        (lambda m: m["params"].update(max_iter=-3), "max_iter"),
        (lambda m: m.update(n_features_in=7), "coef should be float64 of shape"),
        (lambda m: m.update(feature_names=[1, 2]), "feature_names"),
        (lambda m: m.update(estimator="os.system"), "estimator"),
    ],
)
def test_bad_metadata_is_a_clear_error(tmp_path, saved, edit, match):
    path, meta = saved
    edit(meta)
    bad = _rewrite(path, tmp_path / "bad.flr", meta=meta)
    with pytest.raises(ValueError, match=match):
        fastlinreg.load(bad)


def test_pickled_or_wrong_arrays_are_refused(tmp_path, saved):
    path, _ = saved
    objects = _rewrite(path, tmp_path / "o.flr", members={"coef.npy": _npy(np.array([{}] * 4))})
    with pytest.raises(ValueError, match="coef should be float64"):
        fastlinreg.load(objects)
    missing = _rewrite(path, tmp_path / "m.flr", members={"intercept.npy": None})
    with pytest.raises(ValueError, match="'intercept' is missing"):
        fastlinreg.load(missing)
    garbage = _rewrite(path, tmp_path / "g.flr", members={"coef.npy": b"not an array"})
    with pytest.raises(ValueError, match="not a .npy array"):
        fastlinreg.load(garbage)


def test_save_needs_a_fitted_model(tmp_path):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        LinearRegression().save(tmp_path / "m.flr")
