"""The private Courier POP3 server (tests/support/courier.py).

These tests probe it with poplib and a raw socket reader: they check the
harness itself (ports, TLS, users, delivery, clean shutdown) and pin the
Courier behaviour the module docstring promises, not our POP3 client.
"""

from __future__ import annotations

import base64
import os
import poplib
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import courier as courier_module
from tests.support.corpus import to_wire
from tests.support.courier import Courier, find_courier, require_courier
from tests.support.processes import live_members

REPO = Path(__file__).resolve().parents[2]

UTF8_MESSAGE = "From: Jörg Müller <j@example.com>\nSubject: Grüße aus Köln\n\nbody\n".encode()


@pytest.fixture
def server(tmp_path):
    require_courier()
    with Courier(tmp_path / "courier").start() as running:
        running.add_user("alice", "secret")
        yield running


def _login(server: Courier, user: str = "alice", password: str = "secret") -> poplib.POP3:
    client = poplib.POP3(server.host, server.pop3_port, timeout=10)
    client.user(user)
    client.pass_(password)
    return client


def _context(server: Courier) -> ssl.SSLContext:
    assert server.ca_file is not None
    context = ssl.create_default_context(cafile=str(server.ca_file))
    context.verify_flags |= getattr(ssl, "VERIFY_X509_STRICT", 0)
    return context


class RawPop3:
    """Byte-exact POP3 reads (poplib strips line ends)."""

    def __init__(self, server: Courier, *, utf8: bool = False, login: bool = True):
        self.sock = socket.create_connection((server.host, server.pop3_port), timeout=10)
        self.file = self.sock.makefile("rb")
        self.greeting = self.file.readline()
        assert self.greeting.startswith(b"+OK")
        if utf8:
            assert self.command("UTF8") == b"+OK UTF8 enabled\r\n"
        if login:
            assert self.command("USER alice").startswith(b"+OK")
            assert self.command("PASS secret").startswith(b"+OK")

    def command(self, line: str) -> bytes:
        self.sock.sendall(line.encode() + b"\r\n")
        return self.file.readline()

    def multiline(self, line: str) -> tuple[bytes, bytes]:
        """(status line, body after dot-unstuffing with the line ends as sent)."""
        status = self.command(line)
        assert status.startswith(b"+OK"), status
        lines = []
        while True:
            got = self.file.readline()
            assert got, "connection closed during a multi-line answer"
            if got == b".\r\n":
                return status, b"".join(lines)
            lines.append(got[1:] if got.startswith(b".") else got)

    def retr(self, number: int) -> bytes:
        return self.multiline(f"RETR {number}")[1]

    def list_sizes(self) -> list[int]:
        return [int(line.split()[1]) for line in self.multiline("LIST")[1].splitlines()]

    def quit(self) -> None:
        assert self.command("QUIT").startswith(b"+OK")
        self.close()

    def close(self) -> None:
        self.file.close()
        self.sock.close()


# -- finding Courier -----------------------------------------------------------------


def test_require_courier_returns_the_unpacked_packages():
    install = require_courier()
    assert install == find_courier()
    assert re.fullmatch(r"Courier \d+\.\d+\.\d+", install.version)
    for package in courier_module.PACKAGES:
        assert install.trees[package].is_dir()


def test_missing_courier_skips_locally_and_fails_on_ci(monkeypatch):
    monkeypatch.setattr(courier_module, "find_courier", lambda: None)
    monkeypatch.setattr(courier_module, "_why_missing", "no courier here")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no courier here"):
        require_courier()
    monkeypatch.setenv("CI", "")
    with pytest.raises(pytest.skip.Exception):
        require_courier()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="no courier here; CI must have it"):
        require_courier()


# -- POP3 basics ----------------------------------------------------------------------


def test_greeting_capabilities_and_user_pass_login(server):
    assert server.name == "Courier" and server.version.startswith("Courier ")
    client = poplib.POP3(server.host, server.pop3_port, timeout=10)
    try:
        assert client.getwelcome() == b"+OK Hello there."
        capabilities = client.capa()
        assert {"TOP", "USER", "PIPELINING", "UIDL", "STLS", "UTF8"} <= set(capabilities)
        assert capabilities["LOGIN-DELAY"] == ["10"]
        assert capabilities["IMPLEMENTATION"] == ["Courier", "Mail", "Server"]
        assert "SASL" not in capabilities and "EXPIRE" not in capabilities
        assert client.user("alice").startswith(b"+OK")
        assert client.pass_("secret") == b"+OK logged in."
        assert client.stat() == (0, 0)
    finally:
        client.quit()


def test_wrong_password_fails_after_courier_s_delay(server):
    client = poplib.POP3(server.host, server.pop3_port, timeout=10)
    try:
        client.user("alice")
        started = time.monotonic()
        with pytest.raises(poplib.error_proto, match="-ERR Login failed"):
            client.pass_("wrong")
        assert time.monotonic() - started >= 4  # Courier's fixed failure delay (5 s)
        client.user("alice")  # the session stays usable
        assert client.pass_("secret").startswith(b"+OK")
    finally:
        client.quit()


