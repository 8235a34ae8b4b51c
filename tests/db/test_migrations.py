"""The migration chain on every backend, with data: every revision up and down.

Also: the schema compatibility window of ``require_current_schema``, two
concurrent ``db upgrade`` runs, and what ``db check`` ignores.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import inspect, text

from archiver.db import migrate, schema
from archiver.db.engine import (
    SCHEMA_REVISION,
    SchemaState,
    classify_revision,
    create_archive_engine,
    current_revision,
    require_current_schema,
    schema_status,
)
from archiver.db.types import BigID, UTCDateTime
from archiver.errors import DatabaseError

REPO = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 11, 1, 12, 0, 0, 123456, tzinfo=UTC)


@pytest.fixture
def fresh_engine(fresh_db_url):
    engine = create_archive_engine(fresh_db_url)
    yield engine
    engine.dispose()


def test_schema_revision_constant_is_the_migration_head():
    assert migrate.head_revision() == SCHEMA_REVISION


def test_revision_ids_are_a_numbered_sequence():
    """require_current_schema orders revisions by number, without Alembic."""
    revs = migrate.revisions()
    assert all(re.fullmatch(r"\d{4}", r) for r in revs), revs
    assert [int(r) for r in revs] == list(range(1, len(revs) + 1))


# --- the whole chain, empty ---------------------------------------------------


def test_up_down_up_and_no_drift(fresh_engine):
    engine = fresh_engine
    assert current_revision(engine) is None
    assert migrate.upgrade(engine) == (None, SCHEMA_REVISION)
    tables = set(inspect(engine).get_table_names())
    assert {t.name for t in schema.metadata.sorted_tables} <= tables
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
        # 0003 only added a column that older code never sets: 0002 code may still use it.
        assert conn.execute(text("SELECT min_code_revision FROM schema_compat")).all() == [
            ("0002",)
        ]


def test_every_revision_up_and_down_with_data(fresh_engine):
    """For each revision, with the 0001 data set present: the schema after
    upgrading to it from below equals the schema after going one further and
    coming back down (columns, types, nullability, defaults, keys, indexes,
    CHECK constraints), and the data survives the round trip. Then down
    revision by revision to base."""
    engine = fresh_engine
    revs = migrate.revisions()
    for i, rev in enumerate(revs):
        migrate.upgrade(engine, rev)
        if i == 0:
            _insert_0001_data(engine)
        before = _snapshot(engine)
        rows = _all_rows(engine)
        if i + 1 < len(revs):
            migrate.upgrade(engine, revs[i + 1])
            migrate.downgrade(engine, rev)
            assert current_revision(engine) == rev
            assert _snapshot(engine) == before, f"downgrade to {rev} did not restore it"
            assert _all_rows(engine) == rows, f"downgrade to {rev} changed the data"
    for rev in reversed([None, *revs[:-1]]):
        migrate.downgrade(engine, rev or "base")
        assert current_revision(engine) == rev


def _snapshot(engine) -> dict:
    insp = inspect(engine)
    out = {}
    for table in sorted(set(insp.get_table_names()) - {"alembic_version"}):
        out[table] = {
            "columns": sorted(
                (c["name"], str(c["type"]), c["nullable"], _default(c.get("default")))
                for c in insp.get_columns(table)
            ),
            "pk": (insp.get_pk_constraint(table).get("name"),
                   tuple(insp.get_pk_constraint(table)["constrained_columns"])),
            "fks": sorted(
                (fk.get("name") or "", tuple(fk["constrained_columns"]), fk["referred_table"],
                 tuple(fk["referred_columns"]), (fk.get("options") or {}).get("ondelete") or "")
                for fk in insp.get_foreign_keys(table)
            ),
            "indexes": sorted(
                (i["name"], tuple(i["column_names"]), bool(i["unique"]))
                for i in insp.get_indexes(table)
            ),
            "uniques": sorted(
                (u["name"] or "", tuple(u["column_names"]))
                for u in insp.get_unique_constraints(table)
            ),
            "checks": sorted(
                (c["name"] or "", _squash(c["sqltext"])) for c in insp.get_check_constraints(table)
            ),
        }
    return out


def _all_rows(engine) -> dict:
    """Every row of every table, as sorted tuples of column values by column name."""
    meta = sa.MetaData()
    meta.reflect(engine)
    out = {}
    with engine.connect() as conn:
        for name, table in meta.tables.items():
            cols = sorted(table.c, key=lambda c: c.name)
            out[name] = sorted(tuple(map(str, row)) for row in conn.execute(sa.select(*cols)))
    return out


def _default(value) -> str | None:
    return None if value is None else _squash(str(value))


def _squash(sql: str) -> str:
    return re.sub(r"[\s()`\"]", "", sql).lower()


# --- 0001 -> 0002 with data ----------------------------------------------------

# The 0001 shapes of the tables the data steps touch.
_md1 = sa.MetaData()
ACCOUNTS_1 = sa.Table(
    "accounts", _md1, sa.Column("id", BigID, primary_key=True), sa.Column("name", sa.String(64)),
    sa.Column("created_at", UTCDateTime()), sa.Column("lease_owner", sa.String(200)),
    sa.Column("lease_expires_at", UTCDateTime()),
)
MESSAGES_1 = sa.Table(
    "messages", _md1, sa.Column("id", BigID, primary_key=True), sa.Column("sha256", sa.String(64)),
    sa.Column("size", sa.BigInteger()), sa.Column("archived_at", UTCDateTime()),
    sa.Column("compression", sa.String(8)), sa.Column("chunk_count", sa.Integer()),
    sa.Column("stored_size", sa.BigInteger()), sa.Column("sort_date", UTCDateTime()),
    sa.Column("has_attachments", sa.Boolean()),
)
CHUNKS_1 = sa.Table(
    "message_chunks", _md1, sa.Column("message_id", BigID), sa.Column("seq", sa.Integer()),
    sa.Column("data", sa.LargeBinary()),
)
DELIVERIES_1 = sa.Table(
    "deliveries", _md1, sa.Column("id", BigID, primary_key=True), sa.Column("account_id", BigID),
    sa.Column("uidl", sa.String(70)), sa.Column("message_id", BigID),
    sa.Column("server_size", sa.BigInteger()), sa.Column("first_seen_at", UTCDateTime()),
    sa.Column("deleted_on_server_at", UTCDateTime()), sa.Column("tombstone", sa.Boolean()),
    sa.Column("source", sa.String(1000)), sa.Column("folder", sa.String(255)),
)

# What the 0001 collector and importer wrote. id -> row.
DELIVERY_ROWS_1 = {
    1: {"account_id": 1, "uidl": "UID-1", "message_id": 1, "tombstone": False, "source": "pop3"},
    # A server without UIDL.
    2: {"account_id": 1, "uidl": None, "message_id": 2, "tombstone": False,
            "source": "pop3 (server has no UIDL)"},
    # The server reused UID-3 for message 3: the old delivery gave it up ...
    3: {"account_id": 2, "uidl": None, "message_id": 2, "tombstone": False,
            "source": "pop3 uidl UID-3 (reused by server)"},
    # ... and the new one holds it.
    4: {"account_id": 2, "uidl": "UID-3", "message_id": 3, "tombstone": False, "source": "pop3"},
    # A purged message: the tombstone keeps its UIDL from being fetched again.
    5: {"account_id": 1, "uidl": "UID-5", "message_id": None, "tombstone": True, "source": "pop3"},
    # Imports, one from a file whose path happens to start with "pop3".
    6: {"account_id": 1, "uidl": None, "message_id": 1, "tombstone": False,
            "source": "/srv/mail/old.mbox#4", "folder": "INBOX"},
    7: {"account_id": 2, "uidl": None, "message_id": 3, "tombstone": False,
            "source": "pop3-backup/cur/1700000000.M1P2.host#0"},
}

# id -> (kind, state, uidl, former_uidl, source) in 0002.
EXPECTED_2 = {
    1: ("pop3", "archived", "UID-1", None, None),
    2: ("pop3", "archived", None, None, None),
    3: ("pop3", "superseded", None, "UID-3", None),
    4: ("pop3", "archived", "UID-3", None, None),
    5: ("pop3", "purged", "UID-5", None, None),
    6: ("import", "archived", None, None, "/srv/mail/old.mbox#4"),
    7: ("import", "archived", None, None, "pop3-backup/cur/1700000000.M1P2.host#0"),
}


def _insert_0001_data(engine) -> None:
    with engine.begin() as conn:
        conn.execute(ACCOUNTS_1.insert(), [
            {"id": 1, "name": "alice", "created_at": T0, "lease_owner": "node-a",
                 "lease_expires_at": T0 + timedelta(minutes=5)},
            {"id": 2, "name": "bob", "created_at": T0, "lease_owner": None,
             "lease_expires_at": None},
        ])
        conn.execute(MESSAGES_1.insert(), [
            {"id": n, "sha256": f"{n:064x}", "size": 10 * n, "archived_at": T0,
             "compression": "zstd", "chunk_count": 1, "stored_size": 5 * n, "sort_date": T0,
             "has_attachments": False}
            for n in (1, 2, 3)
        ])
        conn.execute(CHUNKS_1.insert(), [
            {"message_id": n, "seq": 0, "data": bytes([n]) * 5} for n in (1, 2, 3)
        ])
        conn.execute(DELIVERIES_1.insert(), [
            {"id": i, "server_size": 100 + i, "first_seen_at": T0, "deleted_on_server_at": None,
                 "folder": None} | row
            for i, row in DELIVERY_ROWS_1.items()
        ])


def _deliveries_1(conn) -> dict:
    cols = ["account_id", "uidl", "message_id", "tombstone", "source", "folder", "server_size"]
    return {
        r.id: {c: getattr(r, c) for c in cols}
        for r in conn.execute(sa.select(DELIVERIES_1).order_by(DELIVERIES_1.c.id))
    }


def _columns_0002(table):
    """The columns ``table`` had in 0002 (later revisions add some)."""
    return [c for c in table.c if c.name != "rewrite_of"]


def test_0001_data_carried_to_0002_and_back(fresh_engine):
    engine = fresh_engine
    migrate.upgrade(engine, "0001")
    _insert_0001_data(engine)
    with engine.connect() as conn:
        deliveries_0001 = _deliveries_1(conn)

    migrate.upgrade(engine, "0002")
    d, m, leases = schema.deliveries, schema.messages, schema.account_leases
    with engine.connect() as conn:
        got = {
            r.id: (r.kind, r.state, r.uidl, r.former_uidl, r.source)
            for r in conn.execute(sa.select(*_columns_0002(d)).order_by(d.c.id))
        }
        assert got == EXPECTED_2
        # Untouched columns and links survive.
        assert {r.id: (r.message_id, r.server_size, r.folder)
                for r in conn.execute(sa.select(*_columns_0002(d)))} == {
            i: (row["message_id"], 100 + i, row.get("folder")) for i, row in DELIVERY_ROWS_1.items()
        }
        assert conn.execute(sa.select(d.c.first_seen_at).where(d.c.id == 1)).scalar() == T0
        # Every existing message needs its retention computed.
        assert conn.execute(
            sa.select(m.c.id, m.c.retention_stale, m.c.keep_until, m.c.purge_after).order_by(m.c.id)
        ).all() == [(1, True, None, None), (2, True, None, None), (3, True, None, None)]
        lease = conn.execute(sa.select(leases)).one()
        assert (lease.account_id, lease.owner, lease.epoch, lease.expires_at) == (
            1, "node-a", 1, T0 + timedelta(minutes=5))
        assert conn.execute(
            sa.select(sa.func.count()).select_from(schema.message_chunks)).scalar() == 3

    # 0002 rows of the kinds the new code writes go down too.
    with engine.begin() as conn:
        conn.execute(d.insert().values(
            id=8, account_id=2, kind="pop3", state="archived", uidl="NEW-8", message_id=1,
            first_seen_at=T0))
        conn.execute(m.update().where(m.c.id == 1).values(retention_stale=False))

    migrate.downgrade(engine, "0001")
    assert current_revision(engine) == "0001"
    with engine.connect() as conn:
        back = _deliveries_1(conn)
        assert back.pop(8) == {"account_id": 2, "uidl": "NEW-8", "message_id": 1,
                               "tombstone": False, "source": "pop3", "folder": None,
                               "server_size": None}
        assert back == deliveries_0001
        assert conn.execute(
            sa.select(ACCOUNTS_1.c.id, ACCOUNTS_1.c.lease_owner, ACCOUNTS_1.c.lease_expires_at)
            .order_by(ACCOUNTS_1.c.id)
        ).all() == [(1, "node-a", T0 + timedelta(minutes=5)), (2, None, None)]
        assert conn.execute(text("SELECT count(*) FROM message_chunks")).scalar() == 3

    # And up again: the same 0002 data, no drift.
    migrate.upgrade(engine)
    with engine.connect() as conn:
        got = {r.id: (r.kind, r.state, r.uidl, r.former_uidl, r.source)
               for r in conn.execute(sa.select(d).where(d.c.id < 8))}
        assert got == EXPECTED_2
    report = migrate.check(engine)
    assert report.ok, report.differences


def test_0002_check_constraints_are_enforced(fresh_engine):
    engine = fresh_engine
    migrate.upgrade(engine, "0001")
    _insert_0001_data(engine)
    migrate.upgrade(engine)
    names = {c["name"] for c in inspect(engine).get_check_constraints("deliveries")}
    assert names >= {"ck_deliveries_kind_known", "ck_deliveries_state_known",
                     "ck_deliveries_purged_has_no_message", "ck_deliveries_import_has_no_uidl",
                     "ck_deliveries_superseded_gave_up_uidl"}
    d = schema.deliveries
    base = {"account_id": 1, "first_seen_at": T0, "message_id": 1, "kind": "pop3",
            "state": "archived"}
    bad_rows = [
        base | {"kind": "imap"},
        base | {"state": "lost"},
        base | {"state": "purged"},  # purged but has a message
        base | {"message_id": None},  # no message but not purged
        base | {"kind": "import", "uidl": "X"},
        base | {"kind": "import", "former_uidl": "X"},
        base | {"state": "superseded", "uidl": "Y", "former_uidl": "X"},
        base | {"state": "superseded"},  # gave up no UIDL
    ]
    refused = (sa.exc.IntegrityError, sa.exc.OperationalError)  # MariaDB: 4025
    for row in bad_rows:
        with pytest.raises(refused), engine.begin() as conn:
            conn.execute(d.insert().values(**row))
    with pytest.raises(refused), engine.begin() as conn:
        conn.execute(schema.account_leases.insert().values(
            account_id=2, owner="n", epoch=0, acquired_at=T0, expires_at=T0))
    with engine.begin() as conn:  # the valid shapes are accepted
        conn.execute(d.insert().values(**(base | {"state": "superseded", "former_uidl": "X"})))
        conn.execute(d.insert().values(**(base | {"state": "purged", "message_id": None,
                                                      "uidl": "Z"})))
        conn.execute(d.insert().values(**(base | {"kind": "import"})))
        conn.execute(schema.account_leases.insert().values(
            account_id=2, owner="n", epoch=1, acquired_at=T0, expires_at=T0))


def test_0002_refuses_a_tombstone_that_still_has_a_message(fresh_engine):
    engine = fresh_engine
    migrate.upgrade(engine, "0001")
    _insert_0001_data(engine)
    with engine.begin() as conn:
        conn.execute(DELIVERIES_1.update().where(DELIVERIES_1.c.id == 1).values(tombstone=True))
    with pytest.raises(DatabaseError, match=r"deliveries with id 1 are marked tombstone.*db upgrade"):
        migrate.upgrade(engine)
    # Nothing changed: still 0001, the row as it was (MariaDB included: no DDL ran).
    assert current_revision(engine) == "0001"
    assert "tombstone" in {c["name"] for c in inspect(engine).get_columns("deliveries")}
    assert "schema_compat" not in inspect(engine).get_table_names()


def test_a_migration_blocked_by_a_long_transaction_stops_and_can_be_run_again(
        fresh_engine, backend):
    """A reader holding `deliveries` makes 0002 wait for its lock: it gives up after
    lock_timeout with a message saying to retry, and the retry completes the job
    (on MariaDB, where the DDL before the failure stayed committed, too)."""
    if backend == "sqlite":
        pytest.skip("SQLite readers do not block a migration (WAL)")
    engine = fresh_engine
    migrate.upgrade(engine, "0001")
    _insert_0001_data(engine)
    holder = engine.connect()
    try:
        holder.execute(text("SELECT count(*) FROM deliveries")).scalar()  # transaction stays open
        with pytest.raises(DatabaseError, match=r"stopped: .*run it again when no long "
                                                r"transaction"):
            migrate.upgrade(engine, lock_timeout=1)
        assert current_revision(engine) == "0001"
    finally:
        holder.rollback()
        holder.close()
    assert migrate.upgrade(engine) == ("0001", SCHEMA_REVISION)
    d = schema.deliveries
    with engine.connect() as conn:
        got = {r.id: (r.kind, r.state, r.uidl, r.former_uidl, r.source)
               for r in conn.execute(sa.select(d))}
    assert got == EXPECTED_2
    assert migrate.check(engine).ok


# --- the compatibility window ----------------------------------------------------


def test_classify_revision():
    assert classify_revision(None, expected="0002") is SchemaState.MISSING
    assert classify_revision("0002", expected="0002") is SchemaState.CURRENT
    assert classify_revision("0001", expected="0002") is SchemaState.OLDER
    assert classify_revision("0003", "0002", expected="0002") is SchemaState.NEWER_COMPATIBLE
    assert classify_revision("0003", "0001", expected="0002") is SchemaState.NEWER_COMPATIBLE
    assert classify_revision("0003", "0003", expected="0002") is SchemaState.NEWER_INCOMPATIBLE
    assert classify_revision("0003", None, expected="0002") is SchemaState.NEWER_INCOMPATIBLE
    assert classify_revision("0003", "bogus", expected="0002") is SchemaState.NEWER_INCOMPATIBLE
    assert classify_revision("abc123", expected="0002") is SchemaState.UNKNOWN


def _pretend_newer(engine, revision: str, min_code: str | None) -> None:
    """What a newer archiver's `db upgrade` would leave behind."""
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": revision})
        if min_code is None:
            conn.execute(text("DELETE FROM schema_compat"))
        else:
            conn.execute(text("UPDATE schema_compat SET min_code_revision = :m"), {"m": min_code})


