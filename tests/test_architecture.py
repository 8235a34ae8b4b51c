"""The code map's rules, checked on the source (README "Code map").

* dependencies point one way: errors <- config <- db <- services <- entry points;
* only ``store/deliveries.py`` writes the deliveries table;
* only the collection pass (``Collector._delete_on_server``) sends DELE;
* every read of message content goes through ``store/reading.py``
  (``verify`` reads content only to hash it);
* nothing installed imports ``tests``; every public module states ``__all__``.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "archiver"

#: Layers, lowest first. A module may import only from its own layer or below.
LAYERS = [
    {"errors", "units"},
    {"config", "query"},
    {"db"},
    {"store", "parsing", "mailfiles", "audit", "collect", "retention", "search", "importer",
     "status", "verify"},
    {"scheduler", "cli", "web", "demo", "ui", "__main__"},
]
#: Pure modules that sit below config although they live in an entry point's package.
PURE = {"archiver.scheduler.cron"}


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def _name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _layer(module: str) -> int:
    if module in PURE:
        return 0
    top = module.split(".")[1] if module.count(".") else ""
    for i, layer in enumerate(LAYERS):
        if top in layer:
            return i
    raise AssertionError(f"{module}: not placed in a layer of tests/test_architecture.py")


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{a.name}") for a in node.names
                      if node.module == "archiver"]
    return found


def test_dependencies_point_one_way():
    wrong = []
    for path in _modules():
        me = _name(path)
        if me == "archiver":
            continue
        for line, target in _imports(path):
            if target.startswith("tests"):
                wrong.append(f"{me}:{line} imports {target} (nothing installed imports tests)")
            if not target.startswith("archiver.") or target == "archiver.__version__":
                continue
            if target.split(".")[1] == me.split(".")[1]:
                continue  # within one package
            if _layer(target) > _layer(me):
                wrong.append(f"{me}:{line} imports {target}, which is above it")
    assert wrong == []


def _calls(path: Path, names: set[str], on: str | None = None) -> list[tuple[str, int]]:
    """(function, line) of calls to methods/functions named ``names`` in ``path``
    (with ``on``: only called as ``on.name(...)`` or as a bare ``name(...)``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = []
    for func in ast.walk(tree):
        if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(func):
            if isinstance(node, ast.Call):
                callee = node.func
                name = callee.attr if isinstance(callee, ast.Attribute) else getattr(
                    callee, "id", None)
                if (on is not None and isinstance(callee, ast.Attribute)
                        and getattr(callee.value, "id", None) != on):
                    continue
                if name in names:
                    out.append((func.name, node.lineno))
    return out


def _deliveries_writes(path: Path) -> list[int]:
    """Lines that write the deliveries table, however the table is named locally:
    ``insert(T)``, ``update(T)``, ``delete(T)``, ``T.insert()``, ``T.update()``,
    ``T.delete()`` where T is ``schema.deliveries`` or a name bound to it."""
    tree = ast.parse(path.read_text(encoding="utf-8"))

    def is_table(node: ast.AST) -> bool:
        return isinstance(node, ast.Attribute) and node.attr == "deliveries" and isinstance(
            node.value, ast.Name) and node.value.id == "schema"

    aliases = set()
    for node in ast.walk(tree):  # d = schema.deliveries; d, m = schema.deliveries, ...
        if isinstance(node, ast.Assign):
            pairs = []
            for target in node.targets:
                if isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple):
                    pairs += zip(target.elts, node.value.elts, strict=False)
                else:
                    pairs.append((target, node.value))
            aliases |= {t.id for t, v in pairs if isinstance(t, ast.Name) and is_table(v)}
        elif isinstance(node, ast.ImportFrom) and node.module == "archiver.db.schema":
            aliases |= {a.asname or a.name for a in node.names if a.name == "deliveries"}

    def table(node: ast.AST) -> bool:
        return is_table(node) or (isinstance(node, ast.Name) and node.id in aliases)

    lines = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        if isinstance(f, ast.Name) and f.id in ("insert", "update", "delete") and node.args \
                and table(node.args[0]):
            lines.append(node.lineno)
        if isinstance(f, ast.Attribute) and f.attr in ("insert", "update", "delete") \
                and table(f.value):
            lines.append(node.lineno)
    return lines


