"""The collector against every POP3 server we test with (issue 8; README "Servers tested").

Each server runs as a private instance on loopback, once per module: Dovecot,
Courier, GNU Mailutils (with an mbox and with a maildir) and popa3d. For each
server and database backend the same contract is checked:

* byte-exact: the archive holds exactly what the server's RETR sends, as an
  independent client (the standard library's poplib) receives it in a session
  just before ours — for GNU Mailutils with an mbox, which rewrites status
  headers at the end of a session, that or the server's rewrite of it;
* no duplicates: later passes store nothing new;
* all three leave-on-server policies (keep, delete_after, delete at once),
  with what the server really still holds.

Then what each server does differently: Courier's UTF-8 stand-in (RFC 6856),
Mailutils' APOP timestamp, X-UIDL reuse, EXPIRE spelling and status rewrites,
popa3d's header-hash UIDLs, and TLS (both modes, and a mode at the wrong port).
"""

from __future__ import annotations

import hashlib
import itertools
import poplib
import secrets
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from archiver.collect.collector import Collector
from archiver.collect.pop3 import GREETING_PROBE_AFTER, POP3Client
from archiver.db import schema
from archiver.errors import TLSError
from archiver.store import content
from archiver.store.ingest import MessageStore
from archiver.store.rewrites import is_status_rewrite
from tests.collect.accounts import make_config
from tests.support.courier import Courier, require_courier
from tests.support.dovecot import Dovecot, require_dovecot
from tests.support.mailutils import Mailutils, require_mailutils
from tests.support.popa3d import Popa3d, require_popa3d

T0 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)

SERVERS = {
    "dovecot": (require_dovecot, Dovecot),
    "courier": (require_courier, Courier),
    "mailutils-mbox": (require_mailutils, lambda root: Mailutils(root, mailbox_format="mbox")),
    "mailutils-maildir": (require_mailutils,
                          lambda root: Mailutils(root, mailbox_format="maildir")),
    "popa3d": (require_popa3d, Popa3d),
}
#: servers whose RETR of a message changes between sessions (status headers)
REWRITES = {"mailutils-mbox"}
#: servers with TLS (STLS on pop3_port, implicit TLS on pop3s_port)
WITH_TLS = ["dovecot", "courier", "mailutils-mbox"]
MAILUTILS = ["mailutils-mbox", "mailutils-maildir"]


def on(*kinds: str):
    """Run a test only against these servers (indirect: the module's instances)."""
    return pytest.mark.parametrize("server", list(kinds), indirect=True)


#: for tests where the database plays no part
sqlite_only = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)

_users = itertools.count(1)


# ------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module", params=list(SERVERS))
def server(request, tmp_path_factory):
    """One private instance of each server for the module (``server.kind`` names it)."""
    require, make = SERVERS[request.param]
    require()
    instance = make(tmp_path_factory.mktemp(request.param)).start()
    instance.kind = request.param
    yield instance
    instance.stop()


class User:
    """A new POP3 user on ``server`` and config.toml keys of an account for it."""

    def __init__(self, server) -> None:
        self.server = server
        self.name = f"arc{next(_users)}"
        self.password = "pw-" + secrets.token_urlsafe(9)
        server.add_user(self.name, self.password)

    def account(self, *, tls: str = "none", **overrides) -> dict:
        port = self.server.pop3s_port if tls == "implicit" else self.server.pop3_port
        keys = {"name": self.name, "host": self.server.host, "port": port, "tls": tls,
                "username": self.name, "password": self.password, "timeout": "20s"}
        if tls != "none":
            keys["ca_file"] = str(self.server.ca_file)
        keys.update(overrides)
        return keys

    def deliver(self, messages: list[bytes]) -> None:
        self.server.deliver_many(self.name, messages)

    def on_server(self, expected: int | None = None) -> int:
        """Messages the server holds now. Courier answers QUIT before it has removed
        what was deleted, so wait a moment for ``expected`` there."""
        if expected is not None and hasattr(self.server, "wait_for_mailbox_count"):
            return self.server.wait_for_mailbox_count(self.name, expected)
        return self.server.mailbox_count(self.name)

    def retrieve_independently(self) -> list[bytes]:
        """Every message as poplib receives it (UTF8 first when offered, UIDL too,
        like our client), its lines joined again with CRLF: all four servers end
        every line with CRLF, so nothing is lost."""
        pop = poplib.POP3(self.server.host, self.server.pop3_port, timeout=20)
        try:
            try:
                if "UTF8" in pop.capa():
                    pop.utf8()
            except poplib.error_proto:
                pass  # popa3d: no CAPA
            pop.user(self.name)
            pop.pass_(self.password)
            pop.uidl()
            count = len(pop.list()[1])
            return [b"".join(line + b"\r\n" for line in pop.retr(n)[1])
                    for n in range(1, count + 1)]
        finally:
            pop.quit()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def archive(engine) -> dict[str, bytes]:
    with engine.connect() as conn:
        return {msg.sha256: content.read_bytes(conn, msg) for msg in content.iter_messages(conn)}


