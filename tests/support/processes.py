"""Server processes for the tests that never outlive the test process.

Shared by the private POP3/IMAP servers in tests/support (Dovecot, Courier,
GNU Mailutils, popa3d): ``spawn_reaped`` starts a server under a small reaper
process, and nothing of it survives our process, however that dies.

Standard library only.
"""

from __future__ import annotations

import atexit
import errno
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Member", "free_ports", "kill", "live_members", "make_certificate", "running",
           "short_tmp", "spawn_reaped", "tail"]

#: Every server of tests/support that is running (Dovecot, Courier, Mailutils,
#: popa3d): each has ``stop()`` and ``_lifeline`` (the write end, or None). The
#: servers add themselves in start() and leave in stop().
running: weakref.WeakSet[Any] = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    for server in list(running):
        server.stop()


def _drop_lifelines_in_child() -> None:
    # A forked child (multiprocessing's fork start method) inherits the write
    # ends; while it holds one, our death would not reach that reaper.
    for server in list(running):
        if server._lifeline is not None:
            os.close(server._lifeline)
            server._lifeline = None
    running.clear()  # the child's atexit must not stop the parent's servers


os.register_at_fork(after_in_child=_drop_lifelines_in_child)


def short_tmp() -> str:
    """A temp directory with short paths (for sockets) that others may enter."""
    if os.path.isdir("/tmp") and os.access("/tmp", os.W_OK | os.X_OK):
        return "/tmp"
    return tempfile.gettempdir()


def make_certificate(cert: Path, key: Path, hostname: str, san: str, what: str) -> None:
    """A self-signed certificate for ``hostname`` (``san``: "DNS:localhost,IP:127.0.0.1")
    into ``cert`` and ``key``, made by the openssl command.

    Its own trust anchor (CA:TRUE with keyCertSign) plus serverAuth and the SAN
    for hostname checks, which passes OpenSSL's strict X.509 checks (Python
    3.13's default). ``what`` names the server in errors.
    """
    cert.parent.mkdir(parents=True, exist_ok=True)
    cnf = cert.parent / "openssl.cnf"
    cnf.write_text(
        "[req]\ndistinguished_name = dn\nx509_extensions = v3\nprompt = no\n"
        f"[dn]\nCN = {hostname}\nO = archiver test server\n"
        "[v3]\nbasicConstraints = critical,CA:TRUE\n"
        "keyUsage = critical,digitalSignature,keyCertSign\n"
        "extendedKeyUsage = serverAuth\nsubjectKeyIdentifier = hash\n"
        f"authorityKeyIdentifier = keyid:always\nsubjectAltName = {san}\n"
    )
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError(f"openssl not found (apt install openssl): needed for {what}'s TLS")
    result = subprocess.run(
        [openssl, "req", "-x509", "-config", str(cnf), "-newkey", "ec",
         "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "3650",
         "-keyout", str(key), "-out", str(cert)],
        stdin=subprocess.DEVNULL, capture_output=True, check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"openssl could not make {what}'s test certificate:\n"
                           + result.stderr.decode(errors="replace"))


def free_ports(count: int) -> list[int]:
    """Distinct loopback ports the kernel just handed out as free.

    They are closed again before the server binds them, so another process may
    grab one in between; servers' start() retry with new ports when that happens.
    """
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()