def test_only_the_delivery_ledger_writes_deliveries():
    offenders = [f"{p.relative_to(PACKAGE)}:{line}" for p in _modules()
                 if p != PACKAGE / "store" / "deliveries.py" for line in _deliveries_writes(p)]
    assert offenders == []


def test_the_deliveries_guard_sees_every_spelling(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from archiver.db import schema\n"
        "from archiver.db.schema import deliveries as dl\n"
        "d = schema.deliveries\n"
        "a, b = schema.deliveries, schema.messages\n"
        "insert(schema.deliveries)\n"
        "d.update()\n"
        "b.update()\n"  # messages: fine
        "a.delete()\n"
        "update(dl)\n",
        encoding="utf-8")
    assert _deliveries_writes(sample) == [5, 6, 8, 9]
    # The ledger itself writes, so the guard does find its statements there.
    assert _deliveries_writes(PACKAGE / "store" / "deliveries.py")


def test_the_run_time_guard_stops_a_write_from_another_module(engine):
    """tests/ownership.py fails any deliveries write sent from outside the ledger."""
    from sqlalchemy import text

    code = compile("conn.execute(text('DELETE FROM deliveries'))",
                   str(PACKAGE / "status.py"), "exec")
    with engine.connect() as conn:
        with pytest.raises(AssertionError, match="only archiver/store/deliveries.py"):
            exec(code, {"conn": conn, "text": text})
        conn.execute(text("DELETE FROM deliveries"))  # test code itself may


def test_only_the_collection_pass_sends_dele():
    senders = []
    for path in _modules():
        if path == PACKAGE / "collect" / "pop3.py":
            continue  # the protocol client defines DELE
        senders += [(path.name, fn) for fn, _ in _calls(path, {"dele", "dele_many"})]
        # ... and nobody speaks the command past the client's methods.
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, bytes) and \
                    node.value.upper().startswith(b"DELE"):
                senders.append((path.name, f"a DELE command at line {node.lineno}"))
    assert senders == [("collector.py", "_delete_on_server")]


def test_every_content_read_goes_through_the_reading_service():
    readers = []
    for path in _modules():
        if path.parent.name == "store" and path.name in ("content.py", "reading.py"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = {"content"}  # the module, however it is imported
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "archiver.store":
                names |= {a.asname or a.name for a in node.names if a.name == "content"}
            elif isinstance(node, ast.ImportFrom) and node.module == "archiver.store.content":
                readers += [f"{path.relative_to(PACKAGE)}: imports {a.name}"
                            for a in node.names if a.name in READS]
        for alias in names:
            for fn, _ in _calls(path, READS, on=alias):
                readers.append(f"{path.relative_to(PACKAGE)}:{fn}")
    assert [r for r in readers if r not in INTERNAL_READS] == []


READS = {"iter_content", "read_verified", "read_bytes"}
#: Reads by the archive itself whose bytes never leave it (no access to audit).
INTERNAL_READS = {
    # compares an archived message with the one just received (a server's rewrite?)
    "store/ingest.py:_rewrite_of",
}


PUBLIC = [_name(p) for p in _modules()
          if not p.name.startswith("_") and p.name != "__main__.py"
          and not _name(p).endswith(("sample_config", "cli"))]


@pytest.mark.parametrize("module", [m for m in PUBLIC if m != "archiver"])
def test_public_surface_is_declared(module):
    mod = importlib.import_module(module)
    declared = getattr(mod, "__all__", None)
    assert declared is not None, f"{module} has no __all__"
    if hasattr(mod, "__path__"):  # a package: names are attributes or submodules
        for name in declared:
            if not hasattr(mod, name):
                importlib.import_module(f"{module}.{name}")
        return
    missing = [name for name in declared if not hasattr(mod, name)]
    assert missing == [], f"{module}.__all__ names what it lacks: {missing}"
    assert len(set(declared)) == len(declared)
