"""The collector against a real Dovecot (DESIGN.md §2, §4, §5).

Every assertion is about a real outcome: the archive holds, by SHA-256,
exactly the wire form (``to_wire``) of what was delivered; Delivery rows say
what the archive believes about the server; the maildir says what the server
really still has; and Dovecot's own logout lines (``del=N``) say what was
really deleted. Each test runs once per database backend.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import random
import re
import time
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from archiver.collect.collector import Collector
from archiver.db import schema
from archiver.store import content
from archiver.store.ingest import MessageStore
from tests.collect.accounts import make_config, write_config
from tests.conftest import run_cli
from tests.support.corpus import generate_mix, to_wire, tricky_cases

DAY = timedelta(days=1)
SECOND = timedelta(seconds=1)
REPORT_KEYS = {"account", "status", "listed", "new", "archived", "duplicates", "rewritten",
               "deleted_on_server", "bytes", "duration_s", "error", "skipped", "warnings"}


# ----------------------------------------------------------------- helpers


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_form(messages: list[bytes]) -> list[bytes]:
    """Every other message with bare LF line ends, as many maildirs hold them."""
    return [m.replace(b"\r\n", b"\n") if i % 2 else m for i, m in enumerate(messages)]


def archived(engine) -> dict[str, int]:
    """{sha256: size} of every message in the archive."""
    m = schema.messages
    with engine.connect() as conn:
        return dict(conn.execute(select(m.c.sha256, m.c.size)).all())


def deliveries(engine, account: str | None = None) -> list:
    """Delivery rows (account, uidl, sha256, deleted_on_server_at, first_seen_at)."""
    d, m, a = schema.deliveries, schema.messages, schema.accounts
    joined = d.join(a, a.c.id == d.c.account_id).outerjoin(m, m.c.id == d.c.message_id)
    query = select(a.c.name.label("account"), d.c.uidl, m.c.sha256, d.c.deleted_on_server_at,
                   d.c.first_seen_at).select_from(joined)
    if account is not None:
        query = query.where(a.c.name == account)
    with engine.connect() as conn:
        return conn.execute(query).all()


def runs(engine) -> list:
    r = schema.collection_runs
    with engine.connect() as conn:
        return conn.execute(select(r).order_by(r.c.id)).all()


def assert_archive_holds(store: MessageStore, delivered: list[bytes]) -> None:
    """The archive holds exactly the wire forms of ``delivered``, byte for byte."""
    wire = {sha(to_wire(raw)): to_wire(raw) for raw in delivered}
    assert set(archived(store.engine)) == set(wire)
    with store.engine.connect() as conn:
        for digest, data in wire.items():
            assert content.read_bytes(conn, content.resolve(conn, digest)) == data


def account_of(tmp_path, db_url, acc: dict):
    return make_config(tmp_path, db_url, acc).accounts[0]


def check(report, **expected) -> None:
    got = {k: getattr(report, k) for k in expected}
    assert got == expected, (report.error, report.warnings)


def mix(n: int, seed: int) -> list[bytes]:
    return file_form(list(generate_mix(n, seed=seed)))


def new_log(server, offset: int, want: str, timeout: float = 5.0) -> str:
    """Dovecot's log after ``offset``, once it contains ``want`` (or the timeout passed)."""
    deadline = time.monotonic() + timeout
    while True:
        text = server.session_log()[offset:]
        if want in text or time.monotonic() > deadline:
            return text
        time.sleep(0.02)


# --------------------------------------------------------- passes and UIDLs


