"""A private Dovecot POP3 server on loopback, for the tests and benchmarks.

    with Dovecot(tmp_path / "dovecot").start() as server:
        server.add_user("alice", "secret")
        server.deliver("alice", b"Subject: hi\\n\\nbody\\n")
        ...  # connect to server.host:server.pop3_port (STLS) or server.pop3s_port

Contracts worth knowing (see /work/shared/DOVECOT.md for the facts behind them):

* Everything lives in ``root``: ``dovecot.conf``, ``dovecot.log``, the
  certificate (``ca_file``), the passwd-file users (``users/``) and the
  maildirs (``mail/``). Only Dovecot's sockets and state go to a short
  private directory under /tmp, because UNIX socket paths are limited to
  108 bytes and pytest's temporary paths are long; it is removed by stop().
* As root, Dovecot's own processes run as its usual ``dovecot``/``dovenull``
  users and mail is owned by an unprivileged system user (``mail``), as in
  production. Those users must be able to reach the users and maildirs; when
  ``root`` sits below a directory they cannot enter (pytest's
  /tmp/pytest-of-root is 0700), the users and maildirs are moved into the
  private runtime directory while the server runs and moved back by stop().
  As a normal user, everything runs as that user.
* Dovecot sends what is in a maildir file in wire form: every bare LF as
  CRLF, a final CRLF added when missing; NUL and bare CR pass unchanged.
  Nothing in the configuration written here rewrites messages otherwise.
* The server's processes form one process group under a small reaper
  process (our direct child), so stop() waits for every one of them and no
  orphan or zombie is left behind, even for Dovecot's log process, which
  outlives its master. If our process dies without stop(), even by
  SIGKILL, the reaper notices, stops Dovecot and removes the runtime
  directory; if the reaper is killed, the master dies with it (see tests/support/processes.py).
* Logins fail fast: no auth_failure_delay and no anvil penalty, because
  tests fail logins on purpose. Dovecot still answers a failure after up
  to 0.5 s (its failure timer's granularity).

Standard library only (plus the ``openssl`` command for the certificate).
"""

from __future__ import annotations

import base64
import grp
import ipaddress
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
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tests.support.processes import free_ports as _free_ports
from tests.support.processes import kill as _kill
from tests.support.processes import live_members as _live_members
from tests.support.processes import make_certificate, running, short_tmp, spawn_reaped
from tests.support.processes import tail as _tail

__all__ = [
    "Dovecot",
    "Pop3Session",
    "find_dovecot",
    "require_dovecot",
]

_INSTALL_HINT = "dovecot not installed (apt install dovecot-core dovecot-pop3d)"

#: Where distributions keep Dovecot's helper executables (pop3, pop3-login, ...).
_LIBEXEC_DIRS = ("/usr/lib/dovecot", "/usr/libexec/dovecot", "/usr/local/libexec/dovecot")

#: Unprivileged system users that may own the mail files when we run as root,
#: in order of preference. ``mail`` exists on every Debian/Ubuntu system.
_ROOT_MAIL_USERS = ("mail", "nobody")

#: Dovecot's default auth_username_chars; a name outside it could never log in.
_USERNAME_RE = re.compile(r"^[A-Za-z0-9.@_-]+$")

_POP3_LOGOUT_FORMAT = "top=%t/%p, retr=%r/%b, del=%d/%m, size=%s"
_LOGOUT_RE = re.compile(
    r"pop3\((?P<user>[^)]*)\).*?Disconnected: (?P<reason>.*?) "
    r"top=(?P<top>\d+)/(?P<top_bytes>\d+), retr=(?P<retr>\d+)/(?P<retr_bytes>\d+), "
    r"del=(?P<deleted>\d+)/(?P<messages>\d+), size=(?P<size>\d+)"
)

_START_TIMEOUT = 15.0
_STOP_TIMEOUT = 10.0
_PORT_ATTEMPTS = 8


def find_dovecot() -> str | None:
    """Path of a dovecot binary that can serve POP3, or None.

    ``$ARCHIVER_DOVECOT`` wins when set. /usr/sbin is searched even when it
    is not on PATH (it usually is not for normal users). A dovecot without
    its POP3 executables (dovecot-core without dovecot-pop3d) counts as
    missing.
    """
    candidates = [os.environ.get("ARCHIVER_DOVECOT", ""), shutil.which("dovecot") or ""]
    candidates += ["/usr/sbin/dovecot", "/usr/local/sbin/dovecot"]
    for candidate in candidates:
        if (
            candidate
            and os.path.isfile(candidate)
            and os.access(candidate, os.X_OK)
            and _has_pop3(candidate)
        ):
            return candidate
    return None


