"""Schema management behind ``archiver db upgrade|current|check`` and ``init``.

Alembic is imported here only, and only when a schema command runs: it adds a
quarter of a second to start-up that a collection pass should not pay.

Locking, timeouts and transactions of a migration run are set up by
``migrations/env.py`` (see its docstring): two nodes upgrading at once are
serialised, the second finds nothing left to do.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from archiver.errors import DatabaseError

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy import MetaData

#: Defaults of the migration session settings (seconds); env.py has the same.
LOCK_TIMEOUT_S = 30
STATEMENT_TIMEOUT_S = 900
MIGRATION_LOCK_WAIT_S = 900


def migrations_dir() -> Path:
    """Where the Alembic scripts are: packaged in a wheel, or the source tree's migrations/."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "_migrations", here.parent / "migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise DatabaseError(
        f"cannot find the schema migrations (looked in {here / '_migrations'} and "
        f"{here.parent / 'migrations'}); reinstall archiver"
    )


def _alembic_config(
    connection: Connection | None = None,
    metadata: MetaData | None = None,
    settings: dict[str, float] | None = None,
) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    if connection is not None:
        cfg.attributes["connection"] = connection
    if metadata is not None:
        cfg.attributes["target_metadata"] = metadata
    cfg.attributes.update(settings or {})
    return cfg


