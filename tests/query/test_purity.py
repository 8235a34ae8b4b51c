"""archiver.query stands alone: the standard library, archiver.errors and
archiver.units, nothing else (config, holds and the search backends all build
on it, so it must not pull any of them in)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import archiver.query

PACKAGE = Path(archiver.query.__file__).parent
ALLOWED = {"archiver.errors", "archiver.units"}


def _imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "archiver":
                found += [(node.lineno, f"archiver.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, node.module))
    return found


def test_the_query_package_imports_only_the_standard_library_errors_and_units():
    modules = sorted(PACKAGE.glob("*.py"))
    assert len(modules) >= 5
    wrong = [f"{path.name}:{line} imports {name}"
             for path in modules for line, name in _imports(path)
             if name not in ALLOWED and name.split(".")[0] not in sys.stdlib_module_names]
    assert wrong == []


def test_every_module_declares_its_public_names():
    for path in sorted(PACKAGE.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = {target.id for node in tree.body if isinstance(node, ast.Assign)
                 for target in node.targets if isinstance(target, ast.Name)}
        assert "__all__" in names, path.name


def test_the_docs_list_every_field():
    doc = archiver.query.__doc__ or ""
    for name in archiver.query.FIELDS:
        assert f"``{name}:``" in doc, name
    assert "EBNF" in doc
