"""The demo's private Dovecot: serves the demo mailbox over POP3S and dies with its parent."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest

from archiver.demo import dovecot as demo_dovecot
from archiver.demo.dovecot import DemoDovecot, find_dovecot
from archiver.demo.loopback import wire_form
from tests.support.dovecot import require_dovecot

REPO = Path(__file__).resolve().parents[2]
MESSAGES = [b"Subject: one\n\nbare LF\n.\n", b"Subject: two\r\n\r\n.dot\r\nno final CRLF"]


def _alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _session_members(sid: int) -> list[int]:
    """Live processes of session ``sid`` (the master leads one: start_new_session)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and _alive(int(entry)):
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except FileNotFoundError:
                continue
            if int(fields[3]) == sid:  # state ppid pgrp session
                found.append(int(entry))
    return found


def _wait_until_gone(pids, timeout: float = 5.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while (alive := [pid for pid in pids() if _alive(pid)]) and time.monotonic() < deadline:
        time.sleep(0.02)
    return alive


def _retr_all(server: DemoDovecot) -> list[bytes]:
    context = ssl.create_default_context(cafile=str(server.ca_file))
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname=server.host) as tls:
        reader = tls.makefile("rb")

        def command(line: str) -> bytes:
            tls.sendall(line.encode() + b"\r\n")
            return reader.readline()

        assert reader.readline().startswith(b"+OK")
        assert command("USER demo").startswith(b"+OK")
        assert command("PASS demo-password").startswith(b"+OK")
        count = int(command("STAT").split()[1])
        messages = []
        for number in range(1, count + 1):
            assert command(f"RETR {number}").startswith(b"+OK")
            body = b""
            while (line := reader.readline()) != b".\r\n":
                body += line[1:] if line.startswith(b".") else line
            messages.append(body)
        command("QUIT")
        return messages


def test_find_dovecot_looks_in_sbin_beside_bin(monkeypatch):
    binary = require_dovecot()
    sbin = os.path.dirname(binary)
    if os.path.basename(sbin) != "sbin":
        pytest.skip(f"dovecot is not in an sbin directory here ({binary})")
    monkeypatch.setenv("PATH", os.path.join(os.path.dirname(sbin), "bin"))
    assert find_dovecot() == binary
    monkeypatch.setenv("PATH", os.pathsep)
    assert find_dovecot() is None


def test_serves_the_mailbox_in_wire_form_then_leaves_nothing():
    require_dovecot()
    server = DemoDovecot("demo", "demo-password", MESSAGES).start()
    root, master = server.root, server._process.pid
    assert root is not None and root.is_dir()
    assert _retr_all(server) == [wire_form(m) for m in MESSAGES]
    members = _session_members(master)
    assert master in members and len(members) >= 4  # master, log, config, auth, ...
    server.stop()
    assert not _alive(master)
    assert _wait_until_gone(lambda: members) == []
    assert not root.exists()
    server.stop()  # idempotent


_OWNER = """
import sys, time
from archiver.demo.dovecot import DemoDovecot
server = DemoDovecot("demo", "demo-password", [b"Subject: x\\r\\n\\r\\nhi\\r\\n"]).start()
print(server._process.pid, server.root, flush=True)
time.sleep(600)
"""


def test_dovecot_dies_with_a_killed_parent():
    """SIGKILL the process that started Dovecot: its master and all its processes follow."""
    require_dovecot()
    owner = subprocess.Popen([sys.executable, "-c", _OWNER], cwd=REPO, stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE)
    try:
        pid, root = owner.stdout.readline().decode().split()
        master = int(pid)
        members = _session_members(master)
        assert master in members and len(members) >= 4
    finally:
        owner.kill()
        owner.wait()
        owner.stdout.close()
    try:
        assert _wait_until_gone(lambda: [master]) == [], "the master outlived its parent"
        assert _wait_until_gone(lambda: _session_members(master)) == []
    finally:
        for pid in _session_members(master):  # never leave one behind, even when failing
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(root, ignore_errors=True)  # nobody was left to remove it


