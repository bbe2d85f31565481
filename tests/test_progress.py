"""Progress of long fits: the C++ loops' check hook hands (step, loss) to a
Python callable; verbose=1 turns that into printed lines or a tqdm bar."""

from __future__ import annotations

import io

import numpy as np
import pytest

from fastlinreg import LinearRegression, _progress
from fastlinreg._losses import SQUARED
from fastlinreg._stats import SufficientStats
from fastlinreg.backends import DescentConfig, Problem, SgdConfig


def _problem(n, d, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    Y = (X @ rng.normal(size=d) + rng.normal(size=n))[:, None]
    return Problem(X, Y, None, float(n), SQUARED, None)


class Recorder:
    def __init__(self, fail_at=None):
        self.calls, self.fail_at = [], fail_at

    def __call__(self, step, loss):
        self.calls.append((step, loss))
        if self.fail_at is not None and len(self.calls) >= self.fail_at:
            raise KeyError("stop here")


def test_descend_over_x_reports_every_2_to_the_25_elements(backend):
    # n * d = 2**20 elements a pass: the cpu loop checks every 32 steps.
    cpu = backend.NAME == "cpu"
    problem = _problem(1 << 17 if cpu else 1 << 8, 8)  # the reference reports every step
    rec = Recorder()
    config = DescentConfig(100, 0.1, None, 0.0, True, progress=rec)
    out = backend.descend(problem, config, np.zeros((8, 1)), np.zeros(1))
    steps = [s for s, _ in rec.calls]
    assert steps == ([32, 64, 96] if cpu else list(range(1, 101)))
    for step, loss in rec.calls:
        assert loss == out.curve[step - 1]  # the loss of the step just taken


def test_gram_and_sgd_report_too(backend):
    impl, cpu = backend, backend.NAME == "cpu"
    problem = _problem(4096, 64, seed=1)
    stats = SufficientStats.from_arrays(problem.X, problem.Y)
    rec = Recorder()
    # d²k = 2**12 a step: the cpu loop checks every 8192 steps.
    config = DescentConfig(20000 if cpu else 50, 0.01, None, 0.0, True, progress=rec)
    out = impl.descend_gram(stats, config, np.zeros((64, 1)), np.zeros(1))
    assert [s for s, _ in rec.calls] == ([8192, 16384] if cpu else list(range(1, 51)))
    assert [loss for _, loss in rec.calls] == [out.curve[s - 1] for s, _ in rec.calls]
    rec = Recorder()
    # cpu: 2**23 elements an epoch, a check every 4 epochs; the reference
    # reports every epoch (and shuffles in Python: a small problem).
    big = _problem(1 << 17 if cpu else 1 << 10, 64, seed=2)
    sgd = SgdConfig(8, 256, True, 0, 0.001, 0.0, None, 5, True, progress=rec)
    impl.sgd(big, sgd, np.zeros((64, 1)), np.zeros(1))
    assert [e for e, _ in rec.calls] == ([3, 7] if cpu else list(range(1, 9)))
    assert all(np.isfinite(loss) for _, loss in rec.calls)


def test_an_exception_in_the_callback_stops_the_fit_and_propagates(backend):
    problem = _problem(1 << 17, 8)
    config = DescentConfig(1000, 0.1, None, 0.0, True, progress=Recorder(fail_at=2))
    with pytest.raises(KeyError, match="stop here"):
        backend.descend(problem, config, np.zeros((8, 1)), np.zeros(1))


def test_verbose_prints_step_loss_and_rate(monkeypatch, capsys):
    monkeypatch.setattr(_progress.Progress, "DELAY", 0.0)
    monkeypatch.setattr(_progress.Progress, "EVERY", 0.0)
    monkeypatch.setattr(_progress.Progress, "_tqdm", lambda self: None)
    problem = _problem(1 << 17, 8)
    X, y = problem.X, problem.Y[:, 0]
    model = LinearRegression(solver="gd", learning_rate=0.1, max_iter=100, tol=None, verbose=1)
    model.fit(X, y)
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0].startswith("step 32/100  loss ")
    assert lines[-1].startswith("step 100/100  loss ")  # the closing line
    assert all("steps/s" in line for line in lines)
    quiet = LinearRegression(solver="gd", learning_rate=0.1, max_iter=100, tol=None).fit(X, y)
    assert capsys.readouterr().err == ""
    np.testing.assert_array_equal(quiet.coef_, model.coef_)  # reporting changes nothing


def test_short_fits_stay_silent(capsys):
    X = np.random.default_rng(3).normal(size=(200, 3))
    LinearRegression(solver="gd", verbose=1).fit(X, X[:, 0])
    assert capsys.readouterr().err == ""


def test_tqdm_bar(monkeypatch):
    pytest.importorskip("tqdm")
    out = io.StringIO()
    p = _progress.Progress(100, file=out, use_tqdm=True)
    monkeypatch.setattr(p, "DELAY", 0.0)
    p(40, 0.5)
    p(80, 0.25)
    p.close(100, 0.125)
    text = out.getvalue()
    assert "100/100" in text and "loss=0.125" in text
