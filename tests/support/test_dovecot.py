"""The private Dovecot used by the collector tests and benchmarks.

These tests probe it with poplib and a raw socket reader: they check the
harness itself (ports, TLS, users, delivery, logs, clean shutdown), not our
POP3 client.
"""

from __future__ import annotations

import os
import poplib
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import dovecot as dovecot_module
from tests.support.corpus import to_wire, tricky_cases
from tests.support.dovecot import Dovecot, find_dovecot, require_dovecot

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def server(tmp_path):
    require_dovecot()
    with Dovecot(tmp_path / "dovecot").start() as running:
        running.add_user("alice", "secret")
        yield running


def _login(server: Dovecot, user: str = "alice", password: str = "secret") -> poplib.POP3:
    client = poplib.POP3(server.host, server.pop3_port, timeout=10)
    client.user(user)
    client.pass_(password)
    return client


def _context(server: Dovecot) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(server.ca_file))
    # Python 3.13 turns this on by default: the certificate must pass it
    context.verify_flags |= getattr(ssl, "VERIFY_X509_STRICT", 0)
    return context


class RawPop3:
    """Byte-exact POP3 reads (poplib caps lines at 2048 bytes and strips line ends)."""

    def __init__(self, server: Dovecot, user: str = "alice", password: str = "secret"):
        self.sock = socket.create_connection((server.host, server.pop3_port), timeout=10)
        self.file = self.sock.makefile("rb")
        assert self.file.readline().startswith(b"+OK")
        assert self.command(f"USER {user}").startswith(b"+OK")
        assert self.command(f"PASS {password}").startswith(b"+OK")

    def command(self, line: str) -> bytes:
        self.sock.sendall(line.encode() + b"\r\n")
        return self.file.readline()

    def retr(self, number: int) -> bytes:
        """The message after dot-unstuffing, CRLF line ends as sent."""
        status = self.command(f"RETR {number}")
        assert status.startswith(b"+OK"), status
        lines = []
        while True:
            line = self.file.readline()
            assert line, "connection closed during RETR"
            if line == b".\r\n":
                return b"".join(lines)
            lines.append(line[1:] if line.startswith(b".") else line)

    def close(self) -> None:
        self.file.close()
        self.sock.close()


# -- finding Dovecot ---------------------------------------------------------


def test_require_dovecot_returns_the_binary():
    binary = require_dovecot()
    assert binary == find_dovecot()
    assert os.access(binary, os.X_OK)


def test_missing_dovecot_skips_locally_and_fails_on_ci(monkeypatch):
    monkeypatch.setattr(dovecot_module, "find_dovecot", lambda: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt install dovecot-core dovecot-pop3d"):
        require_dovecot()
    monkeypatch.setenv("CI", "")
    with pytest.raises(pytest.skip.Exception):
        require_dovecot()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="dovecot not installed"):
        require_dovecot()


# -- POP3 basics -----------------------------------------------------------------


def test_plain_login_uidl_and_retr_in_wire_form(server):
    raw = b"From: a@example.com\nSubject: hi\n\nbody line\nlast line without newline"
    server.deliver("alice", raw)
    client = poplib.POP3(server.host, server.pop3_port, timeout=10)
    try:
        capabilities = client.capa()  # before login: STLS, USER, SASL are offered
        assert {"UIDL", "TOP", "PIPELINING", "USER", "STLS"} <= set(capabilities)
        assert set(capabilities["SASL"]) >= {"PLAIN", "LOGIN"}
        client.user("alice")
        client.pass_("secret")
        _, listing, _ = client.uidl()
        assert len(listing) == 1
        number, uidl = listing[0].split()
        assert number == b"1" and len(uidl) == 16  # Dovecot's default %08Xu%08Xv
        _, lines, _ = client.retr(1)
    finally:
        client.quit()
    assert b"\r\n".join(lines) + b"\r\n" == to_wire(raw)
    assert raw.replace(b"\n", b"\r\n") + b"\r\n" == to_wire(raw)


