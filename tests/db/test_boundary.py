"""The database error boundary and units of work, on every backend."""

from __future__ import annotations

import socket
import threading

import pytest
from sqlalchemy import insert, select, text
from sqlalchemy.engine import make_url

from archiver.db import schema
from archiver.db.engine import create_archive_engine
from archiver.db.unit import read_only, run_transaction, unit_of_work
from archiver.errors import DatabaseError, DatabaseUnavailable
from tests.dbutil import IN_CI


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_unit_of_work_commits_or_rolls_back_as_a_whole(engine):
    from datetime import datetime, timezone

    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    a = schema.accounts
    with pytest.raises(RuntimeError), unit_of_work(engine) as conn:
        conn.execute(insert(a).values(name="rolled-back", created_at=now))
        raise RuntimeError("boom")
    with unit_of_work(engine) as conn:
        conn.execute(insert(a).values(name="kept", created_at=now))
    with read_only(engine) as conn:
        assert conn.execute(select(a.c.name)).scalars().all() == ["kept"]


def test_database_errors_become_ours_and_name_the_database(engine):
    with pytest.raises(DatabaseError) as info, read_only(engine) as conn:
        conn.execute(text("SELECT no_such_column FROM accounts"))
    err = info.value
    assert not isinstance(err, DatabaseUnavailable)
    assert "archive database" in str(err) and err.__cause__ is not None
    assert type(err).__module__ == "archiver.errors"


@pytest.mark.parametrize("backend_url", [
    "postgresql://archiver:s3cret-pw@127.0.0.1:{port}/archive",
    "mysql://archiver:s3cret-pw@127.0.0.1:{port}/archive",
])
def test_an_unreachable_server_is_unavailable_and_the_password_stays_hidden(backend_url):
    url = backend_url.format(port=_free_port())
    try:
        engine = create_archive_engine(url, connect_args={"connect_timeout": 3})
    except ModuleNotFoundError as exc:  # driver extra not installed on a laptop
        if IN_CI:
            raise
        pytest.skip(str(exc))
    with pytest.raises(DatabaseUnavailable) as info, read_only(engine) as conn:
        conn.execute(select(1))
    message = str(info.value)
    assert "s3cret-pw" not in message and "***" in message
    assert make_url(url).host in message and "running" in message
    assert info.value.retryable


def test_run_transaction_redoes_a_unit_that_lost_a_race(engine):
    from datetime import datetime, timezone

    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    a = schema.accounts
    attempts = []

    def work(conn):
        attempts.append(1)
        if len(attempts) == 1:
            # Another writer creates the row between our read and our insert.
            with engine.begin() as other:
                other.execute(insert(a).values(name="raced", created_at=now))
            conn.execute(insert(a).values(name="raced", created_at=now))
        return conn.execute(select(a.c.id).where(a.c.name == "raced")).scalar_one()

    run_transaction(engine, work)
    assert len(attempts) == 2
    with read_only(engine) as conn:
        assert conn.execute(select(a.c.name)).scalars().all() == ["raced"]


def test_run_transaction_gives_up_with_our_error(engine):
    from datetime import datetime, timezone

    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    with unit_of_work(engine) as conn:
        conn.execute(insert(schema.accounts).values(name="dup", created_at=now))
    calls = []

    def always_conflicts(conn):
        calls.append(1)
        conn.execute(insert(schema.accounts).values(name="dup", created_at=now))

    with pytest.raises(DatabaseError, match="colliding"):
        run_transaction(engine, always_conflicts, attempts=3)
    assert len(calls) == 3


def test_units_of_work_on_threads_do_not_share_transactions(engine):
    from datetime import datetime, timezone

    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    errors = []

    def add(name: str) -> None:
        try:
            with unit_of_work(engine) as conn:
                conn.execute(insert(schema.accounts).values(name=name, created_at=now))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=add, args=(f"t{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with read_only(engine) as conn:
        assert len(conn.execute(select(schema.accounts.c.id)).all()) == 4


def test_a_check_violation_is_not_mistaken_for_a_race(engine):
    from datetime import datetime, timezone

    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    calls = []

    def bad_row(conn):
        calls.append(1)
        key = conn.execute(insert(schema.accounts).values(name="a", created_at=now)
                           ).inserted_primary_key
        conn.execute(insert(schema.account_leases).values(
            account_id=key[0], owner="n", epoch=0, acquired_at=now, expires_at=now))

    with pytest.raises(DatabaseError) as info:
        run_transaction(engine, bad_row)
    assert len(calls) == 1  # redoing it could never help
    assert "colliding" not in str(info.value)
    with read_only(engine) as conn:
        assert conn.execute(select(schema.accounts.c.id)).all() == []