def test_compatibility_window(fresh_engine):
    engine = fresh_engine
    where = re.escape(engine.url.render_as_string(hide_password=True))
    with pytest.raises(DatabaseError, match="run `archiver init`"):  # SQLite: no file yet
        require_current_schema(engine)

    migrate.upgrade(engine, "0001")  # older
    with pytest.raises(DatabaseError, match=rf"{where} is at schema revision 0001, this archiver "
                                            rf"needs {SCHEMA_REVISION}; run `archiver db upgrade`"):
        require_current_schema(engine)

    migrate.upgrade(engine)  # same
    assert require_current_schema(engine).state is SchemaState.CURRENT

    newer = f"{int(SCHEMA_REVISION) + 1:04d}"
    _pretend_newer(engine, newer, SCHEMA_REVISION)  # newer, still compatible
    status = require_current_schema(engine)
    assert (status.state, status.revision, status.min_code_revision) == (
        SchemaState.NEWER_COMPATIBLE, newer, SCHEMA_REVISION)
    # `db upgrade` leaves a newer compatible schema alone.
    assert migrate.upgrade(engine) == (newer, newer)

    _pretend_newer(engine, newer, newer)  # newer, needs newer code
    message = (rf"this archive \({where}, schema {newer}\) is newer than this archiver "
               rf"\(expects {SCHEMA_REVISION}\) and it needs archiver code of schema {newer} or "
               r"later: upgrade archiver on this node")
    with pytest.raises(DatabaseError, match=message):
        require_current_schema(engine)
    with pytest.raises(DatabaseError, match=message):
        migrate.upgrade(engine)
    assert "db upgrade" not in (schema_status(engine).problem("x") or "")

    _pretend_newer(engine, newer, None)  # newer, and no compat row: refuse
    with pytest.raises(DatabaseError, match="is newer than this archiver"):
        require_current_schema(engine)

    _pretend_newer(engine, "abc123", SCHEMA_REVISION)
    with pytest.raises(DatabaseError, match="'abc123', which this archiver"):
        require_current_schema(engine)


