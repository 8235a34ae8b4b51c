"""A private GNU Mailutils pop3d on loopback, for the tests.

    with Mailutils(tmp_path / "mailutils").start() as server:
        server.add_user("alice", "secret")
        server.deliver("alice", b"Subject: hi\\n\\nbody\\n")
        ...  # connect to server.host:server.pop3_port (STLS) or server.pop3s_port

Debian 12: ``apt-get install mailutils-pop3d`` (1:3.15-4; it does not conflict
with dovecot-pop3d). Contracts and facts (measured with 3.15; see FINDINGS below):

* How it runs: pop3d in inetd mode (``pop3d --inetd --config-file=...``), one
  process per connection, behind a small acceptor of ours (``_ACCEPTOR``) that
  listens on the free 127.0.0.1 ports and hands each connection to a fresh
  pop3d on fd 0/1. Not daemon mode, because mailutils' ``virtdomain`` users
  can then only log in as ``alice@domain``: without a domain in the name it
  looks the domain up from ``getsockname(0)``, which is the connection only
  in inetd mode. So ``USER alice`` works, like with the Dovecot fixture
  (``alice@localhost`` works too). Everything runs under the reaper of
  tests/support/processes.py; nothing outlives our process (the acceptor
  and every pop3d also carry PR_SET_PDEATHSIG towards their parent).
* Configuration: private ``--config-file`` (which implies no site config) in
  a private runtime directory under /tmp; nothing in /etc is read for users
  or mail (tcp-wrappers, mandatory locking and syslog are switched off).
  Stderr of the acceptor and of every pop3d (mailutils' log) goes to
  ``root/mailutils.log``.
* Users: ``add_user`` keeps one ``users/<name>`` file (SHA-512 crypt hash from
  ``openssl passwd -6``); the virtdomain passwd files (``passwd/localhost``,
  ``passwd/127.0.0.1``, passwd(5) format) are generated from them in the
  runtime directory. Authorization ``virtdomain``, authentication
  ``generic`` (crypt(3) against that hash). No system user can log in.
  Names: letters, digits, ``. _ -`` (``@ ! :`` are virtdomain's delimiters).
* Privileges: virtdomain users carry no uid switch, so a pop3d started as root
  would serve every user as root (gid mail). As root the acceptor therefore
  drops to the unprivileged ``mail`` user before it listens, and mail files are
  owned by ``mail``. pop3d itself insists on ``setgid(mail)`` outside a tty,
  so a non-root user can run it only with ``mail`` as its effective group:
  otherwise find_mailutils() reports it missing. When ``root`` cannot be
  entered by ``mail`` (pytest's /tmp/pytest-of-root is 0700) ``users/`` and
  ``mail/`` move into the runtime directory while the server runs and move
  back on stop(), as in the Dovecot fixture.
* Mailboxes: ``mail/<user>/INBOX``, an mbox file (default) or a maildir
  (``mailbox_format="maildir"``, ``mailbox-type maildir``).
  mbox delivery appends ``From MAILER-DAEMON <asctime>`` and the message with
  every line matching ``^>*From `` given one more ``>`` (mboxrd quoting; pop3d
  3.15 removes exactly one ``>`` from such lines on RETR, so the client gets
  the delivered bytes back), an LF added when the message does not end in one,
  and one empty separator line. Maildir delivery writes ``INBOX/new/`` files
  whose names sort in delivery order.
* Rewrites (see FINDINGS): a session rewrites the mailbox when it ends
  (QUIT or a dropped connection alike), so ``mailbox_messages`` returns the
  stored bytes, which may differ from what was delivered; with mbox it undoes
  the From quoting and leaves out the From_ line and the separator. mbox
  delivery stores CRLF as LF: mailutils' mbox parser drops lines and merges
  messages when they end in CRLF.
* The acceptor runs each pop3d with ``timeout`` = ``idle_timeout`` (600 s,
  mailutils' default) and GnuTLS' handshake timeout (10 s).

FINDINGS (GNU Mailutils 3.15, Debian 1:3.15-4, inetd mode, virtdomain users):

* Greeting ``+OK POP3 Ready <PID.TIME@HOSTNAME>``: always an APOP timestamp,
  though APOP cannot succeed without an APOP database; ``APOP alice <right
  digest>`` answers ``-ERR [AUTH] Bad login`` at once, the same text as a
  wrong PASS (also at once: no failure delay).
* CAPA, before login, plain port: TOP, UIDL, RESP-CODES, PIPELINING,
  AUTH-RESP-CODE, EXPIRENEVER, USER, STLS. After STLS and on the POP3S port:
  the same without STLS (STLS there: ``-ERR Incorrect state``). After login:
  ``IMPLEMENTATION GNU Mailutils 3.15`` added. The expire line has no space
  (RFC 2449: ``EXPIRE NEVER``): no ``expire`` setting -> ``EXPIRENEVER``;
  ``expire 0`` -> ``EXPIRE0``; ``expire 5`` -> ``EXPIRE5``, with or without
  ``delete-expired``. No SASL and no UTF8 in CAPA; ``UTF8`` and ``LANG`` answer
  ``-ERR Invalid command``, ``AUTH`` ``-ERR Not implemented``.
* UIDL: a message's ``X-UIDL:`` header value is used as its UIDL as it is, so
  two different messages with the same X-UIDL share one UIDL. Otherwise
  ``<md5 hex>.<time>.<n>`` (e.g. ``19472013f6c71fbd307e3db347a8446e.1796351595.1``),
  where time is when the session computed it; mailutils then adds it to the
  message as an ``X-UIDL:`` header (after the last header) in what RETR/TOP
  send, and stores that header when the session ends, which makes it stable.
  A UIDL that was never stored (no UIDL in the first session; with mbox even
  after a RETR) is computed anew, with a new time, by the next session.
* RETR is not the delivered bytes: header lines are rebuilt as ``Name: value``
  (``Subject:x`` -> ``Subject: x``, ``X-A:   v`` -> ``X-A: v``, ``X-Tab:\tv`` ->
  ``X-Tab: v``, ``X-Empty:`` -> ``X-Empty: ``; folded lines are kept), the
  X-UIDL header is added, a missing final newline becomes CRLF, every LF CRLF,
  dot-stuffed; 8-bit header and body bytes pass unchanged. mboxrd quoting is
  undone (stored ``>From x`` -> ``From x``, ``>>From`` -> ``>From``).
* mbox, session 2 differs from session 1: the end of session 1 writes
  ``X-UIDL``, ``X-IMAPbase: <uidvalidity> <uidnext>`` (first message only),
  ``X-UID: n`` and ``Status: O`` (``OR`` once retrieved) into every message,
  and session 2's RETR sends them; the header order may change once more in a
  third session. maildir: session 1 moves files to ``cur/NAME,a=O,u=N:2,S``,
  writes ``.mu-prop`` (uidnext, version, uid-validity) and rewrites each
  message file with the rebuilt headers and X-UIDL; RETR then sends the same
  bytes in every session (no Status/X-UID headers).
* LIST/STAT size is the size of the rebuilt message in wire form (CRLF), 8-bit
  bytes counted as bytes, but without the X-UIDL header mailutils adds in a
  session before it is stored (LIST 61, RETR 116 octets) and without the CRLF
  added to a message with no final newline (maildir: LIST 33, RETR 35 + X-UIDL).
  Once stored, LIST counts the X-UIDL header too.
* Wrong port: plain ``CAPA`` to the POP3S port: connection reset within ~10 ms;
  silence on the POP3S port: closed after GnuTLS' 10 s handshake timeout.
  A TLS ClientHello to the plain port: the client's handshake fails at once
  (the greeting is no TLS record), but a client still waiting gets one
  ``-ERR Invalid command`` per LF in the hello and then, after the idle
  ``timeout`` (600 s by default), ``-ERR Session timed out`` and EOF.
* Config quirk: any ``tls-mode``, even ``false``, without a certificate makes
  pop3d exit with ``server <inetd>: no certificate set``.
"""

