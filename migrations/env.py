"""Alembic environment for the archive.

Self-contained on purpose: it imports nothing from archiver. The caller
(``archiver db ...`` via archiver.db.migrate) hands over an open connection
that is not in a transaction and, for ``db check``, the metadata through
``config.attributes``. Run by hand, ``alembic -x url=sqlite:///archive.db
upgrade head`` works too (``-x lock_timeout=30 -x statement_timeout=900
-x migration_lock_wait=900``, in seconds, override the defaults below).

Every migration session, on every backend:

* **One migrator at a time.** Several nodes may run ``archiver db upgrade``
  at once during a rollout. PostgreSQL: a session advisory lock on a fixed
  key (``pg_try_advisory_lock``, polled; advisory locks are per database);
  MariaDB/MySQL: ``GET_LOCK`` on a name derived from the database name (those
  locks are server-wide). Taken before Alembic reads the current revision and
  released after the last migration committed, so the second node waits,
  then finds nothing to do. SQLite: the whole run is one ``BEGIN IMMEDIATE``
  transaction, which serialises writers the same way (they wait up to the
  busy timeout).
* **Timeouts.** A DDL statement that queues behind a long transaction for a
  table lock blocks every later query on that table, so lock waits are short
  (``lock_timeout``; MariaDB ``lock_wait_timeout`` for metadata locks and
  ``innodb_lock_wait_timeout`` for rows) and fail with a message saying to
  retry; a runaway statement is stopped (``statement_timeout``; MariaDB
  ``max_statement_time``). Session settings are reset afterwards.
* **Transactions.** PostgreSQL: every revision in its own transaction, so a
  failure leaves the database at the last good revision. MariaDB commits
  DDL implicitly anyway. SQLite: pysqlite does not open transactions for DDL
  by itself, so env.py does (one for the run), with foreign keys switched off
  for it: batch mode rebuilds a table by DROP + RENAME, and with foreign keys
  on, dropping ``messages`` would cascade into ``message_chunks``.
  ``PRAGMA foreign_key_check`` runs before the commit instead.
"""

import logging
import time
from contextlib import contextmanager

from alembic import context
from sqlalchemy import create_engine, text

config = context.config
target_metadata = config.attributes.get("target_metadata")
log = logging.getLogger("alembic.env")

#: Seconds; overridable through config.attributes or ``-x name=seconds``.
DEFAULTS = {
    # How long one statement may wait for a table or row lock.
    "lock_timeout": 30,
    # How long one statement may run (the data steps of a large archive).
    "statement_timeout": 900,
    # How long to wait for another node's migration run to finish.
    "migration_lock_wait": 900,
}

#: The PostgreSQL advisory lock key of migration runs (any fixed bigint;
#: this one spells "archmigr").
PG_LOCK_KEY = 0x617263686D696772


class MigrationLockTimeout(TimeoutError):
    """Another migration run held the lock for longer than migration_lock_wait."""


def _setting(name: str) -> float:
    x_args = context.get_x_argument(as_dictionary=True)
    value = config.attributes.get(name, x_args.get(name, DEFAULTS[name]))
    return float(value)


def _is_mariadb(connection) -> bool:
    return bool(getattr(connection.dialect, "is_mariadb", False))


def _exec(connection, sql: str, **params):
    return connection.execute(text(sql), params)


@contextmanager
def _postgresql_session(connection):
    deadline = time.monotonic() + _setting("migration_lock_wait")
    announced = False
    while not _exec(connection, "SELECT pg_try_advisory_lock(:k)", k=PG_LOCK_KEY).scalar():
        connection.commit()
        if time.monotonic() > deadline:
            raise MigrationLockTimeout(
                f"another `archiver db upgrade` has been migrating this database for more than "
                f"{_setting('migration_lock_wait'):.0f} s; let it finish and run it again"
            )
        if not announced:
            log.info("waiting for another migration run to finish")
            announced = True
        time.sleep(0.2)
    try:
        _exec(connection, f"SET lock_timeout = {int(_setting('lock_timeout') * 1000)}")
        _exec(connection, f"SET statement_timeout = {int(_setting('statement_timeout') * 1000)}")
        connection.commit()
        yield
    finally:
        _cleanup(connection, "RESET lock_timeout", "RESET statement_timeout",
                 f"SELECT pg_advisory_unlock({PG_LOCK_KEY})")