# --- concurrency -------------------------------------------------------------------


_UPGRADE_WHEN_TOLD = """
import json, sys
from archiver.db import migrate
from archiver.db.engine import create_archive_engine
engine = create_archive_engine(sys.argv[1])
sys.stdin.readline()  # imports done: wait for the go
print(json.dumps(migrate.upgrade(engine)))
"""


def test_two_concurrent_upgrades_both_succeed_once(fresh_db_url):
    """Two nodes running `db upgrade` at once: the second waits, then has nothing to do.

    Two processes, as two nodes would be (Alembic's module state is not
    thread-safe, so threads could not show it).
    """
    procs = [
        subprocess.Popen([sys.executable, "-c", _UPGRADE_WHEN_TOLD, fresh_db_url], cwd=REPO,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    outputs = []
    try:
        for p in procs:
            p.stdin.write(b"go\n")
        for p in procs:
            p.stdin.flush()
        for p in procs:
            out, err = p.communicate(timeout=180)
            assert p.returncode == 0, err.decode()
            outputs.append(tuple(json.loads(out)))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert sorted(outputs, key=str) == sorted(
        [(None, SCHEMA_REVISION), (SCHEMA_REVISION, SCHEMA_REVISION)], key=str)
    engine = create_archive_engine(fresh_db_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).all() == [
                (SCHEMA_REVISION,)]
            assert conn.execute(text("SELECT count(*) FROM audit_head")).scalar() == 1
            assert conn.execute(text("SELECT count(*) FROM schema_compat")).scalar() == 1
        assert migrate.check(engine).ok
    finally:
        engine.dispose()


def test_postgresql_migration_lock_waits_for_the_holder(fresh_db_url, backend):
    """While another session holds the advisory lock, upgrade waits, then proceeds."""
    if backend != "postgresql":
        pytest.skip("the advisory lock is PostgreSQL's")
    engine = create_archive_engine(fresh_db_url)
    holder = engine.connect()
    try:
        holder.execute(text("SELECT pg_advisory_lock(x'617263686D696772'::bigint)"))
        holder.commit()
        with pytest.raises(DatabaseError, match="another `archiver db upgrade`"):
            migrate.upgrade(engine, migration_lock_wait=0.5)
        assert current_revision(engine) is None
        done: list = []
        t = threading.Thread(target=lambda: done.append(migrate.upgrade(engine)))
        t.start()
        t.join(1.0)
        assert not done  # still waiting
        holder.execute(text("SELECT pg_advisory_unlock_all()"))
        holder.commit()
        t.join(60)
        assert done == [(None, SCHEMA_REVISION)]
    finally:
        holder.close()
        engine.dispose()


def test_migration_session_settings_are_reset(fresh_engine, backend):
    engine = create_archive_engine(str(fresh_engine.url.render_as_string(hide_password=False)),
                                   pool_size=1, max_overflow=0) \
        if backend != "sqlite" else fresh_engine
    try:
        migrate.upgrade(engine, "0001")
        with engine.connect() as conn:  # the same pooled connection
            if backend == "postgresql":
                assert conn.execute(text("SHOW lock_timeout")).scalar() == "0"
                assert conn.execute(text("SHOW statement_timeout")).scalar() == "0"
                assert conn.execute(text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")).scalar() == 0
            elif backend == "mysql":
                assert conn.execute(text("SELECT @@session.lock_wait_timeout = "
                                         "@@global.lock_wait_timeout")).scalar() == 1
                assert conn.execute(text("SELECT @@session.max_statement_time")).scalar() == 0
            else:
                assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    finally:
        if engine is not fresh_engine:
            engine.dispose()


# --- db check ------------------------------------------------------------------------


def test_check_reports_drift(fresh_engine):
    engine = fresh_engine
    migrate.upgrade(engine)
    with engine.begin() as conn:
        conn.execute(text("DROP INDEX ix_messages_sort_date" if engine.dialect.name != "mysql"
                          else "DROP INDEX ix_messages_sort_date ON messages"))
    report = migrate.check(engine)
    assert not report.ok
    assert any("ix_messages_sort_date" in d for d in report.differences)


def test_check_ignores_full_text_objects(fresh_engine):
    engine = fresh_engine
    migrate.upgrade(engine)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE fts_x (id INTEGER PRIMARY KEY, body TEXT)"))
        conn.execute(text("CREATE TABLE messages_fts (id INTEGER PRIMARY KEY, body TEXT)"))
        conn.execute(text("CREATE INDEX fts_x_body ON fts_x (body(20))"
                          if engine.dialect.name == "mysql" else
                          "CREATE INDEX fts_x_body ON fts_x (body)"))
        conn.execute(text("CREATE INDEX fts_messages_subject ON messages (subject(20))"
                          if engine.dialect.name == "mysql" else
                          "CREATE INDEX fts_messages_subject ON messages (subject)"))
        if engine.dialect.name == "sqlite":
            conn.execute(text("CREATE VIRTUAL TABLE body_fts USING fts5(body)"))
    report = migrate.check(engine)
    assert report.ok, report.differences
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE stray (id INTEGER PRIMARY KEY)"))
    assert any("stray" in d for d in migrate.check(engine).differences)


def test_unmodelled_names():
    for name in ("fts_x", "messages_fts", "body_fts_data", "sqlite_sequence", "FTS_Y"):
        assert migrate.unmodelled(name), name
    for name in ("messages", "deliveries", "softs", "ix_messages_sort_date", None):
        assert not migrate.unmodelled(name), name


def test_sqlite_pragmas(tmp_path):
    engine = create_archive_engine(f"sqlite:///{tmp_path / 'a.db'}")
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 30000
    engine.dispose()
