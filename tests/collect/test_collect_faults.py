"""The collection pass against faults a real Dovecot will not produce on demand.

Each test runs archiver.collect.collector.Collector on a real, migrated archive
(the ``store`` fixture: SQLite, PostgreSQL and MariaDB/MySQL) against the
scripted POP3 server, and checks real outcomes: the messages in the archive
(by SHA-256), the Delivery rows, what is left in ``server.mailbox``, the
PassReport and the CollectionRun row. The lose-nothing rule (DESIGN.md §2
rule 1) is the thread through all of them: after any fault every message is
in the archive, on the server, or both -- and the next pass repairs the rest
without storing anything twice.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import logging
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import delete, select

from archiver.collect import collector as collection
from archiver.collect.collector import Collector
from archiver.collect.pop3 import POP3Client
from archiver.collect.runner import collect_accounts
from archiver.db import schema
from archiver.errors import DatabaseError, DatabaseUnavailable
from archiver.store import content
from archiver.store import deliveries as ledger
from archiver.store.ingest import MessageStore
from tests.collect.accounts import account_for, make_config, write_config
from tests.conftest import run_cli
from tests.support.pop3server import ScriptedPOP3Server

T0 = datetime(2026, 1, 5, 9, 0, 0, tzinfo=timezone.utc)
SECRET = "Pa55-w0rd-que-nadie-debe-ver"
NO_PIPELINING = ["TOP", "UIDL", "USER", "RESP-CODES", "AUTH-RESP-CODE", "SASL PLAIN XOAUTH2"]


# ------------------------------------------------------------------ helpers


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def mail(n: int, body: str | None = None, *, pad: int = 0) -> bytes:
    """A small wire-form message; ``pad`` adds that many bytes of body."""
    text = body if body is not None else f"Body of message {n}."
    return (
        f"From: Sender {n} <s{n}@example.com>\r\nTo: archive@example.org\r\n"
        f"Subject: message {n}\r\nMessage-ID: <{n}@example.com>\r\n"
        f"Date: Mon, 5 Jan 2026 10:00:00 +0000\r\n\r\n{text}\r\n"
    ).encode() + b"z" * pad + (b"\r\n" if pad else b"")


def retrieved(data: bytes) -> bytes:
    """What RETR delivers for a stored message (a final line end is added)."""
    return data if not data or data.endswith(b"\n") else data + b"\r\n"


class Clock:
    """An injectable UTC clock that moves only when told."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def set(self, **delta) -> None:
        self.now = T0 + timedelta(**delta)


@pytest.fixture
def account(tmp_path, db_url):
    """account(server, **keys) -> a config Account, loaded by the real loader."""

    def build(server, name: str = "acct", **overrides):
        keys = account_for(server, name, timeout="5s")
        keys.update(overrides)
        return make_config(tmp_path, db_url, keys).accounts[0]

    return build


def archive(engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(select(schema.messages.c.sha256)).scalars())


def archived_bytes(store: MessageStore, digest: str) -> bytes:
    with store.engine.connect() as conn:
        return content.read_bytes(conn, content.resolve(conn, digest))


def deliveries(engine, account: str | None = None) -> list:
    """Delivery rows: account, uidl, sha256 (None for a tombstone), server_size,
    deleted_on_server_at, tombstone (state purged), state, former_uidl."""
    d, m, a = schema.deliveries, schema.messages, schema.accounts
    query = (
        select(a.c.name.label("account"), d.c.uidl, m.c.sha256, d.c.server_size,
               d.c.deleted_on_server_at,
               (d.c.state == "purged").label("tombstone"), d.c.state, d.c.former_uidl)
        .select_from(d.join(a, a.c.id == d.c.account_id).outerjoin(m, m.c.id == d.c.message_id))
        .order_by(d.c.id)
    )
    if account is not None:
        query = query.where(a.c.name == account)
    with engine.connect() as conn:
        return conn.execute(query).all()


def by_uidl(engine, account: str = "acct") -> dict:
    return {row.uidl: row for row in deliveries(engine, account) if row.uidl is not None}


def runs(engine) -> list:
    r = schema.collection_runs
    with engine.connect() as conn:
        return conn.execute(select(r).order_by(r.c.id)).all()


def check_run(engine, report) -> None:
    """The CollectionRun row of the pass says what the PassReport says."""
    a, r = schema.accounts, schema.collection_runs
    with engine.connect() as conn:
        row = conn.execute(
            select(r).join(a, a.c.id == r.c.account_id).where(a.c.name == report.account)
            .order_by(r.c.id.desc()).limit(1)
        ).one()
    assert row.finished_at is not None
    assert (row.status, row.listed, row.new, row.archived, row.duplicates,
            row.deleted_on_server, row.bytes, row.error_kind, row.error) == (
        report.status, report.listed, report.new, report.archived, report.duplicates,
        report.deleted_on_server, report.bytes, report.error_kind, report.error)
    assert not [x for x in runs(engine) if x.status == "running"]


def collect(collector: Collector, account):
    report = collector.collect(account)
    check_run(collector.engine, report)
    return report


def sent(server: ScriptedPOP3Server, verb: str, since: int = 0) -> list[str]:
    """Command lines of ``verb`` the server received, from log index ``since`` on."""
    return [line for line in server.log[since:] if line.split(" ", 1)[0].upper() == verb]


def counts(report) -> tuple:
    return (report.status, report.listed, report.new, report.archived, report.duplicates,
            report.deleted_on_server)


def clocked_collector(store: MessageStore, clock: Clock, **kwargs) -> Collector:
    """The store stamps deliveries with the same injected clock the collector decides with."""
    return Collector(MessageStore(store.engine, clock=clock), clock=clock, **kwargs)


# ------------------------------------------------------------------ connection lost


def test_drop_in_the_middle_of_retr_keeps_what_was_committed(store, pop3, account):
    msgs = [(f"u{i}", mail(i)) for i in range(1, 6)]
    server = pop3(msgs)
    server.drop_during_retr(4, after_bytes=40, times=1)
    acct = account(server, leave_on_server=False)
    collector = Collector(store)

    report = collect(collector, acct)
    assert report.status == "error" and report.error_kind == "network" and report.retryable
    assert "RETR 4" in report.error
    assert counts(report)[1:] == (5, 5, 3, 0, 0)
    assert archive(store.engine) == {sha(m) for _, m in msgs[:3]}
    assert [(r.uidl, r.sha256, r.deleted_on_server_at) for r in deliveries(store.engine)] == [
        (u, sha(m), None) for u, m in msgs[:3]]
    assert server.mailbox == msgs  # no QUIT: nothing deleted on the server
    assert sent(server, "QUIT") == [] and sent(server, "DELE") == []

    server.clear_faults()
    mark = len(server.log)
    report = collect(collector, acct)
    assert counts(report) == ("ok", 5, 2, 2, 0, 5)
    assert sent(server, "RETR", mark) == ["RETR 4", "RETR 5"]  # committed ones: not refetched
    assert archive(store.engine) == {sha(m) for _, m in msgs}
    rows = deliveries(store.engine)
    assert sorted(r.uidl for r in rows) == [u for u, _ in msgs]
    assert all(r.deleted_on_server_at is not None for r in rows)
    assert server.mailbox == []


