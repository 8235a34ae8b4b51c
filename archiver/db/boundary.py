"""The database error boundary: SQLAlchemy and DBAPI errors become ours here.

Everything that talks to the archive database runs inside
:func:`database_errors` (the units of work in :mod:`archiver.db.unit` do it
for their callers), so services and the CLI only ever see
:class:`~archiver.errors.DatabaseError` and
:class:`~archiver.errors.DatabaseUnavailable`, with a message that names the
database (password masked) and says what to do. Nothing above this module
tests an exception's module or a driver's error code.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, SQLAlchemyError

from archiver.errors import DatabaseError, DatabaseUnavailable

__all__ = [
    "database_errors",
    "describe_url",
    "is_conflict",
    "short_error",
    "translate",
]

#: MySQL/MariaDB: deadlock, lock wait timeout. PostgreSQL: deadlock, serialization failure.
_MYSQL_CONFLICTS = (1205, 1213)
_PG_CONFLICTS = ("40P01", "40001")
#: Integrity errors another writer can cause: a unique key it inserted first, a row it
#: removed under our foreign key. PostgreSQL SQLSTATEs; MySQL error numbers.
_PG_RACES = ("23505", "23503")
_MYSQL_RACES = (1062, 1451, 1452)
#: MySQL client errors meaning "no connection": can't connect, server gone, lost connection.
_MYSQL_GONE = (2002, 2003, 2005, 2006, 2013, 2055)


def describe_url(url: str | URL) -> str:
    """The URL as safe to show: password hidden."""
    return make_url(url).render_as_string(hide_password=True)


def short_error(exc: BaseException) -> str:
    """The first line of a database error, without SQLAlchemy's boilerplate."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip()
    return text.splitlines()[0][:300] if text else type(orig).__name__


def is_conflict(exc: BaseException) -> bool:
    """A race with another writer (a unique key, a foreign key) or a deadlock:
    redoing the whole transaction can succeed. A CHECK or NOT NULL violation
    is a bug or bad data, never a race: redoing it cannot help."""
    if not isinstance(exc, (IntegrityError, OperationalError)):
        return False
    orig = exc.orig
    code = orig.args[0] if orig is not None and orig.args else None
    sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if isinstance(exc, IntegrityError):
        text = str(orig)
        return (sqlstate in _PG_RACES or code in _MYSQL_RACES
                or text.startswith(("UNIQUE constraint failed", "FOREIGN KEY constraint failed")))
    return code in _MYSQL_CONFLICTS or sqlstate in _PG_CONFLICTS


def _is_unavailable(exc: SQLAlchemyError) -> bool:
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if not isinstance(exc, OperationalError):
        return False
    orig = exc.orig
    code = orig.args[0] if orig is not None and orig.args else None
    if code in _MYSQL_GONE:
        return True
    msg = str(orig).lower()
    return any(word in msg for word in (
        "connection refused", "could not connect", "can't connect", "server closed the connection",
        "connection is closed", "terminating connection", "no route to host", "timeout expired",
        "connection timed out", "connection reset", "the database system is starting up",
        "the database system is shutting down",
    ))


def _hint(exc: SQLAlchemyError) -> str:
    msg = str(getattr(exc, "orig", exc)).lower()
    if ("password authentication failed" in msg or "access denied" in msg
            or ("role" in msg and "does not exist" in msg)):
        return (" (check the user name and password in archive.database; a password with"
                " special characters must be percent-encoded, @ as %40)")
    if "does not exist" in msg and "database" in msg or "unknown database" in msg:
        return (" (archiver does not create databases on a server: create it first, e.g. "
                "`createdb NAME` or `CREATE DATABASE NAME CHARACTER SET utf8mb4`)")
    if _is_unavailable(exc):
        return " (is the database server running, and are host and port right?)"
    if "readonly database" in msg or "read-only" in msg:
        return " (the archive is read-only here: check the file's and folder's permissions)"
    if "disk" in msg and "full" in msg:
        return " (the disk is full: free space, then run again; nothing uncommitted was deleted)"
    if "unable to open database file" in msg:
        return " (check that the archive's folder exists and is writable)"
    if "no such table" in msg or "doesn't exist" in msg or "undefinedtable" in msg:
        return (" (the schema is incomplete or damaged: `archiver db check` names what"
                " differs from this archiver's tables)")
    return ""


def translate(exc: SQLAlchemyError, where: str | URL | Engine | Connection | None = None,
              ) -> DatabaseError:
    """Our error for a SQLAlchemy/DBAPI error: names the database and what to do."""
    if isinstance(where, Engine):
        where = where.url
    elif isinstance(where, Connection):
        where = where.engine.url
    place = f"the archive database {describe_url(where)}" if where is not None else "the archive database"
    kind = DatabaseUnavailable if _is_unavailable(exc) else DatabaseError
    verb = "cannot reach" if kind is DatabaseUnavailable else "error in"
    return kind(f"{verb} {place}: {short_error(exc)}{_hint(exc)}")


@contextmanager
def database_errors(where: str | URL | Engine | Connection | None = None) -> Iterator[None]:
    """Translate SQLAlchemy errors raised inside the block (``raise ... from exc``)."""
    try:
        yield
    except SQLAlchemyError as exc:
        raise translate(exc, where) from exc