from __future__ import annotations

import grp
import itertools
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from tests.support.processes import free_ports as _free_ports
from tests.support.processes import kill as _kill
from tests.support.processes import live_members as _live_members
from tests.support.processes import make_certificate, running, short_tmp, spawn_reaped
from tests.support.processes import tail as _tail

__all__ = ["Mailutils", "find_mailutils", "require_mailutils"]

_INSTALL_HINT = "GNU Mailutils pop3d not installed (apt install mailutils-pop3d)"

_USERNAME_RE = re.compile(r"^[A-Za-z0-9._-]+$")
_ROOT_MAIL_USER = "mail"
_FORMATS = ("mbox", "maildir")

_START_TIMEOUT = 15.0
_STOP_TIMEOUT = 10.0
_PORT_ATTEMPTS = 8
_BIND_FAILED = 98  # the acceptor's exit status when a port is taken


def _mailutils_pop3d(binary: str) -> str | None:
    """``binary``'s version if it is GNU Mailutils' pop3d, else None."""
    try:
        out = subprocess.run(
            [binary, "--version"],
            capture_output=True,
            text=True,
            timeout=10,
            stdin=subprocess.DEVNULL,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.match(r"pop3d \(GNU Mailutils\) (\S+)", out)
    return match[1] if match else None


def _privilege_problem() -> str | None:
    """Why pop3d cannot run as we are, or None (see the module doc)."""
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(_ROOT_MAIL_USER)
        except KeyError:
            return f"no system user {_ROOT_MAIL_USER!r} to own the mail"
        return None
    try:
        mail_gid = grp.getgrnam("mail").gr_gid
    except KeyError:
        return "no group 'mail' (pop3d needs it)"
    if os.getegid() != mail_gid:
        return "pop3d must run as root or with group 'mail' as effective group (setgid(mail))"
    return None


def find_mailutils() -> str | None:
    """Path of GNU Mailutils' pop3d that we can run, or None.

    ``$ARCHIVER_MAILUTILS_POP3D`` wins when set; then ``pop3d`` on PATH,
    /usr/sbin/pop3d and /usr/local/sbin/pop3d. A ``pop3d`` that is not GNU
    Mailutils' counts as missing, and so does any when we lack the privileges
    pop3d insists on (root, or effective group ``mail``).
    """
    if _privilege_problem() is not None:
        return None
    candidates = [os.environ.get("ARCHIVER_MAILUTILS_POP3D", ""), shutil.which("pop3d") or ""]
    candidates += ["/usr/sbin/pop3d", "/usr/local/sbin/pop3d"]
    for candidate in candidates:
        if (
            candidate
            and os.path.isfile(candidate)
            and os.access(candidate, os.X_OK)
            and _mailutils_pop3d(candidate)
        ):
            return candidate
    return None


def require_mailutils() -> str:
    """The pop3d binary for a test; skip the test when there is none (fail on CI)."""
    import pytest  # test-only helper; the module itself must not need pytest

    binary = find_mailutils()
    if binary is None:
        problem = _privilege_problem()
        reason = f"GNU Mailutils pop3d unusable: {problem}" if problem else _INSTALL_HINT
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must have it", pytrace=False)
        pytest.skip(reason)
    return binary


# The acceptor: our own little inetd. As root it first becomes the mail user
# (re-arming PR_SET_PDEATHSIG, which a credential change clears), listens on
# the given ports and runs ``pop3d --inetd --config-file=CONF`` for every
# connection, with the connection on fd 0 and 1 and its stderr (the log) on
# ours. On SIGTERM it stops listening, SIGTERMs the sessions (SIGKILL after
# 5 s) and exits once they are gone. Arguments: uid gid binary PORT=CONF...
_ACCEPTOR = r"""
import ctypes, os, select, signal, socket, sys, time
uid, gid, binary, specs = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4:]
try:
    prctl = ctypes.CDLL(None, use_errno=True).prctl
except Exception:
    prctl = None
parent = os.getppid()
def guard():
    if prctl is not None:
        prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:
        os._exit(1)
if uid >= 0 and os.geteuid() == 0:
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
guard()
parent = os.getpid()  # from now on, for the sessions
wake_r, wake_w = os.pipe()
os.set_blocking(wake_w, False)
signal.set_wakeup_fd(wake_w)
stopping = []
signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
signal.signal(signal.SIGINT, lambda *_: stopping.append(1))
signal.signal(signal.SIGCHLD, lambda *_: None)
listeners = {}
for spec in specs:
    port, conf = spec.split("=", 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", int(port)))
    except OSError as exc:
        print(f"acceptor: bind 127.0.0.1:{port}: {exc}", file=sys.stderr, flush=True)
        sys.exit(98)
    s.listen(64)
    listeners[s.fileno()] = (s, conf)
print("acceptor: listening on " + " ".join(specs), file=sys.stderr, flush=True)
children = set()
def reap():
    while children:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            children.clear()
            return
        if pid == 0:
            return
        children.discard(pid)
while not stopping:
    try:
        ready, _, _ = select.select([wake_r, *listeners], [], [], 1.0)
    except InterruptedError:
        ready = []
    if wake_r in ready:
        os.read(wake_r, 512)
    reap()
    for fd in ready:
        if fd == wake_r or stopping:
            continue
        s, conf = listeners[fd]
        try:
            conn, _ = s.accept()
        except OSError:
            continue
        pid = os.fork()
        if pid == 0:
            try:
                signal.set_wakeup_fd(-1)
                for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
                    signal.signal(sig, signal.SIG_DFL)
                guard()
                os.dup2(conn.fileno(), 0)
                os.dup2(conn.fileno(), 1)
                os.execv(binary, [binary, "--inetd", "--config-file=" + conf])
            finally:
                os._exit(127)
        children.add(pid)
        conn.close()
for s, _ in listeners.values():
    s.close()
for pid in children:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
deadline = time.monotonic() + 5
while children:
    reap()
    if children and time.monotonic() > deadline:
        for pid in children:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = float("inf")
    time.sleep(0.01)
"""


def _traversable(path: Path, uid: int, gids: set[int]) -> bool:
    """Can a process with uid/gids reach `path` (search permission on every ancestor)?"""
    for directory in [path, *path.parents]:
        try:
            st = directory.stat()
        except FileNotFoundError:
            continue
        if uid == 0:
            continue
        if st.st_uid == uid:
            bit = stat.S_IXUSR
        elif st.st_gid in gids:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not st.st_mode & bit:
            return False
    return True




def _quote(value: str | Path) -> str:
    """A mailutils configuration string literal."""
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


_FROM_RE = re.compile(rb"^(>*From )", re.MULTILINE)
_QUOTED_FROM_RE = re.compile(rb"^>(>*From )", re.MULTILINE)


def _mbox_entry(raw: bytes, when: float) -> bytes:
    # CRLF in an mbox breaks mailutils' parser (see the module doc): store LF
    body = _FROM_RE.sub(rb">\1", raw.replace(b"\r\n", b"\n"))
    if not body.endswith(b"\n"):
        body += b"\n"
    stamp = time.asctime(time.gmtime(when)).encode()
    return b"From MAILER-DAEMON " + stamp + b"\n" + body + b"\n"


def _split_mbox(data: bytes) -> list[bytes]:
    """The messages of an mbox file: no From_ line, no separator, From-unquoted."""
    starts = [m.start() for m in re.finditer(rb"^From ", data, re.MULTILINE)]
    messages = []
    for i, start in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else len(data)
        chunk = data[start:end]
        chunk = chunk[chunk.find(b"\n") + 1 :]  # the From_ line
        if chunk.endswith(b"\n\n"):
            chunk = chunk[:-1]  # the separator line
        elif i + 1 == len(starts) and chunk.endswith(b"\n") and not chunk.strip(b"\n"):
            chunk = b""
        messages.append(_QUOTED_FROM_RE.sub(rb"\1", chunk))
    return messages




class Mailutils:
    """A private GNU Mailutils pop3d on 127.0.0.1 with its own config (see the module doc).

    ``pop3_port`` serves plain POP3 (offering STLS when ``ssl``); ``pop3s_port``
    serves implicit TLS (None without ``ssl``). Clients trust ``ca_file``, a
    self-signed certificate for localhost and 127.0.0.1.
    """

    name = "GNU Mailutils"
    host: str = "127.0.0.1"

    def __init__(
        self,
        root: Path,
        *,
        ssl: bool = True,
        mailbox_format: str = "mbox",
        idle_timeout: int = 600,
        extra_config: str = "",
    ) -> None:
        if mailbox_format not in _FORMATS:
            raise ValueError(f"mailbox_format must be one of {_FORMATS}, not {mailbox_format!r}")
        self.root = Path(root).absolute()
        self.ssl = ssl
        self.mailbox_format = mailbox_format
        self.idle_timeout = idle_timeout
        self.extra_config = extra_config
        self.pop3_port: int = 0
        self.pop3s_port: int | None = None
        self.binary: str | None = None
        self.version: str = ""
        self._as_root = os.geteuid() == 0
        if self._as_root:
            mail = pwd.getpwnam(_ROOT_MAIL_USER)
            self._uid, self._gid = mail.pw_uid, mail.pw_gid
        else:
            self._uid, self._gid = os.geteuid(), os.getegid()
        self._process: subprocess.Popen[bytes] | None = None
        self._lifeline: int | None = None
        self._run_dir: Path | None = None
        self._data_dir = self.root
        self._lock = threading.RLock()
        self._serial = itertools.count()
        self._tag = f"P{os.getpid()}R{secrets.token_hex(3)}"

    # -- paths ------------------------------------------------------------

    @property
    def ca_file(self) -> Path | None:
        """The self-signed certificate clients should trust (None without ssl)."""
        return self.root / "ssl" / "cert.pem" if self.ssl else None

    @property
    def key_file(self) -> Path:
        return self.root / "ssl" / "key.pem"

    @property
    def log_path(self) -> Path:
        return self.root / "mailutils.log"

    @property
    def users_dir(self) -> Path:
        return self._data_dir / "users"

    @property
    def mail_dir(self) -> Path:
        return self._data_dir / "mail"

    def mailbox_path(self, user: str) -> Path:
        """``mail/<user>/INBOX``: the mbox file or the maildir."""
        return self.mail_dir / user / "INBOX"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        """Process id of the reaper that leads the server's process group."""
        return self._process.pid if self._process is not None else None

    # -- lifecycle --------------------------------------------------------

    def start(self) -> Mailutils:
        """Write config, users and certificate; start on free ports; wait for a greeting."""
        if self.running:
            return self
        self._shutdown()
        binary = find_mailutils()
        if binary is None:
            raise RuntimeError(_privilege_problem() or _INSTALL_HINT)
        self.binary = binary
        self.version = _mailutils_pop3d(binary) or ""
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            self._prepare_dirs()
            if self.ssl:
                self._make_certificate()
            self._launch(binary)
        except BaseException:
            self._shutdown()
            raise
        running.add(self)
        return self

    def stop(self) -> None:
        """Stop the server and wait until all of its processes are gone. Idempotent."""
        running.discard(self)
        self._shutdown()

    def __enter__(self) -> Mailutils:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"pop3={self.pop3_port} pop3s={self.pop3s_port}" if self.running else "stopped"
        return f"<Mailutils {self.root} {self.mailbox_format} {state}>"

    def _chown(self, path: Path | str) -> None:
        if self._as_root:
            os.chown(path, self._uid, self._gid)

    def _prepare_dirs(self) -> None:
        self._run_dir = Path(tempfile.mkdtemp(prefix="mailutils-", dir=short_tmp()))
        os.chmod(self._run_dir, 0o750)
        self._chown(self._run_dir)
        if self._as_root and not _traversable(self.root, self._uid, {self._gid}):
            data = self._run_dir / "data"
            data.mkdir(mode=0o700)
            self._chown(data)
            for name in ("users", "mail"):
                if (self.root / name).exists():
                    shutil.move(str(self.root / name), str(data / name))
            self._data_dir = data
        self._ensure_data_dirs()
        for sub in ("passwd", "tls"):
            path = self._run_dir / sub
            path.mkdir(mode=0o700)
            self._chown(path)
        self._write_passwd()

    def _ensure_data_dirs(self) -> None:
        if not self.users_dir.exists():
            self.users_dir.mkdir(parents=True, mode=0o700)
        if not self.mail_dir.exists():
            self.mail_dir.mkdir(parents=True, mode=0o700)
            self._chown(self.mail_dir)

    def _restore_data(self) -> None:
        if self._data_dir == self.root:
            return
        for name in ("users", "mail"):
            src = self._data_dir / name
            if src.exists():
                dst = self.root / name
                if dst.exists():
                    shutil.rmtree(dst)
                shutil.move(str(src), str(dst))
        self._data_dir = self.root

    def _make_certificate(self) -> None:
        assert self.ca_file is not None
        if not (self.ca_file.exists() and self.key_file.exists()):
            make_certificate(self.ca_file, self.key_file, "localhost",
                             "DNS:localhost,IP:127.0.0.1", "GNU Mailutils")
            os.chmod(self.key_file, 0o600)
        # pop3d (as mail) reads private copies; GnuTLS' file checks want the
        # key unreadable by group and others.
        assert self._run_dir is not None
        for src in (self.ca_file, self.key_file):
            dst = self._run_dir / "tls" / src.name
            shutil.copyfile(src, dst)
            os.chmod(dst, 0o600)
            self._chown(dst)

    def _launch(self, binary: str) -> None:
        assert self._run_dir is not None
        last_error = ""
        for _attempt in range(_PORT_ATTEMPTS):
            ports = _free_ports(2 if self.ssl else 1)
            self.pop3_port = ports[0]
            self.pop3s_port = ports[1] if self.ssl else None
            specs = [f"{self.pop3_port}={self._write_config('pop3', 'stls' if self.ssl else None)}"]
            if self.pop3s_port is not None:
                specs.append(f"{self.pop3s_port}={self._write_config('pop3s', 'connection')}")
            uid = self._uid if self._as_root else -1
            self._process, self._lifeline = spawn_reaped(
                [
                    sys.executable,
                    "-I",
                    "-S",
                    "-c",
                    _ACCEPTOR,
                    str(uid),
                    str(self._gid),
                    binary,
                    *specs,
                ],
                self._run_dir,
                self.log_path,
                cwd="/",
            )
            if self._wait_until_serving():
                return
            last_error = self._failure_report()
            self._shutdown_processes()
            if "Address already in use" not in last_error:
                break
        raise RuntimeError(f"GNU Mailutils pop3d did not start:\n{last_error}")

    def _wait_until_serving(self) -> bool:
        assert self._process is not None
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                return False
            try:
                with socket.create_connection((self.host, self.pop3_port), timeout=2) as probe:
                    if probe.recv(512).startswith(b"+OK"):
                        probe.sendall(b"QUIT\r\n")
                        probe.recv(512)
                        return True
            except OSError:
                pass
            time.sleep(0.01)
        return False

    def _failure_report(self) -> str:
        parts = [f"--- {self.log_path.name} ---\n{_tail(self.log_path, 30)}"]
        if self._process is not None and self._process.returncode is not None:
            parts.append(f"exit status {self._process.returncode}")
        else:
            parts.append(f"no POP3 greeting on {self.host}:{self.pop3_port} in {_START_TIMEOUT}s")
        return "\n".join(parts)

    def _shutdown(self) -> None:
        with self._lock:
            self._shutdown_processes()
            try:
                self._restore_data()
            finally:
                if self._run_dir is not None:
                    shutil.rmtree(self._run_dir, ignore_errors=True)
                    self._run_dir = None

    def _shutdown_processes(self) -> None:
        process, self._process = self._process, None
        try:
            if process is not None:
                self._stop_process_group(process)
        finally:
            if self._lifeline is not None:
                os.close(self._lifeline)
                self._lifeline = None

    def _stop_process_group(self, process: subprocess.Popen[bytes]) -> None:
        pgid = process.pid  # the reaper leads the session and process group
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)  # forwarded to the acceptor
        deadline = time.monotonic() + _STOP_TIMEOUT
        while True:
            members = _live_members(pgid)
            if not members and process.poll() is not None:
                break
            if time.monotonic() > deadline:
                try:
                    os.killpg(pgid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                for member in members:
                    _kill(member.pid, signal.SIGKILL)
                if time.monotonic() > deadline + _STOP_TIMEOUT:
                    raise RuntimeError(f"pop3d processes survived SIGKILL: {members}")
            try:
                process.wait(timeout=0.005)
            except subprocess.TimeoutExpired:
                pass
        process.wait()

    # -- configuration ----------------------------------------------------

    def _write_config(self, name: str, tls_mode: str | None) -> Path:
        assert self._run_dir is not None
        run = self._run_dir
        lines = [
            "# Written by tests.support.mailutils; rewritten at every start.",
            "logging { syslog false; };",
            "tcp-wrappers { enable false; };",
            "mandatory-locking { enable false; };",
            "auth {",
            "  authorization clear;",
            "  authorization virtdomain;",
            "  authentication clear;",
            "  authentication generic;",
            "};",
            f"virtdomain {{ passwd-dir {_quote(run / 'passwd')}; }};",
            f"mailbox {{ mailbox-type {self.mailbox_format}; }};",
            "locking { type dotlock; };",
            # no APOP database: APOP fails for everyone
            f"apop-database-file {_quote(run / 'apop.db')};",
            f"timeout {self.idle_timeout};",
        ]
        # 3.15 refuses any tls-mode, even "false", without a certificate
        # ("server <inetd>: no certificate set"): without ssl there is none.
        if tls_mode is not None:
            lines.append(f"tls-mode {tls_mode};")
        if self.ssl:
            lines += [
                "tls {",
                f"  ssl-certificate-file {_quote(run / 'tls' / 'cert.pem')};",
                f"  ssl-key-file {_quote(run / 'tls' / 'key.pem')};",
                "};",
            ]
        if self.extra_config:
            lines += ["# extra_config", self.extra_config]
        path = run / f"{name}.conf"
        path.write_text("\n".join(lines) + "\n")
        os.chmod(path, 0o600)
        self._chown(path)
        return path

    # -- users and mail ---------------------------------------------------

    def add_user(self, name: str, password: str) -> None:
        """Create (or change the password of) a user; works before and after start."""
        if not _USERNAME_RE.match(name) or name in (".", ".."):
            raise ValueError(f"user name {name!r}: use letters, digits and . _ - only")
        if "\n" in password or "\r" in password or "\0" in password:
            raise ValueError("the password may not contain CR, LF or NUL")
        openssl = shutil.which("openssl")
        if openssl is None:
            raise RuntimeError("openssl not found (apt install openssl): needed to hash passwords")
        hashed = (
            subprocess.run(
                [openssl, "passwd", "-6", "-stdin"],
                input=password.encode(),
                capture_output=True,
                check=True,
            )
            .stdout.decode()
            .strip()
        )
        with self._lock:
            self._ensure_data_dirs()
            home = self.mail_dir / name
            if not home.exists():
                home.mkdir(mode=0o700)
                self._chown(home)
            self._create_mailbox(self.mailbox_path(name))
            tmp = self.users_dir / f".{name}.tmp"
            tmp.write_text(hashed + "\n")
            os.replace(tmp, self.users_dir / name)
            if self._run_dir is not None:
                self._write_passwd()

    def _create_mailbox(self, path: Path) -> None:
        if self.mailbox_format == "mbox":
            if not path.exists():
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                os.close(fd)
                self._chown(path)
        else:
            for sub in ("", "cur", "new", "tmp"):
                d = path / sub
                if not d.exists():
                    d.mkdir(mode=0o700)
                    self._chown(d)

    def users(self) -> list[str]:
        if not self.users_dir.exists():
            return []
        return sorted(p.name for p in self.users_dir.iterdir() if not p.name.startswith("."))

    def _write_passwd(self) -> None:
        """The virtdomain passwd files, one per name the client may reach us by."""
        assert self._run_dir is not None
        lines = []
        for user in self.users():
            hashed = (self.users_dir / user).read_text().strip()
            lines.append(
                f"{user}:{hashed}:{self._uid}:{self._gid}::{self.mail_dir / user}:/bin/false\n"
            )
        domains = {"localhost", "127.0.0.1"}
        try:
            domains.add(socket.gethostbyaddr("127.0.0.1")[0])
        except OSError:
            pass
        for domain in sorted(domains):
            tmp = self._run_dir / "passwd" / f".{domain}.tmp"
            tmp.write_text("".join(lines))
            os.chmod(tmp, 0o600)
            self._chown(tmp)
            os.replace(tmp, self._run_dir / "passwd" / domain)

    def _mailbox_for_delivery(self, user: str) -> Path:
        if not (self.users_dir / user).exists():
            raise ValueError(f"no such user {user!r}: call add_user() first")
        path = self.mailbox_path(user)
        self._create_mailbox(path)
        return path

    def deliver(self, user: str, raw: bytes) -> None:
        """Add one message to the user's mailbox (see the module doc for the format)."""
        self.deliver_many(user, [raw])

    def deliver_many(self, user: str, messages: Iterable[bytes]) -> int:
        """Add many messages in order; returns the count.

        mbox: appended under the mbox's dotlock (``INBOX.lock``, as mailutils
        locks it), so a running session never sees half a message.
        maildir: written to tmp/ and renamed into new/.
        """
        with self._lock:
            path = self._mailbox_for_delivery(user)
            if self.mailbox_format == "mbox":
                return self._append_mbox(path, messages)
            return self._write_maildir(path, messages)

    def _append_mbox(self, path: Path, messages: Iterable[bytes]) -> int:
        lock = Path(f"{path}.lock")
        deadline = time.monotonic() + 30
        while True:
            try:
                fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                os.write(fd, f"{os.getpid()}\n".encode())
                os.close(fd)
                break
            except FileExistsError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{lock} held for 30 s") from None
                time.sleep(0.01)
        try:
            count = 0
            now = time.time()
            with open(path, "ab") as f:
                for raw in messages:
                    f.write(_mbox_entry(raw, now))
                    count += 1
            return count
        finally:
            lock.unlink()

    def _write_maildir(self, path: Path, messages: Iterable[bytes]) -> int:
        now = time.time()
        secs, usecs = int(now), int((now % 1) * 1_000_000)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
        count = 0
        for raw in messages:
            name = f"{secs}.M{usecs:06d}{self._tag}Q{next(self._serial):010d}.archiver"
            tmp_path = path / "tmp" / name
            fd = os.open(tmp_path, flags, 0o600)
            try:
                view = memoryview(raw)
                while view:
                    view = view[os.write(fd, view) :]
                if self._as_root:
                    os.fchown(fd, self._uid, self._gid)
            finally:
                os.close(fd)
            os.rename(tmp_path, path / "new" / name)
            count += 1
        return count

    def _maildir_files(self, user: str) -> list[Path]:
        path = self.mailbox_path(user)
        files = []
        for sub in ("new", "cur"):
            try:
                with os.scandir(path / sub) as entries:
                    files += [Path(e.path) for e in entries if not e.name.startswith(".")]
            except FileNotFoundError:
                continue
        return sorted(files, key=lambda p: p.name.split(":", 1)[0])

    def mailbox_messages(self, user: str) -> list[bytes]:
        """The messages as stored now, in mailbox order (mbox: see the module doc)."""
        if self.mailbox_format == "maildir":
            return [p.read_bytes() for p in self._maildir_files(user)]
        try:
            data = self.mailbox_path(user).read_bytes()
        except FileNotFoundError:
            return []
        return _split_mbox(data)

    def mailbox_count(self, user: str) -> int:
        """Messages currently in the user's mailbox."""
        if self.mailbox_format == "maildir":
            return len(self._maildir_files(user))
        return len(self.mailbox_messages(user))