def test_drop_after_dele_before_quit_deletes_nothing(store, pop3, account):
    msgs = [(f"u{i}", mail(i)) for i in range(1, 4)]
    server = pop3(msgs)
    server.drop_after_dele(1, times=1)
    acct = account(server, leave_on_server=False)
    collector = Collector(store)

    report = collect(collector, acct)
    assert report.status == "error" and report.error_kind == "network"
    assert (report.archived, report.deleted_on_server) == (3, 0)
    assert archive(store.engine) == {sha(m) for _, m in msgs}
    assert all(r.deleted_on_server_at is None for r in deliveries(store.engine))
    assert server.mailbox == msgs

    server.clear_faults()
    mark = len(server.log)
    report = collect(collector, acct)
    assert counts(report) == ("ok", 3, 0, 0, 0, 3)
    assert sent(server, "RETR", mark) == []
    assert len(deliveries(store.engine)) == 3 and len(archive(store.engine)) == 3
    assert all(r.deleted_on_server_at is not None for r in deliveries(store.engine))
    assert server.mailbox == []


def test_quit_answered_err_records_no_deletion(store, pop3, account):
    msgs = [(f"u{i}", mail(i)) for i in range(1, 4)]
    server = pop3(msgs)
    server.fail_quit(times=1)
    acct = account(server, leave_on_server=False)
    collector = Collector(store)

    report = collect(collector, acct)
    assert report.status == "error" and report.error_kind == "protocol"
    assert "QUIT" in report.error
    assert (report.archived, report.deleted_on_server) == (3, 0)
    assert len(sent(server, "DELE")) == 3
    assert all(r.deleted_on_server_at is None for r in deliveries(store.engine))
    assert server.mailbox == msgs

    mark = len(server.log)
    report = collect(collector, acct)
    assert counts(report) == ("ok", 3, 0, 0, 0, 3)
    assert sent(server, "RETR", mark) == []
    assert all(r.deleted_on_server_at is not None for r in deliveries(store.engine))
    assert server.mailbox == [] and len(archive(store.engine)) == 3


def test_database_failure_mid_pass_deletes_nothing_and_next_pass_finishes(
        store, pop3, account, monkeypatch):
    monkeypatch.setattr(collection, "BATCH_MESSAGES", 2)
    msgs = [(f"u{i}", mail(i)) for i in range(1, 6)]
    server = pop3(msgs)
    acct = account(server, leave_on_server=False)
    real = store.store_batch
    calls = []

    def flaky(items, **kw):
        calls.append(len(items))
        if len(calls) >= 2:  # from the 2nd batch on, the database is gone
            raise DatabaseUnavailable("cannot reach the archive database: server has gone away")
        return real(items, **kw)

    monkeypatch.setattr(store, "store_batch", flaky)
    monkeypatch.setattr(Collector, "_database_healthy", lambda self: len(calls) < 2)
    report = collect(Collector(store), acct)
    assert report.status == "error" and report.error_kind == "database"
    assert "server has gone away" in report.error
    assert (report.archived, report.deleted_on_server) == (2, 0)
    assert archive(store.engine) == {sha(m) for _, m in msgs[:2]}
    assert server.mailbox == msgs and sent(server, "QUIT") == []

    monkeypatch.setattr(store, "store_batch", real)
    monkeypatch.undo()
    report = collect(Collector(store), acct)
    assert counts(report) == ("ok", 5, 3, 3, 0, 5)
    assert archive(store.engine) == {sha(m) for _, m in msgs}
    assert server.mailbox == []


def test_a_message_the_database_refuses_stays_on_the_server_and_the_pass_goes_on(
        store, pop3, account, monkeypatch):
    """The database is up but refuses one message: only that one is left behind."""
    msgs = [(f"u{i}", mail(i)) for i in range(1, 6)]
    server = pop3(msgs)
    refused = hashlib.sha256(msgs[2][1]).hexdigest()
    real = store.store_batch

    def picky(items, **kw):
        if any(spool.sha256 == refused for spool, _ in items):
            raise DatabaseError("error in the archive database: value too long")
        return real(items, **kw)

    monkeypatch.setattr(store, "store_batch", picky)
    report = collect(Collector(store), account(server, leave_on_server=False))
    assert report.status == "ok"
    assert (report.archived, report.deleted_on_server, report.skipped) == (4, 4, 1)
    assert any("value too long" in w and "u3" in w for w in report.warnings)
    assert archive(store.engine) == {sha(m) for i, (_, m) in enumerate(msgs) if i != 2}
    assert server.mailbox == [msgs[2]]


def test_unexpected_error_is_recorded_as_an_error_and_deletes_nothing(
        store, pop3, account, monkeypatch):
    msgs = [("u1", mail(1))]
    server = pop3(msgs)

    def broken(items, **kw):
        raise RuntimeError("bug in the store")

    monkeypatch.setattr(store, "store_batch", broken)
    with pytest.raises(RuntimeError):
        Collector(store).collect(account(server, leave_on_server=False))
    (run,) = runs(store.engine)
    assert run.status == "error" and run.error_kind == "internal" and run.finished_at is not None
    assert "bug in the store" in run.error
    assert server.mailbox == msgs and sent(server, "DELE") == []


# ------------------------------------------------------------------ login refusals


@pytest.mark.parametrize(
    ("fault", "kind", "retryable"),
    [
        ("in-use", "busy", True),
        ("login-delay", "busy", True),
        ("sys-temp", "busy", True),
        ("locked", "busy", True),  # "-ERR mailbox locked, try again later", no code
        ("sys-perm", "permanent", False),
        ("auth", "auth", False),
    ],
)
@pytest.mark.parametrize("auth", ["user", "plain"])
def test_login_refusals_are_classified(store, pop3, account, caplog, fault, kind, retryable, auth):
    caplog.set_level(logging.DEBUG)
    msgs = [("u1", mail(1))]
    server = pop3(msgs, users={"user": SECRET})
    server.fail_login(fault)
    report = collect(Collector(store), account(server, password=SECRET, auth=auth,
                                               leave_on_server=False))
    assert report.status == "error"
    assert (report.error_kind, report.retryable) == (kind, retryable)
    assert "login" in report.error and f"{server.host}:{server.port}" in report.error
    assert (report.archived, report.deleted_on_server) == (0, 0)
    assert archive(store.engine) == set() and server.mailbox == msgs
    assert sent(server, "RETR") == [] and sent(server, "DELE") == []
    _assert_secret_hidden(store.engine, report, caplog, SECRET)


@pytest.mark.parametrize("auth", ["user", "plain"])
def test_wrong_password_is_auth(store, pop3, account, caplog, auth):
    caplog.set_level(logging.DEBUG)
    server = pop3([("u1", mail(1))], users={"user": "the-right-one"})
    report = collect(Collector(store), account(server, password=SECRET, auth=auth))
    assert (report.status, report.error_kind, report.retryable) == ("error", "auth", False)
    assert archive(store.engine) == set()
    _assert_secret_hidden(store.engine, report, caplog, SECRET)


def _assert_secret_hidden(engine, report, caplog, secret: str) -> None:
    derived = [secret, base64.b64encode(f"\0user\0{secret}".encode()).decode()]
    texts = [report.error or "", *report.warnings, caplog.text,
             *[str(tuple(run)) for run in runs(engine)]]
    for text in texts:
        for value in derived:
            assert value not in text
    assert caplog.text  # the protocol trace was captured, and is clean


# ------------------------------------------------------------------ no UIDL


def test_no_uidl_refuses_leave_on_server(store, pop3, account):
    msgs = [(f"u{i}", mail(i)) for i in range(1, 3)]
    server = pop3(msgs)
    server.disable_uidl()
    report = collect(Collector(store), account(server, leave_on_server=True))
    assert report.status == "error" and report.error_kind == "no-uidl"
    assert not report.retryable
    assert "UIDL" in report.error and "leave_on_server" in report.error
    assert "leave_on_server = false" in report.error  # says how to fix it
    assert archive(store.engine) == set() and deliveries(store.engine) == []
    assert sent(server, "RETR") == [] and sent(server, "DELE") == []
    assert server.mailbox == msgs


