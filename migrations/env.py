"""Alembic environment for the archive.

Self-contained on purpose: it imports nothing from archiver. The caller
(``archiver db ...`` via archiver.db.migrate) hands over an open connection
and, for ``db check``, the models' metadata through ``config.attributes``.
Run by hand, ``alembic -x url=sqlite:///archive.db upgrade head`` works too.
"""

from alembic import context
from sqlalchemy import create_engine

config = context.config
target_metadata = config.attributes.get("target_metadata")


def _configure(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds tables instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        # Every revision in its own transaction, so a failure leaves the
        # database at the last good revision (PostgreSQL and SQLite have
        # transactional DDL; MySQL commits DDL implicitly anyway).
        transaction_per_migration=True,
    )


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    if not url:
        raise SystemExit("pass the database: alembic -x url=sqlite:///archive.db upgrade head")
    engine = create_engine(url)
    with engine.connect() as connection:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run against a database")
run_migrations_online()
