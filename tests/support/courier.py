"""A private Courier POP3 server on loopback, for the tests.

    with Courier(tmp_path / "courier").start() as server:
        server.add_user("alice", "secret")
        server.deliver("alice", b"Subject: hi\\n\\nbody\\n")
        ...  # connect to server.host:server.pop3_port (STLS) or server.pop3s_port

Debian's ``courier-pop`` conflicts with ``dovecot-pop3d``, so nothing is
installed: the packages are unpacked with tests.support.debs
(``courier-pop``, ``courier-base``, ``courier-authlib``,
``courier-authlib-userdb``, ``libcourier-unicode4``, ``libidn12``,
``libltdl7``) and run from there with ``LD_LIBRARY_PATH``.

Contracts worth knowing:

* The chain is Courier's own: ``couriertcpd`` -> ``courierpop3login`` ->
  courier-authlib (``authdaemond`` with the ``authuserdb`` module) ->
  ``courierpop3d`` on a Maildir. With ``ssl`` a second ``couriertcpd`` runs
  ``couriertls -server -tcpd`` in front of the same chain (implicit POP3S)
  and the plain port offers STLS (``couriertls`` again, started by
  pop3login).
* Courier compiles its paths in: authlib's client library only talks to
  ``/run/courier/authdaemon/socket`` and authdaemond reads
  ``/etc/courier/authdaemonrc`` and ``/etc/courier/userdb{,shadow}.dat``.
  So the server runs in a private *mount namespace* (root only: as another
  user ``find_courier()`` finds nothing): there, /etc and /run are
  overlays whose writes go to a private tmpfs, ``/etc/courier`` is this
  server's ``root/etc`` and ``/run/courier`` a private directory. Nothing
  outside the namespace sees any of it; it vanishes with the last process.
  Two servers never share an authdaemon.
* Everything lives in ``root``: ``etc/`` (authdaemonrc, the ``userdb`` text
  file and the userdb*.dat files made from it with Courier's own
  ``makedatprog``), ``ssl/`` (``cert.pem`` = ``ca_file``, ``key.pem``, and
  ``pop3d.pem``, the key and certificate in one file as couriertls wants),
  ``mail/<user>/{cur,new,tmp}`` and ``courier.log`` (the stderr of every
  Courier process: logins, logouts, errors). A short private directory
  under /tmp holds the namespace's mount points and is removed by stop().
* As root (required), mail is owned by the unprivileged ``mail`` user:
  authlib switches to it after the login. Because ``root`` may sit below a
  directory ``mail`` cannot enter (pytest's /tmp/pytest-of-root is 0700),
  ``root/mail`` and the unpacked packages are bind-mounted inside the
  namespace at paths below the private /tmp directory; nothing is moved.
* Passwords are stored as ``{SHA256}`` hashes in userdbshadow.dat, so any
  password works. add_user() works before and after start(): authuserdb
  re-opens the .dat files when they change.
* pop3login starts couriertls for STLS as the user ``courier``, which
  Debian's courier-base creates; when the system has none, the namespace's
  /etc/passwd (the overlay's copy) gets one with the ``mail`` user's ids,
  and ``pop3d.pem`` is owned by ``mail``. The POP3S port's couriertls runs
  as root until the login, like pop3login itself.
* The server's processes form one *session* under the reaper of
  tests/support/processes.py (our direct child; its pid is the session and
  process group id). couriertcpd puts itself and its POP3 sessions in a
  process group of its own, so ``process_groups()`` lists three groups with
  ``ssl`` (two without): check each with processes.live_members(). The
  master is a small Python program that sets up the namespace, starts
  authdaemond and the couriertcpd daemons and, on SIGTERM, stops them and
  kills every process of the session still running (open POP3 sessions
  too), so stop() returns within about a second, with nothing left. If our
  process dies without stop(), even by SIGKILL, the reaper stops the
  master; if the reaper is killed, the master (PR_SET_PDEATHSIG) still
  cleans up, and its daemons die with it.

What Courier 1.0.16 (Debian 12, courier-pop 1.0.16-3+b6, courier-authlib
0.71.4) does, as measured with this fixture:

* Greeting ``+OK Hello there.``: no APOP timestamp, and ``APOP`` answers
  ``-ERR Invalid command.``. The version is not on the wire
  (``IMPLEMENTATION Courier Mail Server``), so ``version`` comes from the
  unpacked package's name.
* CAPA, before and after login alike: ``STLS`` (plain port with ``ssl``
  only), ``TOP``, ``USER``, ``LOGIN-DELAY 10``, ``PIPELINING``, ``UIDL``,
  ``UTF8 USER``, ``IMPLEMENTATION Courier Mail Server``; ``SASL <mechs>``
  first when ``sasl`` names mechanisms. STLS stays listed after login but
  then answers ``-ERR Invalid command.``; after STLS and on the POP3S port
  it is not listed (``STLS`` there: ``-ERR TLS support not available.``).
  No EXPIRE, RESP-CODES or AUTH-RESP-CODE.
* USER/PASS always; ``AUTH PLAIN`` and ``AUTH LOGIN`` work too, even when
  CAPA offers no SASL (Debian's default, used here unless ``sasl`` says
  otherwise). A bad password answers ``-ERR Login failed.`` after a fixed
  5 s, every time; the session stays usable. An unauthenticated session
  that says nothing is closed after 60 s without a word.
* UIDL is ``UID<n>-<uidvalidity>`` (e.g. ``UID1-1796351647``), numbered in
  delivery order and kept in a ``courierpop3dsizelist`` file that pop3d
  writes in the maildir root (mailbox_messages() ignores it).
* Line ends: pop3d turns *every* LF into CRLF, also one that follows a CR,
  so a CRLF-stored message comes back with ``\\r\\r\\n`` line ends; a final
  CRLF is added when the file does not end with LF. LIST (and ``+OK <n>
  octets follow.``) is the stored size plus one per LF, i.e. what RETR
  sends without the added final CRLF. LF-stored messages are thus sent
  exactly in tests.support.corpus.to_wire() form.
* A message with raw 8-bit (UTF-8) bytes in its *header* is not sent as
  stored unless the client said ``UTF8`` (RFC 6856): RETR and TOP return a
  Courier-made wrapper instead (``From: Mail Delivery Subsystem
  <postmaster>``, ``Subject: Cannot display Unicode content``,
  multipart/mixed with boundary ``=_<pid>-<time>``, new in every session,
  a text/plain notice and the original as ``message/global``), while LIST
  and STAT give the original's size and the ``+OK <n> octets`` line a third
  number. ``UTF8`` answers ``+OK UTF8 enabled`` before and after login, and
  from then on RETR sends the message as stored. 8-bit bytes only in the
  body do not trigger the wrapper.
* Stored bytes never change. At login new/ files move to cur/ with
  ``:2,``; RETR adds the ``S`` flag. DELE takes effect at QUIT only, and
  pop3d answers ``+OK Bye-bye.`` *before* it unlinks the files (2000
  deleted messages: 1662 still there 5 ms after the answer, none at 10 ms):
  use wait_for_mailbox_count().
* Wrong protocol: plain POP3 to the POP3S port gets no greeting (the
  server waits for a ClientHello: nothing in 420 s, no timeout seen); a line sent there
  is answered at once by a TLS alert (``15 03 03 00 02 01 00``) and a
  reset. A TLS ClientHello to the plain port gets ``-ERR Invalid
  command.`` for each LF in it at once (Python's handshake then fails with
  WRONG_VERSION_NUMBER) and the connection is closed after 60 s.

Standard library only (plus the ``openssl`` command for the certificate).
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import ssl as _ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tests.support import debs
from tests.support.processes import free_ports as _free_ports
from tests.support.processes import live_members as _live_members
from tests.support.processes import make_certificate, running, short_tmp, spawn_reaped
from tests.support.processes import tail as _tail

__all__ = ["Courier", "CourierInstall", "find_courier", "require_courier"]

#: Unpacked (never installed) Debian packages that make up the server.
PACKAGES = (
    "courier-pop",
    "courier-base",
    "courier-authlib",
    "courier-authlib-userdb",
    "libcourier-unicode4",
    "libidn12",
    "libltdl7",
)

_ROOT_MAIL_USERS = ("mail", "nobody")
_USERNAME_RE = re.compile(r"^[A-Za-z0-9._@-]+$")
_START_TIMEOUT = 15.0
_STOP_TIMEOUT = 10.0
_PORT_ATTEMPTS = 8


@dataclass(frozen=True)
class CourierInstall:
    """Where the unpacked packages are, and what they are."""

    trees: dict[str, Path]  # package name -> dpkg -x root
    package_version: str  # courier-pop's Debian version, e.g. "1.0.16-3+b6"

    @property
    def version(self) -> str:
        upstream = self.package_version.split(":")[-1].split("-")[0]
        return f"Courier {upstream}"

    @property
    def debs_dir(self) -> Path:
        """The directory holding all the trees (bind-mounted as one)."""
        parents = {tree.parent for tree in self.trees.values()}
        if len(parents) != 1:
            raise RuntimeError(f"unpacked packages in several places: {parents}")
        return parents.pop()

    def path(self, package: str, relative: str) -> Path:
        return self.trees[package] / relative


_why_missing = ""


def find_courier() -> CourierInstall | None:
    """The unpacked Courier POP3 packages, or None (see why_courier_missing()).

    Downloads and unpacks the packages the first time (tests.support.debs).
    Needs root: the server runs in a private mount namespace.
    """
    global _why_missing
    if sys.platform != "linux":
        _why_missing = "Courier's test server needs Linux (mount namespaces)"
        return None
    if os.geteuid() != 0:
        _why_missing = "Courier's test server needs root (a private mount namespace)"
        return None
    if shutil.which("openssl") is None:
        _why_missing = "openssl not found (apt install openssl)"
        return None
    trees = {}
    for package in PACKAGES:
        tree = debs.unpacked(package)
        if tree is None:
            _why_missing = (
                f"Debian package {package} could not be downloaded and unpacked"
                " (python -m tests.support.debs " + " ".join(PACKAGES) + ")"
            )
            return None
        trees[package] = tree
    name = trees["courier-pop"].name  # courier-pop_1.0.16-3+b6_amd64
    version = name.split("_")[1].replace("%3a", ":") if name.count("_") >= 2 else "?"
    install = CourierInstall(trees=trees, package_version=version)
    for package, relative in _EXECUTABLES:
        if not os.access(install.path(package, relative), os.X_OK):
            _why_missing = f"{install.path(package, relative)} missing from the unpacked {package}"
            return None
    _why_missing = ""
    return install


def why_courier_missing() -> str:
    return _why_missing or "Courier not available"


def require_courier() -> CourierInstall:
    """The unpacked Courier for a test; skip the test when there is none.

    On CI (``$CI`` set and non-empty) a missing Courier is a failure.
    """
    import pytest  # test-only helper; the module itself must not need pytest

    install = find_courier()
    if install is None:
        reason = why_courier_missing()
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must have it", pytrace=False)
        pytest.skip(reason)
    return install


_EXECUTABLES = (
    ("courier-base", "usr/sbin/couriertcpd"),
    ("courier-base", "usr/bin/couriertls"),
    ("courier-pop", "usr/lib/courier/courier/courierpop3login"),
    ("courier-pop", "usr/lib/courier/courier/courierpop3d"),
    ("courier-authlib", "usr/lib/courier/courier-authlib/authdaemond"),
    ("courier-authlib", "usr/lib/courier/courier-authlib/makedatprog"),
)


# The master, run by the reaper (tests/support/processes.py) with one JSON
# argument. It makes a private mount namespace (see the module doc), starts
# authdaemond, waits for its socket, starts one couriertcpd per port and
# waits. On SIGTERM (or when any daemon dies) it stops the daemons, kills
# whatever is left of the process group except the reaper, and exits.
_MASTER = r"""
import ctypes, json, os, signal, subprocess, sys, time
cfg = json.loads(sys.argv[1])
libc = ctypes.CDLL(None, use_errno=True)
def check(result, what):
    if result != 0:
        errno = ctypes.get_errno()
        sys.exit(f"courier master: {what}: {os.strerror(errno)}")
