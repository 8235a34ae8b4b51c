"""The private popa3d (tests/support/popa3d.py): the harness itself, not our client.

popa3d answers a login within the same second as the last change of the
mbox only when that second is over (up to 1 s): these tests accept that.
"""

from __future__ import annotations

import os
import poplib
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import popa3d as popa3d_module
from tests.support.corpus import tricky_cases
from tests.support.popa3d import Popa3d, find_popa3d, require_popa3d, wire_form
from tests.support.processes import live_members

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def server(tmp_path):
    require_popa3d()
    with Popa3d(tmp_path / "popa3d").start() as running:
        running.add_user("alice", "secret")
        yield running


class RawPop3:
    """Byte-exact POP3 (poplib caps lines at 2048 bytes and strips line ends)."""

    def __init__(self, server: Popa3d, user: str | None = "alice", password: str = "secret"):
        self.sock = socket.create_connection((server.host, server.pop3_port), timeout=10)
        self.file = self.sock.makefile("rb")
        self.greeting = self.file.readline()
        assert self.greeting == b"+OK\r\n"
        if user is not None:
            assert self.command(f"USER {user}") == b"+OK\r\n"
            assert self.command(f"PASS {password}") == b"+OK\r\n"

    def command(self, line: str) -> bytes:
        self.sock.sendall(line.encode() + b"\r\n")
        return self.file.readline()

    def multiline(self, line: str) -> list[bytes]:
        status = self.command(line)
        assert status.startswith(b"+OK"), (line, status)
        lines = []
        while (got := self.file.readline()) != b".\r\n":
            assert got, f"connection closed during {line}"
            lines.append(got)
        return lines

    def retr(self, number: int) -> bytes:
        """The message after dot-unstuffing, line ends as sent."""
        return b"".join(x[1:] if x.startswith(b".") else x for x in self.multiline(f"RETR {number}"))

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _wait_until_gone(pgid: int, timeout: float = 5.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while (members := [m.pid for m in live_members(pgid) if _alive(m.pid)]) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.02)
    return members


# -- availability -------------------------------------------------------------


def test_require_popa3d_returns_the_binary():
    binary = require_popa3d()
    assert binary == find_popa3d()
    assert os.access(binary, os.X_OK)


def test_missing_popa3d_skips_locally_and_fails_on_ci(monkeypatch):
    monkeypatch.setattr(popa3d_module, "find_popa3d", lambda: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="popa3d not available"):
        require_popa3d()
    monkeypatch.setenv("CI", "")
    with pytest.raises(pytest.skip.Exception):
        require_popa3d()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="popa3d not available"):
        require_popa3d()


def test_attributes(server):
    assert server.host == "127.0.0.1"
    assert server.name == "popa3d"
    assert server.version == "1.0.3"
    assert server.ssl is False and server.pop3s_port is None and server.ca_file is None
    assert server.pop3_port > 0


# -- login ------------------------------------------------------------------------


def test_user_pass_login_works_and_there_is_nothing_else(server):
    client = RawPop3(server, user=None)
    try:
        for command in ("CAPA", "STLS", "UTF8", "AUTH PLAIN", "APOP alice 0123456789abcdef"):
            assert client.command(command) == b"-ERR\r\n", command
        assert client.command("USER alice") == b"+OK\r\n"
        assert client.command("PASS secret") == b"+OK\r\n"
        assert client.command("CAPA") == b"-ERR\r\n"
        assert client.command("STAT") == b"+OK 0 0\r\n"
        assert client.command("QUIT") == b"+OK\r\n"
    finally:
        client.close()


def test_poplib_logs_in(server):
    client = poplib.POP3(server.host, server.pop3_port, timeout=10)
    try:
        assert client.getwelcome() == b"+OK"
        client.user("alice")
        assert client.pass_("secret").startswith(b"+OK")
        assert client.stat() == (0, 0)
    finally:
        client.quit()


@pytest.mark.parametrize("user,password", [("alice", "wrong"), ("nosuch", "secret"),
                                           ("root", "x"), ("popa3d", "x")])