def test_passes_archive_new_mail_once(store, mailbox, tmp_path, db_url):
    first = mix(30, seed=101)
    mailbox.deliver_many(first)
    account = account_of(tmp_path, db_url, mailbox.account())
    collector = Collector(store)

    report = collector.collect(account)
    check(report, status="ok", listed=30, new=30, archived=30, duplicates=0, deleted_on_server=0,
          bytes=sum(len(to_wire(m)) for m in first))
    assert_archive_holds(store, first)
    rows = deliveries(store.engine, account.name)
    assert len(rows) == 30 and len({r.uidl for r in rows}) == 30
    assert {r.sha256 for r in rows} == {sha(to_wire(m)) for m in first}
    assert all(r.deleted_on_server_at is None for r in rows)

    report = collector.collect(account)
    check(report, status="ok", listed=30, new=0, archived=0, duplicates=0, bytes=0)

    later = mix(5, seed=102)
    mailbox.deliver_many(later)
    report = collector.collect(account)
    check(report, status="ok", listed=35, new=5, archived=5, deleted_on_server=0)
    assert_archive_holds(store, first + later)
    assert len(deliveries(store.engine, account.name)) == 35

    # What Dovecot itself saw: every message RETRieved once, nothing deleted.
    sessions = mailbox.wait_for_sessions(3)
    assert [(s.retr, s.deleted, s.quit) for s in sessions] == [(30, 0, True), (0, 0, True),
                                                               (5, 0, True)]
    assert mailbox.count() == 35
    assert [r.status for r in runs(store.engine)] == ["ok", "ok", "ok"]


def test_uidl_format_of_production_servers(store, start_dovecot, mailbox_factory, tmp_path, db_url):
    server = start_dovecot(uidl_format="%08Xu%08Xv")
    box = mailbox_factory(server)
    messages = mix(12, seed=103)
    box.deliver_many(messages)
    account = account_of(tmp_path, db_url, box.account())
    collector = Collector(store)
    check(collector.collect(account), status="ok", listed=12, new=12, archived=12)
    uidls = [r.uidl for r in deliveries(store.engine, account.name)]
    assert len(set(uidls)) == 12
    # %08Xu%08Xv: the message's IMAP UID, then the mailbox's UIDVALIDITY, in hex
    assert all(re.fullmatch(r"[0-9a-fA-F]{16}", u) for u in uidls), uidls
    assert sorted(int(u[:8], 16) for u in uidls) == list(range(1, 13))
    assert len({u[8:] for u in uidls}) == 1
    check(collector.collect(account), status="ok", listed=12, new=0, archived=0)
    assert_archive_holds(store, messages)


# ------------------------------------------------------ leave-on-server policies


def test_keep_deletes_nothing(store, mailbox, tmp_path, db_url):
    messages = mix(10, seed=104)
    mailbox.deliver_many(messages)
    account = account_of(tmp_path, db_url, mailbox.account(leave_on_server=True))
    collector = Collector(store)
    for _ in range(3):
        check(collector.collect(account), status="ok", listed=10, deleted_on_server=0)
    assert mailbox.count() == 10
    sessions = mailbox.wait_for_sessions(3)
    assert all(s.deleted == 0 and s.quit for s in sessions), sessions
    assert all(r.deleted_on_server_at is None for r in deliveries(store.engine, account.name))
    assert_archive_holds(store, messages)


def test_delete_after_boundary(engine, mailbox, tmp_path, db_url):
    # Whole seconds: every backend stores them exactly.
    archived_at = datetime(2026, 1, 5, 9, 30, 0, tzinfo=timezone.utc)
    now = [archived_at]
    store = MessageStore(engine, clock=lambda: now[0])
    collector = Collector(store, clock=lambda: now[0])
    messages = mix(8, seed=105)
    mailbox.deliver_many(messages)
    account = account_of(tmp_path, db_url, mailbox.account(delete_after="30d"))

    check(collector.collect(account), status="ok", new=8, archived=8, deleted_on_server=0)
    rows = deliveries(engine, account.name)
    assert {r.first_seen_at for r in rows} == {archived_at}

    now[0] = archived_at + 30 * DAY - SECOND
    check(collector.collect(account), status="ok", listed=8, new=0, deleted_on_server=0)
    assert mailbox.count() == 8
    assert all(r.deleted_on_server_at is None for r in deliveries(engine, account.name))

    # Mail that arrives now is archived now: its own 30 days have just begun.
    fresh = mix(1, seed=106)
    mailbox.deliver_many(fresh)
    now[0] = archived_at + 30 * DAY
    check(collector.collect(account), status="ok", listed=9, new=1, archived=1,
          deleted_on_server=8)
    assert mailbox.count() == 1
    rows = {r.sha256: r for r in deliveries(engine, account.name)}
    for raw in messages:
        assert rows[sha(to_wire(raw))].deleted_on_server_at == archived_at + 30 * DAY
    assert rows[sha(to_wire(fresh[0]))].deleted_on_server_at is None
    assert [s.deleted for s in mailbox.wait_for_sessions(3)] == [0, 0, 8]

    check(collector.collect(account), status="ok", listed=1, new=0, deleted_on_server=0)
    assert_archive_holds(store, messages + fresh)


