"""The installed package stands alone: it never reaches into the repository around it.

Tests, their servers and corpora (tests/support) and the benchmarks stay out
of the wheel; a module of archiver/ that imported them, or named a path of
the machine it was written on, would work in a checkout and break when
installed.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "archiver"
#: top-level names that exist only in a checkout
_OUTSIDE = {"tests", "bench", "migrations", "conftest"}
#: absolute paths that name a particular machine's scratch or work folders
_MACHINE_PATHS = ("/tmp", "/work", "/home/", "/root", "/var/tmp")


def _modules() -> list[Path]:
    modules = sorted(PACKAGE.rglob("*.py"))
    assert len(modules) > 10
    return modules


def _imported(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_no_module_imports_what_only_a_checkout_has():
    offenders = {}
    for path in _modules():
        imported = _imported(ast.parse(path.read_text(encoding="utf-8")))
        bad = {name for name in imported
               if name.split(".")[0] in _OUTSIDE or name.startswith("archiver.testing")}
        if bad:
            offenders[str(path.relative_to(PACKAGE.parent))] = sorted(bad)
    assert offenders == {}


def test_no_code_names_a_machine_path():
    """String constants (docstrings aside) must not hard-code scratch or work folders."""
    offenders = []
    for path in _modules():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and node.body and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)
        }
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                    and id(node) not in docstrings
                    and any(p in node.value for p in _MACHINE_PATHS)):
                offenders.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: "
                                 f"{node.value[:60]!r}")
    assert offenders == []
