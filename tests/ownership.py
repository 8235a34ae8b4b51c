"""A pytest plugin: only the delivery ledger writes ``deliveries``, checked at run time.

Every SQL statement any test sends through SQLAlchemy is looked at; an
INSERT, UPDATE or DELETE on ``deliveries`` must come from
``archiver/store/deliveries.py``. The innermost frame of ours decides:
the ledger, a migration or test code itself may write; any other module of
the installed package fails the statement (and so the test) on the spot.
This complements the source check in tests/test_architecture.py, which
cannot see every way of spelling a statement.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

REPO = Path(__file__).resolve().parent.parent
PACKAGE = str(REPO / "archiver") + "/"
LEDGER = str(REPO / "archiver" / "store" / "deliveries.py")
ALLOWED = (str(REPO / "migrations") + "/", str(REPO / "tests") + "/")
_WRITE = re.compile(r"\s*(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+[`\"]?deliveries\b", re.I)


def _writer_of_deliveries(statement: str) -> str | None:
    """The module that sent ``statement`` if it writes deliveries and may not; else None."""
    if not _WRITE.match(statement):
        return None
    frame = sys._getframe(2)
    while frame is not None:
        name = frame.f_code.co_filename
        if name == LEDGER or name.startswith(ALLOWED):
            return None
        if name.startswith(PACKAGE):
            return f"{Path(name).relative_to(REPO)}:{frame.f_lineno}"
        frame = frame.f_back  # type: ignore[assignment]
    return None


def _check(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
    offender = _writer_of_deliveries(statement)
    if offender is not None:
        raise AssertionError(
            f"{offender} writes the deliveries table; only archiver/store/deliveries.py may "
            f"(README, Code map): {statement.split(chr(10))[0][:120]}")


def pytest_configure(config: Any) -> None:
    event.listen(Engine, "before_cursor_execute", _check)


def pytest_unconfigure(config: Any) -> None:
    if event.contains(Engine, "before_cursor_execute", _check):
        event.remove(Engine, "before_cursor_execute", _check)