def test_no_uidl_without_leave_on_server_uses_content_hashes(store, pop3, account):
    msgs = [(f"u{i}", mail(i)) for i in range(1, 4)]
    server = pop3(msgs)
    server.disable_uidl()
    acct = account(server, leave_on_server=False)
    server.fail_quit(times=1)  # a crash between the commit and QUIT

    report = collect(Collector(store), acct)
    assert report.status == "error" and report.archived == 3 and report.deleted_on_server == 0
    assert any("UIDL" in w for w in report.warnings)
    assert server.mailbox == msgs

    report = collect(Collector(store), acct)
    assert counts(report) == ("ok", 3, 3, 0, 0, 3)
    assert archive(store.engine) == {sha(m) for _, m in msgs}
    rows = deliveries(store.engine)
    assert len(rows) == 3 and all(r.uidl is None for r in rows)
    assert server.mailbox == []


# ------------------------------------------------------------------ odd listings


@pytest.mark.parametrize("leave_on_server", [True, False])
def test_distinct_messages_sharing_a_uidl_are_all_archived_in_one_pass(
        store, pop3, account, leave_on_server):
    """popa3d derives UIDLs from a few headers and Mailutils reuses an X-UIDL header
    found in the mail: the UIDL cannot tell such messages apart, their content can."""
    first, second, third, other = mail(1), mail(2), mail(3), mail(4)
    server = pop3([("dup", first), ("dup", second), ("other", other), ("dup", third)])
    acct = account(server, leave_on_server=leave_on_server)
    collector = Collector(store)

    report = collect(collector, acct)
    assert counts(report) == ("ok", 4, 4, 4, 0, 0 if leave_on_server else 4)
    [warning] = [w for w in report.warnings if "share" in w]
    assert "3 messages share 1 UIDL(s)" in warning and "'dup'" in warning
    assert sent(server, "RETR") == ["RETR 3", "RETR 1", "RETR 2", "RETR 4"]  # shared last
    assert archive(store.engine) == {sha(first), sha(second), sha(third), sha(other)}
    assert set(by_uidl(store.engine)) == {"other"}  # the shared ones are known by content
    if not leave_on_server:
        assert server.mailbox == []
        return
    assert len(server.mailbox) == 4
    # Each pass fetches them again (a new message may join the UIDL) and finds them known.
    server.add_message(mail(5), uidl="dup")
    mark = len(server.log)
    report = collect(collector, acct)
    assert counts(report) == ("ok", 5, 1, 1, 0, 0)
    assert sent(server, "RETR", mark) == ["RETR 1", "RETR 2", "RETR 4", "RETR 5"]
    assert sha(mail(5)) in archive(store.engine)
    assert len(deliveries(store.engine)) == 5


def test_a_uidl_shared_then_unique_again_is_never_trusted_with_its_old_meaning(
        store, pop3, account):
    """A archived under "dup"; B (same size) joins "dup" but cannot be fetched; A is
    removed elsewhere. "dup" alone again must not be taken for A and deleted: the
    delivery gave the UIDL up when it became shared, so B is fetched first."""
    a, b = mail(1, "content A"), mail(1, "content B")
    assert len(a) == len(b)
    server = pop3([("dup", a)])
    acct = account(server, delete_after="30d")
    clock = Clock()
    collector = clocked_collector(store, clock)
    collect(collector, acct)
    clock.set(days=1)
    server.add_message(b, uidl="dup")
    server.fail_retr(2, "-ERR Message temporarily unavailable.")
    assert collect(collector, acct).skipped_by["retr_error"] == 1
    assert "dup" not in by_uidl(store.engine)  # given up
    server.clear_faults()
    server.replace_mailbox([("dup", b)])  # another client deletes A
    clock.set(days=31)
    report = collect(collector, acct)
    assert report.deleted_on_server == 0 and server.mailbox == [("dup", b)]
    assert sha(b) in archive(store.engine)


def test_a_message_known_by_content_takes_its_uidl_when_alone_again(store, pop3, account):
    """Two messages under "dup" are known by content; once one is gone, the other is
    alone under "dup": its delivery takes the UIDL, keeps its archive time (so
    delete_after counts from then) and nothing is counted as new content."""
    first, second = mail(1), mail(2)
    server = pop3([("dup", first), ("dup", second)])
    acct = account(server, delete_after="3d")
    clock = Clock()
    collector = clocked_collector(store, clock)
    assert counts(collect(collector, acct)) == ("ok", 2, 2, 2, 0, 0)
    server.replace_mailbox([("dup", second)])  # another client deletes the first
    clock.set(days=1)
    report = collect(collector, acct)
    assert (report.archived, report.duplicates, report.deleted_on_server) == (0, 0, 0)
    row = by_uidl(store.engine)["dup"]
    assert row.sha256 == sha(second)
    assert len(deliveries(store.engine)) == 2  # the delivery took the UIDL: no new row
    clock.set(days=3)  # due 3 days after it was archived, not after it took the UIDL
    assert collect(collector, acct).deleted_on_server == 1
    assert server.mailbox == []


def test_a_delivery_whose_uidl_becomes_shared_keeps_its_archive_time(store, pop3, account):
    a, b = mail(1), mail(2)
    server = pop3([("dup", a)])
    acct = account(server, delete_after="3d")
    clock = Clock()
    collector = clocked_collector(store, clock)
    collect(collector, acct)
    clock.set(days=1)
    server.add_message(b, uidl="dup")  # B joins: "dup" is shared now
    report = collect(collector, acct)
    assert (report.archived, report.duplicates, report.deleted_on_server) == (1, 0, 0)
    assert len(deliveries(store.engine)) == 2 and not by_uidl(store.engine)
    clock.set(days=3)  # A is due by its own archive time (T0), B not yet
    report = collect(collector, acct)
    assert report.deleted_on_server == 1 and server.mailbox == [("dup", b)]


def test_shared_uidls_follow_delete_after_by_their_own_archive_time(store, pop3, account):
    server = pop3([("dup", mail(1)), ("dup", mail(2))])
    acct = account(server, delete_after="3d")
    clock = Clock()
    collector = clocked_collector(store, clock)
    assert counts(collect(collector, acct)) == ("ok", 2, 2, 2, 0, 0)
    clock.set(days=2)
    server.add_message(mail(3), uidl="dup")
    assert counts(collect(collector, acct)) == ("ok", 3, 1, 1, 0, 0)
    clock.set(days=3)  # the first two are due, the third (archived two days later) is not
    mark = len(server.log)
    report = collect(collector, acct)
    assert counts(report) == ("ok", 3, 0, 0, 0, 2)
    assert sent(server, "DELE", mark) == ["DELE 1", "DELE 2"]
    assert server.mailbox == [("dup", mail(3))]
    assert sum(r.deleted_on_server_at is not None for r in deliveries(store.engine)) == 2


def test_uidls_differing_only_in_case_are_distinct(store, pop3, account):
    msgs = [("abc", mail(1)), ("ABC", mail(2))]
    server = pop3(msgs)
    report = collect(Collector(store), account(server, leave_on_server=False))
    assert counts(report) == ("ok", 2, 2, 2, 0, 2)
    assert archive(store.engine) == {sha(m) for _, m in msgs}
    assert server.mailbox == []