@contextmanager
def _mysql_session(connection):
    # GET_LOCK names are server-wide (64 characters at most): one per database.
    name = "CONCAT('archiver.migrate.', MD5(DATABASE()))"
    wait = int(_setting("migration_lock_wait"))
    got = _exec(connection, f"SELECT GET_LOCK({name}, {wait})").scalar()
    connection.commit()
    if got != 1:
        raise MigrationLockTimeout(
            f"another `archiver db upgrade` has been migrating this database for more than "
            f"{wait} s; let it finish and run it again"
        )
    resets = ["SET SESSION lock_wait_timeout = DEFAULT",
              "SET SESSION innodb_lock_wait_timeout = DEFAULT"]
    try:
        lock_wait = max(1, int(_setting("lock_timeout")))
        _exec(connection, f"SET SESSION lock_wait_timeout = {lock_wait}")
        _exec(connection, f"SET SESSION innodb_lock_wait_timeout = {lock_wait}")
        if _is_mariadb(connection):
            _exec(connection, f"SET SESSION max_statement_time = {_setting('statement_timeout')}")
            resets.append("SET SESSION max_statement_time = DEFAULT")
        connection.commit()
        yield
    finally:
        _cleanup(connection, *resets, f"SELECT RELEASE_LOCK({name})")


@contextmanager
def _sqlite_session(connection):
    foreign_keys = _exec(connection, "PRAGMA foreign_keys").scalar()
    connection.commit()
    # Only effective outside a transaction, hence before BEGIN.
    connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
    connection.commit()  # ends SQLAlchemy's autobegun (empty) transaction
    try:
        with connection.begin():
            # Take the write lock now, before Alembic reads the revision.
            connection.exec_driver_sql("BEGIN IMMEDIATE")
            yield
            problems = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if problems:
                raise RuntimeError(
                    f"the migration left {len(problems)} rows whose foreign keys point nowhere "
                    f"(first: {tuple(problems[0])}); nothing was changed"
                )
    finally:
        if connection.in_transaction():
            connection.rollback()
        connection.exec_driver_sql(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
        connection.commit()


def _cleanup(connection, *statements: str) -> None:
    """Undo the session settings; never hide the error that brought us here."""
    try:
        if connection.in_transaction():
            connection.rollback()
        for sql in statements:
            _exec(connection, sql)
        connection.commit()
    except Exception:  # a broken connection releases its locks and settings anyway
        log.warning("could not reset the migration session", exc_info=True)


def _session(connection):
    name = connection.dialect.name
    if name == "postgresql":
        return _postgresql_session(connection)
    if name in ("mysql", "mariadb"):
        return _mysql_session(connection)
    if name == "sqlite":
        return _sqlite_session(connection)
    raise SystemExit(f"archiver does not support {name} databases")


def _run(connection) -> None:
    if connection.in_transaction():
        # env.py decides where transactions begin and end (see above); a
        # caller's open transaction would be committed by the first one.
        raise RuntimeError("hand env.py a connection that is not in a transaction")
    with _session(connection):
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            # SQLite cannot ALTER most things; batch mode rebuilds tables instead.
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
            # See the module docstring (SQLite: the whole run is env.py's
            # one transaction, so Alembic opens none of its own).
            transaction_per_migration=True,
        )
        # Read under the lock: what this run started from (archiver.db.migrate reports it).
        config.attributes["revision_before"] = context.get_context().get_current_revision()
        with context.begin_transaction():
            context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    if not url:
        raise SystemExit("pass the database: alembic -x url=sqlite:///archive.db upgrade head")
    connect_args = {"timeout": 30} if url.startswith("sqlite") else {}
    engine = create_engine(url, connect_args=connect_args)
    try:
        with engine.connect() as connection:
            _run(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run against a database")
run_migrations_online()
