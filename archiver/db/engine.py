"""Engines for the archive database, and the schema revision they expect.

There is no module-level engine: entry points create one from the config and
pass it explicitly; units of work on it are in :mod:`archiver.db.unit`.
"""

from __future__ import annotations

import enum
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError, ProgrammingError, SQLAlchemyError

from archiver.db.boundary import describe_url, translate
from archiver.errors import DatabaseError

#: The Alembic revision this code expects (``migrations/versions``). A test
#: checks it equals the migration head, so a new migration must bump it.
#:
#: The compatibility window, so that nodes can be upgraded one at a time:
#: revision ids are four-digit sequence numbers (a test enforces it), so
#: "older" and "newer" need no Alembic. Since 0002 each migration records in
#: the one-row ``schema_compat`` table the oldest code revision that can still
#: run against the schema it leaves (an additive migration keeps the value it
#: found; one that drops or redefines something older code uses sets its own
#: revision). This code runs against its own revision, and against a newer
#: one whose ``min_code_revision`` is not after SCHEMA_REVISION. So: run
#: ``archiver db upgrade`` from one node, then upgrade the others' code.
SCHEMA_REVISION = "0003"

#: How long a SQLite writer waits for another writer before giving up (ms).
SQLITE_BUSY_TIMEOUT_MS = 30_000


def normalize_url(url: str) -> str:
    """Pick our drivers when a URL names only the backend."""
    u = make_url(url)
    backend = u.get_backend_name()
    if u.drivername == "postgresql":
        u = u.set(drivername="postgresql+psycopg")
    elif u.drivername in ("mysql", "mariadb"):
        u = u.set(drivername=f"{backend}+pymysql")
    if backend in ("mysql", "mariadb") and "charset" not in u.query:
        u = u.update_query_dict({"charset": "utf8mb4"})
    return u.render_as_string(hide_password=False)


def create_archive_engine(url: str, **kwargs: Any) -> Engine:
    """An engine with the settings the lose-nothing rule needs on each backend.

    SQLite: WAL (readers do not block the collector), foreign keys on, a busy
    timeout, and ``synchronous=FULL`` so a commit is on disk before the
    collector sends DELE for what it stored. PostgreSQL and InnoDB commit
    durably by default (``synchronous_commit``, ``innodb_flush_log_at_trx_commit``).
    """
    url = normalize_url(url)
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        kwargs.setdefault("connect_args", {}).setdefault("timeout", SQLITE_BUSY_TIMEOUT_MS / 1000)
    else:
        kwargs.setdefault("pool_pre_ping", True)
    engine = create_engine(url, **kwargs)
    if backend == "sqlite":
        event.listen(engine, "connect", _sqlite_on_connect)
    return engine


def _sqlite_on_connect(dbapi_connection: Any, _record: object) -> None:
    cursor = dbapi_connection.cursor()
    try:
        # journal_mode is persistent in the file; the others are per connection.
        _sqlite_wal(cursor)
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    finally:
        cursor.close()


def _sqlite_wal(cursor: Any) -> None:
    """Switch the file to WAL once. Two processes opening a new file at once may
    both try; SQLite answers the loser "database is locked" at once, without its
    busy handler (a lock upgrade it will not wait for), so wait here instead."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            if cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def current_revision(engine: Engine) -> str | None:
    """The schema revision stamped in the database, or None for an empty one."""
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except (OperationalError, ProgrammingError) as exc:
        if _is_missing_table(exc):
            return None
        raise _unusable(engine, exc) from exc
    except SQLAlchemyError as exc:
        raise _unusable(engine, exc) from exc


class SchemaState(enum.Enum):
    """How the database's schema revision relates to :data:`SCHEMA_REVISION`."""

    MISSING = "missing"  # no archiver schema at all
    CURRENT = "current"
    OLDER = "older"  # `archiver db upgrade`
    NEWER_COMPATIBLE = "newer-compatible"  # usable: the database says so
    NEWER_INCOMPATIBLE = "newer-incompatible"  # upgrade archiver
    UNKNOWN = "unknown"  # not a revision id of ours