def revisions() -> list[str]:
    """Every revision id, oldest first."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_alembic_config())
    return [s.revision for s in reversed(list(script.walk_revisions()))]


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None, "migrations/versions is empty"
    return head


def upgrade(
    engine: Engine,
    revision: str = "head",
    *,
    lock_timeout: float = LOCK_TIMEOUT_S,
    statement_timeout: float = STATEMENT_TIMEOUT_S,
    migration_lock_wait: float = MIGRATION_LOCK_WAIT_S,
) -> tuple[str | None, str | None]:
    """Upgrade the schema; returns (revision before, revision after).

    A database already newer than this archiver is left alone: returned as
    is when it says this code may still use it, else refused with "upgrade
    archiver" (Alembic would only say it cannot find the revision).
    """
    from alembic import command

    from archiver.db.boundary import describe_url
    from archiver.db.engine import SchemaState, current_revision, schema_status

    status = schema_status(engine)
    if status.state is SchemaState.NEWER_COMPATIBLE:
        return status.revision, status.revision
    if status.state in (SchemaState.NEWER_INCOMPATIBLE, SchemaState.UNKNOWN):
        raise DatabaseError(status.problem(describe_url(str(engine.url))) or "")
    if status.state is SchemaState.MISSING:
        _refuse_foreign_tables(engine)
    settings = {"lock_timeout": lock_timeout, "statement_timeout": statement_timeout,
                "migration_lock_wait": migration_lock_wait}
    with _translated(engine, "upgrade"), engine.connect() as conn:
        cfg = _alembic_config(conn, settings=settings)
        command.upgrade(cfg, revision)
    # As env.py read it once it held the migration lock: a node that waited
    # for another's run reports (head, head), nothing done.
    before: str | None = cfg.attributes.get("revision_before", status.revision)
    return before, current_revision(engine)


def _refuse_foreign_tables(engine: Engine) -> None:
    """An archive is created only in an empty database: tables of something else
    would collide half-way (MariaDB cannot roll DDL back), leaving half a schema."""
    from sqlalchemy import inspect

    from archiver.db.boundary import database_errors, describe_url
    from archiver.db.schema import metadata

    with database_errors(engine):
        tables = sorted(t for t in inspect(engine).get_table_names()
                        if t != "alembic_version" and not t.startswith("sqlite_"))
    # Only tables of ours: a first upgrade that stopped half-way (MariaDB commits
    # each CREATE TABLE); upgrading again finishes it.
    if tables and not set(tables) <= set(metadata.tables):
        shown = ", ".join(tables[:5]) + (", ..." if len(tables) > 5 else "")
        raise DatabaseError(
            f"the database {describe_url(str(engine.url))} is not empty ({len(tables)} "
            f"table(s): {shown}) and is not an archiver archive; point archive.database at "
            "an empty database (nothing was changed)")


def downgrade(engine: Engine, revision: str = "base") -> None:
    """Walk the schema down (tests and emergencies; this destroys data)."""
    from alembic import command

    with _translated(engine, "downgrade"), engine.connect() as conn:
        command.downgrade(_alembic_config(conn), revision)


@contextmanager
def _translated(engine: Engine, what: str) -> Iterator[None]:
    """Turn what a migration run can fail with into a DatabaseError saying what to do."""
    from archiver.db.boundary import describe_url, short_error, translate

    try:
        yield
    except DatabaseError:
        raise
    except TimeoutError as exc:  # env.py: another node holds the migration lock
        raise DatabaseError(f"schema {what} of {describe_url(str(engine.url))}: {exc}") from exc
    except RuntimeError as exc:  # a migration refusing the data it found
        raise DatabaseError(f"schema {what} of {describe_url(str(engine.url))}: {exc}") from exc
    except SQLAlchemyError as exc:
        if not (isinstance(exc, DBAPIError) and _is_timeout(exc)):
            raise translate(exc, engine) from exc
        raise DatabaseError(
            f"schema {what} of {describe_url(str(engine.url))} stopped: {short_error(exc)}. "
            "A migration waits only briefly for locks so that it does not stall the archive: "
            "run it again when no long transaction (a large import, a collect run) holds "
            "the tables"
        ) from exc


def _is_timeout(exc: DBAPIError) -> bool:
    orig = exc.orig
    sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if sqlstate in ("55P03", "57014"):  # PostgreSQL lock_not_available, query_canceled
        return True
    code = orig.args[0] if orig is not None and orig.args else None
    # MariaDB/MySQL: lock wait timeout, metadata lock timeout, max_statement_time.
    return code in (1205, 1969, 3024)


@dataclass(frozen=True)
class DriftReport:
    """What ``db check`` found: differences between the models and the live schema."""

    revision: str | None
    head: str
    differences: list[str]

    @property
    def ok(self) -> bool:
        return self.revision == self.head and not self.differences


def unmodelled(name: str | None) -> bool:
    """Objects ``db check`` ignores: not declared in archiver.db.schema on purpose.

    Full-text search machinery (tables, shadow tables, columns, indexes,
    triggers named ``fts_*``, ``*_fts`` or ``*_fts_*``) is backend-specific
    and built by its own migrations; ``sqlite_*`` are SQLite's own tables.
    """
    if not name:
        return False
    name = name.lower()
    return name.startswith(("fts_", "sqlite_")) or name.endswith("_fts") or "_fts_" in name


def _include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    if type_ == "table" or type_ == "index" or type_ == "column":
        return not unmodelled(name)
    return True


def _include_object(obj: Any, name: str | None, type_: str, reflected: bool,
                    compare_to: Any) -> bool:
    if unmodelled(name):
        return False
    table = getattr(obj, "table", None)
    return not unmodelled(getattr(table, "name", None))


def check(engine: Engine) -> DriftReport:
    """Compare the live schema with archiver.db.schema (Alembic autogenerate comparison)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from archiver.db.engine import current_revision
    from archiver.db.schema import metadata

    with _translated(engine, "check"), engine.connect() as conn:
        ctx = MigrationContext.configure(
            conn,
            opts={"compare_type": True, "include_name": _include_name,
                  "include_object": _include_object},
        )
        diffs = compare_metadata(ctx, metadata)
    return DriftReport(current_revision(engine), head_revision(), [_describe(d) for d in diffs])


def _describe(diff: Any) -> str:
    if isinstance(diff, list):  # column modifications come grouped
        return "; ".join(_describe(d) for d in diff)
    kind, *rest = diff
    names = []
    for item in rest:
        name = getattr(item, "name", None)
        table = getattr(getattr(item, "table", None), "name", None)
        if name:
            names.append(f"{table}.{name}" if table and table != name else str(name))
        elif isinstance(item, str):
            names.append(item)
    return f"{kind} {' '.join(names)}".strip()


__all__ = [
    "DriftReport",
    "LOCK_TIMEOUT_S",
    "MIGRATION_LOCK_WAIT_S",
    "STATEMENT_TIMEOUT_S",
    "check",
    "downgrade",
    "head_revision",
    "migrations_dir",
    "revisions",
    "unmodelled",
    "upgrade",
]