MS_BIND, MS_REC, MS_PRIVATE = 4096, 16384, 1 << 18
def mount(source, target, fstype, flags, data):
    check(libc.mount(source.encode(), target.encode(), fstype.encode() if fstype else None,
                     flags, data.encode() if data else None), f"mount {source} {target}")
check(libc.unshare(0x00020000), "unshare(CLONE_NEWNS)")  # a private mount namespace
mount("none", "/", None, MS_REC | MS_PRIVATE, None)  # nothing propagates to the host
ns = cfg["ns"]
mount("courier-test", ns, "tmpfs", 0, "mode=0755")
for top, sub, source in (("/etc", "courier", cfg["etc"]), ("/run", "courier", cfg["run"])):
    target = f"{top}/{sub}"
    if not os.path.isdir(target):  # overlay the top so that only the namespace sees the new dir
        upper, work = f"{ns}{top}/upper", f"{ns}{top}/work"
        os.makedirs(upper); os.makedirs(work)
        mount("overlay", top, "overlay", 0, f"lowerdir={top},upperdir={upper},workdir={work}")
        os.mkdir(target)
    mount(source, target, None, MS_BIND, None)
    if top == "/etc":  # pop3login runs couriertls for STLS as the user "courier"
        import pwd
        try:
            pwd.getpwnam("courier")
        except KeyError:
            with open("/etc/passwd", "a") as f:  # the overlay's copy, not the host's
                f.write(cfg["courier_passwd"])