def test_leave_on_server_false_deletes_in_the_same_pass(store, mailbox, tmp_path, db_url):
    messages = mix(15, seed=107)
    mailbox.deliver_many(messages)
    account = account_of(tmp_path, db_url, mailbox.account(leave_on_server=False))
    collector = Collector(store)
    check(collector.collect(account), status="ok", listed=15, new=15, archived=15,
          deleted_on_server=15)
    assert mailbox.count() == 0
    [session] = mailbox.wait_for_sessions(1)
    assert (session.retr, session.deleted, session.messages, session.quit) == (15, 15, 15, True)
    assert all(r.deleted_on_server_at is not None for r in deliveries(store.engine, account.name))
    assert_archive_holds(store, messages)
    check(collector.collect(account), status="ok", listed=0, new=0, deleted_on_server=0)


# ------------------------------------------------------------------- TLS


def _login_line(server, offset: int, user: str) -> str:
    text = new_log(server, offset, f"Login: user=<{user}>")
    [line] = [ln for ln in text.splitlines() if f"Login: user=<{user}>" in ln]
    return line


@pytest.mark.parametrize("tls", ["implicit", "starttls"])
def test_tls_modes(store, mailbox, tmp_path, db_url, tls):
    messages = mix(6, seed=108)
    mailbox.deliver_many(messages)
    offset = len(mailbox.server.session_log())
    account = account_of(tmp_path, db_url, mailbox.account(tls=tls))
    check(Collector(store).collect(account), status="ok", new=6, archived=6)
    assert ", TLS," in _login_line(mailbox.server, offset, mailbox.user)
    assert_archive_holds(store, messages)


def _assert_never_logged_in(server, offset: int, user: str, password: str) -> None:
    text = new_log(server, offset, "no auth attempts")
    assert "no auth attempts" in text, text
    assert "Login:" not in text and f"user=<{user}>" not in text and f"({user}," not in text, text
    assert password not in server.session_log()


def test_starttls_is_mandatory(store, start_dovecot, mailbox_factory, tmp_path, db_url):
    server = start_dovecot(ssl=False)
    box = mailbox_factory(server)
    box.deliver(b"Subject: secret\n\nnot to be read in clear text\n")
    offset = len(server.session_log())
    account = account_of(tmp_path, db_url, box.account(tls="starttls"))
    report = Collector(store).collect(account)
    check(report, status="error", error_kind="tls", archived=0)
    assert "STLS" in report.error and box.password not in report.error
    _assert_never_logged_in(server, offset, box.user, box.password)
    assert archived(store.engine) == {}


@pytest.mark.parametrize("tls", ["implicit", "starttls"])
def test_untrusted_certificate_is_refused(store, mailbox, tmp_path, db_url, tls):
    mailbox.deliver(b"Subject: x\n\nbody\n")
    offset = len(mailbox.server.session_log())
    account = account_of(tmp_path, db_url, mailbox.account(tls=tls, ca_file=None))
    report = Collector(store).collect(account)
    check(report, status="error", error_kind="tls", archived=0)
    assert "certificate" in report.error and "ca_file" in report.error
    _assert_never_logged_in(mailbox.server, offset, mailbox.user, mailbox.password)
    assert archived(store.engine) == {}


def test_certificate_for_another_host_is_refused(store, start_dovecot, mailbox_factory, tmp_path,
                                                 db_url):
    server = start_dovecot(cert_hostname="wrong.example")
    box = mailbox_factory(server)
    box.deliver(b"Subject: x\n\nbody\n")
    offset = len(server.session_log())
    account = account_of(tmp_path, db_url, box.account())  # trusts that very certificate
    report = Collector(store).collect(account)
    check(report, status="error", error_kind="tls", archived=0)
    assert "127.0.0.1" in report.error and "certificate" in report.error
    _assert_never_logged_in(server, offset, box.user, box.password)


# -------------------------------------------------------------- credentials


