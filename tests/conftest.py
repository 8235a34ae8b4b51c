"""Shared fixtures: a migrated archive on every backend, stores, configs, the CLI.

Database tests take the ``db_url`` (or ``engine`` / ``store``) fixture and run
once per backend: SQLite always; PostgreSQL and MariaDB when
ARCHIVER_TEST_POSTGRES_URL / ARCHIVER_TEST_MYSQL_URL are set. Under CI (the
``CI`` variable set) those servers are required: missing is a failure.

Each test session creates its own databases and builds them with Alembic
(``upgrade head``), never ``create_all``; each test starts from empty tables.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import delete, insert

from archiver.db import migrate, schema
from archiver.db.engine import create_archive_engine
from archiver.store.ingest import MessageStore
from tests.dbutil import create_database, drop_database

BACKENDS = ["sqlite", "postgresql", "mysql"]
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("template") / "archive.db"
    engine = create_archive_engine(f"sqlite:///{path}")
    migrate.upgrade(engine)
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def _server_databases():
    """Per backend, a session-wide migrated database (created on first use)."""
    made: dict[str, str] = {}
    yield made
    for url in made.values():
        drop_database(url)


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture
def db_url(backend, tmp_path, _sqlite_template, _server_databases) -> str:
    """URL of a migrated, empty archive database on ``backend``."""
    if backend == "sqlite":
        path = tmp_path / "archive.db"
        shutil.copy(_sqlite_template, path)
        return f"sqlite:///{path}"
    url = _server_databases.get(backend)
    if url is None:
        url = create_database(backend)
        engine = create_archive_engine(url)
        migrate.upgrade(engine)
        engine.dispose()
        _server_databases[backend] = url
    _empty_tables(url)
    return url


@pytest.fixture(scope="session")
def _transactional_engines(tmp_path_factory):
    """Per backend, a migrated database no test ever commits to, and its engine."""
    made: dict[str, tuple[str, object]] = {}
    yield made
    for url, engine in made.values():
        engine.dispose()
        if not url.startswith("sqlite"):
            drop_database(url)


@pytest.fixture
def conn(backend, _sqlite_template, _transactional_engines, tmp_path_factory):
    """One unit of work on a migrated archive, rolled back after the test.

    For services that take the caller's connection (the delivery ledger, the
    reading service, audit): isolation by transaction, no table emptying.
    Code that commits on its own (ingest, the collector) needs ``db_url``.
    """
    made = _transactional_engines.get(backend)
    if made is None:
        if backend == "sqlite":
            path = tmp_path_factory.mktemp("transactional") / "archive.db"
            shutil.copy(_sqlite_template, path)
            url = f"sqlite:///{path}"
        else:
            url = create_database(backend)
        engine = create_archive_engine(url)
        if backend != "sqlite":
            migrate.upgrade(engine)
        made = _transactional_engines[backend] = (url, engine)
    connection = made[1].connect()
    transaction = connection.begin()
    try:
        yield connection
    finally:
        transaction.rollback()
        connection.close()


def _empty_tables(url: str) -> None:
    engine = create_archive_engine(url)
    try:
        with engine.begin() as conn:
            for table in reversed(schema.metadata.sorted_tables):
                if table.name != "schema_compat":
                    conn.execute(delete(table))
            # The audit chain's genesis row, as the first migration writes it
            # (a test may have removed it to make appends fail).
            conn.execute(insert(schema.audit_head).values(id=1, entries=0, last_hash="0" * 64))
    finally:
        engine.dispose()


@pytest.fixture
def engine(db_url):
    eng = create_archive_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def store(engine) -> MessageStore:
    return MessageStore(engine)


@pytest.fixture
def fresh_db_url(backend, tmp_path) -> str:
    """An EMPTY database (no schema) on ``backend``, dropped after the test."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    url = create_database(backend)
    yield url
    drop_database(url)


def write_config(directory: Path, db_url: str, extra: str = "") -> Path:
    """A config.toml in ``directory`` using ``db_url``; ``extra`` is appended verbatim."""
    path = directory / "config.toml"
    path.write_text(f'[archive]\ndatabase = "{db_url}"\n{extra}', encoding="utf-8")
    return path


@pytest.fixture
def config_file(tmp_path, db_url) -> Path:
    return write_config(tmp_path, db_url)


class CLIResult:
    def __init__(self, proc: subprocess.CompletedProcess) -> None:
        self.exit_code = proc.returncode
        self.stdout_bytes = proc.stdout
        self.stdout = proc.stdout.decode("utf-8", "replace")
        self.stderr = proc.stderr.decode("utf-8", "replace")

    def json(self):
        import json

        return json.loads(self.stdout)

    def __repr__(self) -> str:
        return f"<exit {self.exit_code}\nstdout: {self.stdout[-2000:]}\nstderr: {self.stderr[-2000:]}>"


def run_cli(*args: str, config: Path | None = None, cwd: Path | None = None, env: dict | None = None,
            input: bytes | None = None, timeout: float = 300) -> CLIResult:
    """Run ``python -m archiver`` in a subprocess, exactly as a user would."""
    argv = [sys.executable, "-m", "archiver"]
    if config is not None:
        argv += ["--config", str(config)]
    argv += list(args)
    full_env = {**os.environ, **(env or {})}
    full_env.pop("ARCHIVER_CONFIG", None) if config is not None else None
    proc = subprocess.run(argv, cwd=cwd, env=full_env, input=input, capture_output=True,
                          timeout=timeout)
    return CLIResult(proc)


@pytest.fixture
def cli():
    return run_cli


# Fail the run if it leaves processes of ours running (issue 7, point 11).
pytest_plugins = ["tests.orphans", "tests.ownership"]