for source, target in cfg["binds"]:
    mount(source, target, None, MS_BIND | MS_REC, None)
os.makedirs("/run/courier/authdaemon", exist_ok=True)
os.chmod("/run/courier/authdaemon", 0o755)
def pdeathsig():
    libc.prctl(1, signal.SIGTERM, 0, 0, 0)
stopping = False
def stop(*_):
    global stopping
    stopping = True
signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)
daemons = []
def start(argv, env):
    daemons.append(subprocess.Popen(argv, env=env, cwd="/", stdin=subprocess.DEVNULL,
                                    preexec_fn=pdeathsig))
start(cfg["authdaemond"], cfg["auth_env"])
socket_path = "/run/courier/authdaemon/socket"
deadline = time.monotonic() + 10
while not os.path.exists(socket_path) and not stopping and daemons[0].poll() is None:
    if time.monotonic() > deadline:
        print("courier master: authdaemond made no socket in 10 s", file=sys.stderr)
        stopping = True
    time.sleep(0.005)
if not stopping and daemons[0].poll() is None:
    for argv in cfg["listeners"]:
        start(argv, cfg["pop3_env"])
status = 0
while not stopping:
    for daemon in daemons:
        if daemon.poll() is not None:
            print(f"courier master: {daemon.args[0]} exited with {daemon.returncode}",
                  file=sys.stderr, flush=True)
            stopping, status = True, 1
    time.sleep(0.02)