def test_wrong_password(store, mailbox, tmp_path, db_url, caplog):
    caplog.set_level(logging.DEBUG, logger="archiver")
    mailbox.deliver(b"Subject: x\n\nbody\n")
    wrong = "Wr0ng-" + mailbox.password[::-1]
    for tls in ("implicit", "none"):
        account = account_of(tmp_path, db_url, mailbox.account(tls=tls, password=wrong))
        report = Collector(store).collect(account)
        check(report, status="error", error_kind="auth", retryable=False, archived=0)
        assert "[AUTH]" in report.error
    plain = f"\0{mailbox.user}\0{wrong}".encode()  # what AUTH PLAIN sends, base64-encoded
    secrets_ = [wrong, mailbox.password, base64.b64encode(plain).decode()]
    run_errors = " ".join(r.error for r in runs(store.engine))
    assert [r.error_kind for r in runs(store.engine)] == ["auth", "auth"]
    for secret in secrets_:
        assert secret not in report.error
        assert secret not in run_errors
        assert secret not in caplog.text
        assert secret not in mailbox.server.session_log()
    # the logs were captured at all, the protocol trace included
    assert "login (AUTH PLAIN) failed" in caplog.text and "C: AUTH PLAIN ****" in caplog.text
    assert archived(store.engine) == {}


# ---------------------------------------------------- single-instance storage


def test_same_message_in_two_accounts_is_stored_once(store, mailbox_factory, tmp_path, db_url):
    a, b = mailbox_factory(), mailbox_factory()
    shared, only_a, only_b = mix(3, seed=109)
    a.deliver_many([shared, only_a])
    b.deliver_many([only_b, shared.replace(b"\r\n", b"\n")])  # same wire form, other file form
    config = make_config(tmp_path, db_url, a.account("a"), b.account("b"))
    collector = Collector(store)
    check(collector.collect(config.account("a")), status="ok", archived=2, duplicates=0)
    check(collector.collect(config.account("b")), status="ok", archived=1, duplicates=1)
    assert_archive_holds(store, [shared, only_a, only_b])
    rows = deliveries(store.engine)
    assert sorted(r.account for r in rows if r.sha256 == sha(to_wire(shared))) == ["a", "b"]
    assert len(rows) == 4


# ------------------------------------------------------------- byte-exactness


def test_tricky_messages_are_archived_byte_exact(store, mailbox, tmp_path, db_url):
    cases = tricky_cases()
    assert len(cases) == 53
    mailbox.deliver_many(c.raw for c in cases)
    report = Collector(store).collect(account_of(tmp_path, db_url, mailbox.account()))
    wire = {c.name: to_wire(c.raw) for c in cases}
    check(report, status="ok", listed=53, new=53, skipped=0,
          archived=len(set(wire.values())), bytes=sum(map(len, wire.values())))
    have = archived(store.engine)
    missing = [name for name, data in wire.items() if sha(data) not in have]
    assert not missing, f"not archived byte-exact: {missing}"
    assert_archive_holds(store, [c.raw for c in cases])