def test_invalid_uidls_are_quarantined(store, pop3, account):
    too_long, control, spaced = "x" * 71, "bad\x01uid", "has space"
    longest = "y" * 70
    msgs = [(too_long, mail(1)), (control, mail(2)), ("fine", mail(3)), (spaced, mail(4)),
            (longest, mail(5)), ("n\u00e9", mail(6))]
    server = pop3(msgs)
    acct = account(server, leave_on_server=False)
    report = collect(Collector(store), acct)
    assert report.status == "ok"
    assert (report.listed, report.new, report.archived, report.deleted_on_server) == (6, 2, 2, 2)
    assert report.skipped == 4
    warning = next(w for w in report.warnings if "quarantined" in w)
    assert "4 message(s) with invalid UIDLs" in warning
    assert sent(server, "RETR") == ["RETR 3", "RETR 5"]
    assert sent(server, "DELE") == ["DELE 3", "DELE 5"]
    assert archive(store.engine) == {sha(mail(3)), sha(mail(5))}
    assert set(by_uidl(store.engine)) == {"fine", longest}
    assert [u for u, _ in server.mailbox] == [too_long, control, spaced, "n\u00e9"]


# ------------------------------------------------------------------ byte-exact


TRICKY = {
    "lone-dot": b"Subject: lone dot\r\n\r\nbefore\r\n.\r\nafter\r\n",
    "dot-lines": b"Subject: dots\r\n\r\n.leading\r\n..two\r\n...\r\n. space\r\n.\r\n",
    "dot-first": b".starts with a dot\r\nSubject: x\r\n\r\nbody\r\n",
    "terminator-like": b"Subject: t\r\n\r\nx\r\n.\r\n.\r\n\r\n.\r\n",
    "long-lines": b"Subject: long\r\n\r\n" + b"x" * 5000 + b"\r\n." + b"y" * 3000 + b"\r\n",
    "long-header": b"Subject: " + b"h" * 4000 + b"\r\n\r\nbody\r\n",
    "bare-lf": b"Subject: lf\r\n\r\nline1\nline2\n.dot after lf\n.\nend\r\n",
    "dot-cr": b"Subject: cr\r\n\r\nline\r\n.\rmore\r\n.\r\r\nx\r\n",
    "dot-cr-at-end": b"Subject: e\r\n\r\nx\r\n.\r",
    "bare-cr-nul": b"Subject: cr\r\n\r\na\rb\x00c\r\n\xff\xfe\r\n",
    "no-final-eol": b"Subject: no eol\r\n\r\nlast line without an end",
    "mixed": b"Subject: mixed\r\n\r\na\r\n.\nb\n..\r\nc\r\n",
    "big-dots": b"Subject: big\r\n\r\n" + b"".join(
        (b"." if i % 7 == 0 else b"") + b"line %06d " % i + b"w" * (i % 97) + b"\r\n"
        for i in range(12000)
    ),
}


@pytest.mark.parametrize("capabilities", [None, NO_PIPELINING], ids=["pipelined", "one-by-one"])
def test_tricky_bodies_are_archived_byte_exact(store, pop3, account, capabilities):
    msgs = [(name, data) for name, data in TRICKY.items()]
    server = pop3(msgs, capabilities=capabilities)
    report = collect(Collector(store), account(server, leave_on_server=False))
    assert counts(report) == ("ok", len(msgs), len(msgs), len(msgs), 0, len(msgs))
    expected = {name: retrieved(data) for name, data in msgs}
    assert report.bytes == sum(len(b) for b in expected.values())
    assert archive(store.engine) == {sha(b) for b in expected.values()}
    for name, data in expected.items():
        assert archived_bytes(store, sha(data)) == data, name
    assert {u: r.sha256 for u, r in by_uidl(store.engine).items()} == {
        n: sha(b) for n, b in expected.items()}
    assert server.mailbox == []


# ------------------------------------------------------------------ sizes


@pytest.mark.parametrize("leave_on_server", [True, False])
def test_a_retr_far_from_the_list_size_is_neither_archived_nor_deleted(
        store, pop3, account, leave_on_server, tmp_path, db_url):
    """Courier asked for a message with raw UTF-8 headers without UTF8 sends a stand-in
    ~740 octets larger than LIST says; whatever the cause, bytes far from LIST's size
    may not be the stored mail: keep it on the server, warn, count it, exit 1."""
    body = "x" * 2000
    msgs = [("u1", mail(1)), ("u2", mail(2, body)), ("u3", mail(3, body))]
    server = pop3(msgs)

    def lie_about(first: int) -> None:  # LIST sizes of u2 and u3, at msgnums first, first + 1
        server.clear_faults()
        server.set_list_size(first, len(msgs[1][1]) + 257)  # RETR far short of LIST
        server.set_list_size(first + 1, len(msgs[2][1]) - 257)  # RETR far beyond it

    lie_about(2)
    acct = account(server, leave_on_server=leave_on_server)
    report = collect(Collector(store), acct)
    assert report.status == "ok" and report.archived == 1
    assert report.skipped_by["size_mismatch"] == 2 and report.message_failures == 2
    assert sum("RETR sent" in w and "where LIST said" in w for w in report.warnings) == 2
    assert archive(store.engine) == {sha(msgs[0][1])}
    assert [u for u, _ in server.mailbox] == (["u1", "u2", "u3"] if leave_on_server
                                              else ["u2", "u3"])
    lie_about(2 if leave_on_server else 1)
    config = write_config(tmp_path, db_url, [account_for(server, "acct2",
                                                         leave_on_server=leave_on_server)])
    result = run_cli("--config", str(config), "collect", "--json")
    assert result.exit_code == 1, result.stderr
    [entry] = result.json()["accounts"]
    assert entry["skipped"]["size_mismatch"] == 2


def test_list_size_differs_from_retr_for_new_messages(store, pop3, account):
    """Within policy.SIZE_SLACK (what real servers' LIST sizes stray by) a message is
    archived as received; the test below goes beyond it."""
    msgs = [(f"u{i}", mail(i, "y" * 400)) for i in range(1, 4)]
    server = pop3(msgs)
    more, less = len(msgs[1][1]) + 256, len(msgs[2][1]) - 256
    server.set_list_size(2, more).set_list_size(3, less)
    acct = account(server)
    collector = Collector(store)

    report = collect(collector, acct)
    assert counts(report) == ("ok", 3, 3, 3, 0, 0)
    assert report.bytes == sum(len(m) for _, m in msgs)  # what arrived, not what LIST said
    assert archive(store.engine) == {sha(m) for _, m in msgs}
    assert {u: (r.sha256, r.server_size) for u, r in by_uidl(store.engine).items()} == {
        "u1": (sha(msgs[0][1]), len(msgs[0][1])), "u2": (sha(msgs[1][1]), more),
        "u3": (sha(msgs[2][1]), less)}

    mark = len(server.log)  # the same listing again: nothing to do
    assert counts(collect(collector, acct)) == ("ok", 3, 0, 0, 0, 0)
    assert sent(server, "RETR", mark) == []

    server.clear_faults()  # LIST now tells the truth: two known sizes "changed"
    mark = len(server.log)
    report = collect(collector, acct)
    assert counts(report) == ("ok", 3, 0, 0, 0, 0)  # same content: known, not duplicates
    assert sent(server, "RETR", mark) == ["RETR 2", "RETR 3"]
    assert any("different size" in w for w in report.warnings)
    assert len(archive(store.engine)) == 3 and len(deliveries(store.engine)) == 3
    assert {u: r.server_size for u, r in by_uidl(store.engine).items()} == {
        u: len(m) for u, m in msgs}

    # Verified once: not fetched again on every later pass.
    mark = len(server.log)
    assert counts(collect(collector, acct)) == ("ok", 3, 0, 0, 0, 0)
    assert sent(server, "RETR", mark) == []