def test_bad_login_fails_fast_and_closes(server, user, password):
    client = RawPop3(server, user=None)
    try:
        assert client.command(f"USER {user}") == b"+OK\r\n"
        started = time.monotonic()
        assert client.command(f"PASS {password}") == (
            b"-ERR Authentication failed (bad password?)\r\n")
        assert time.monotonic() - started < 1.0  # pam_unix nodelay in our PAM copy
        assert client.file.readline() == b""  # one attempt per connection
    finally:
        client.close()


def test_users_added_before_and_after_start(tmp_path):
    require_popa3d()
    server = Popa3d(tmp_path / "p")
    server.add_user("early", "one two:three")  # spaces and colons pass PASS intact
    with server.start():
        server.add_user("late", "sécret")
        for user, password in (("early", "one two:three"), ("late", "sécret")):
            client = RawPop3(server, user, password)
            assert client.command("QUIT") == b"+OK\r\n"
            client.close()
        server.add_user("late", "changed")
        RawPop3(server, "late", "changed").close()
    with pytest.raises(ValueError):
        server.add_user("root", "x")  # a system user
    with pytest.raises(ValueError):
        server.add_user("Bad:Name", "x")


# -- mail ---------------------------------------------------------------------------


def test_retr_returns_the_delivered_message_in_wire_form(server):
    raw = b"Subject: hi\nMessage-ID: <1@x>\n\nbody\nFrom here\n.dot\n"
    server.deliver("alice", raw)
    client = RawPop3(server)
    try:
        assert client.command("STAT") == f"+OK 1 {len(wire_form(raw))}\r\n".encode()
        assert client.retr(1) == (
            b"Subject: hi\r\nMessage-ID: <1@x>\r\n\r\nbody\r\n>From here\r\n.dot\r\n")
        assert client.retr(1) == wire_form(raw)
    finally:
        client.close()


def test_every_tricky_message_comes_back_as_wire_form_predicts(server):
    cases = tricky_cases()
    assert server.deliver_many("alice", [case.raw for case in cases]) == len(cases)
    assert server.mailbox_count("alice") == len(cases)
    client = RawPop3(server)
    try:
        sizes = client.multiline("LIST")
        assert len(sizes) == len(cases)
        for number, case in enumerate(cases, 1):
            got = client.retr(number)
            assert got == wire_form(case.raw), case.name
            assert sizes[number - 1] == f"{number} {len(got)}\r\n".encode(), case.name
    finally:
        client.close()


def test_mailbox_messages_round_trip(server):
    messages = [b"Subject: a\n\n>From x\nFrom y\n", b"Subject: b\r\n\r\nno final newline"]
    server.deliver_many("alice", messages)
    assert server.mailbox_messages("alice") == [
        b"Subject: a\n\n>From x\nFrom y\n", b"Subject: b\n\nno final newline\n"]
    stored = server.mbox("alice").read_bytes()
    assert stored.startswith(popa3d_module.FROM_LINE)
    assert b"\n>>From x\n>From y\n" in stored
    assert server.mbox("alice").stat().st_uid == server.uid("alice")


def test_deliver_requires_a_known_user(server):
    with pytest.raises(ValueError, match="add_user"):
        server.deliver("bob", b"Subject: x\n\n")


def test_dele_and_quit_remove_the_message_from_the_mbox(server):
    server.deliver_many("alice", [b"Subject: keep\n\n1\n", b"Subject: drop\n\n2\n",
                                  b"Subject: keep too\n\n3\n"])
    client = RawPop3(server)
    try:
        assert client.command("DELE 2") == b"+OK\r\n"
        assert client.command("RETR 2") == b"-ERR\r\n"
        assert server.mailbox_count("alice") == 3  # only QUIT carries DELE out
        assert client.command("QUIT") == b"+OK\r\n"
    finally:
        client.close()
    assert server.mailbox_messages("alice") == [b"Subject: keep\n\n1\n",
                                                b"Subject: keep too\n\n3\n"]


def test_dele_without_quit_and_rset_delete_nothing(server):
    server.deliver("alice", b"Subject: stays\n\n")
    client = RawPop3(server)
    assert client.command("DELE 1") == b"+OK\r\n"
    client.close()  # no QUIT
    client = RawPop3(server)
    try:
        assert client.command("DELE 1") == b"+OK\r\n"
        assert client.command("RSET") == b"+OK\r\n"
        assert client.command("QUIT") == b"+OK\r\n"
    finally:
        client.close()
    assert server.mailbox_count("alice") == 1