for daemon in daemons:
    if daemon.poll() is None:
        daemon.terminate()
def others():  # couriertcpd makes a process group of its own: look at the session
    me, sid, found = os.getpid(), os.getsid(0), []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in (me, os.getppid()):
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        fields = data[data.rfind(b")") + 2:].split()
        if int(fields[3]) == sid and fields[0] != b"Z":
            found.append(int(entry))
    return found
deadline = time.monotonic() + 1
while any(d.poll() is None for d in daemons) and time.monotonic() < deadline:
    time.sleep(0.005)
signum, deadline = signal.SIGTERM, time.monotonic() + 0.5
while True:  # sessions that outlive couriertcpd, or a wedged daemon
    for daemon in daemons:
        daemon.poll()
    left = others()
    if not left:
        break
    for pid in left:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass
    if time.monotonic() > deadline:
        signum = signal.SIGKILL
    time.sleep(0.01)
for daemon in daemons:
    daemon.wait()
sys.exit(status)
"""






def _session_members(sid: int) -> list[tuple[int, int]]:
    """(pid, process group) of the live processes in session `sid` (Linux /proc)."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        fields = data[data.rfind(b")") + 2 :].split()  # state ppid pgrp session ...
        if len(fields) > 3 and int(fields[3]) == sid and fields[0] != b"Z":
            members.append((int(entry), int(fields[2])))
    return members


def _mail_user() -> pwd.struct_passwd:
    for name in _ROOT_MAIL_USERS:
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError(f"none of the system users {', '.join(_ROOT_MAIL_USERS)} exists")