def test_sasl_mechanisms_can_be_offered(tmp_path):
    require_courier()
    with Courier(tmp_path / "c", ssl=False, sasl="PLAIN LOGIN").start() as server:
        server.add_user("alice", "secret")
        raw = RawPop3(server, login=False)
        try:
            capa = raw.multiline("CAPA")[1]
            assert b"SASL PLAIN LOGIN\r\n" in capa and b"STLS" not in capa
            token = base64.b64encode(b"\0alice\0secret").decode()
            assert raw.command(f"AUTH PLAIN {token}") == b"+OK logged in.\r\n"
        finally:
            raw.quit()


def test_uidl_is_courier_s_uid_and_uidvalidity(server):
    server.deliver_many("alice", [b"Subject: 1\n\none\n", b"Subject: 2\n\ntwo\n"])
    raw = RawPop3(server)
    try:
        listing = raw.multiline("UIDL")[1].split(b"\r\n")[:-1]
    finally:
        raw.quit()
    uidls = [line.split()[1].decode() for line in listing]
    validity = uidls[0].split("-")[1]
    assert uidls == [f"UID1-{validity}", f"UID2-{validity}"]


def test_retr_returns_the_message_in_wire_form(server):
    raw = b"From: a@example.com\nSubject: dots\n\n.leading dot\n..two\nlast line without newline"
    server.deliver("alice", raw)
    client = RawPop3(server)
    try:
        sizes = client.list_sizes()
        status, got = client.multiline("RETR 1")
    finally:
        client.quit()
    assert got == to_wire(raw)
    # LIST counts the stored bytes with LF as CRLF, not the final CRLF Courier adds
    assert sizes == [len(to_wire(raw)) - 2]
    assert status == f"+OK {sizes[0]} octets follow.\r\n".encode()


def test_crlf_stored_message_comes_back_with_cr_cr_lf(server):
    # Courier turns every LF into CRLF, even one that already follows a CR
    raw = b"Subject: crlf\r\n\r\nline\r\n"
    server.deliver("alice", raw)
    client = RawPop3(server)
    try:
        assert client.list_sizes() == [len(raw) + 3]
        assert client.retr(1) == b"Subject: crlf\r\r\n\r\r\nline\r\r\n"
    finally:
        client.quit()


def test_8bit_headers_are_wrapped_unless_the_client_says_utf8(server):
    server.deliver("alice", UTF8_MESSAGE)
    wrapped = []
    for _ in range(2):
        client = RawPop3(server)
        try:
            assert client.list_sizes() == [len(to_wire(UTF8_MESSAGE))]
            wrapped.append(client.retr(1))
        finally:
            client.quit()
    for got in wrapped:
        assert got.startswith(
            b"From: Mail Delivery Subsystem <postmaster>\r\n"
            b"Subject: Cannot display Unicode content\r\n"
        )
        assert b"Content-Type: message/global\r\n\r\n" + to_wire(UTF8_MESSAGE) in got
    boundaries = [re.search(rb'boundary="([^"]+)"', got)[1] for got in wrapped]
    assert boundaries[0] != boundaries[1]  # a new boundary in every session

    for after_login in (False, True):
        client = RawPop3(server, utf8=not after_login)
        try:
            if after_login:
                assert client.command("UTF8") == b"+OK UTF8 enabled\r\n"
            assert client.retr(1) == to_wire(UTF8_MESSAGE)
        finally:
            client.quit()
    assert server.mailbox_messages("alice") == [UTF8_MESSAGE]  # never rewritten on disk


def test_users_added_before_and_after_start(tmp_path):
    require_courier()
    server = Courier(tmp_path / "c", ssl=False)
    server.add_user("early", "one")
    with server.start():
        server.add_user("late", "two:with|odd chars")
        for user, password in (("early", "one"), ("late", "two:with|odd chars")):
            client = _login(server, user, password)
            client.quit()


def test_deliver_requires_a_known_user(server):
    with pytest.raises(ValueError, match="add_user"):
        server.deliver("bob", b"Subject: x\n\n")


def test_delivered_files_are_owned_by_the_mail_user(server):
    path = server.deliver("alice", b"Subject: x\n\nbody\n")
    assert path.parent == server.maildir("alice") / "new"
    assert path.stat().st_uid == courier_module._mail_user().pw_uid


def test_dele_and_quit_remove_the_message_from_the_maildir(server):
    server.deliver_many("alice", [b"Subject: 1\n\none\n", b"Subject: 2\n\ntwo\n"])
    client = _login(server)
    try:
        client.dele(1)
        client.rset()
        client.dele(1)
    finally:
        client.quit()
    assert server.wait_for_mailbox_count("alice", 1) == 1  # Courier unlinks after its +OK
    assert server.mailbox_messages("alice") == [b"Subject: 2\n\ntwo\n"]