def deliveries(engine, account: str) -> list:
    d, a = schema.deliveries, schema.accounts
    with engine.connect() as conn:
        return conn.execute(select(d).join(a, a.c.id == d.c.account_id)
                            .where(a.c.name == account)).all()


def collect(engine, tmp_path, db_url, keys: dict, clock=None):
    account = make_config(tmp_path, db_url, keys).accounts[0]
    store = MessageStore(engine, clock=clock) if clock else MessageStore(engine)
    with Collector(store, clock=clock) if clock else Collector(store) as collector:
        report = collector.collect(account)
    assert report.status == "ok", report.error
    assert report.message_failures == 0, report.warnings
    return report


def corpus(user: User) -> list[bytes]:
    """Distinct messages in file form (each with its own first Received: line, so
    popa3d's header-hash UIDLs differ), covering what a byte-exact store must keep."""
    def msg(n: int, headers: str, body: bytes, eol: bytes = b"\n") -> bytes:
        head = (f"Received: from relay{n}.example.net by mx.example.org; "
                f"Mon, 1 Jun 2026 09:{n:02d}:00 +0000\n"
                f"Message-ID: <{user.name}.{n}@example.org>\n{headers}").encode()
        return (head + b"\n" + body).replace(b"\n", eol)

    big = b"".join(b"line %06d of a longer message, padded to look like text\n" % i
                   for i in range(4000))
    return [
        msg(1, "From: a@example.org\nSubject: plain\n", b"Hello.\n"),
        msg(2, "From: b@example.org\nSubject: stored with CRLF\n", b"crlf body\n", b"\r\n"),
        msg(3, "From: J\u00f6rg M\u00fcller <j@example.org>\nSubject: Gr\u00fc\u00dfe\n",
            "raw UTF-8 headers (RFC 6532)\n".encode()),
        msg(4, "From: c@example.org\nSubject: dots\n", b".leading dot\n..two\n.\nend\n"),
        msg(5, "From: d@example.org\nSubject: from lines\n",
            b"From the start of a line\n>From already quoted\n"),
        msg(6, "From: e@example.org\nSubject: no final newline\n", b"the end"),
        msg(7, "From: f@example.org\nSubject: 8-bit body\nContent-Type: text/plain; "
            "charset=iso-8859-1\n", "caf\u00e9 cr\u00e8me\n".encode("latin-1")),
        msg(8, "From: g@example.org\nSubject: big\n", big),
    ]


# --------------------------------------------------------- the common contract


def test_keep_is_byte_exact_and_never_duplicates(server, engine, db_url, tmp_path):
    user = User(server)
    messages = corpus(user)
    user.deliver(messages)
    reference = user.retrieve_independently()
    assert len(set(reference)) == len(messages)

    report = collect(engine, tmp_path, db_url, user.account())
    assert (report.listed, report.new, report.archived) == (8, 8, 8)
    stored = archive(engine)
    if server.kind in REWRITES:  # what we got may be the rewrite of what poplib got
        assert all(any(ref == got or is_status_rewrite(ref, got) for got in stored.values())
                   for ref in reference)
    else:
        assert set(stored) == {sha(r) for r in reference}
    assert not any(b"Cannot display Unicode content" in raw for raw in stored.values())
    assert user.on_server() == 8

    later = collect(engine, tmp_path, db_url, user.account())
    assert (later.new, later.archived, later.duplicates, later.deleted_on_server) == (0, 0, 0, 0)
    settled = collect(engine, tmp_path, db_url, user.account())
    assert (settled.new, settled.archived, settled.rewritten) == (0, 0, 0)
    if server.kind not in REWRITES:
        assert set(archive(engine)) == {sha(r) for r in reference}
    assert user.on_server() == 8
    assert len([d for d in deliveries(engine, user.name) if d.state == "archived"]) == 8


