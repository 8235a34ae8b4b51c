"""The delivery ledger: every transition, and the CHECK constraints that keep states honest."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import insert, select

from archiver.db import schema
from archiver.db.boundary import database_errors
from archiver.db.schema import DeliveryKind, DeliveryState
from archiver.db.unit import read_only, unit_of_work
from archiver.errors import DatabaseError
from archiver.store import deliveries as ledger
from archiver.store.ingest import Origin, Outcome
from archiver.store.spool import Spool

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


def mail(n: int) -> bytes:
    return f"Subject: m{n}\r\nMessage-ID: <{n}@x>\r\n\r\nbody {n}\r\n".encode()


def rows(engine) -> list:
    d, m = schema.deliveries, schema.messages
    with read_only(engine) as conn:
        return conn.execute(
            select(d.c.kind, d.c.state, d.c.uidl, d.c.former_uidl, m.c.sha256,
                   d.c.deleted_on_server_at, d.c.server_size)
            .outerjoin(m, m.c.id == d.c.message_id).order_by(d.c.id)
        ).all()


def test_new_duplicate_and_known_deliveries(store, engine):
    first = store.store(Spool.from_bytes(mail(1)), Origin("sales", uidl="a", server_size=10))
    again = store.store(Spool.from_bytes(mail(1)), Origin("sales", uidl="b"))
    imported = store.store(Spool.from_bytes(mail(1)), Origin("sales", source="/x.mbox"))
    reimported = store.store(Spool.from_bytes(mail(1)), Origin("sales", source="/y.mbox"))
    assert [first.outcome, again.outcome, imported.outcome, reimported.outcome] == [
        Outcome.ARCHIVED, Outcome.DUPLICATE, Outcome.DUPLICATE, Outcome.KNOWN]
    assert [(r.kind, r.state, r.uidl) for r in rows(engine)] == [
        ("pop3", "archived", "a"), ("pop3", "archived", "b"), ("import", "archived", None)]


def test_a_server_without_uidl_records_a_message_once_per_account(store, engine):
    origin = Origin("nouidl", kind=DeliveryKind.POP3, server_size=5)
    assert store.store(Spool.from_bytes(mail(1)), origin).outcome == Outcome.ARCHIVED
    assert store.store(Spool.from_bytes(mail(1)), origin).outcome == Outcome.KNOWN
    # ... but it is a delivery of its own beside an import of the same message.
    assert store.store(Spool.from_bytes(mail(1)), Origin("nouidl")).outcome == Outcome.DUPLICATE
    assert [(r.kind, r.uidl) for r in rows(engine)] == [("pop3", None), ("import", None)]


def test_supersede_gives_the_uidl_to_the_new_content(store, engine):
    old = store.store(Spool.from_bytes(mail(1)), Origin("s", uidl="u1", server_size=1))
    new = store.store(Spool.from_bytes(mail(2)), Origin("s", uidl="u1", server_size=2,
                                                         supersede=True))
    assert new.outcome == Outcome.ARCHIVED
    assert [(r.state, r.uidl, r.former_uidl, r.sha256) for r in rows(engine)] == [
        ("superseded", None, "u1", old.sha256), ("archived", "u1", None, new.sha256)]


# -- the ledger's transitions, each test one rolled-back unit of work (``conn``) ------


def _account(conn, name: str = "s") -> int:
    key = conn.execute(insert(schema.accounts).values(name=name, created_at=T0)
                       ).inserted_primary_key
    return int(key[0])


def _message(conn, n: int) -> tuple[int, str]:
    sha = f"{n:064x}"
    key = conn.execute(insert(schema.messages).values(
        sha256=sha, size=10, archived_at=T0, compression="none", chunk_count=0,
        stored_size=0, sort_date=T0, has_attachments=False)).inserted_primary_key
    return int(key[0]), sha


def _ledger(conn) -> list:
    d, m = schema.deliveries, schema.messages
    return conn.execute(
        select(d.c.kind, d.c.state, d.c.uidl, d.c.former_uidl, m.c.sha256,
               d.c.deleted_on_server_at, d.c.server_size)
        .outerjoin(m, m.c.id == d.c.message_id).order_by(d.c.id)
    ).all()


def test_gone_back_and_gone_by_content(conn):
    account = _account(conn)
    (pk1, _), (pk2, sha2) = _message(conn, 1), _message(conn, 2)
    ledger.record(conn, [
        ledger.NewDelivery(account, DeliveryKind.POP3, pk1, uidl="u1", server_size=10),
        ledger.NewDelivery(account, DeliveryKind.POP3, pk2),  # a server without UIDL
        ledger.NewDelivery(account, DeliveryKind.IMPORT, pk2, source="/x.mbox"),
    ], T0)
    ledger.mark_gone(conn, account, ["u1"], T0)
    ledger.mark_gone_by_content(conn, account, [sha2], T0)
    # The import of the same content is not "on a server": it stays as it was.
    assert [r.deleted_on_server_at for r in _ledger(conn)] == [T0, T0, None]
    assert ledger.on_server(conn, account) == {}
    assert set(ledger.gone_from_server(conn, account, ["u1", "zz"])) == {"u1"}
    ledger.confirm_on_server(conn, account, [("u1", 11)])
    seen = ledger.on_server(conn, account)["u1"]
    assert (seen.server_size, seen.tombstone, seen.first_seen_at) == (11, False, T0)
    # Marking gone twice keeps the first instant.
    ledger.mark_gone(conn, account, ["u1"], T0)
    ledger.mark_gone(conn, account, ["u1"], T0 + timedelta(days=1))
    assert _ledger(conn)[0].deleted_on_server_at == T0


def test_supersede_frees_the_uidl_for_the_reused_one(conn):
    account = _account(conn)
    (old, old_sha), (new, new_sha) = _message(conn, 1), _message(conn, 2)
    ledger.record(conn, [ledger.NewDelivery(account, DeliveryKind.POP3, old, uidl="u1")], T0)
    ledger.supersede(conn, account, "u1")
    ledger.record(conn, [ledger.NewDelivery(account, DeliveryKind.POP3, new, uidl="u1")], T0)
    assert [(r.state, r.uidl, r.former_uidl, r.sha256) for r in _ledger(conn)] == [
        ("superseded", None, "u1", old_sha), ("archived", "u1", None, new_sha)]
    assert ledger.recorded_uidls(conn, [(account, "u1")]) == {(account, "u1"): new}


def test_tombstone_keeps_the_uidl_known_without_its_message(conn):
    account = _account(conn)
    pk, _ = _message(conn, 1)
    ledger.record(conn, [ledger.NewDelivery(account, DeliveryKind.POP3, pk, uidl="u1")], T0)
    ledger.tombstone(conn, [pk])
    assert [(r.state, r.uidl, r.sha256) for r in _ledger(conn)] == [("purged", "u1", None)]
    assert ledger.on_server(conn, account)["u1"].tombstone is True
    assert ledger.recorded_uidls(conn, [(account, "u1")]) == {(account, "u1"): None}


@pytest.mark.parametrize("bad", [
    {"kind": "pop4", "state": "archived"},  # unknown kind
    {"kind": "pop3", "state": "lost"},  # unknown state
    {"kind": "pop3", "state": "purged"},  # purged but still has its message
    {"kind": "import", "state": "archived", "uidl": "x"},  # an import has no UIDL
    {"kind": "pop3", "state": "superseded", "uidl": "x"},  # superseded keeps no UIDL
    {"kind": "pop3", "state": "superseded"},  # ... and remembers the one it had
])
def test_check_constraints_refuse_impossible_rows(conn, bad):
    account = _account(conn)
    pk, _ = _message(conn, 1)
    row = {"account_id": account, "message_id": pk, "first_seen_at": T0, **bad}
    with pytest.raises(DatabaseError), database_errors(conn), conn.begin_nested():
        conn.execute(insert(schema.deliveries).values(**row))
    assert _ledger(conn) == []


def test_retention_is_marked_stale_by_new_content_and_new_deliveries(store, engine):
    m = schema.messages
    res = store.store(Spool.from_bytes(mail(1)), Origin("a", uidl="1"))

    def stale() -> bool:
        with read_only(engine) as conn:
            return conn.execute(select(m.c.retention_stale).where(m.c.sha256 == res.sha256)
                                ).scalar_one()

    assert stale()
    with unit_of_work(engine) as conn:
        conn.execute(m.update().values(retention_stale=False))
    store.store(Spool.from_bytes(mail(1)), Origin("a", uidl="1"))  # known: nothing new
    assert not stale()
    store.store(Spool.from_bytes(mail(1)), Origin("b", uidl="1"))  # a new delivery
    assert stale()


def test_states_are_the_enums():
    assert {s.value for s in DeliveryState} == {"archived", "superseded", "purged"}
    assert {k.value for k in DeliveryKind} == {"pop3", "import"}
