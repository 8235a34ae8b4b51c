"""The private GNU Mailutils pop3d fixture (tests/support/mailutils.py).

These check the harness (ports, TLS, users, delivery, clean shutdown) and pin
the mailutils behaviours its module doc states, not our POP3 client.
"""

from __future__ import annotations

import hashlib
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

from tests.support.mailutils import Mailutils, require_mailutils
from tests.support.processes import live_members

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["mbox", "maildir"])
def server(request, tmp_path):
    require_mailutils()
    with Mailutils(tmp_path / "mailutils", mailbox_format=request.param).start() as running:
        running.add_user("alice", "secret")
        yield running


def _context(server: Mailutils) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(server.ca_file))
    context.verify_flags |= getattr(ssl, "VERIFY_X509_STRICT", 0)
    return context


def _login(server: Mailutils, user: str = "alice", password: str = "secret") -> poplib.POP3:
    client = poplib.POP3(server.host, server.pop3_port, timeout=10)
    client.user(user)
    client.pass_(password)
    return client


class RawPop3:
    """Byte-exact POP3 reads (poplib strips line ends)."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.file = sock.makefile("rb")
        self.greeting = self.file.readline()

    def command(self, line: str) -> bytes:
        self.sock.sendall(line.encode() + b"\r\n")
        return self.file.readline()

    def multiline(self, line: str) -> tuple[bytes, bytes]:
        """(status line, the unstuffed payload as sent, CRLF and all)."""
        status = self.command(line)
        assert status.startswith(b"+OK"), status
        payload = []
        while (got := self.file.readline()) != b".\r\n":
            assert got, "connection closed in a multi-line reply"
            payload.append(got[1:] if got.startswith(b".") else got)
        return status, b"".join(payload)

    def login(self, user: str = "alice", password: str = "secret") -> bytes:
        assert self.command(f"USER {user}").startswith(b"+OK")
        return self.command(f"PASS {password}")

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def _raw(server: Mailutils) -> RawPop3:
    return RawPop3(socket.create_connection((server.host, server.pop3_port), timeout=10))


def test_attributes(server):
    assert server.name == "GNU Mailutils"
    assert server.host == "127.0.0.1"
    assert re.fullmatch(r"\d+\.\d+(\.\d+)?", server.version)
    assert server.ssl and server.ca_file is not None and server.ca_file.exists()
    assert server.pop3s_port and server.pop3s_port != server.pop3_port


def test_login_and_wrong_password(server):
    client = _login(server)
    assert client.stat() == (0, 0)
    client.quit()
    client = poplib.POP3(server.host, server.pop3_port, timeout=10)
    client.user("alice")
    with pytest.raises(poplib.error_proto, match=r"-ERR \[AUTH\] Bad login"):
        client.pass_("wrong")
    client.quit()
    # no system user logs in: only the fixture's virtdomain users exist
    client = poplib.POP3(server.host, server.pop3_port, timeout=10)
    client.user("root")
    with pytest.raises(poplib.error_proto):
        client.pass_("")
    client.quit()


def test_user_added_while_running_logs_in(server):
    server.add_user("bob", "pw:with spaces")
    client = _login(server, "bob", "pw:with spaces")
    client.quit()


def test_greeting_has_apop_timestamp_but_apop_fails(server):
    raw = _raw(server)
    match = re.fullmatch(rb"\+OK POP3 Ready (<\d+\.\d+@[^>]+>)\r\n", raw.greeting)
    assert match, raw.greeting
    digest = hashlib.md5(match[1] + b"secret").hexdigest()
    assert raw.command(f"APOP alice {digest}") == b"-ERR [AUTH] Bad login\r\n"
    raw.command("QUIT")
    raw.close()


def test_capa(server):
    raw = _raw(server)
    _, before = raw.multiline("CAPA")
    assert before.split(b"\r\n")[:-1] == [
        b"TOP",
        b"UIDL",
        b"RESP-CODES",
        b"PIPELINING",
        b"AUTH-RESP-CODE",
        b"EXPIRENEVER",
        b"USER",
        b"STLS",
    ]
    assert raw.command("UTF8") == b"-ERR Invalid command\r\n"
    assert raw.login().startswith(b"+OK")
    _, after = raw.multiline("CAPA")
    assert b"IMPLEMENTATION GNU Mailutils " + server.version.encode() + b"\r\n" in after
    raw.command("QUIT")
    raw.close()


def test_retr_returns_wire_form_plus_x_uidl(server):
    raw_message = b"Subject: hello\nFrom: a@example.org\n\nline one\n.dot\nFrom here\n"
    server.deliver("alice", raw_message)
    assert server.mailbox_count("alice") == 1
    assert server.mailbox_messages("alice") == [raw_message]
    raw = _raw(server)
    raw.login()
    uidl = raw.command("UIDL 1").split()[2]
    _, payload = raw.multiline("RETR 1")
    # mailutils inserts its UIDL as an X-UIDL header after the last one
    headers, body = raw_message.replace(b"\n", b"\r\n").split(b"\r\n\r\n", 1)
    assert payload == headers + b"\r\nX-UIDL: " + uidl + b"\r\n\r\n" + body
    raw.command("QUIT")
    raw.close()


def test_x_uidl_header_is_reused(server):
    server.deliver_many(
        "alice", [b"Subject: one\nX-UIDL: same\n\n1\n", b"Subject: two\nX-UIDL: same\n\n2\n"]
    )
    client = _login(server)
    assert client.uidl()[1] == [b"1 same", b"2 same"]
    client.quit()


def test_dele_quit_removes_message(server):
    assert server.deliver_many("alice", [b"Subject: 1\n\none\n", b"Subject: 2\n\ntwo\n"]) == 2
    client = _login(server)
    client.dele(1)
    client.quit()
    assert server.mailbox_count("alice") == 1
    assert b"Subject: 2\n" in server.mailbox_messages("alice")[0]
    client = _login(server)
    assert client.stat()[0] == 1
    client.quit()


def test_first_session_rewrites_mailbox(server):
    server.deliver("alice", b"Subject: x\n\nbody\n")
    sessions = []
    for _ in range(2):
        raw = _raw(server)
        raw.login()
        raw.command("UIDL 1")  # a UIDL the client saw is stored as X-UIDL
        sessions.append(raw.multiline("RETR 1")[1])
        raw.command("QUIT")
        raw.close()
    stored = server.mailbox_messages("alice")[0]
    assert b"X-UIDL: " in stored
    uidl_header = re.search(rb"X-UIDL: \S+\r\n", sessions[0])[0]
    assert sessions[0] == b"Subject: x\r\n" + uidl_header + b"\r\nbody\r\n"
    if server.mailbox_format == "mbox":
        assert sessions[0] != sessions[1]
        assert b"\r\nX-UID: 1\r\nStatus: OR\r\n" in sessions[1]
        assert b"X-IMAPbase: " in sessions[1]
    else:
        assert sessions[0] == sessions[1]
        assert b"Status:" not in stored


def test_stls(server):
    client = poplib.POP3(server.host, server.pop3_port, timeout=10)
    client.stls(_context(server))
    client.user("alice")
    client.pass_("secret")
    assert client.stat() == (0, 0)
    client.quit()


def test_pop3s(server):
    client = poplib.POP3_SSL(server.host, server.pop3s_port, timeout=10, context=_context(server))
    assert b"STLS" not in client.capa()
    client.user("alice")
    client.pass_("secret")
    client.quit()


def test_plain_text_to_pop3s_port_is_reset(server):
    with socket.create_connection((server.host, server.pop3s_port), timeout=10) as sock:
        sock.sendall(b"CAPA\r\n")
        try:
            assert sock.recv(100) == b""
        except ConnectionResetError:
            pass


def test_without_ssl(tmp_path):
    require_mailutils()
    with Mailutils(tmp_path / "plain", ssl=False).start() as server:
        assert server.pop3s_port is None and server.ca_file is None
        server.add_user("alice", "secret")
        client = _login(server)
        assert b"STLS" not in client.capa()
        client.quit()


def test_stop_leaves_no_process(tmp_path):
    require_mailutils()
    server = Mailutils(tmp_path / "mailutils").start()
    server.add_user("alice", "secret")
    pgid = server.pid
    assert pgid is not None and live_members(pgid)
    idle = _login(server)  # a session still open at stop()
    run_dir = server._run_dir
    server.stop()
    assert live_members(pgid) == []
    assert run_dir is not None and not run_dir.exists()
    assert (tmp_path / "mailutils" / "mail" / "alice").is_dir()  # data moved back
    with pytest.raises(OSError):
        socket.create_connection((server.host, server.pop3_port), timeout=1).close()
    idle.sock.close()
    server.stop()  # idempotent


def test_restart_keeps_users_and_mail(tmp_path):
    require_mailutils()
    server = Mailutils(tmp_path / "mailutils")
    with server.start():
        server.add_user("alice", "secret")
        server.deliver("alice", b"Subject: kept\n\nbody\n")
    with server.start():
        client = _login(server)
        assert client.stat()[0] == 1
        client.quit()


def test_two_servers_at_once(tmp_path):
    require_mailutils()
    with (
        Mailutils(tmp_path / "a").start() as a,
        Mailutils(tmp_path / "b", mailbox_format="maildir").start() as b,
    ):
        assert len({a.pop3_port, a.pop3s_port, b.pop3_port, b.pop3s_port}) == 4
        a.add_user("alice", "one")
        b.add_user("alice", "two")
        a.deliver("alice", b"Subject: a\n\na\n")
        for srv, password, count in ((a, "one", 1), (b, "two", 0)):
            client = _login(srv, "alice", password)
            assert client.stat()[0] == count
            client.quit()
        start = time.monotonic()
    assert time.monotonic() - start < 10


def test_nothing_outlives_a_killed_test_process(tmp_path):
    require_mailutils()
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from tests.support.mailutils import Mailutils\n"
        "s = Mailutils(Path(sys.argv[1])).start()\n"
        "print(s.pid, s._run_dir, flush=True)\n"
        "time.sleep(60)\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path / "m")],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        pgid_text, run_dir = child.stdout.readline().split()
        pgid = int(pgid_text)
        assert live_members(pgid)
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        deadline = time.monotonic() + 10
        while live_members(pgid) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert live_members(pgid) == []
        deadline = time.monotonic() + 5
        while Path(run_dir).exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not Path(run_dir).exists()
    finally:
        child.kill()
        child.wait()