def test_changed_size_is_deleted_only_on_fresh_evidence(store, pop3, account):
    """A known UIDL listed with another size is never deleted on the old evidence: it
    is fetched again, and only if the content shows the same mail is it due by the
    time that mail was first archived; other content is new mail, due later."""
    changing, steady, reused = mail(1), mail(2), mail(3)
    server = pop3([("u1", changing), ("u2", steady), ("u3", reused)])
    acct = account(server, delete_after="30d")
    clock = Clock()
    collector = clocked_collector(store, clock)
    assert counts(collect(collector, acct)) == ("ok", 3, 3, 3, 0, 0)

    clock.set(days=31)
    server.set_list_size(1, len(changing) + 7)  # the same content, another LIST size
    other = mail(4, "other mail the server filed under u3, with a longer body")
    server.replace_mailbox([("u1", changing), ("u2", steady), ("u3", other)])
    server.set_list_size(1, len(changing) + 7)
    mark = len(server.log)
    report = collect(collector, acct)
    assert counts(report) == ("ok", 3, 0, 1, 0, 2)
    assert sent(server, "RETR", mark) == ["RETR 1", "RETR 3"]  # fetched again
    assert sent(server, "DELE", mark) == ["DELE 1", "DELE 2"]  # u3 holds new mail now
    assert server.mailbox == [("u3", other)]
    assert len(archive(store.engine)) == 4
    assert by_uidl(store.engine)["u3"].sha256 == sha(other)

    clock.set(days=60)  # the new mail under u3 is due 30 days after it was archived (61)
    assert counts(collect(collector, acct)) == ("ok", 1, 0, 0, 0, 0)
    clock.set(days=61)
    assert counts(collect(collector, acct)) == ("ok", 1, 0, 0, 0, 1)
    assert server.mailbox == []


def test_reused_uidl_with_other_content_and_size(store, pop3, account):
    old, kept = mail(1, "the first message under uid-1"), mail(2)
    server = pop3([("uid-1", old), ("uid-2", kept)])
    acct = account(server)
    collector = Collector(store)
    collect(collector, acct)

    new = mail(3, "a different, longer message that the server filed under uid-1")
    server.replace_mailbox([("uid-1", new), ("uid-2", kept)])
    report = collect(collector, acct)
    assert counts(report) == ("ok", 2, 0, 1, 0, 0)
    assert archive(store.engine) == {sha(old), sha(new), sha(kept)}
    rows = deliveries(store.engine)
    assert by_uidl(store.engine)["uid-1"].sha256 == sha(new)
    assert [r.sha256 for r in rows if r.uidl is None] == [sha(old)]  # the old one stays archived
    assert len(server.mailbox) == 2

    mark = len(server.log)
    assert counts(collect(collector, acct)) == ("ok", 2, 0, 0, 0, 0)
    assert sent(server, "RETR", mark) == []


def test_a_server_rewriting_status_headers_is_the_same_mail_not_new(store, pop3, account,
                                                                     tmp_path, db_url):
    """GNU Mailutils (mbox) adds X-UID and Status: at the end of the first session;
    the same delivery then returns other bytes. Both are kept (rules 2, 3), the
    second is recorded as the server's rewrite, and show says so."""
    first, other = mail(1), mail(2)
    server = pop3([("uid-1", first), ("uid-2", other)])
    acct = account(server)
    collector = Collector(store)
    assert counts(collect(collector, acct)) == ("ok", 2, 2, 2, 0, 0)

    rewritten = first.replace(b"\r\n\r\n", b"\r\nX-UID: 1\r\nStatus: RO\r\n\r\n", 1)
    server.replace_mailbox([("uid-1", rewritten), ("uid-2", other)])
    report = collect(collector, acct)
    assert counts(report) == ("ok", 2, 0, 0, 0, 0) and report.rewritten == 1
    assert report.to_json()["rewritten"] == 1
    assert any("rewrote 1 archived message" in w for w in report.warnings)
    assert archive(store.engine) == {sha(first), sha(rewritten), sha(other)}
    assert by_uidl(store.engine)["uid-1"].sha256 == sha(rewritten)
    assert counts(collect(collector, acct)) == ("ok", 2, 0, 0, 0, 0)  # settled

    config = write_config(tmp_path, db_url, [account_for(server, "acct")])
    shown = run_cli("--config", str(config), "show", sha(rewritten))
    assert shown.exit_code == 0, shown.stderr
    assert f"the server's rewrite of {sha(first)} (account acct, UIDL uid-1)" in shown.stdout
    shown = run_cli("--config", str(config), "show", "--json", sha(first))
    [delivery] = shown.json()["deliveries"]
    assert delivery["rewritten_as"] == sha(rewritten) and delivery["former_uidl"] == "uid-1"

    # A reused UIDL with other content stays new mail (test_reused_uidl_... above).
    reused = mail(3, "other mail the server filed under uid-1 with a longer body")
    server.replace_mailbox([("uid-1", reused), ("uid-2", other)])
    report = collect(collector, acct)
    assert (report.archived, report.rewritten) == (1, 0)


@pytest.mark.parametrize("leave_on_server", [True, False])
def test_vanished_uidl_back_with_other_content_of_the_same_size(
        store, pop3, account, leave_on_server):
    old, new = mail(1, "content A"), mail(1, "content B")
    assert len(old) == len(new)
    server = pop3([("uid-1", old)])
    acct = account(server, leave_on_server=leave_on_server)
    collector = Collector(store)
    collect(collector, acct)
    if leave_on_server:
        server.replace_mailbox([])  # someone else removes it; the archive notices
        collect(collector, acct)
    assert server.mailbox == []
    assert by_uidl(store.engine)["uid-1"].deleted_on_server_at is not None

    server.add_message(new, uidl="uid-1")  # the server reuses the UIDL
    report = collect(collector, acct)
    assert report.status == "ok" and report.archived == 1
    assert archive(store.engine) == {sha(old), sha(new)}
    row = by_uidl(store.engine)["uid-1"]
    assert row.sha256 == sha(new)
    if leave_on_server:
        assert row.deleted_on_server_at is None and server.mailbox == [("uid-1", new)]
    else:
        # deleted, but only after being archived
        assert row.deleted_on_server_at is not None and server.mailbox == []

    # and once more, gone and back with the very first content: found, not stored again
    if leave_on_server:
        server.replace_mailbox([])
        collect(collector, acct)
    server.replace_mailbox([("uid-1", old)])
    report = collect(collector, acct)
    assert (report.status, report.archived, report.duplicates) == ("ok", 0, 1)
    assert len(archive(store.engine)) == 2
    assert by_uidl(store.engine)["uid-1"].sha256 == sha(old)


# ------------------------------------------------------------------ migration


@pytest.mark.parametrize(
    "policy", [{"leave_on_server": True, "delete_after": "0d"}, {"leave_on_server": False}],
    ids=["delete_after-0d", "leave_on_server-false"],
)
def test_uidl_migration_suspends_deletion_for_one_pass(store, pop3, account, policy):
    msgs = [(None, mail(i)) for i in range(1, 13)]
    server = pop3(msgs)
    acct = account(server, **policy)
    collector = Collector(store)
    server.fail_quit(times=1)  # a first pass whose deletions did not happen
    report = collect(collector, acct)
    assert report.status == "error" and report.archived == 12
    assert len(server.mailbox) == 12
    old_uidls = {u for u, _ in server.mailbox}

    server.migrate()
    new_uidls = {u for u, _ in server.mailbox}
    assert not old_uidls & new_uidls
    report = collect(collector, acct)
    assert counts(report) == ("ok", 12, 12, 0, 12, 0)
    assert any("migration" in w for w in report.warnings)
    assert len(server.mailbox) == 12 and len(sent(server, "DELE")) == 12  # only pass 1's
    assert len(archive(store.engine)) == 12  # nothing duplicated
    rows = deliveries(store.engine)
    assert len(rows) == 24
    assert all(r.deleted_on_server_at is not None for r in rows if r.uidl in old_uidls)
    assert all(r.deleted_on_server_at is None for r in rows if r.uidl in new_uidls)

    mark = len(server.log)
    report = collect(collector, acct)
    assert counts(report) == ("ok", 12, 0, 0, 0, 12)
    assert not any("migration" in w for w in report.warnings)
    assert sent(server, "RETR", mark) == []
    assert server.mailbox == [] and len(archive(store.engine)) == 12