def _has_pop3(binary: str) -> bool:
    prefix = Path(binary).resolve().parent.parent  # /usr/sbin/dovecot -> /usr
    dirs = [prefix / "lib" / "dovecot", prefix / "libexec" / "dovecot"]
    dirs += [Path(d) for d in _LIBEXEC_DIRS]
    known = [d for d in dirs if (d / "config").exists()]
    if not known:
        return True  # unknown layout: let start() report what is wrong
    return any((d / "pop3-login").exists() and (d / "pop3").exists() for d in known)


def require_dovecot() -> str:
    """The dovecot binary for a test; skip the test when there is none.

    On CI (``$CI`` set and non-empty) a missing Dovecot is a failure, not a
    skip: CI must install it, and a silently skipped collector suite would
    prove nothing.
    """
    import pytest  # test-only helper; the module itself must not need pytest

    binary = find_dovecot()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail(f"{_INSTALL_HINT}; CI must have it", pytrace=False)
        pytest.skip(_INSTALL_HINT)
    return binary


@dataclass(frozen=True)
class Pop3Session:
    """One POP3 session as Dovecot logged it at logout (pop3_logout_format)."""

    user: str
    reason: str  # "Logged out" after QUIT; otherwise why the session ended
    top: int  # TOP commands
    top_bytes: int
    retr: int  # RETR commands
    retr_bytes: int
    deleted: int  # messages expunged (DELE + QUIT)
    messages: int  # messages in the mailbox at login
    size: int  # mailbox size at login

    @property
    def quit(self) -> bool:
        """The client ended with QUIT (only then are DELEs carried out)."""
        return self.reason == "Logged out"


@dataclass(frozen=True)
class _Identity:
    """Who owns what: the mail files, Dovecot's internal and login processes."""

    mail_uid: int
    mail_gid: int
    internal_user: str
    internal_group: str
    login_user: str
    as_root: bool

    @classmethod
    def detect(cls) -> _Identity:
        if os.geteuid() != 0:
            me = pwd.getpwuid(os.geteuid())
            group = grp.getgrgid(os.getegid()).gr_name
            return cls(me.pw_uid, os.getegid(), me.pw_name, group, me.pw_name, False)
        mail = _first_user(_ROOT_MAIL_USERS)
        internal = _first_user(("dovecot", "nobody"))
        login = _first_user(("dovenull", "nobody"))
        return cls(
            mail_uid=mail.pw_uid,
            mail_gid=mail.pw_gid,
            internal_user=internal.pw_name,
            internal_group=grp.getgrgid(internal.pw_gid).gr_name,
            login_user=login.pw_name,
            as_root=True,
        )

    def uids_needing_access(self) -> list[tuple[int, set[int]]]:
        """(uid, gids) of the processes that read users and maildirs."""
        internal = pwd.getpwnam(self.internal_user)
        return [
            (self.mail_uid, _groups_of(self.mail_uid, self.mail_gid)),
            (internal.pw_uid, _groups_of(internal.pw_uid, internal.pw_gid)),
        ]


def _first_user(names: Iterable[str]) -> pwd.struct_passwd:
    for name in names:
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError(f"none of the system users {', '.join(names)} exists")


def _groups_of(uid: int, gid: int) -> set[int]:
    name = pwd.getpwuid(uid).pw_name
    return {gid} | {g.gr_gid for g in grp.getgrall() if name in g.gr_mem}


def _traversable(path: Path, uid: int, gids: set[int]) -> bool:
    """Can a process with uid/gids reach `path` (search permission on every ancestor)?"""
    for directory in [path, *path.parents]:
        try:
            st = directory.stat()
        except FileNotFoundError:
            continue  # will be created by us, with permissions we choose
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