def test_dele_without_quit_deletes_nothing(server):
    server.deliver("alice", b"Subject: 1\n\none\n")
    client = _login(server)
    client.dele(1)
    client.close()  # no QUIT
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # let the session notice the hang-up
        sessions = [
            m for g in server.process_groups() for m in live_members(g) if m.comm == "courierpop3d"
        ]
        if not sessions:
            break
        time.sleep(0.01)
    assert server.mailbox_count("alice") == 1


# -- TLS ---------------------------------------------------------------------------


def test_stls_with_the_ca_file(server):
    server.deliver("alice", b"Subject: over TLS\n\nsecret text\n")
    client = poplib.POP3(server.host, server.pop3_port, timeout=10)
    try:
        client.stls(_context(server))
        assert "STLS" not in client.capa()  # not offered twice
        client.user("alice")
        client.pass_("secret")
        assert client.stat()[0] == 1
    finally:
        client.quit()


def test_pop3s_verifies_for_localhost_and_127_0_0_1(server):
    for hostname in ("localhost", "127.0.0.1"):
        client = poplib.POP3_SSL(hostname, server.pop3s_port, context=_context(server), timeout=10)
        try:
            assert "STLS" not in client.capa()
            client.user("alice")
            client.pass_("secret")
            assert client.stat() == (0, 0)
        finally:
            client.quit()


def test_without_ssl_there_is_no_tls_at_all(tmp_path):
    require_courier()
    with Courier(tmp_path / "c", ssl=False).start() as server:
        assert server.pop3s_port is None and server.ca_file is None
        client = poplib.POP3(server.host, server.pop3_port, timeout=10)
        try:
            assert "STLS" not in client.capa()
        finally:
            client.quit()


# -- lifecycle ----------------------------------------------------------------------


def test_stop_leaves_no_process_and_no_runtime_dir(server):
    client = _login(server)  # a session still open at stop()
    pgid, run_dir = server.pid, server._run_dir
    assert pgid is not None and run_dir is not None
    groups = server.process_groups()
    assert pgid in groups and len(groups) == 3  # the reaper's and two couriertcpd's
    names = {m.comm for group in groups for m in live_members(group)}
    assert {"authdaemond", "couriertcpd", "courierpop3d"} <= names, names
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 3
    for group in groups:
        assert live_members(group) == []
    assert server.process_groups() == set()
    assert not run_dir.exists()
    assert not server.running
    server.stop()  # idempotent
    client.sock.close()


def test_two_servers_at_once(tmp_path):
    require_courier()
    with (
        Courier(tmp_path / "a", ssl=False).start() as one,
        Courier(tmp_path / "b", ssl=False).start() as two,
    ):
        assert one.pop3_port != two.pop3_port
        one.add_user("alice", "one")
        two.add_user("alice", "two")
        one.deliver("alice", b"Subject: one\n\n1\n")
        for server, password, count in ((one, "one", 1), (two, "two", 0)):
            client = _login(server, "alice", password)
            try:
                assert client.stat()[0] == count
            finally:
                client.quit()


def test_restart_keeps_users_and_mail(tmp_path):
    require_courier()
    server = Courier(tmp_path / "c")
    with server.start():
        server.add_user("alice", "secret")
        server.deliver("alice", b"Subject: kept\n\nbody\n")
        ca = server.ca_file.read_bytes()
    with server.start():
        assert server.ca_file.read_bytes() == ca
        client = _login(server)
        try:
            assert client.stat()[0] == 1
        finally:
            client.quit()


def test_nothing_outlives_a_killed_owner(tmp_path):
    require_courier()
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from tests.support.courier import Courier\n"
        "s = Courier(Path(sys.argv[1])).start()\n"
        "print(s.pid, s._run_dir, flush=True)\n"
        "time.sleep(60)\n"
    )
    owner = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path / "c")],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        pgid_text, run_dir = owner.stdout.readline().split()
        pgid = int(pgid_text)
        groups = {pgrp for _pid, pgrp in courier_module._session_members(pgid)}
        assert pgid in groups and len(groups) == 3
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait()
        owner.stdout.close()
    deadline = time.monotonic() + 10
    while any(live_members(g) for g in groups) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [live_members(g) for g in groups] == [[]] * len(groups)
    while os.path.exists(run_dir) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not os.path.exists(run_dir)


def test_a_killed_reaper_takes_courier_with_it(server):
    pgid = server.pid
    assert pgid is not None
    groups = server.process_groups()
    os.kill(pgid, signal.SIGKILL)  # the master gets SIGTERM (PR_SET_PDEATHSIG) and cleans up
    deadline = time.monotonic() + 10
    while any(live_members(g) for g in groups) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [live_members(g) for g in groups] == [[]] * len(groups)
    assert not server.running
    server.stop()  # reaps the reaper, removes the runtime directory
