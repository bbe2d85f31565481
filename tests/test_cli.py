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


def _csv(path, X, y=None):
    head = [f"x{j}" for j in range(X.shape[1])] + ([] if y is None else ["target"])
    rows = [
        ",".join(f"{v!r}" for v in r.tolist())
        for r in (X if y is None else np.column_stack([X, y]))
    ]
    path.write_text("\n".join([",".join(head), *rows]) + "\n")
    return path


def test_fit_save_predict_summary(tmp_path, capsys):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((60, 3))
    y = X @ [1.0, -2.0, 0.5] + 4.0 + 0.1 * rng.standard_normal(60)
    train = _csv(tmp_path / "train.csv", X, y)
    model_path = tmp_path / "model.flr"
    assert cli.main(["fit", str(train), "--target", "target", "--save", str(model_path)]) == 0
    assert "saved" in capsys.readouterr().out
    # Columns in another order, and an extra one: matched by name.
    new = tmp_path / "new.csv"
    new.write_text(
        "x2,extra,x0,x1\n" + "\n".join(f"{c!r},7,{a!r},{b!r}" for a, b, c in X.tolist()) + "\n"
    )
    out = tmp_path / "pred.csv"
    assert cli.main(["predict", str(model_path), str(new), "-o", str(out)]) == 0
    lines = out.read_text().splitlines()
    assert lines[0] == "prediction" and len(lines) == 61
    import fastlinreg

    expected = fastlinreg.load(model_path).predict(_frame(X))
    np.testing.assert_array_equal(np.array(lines[1:], dtype=float), expected)
    assert cli.main(["summary", str(model_path)]) == 0
    table = capsys.readouterr().out
    assert "OLS Regression Results" in table and "x2" in table and "R-squared:" in table


def _frame(X):
    pd = pytest.importorskip("pandas")
    return pd.DataFrame(X, columns=[f"x{j}" for j in range(X.shape[1])])


def test_predict_and_summary_errors(tmp_path):
    bad = tmp_path / "bad.flr"
    bad.write_text("not a model")
    with pytest.raises(SystemExit, match="not a fastlinreg model file"):
        cli.main(["summary", str(bad)])
    rng = np.random.default_rng(2)
    X, y = rng.standard_normal((20, 2)), rng.standard_normal(20)
    model_path = tmp_path / "m.flr"
    cli.main(
        [
            "fit",
            str(_csv(tmp_path / "t.csv", X, y)),
            "--target",
            "target",
            "--alpha",
            "1",
            "--save",
            str(model_path),
        ]
    )
    with pytest.raises(SystemExit, match="ridge"):
        cli.main(["summary", str(model_path)])
    (tmp_path / "few.csv").write_text("x0\n1.0\n")
    with pytest.raises(SystemExit, match=r"lacks the model's columns \['x1'\]"):
        cli.main(["predict", str(model_path), str(tmp_path / "few.csv")])


def test_fit_shows_progress_only_on_a_terminal(tmp_path, monkeypatch):
    seen = []
    real = cli.LinearRegression

    def spy(**kw):
        seen.append(kw.get("verbose"))
        return real(**kw)

    monkeypatch.setattr(cli, "LinearRegression", spy)
    rng = np.random.default_rng(3)
    path = _csv(tmp_path / "d.csv", rng.standard_normal((30, 2)), rng.standard_normal(30))
    for tty in (True, False):
        monkeypatch.setattr(sys.stderr, "isatty", lambda tty=tty: tty)
        cli.main(["fit", str(path), "--target", "target"])
    assert seen == [1, 0]