class Courier:
    """A private Courier POP3 server on 127.0.0.1 with its own config in `root`.

    ``pop3_port`` serves plain POP3 (offering STLS when ``ssl``);
    ``pop3s_port`` serves implicit TLS (None without ``ssl``). Clients trust
    ``ca_file``, a self-signed certificate for localhost and 127.0.0.1.
    ``sasl`` is Courier's POP3AUTH/POP3AUTH_TLS: the SASL mechanisms offered
    (e.g. "PLAIN LOGIN"); empty, Debian's default, offers USER/PASS only.
    ``extra_env`` adds or overrides environment variables of the POP3
    daemons (Courier is configured by its environment).
    """

    name = "Courier"
    host: str = "127.0.0.1"

    def __init__(
        self,
        root: Path,
        *,
        ssl: bool = True,
        sasl: str = "",
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.root = Path(root).absolute()
        self.ssl = ssl
        self.sasl = sasl
        self.extra_env = dict(extra_env or {})
        self.pop3_port: int = 0
        self.pop3s_port: int | None = None
        self.install: CourierInstall | None = None
        self._mail = _mail_user()
        self._process: subprocess.Popen[bytes] | None = None
        self._lifeline: int | None = None
        self._run_dir: Path | None = None
        self._lock = threading.Lock()
        self._serial = itertools.count()
        self._delivery_tag = f"P{os.getpid()}R{secrets.token_hex(3)}"

    # -- paths ------------------------------------------------------------

    @property
    def version(self) -> str:
        """E.g. "Courier 1.0.16" (from the package: Courier does not tell its clients)."""
        install = self.install or find_courier()
        return install.version if install is not None else "Courier ?"

    @property
    def etc_dir(self) -> Path:
        return self.root / "etc"

    @property
    def log_path(self) -> Path:
        return self.root / "courier.log"

    @property
    def ca_file(self) -> Path | None:
        """The self-signed certificate that clients should trust (None without ssl)."""
        return self.root / "ssl" / "cert.pem" if self.ssl else None

    @property
    def key_file(self) -> Path:
        return self.root / "ssl" / "key.pem"

    @property
    def mail_dir(self) -> Path:
        return self.root / "mail"

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

    def start(self) -> Courier:
        """Write the config and certificate, start Courier on free ports, wait until it serves.

        Raises RuntimeError, with the tail of Courier's log, when it cannot start.
        """
        if self.running:
            return self
        self._shutdown()
        install = find_courier()
        if install is None:
            raise RuntimeError(why_courier_missing())
        self.install = install
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            self._prepare_dirs()
            if self.ssl:
                self._make_certificate()
            self._launch(install)
        except BaseException:
            self._shutdown()
            raise
        running.add(self)
        return self

    def stop(self) -> None:
        """Stop the server and wait until all of its processes are gone. Idempotent."""
        running.discard(self)
        self._shutdown()

    def __enter__(self) -> Courier:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"pop3={self.pop3_port} pop3s={self.pop3s_port}" if self.running else "stopped"
        return f"<Courier {self.root} {state}>"

    def _prepare_dirs(self) -> None:
        self._run_dir = Path(tempfile.mkdtemp(prefix="courier-", dir=short_tmp()))
        os.chmod(self._run_dir, 0o755)  # the mail user reaches mail and binaries through it
        for name in ("ns", "run", "mail", "debs", "ssl"):
            (self._run_dir / name).mkdir(mode=0o755)
        self.etc_dir.mkdir(parents=True, exist_ok=True)
        self.mail_dir.mkdir(parents=True, exist_ok=True)
        (self.etc_dir / "authdaemonrc").write_text(
            "# Written by tests.support.courier; rewritten at every start.\n"
            'authmodulelist="authuserdb"\n'
            "daemons=2\n"
            "authdaemonvar=/run/courier/authdaemon\n"
            "DEBUG_LOGIN=0\n"
            'DEFAULTOPTIONS=""\n'
            'LOGGEROPTS=""\n'
        )
        self._write_userdb()

    def _make_certificate(self) -> None:
        ssl_dir = self.root / "ssl"
        combined = ssl_dir / "pop3d.pem"
        cert = ssl_dir / "cert.pem"
        if self.key_file.exists() and combined.exists() and cert.exists():
            return  # restart: keep the certificate clients already trust
        make_certificate(cert, self.key_file, "localhost", f"DNS:localhost,IP:{self.host}",
                         "Courier")
        os.chmod(self.key_file, 0o600)
        fd = os.open(combined, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(self.key_file.read_bytes() + cert.read_bytes())
            # couriertls, started by pop3login for STLS, runs as "courier" (= mail here)
            os.fchown(out.fileno(), self._mail.pw_uid, self._mail.pw_gid)

    def _config(self, install: CourierInstall) -> dict[str, object]:
        assert self._run_dir is not None
        run = self._run_dir
        debs_in_ns = run / "debs"

        def inside(package: str, relative: str) -> str:
            """A packaged file's path inside the namespace (via the bound debs dir)."""
            return str(debs_in_ns / install.trees[package].name / relative)

        lib_dirs = []
        for package in ("courier-authlib", "libcourier-unicode4", "libidn12", "libltdl7"):
            tree = install.trees[package]
            for candidate in [tree / "usr/lib", *sorted(tree.glob("usr/lib/*-linux-gnu"))]:
                if any(candidate.glob("*.so.*")):
                    lib_dirs.append(inside(package, str(candidate.relative_to(tree))))
        lib_path = ":".join(lib_dirs)
        base_env = {
            "PATH": "/usr/bin:/bin:/usr/sbin:/sbin",
            "LD_LIBRARY_PATH": lib_path,
            "LANG": "C",
            "SHELL": "/bin/sh",
        }
        auth_env = dict(
            base_env, LTDL_LIBRARY_PATH=inside("courier-authlib-userdb", "usr/lib/courier-authlib")
        )
        couriertls = inside("courier-base", "usr/bin/couriertls")
        pop3_env = dict(
            base_env,
            POP3AUTH=self.sasl,
            POP3AUTH_TLS=self.sasl,
            POP3_PROXY="0",
            POP3_STARTTLS="YES" if self.ssl else "NO",
            POP3_TLS_REQUIRED="0",
            COURIERTLS=couriertls,
            TLS_CERTFILE=str(run / "ssl" / "pop3d.pem"),
            TLS_VERIFYPEER="NONE",
            TLS_PRIORITY="NORMAL",
            MIME_UNICODE_MESSAGE_TYPE="message/global",  # Debian's /etc/courier/pop3d
            DEBUG_LOGIN="0",
        )
        pop3_env.update(self.extra_env)
        tcpd = inside("courier-base", "usr/sbin/couriertcpd")
        chain = [
            inside("courier-pop", "usr/lib/courier/courier/courierpop3login"),
            inside("courier-pop", "usr/lib/courier/courier/courierpop3d"),
            "Maildir",
        ]
        options = [
            f"-address={self.host}",
            "-maxprocs=100",
            "-maxperip=100",
            "-nodnslookup",
            "-noidentlookup",
        ]
        listeners = [[tcpd, *options, str(self.pop3_port), *chain]]
        if self.ssl:
            # Implicit TLS: couriertls -server in front of pop3login, which then
            # sees POP3_TLS=1 and offers no STLS (as Debian's pop3d-ssl script does).
            listeners.append(
                [
                    tcpd,
                    *options,
                    str(self.pop3s_port),
                    "/usr/bin/env",
                    "POP3_TLS=1",
                    "POP3_STARTTLS=NO",
                    couriertls,
                    "-server",
                    "-tcpd",
                    *chain,
                ]
            )
        return {
            "ns": str(run / "ns"),
            "etc": str(self.etc_dir),
            "run": str(run / "run"),
            "binds": [
                [str(self.mail_dir), str(run / "mail")],
                [str(install.debs_dir), str(debs_in_ns)],
            ]
            + ([[str(self.root / "ssl"), str(run / "ssl")]] if self.ssl else []),
            "authdaemond": [
                inside("courier-authlib", "usr/lib/courier/courier-authlib/authdaemond")
            ],
            "auth_env": auth_env,
            "courier_passwd": f"courier:x:{self._mail.pw_uid}:{self._mail.pw_gid}:"
            "Courier test server:/nonexistent:/usr/sbin/nologin\n",
            "pop3_env": pop3_env,
            "listeners": listeners,
        }

    def _launch(self, install: CourierInstall) -> None:
        assert self._run_dir is not None
        last_error = ""
        for _attempt in range(_PORT_ATTEMPTS):
            ports = _free_ports(2 if self.ssl else 1)
            self.pop3_port = ports[0]
            self.pop3s_port = ports[1] if self.ssl else None
            config = self._config(install)
            self._process, self._lifeline = spawn_reaped(
                [sys.executable, "-I", "-S", "-c", _MASTER, json.dumps(config)],
                self._run_dir,
                self.log_path,
                cwd="/",
            )
            if self._wait_until_serving():
                return
            last_error = self._failure_report()
            self._shutdown_processes()
            if "in use" not in last_error:
                break
        raise RuntimeError(f"Courier did not start (log {self.log_path}):\n{last_error}")

    def _wait_until_serving(self) -> bool:
        assert self._process is not None
        deadline = time.monotonic() + _START_TIMEOUT
        probe_timeout = 0.2
        ports = [self.pop3_port] + ([self.pop3s_port] if self.pop3s_port else [])
        while time.monotonic() < deadline and ports:
            if self._process.poll() is not None:
                return False
            try:
                with socket.create_connection((self.host, ports[0]), timeout=probe_timeout) as s:
                    if ports[0] == self.pop3s_port:
                        assert self.ca_file is not None
                        context = _ssl.create_default_context(cafile=str(self.ca_file))
                        with context.wrap_socket(s, server_hostname="localhost") as tls:
                            greeting = tls.recv(512)
                    else:
                        greeting = s.recv(512)
                    if greeting.startswith(b"+OK"):
                        ports.pop(0)
                        continue
            except (OSError, _ssl.SSLError):
                probe_timeout = min(probe_timeout * 2, 2.0)
            time.sleep(0.01)
        return not ports

    def _failure_report(self) -> str:
        parts = []
        tail = _tail(self.log_path, 30)
        if tail:
            parts.append(f"--- {self.log_path.name} ---\n{tail}")
        if self._process is not None and self._process.returncode is not None:
            parts.append(f"exit status {self._process.returncode}")
        else:
            parts.append(f"no POP3 greeting on {self.host}:{self.pop3_port} in {_START_TIMEOUT}s")
        return "\n".join(parts)

    def _shutdown(self) -> None:
        with self._lock:
            self._shutdown_processes()
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

    def process_groups(self) -> set[int]:
        """The process groups of the server's processes (see the module doc).

        The reaper's (``pid``) holds the master and authdaemond; each
        couriertcpd makes one of its own for itself and its sessions. All
        are in the reaper's session. Empty once the server has stopped.
        """
        if self._process is None:
            return set()
        return {pgrp for _pid, pgrp in _session_members(self._process.pid)}

    def _stop_process_group(self, process: subprocess.Popen[bytes]) -> None:
        sid = process.pid  # the reaper leads the server's session
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)  # forwarded to the master
        deadline = time.monotonic() + _STOP_TIMEOUT
        while True:
            members = _session_members(sid)
            groups = {pgrp for _pid, pgrp in members} | {sid}
            if not any(_live_members(pgrp) for pgrp in groups) and process.poll() is not None:
                break
            if time.monotonic() > deadline:
                for pgrp in groups:
                    try:
                        os.killpg(pgrp, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                if time.monotonic() > deadline + _STOP_TIMEOUT:
                    raise RuntimeError(f"Courier processes survived SIGKILL: {members}")
            try:
                process.wait(timeout=0.005)
            except subprocess.TimeoutExpired:
                pass
        process.wait()

    def session_log(self) -> str:
        """What Courier's processes wrote to stderr since start(): LOGIN, LOGOUT, errors."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # -- users and mail ---------------------------------------------------

    def _maildir_in_ns(self, user: str) -> str:
        """The user's maildir as Courier sees it (root/mail is bound below the run dir)."""
        assert self._run_dir is not None
        return str(self._run_dir / "mail" / user)

    def users(self) -> list[str]:
        path = self.etc_dir / "users.json"
        if not path.exists():
            return []
        return sorted(json.loads(path.read_text()))

    def add_user(self, name: str, password: str) -> None:
        """Create (or change the password of) a POP3 user; works before and after start."""
        if not _USERNAME_RE.match(name) or name in (".", ".."):
            raise ValueError(f"user name {name!r}: use letters, digits and . @ _ - only")
        with self._lock:
            self.etc_dir.mkdir(parents=True, exist_ok=True)
            maildir = self.maildir(name)
            for sub in ("", "cur", "new", "tmp"):
                path = maildir / sub
                if not path.exists():
                    path.mkdir(parents=True, mode=0o700)
                    os.chown(path, self._mail.pw_uid, self._mail.pw_gid)
            users_path = self.etc_dir / "users.json"
            users = json.loads(users_path.read_text()) if users_path.exists() else {}
            digest = base64.b64encode(hashlib.sha256(password.encode()).digest()).decode()
            users[name] = "{SHA256}" + digest
            tmp = users_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(users, indent=1, sort_keys=True))
            os.replace(tmp, users_path)
            if self._run_dir is not None:
                self._write_userdb()

    def _write_userdb(self) -> None:
        """userdb.dat and userdbshadow.dat from users.json, with Courier's makedatprog."""
        install = self.install or find_courier()
        if install is None:
            raise RuntimeError(why_courier_missing())
        users_path = self.etc_dir / "users.json"
        users = json.loads(users_path.read_text()) if users_path.exists() else {}
        uid, gid = self._mail.pw_uid, self._mail.pw_gid
        plain, shadow = [], []
        for name, hashed in sorted(users.items()):
            home = self._maildir_in_ns(name)
            plain.append(f"{name}\tuid={uid}|gid={gid}|home={home}|mail={home}|_=\n")
            shadow.append(f"{name}\tsystempw={hashed}\n")
        (self.etc_dir / "userdb").write_text("".join(plain))  # for people reading root/etc
        makedat = str(
            install.path("courier-authlib", "usr/lib/courier/courier-authlib/makedatprog")
        )
        for lines, stem in ((plain, "userdb"), (shadow, "userdbshadow")):
            source = "".join(lines) + ".\n"
            done = subprocess.run(
                [
                    makedat,
                    "-",
                    str(self.etc_dir / f"{stem}.tmp"),
                    str(self.etc_dir / f"{stem}.dat"),
                ],
                input=source.encode(),
                capture_output=True,
                check=False,
            )
            if done.returncode != 0:
                raise RuntimeError(f"makedatprog failed: {done.stderr.decode(errors='replace')}")
        os.chmod(self.etc_dir / "userdbshadow.dat", 0o600)

    def deliver(self, user: str, raw: bytes) -> Path:
        """Drop one message into the user's maildir new/, as a new unique file (bytes as given)."""
        with self._lock:
            return self._deliver(self._maildir_for_delivery(user), [raw])[0]

    def deliver_many(self, user: str, messages: Iterable[bytes]) -> int:
        """Drop many messages into the user's maildir new/, in order; returns the count."""
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
        if user not in self.users() or not (maildir / "new").is_dir():
            raise ValueError(f"no such user {user!r}: call add_user() first")
        return maildir

    def _deliver(self, maildir: Path, batch: list[bytes]) -> list[Path]:
        uid, gid = self._mail.pw_uid, self._mail.pw_gid
        now = time.time()
        secs, usecs = int(now), int((now % 1) * 1_000_000)
        tmp_dir, new_dir = str(maildir / "tmp"), str(maildir / "new")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
        paths = []
        for raw in batch:
            # Zero-padded serial: the names sort in delivery order.
            name = f"{secs}.M{usecs:06d}{self._delivery_tag}Q{next(self._serial):010d}.archiver"
            tmp_path = f"{tmp_dir}/{name}"
            fd = os.open(tmp_path, flags, 0o600)
            try:
                view = memoryview(raw)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                os.fchown(fd, uid, gid)
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
        return sorted(files, key=lambda p: p.name.split(":", 1)[0])

    def mailbox_count(self, user: str) -> int:
        """Messages currently in the user's maildir (new/ + cur/)."""
        return len(self._message_files(user))

    def wait_for_mailbox_count(self, user: str, count: int, timeout: float = 5.0) -> int:
        """Wait until the maildir holds `count` messages; returns the last count seen.

        Courier answers QUIT before it removes the DELEted files, so right
        after a client's QUIT they may still be there.
        """
        deadline = time.monotonic() + timeout
        while True:
            found = self.mailbox_count(user)
            if found == count or time.monotonic() > deadline:
                return found
            time.sleep(0.005)

    def mailbox_messages(self, user: str) -> list[bytes]:
        """The maildir's message files' contents, in delivery order, as stored."""
        return [p.read_bytes() for p in self._message_files(user)]