def test_delete_at_once_deletes_exactly_what_was_archived(server, engine, db_url, tmp_path):
    user = User(server)
    messages = corpus(user)
    user.deliver(messages)
    report = collect(engine, tmp_path, db_url, user.account(leave_on_server=False))
    assert (report.archived, report.deleted_on_server) == (8, 8)
    assert user.on_server(expected=0) == 0
    rows = deliveries(engine, user.name)
    assert len(rows) == 8 and all(r.deleted_on_server_at is not None for r in rows)
    assert len(archive(engine)) == 8

    again = collect(engine, tmp_path, db_url, user.account(leave_on_server=False))
    assert (again.listed, again.archived, again.deleted_on_server) == (0, 0, 0)


def test_delete_after_waits_for_each_message(server, engine, db_url, tmp_path):
    user = User(server)
    messages = corpus(user)
    user.deliver(messages[:5])
    clock = Clock(T0)
    keys = user.account(delete_after="2d")
    assert collect(engine, tmp_path, db_url, keys, clock).archived == 5
    clock.now = T0 + DAY
    user.deliver(messages[5:])
    report = collect(engine, tmp_path, db_url, keys, clock)
    assert (report.archived, report.deleted_on_server) == (3, 0)
    clock.now = T0 + 2 * DAY  # the first five are due, the last three not yet
    report = collect(engine, tmp_path, db_url, keys, clock)
    assert report.deleted_on_server == 5 and user.on_server(expected=3) == 3
    clock.now = T0 + 3 * DAY
    assert collect(engine, tmp_path, db_url, keys, clock).deleted_on_server == 3
    assert user.on_server(expected=0) == 0
    stored = len(archive(engine))
    # every message once; with an mbox also the server's rewrites of the first five
    # (session 1 -> 2) and of the last three, which are archived already rewritten
    assert stored > 8 if server.kind in REWRITES else stored == 8


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


# ---------------------------------------------------------------------- TLS


@sqlite_only
@on(*WITH_TLS)
@pytest.mark.parametrize("tls", ["starttls", "implicit"])
def test_tls_modes(server, engine, db_url, tmp_path, tls):
    user = User(server)
    user.deliver(corpus(user)[:2])
    report = collect(engine, tmp_path, db_url, user.account(tls=tls))
    assert report.archived == 2


@on(*WITH_TLS)
def test_a_clear_text_mode_at_the_tls_port_fails_fast_naming_the_setting(server):
    t0 = time.monotonic()
    with pytest.raises(TLSError, match='set tls = "implicit"'):
        POP3Client(server.host, server.pop3s_port, tls="starttls", timeout=60).connect()
    assert time.monotonic() - t0 < GREETING_PROBE_AFTER + 3
    with pytest.raises(TLSError, match='set tls = "starttls"'):
        POP3Client(server.host, server.pop3_port, tls="implicit", timeout=60).connect()


# ------------------------------------------------------- what each server does


@on("courier")
def test_courier_sends_utf8_headers_as_stored_once_asked(server, engine, db_url, tmp_path):
    """Without RFC 6856 UTF8 Courier sends a "Cannot display Unicode content"
    stand-in, and delete-at-once would then delete the original."""
    user = User(server)
    utf8 = corpus(user)[2]
    user.deliver([utf8])
    pop = POP3Client(server.host, server.pop3_port, tls="none")
    pop.connect()
    assert "UTF8" in pop.capabilities and pop.utf8
    pop.close()
    report = collect(engine, tmp_path, db_url, user.account(leave_on_server=False))
    assert (report.archived, report.deleted_on_server) == (1, 1)
    [raw] = archive(engine).values()
    assert raw == utf8.replace(b"\n", b"\r\n")