class Dovecot:
    """A private Dovecot POP3 server on 127.0.0.1 with its own config in `root`.

    ``pop3_port`` serves plain POP3 (offering STLS when ``ssl``);
    ``pop3s_port`` serves implicit TLS (None without ``ssl``). Clients trust
    ``ca_file``; the certificate names ``cert_hostname`` (and 127.0.0.1 when
    that is "localhost"). ``extra_config`` is appended to dovecot.conf, so
    its settings override the ones written here.
    """

    host: str = "127.0.0.1"

    def __init__(
        self,
        root: Path,
        *,
        ssl: bool = True,
        cert_hostname: str = "localhost",
        uidl_format: str | None = None,
        max_connections_per_user: int = 100,
        extra_config: str = "",
    ) -> None:
        self.root = Path(root).absolute()
        self.ssl = ssl
        self.cert_hostname = cert_hostname
        self.uidl_format = uidl_format
        self.max_connections_per_user = max_connections_per_user
        self.extra_config = extra_config
        self.pop3_port: int = 0
        self.pop3s_port: int | None = None
        self.binary: str | None = None
        self._identity = _Identity.detect()
        self._process: subprocess.Popen[bytes] | None = None
        self._lifeline: int | None = None  # write end; see _REAPER
        self._run_dir: Path | None = None
        # users/ and mail/ live here; root, except while relocated (see module doc)
        self._data_dir = self.root
        self._lock = threading.Lock()
        self._serial = itertools.count()
        self._delivery_tag = f"P{os.getpid()}R{secrets.token_hex(3)}"

    # -- paths ------------------------------------------------------------

    @property
    def config_path(self) -> Path:
        return self.root / "dovecot.conf"

    @property
    def log_path(self) -> Path:
        return self.root / "dovecot.log"

    @property
    def ca_file(self) -> Path:
        """The self-signed certificate that clients should trust."""
        return self.root / "ssl" / "cert.pem"

    @property
    def key_file(self) -> Path:
        return self.root / "ssl" / "key.pem"

    @property
    def users_dir(self) -> Path:
        """One passwd-file per user (``users/<name>``), read at each login."""
        return self._data_dir / "users"

    @property
    def mail_dir(self) -> Path:
        """The maildirs, one per user (``mail/<name>/{cur,new,tmp}``)."""
        return self._data_dir / "mail"

    def maildir(self, user: str) -> Path:
        return self.mail_dir / user

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        """Process id of the reaper that leads the server's process group."""
        return self._process.pid if self._process is not None else None

    # -- lifecycle --------------------------------------------------------

    def start(self) -> Dovecot:
        """Write the config and certificate, start Dovecot on free ports, wait until it serves.

        Raises RuntimeError, with the tail of Dovecot's log, when it cannot
        start. Returns self, so ``with Dovecot(path).start() as server:`` works.
        """
        if self.running:
            return self
        self._shutdown()  # a server that died by itself: clean up after it first
        binary = find_dovecot()
        if binary is None:
            raise RuntimeError(_INSTALL_HINT)
        self.binary = binary
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

    def __enter__(self) -> Dovecot:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"pop3={self.pop3_port} pop3s={self.pop3s_port}" if self.running else "stopped"
        return f"<Dovecot {self.root} {state}>"

    def _prepare_dirs(self) -> None:
        ident = self._identity
        self._run_dir = Path(tempfile.mkdtemp(prefix="dovecot-", dir=short_tmp()))
        if ident.as_root:
            os.chmod(self._run_dir, 0o755)  # Dovecot's unprivileged processes use its sockets
            reachable = all(
                _traversable(self.root, uid, gids) for uid, gids in ident.uids_needing_access()
            )
            if not reachable:
                data = self._run_dir / "data"
                data.mkdir(mode=0o755)
                for name in ("users", "mail"):
                    if (self.root / name).exists():
                        shutil.move(str(self.root / name), str(data / name))
                self._data_dir = data
        self._ensure_data_dirs()

    def _ensure_data_dirs(self) -> None:
        ident = self._identity
        if not self.users_dir.exists():
            self.users_dir.mkdir(parents=True, mode=0o750 if ident.as_root else 0o700)
            if ident.as_root:
                os.chown(self.users_dir, 0, grp.getgrnam(ident.internal_group).gr_gid)
        if not self.mail_dir.exists():
            self.mail_dir.mkdir(parents=True, mode=0o700)
            os.chown(self.mail_dir, ident.mail_uid, ident.mail_gid)

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
        marker = self.ca_file.parent / "hostname"
        if (
            self.ca_file.exists()
            and self.key_file.exists()
            and marker.exists()
            and marker.read_text() == self.cert_hostname
        ):
            return  # restart: keep the certificate clients already trust
        try:
            ipaddress.ip_address(self.cert_hostname)
            names = f"IP:{self.cert_hostname}"
        except ValueError:
            names = f"DNS:{self.cert_hostname}"
            if self.cert_hostname == "localhost":
                names += ",IP:127.0.0.1"
        make_certificate(self.ca_file, self.key_file, self.cert_hostname, names, "Dovecot")
        os.chmod(self.key_file, 0o600)
        marker.write_text(self.cert_hostname)

    def _launch(self, binary: str) -> None:
        last_error = ""
        for _attempt in range(_PORT_ATTEMPTS):
            ports = _free_ports(2 if self.ssl else 1)
            self.pop3_port = ports[0]
            self.pop3s_port = ports[1] if self.ssl else None
            self._write_config()
            out_path = self.root / "dovecot.out"
            self._process, self._lifeline = spawn_reaped(
                [binary, "-F", "-c", str(self.config_path)], self._run_dir, out_path)
            if self._wait_until_serving():
                return
            last_error = self._failure_report()
            self._shutdown_processes()
            if "Address already in use" not in last_error:
                break
        raise RuntimeError(f"Dovecot did not start (config {self.config_path}):\n{last_error}")

    def _wait_until_serving(self) -> bool:
        """True once the POP3 port greets with +OK; False if Dovecot exited."""
        assert self._process is not None
        deadline = time.monotonic() + _START_TIMEOUT
        out_path = self.root / "dovecot.out"
        probe_timeout = 0.1  # Dovecot greets within milliseconds; grow it if the machine is slow
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                return False
            # Dovecot retries a taken port for 2 s before giving up; a clash
            # with our own port choice is better answered with new ports now.
            if out_path.stat().st_size and b"Address already in use" in out_path.read_bytes():
                return False
            try:
                # a short first timeout: on a port clash the other listener never greets
                with socket.create_connection(
                    (self.host, self.pop3_port), timeout=probe_timeout
                ) as probe:
                    greeting = probe.recv(512)
                    if greeting.startswith(b"+OK"):
                        probe.sendall(b"QUIT\r\n")
                        return True
            except OSError:
                probe_timeout = min(probe_timeout * 2, 2.0)
            time.sleep(0.005)
        return False

    def _failure_report(self) -> str:
        parts = []
        for path in (self.root / "dovecot.out", self.log_path):
            tail = _tail(path, 30)
            if tail:
                parts.append(f"--- {path.name} ---\n{tail}")
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
        pgid = process.pid  # the reaper leads the server's session and process group
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)  # forwarded to the master
        # On SIGTERM the master stops every service within milliseconds, then
        # sleeps a fixed second before exiting, with only its log process
        # left. Once nothing else is alive we end that sleep with SIGKILL: the
        # log process still drains what the others wrote and exits by itself
        # when the master's end of its pipes closes.
        deadline = time.monotonic() + _STOP_TIMEOUT
        master_killed = False
        while True:
            members = _live_members(pgid)
            if not members and process.poll() is not None:
                break
            if not master_killed:
                masters = [m for m in members if m.ppid == pgid and m.comm == "dovecot"]
                others = [m for m in members if m.pid != pgid and m.comm not in ("dovecot", "log")]
                if masters and not others:
                    for master in masters:
                        _kill(master.pid, signal.SIGKILL)
                    master_killed = True
            if time.monotonic() > deadline:
                # Something is wedged: kill the whole group, then wait for it.
                try:
                    os.killpg(pgid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                if time.monotonic() > deadline + _STOP_TIMEOUT:
                    raise RuntimeError(f"Dovecot processes survived SIGKILL: {members}")
            try:
                process.wait(timeout=0.005)
            except subprocess.TimeoutExpired:
                pass
        process.wait()

    # -- configuration ----------------------------------------------------

    def _write_config(self) -> None:
        assert self._run_dir is not None
        ident = self._identity
        lines = [
            "# Written by tests.support.dovecot; rewritten at every start.",
            f"base_dir = {self._run_dir / 'run'}",
            f"state_dir = {self._run_dir / 'state'}",
            f"instance_name = dovecot-archiver-{self._run_dir.name.removeprefix('dovecot-')}",
            f"log_path = {self.log_path}",
            "protocols = pop3",
            "listen = 127.0.0.1",
            "shutdown_clients = yes",
            "",
            "# Authentication: passwd-file users, plaintext allowed on loopback, and",
            "# failed logins answered at once (no failure delay, no anvil penalty),",
            "# so that tests of bad credentials stay fast.",
            "disable_plaintext_auth = no",
            "auth_mechanisms = plain login",
            "auth_failure_delay = 0",
            "login_trusted_networks = 127.0.0.0/8",
            "auth_verbose = yes",
            "passdb {",
            "  driver = passwd-file",
            f"  args = scheme=PLAIN username_format=%u {self.users_dir}/%u",
            "}",
            "userdb {",
            "  driver = passwd-file",
            f"  args = username_format=%u {self.users_dir}/%u",
            "  # the maildirs may move (see the module doc): homes are set here",
            f"  override_fields = home={self.mail_dir}/%u",
            "}",
            "",
            f"mail_location = maildir:{self.mail_dir}/%u",
            f"first_valid_uid = {ident.mail_uid}",
            f"last_valid_uid = {ident.mail_uid}",
            f"mail_max_userip_connections = {self.max_connections_per_user}",
            "",
            "# Byte-exact retrieval: Dovecot sends the file as it is, bare LF as",
            "# CRLF. Keep the defaults that could otherwise change what clients see.",
            "pop3_no_flag_updates = no",
            "pop3_reuse_xuidl = no",
            "pop3_save_uidl = no",
            "pop3_fast_size_lookups = no",
            f"pop3_logout_format = {_POP3_LOGOUT_FORMAT}",
        ]
        if self.uidl_format:
            lines.append(f"pop3_uidl_format = {self.uidl_format}")
        if self.ssl:
            lines += [
                "",
                "ssl = yes",
                f"ssl_cert = <{self.ca_file}",
                f"ssl_key = <{self.key_file}",
            ]
        else:
            lines += ["", "ssl = no"]
        lines += [
            "",
            f"default_internal_user = {ident.internal_user}",
            f"default_internal_group = {ident.internal_group}",
            f"default_login_user = {ident.login_user}",
        ]
        lines += [
            "service anvil {",
            # Without root Dovecot cannot chroot its login and anvil processes.
            "  chroot =" if not ident.as_root else "  chroot = empty",
            # An unusable penalty socket turns off anvil's growing delay (up to
            # 15 s) after failed logins from one IP: tests fail logins on purpose.
            "  unix_listener anvil-auth-penalty {",
            "    mode = 0",
            "  }",
            "}",
        ]
        lines += [
            "service pop3-login {",
            "  chroot =" if not ident.as_root else "  chroot = login",
            "  inet_listener pop3 {",
            "    address = 127.0.0.1",
            f"    port = {self.pop3_port}",
            "  }",
            "  inet_listener pop3s {",
            "    address = 127.0.0.1",
            f"    port = {self.pop3s_port or 0}",
            f"    ssl = {'yes' if self.ssl else 'no'}",
            "  }",
            "}",
        ]
        if self.extra_config:
            lines += ["", "# extra_config", self.extra_config]
        self.config_path.write_text("\n".join(lines) + "\n")

    # -- users and mail ---------------------------------------------------

    def add_user(self, name: str, password: str) -> None:
        """Create (or change the password of) a POP3 user; works before and after start.

        Each user is a one-line passwd-file, read by Dovecot at every login,
        so a user added while the server runs can log in right away.
        """
        if not _USERNAME_RE.match(name) or name in (".", ".."):
            raise ValueError(f"user name {name!r}: use letters, digits and . @ _ - only")
        ident = self._identity
        with self._lock:
            self._ensure_data_dirs()
            maildir = self.maildir(name)
            for sub in ("", "cur", "new", "tmp"):
                path = maildir / sub
                if not path.exists():
                    path.mkdir(mode=0o700)
                    os.chown(path, ident.mail_uid, ident.mail_gid)
            # The password is stored base64-encoded so that any character
            # (even ':' or a newline) survives the passwd-file format.
            encoded = base64.b64encode(password.encode()).decode()
            line = f"{name}:{{PLAIN.BASE64}}{encoded}:{ident.mail_uid}:{ident.mail_gid}::\n"
            target = self.users_dir / name
            tmp = self.users_dir / f".{name}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
            try:
                os.write(fd, line.encode())
                if ident.as_root:
                    os.fchown(fd, 0, grp.getgrnam(ident.internal_group).gr_gid)
            finally:
                os.close(fd)
            os.replace(tmp, target)

    def users(self) -> list[str]:
        if not self.users_dir.exists():
            return []
        return sorted(p.name for p in self.users_dir.iterdir() if not p.name.startswith("."))

    def deliver(self, user: str, raw: bytes) -> Path:
        """Drop one message into the user's maildir new/, as a new unique file.

        The file holds `raw` unchanged (LF or CRLF as given); it is written
        to tmp/ and renamed into new/, so a concurrent session never sees it
        half-written. Returns the file's path.
        """
        with self._lock:
            return self._deliver(self._maildir_for_delivery(user), [raw])[0]

    def deliver_many(self, user: str, messages: Iterable[bytes]) -> int:
        """Drop many messages into the user's maildir new/, in order; returns the count.

        Dovecot numbers new messages by file name, so the iteration order is
        the order a POP3 client sees.
        """
        with self._lock:
            maildir = self._maildir_for_delivery(user)
            count = 0
            batch: list[bytes] = []
            for raw in messages:
                batch.append(raw)
                if len(batch) >= 1000:
                    count += len(self._deliver(maildir, batch))
                    batch = []
            count += len(self._deliver(maildir, batch))
            return count

    def _maildir_for_delivery(self, user: str) -> Path:
        maildir = self.maildir(user)
        if not (self.users_dir / user).exists() or not (maildir / "new").is_dir():
            raise ValueError(f"no such user {user!r}: call add_user() first")
        return maildir

    def _deliver(self, maildir: Path, batch: list[bytes]) -> list[Path]:
        ident = self._identity
        chown = ident.as_root or os.geteuid() != ident.mail_uid
        now = time.time()
        secs, usecs = int(now), int((now % 1) * 1_000_000)
        tmp_dir, new_dir = str(maildir / "tmp"), str(maildir / "new")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
        paths = []
        for raw in batch:
            # <secs>.M<usecs><tag>Q<serial>.archiver: Dovecot orders new mail by
            # the timestamp, then by the rest of the name, so a zero-padded
            # serial keeps delivery order. No ':' or '/' may appear in it.
            name = f"{secs}.M{usecs:06d}{self._delivery_tag}Q{next(self._serial):010d}.archiver"
            tmp_path = f"{tmp_dir}/{name}"
            fd = os.open(tmp_path, flags, 0o600)
            try:
                view = memoryview(raw)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                if chown:
                    os.fchown(fd, ident.mail_uid, ident.mail_gid)
            finally:
                os.close(fd)
            new_path = f"{new_dir}/{name}"
            os.rename(tmp_path, new_path)
            paths.append(Path(new_path))
        return paths

    def _message_files(self, user: str) -> list[Path]:
        maildir = self.maildir(user)
        files = []
        for sub in ("new", "cur"):
            try:
                with os.scandir(maildir / sub) as entries:
                    files += [Path(e.path) for e in entries if not e.name.startswith(".")]
            except FileNotFoundError:
                continue
        # Delivery order: the base name (before Dovecot's ":2,<flags>") sorts
        # like Dovecot's own ordering for the names deliver() writes.
        return sorted(files, key=lambda p: p.name.split(":", 1)[0])

    def mailbox_count(self, user: str) -> int:
        """Messages currently in the user's maildir (new/ + cur/)."""
        return len(self._message_files(user))

    def mailbox_messages(self, user: str) -> list[bytes]:
        """The maildir's message files' contents, in delivery order, as stored."""
        return [p.read_bytes() for p in self._message_files(user)]

    # -- the log ----------------------------------------------------------

    def session_log(self) -> str:
        """Dovecot's log so far, including one pop3_logout_format line per session.

        Dovecot writes a session's logout line just after it answers QUIT, so
        right after a client's QUIT the line may not be there yet: use
        wait_for_sessions() to assert on it.
        """
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def sessions(self, user: str | None = None) -> list[Pop3Session]:
        """The POP3 sessions logged so far (optionally for one user), oldest first."""
        found = []
        for match in _LOGOUT_RE.finditer(self.session_log()):
            if user is not None and match["user"] != user:
                continue
            numbers = {
                k: int(v) for k, v in match.groupdict().items() if k not in ("user", "reason")
            }
            found.append(Pop3Session(user=match["user"], reason=match["reason"], **numbers))
        return found

    def wait_for_sessions(
        self, count: int, user: str | None = None, timeout: float = 5.0
    ) -> list[Pop3Session]:
        """Wait until at least `count` sessions (of `user`) are logged; return them all."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.sessions(user)
            if len(found) >= count or time.monotonic() > deadline:
                if len(found) < count:
                    raise TimeoutError(
                        f"{len(found)} of {count} POP3 sessions logged after {timeout}s:\n"
                        + _tail(self.log_path, 20)
                    )
                return found
            time.sleep(0.01)
