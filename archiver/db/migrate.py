"""Schema management behind ``archiver db upgrade|current|check`` and ``init``.

Alembic is imported here only, and only when a schema command runs: it adds a
quarter of a second to start-up that a collection pass should not pay.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine

from archiver.errors import DatabaseError


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


def _alembic_config(connection=None, metadata=None):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    if connection is not None:
        cfg.attributes["connection"] = connection
    if metadata is not None:
        cfg.attributes["target_metadata"] = metadata
    return cfg


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str | None]:
    """Upgrade the schema; returns (revision before, revision after)."""
    from alembic import command

    from archiver.db.engine import current_revision

    before = current_revision(engine)
    with engine.begin() as conn:
        command.upgrade(_alembic_config(conn), revision)
    return before, current_revision(engine)


def downgrade(engine: Engine, revision: str = "base") -> None:
    """Walk the schema down (tests and emergencies; this destroys data)."""
    from alembic import command

    with engine.begin() as conn:
        command.downgrade(_alembic_config(conn), revision)


@dataclass(frozen=True)
class DriftReport:
    """What ``db check`` found: differences between the models and the live schema."""

    revision: str | None
    head: str
    differences: list[str]

    @property
    def ok(self) -> bool:
        return self.revision == self.head and not self.differences


def check(engine: Engine) -> DriftReport:
    """Compare the live schema with the models (Alembic autogenerate comparison)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from archiver.db.engine import current_revision
    from archiver.db.schema import metadata

    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diffs = compare_metadata(ctx, metadata)
    return DriftReport(current_revision(engine), head_revision(), [_describe(d) for d in diffs])


def _describe(diff) -> str:
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