def big_multipart(size: int) -> bytes:
    """A ``size``-byte message (file form, LF): a short text part and a base64 attachment."""
    head = (
        "Return-Path: <scanner@example.com>\n"
        "From: Office Scanner <scanner@example.com>\n"
        "To: Archive Team <archive@example.org>\n"
        "Subject: Scans of the 2025 contracts (all pages)\n"
        "Date: Tue, 14 Jan 2025 16:02:11 +0100\n"
        "Message-ID: <scan-20250114-160211@example.com>\n"
        "MIME-Version: 1.0\n"
        'Content-Type: multipart/mixed; boundary="=_scan_7f3a"\n'
        "\n"
        "This is a multi-part message in MIME format.\n"
        "\n"
        "--=_scan_7f3a\n"
        "Content-Type: text/plain; charset=utf-8\n"
        "Content-Transfer-Encoding: 8bit\n"
        "\n"
        "Bonjour, the scanned contracts are attached. Grüße, the scanner\n"
        "\n"
        "--=_scan_7f3a\n"
        'Content-Type: application/zip; name="contracts-2025.zip"\n'
        'Content-Disposition: attachment; filename="contracts-2025.zip"\n'
        "Content-Transfer-Encoding: base64\n"
        "\n"
    ).encode()
    tail = b"\n--=_scan_7f3a--\n"
    # base64.encodebytes: 57 bytes -> one 76-character line + LF (77 bytes)
    lines = (size - len(head) - len(tail)) // 77
    payload = random.Random(50).randbytes(lines * 57)
    body = base64.encodebytes(payload)
    filler = size - len(head) - len(body) - len(tail)
    if filler > 0:  # a last, shorter base64 line brings the total to exactly `size`
        body += base64.b64encode(random.Random(51).randbytes(3 * (filler - 1) // 4))[: filler - 1]
        body += b"\n"
    message = head + body + tail
    return message


def test_fifty_megabyte_message(store, mailbox, tmp_path, db_url):
    raw = big_multipart(50 * 1024 * 1024)
    wire = to_wire(raw)
    assert len(wire) > 50 * 1024 * 1024
    mailbox.deliver(raw)
    started = time.monotonic()
    report = Collector(store).collect(account_of(tmp_path, db_url, mailbox.account()))
    check(report, status="ok", archived=1, bytes=len(wire))
    assert archived(store.engine) == {sha(wire): len(wire)}
    with store.engine.connect() as conn:
        msg = content.resolve(conn, sha(wire))
        digest, size = hashlib.sha256(), 0
        for block in content.iter_content(conn, msg):
            digest.update(block)
            size += len(block)
    assert (digest.hexdigest(), size) == (sha(wire), len(wire))
    print(f"50 MB message collected in {time.monotonic() - started:.1f}s")


# ---------------------------------------------------------------- the CLI


def test_collect_json_end_to_end(db_url, mailbox_factory, tmp_path, engine):
    sales, support = mailbox_factory(), mailbox_factory()
    sales_mail, support_mail = mix(7, seed=110), mix(4, seed=111)
    sales.deliver_many(sales_mail)
    support.deliver_many(support_mail)
    config = write_config(tmp_path, db_url, [sales.account("sales"),
                                             support.account("support", tls="starttls")])

    result = run_cli("collect", "--json", config=config)
    assert result.exit_code == 0, result
    doc = result.json()
    assert set(doc) == {"accounts"}
    assert [set(entry) for entry in doc["accounts"]] == [REPORT_KEYS, REPORT_KEYS]
    by_name = {e["account"]: e for e in doc["accounts"]}
    assert [e["account"] for e in doc["accounts"]] == ["sales", "support"]
    for name, mail in (("sales", sales_mail), ("support", support_mail)):
        entry = by_name[name]
        assert entry["status"] == "ok" and entry["error"] is None
        assert (entry["listed"], entry["new"], entry["archived"], entry["duplicates"],
                entry["deleted_on_server"]) == (len(mail), len(mail), len(mail), 0, 0)
        assert entry["bytes"] == sum(len(to_wire(m)) for m in mail)
        assert isinstance(entry["duration_s"], float)
    assert set(archived(engine)) == {sha(to_wire(m)) for m in sales_mail + support_mail}

    # --account selects; a second pass finds nothing new
    result = run_cli("collect", "--account", "support", "--json", config=config)
    assert result.exit_code == 0, result
    [entry] = result.json()["accounts"]
    assert (entry["account"], entry["listed"], entry["new"]) == ("support", 4, 0)

    # an unknown account: usage error with a suggestion, nothing collected
    result = run_cli("collect", "--account", "suport", "--json", config=config)
    assert result.exit_code == 2, result
    assert 'did you mean "support"' in result.stderr
    assert "error" in result.json()


def test_collect_json_one_account_fails(db_url, mailbox_factory, tmp_path, engine):
    good, bad = mailbox_factory(), mailbox_factory()
    mail = mix(3, seed=112)
    good.deliver_many(mail)
    bad.deliver_many(mix(2, seed=113))
    wrong = "not-" + bad.password
    config = write_config(tmp_path, db_url, [bad.account("bad", password=wrong),
                                             good.account("good")])
    result = run_cli("collect", "--json", config=config)
    assert result.exit_code == 1, result
    by_name = {e["account"]: e for e in result.json()["accounts"]}
    assert by_name["bad"]["status"] == "error" and "[AUTH]" in by_name["bad"]["error"]
    assert by_name["good"]["status"] == "ok" and by_name["good"]["archived"] == 3
    assert set(by_name["bad"]) == REPORT_KEYS
    assert wrong not in result.stdout + result.stderr
    assert set(archived(engine)) == {sha(to_wire(m)) for m in mail}
    assert bad.count() == 2


def test_collect_bad_config_exits_2_without_touching_the_archive(db_url, mailbox, tmp_path,
                                                                 engine):
    mailbox.deliver(b"Subject: x\n\nbody\n")
    config = write_config(tmp_path, db_url, [mailbox.account("sales", port=0)])
    result = run_cli("collect", "--json", config=config)
    assert result.exit_code == 2, result
    assert "accounts[0].port: must be 1-65535, got 0" in result.stderr
    assert "accounts[0].port" in result.json()["error"]
    assert runs(engine) == [] and archived(engine) == {}
    assert mailbox.sessions() == []


def test_check_connect_fetches_and_deletes_nothing(db_url, mailbox, tmp_path, engine):
    mail = mix(9, seed=114)
    mailbox.deliver_many(mail)
    config = write_config(tmp_path, db_url, [mailbox.account("sales", leave_on_server=False)])
    result = run_cli("check", "--connect", "--json", config=config)
    assert result.exit_code == 0, result
    [acc] = result.json()["accounts"]
    assert acc["status"] == "ok" and acc["error"] is None
    assert acc["messages"] == 9
    assert acc["bytes"] == sum(len(to_wire(m)) for m in mail)
    assert {"UIDL", "PIPELINING", "USER"} <= {c.split()[0] for c in acc["capabilities"]}
    [session] = mailbox.wait_for_sessions(1)
    assert (session.retr, session.top, session.deleted, session.quit) == (0, 0, 0, True)
    assert mailbox.count() == 9
    assert runs(engine) == [] and archived(engine) == {}


# ------------------------------------------------------ import, then collect


def mbox_of(messages: list[bytes]) -> bytes:
    parts = []
    for raw in messages:
        assert not re.search(rb"(?m)^From ", raw)
        parts.append(b"From archiver@example.com Thu Jan  2 10:00:00 2025\n" + raw + b"\n")
    return b"".join(parts)


def test_imported_then_collected_is_stored_once(db_url, mailbox, tmp_path, engine):
    # mbox cannot hold a body line starting with "From " unchanged: leave those out
    lf = [m.replace(b"\r\n", b"\n") for m in generate_mix(40, seed=115)
          if not re.search(rb"(?m)^From ", m)][:12]
    assert len(lf) == 12
    mbox = tmp_path / "old-mail.mbox"
    mbox.write_bytes(mbox_of(lf[:8]))
    eml = tmp_path / "one.eml"
    eml.write_bytes(lf[8])
    mailbox.deliver_many(lf)  # the same files on the server

    config = write_config(tmp_path, db_url, [mailbox.account("sales")])
    result = run_cli("import", str(mbox), "--format", "mbox", "--account", "old", "--json",
                     config=config)
    assert result.exit_code == 0, result
    assert result.json()["archived"] == 8
    result = run_cli("import", str(eml), "--format", "eml", "--json", config=config)
    assert result.json()["archived"] == 1

    result = run_cli("collect", "--json", config=config)
    assert result.exit_code == 0, result
    [entry] = result.json()["accounts"]
    assert (entry["new"], entry["archived"], entry["duplicates"]) == (12, 3, 9)
    assert set(archived(engine)) == {sha(to_wire(m)) for m in lf}
    assert len(deliveries(engine)) == 12 + 9


# ------------------------------------------------------------------- demo


def test_demo_end_to_end(tmp_path):
    from tests.support.dovecot import require_dovecot

    require_dovecot()
    result = run_cli("demo", "--dir", str(tmp_path / "demo"), "--messages", "40", "--json",
                     cwd=tmp_path)
    assert result.exit_code == 0, result
    doc = result.json()
    first, second = doc["passes"]
    assert "Dovecot" in doc["server"]
    assert (first["status"], first["listed"], first["new"], first["archived"]) == ("ok", 40, 40, 40)
    assert (second["status"], second["listed"], second["new"], second["archived"]) == (
        "ok", 40, 0, 0)
    shown = run_cli("show", doc["sample_id"], "--json", config=tmp_path / "demo" / "config.toml")
    assert shown.exit_code == 0, shown
    assert json.loads(shown.stdout)["id"] == doc["sample_id"]