# ------------------------------------------------------------------ one bad message


def test_retr_err_for_one_message_leaves_it_on_the_server(store, pop3, account):
    msgs = [(f"u{i}", mail(i)) for i in range(1, 4)]
    server = pop3(msgs)
    server.fail_retr(2)
    acct = account(server, leave_on_server=False)
    collector = Collector(store)
    report = collect(collector, acct)
    assert counts(report) == ("ok", 3, 3, 2, 0, 2)
    assert report.skipped == 1
    assert any("message 2" in w and "u2" in w for w in report.warnings)
    assert sent(server, "DELE") == ["DELE 1", "DELE 3"]
    assert server.mailbox == [msgs[1]]
    assert set(by_uidl(store.engine)) == {"u1", "u3"}

    server.clear_faults()
    report = collect(collector, acct)
    assert counts(report) == ("ok", 1, 1, 1, 0, 1)
    assert archive(store.engine) == {sha(m) for _, m in msgs} and server.mailbox == []


def test_max_message_size_skips_and_keeps_big_messages(store, pop3, account):
    small1, big, small2, sneaky = mail(1), mail(2, pad=5000), mail(3), mail(4, pad=5000)
    server = pop3([("s1", small1), ("big", big), ("s2", small2), ("sneaky", sneaky)])
    server.set_list_size(4, 100)  # LIST claims it is small; RETR finds out
    acct = account(server, leave_on_server=False, max_message_size="2KB")
    collector = Collector(store)
    report = collect(collector, acct)
    assert counts(report) == ("ok", 4, 4, 2, 0, 2)
    assert report.skipped == 2
    assert sum("max_message_size" in w for w in report.warnings) == 2
    assert sent(server, "RETR") == ["RETR 1", "RETR 3", "RETR 4"]  # "big" never fetched
    assert archive(store.engine) == {sha(small1), sha(small2)}
    assert server.mailbox == [("big", big), ("sneaky", sneaky)]

    server.clear_faults()
    report = collect(collector, acct)
    assert counts(report) == ("ok", 2, 2, 0, 0, 0)
    assert server.mailbox == [("big", big), ("sneaky", sneaky)]


@pytest.mark.parametrize(
    ("limits", "per_pass"),
    [({"max_messages_per_pass": 3}, [3, 3, 3, 1]),
     ({"max_bytes_per_pass": "2500B"}, [2, 2, 2, 2, 2])],
    ids=["messages", "bytes"],
)
@pytest.mark.parametrize("leave_on_server", [True, False])
def test_backlog_drains_over_several_passes(store, pop3, account, limits, per_pass,
                                            leave_on_server):
    msgs = [(f"u{i:02d}", mail(i, pad=1000)) for i in range(1, 11)]
    server = pop3(msgs)
    acct = account(server, leave_on_server=leave_on_server, **limits)
    collector = Collector(store)
    left = len(msgs)
    for expected in per_pass:
        report = collect(collector, acct)
        left -= expected
        assert (report.status, report.archived, report.duplicates, report.deferred) == (
            "ok", expected, 0, left)
        assert report.deleted_on_server == (0 if leave_on_server else expected)
        if left:
            assert any("next pass" in w for w in report.warnings)
    report = collect(collector, acct)
    assert (report.archived, report.new, report.deferred) == (0, 0, 0)
    assert len(sent(server, "RETR")) == 10  # each message fetched exactly once
    assert archive(store.engine) == {sha(m) for _, m in msgs}
    assert len(deliveries(store.engine)) == 10
    assert server.mailbox == ([] if not leave_on_server else msgs)


# ------------------------------------------------------------------ slow servers


def test_dripping_server_hits_the_deadline_after_committing_what_arrived(store, pop3, account):
    msgs = [("u1", mail(1)), ("u2", mail(2)), ("u3", mail(3, pad=20000))]  # ~20 s of drip
    server = pop3(msgs)

    def slow_third(session, arg):
        if arg.strip() == "3":
            server.drip(chunk=50, delay=0.05, commands={"RETR"}, times=1)
        return None  # the built-in RETR, now dripping

    server.script("RETR", slow_third)
    acct = account(server, leave_on_server=False)
    factory = functools.partial(POP3Client, command_deadline=0.8)
    report = collect(Collector(store, client_factory=factory), acct)
    assert report.status == "error" and report.error_kind == "network" and report.retryable
    assert "RETR 3" in report.error and "timed out" in report.error
    assert report.duration_s < 10  # the deadline cut it short
    assert (report.archived, report.deleted_on_server) == (2, 0)
    assert archive(store.engine) == {sha(msgs[0][1]), sha(msgs[1][1])}
    assert server.mailbox == msgs and sent(server, "QUIT") == []

    server.clear_faults()
    report = collect(Collector(store, client_factory=factory), acct)
    assert counts(report) == ("ok", 3, 1, 1, 0, 3)
    assert archive(store.engine) == {sha(m) for _, m in msgs} and server.mailbox == []


def test_silent_server_times_out(store, pop3, account):
    msgs = [("u1", mail(1))]
    server = pop3(msgs)
    server.drip(chunk=1, delay=1.5, commands={"RETR"})  # slower than the socket timeout
    report = collect(Collector(store), account(server, timeout="1s", leave_on_server=False))
    assert (report.status, report.error_kind) == ("error", "network")
    assert "timed out" in report.error
    assert archive(store.engine) == set() and server.mailbox == msgs


# ------------------------------------------------------------------ XOAUTH2


def test_xoauth2_two_step(store, pop3, account, caplog):
    caplog.set_level(logging.DEBUG)
    token = "ya29." + "tOkEn-" * 60  # long enough that AUTH must wait for "+"
    msgs = [("u1", mail(1)), ("u2", mail(2))]
    server = pop3(msgs, users={"user": token})
    acct = account(server, auth="xoauth2", password=token, leave_on_server=False)
    report = collect(Collector(store), acct)
    assert counts(report) == ("ok", 2, 2, 2, 0, 2)
    i = server.log.index("AUTH XOAUTH2")  # no initial response: the two-step form
    assert server.log[i + 1] == "****"
    assert server.mailbox == []
    assert token not in caplog.text

    server.add_message(mail(3), "u3")
    bad = account(server, auth="xoauth2", password=token[:-1] + "X", leave_on_server=False)
    report = collect(Collector(store), bad)
    assert (report.status, report.error_kind) == ("error", "auth")
    assert token[:-1] not in report.error and token[:-1] not in caplog.text
    assert len(server.mailbox) == 1


# ------------------------------------------------------------------ leave_on_server policies


def test_keep_never_deletes(store, pop3, account):
    msgs = [(f"u{i}", mail(i)) for i in range(1, 4)]
    server = pop3(msgs)
    acct = account(server, leave_on_server=True)
    clock = Clock()
    collector = clocked_collector(store, clock)
    assert counts(collect(collector, acct)) == ("ok", 3, 3, 3, 0, 0)
    for years in (1, 10, 50):
        clock.set(days=365 * years)
        assert counts(collect(collector, acct)) == ("ok", 3, 0, 0, 0, 0)
    assert sent(server, "DELE") == [] and server.mailbox == msgs
    assert all(r.deleted_on_server_at is None for r in deliveries(store.engine))