def test_uidl_format_option(tmp_path):
    require_dovecot()
    with Dovecot(tmp_path / "d", uidl_format="%v-%u", ssl=False).start() as server:
        server.add_user("alice", "secret")
        server.deliver_many("alice", [b"Subject: 1\n\none\n", b"Subject: 2\n\ntwo\n"])
        client = _login(server)
        try:
            _, listing, _ = client.uidl()
        finally:
            client.quit()
    uidls = [line.split()[1].decode() for line in listing]
    validity = uidls[0].split("-")[0]
    assert uidls == [f"{validity}-1", f"{validity}-2"]


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
            client.user("alice")
            client.pass_("secret")
            assert client.stat() == (0, 0)
        finally:
            client.quit()


def test_cert_hostname_names_only_that_host(tmp_path):
    require_dovecot()
    with Dovecot(tmp_path / "d", cert_hostname="pop.example.test").start() as server:
        context = _context(server)

        def handshake(name: str) -> None:
            with (
                socket.create_connection((server.host, server.pop3s_port), timeout=10) as raw,
                context.wrap_socket(raw, server_hostname=name) as tls,
            ):
                assert tls.recv(100).startswith(b"+OK")

        handshake("pop.example.test")
        with pytest.raises(ssl.SSLCertVerificationError):
            handshake("localhost")
        with pytest.raises(ssl.SSLCertVerificationError):
            handshake("127.0.0.1")


def test_without_ssl_there_is_no_tls_at_all(tmp_path):
    require_dovecot()
    with Dovecot(tmp_path / "d", ssl=False).start() as server:
        assert server.pop3s_port is None
        client = poplib.POP3(server.host, server.pop3_port, timeout=10)
        try:
            assert "STLS" not in client.capa()
        finally:
            client.quit()


def test_bad_password_fails_fast_every_time(server):
    # no failure delay and no anvil penalty: tests of bad credentials stay fast
    started = time.monotonic()
    for _ in range(3):  # with anvil's penalty: 0.5 + 2 + 4 s
        client = poplib.POP3(server.host, server.pop3_port, timeout=10)
        client.user("alice")
        with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):
            client.pass_("wrong")
        client.quit()
    assert time.monotonic() - started < 3.0


def test_many_sessions_of_one_user_at_once(server):
    clients = [_login(server) for _ in range(15)]  # Dovecot's default limit is 10
    for client in clients:
        client.quit()


# -- users and delivery -------------------------------------------------------------


def test_users_added_before_and_after_start(tmp_path):
    require_dovecot()
    server = Dovecot(tmp_path / "d")
    server.add_user("before", "pw:with colon")
    with server.start():
        server.add_user("after@example.com", "späte Wörter")
        server.deliver("after@example.com", b"Subject: x\n\ny\n")
        _login(server, "before", "pw:with colon").quit()
        client = _login(server, "after@example.com", "späte Wörter")  # sent as UTF-8
        assert client.stat()[0] == 1
        client.quit()
    assert server.users() == ["after@example.com", "before"]


def test_deliver_requires_a_known_user(server):
    with pytest.raises(ValueError, match="add_user"):
        server.deliver("nobody-here", b"x")
    with pytest.raises(ValueError):
        server.add_user("../escape", "pw")


def test_delivered_files_are_owned_by_the_mail_user(server):
    path = server.deliver("alice", b"Subject: owner\n\n")
    assert path.parent.name == "new"
    st = path.stat()
    expected_uid = server._identity.mail_uid
    assert st.st_uid == expected_uid
    assert st.st_mode & 0o777 == 0o600
    if os.geteuid() == 0:
        assert expected_uid != 0  # mail is never owned by root


