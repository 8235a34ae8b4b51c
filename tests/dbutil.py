"""Creating and dropping throwaway databases on the test servers.

Every test run gets databases of its own (``archiver_t_<random>``) so runs on
a shared server never see each other's data.
"""

from __future__ import annotations

import os
import secrets

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from archiver.db.engine import normalize_url

ENV = {"postgresql": "ARCHIVER_TEST_POSTGRES_URL", "mysql": "ARCHIVER_TEST_MYSQL_URL"}
IN_CI = bool(os.environ.get("CI"))


def server_url(backend: str) -> str:
    """The admin URL of a test server, or skip (fail under CI) when it is not configured."""
    var = ENV[backend]
    url = os.environ.get(var)
    if not url:
        msg = (f"{var} is not set: set it to run the database tests on {backend} too "
               f"(e.g. {'postgresql://postgres@127.0.0.1:5432/postgres' if backend == 'postgresql' else 'mysql://root@127.0.0.1:3306/test'})")
        if IN_CI:
            pytest.fail(f"CI is set, so {backend} tests must run: {msg}")
        pytest.skip(msg)
    return normalize_url(url)


def create_database(backend: str) -> str:
    """A fresh, empty database on the test server; returns its URL."""
    admin = server_url(backend)
    name = f"archiver_t_{secrets.token_hex(5)}"
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            if backend == "postgresql":
                conn.execute(text(f'CREATE DATABASE "{name}" ENCODING \'UTF8\' TEMPLATE template0'))
            else:
                conn.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 "
                                  "COLLATE utf8mb4_unicode_ci"))
    except Exception as exc:
        msg = f"cannot create a test database on {make_url(admin).render_as_string()}: {exc}"
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)
    finally:
        engine.dispose()
    return make_url(admin).set(database=name).render_as_string(hide_password=False)


def drop_database(url: str) -> None:
    u = make_url(url)
    backend = u.get_backend_name()
    name = u.database
    admin = u.set(database="postgres" if backend == "postgresql" else "mysql")
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            if backend == "postgresql":
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            else:
                conn.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
    finally:
        engine.dispose()
