"""The command line: the tutorial run, its figure, and fitting a CSV file."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from fastlinreg import cli


def test_tutorial_run_prints_the_fit(capsys):
    assert cli.main(["--seed", "3"]) == 0
    out = capsys.readouterr().out
    for label in ("Slope", "Intercept", "final cost", "steps", "time"):
        assert label in out
    assert "10000" in out
    slope = float(out.split("Slope      :")[1].split()[0])
    assert abs(slope - 0.2827) < 1e-3  # 10000 steps from any reasonable start


def test_tutorial_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    path = tmp_path / "fit.png"
    assert cli.main(["--seed", "0", "--plot", str(path)]) == 0
    assert path.stat().st_size > 1000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_python_dash_m_runs():
    proc = subprocess.run(
        [sys.executable, "-m", "fastlinreg", "--seed", "1", "--steps", "100"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Slope" in proc.stdout and "100" in proc.stdout


def test_fit_csv(tmp_path, capsys):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((50, 2))
    y = 3.0 * X[:, 0] - 2.0 * X[:, 1] + 1.5
    path = tmp_path / "data.csv"
    rows = ["a,b,label,target"] + [f"{a},{b},x,{t}" for (a, b), t in zip(X, y)]
    path.write_text("\n".join(rows) + "\n")
    assert cli.main(["fit", str(path), "--target", "target"]) == 0
    out = capsys.readouterr().out
    coefs = {
        line.split()[0]: float(line.split()[1])
        for line in out.splitlines()
        if line.split() and line.split()[0] in ("a", "b", "intercept")
    }
    assert coefs == pytest.approx({"a": 3.0, "b": -2.0, "intercept": 1.5}, abs=1e-6)


def test_fit_csv_errors(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("a,b\n1,2\n3,4\n")
    with pytest.raises(SystemExit, match="not in"):
        cli.main(["fit", str(path), "--target", "nope"])
    with pytest.raises(SystemExit):
        cli.main(["--steps", "0"])
