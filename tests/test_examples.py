"""The examples people copy: every docstring example of the package and
every Python block of the README run, and their printed outputs hold."""

from __future__ import annotations

import doctest
import importlib
import pathlib
import pkgutil
import re

import pytest

import fastlinreg

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
MODULES = sorted(
    m.name
    for m in pkgutil.walk_packages(fastlinreg.__path__, "fastlinreg.")
    if not m.name.endswith("__main__")
)

# Modules whose public objects carry examples (a check that doctest found them).
WITH_EXAMPLES = {
    "fastlinreg",
    "fastlinreg.linear_model",
    "fastlinreg.logistic",
    "fastlinreg.datasets",
    "fastlinreg._stats",
}


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
    if name in WITH_EXAMPLES:
        assert result.attempted > 0


def test_readme_python_blocks_run(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "the README has Python examples"
    monkeypatch.chdir(tmp_path)  # files an example writes land here
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)  # noqa: S102
