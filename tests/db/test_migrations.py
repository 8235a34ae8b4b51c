"""The migration chain on every backend: up, down to base, up again; no drift."""

from __future__ import annotations

from sqlalchemy import inspect, text

from archiver.db import migrate
from archiver.db.engine import SCHEMA_REVISION, create_archive_engine, current_revision
from archiver.db.models import Base


def test_schema_revision_constant_is_the_migration_head():
    assert migrate.head_revision() == SCHEMA_REVISION


def test_up_down_up_and_no_drift(fresh_db_url):
    engine = create_archive_engine(fresh_db_url)
    try:
        assert current_revision(engine) is None
        assert migrate.upgrade(engine) == (None, SCHEMA_REVISION)
        tables = set(inspect(engine).get_table_names())
        assert {t.name for t in Base.metadata.sorted_tables} <= tables
        report = migrate.check(engine)
        assert report.ok, report.differences

        migrate.downgrade(engine, "base")
        assert current_revision(engine) is None
        leftover = set(inspect(engine).get_table_names()) - {"alembic_version"}
        assert leftover == set()

        migrate.upgrade(engine)
        assert migrate.check(engine).ok
        with engine.connect() as conn:
            # The audit chain's genesis row exists exactly once after a re-upgrade.
            assert conn.execute(text("SELECT count(*) FROM audit_head")).scalar() == 1
    finally:
        engine.dispose()


def test_check_reports_drift(fresh_db_url):
    engine = create_archive_engine(fresh_db_url)
    try:
        migrate.upgrade(engine)
        with engine.begin() as conn:
            conn.execute(text("DROP INDEX ix_messages_sort_date" if engine.dialect.name != "mysql"
                              else "DROP INDEX ix_messages_sort_date ON messages"))
        report = migrate.check(engine)
        assert not report.ok
        assert any("ix_messages_sort_date" in d for d in report.differences)
    finally:
        engine.dispose()


def test_sqlite_pragmas(tmp_path):
    engine = create_archive_engine(f"sqlite:///{tmp_path / 'a.db'}")
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 30000
    engine.dispose()