def test_delete_after_boundary_and_recorded_only_after_quit(store, pop3, account):
    msgs = [(f"u{i}", mail(i)) for i in range(1, 4)]
    server = pop3(msgs)
    acct = account(server, delete_after="30d")
    clock = Clock()
    collector = clocked_collector(store, clock)
    assert counts(collect(collector, acct)) == ("ok", 3, 3, 3, 0, 0)
    assert {r.uidl: r.deleted_on_server_at for r in deliveries(store.engine)} == {
        "u1": None, "u2": None, "u3": None}

    clock.set(days=10)
    late = mail(4)
    server.add_message(late, "u4")
    assert collect(collector, acct).archived == 1

    clock.set(days=30, seconds=-1)  # one second early: nothing is due
    assert collect(collector, acct).deleted_on_server == 0
    assert sent(server, "DELE") == [] and len(server.mailbox) == 4

    clock.set(days=30)  # the boundary instant: due -- but QUIT fails
    server.fail_quit(times=1)
    report = collect(collector, acct)
    assert (report.status, report.deleted_on_server) == ("error", 0)
    assert sent(server, "DELE") == ["DELE 1", "DELE 2", "DELE 3"]
    assert all(r.deleted_on_server_at is None for r in deliveries(store.engine))
    assert len(server.mailbox) == 4

    seen_at_quit = []

    def quit_probe(session, arg):
        seen_at_quit.append({r.uidl: r.deleted_on_server_at for r in deliveries(store.engine)})
        return None

    server.script("QUIT", quit_probe, times=1)
    report = collect(collector, acct)
    assert counts(report) == ("ok", 4, 0, 0, 0, 3)
    assert seen_at_quit == [{"u1": None, "u2": None, "u3": None, "u4": None}]
    assert {r.uidl: r.deleted_on_server_at for r in deliveries(store.engine)} == {
        "u1": clock.now, "u2": clock.now, "u3": clock.now, "u4": None}
    assert server.mailbox == [("u4", late)]

    clock.set(days=40, seconds=-1)
    assert collect(collector, acct).deleted_on_server == 0
    clock.set(days=40)
    assert collect(collector, acct).deleted_on_server == 1
    assert server.mailbox == [] and len(archive(store.engine)) == 4


def test_leave_on_server_false_deletes_in_the_same_pass(store, pop3, account):
    msgs = [(f"u{i}", mail(i)) for i in range(1, 4)]
    server = pop3(msgs)
    clock = Clock()
    collector = clocked_collector(store, clock)
    seen_at_quit = []
    server.script("QUIT", lambda s, a: seen_at_quit.append(
        [r.deleted_on_server_at for r in deliveries(store.engine)]))
    report = collect(collector, account(server, leave_on_server=False))
    assert counts(report) == ("ok", 3, 3, 3, 0, 3)
    assert seen_at_quit == [[None, None, None]]  # committed before DELE, recorded after QUIT
    assert [r.deleted_on_server_at for r in deliveries(store.engine)] == [T0, T0, T0]
    assert server.mailbox == []


# ------------------------------------------------------------------ tombstones


def _purge(engine, uidl: str) -> str:
    """What purge does to one message: content gone, the delivery left as a tombstone."""
    d, m = schema.deliveries, schema.messages
    with engine.begin() as conn:
        msg_id, digest = conn.execute(
            select(m.c.id, m.c.sha256).join(d, d.c.message_id == m.c.id).where(d.c.uidl == uidl)
        ).one()
        ledger.tombstone(conn, [msg_id])
        for table in (schema.message_chunks, schema.message_texts, schema.message_addresses,
                      schema.attachments):
            conn.execute(delete(table).where(table.c.message_id == msg_id))
        conn.execute(delete(m).where(m.c.id == msg_id))
    return digest



def test_a_purged_messages_uidl_that_becomes_shared_is_held_not_fetched(store, pop3, account):
    """P archived under "dup" and purged; new mail joins "dup" (popa3d hashes a few
    headers). Nothing tells which message is P, so none is fetched (rule 5) nor
    deleted, the pass goes on and reports them as purged."""
    p_raw, other = mail(1), mail(2)
    server = pop3([("dup", p_raw), ("u2", other)])
    acct = account(server, leave_on_server=False)
    server.fail_quit(times=1)  # keep both on the server
    collect(Collector(store), acct)
    _purge(store.engine, "dup")
    server.replace_mailbox([("dup", p_raw), ("dup", mail(3)), ("u2", other)])
    mark = len(server.log)
    report = collect(Collector(store), acct)
    assert report.status == "ok" and report.skipped_by["purged"] == 2
    assert sent(server, "RETR", mark) == []
    assert sent(server, "DELE", mark) == ["DELE 3"]  # only u2, archived before
    assert sha(p_raw) not in archive(store.engine)


def test_tombstoned_uidl_is_never_fetched_again(store, pop3, account):
    msgs = [(f"u{i}", mail(i)) for i in range(1, 4)]
    server = pop3(msgs)
    acct = account(server)
    collector = Collector(store)
    collect(collector, acct)
    purged = _purge(store.engine, "u2")
    assert purged == sha(msgs[1][1])

    server.add_message(mail(4), "u4")
    mark = len(server.log)
    report = collect(collector, acct)
    assert counts(report) == ("ok", 4, 1, 1, 0, 0)
    assert sent(server, "RETR", mark) == ["RETR 4"]
    assert purged not in archive(store.engine)
    row = by_uidl(store.engine)["u2"]
    assert (row.sha256, row.tombstone, row.deleted_on_server_at) == (None, True, None)

    # Gone from the listing for a while, then back: still not fetched.
    server.replace_mailbox([m for m in server.mailbox if m[0] != "u2"])
    collect(collector, acct)
    assert by_uidl(store.engine)["u2"].deleted_on_server_at is not None
    server.replace_mailbox(msgs + [("u4", mail(4))])
    mark = len(server.log)
    report = collect(collector, acct)
    assert report.status == "ok" and (report.new, report.archived) == (0, 0)
    assert sent(server, "RETR", mark) == []
    assert purged not in archive(store.engine)
    row = by_uidl(store.engine)["u2"]
    assert (row.sha256, row.tombstone, row.deleted_on_server_at) == (None, True, None)

    # A later pass with its size changed: neither fetched nor deleted.
    server.set_list_size(2, len(msgs[1][1]) + 1)
    acct_delete = account(server, leave_on_server=False)
    mark = len(server.log)
    report = collect(collector, acct_delete)
    assert report.status == "ok"
    assert sent(server, "RETR", mark) == []
    assert "DELE 2" not in sent(server, "DELE", mark)
    assert any("purged" in w for w in report.warnings)
    assert ("u2", msgs[1][1]) in server.mailbox
    assert purged not in archive(store.engine)


# ------------------------------------------------------------------ several accounts


