"""The delivery ledger: every transition, and the CHECK constraints that keep states honest."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import insert, select

from archiver.db import schema
from archiver.db.schema import DeliveryKind, DeliveryState
from archiver.db.unit import reading, unit_of_work
from archiver.errors import DatabaseError
from archiver.store import deliveries as ledger
from archiver.store.ingest import Origin, Outcome
from archiver.store.spool import Spool

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


def mail(n: int) -> bytes:
    return f"Subject: m{n}\r\nMessage-ID: <{n}@x>\r\n\r\nbody {n}\r\n".encode()


def rows(engine) -> list:
    d, m = schema.deliveries, schema.messages
    with reading(engine) as conn:
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


def test_gone_back_and_gone_by_content(store, engine):
    store.store(Spool.from_bytes(mail(1)), Origin("s", uidl="u1", server_size=10))
    nouidl = store.store(Spool.from_bytes(mail(2)), Origin("s", kind=DeliveryKind.POP3))
    account = store.account_id("s")
    with unit_of_work(engine) as conn:
        ledger.mark_gone(conn, account, ["u1"], T0)
        ledger.mark_gone_by_content(conn, account, [nouidl.sha256], T0)
    assert [r.deleted_on_server_at for r in rows(engine)] == [T0, T0]
    with reading(engine) as conn:
        assert ledger.on_server(conn, account) == {}
        assert set(ledger.gone_from_server(conn, account, ["u1", "zz"])) == {"u1"}
    with unit_of_work(engine) as conn:
        ledger.confirm_on_server(conn, account, [("u1", 11)])
    with reading(engine) as conn:
        seen = ledger.on_server(conn, account)["u1"]
    assert (seen.server_size, seen.purged) == (11, False)
    # A second mark_gone keeps the first instant.
    with unit_of_work(engine) as conn:
        ledger.mark_gone(conn, account, ["u1"], T0)
        ledger.mark_gone(conn, account, ["u1"], T0 + timedelta(days=1))
    assert rows(engine)[0].deleted_on_server_at == T0


def test_tombstone_keeps_the_uidl_known_without_its_message(store, engine):
    res = store.store(Spool.from_bytes(mail(1)), Origin("s", uidl="u1"))
    account = store.account_id("s")
    m = schema.messages
    with unit_of_work(engine) as conn:
        pk = conn.execute(select(m.c.id).where(m.c.sha256 == res.sha256)).scalar_one()
        ledger.tombstone(conn, [pk])
    assert [(r.state, r.uidl, r.sha256) for r in rows(engine)] == [("purged", "u1", None)]
    with reading(engine) as conn:
        assert ledger.on_server(conn, account)["u1"].purged is True


@pytest.mark.parametrize("bad", [
    {"kind": "pop4", "state": "archived"},  # unknown kind
    {"kind": "pop3", "state": "lost"},  # unknown state
    {"kind": "pop3", "state": "purged"},  # purged but still has its message
    {"kind": "import", "state": "archived", "uidl": "x"},  # an import has no UIDL
    {"kind": "pop3", "state": "superseded", "uidl": "x"},  # superseded keeps no UIDL
    {"kind": "pop3", "state": "superseded"},  # ... and remembers the one it had
])
def test_check_constraints_refuse_impossible_rows(store, engine, bad):
    res = store.store(Spool.from_bytes(mail(1)), Origin("s"))
    account = store.account_id("s")
    m = schema.messages
    with reading(engine) as conn:
        pk = conn.execute(select(m.c.id).where(m.c.sha256 == res.sha256)).scalar_one()
    row = {"account_id": account, "message_id": pk, "first_seen_at": T0, **bad}
    with pytest.raises(DatabaseError), unit_of_work(engine) as conn:
        conn.execute(insert(schema.deliveries).values(**row))
    assert len(rows(engine)) == 1


def test_retention_is_marked_stale_by_new_content_and_new_deliveries(store, engine):
    m = schema.messages
    res = store.store(Spool.from_bytes(mail(1)), Origin("a", uidl="1"))

    def stale() -> bool:
        with reading(engine) as conn:
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
