"""Units of work: one transaction, passed explicitly to the services.

Services take a :class:`~sqlalchemy.Connection` for the unit of work they are
part of and never open transactions of their own, so a caller can combine
steps that must commit together ("write the audit entry, read the content")
and tests can isolate by transaction. The entry points (CLI commands, the
collector's batches, later the scheduler and web requests) open the units:

* :func:`unit_of_work` — one read-write transaction: commit on success,
  roll back on any error, database errors translated;
* :func:`read_only` — a connection for reads (nothing to commit);
* :func:`run_transaction` — a unit of work that is redone from the start when
  another writer won a unique-key race or the database picked it as a
  deadlock victim (ingest, where two processes may store the same content).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from archiver.db.boundary import database_errors, is_conflict, short_error, translate
from archiver.errors import DatabaseError

__all__ = ["read_only", "run_transaction", "unit_of_work"]

_T = TypeVar("_T")

#: How often a unit of work that lost a race is redone before giving up.
CONFLICT_ATTEMPTS = 5


@contextmanager
def unit_of_work(engine: Engine) -> Iterator[Connection]:
    """One transaction: committed when the block ends, rolled back if it raises."""
    with database_errors(engine), engine.begin() as conn:
        yield conn


@contextmanager
def read_only(engine: Engine) -> Iterator[Connection]:
    """A connection for reads only; whatever the block leaves open is rolled back."""
    with database_errors(engine), engine.connect() as conn:
        yield conn


def run_transaction(engine: Engine, work: Callable[[Connection], _T], *,
                    attempts: int = CONFLICT_ATTEMPTS) -> _T:
    """``work(conn)`` in one transaction, redone after a unique-key race or deadlock.

    ``work`` must be safe to run again from the start: everything it did in a
    failed attempt was rolled back.
    """
    last: SQLAlchemyError | None = None
    for _ in range(attempts):
        try:
            with engine.begin() as conn:
                return work(conn)
        except SQLAlchemyError as exc:
            if not is_conflict(exc):
                raise translate(exc, engine) from exc
            last = exc
    assert last is not None
    raise DatabaseError(
        f"a write to the archive kept colliding with other writers ({attempts} attempts): "
        f"{short_error(last)}; run the command again"
    ) from last