@dataclass(frozen=True)
class SchemaStatus:
    """The revision found, what it means for this code, and what to do about it."""

    revision: str | None
    state: SchemaState
    #: From ``schema_compat``, read only for a newer revision.
    min_code_revision: str | None = None

    @property
    def usable(self) -> bool:
        return self.state in (SchemaState.CURRENT, SchemaState.NEWER_COMPATIBLE)

    def problem(self, where: str) -> str | None:
        """Why this code must not use the database ``where``, and what to do; None if usable."""
        rev, ours = self.revision, SCHEMA_REVISION
        if self.state is SchemaState.MISSING:
            return (f"the archive database {where} has no archiver schema yet; "
                    "run `archiver init` or `archiver db upgrade`")
        if self.state is SchemaState.OLDER:
            return (f"the archive database {where} is at schema revision {rev}, this archiver "
                    f"needs {ours}; run `archiver db upgrade` (make a backup first)")
        if self.state is SchemaState.NEWER_INCOMPATIBLE:
            needs = (f"it needs archiver code of schema {self.min_code_revision} or later"
                     if self.min_code_revision else "it names no older archiver that may use it")
            return (f"this archive ({where}, schema {rev}) is newer than this archiver "
                    f"(expects {ours}) and {needs}: upgrade archiver on this node")
        if self.state is SchemaState.UNKNOWN:
            return (f"the archive database {where} is at schema revision {rev!r}, which this "
                    f"archiver (expects {ours}) does not know: use the archiver release that "
                    "migrated it")
        return None


def classify_revision(revision: str | None, min_code_revision: str | None = None,
                      expected: str = SCHEMA_REVISION) -> SchemaState:
    """Where ``revision`` (and, for a newer one, its ``min_code_revision``) puts this code."""
    if revision is None:
        return SchemaState.MISSING
    if revision == expected:
        return SchemaState.CURRENT
    found, ours = _revision_number(revision), _revision_number(expected)
    if found is None or ours is None:
        return SchemaState.UNKNOWN
    if found < ours:
        return SchemaState.OLDER
    oldest = _revision_number(min_code_revision) if min_code_revision else None
    if oldest is not None and oldest <= ours:
        return SchemaState.NEWER_COMPATIBLE
    return SchemaState.NEWER_INCOMPATIBLE


def schema_status(engine: Engine) -> SchemaStatus:
    """The database's revision against this code's (one query; two for a newer schema)."""
    revision = current_revision(engine)
    state = classify_revision(revision)
    if state not in (SchemaState.NEWER_INCOMPATIBLE, SchemaState.NEWER_COMPATIBLE):
        return SchemaStatus(revision, state)
    oldest = _min_code_revision(engine)
    return SchemaStatus(revision, classify_revision(revision, oldest), oldest)


def require_current_schema(engine: Engine) -> SchemaStatus:
    """Refuse to work on a database this code cannot use (see :data:`SCHEMA_REVISION`).

    Accepted: this code's revision, or a newer one whose ``schema_compat``
    row says this code may still use it. Runs at every command start: one
    query in the usual case, no Alembic.
    """
    missing = sqlite_file_missing(engine.url.render_as_string(hide_password=False))
    if missing:
        raise DatabaseError(
            f"there is no archive at {missing} yet; run `archiver init` to create it "
            "(or fix archive.database in config.toml)"
        )
    status = schema_status(engine)
    problem = status.problem(describe_url(str(engine.url)))
    if problem:
        raise DatabaseError(problem)
    return status


def _revision_number(revision: str) -> int | None:
    return int(revision) if len(revision) == 4 and revision.isdigit() else None


def _min_code_revision(engine: Engine) -> str | None:
    try:
        with engine.connect() as conn:
            value = conn.execute(
                text("SELECT min_code_revision FROM schema_compat WHERE id = 1")
            ).scalar()
    except (OperationalError, ProgrammingError) as exc:
        if _is_missing_table(exc):
            return None
        raise _unusable(engine, exc) from exc
    return str(value) if value is not None else None


def _unusable(engine: Engine, exc: SQLAlchemyError) -> DatabaseError:
    return translate(exc, engine)


def _is_missing_table(exc: Exception) -> bool:
    """Only "the alembic_version table is missing", never "the database is missing"."""
    orig = getattr(exc, "orig", exc)
    msg = str(orig).lower()
    return (
        "no such table" in msg  # SQLite
        or type(orig).__name__ == "UndefinedTable"  # PostgreSQL
        or (getattr(orig, "args", [None])[0] == 1146)  # MySQL: table doesn't exist
    )


def sqlite_file_missing(url: str) -> str | None:
    """The path of a SQLite archive file that does not exist yet, else None.

    Read-only commands check this first: connecting would create an empty file.
    """
    u = make_url(url)
    if u.get_backend_name() != "sqlite" or u.database in (None, "", ":memory:"):
        return None
    from pathlib import Path

    return None if Path(u.database).exists() else u.database


__all__ = [
    "SCHEMA_REVISION",
    "SQLITE_BUSY_TIMEOUT_MS",
    "SchemaState",
    "SchemaStatus",
    "classify_revision",
    "create_archive_engine",
    "current_revision",
    "normalize_url",
    "require_current_schema",
    "schema_status",
    "sqlite_file_missing",
]