def test_reading_does_not_modify_the_mbox(server):
    server.deliver_many("alice", [b"Subject: one\n\n1\n", b"Subject: two\n\n2\n"])
    before = server.mbox("alice").read_bytes()
    client = RawPop3(server)
    try:
        client.retr(1)
        client.multiline("TOP 2 0")
        assert client.command("QUIT") == b"+OK\r\n"
    finally:
        client.close()
    assert server.mbox("alice").read_bytes() == before  # no Status: headers


def test_uidl_hashes_only_some_headers(server):
    """Distinct messages share a UIDL: popa3d hashes Received, Delivered-To,
    Date, Message-ID and X-Delivery-ID lines only (see the module doc)."""
    head = b"Date: Mon, 1 Jan 2024 00:00:00 +0000\nMessage-ID: <same@x>\n"
    server.deliver_many("alice", [head + b"Subject: a\n\nbody A\n",
                                  head + b"Subject: b\n\nanother body\n",
                                  b"Subject: c\n\nno hashed header\n",
                                  b"\nno headers at all\n"])
    client = RawPop3(server)
    try:
        uidls = [line.split()[1] for line in client.multiline("UIDL")]
    finally:
        client.close()
    assert uidls[0] == uidls[1]
    assert uidls[2] == uidls[3] == b"d98c1dd404b2008f"  # MD5 of nothing
    assert uidls[0].decode() == popa3d_module.expected_uidl(head + b"Subject: a\n\nbody A\n")


def test_two_sessions_of_one_user_at_once(server):
    server.deliver("alice", b"Subject: x\n\n")
    first = RawPop3(server)
    second = RawPop3(server)  # no lock held between commands: both get in
    try:
        assert first.command("STAT") == second.command("STAT")
    finally:
        first.close()
        second.close()


def test_several_sessions_in_a_row(server):
    for number in range(1, 6):
        server.deliver("alice", f"Subject: {number}\n\n".encode())
        client = RawPop3(server)
        try:
            assert client.command("STAT").split()[1] == str(number).encode()
            assert client.command("QUIT") == b"+OK\r\n"
        finally:
            client.close()


def test_two_servers_at_once(tmp_path):
    require_popa3d()
    with Popa3d(tmp_path / "a").start() as a, Popa3d(tmp_path / "b").start() as b:
        assert a.pop3_port != b.pop3_port
        a.add_user("alice", "one")
        b.add_user("alice", "two")
        a.deliver("alice", b"Subject: for a\n\n")
        for server, password, count in ((a, "one", b"1"), (b, "two", b"0")):
            client = RawPop3(server, "alice", password)
            try:
                assert client.command("STAT").split()[1] == count
            finally:
                client.close()
        bad = RawPop3(b, user=None)
        bad.command("USER alice")
        assert bad.command("PASS one").startswith(b"-ERR")
        bad.close()


def test_the_system_is_untouched(server):
    passwd, shadow = Path("/etc/passwd").read_bytes(), Path("/etc/shadow").read_bytes()
    server.deliver("alice", b"Subject: x\n\n")
    client = RawPop3(server)
    client.command("QUIT")
    client.close()
    assert b"alice" not in passwd and b"alice" not in shadow
    assert Path("/etc/passwd").read_bytes() == passwd
    assert Path("/etc/shadow").read_bytes() == shadow
    assert not Path("/var/mail/alice").exists()


def test_restart_keeps_users_and_mail(tmp_path):
    require_popa3d()
    server = Popa3d(tmp_path / "p")
    server.add_user("alice", "secret")
    server.deliver("alice", b"Subject: one\n\n")
    with server.start():
        RawPop3(server).close()
    with server.start():
        client = RawPop3(server)
        try:
            assert client.command("STAT").split()[1] == b"1"
        finally:
            client.close()


# -- processes ------------------------------------------------------------------------