def test_a_failed_start_says_why_and_cleans_up(monkeypatch):
    require_dovecot()
    monkeypatch.setattr(demo_dovecot, "_START_TIMEOUT", 3.0)
    server = DemoDovecot("demo", "demo-password", [])
    original = server._write_config

    def broken_config(ids):
        original(ids)
        with open(server.root / "dovecot.conf", "a") as conf:
            conf.write("no_such_setting = 1\n")

    monkeypatch.setattr(server, "_write_config", broken_config)
    with pytest.raises(RuntimeError, match="no_such_setting"):
        server.start()
    assert server.root is None and server._process is None


@pytest.fixture
def open_dir():
    """A folder every user can pass through (pytest's tmp_path is private to root),
    as Dovecot's unprivileged processes need."""
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="archiver-t-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_a_killed_demo_leaves_nothing_in_the_temp_dir(open_dir):
    """The demo's Dovecot keeps its files (mail, key) in the demo folder, which the
    next run replaces; a SIGKILLed demo leaves nothing behind in the temp dir."""
    require_dovecot()
    tmp_path = open_dir
    scratch = tmp_path / "tmp"
    scratch.mkdir(mode=0o777)
    scratch.chmod(0o1777)
    env = {**os.environ, "TMPDIR": str(scratch)}
    demo = subprocess.Popen([sys.executable, "-m", "archiver", "demo", "--dir", "d",
                             "--messages", "3000"], cwd=tmp_path, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not list((tmp_path / "d").glob(".dovecot-*/dovecot.conf")):
            assert demo.poll() is None and time.monotonic() < deadline, "Dovecot never started"
            time.sleep(0.05)
    finally:
        demo.kill()
        demo.wait()
    assert list((tmp_path / "d").glob(".dovecot-*"))  # what it left is in its own folder
    assert [p.name for p in scratch.iterdir() if p.name.startswith("archiver")] == []
    assert subprocess.run([sys.executable, "-m", "archiver", "demo", "--dir", "d",
                           "--messages", "5"], cwd=tmp_path, env=env,
                          capture_output=True).returncode == 0
    assert list((tmp_path / "d").glob(".dovecot-*")) == []  # the next run cleared it


@pytest.mark.slow
def test_a_demo_killed_while_dovecot_starts_leaves_no_dovecot(open_dir):
    """Dovecot's master loses a SIGTERM that arrives in its first milliseconds (seen:
    2 of 12 demos killed right after writing dovecot.conf left a master running for
    good). The trampoline repeats the SIGTERM until the master goes."""
    require_dovecot()
    for attempt in range(6):
        run = open_dir / f"run{attempt}"
        run.mkdir()
        run.chmod(0o755)
        demo = subprocess.Popen([sys.executable, "-m", "archiver", "demo", "--dir", "d",
                                 "--messages", "3000"], cwd=run, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while not list((run / "d").glob(".dovecot-*/dovecot.conf")):
            assert demo.poll() is None and time.monotonic() < deadline, "Dovecot never started"
            time.sleep(0.002)
        time.sleep(attempt * 0.004)  # 0 to 20 ms into Dovecot's start-up
        demo.kill()
        demo.wait()
        deadline = time.monotonic() + 15  # the trampoline SIGKILLs a stuck master at 10 s
        while _processes_mentioning(str(run)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _processes_mentioning(str(run)) == [], f"attempt {attempt}: Dovecot outlived the demo"


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    cmdline = f.read()
                with open(f"/proc/{entry}/stat", "rb") as f:
                    zombie = f.read().rsplit(b")", 1)[1].split()[0] == b"Z"
            except OSError:
                continue
            if text.encode() in cmdline and not zombie:
                found.append(int(entry))
    return found