# The reaper runs as our direct child and is the session leader of the whole
# server. It becomes a "child subreaper", so server processes that outlive
# the master (Dovecot's log process always does) are re-parented to it and reaped,
# instead of becoming zombies under an init that may not reap them. It
# forwards SIGTERM/SIGINT to the master and exits with the master's status
# once every descendant is gone.
#
# Nothing of the server outlives our process, however it dies (SIGKILL too):
# * The reaper holds the read end of a "lifeline" pipe whose write end only
#   our process has. When our process dies the pipe reports EOF; the reaper
#   stops the server, waits for every descendant and removes the runtime
#   directory (nobody else is left to do it). PR_SET_PDEATHSIG on the reaper
#   would not do: it fires when the *thread* that started the server ends,
#   which may be long before our process does.
# * The master gets PR_SET_PDEATHSIG(SIGTERM) towards the reaper (set after
#   fork, before exec; the reaper's forking thread is its main thread, which
#   lives as long as the reaper), so a reaper killed by SIGKILL takes the
#   master, and with it every server process, down too.
# Linux only (prctl via ctypes); elsewhere the lifeline still works.
REAPER = r"""
import ctypes, os, signal, sys, threading, time
lifeline, run_dir, argv = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
os.set_inheritable(lifeline, False)
try:
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
except Exception:
    prctl = None
reaper = os.getpid()
master = os.fork()  # still single-threaded here
if master == 0:
    try:
        os.close(lifeline)
        if prctl is not None:
            prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
        if os.getppid() == reaper:  # else the reaper died before prctl took effect
            os.execv(argv[0], argv)
    finally:
        os._exit(127)
def forward(*_):
    try:
        os.kill(master, signal.SIGTERM)
    except ProcessLookupError:
        pass
signal.signal(signal.SIGTERM, forward)
signal.signal(signal.SIGINT, forward)
orphaned = threading.Event()
master_done = threading.Event()
def watch():
    try:
        while os.read(lifeline, 64):
            pass
    except OSError:
        pass
    orphaned.set()
    # A server still starting may lose a SIGTERM (Dovecot's master does, in its
    # first milliseconds): say it again until it goes, then SIGKILL it.
    deadline = time.monotonic() + 10
    forward()
    while not master_done.wait(0.25):
        if time.monotonic() > deadline:
            try:
                os.kill(master, signal.SIGKILL)
            except ProcessLookupError:
                pass
            break
        forward()
threading.Thread(target=watch, daemon=True).start()
status = 0
while True:
    try:
        pid, wstatus = os.wait()
    except ChildProcessError:
        break
    if pid == master:
        status = os.waitstatus_to_exitcode(wstatus)
        master_done.set()
if orphaned.is_set():
    import shutil
    shutil.rmtree(run_dir, ignore_errors=True)
sys.exit(status if status >= 0 else 128 - status)
"""


def spawn_reaped(argv: list[str], run_dir: Path | str, out_path: Path,
                 env: dict[str, str] | None = None,
                 cwd: Path | str | None = None) -> tuple[subprocess.Popen[bytes], int]:
    """Start ``argv`` under the reaper (see REAPER); returns (reaper process, lifeline).

    The reaper leads a new session and process group (its pid is the pgid);
    stdout and stderr go to ``out_path``. Keep the lifeline (the write end of
    the pipe) open while the server should run; closing it, or our death,
    stops the server and, if we died, removes ``run_dir``.
    """
    lifeline_read, lifeline = os.pipe()  # both ends non-inheritable
    try:
        with open(out_path, "wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", REAPER, str(lifeline_read), str(run_dir),
                 *argv],
                stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True,
                close_fds=True, pass_fds=(lifeline_read,), env=env, cwd=cwd)
    except BaseException:
        os.close(lifeline)
        raise
    finally:
        os.close(lifeline_read)
    return process, lifeline


@dataclass(frozen=True)
class Member:
    pid: int
    ppid: int
    comm: str


def live_members(pgid: int) -> list[Member]:
    """Processes in process group `pgid` that are not zombies (Linux /proc)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return []
    except PermissionError:
        pass
    members = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return [Member(pgid, 0, "?")]  # no /proc: trust killpg's answer
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        # "pid (comm) state ppid pgrp ..."; comm may itself contain ") "
        comm = data[data.find(b"(") + 1 : data.rfind(b")")].decode(errors="replace")
        fields = data[data.rfind(b")") + 2 :].split()
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] != b"Z":
            members.append(Member(int(entry), int(fields[1]), comm))
    return members


def kill(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def tail(path: Path, lines: int) -> str:
    try:
        with open(path, "rb") as f:
            try:
                f.seek(-16384, os.SEEK_END)
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                f.seek(0)
            data = f.read()
    except FileNotFoundError:
        return ""
    return "\n".join(data.decode(errors="replace").splitlines()[-lines:])