@pytest.mark.parametrize("concurrent", [1, 4])
def test_same_message_in_several_accounts_is_stored_once(store, pop3, tmp_path, db_url,
                                                         concurrent):
    # Four accounts collected at once (max_concurrent_accounts defaults to 4): every
    # pass must succeed on every backend, the shared message stored once.
    shared = mail(100, "sent to every mailbox")
    names = ["alpha", "beta", "gamma", "delta"]
    own = {name: mail(i, f"only for {name}") for i, name in enumerate(names, 1)}
    servers = {name: pop3([(f"{name}-9", own[name]), (f"{name}-1", shared)]) for name in names}
    config = make_config(tmp_path, db_url, *[
        account_for(servers[name], name, leave_on_server=False) for name in names])
    reports = collect_accounts(store, list(config.accounts), concurrent)
    for report in reports:
        check_run(store.engine, report)
    assert [(r.account, r.status) for r in reports] == [(name, "ok") for name in names]
    assert sum(r.archived for r in reports) == 5 and sum(r.duplicates for r in reports) == 3
    assert archive(store.engine) == {sha(shared), *(sha(m) for m in own.values())}
    rows = deliveries(store.engine)
    assert sorted((r.account, r.uidl) for r in rows if r.sha256 == sha(shared)) == sorted(
        (name, f"{name}-1") for name in names)
    assert len(rows) == 8
    assert all(server.mailbox == [] for server in servers.values())


# ------------------------------------------------------------------ vanished messages


def test_vanished_message_is_marked_and_not_stored_twice_when_back(store, pop3, account):
    msgs = [(f"u{i}", mail(i)) for i in range(1, 4)]
    server = pop3(msgs)
    acct = account(server)
    clock = Clock()
    collector = clocked_collector(store, clock)
    collect(collector, acct)

    clock.set(days=2)
    server.replace_mailbox([msgs[0], msgs[2]])  # a mail client deleted u2
    report = collect(collector, acct)
    assert counts(report) == ("ok", 2, 0, 0, 0, 0)
    rows = by_uidl(store.engine)
    assert rows["u2"].deleted_on_server_at == clock.now
    assert rows["u1"].deleted_on_server_at is None and rows["u3"].deleted_on_server_at is None

    clock.set(days=3)
    server.replace_mailbox(msgs)  # restored, same UIDL
    report = collect(collector, acct)
    assert report.status == "ok" and report.archived == 0
    assert len(archive(store.engine)) == 3 and len(deliveries(store.engine)) == 3
    assert by_uidl(store.engine)["u2"].deleted_on_server_at is None

    server.add_message(msgs[1][1], "u2-copy")  # moved back by a client under a new UIDL
    report = collect(collector, acct)
    assert (report.status, report.archived, report.duplicates) == ("ok", 0, 1)
    assert len(archive(store.engine)) == 3
    assert by_uidl(store.engine)["u2-copy"].sha256 == sha(msgs[1][1])

    mark = len(server.log)
    assert counts(collect(collector, acct)) == ("ok", 4, 0, 0, 0, 0)
    assert sent(server, "RETR", mark) == []


@pytest.mark.parametrize(("expire", "policy", "warned"), [
    ("EXPIRE 0", {}, "EXPIRE 0"),
    ("EXPIRE 10", {"delete_after": "30d"}, "EXPIRE 10"),
    ("EXPIRE 60", {"delete_after": "30d"}, None),
    ("EXPIRE NEVER", {}, None),
    ("EXPIRE 0", {"leave_on_server": False}, None),
])
def test_expire_capability_contradicting_the_policy_is_warned(
        store, pop3, account, tmp_path, db_url, expire, policy, warned):
    from archiver.collect.runner import check_account
    from tests.support.pop3server import DEFAULT_CAPABILITIES

    server = pop3([("u1", mail(1))], capabilities=[*DEFAULT_CAPABILITIES, expire])
    acct = account(server, **policy)
    checked = check_account(acct)  # first: it must change nothing on the server
    report = collect(Collector(store), acct)
    assert report.status == "ok" and checked["status"] == "ok"
    assert checked["expire"] == expire.split(" ", 1)[1]
    assert checked["messages"] == 1
    if warned:
        assert any(warned in w for w in report.warnings)
        assert any(warned in w for w in checked["warnings"])
    else:
        assert not any("EXPIRE" in w for w in report.warnings + checked["warnings"])


def test_per_user_expire_is_read_after_login(store, pop3, account):
    """RFC 2449: "EXPIRE 30 USER" before login means the real value comes after it."""
    from archiver.collect.runner import check_account
    from tests.support.pop3server import DEFAULT_CAPABILITIES

    server = pop3([("u1", mail(1))], capabilities=[*DEFAULT_CAPABILITIES, "EXPIRE 30 USER"])

    def capa(session, arg):
        if session.state != "TRANSACTION":
            return None
        caps = [*DEFAULT_CAPABILITIES, "EXPIRE 0"]
        return ("+OK\r\n" + "".join(c + "\r\n" for c in caps) + ".\r\n").encode()

    server.script("CAPA", capa)
    acct = account(server)  # leave_on_server = true, kept forever
    checked = check_account(acct)
    assert checked["expire"] == "0"
    assert any("EXPIRE 0" in w for w in checked["warnings"])
    report = collect(Collector(store), acct)
    assert report.status == "ok" and any("EXPIRE 0" in w for w in report.warnings)
    assert len(sent(server, "CAPA")) == 4  # before and after login, in each session


# ------------------------------------------------------------------ collect --json and the exit code


def test_collect_json_says_what_was_left_and_why_and_only_failures_fail(pop3, tmp_path, db_url,
                                                                        cli):
    """An oversized message left by policy is reported, not a failure (exit 0); a
    message the server refuses with -ERR fails the command (exit 1)."""
    msgs = [("u1", mail(1)), ("u2", mail(2, pad=5000)), ("u3", mail(3))]
    server = pop3(msgs)
    config = write_config(tmp_path, db_url, [account_for(server, max_message_size="1KB")])
    result = cli("collect", "--json", config=config)
    assert result.exit_code == 0, result
    [entry] = result.json()["accounts"]
    assert entry["status"] == "ok" and entry["archived"] == 2
    assert entry["skipped"] == {"too_large": 1, "invalid_uidl": 0, "purged": 0,
                                "retr_error": 0, "store_refused": 0, "size_mismatch": 0}
    assert any("message 2" in w and "max_message_size" in w for w in entry["warnings"])

    server.add_message(mail(4), "u4")
    server.fail_retr(4, "-ERR Message is being delivered.")
    result = cli("collect", "--json", config=config)
    assert result.exit_code == 1, result
    [entry] = result.json()["accounts"]
    assert entry["status"] == "ok" and entry["archived"] == 0
    assert (entry["skipped"]["too_large"], entry["skipped"]["retr_error"]) == (1, 1)
    assert any("message 4 (UIDL u4) left on the server" in w for w in entry["warnings"])
    text = cli("collect", config=config)
    assert text.exit_code == 1 and "1 retr error" in text.stdout and "1 too large" in text.stdout
    assert "warning: message 4" in text.stderr


@pytest.mark.parametrize("signum", ["SIGTERM", "SIGINT"])
def test_an_interrupted_collect_is_recorded_as_interrupted(pop3, tmp_path, db_url, engine,
                                                           signum):
    """SIGTERM (or Ctrl-C) mid-pass: exit at once, the run says "interrupted", not
    "running" or an internal error, and nothing is deleted on the server."""
    import signal
    import subprocess
    import sys
    import time

    msgs = [(f"u{i}", mail(i, pad=2000)) for i in range(1, 6)]
    server = pop3(msgs).drip(chunk=200, delay=0.05, commands=["RETR"])
    config = write_config(tmp_path, db_url, [account_for(server, leave_on_server=False,
                                                         timeout="30s")])
    proc = subprocess.Popen([sys.executable, "-m", "archiver", "--config", str(config),
                             "collect"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not sent(server, "RETR"):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(getattr(signal, signum))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err.decode()
    assert b"Traceback" not in err
    (run,) = runs(engine)
    assert (run.status, run.error_kind) == ("error", "interrupted") and run.finished_at
    assert sent(server, "DELE") == [] and server.mailbox == msgs