@on("courier")
@pytest.mark.parametrize("lines", [10, 3000])
def test_courier_stand_in_is_never_archived_nor_deleted(server, engine, db_url, tmp_path,
                                                        monkeypatch, lines):
    """Were UTF8 not sent (an older archiver, or a server that lists UTF8 only after
    login), Courier's stand-in for mail with raw UTF-8 headers is ~740 octets larger
    than LIST says, however long the mail: the size check keeps it on the server."""
    user = User(server)
    body = b"".join(b"line %05d\n" % i for i in range(lines))
    utf8 = ("From: J\u00f6rg <j@example.org>\nSubject: Gr\u00fc\u00dfe\n\n").encode() + body
    user.deliver([utf8])
    monkeypatch.setattr(POP3Client, "_utf8", lambda self: None)
    account = make_config(tmp_path, db_url, user.account(leave_on_server=False)).accounts[0]
    with Collector(MessageStore(engine)) as collector:
        report = collector.collect(account)
    assert report.skipped_by["size_mismatch"] == 1 and report.message_failures == 1
    assert report.archived == 0 and report.deleted_on_server == 0
    assert archive(engine) == {} and user.on_server() == 1


@on(*MAILUTILS)
def test_mailutils_login_on_clear_text_despite_its_apop_timestamp(server):
    """Mailutils greets with an APOP timestamp but has no APOP secrets."""
    user = User(server)
    pop = POP3Client(server.host, server.pop3_port, tls="none")
    pop.connect()
    assert "<" in pop.greeting  # the timestamp
    assert pop.login(user.name, user.password) == "user"  # APOP refused, USER/PASS next
    # EXPIRE written without its space ("EXPIRENEVER"), read as RFC 2449 says
    assert pop.capabilities["EXPIRE"] == ["NEVER"]
    pop.close()


@on(*MAILUTILS, "popa3d")
def test_messages_sharing_a_uidl_are_all_archived_in_one_pass(server, engine, db_url,
                                                              tmp_path):
    """Mailutils reuses an X-UIDL header found in the mail; popa3d hashes only the first
    Received:, and Date/Message-ID above it: different mail gets one UIDL."""
    user = User(server)
    same = ("X-UIDL: shared-by-two\n" if server.kind.startswith("mailutils")
            else "Received: from one.example.net by mx; Mon, 1 Jun 2026 09:00:00 +0000\n")
    messages = [f"{same}From: x@example.org\nSubject: {n}\n\nbody {n}\n".encode()
                for n in ("first", "second", "third")]
    user.deliver(messages)
    report = collect(engine, tmp_path, db_url, user.account())
    assert report.archived == 3 and report.new == 3
    assert any("share 1 UIDL" in w for w in report.warnings)
    again = collect(engine, tmp_path, db_url, user.account(leave_on_server=False))
    # Known limitation: without a UIDL to tie them to, the server's status rewrite of
    # such messages (Mailutils, mbox) is stored as new content, once.
    assert (again.archived, again.deleted_on_server) == (
        3 if server.kind in REWRITES else 0, 3)
    assert user.on_server(expected=0) == 0


@on("mailutils-mbox")
def test_mailutils_mbox_status_rewrite_is_the_same_mail(server, engine, db_url, tmp_path):
    """The first session ends with Status:/X-UID/X-IMAPbase written into the mbox: the
    next pass gets other bytes under the same UIDLs, stored as the server's rewrite."""
    user = User(server)
    user.deliver(corpus(user)[:3])
    assert collect(engine, tmp_path, db_url, user.account()).archived == 3
    report = collect(engine, tmp_path, db_url, user.account())
    assert (report.new, report.archived, report.rewritten) == (0, 0, 3)
    stored = archive(engine)
    assert len(stored) == 6
    rows = [r for r in deliveries(engine, user.name) if r.rewrite_of is not None]
    assert len(rows) == 3
    settled = collect(engine, tmp_path, db_url, user.account())
    assert (settled.archived, settled.rewritten) == (0, 0)