def test_deliver_many_keeps_order(server):
    messages = [f"Subject: n{i}\n\nmessage {i}\n".encode() for i in range(300)]
    assert server.deliver_many("alice", iter(messages)) == 300
    assert server.mailbox_count("alice") == 300
    assert server.mailbox_messages("alice") == messages
    client = _login(server)
    try:
        assert client.stat()[0] == 300
        assert client.retr(1)[1][-1] == b"message 0"
        assert client.retr(300)[1][-1] == b"message 299"
    finally:
        client.quit()
    # RETR moved them from new/ to cur/; they are still counted, in order
    assert server.mailbox_messages("alice") == messages


def test_every_tricky_message_comes_back_byte_exact(server):
    cases = tricky_cases()
    server.deliver_many("alice", (case.raw for case in cases))
    reader = RawPop3(server)
    try:
        for number, case in enumerate(cases, start=1):
            assert reader.retr(number) == to_wire(case.raw), case.name
        reader.command("QUIT")
    finally:
        reader.close()


# -- deletion and the session log ----------------------------------------------------


def test_deleted_message_is_gone_after_quit_and_logged(server):
    server.deliver_many("alice", [b"Subject: keep\n\n1\n", b"Subject: drop\n\n2\n",
                                  b"Subject: keep too\n\n3\n"])
    client = _login(server)
    client.retr(2)
    client.dele(2)
    client.quit()
    assert server.mailbox_count("alice") == 2
    assert all(b"drop" not in m for m in server.mailbox_messages("alice"))
    [session] = server.wait_for_sessions(1, user="alice")
    assert session.quit and session.deleted == 1 and session.messages == 3
    assert session.retr == 1
    assert "del=1/3" in server.session_log()


def test_dele_without_quit_deletes_nothing(server):
    server.deliver("alice", b"Subject: stays\n\n")
    client = _login(server)
    client.dele(1)
    client.close()  # connection dropped: RFC 1939 says no UPDATE state, no deletion
    [session] = server.wait_for_sessions(1, user="alice")
    assert not session.quit and session.deleted == 0
    assert server.mailbox_count("alice") == 1


# -- lifecycle ----------------------------------------------------------------------------


def _instance_processes(server: Dovecot) -> list[int]:
    return [member.pid for member in dovecot_module._live_members(server.pid)]


def test_stop_leaves_no_process_and_no_runtime_dir(tmp_path):
    require_dovecot()
    server = Dovecot(tmp_path / "d").start()
    server.add_user("alice", "secret")
    _login(server).quit()
    pids = _instance_processes(server)
    assert len(pids) >= 5  # reaper, master, log, config, auth, ...
    run_dir = server._run_dir
    instance = f"dovecot-archiver-{run_dir.name.removeprefix('dovecot-')}"
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True)
    assert instance in ps.stdout
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 2.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                state = stat.read().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            continue
        pytest.fail(f"process {pid} still exists (state {state})")
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True)
    assert instance not in ps.stdout
    assert not run_dir.exists()
    assert not server.running
    server.stop()  # idempotent


