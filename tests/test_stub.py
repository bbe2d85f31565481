"""_core.pyi describes the built module: the same names, the same
parameters in the same order, the same class members."""

from __future__ import annotations

import ast
import pathlib

import pytest

from fastlinreg import _core

STUB = pathlib.Path(_core.__file__).with_name("_core.pyi")


def _params(signature: str) -> list[str]:
    """Parameter names of a pybind11 signature line ``name(a: T, b: U = 0) -> R``."""
    inner = signature[signature.index("(") + 1 : signature.rindex(") ->")]
    names, depth, start = [], 0, 0
    for i, ch in enumerate(inner + ","):
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        elif ch == "," and depth == 0:
            part = inner[start:i].strip()
            if part:
                names.append(part.split(":")[0].split("=")[0].strip())
            start = i + 1
    return [n for n in names if n != "self"]


def _stub_params(fn: ast.FunctionDef) -> list[str]:
    return [a.arg for a in fn.args.args if a.arg != "self"]


def _stub():
    tree = ast.parse(STUB.read_text())
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    attrs = {n.target.id for n in tree.body if isinstance(n, ast.AnnAssign)}
    return functions, classes, attrs


def _public(obj) -> set[str]:
    return {n for n in dir(obj) if not n.startswith("_")}


def test_stub_names_match_module():
    functions, classes, attrs = _stub()
    module = _public(_core) | {"__version__"}
    assert set(functions) | set(classes) | attrs == module


@pytest.mark.parametrize("name", sorted(_stub()[0]))
def test_stub_function_parameters(name):
    fn = _stub()[0][name]
    signature = getattr(_core, name).__doc__.splitlines()[0]
    assert _stub_params(fn) == _params(signature), signature


@pytest.mark.parametrize("name", sorted(_stub()[1]))
def test_stub_class_members(name):
    cls = _stub()[1][name]
    members = {n.name for n in cls.body if isinstance(n, ast.FunctionDef)} | {
        n.target.id for n in cls.body if isinstance(n, ast.AnnAssign)
    }
    compiled = getattr(_core, name)
    assert members - {"__init__"} == _public(compiled)
    if "__init__" in members:
        init = next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "__init__")
        signature = compiled.__init__.__doc__.strip().splitlines()[0]
        assert _stub_params(init) == _params(signature), signature