def test_stop_leaves_no_process_and_no_runtime_dir(tmp_path):
    require_popa3d()
    server = Popa3d(tmp_path / "p").start()
    server.add_user("alice", "secret")
    logged_in = RawPop3(server)  # a session after login
    pre_auth = RawPop3(server, user=None)  # and one with popa3d's pre-auth child
    pre_auth.command("USER alice")
    reaper, run_dir = server.pid, server._run_dir
    try:
        deadline = time.monotonic() + 5
        while sum(m.comm == "popa3d" for m in live_members(reaper)) < 3:
            assert time.monotonic() < deadline, live_members(reaper)
            time.sleep(0.01)
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 2.0
        assert live_members(reaper) == []
        assert not run_dir.exists()
        assert not server.running
        assert logged_in.file.readline() == b"" and pre_auth.file.readline() == b""
        server.stop()  # idempotent
    finally:
        logged_in.close()
        pre_auth.close()


_OWNER = """
import socket, sys, time
from pathlib import Path
from tests.support.popa3d import Popa3d
server = Popa3d(Path(sys.argv[1])).start()
server.add_user("alice", "secret")
client = socket.create_connection((server.host, server.pop3_port))
client.recv(100)
client.sendall(b"USER alice\\r\\nPASS secret\\r\\n")
time.sleep(0.5)
print(server.pid, server._run_dir, flush=True)
time.sleep(600)
"""


def test_nothing_outlives_a_killed_owner(tmp_path):
    require_popa3d()
    owner = subprocess.Popen([sys.executable, "-c", _OWNER, str(tmp_path / "p")], cwd=REPO,
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    try:
        pid, run_dir = owner.stdout.readline().decode().split()
        reaper = int(pid)
        assert any(m.comm == "popa3d" for m in live_members(reaper)), live_members(reaper)
    finally:
        owner.kill()
        owner.wait()
        owner.stdout.close()
    try:
        assert _wait_until_gone(reaper) == [], "popa3d outlived the process that started it"
        deadline = time.monotonic() + 5
        while Path(run_dir).exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not Path(run_dir).exists()
    finally:
        for member in live_members(reaper):
            os.kill(member.pid, signal.SIGKILL)


# -- facts about popa3d that the module doc states ----------------------------------


def test_uidl_is_predicted_by_expected_uidl(server):
    raws = [case.raw for case in tricky_cases()] + [
        b"Received: r1\n by x\nDate: d\nReceived: r2\nDelivered-To: a\nMessage-ID: m\n\n",
        b"Date: d\nmessage-id: <m>\nReceived: r1\nX-Delivery-ID: 7\n\nbody\n",
    ]
    server.deliver_many("alice", raws)
    client = RawPop3(server)
    try:
        uidls = [line.split()[1].decode() for line in client.multiline("UIDL")]
    finally:
        client.close()
    assert uidls == [popa3d_module.expected_uidl(raw) for raw in raws]


def test_the_same_message_redelivered_gets_another_uidl(server):
    message = b"Date: d\nMessage-ID: <m@x>\nSubject: s\n\nbody\n"
    server.deliver_many("alice", [message, b"Received: by relay; d\n" + message])
    client = RawPop3(server)
    try:
        first, second = (line.split()[1] for line in client.multiline("UIDL"))
    finally:
        client.close()
    assert first != second


def test_verbatim_mbox_parsing(server):
    """From_ only after a blank line starts a message; a last line without LF
    gets CRLF on the wire but LIST counts one octet less."""
    server.append_mbox("alice", b"From a Thu Jan  1 00:00:00 1970\nSubject: 1\n\nx\n"
                                b"From b Thu Jan  1 00:00:00 1970\nstill 1\n\n"
                                b"From c Thu Jan  1 00:00:00 1970\nSubject: 2\n\nlast")
    client = RawPop3(server)
    try:
        sizes = [int(line.split()[1]) for line in client.multiline("LIST")]
        first, second = client.retr(1), client.retr(2)
    finally:
        client.close()
    assert first == (b"Subject: 1\r\n\r\nx\r\nFrom b Thu Jan  1 00:00:00 1970\r\n"
                     b"still 1\r\n")
    assert second == b"Subject: 2\r\n\r\nlast\r\n"
    assert sizes == [len(first), len(second) - 1]