_OWNER = """
import sys, time
from pathlib import Path
from tests.support.dovecot import Dovecot
server = Dovecot(Path(sys.argv[1])).start()
print(server.pid, server._run_dir, flush=True)
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _wait_until_gone(pgid: int, timeout: float = 5.0) -> list[int]:
    """Wait until process group ``pgid`` has no live member; return the survivors."""
    deadline = time.monotonic() + timeout
    while (members := _live(pgid)) and time.monotonic() < deadline:
        time.sleep(0.02)
    return members


def _live(pgid: int) -> list[int]:
    return [m.pid for m in dovecot_module._live_members(pgid) if _alive(m.pid)]


def test_nothing_outlives_a_killed_owner(tmp_path):
    """SIGKILL the process that started Dovecot: every Dovecot process and the runtime dir go."""
    require_dovecot()
    owner = subprocess.Popen([sys.executable, "-c", _OWNER, str(tmp_path / "d")], cwd=REPO,
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    try:
        pid, run_dir = owner.stdout.readline().decode().split()
        reaper = int(pid)
        members = dovecot_module._live_members(reaper)
        assert any(m.comm == "dovecot" and m.ppid == reaper for m in members), members
        assert len(members) >= 5  # reaper, master, log, config, auth, ...
    finally:
        owner.kill()
        owner.wait()
        owner.stdout.close()
    try:
        assert _wait_until_gone(reaper) == [], "Dovecot outlived the process that started it"
        deadline = time.monotonic() + 5
        while Path(run_dir).exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not Path(run_dir).exists()
    finally:
        for pid in _live(reaper):  # never leave one behind, even when failing
            os.kill(pid, signal.SIGKILL)


def test_a_killed_reaper_takes_dovecot_with_it(tmp_path):
    """The master has PR_SET_PDEATHSIG towards the reaper: SIGKILL the reaper, Dovecot stops."""
    require_dovecot()
    server = Dovecot(tmp_path / "d").start()
    reaper = server.pid
    master = [m.pid for m in dovecot_module._live_members(reaper) if m.ppid == reaper]
    try:
        os.kill(reaper, signal.SIGKILL)
        assert _wait_until_gone(reaper) == [], "Dovecot outlived its reaper"
        assert master and not any(_alive(pid) for pid in master)
    finally:
        server.stop()
    assert not server.running


def test_restart_keeps_users_and_mail(tmp_path):
    require_dovecot()
    root = tmp_path / "private"
    root.mkdir(mode=0o700)  # nobody else may enter: as root the mail moves out and back
    server = Dovecot(root / "d")
    server.add_user("alice", "secret")
    server.deliver("alice", b"Subject: one\n\n")
    server.start()
    _login(server).quit()
    server.stop()
    assert (root / "d" / "mail" / "alice").is_dir()
    assert server.mailbox_messages("alice") == [b"Subject: one\n\n"]
    server.deliver("alice", b"Subject: two\n\n")
    with server.start():
        client = _login(server)
        try:
            assert client.stat()[0] == 2
        finally:
            client.quit()


def test_start_failure_reports_dovecots_complaint(tmp_path):
    require_dovecot()
    server = Dovecot(tmp_path / "d", extra_config="no_such_setting = 1")
    with pytest.raises(RuntimeError, match="Unknown setting: no_such_setting"):
        server.start()
    assert not server.running
    assert server._run_dir is None


def test_a_taken_port_is_retried(tmp_path, monkeypatch):
    require_dovecot()
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    real_free_ports = dovecot_module._free_ports
    calls = []

    def clashing(count):
        calls.append(count)
        ports = real_free_ports(count)
        return [taken.getsockname()[1]] + ports[1:] if len(calls) == 1 else ports

    monkeypatch.setattr(dovecot_module, "_free_ports", clashing)
    try:
        with Dovecot(tmp_path / "d").start() as server:
            assert len(calls) == 2
            assert server.pop3_port != taken.getsockname()[1]
    finally:
        taken.close()


def test_start_is_fast(tmp_path):
    require_dovecot()
    server = Dovecot(tmp_path / "d")
    started = time.monotonic()
    with server.start():
        elapsed = time.monotonic() - started
    assert elapsed < 3.0  # typically 0.05 s; generous for a loaded CI machine


def test_config_and_log_live_in_root(server):
    root = Path(server.root)
    config = (root / "dovecot.conf").read_text()
    for expected in ("protocols = pop3", "listen = 127.0.0.1", "disable_plaintext_auth = no",
                     "auth_mechanisms = plain login", "mail_location = maildir:",
                     "pop3_logout_format = top=%t/%p, retr=%r/%b, del=%d/%m, size=%s",
                     "mail_max_userip_connections = 100"):
        assert expected in config
    assert server.ca_file.is_file()
    assert "starting up for pop3" in server.session_log()
