"""A private popa3d POP3 server on loopback, for the tests.

    with Popa3d(tmp_path / "popa3d").start() as server:
        server.add_user("alice", "secret")
        server.deliver("alice", b"Subject: hi\\n\\nbody\\n")
        ...  # connect to server.host:server.pop3_port (plain POP3 only)

popa3d (Debian's ``popa3d`` 1.0.3, run from the ``dpkg -x`` tree of
tests/support/debs.py: the package conflicts with dovecot-pop3d) knows no
configuration at all: it authenticates system users through PAM (service
``popa3d``; Debian's file includes common-auth/common-account, i.e.
pam_unix and /etc/shadow), drops to the user and serves the mbox
``/var/mail/<user>``; its unprivileged pre-auth child chroots to
``/var/lib/popa3d`` as the system user ``popa3d``. All of that is
compiled in. So:

* Our own acceptor (a small Python process, the "master" under the reaper
  of tests/support/processes.py) listens on a free loopback port and, per
  connection, forks a child that enters a *new private mount namespace*,
  bind-mounts our private files over ``/etc/passwd``, ``/etc/shadow``,
  ``/etc/group``, ``/etc/gshadow``, ``/etc/pam.d``, ``/var/mail`` and
  ``/var/lib`` (there only), and execs popa3d in inetd mode with the
  socket as stdin/stdout. Nothing on the system changes: no user, no file
  in /var/mail, no /var/lib/popa3d. Needs root (CAP_SYS_ADMIN for
  unshare(CLONE_NEWNS) and mount); require_popa3d() skips otherwise.
* The private files are the system's entries plus ours: ``popa3d`` (if the
  system has no such user) and the test users, with uids/gids >= 61000 not
  used on the system and SHA-512 crypt hashes (libcrypt via ctypes). They
  are rewritten (atomically) by add_user(); each connection binds the
  current version, so a user added while the server runs logs in at once.
* Everything lives in ``root``: ``mail/<user>`` (the mboxes, owned by the
  user's uid, mode 0600; mail/ itself is 2775 root:mail like /var/mail),
  ``popa3d.out`` (acceptor errors and popa3d's stderr). The private etc/
  and /var/lib replacement live in a private directory under /tmp that
  stop() removes. popa3d logs only to syslog (/dev/log), which this
  container does not have: its log lines are lost.
* The acceptor and every popa3d session form one process group under the
  reaper, so stop() waits for every one of them. If our process dies, even
  by SIGKILL, the reaper stops the acceptor, the acceptor kills its
  sessions, and the runtime directory is removed.

Facts about popa3d 1.0.3 (Debian 1.0.3-1.1), measured with this fixture
(tests/support/test_popa3d.py proves the ones the fixture relies on):

* ``popa3d -V``: ``popa3d version 1.0.3 (2012/08/15)``. Greeting: ``+OK``
  and nothing else (no APOP timestamp). CAPA, STLS, UTF8, AUTH, APOP:
  ``-ERR`` (unknown command). Only USER/PASS.
* Login: ``USER`` then ``PASS`` (the whole rest of the line, spaces and
  colons included; commands case-insensitive, bare LF accepted). A second
  USER is ``-ERR``. Wrong password, unknown user, root, ``popa3d``: all ``-ERR Authentication failed (bad password?)``, then popa3d
  closes the connection (one attempt per connection). pam_unix's ~2 s
  failure delay is turned off in our private PAM copy (``nodelay`` added to
  common-auth), so failures answer at once. A missing mbox is an empty one.
* A login (PASS) within the same second as the last change of the mbox
  (our deliver(), popa3d's own rewrite after DELE) is answered only when
  that second is over: up to 1 s (its DESIGN: it keeps mbox timestamps
  distinct so that it can tell changes apart).
* mbox parsing: a line ``From `` starts a message only at the start of the
  file or after an empty line; the empty line before it is not part of the
  previous message (only once that message's header section has ended: a
  message without an empty line keeps it, as a final CRLF). Nothing is
  unquoted: ``>From `` lines reach the client as stored. Every LF is sent as
  CRLF, a CR before it is kept (a CRLF-stored mbox gives CR CR LF, and its
  header section never ends), NUL and bare CR pass. A last message without
  a final LF gets CRLF on the wire, but LIST counts one octet less than
  RETR sends; otherwise LIST/STAT are the octets of the wire form before
  dot-stuffing. So deliver() stores LF line ends, mboxrd-quotes (``^>*From ``
  gains one ``>``: the client sees ``>From `` for ``From ``, ``>>From `` for
  ``>From ``), ends every message with LF and a blank line, and wire_form()
  says what RETR returns.
* UIDL (``N <16 hex digits>``) is NOT unique: see expected_uidl() (exact,
  checked against the server): MD5 over the first Received:, the Date: and
  Message-ID: above it and every Delivered-To:/X-Delivery-ID:, nothing else.
  Distinct messages share a UIDL within one mailbox when those lines are
  equal: same Date/Message-ID and other bodies, subjects, senders or sizes;
  every message without such lines gets ``d98c1dd404b2008f`` (MD5 of
  nothing). The same message gets another UIDL when re-delivered with one
  more Received: on top, stored with CRLF, or with a header name in other
  case or refolded. UIDLs do not depend on position (stable after DELE of
  others) and do not change between sessions.
* The mbox is never modified by reading: no Status:/X-UID headers, same
  bytes and mtime after RETR/TOP + QUIT. DELE + QUIT rewrites it in place
  (same inode, owner, mode), keeping mail appended during the session.
  DELE without QUIT, or DELE + RSET, deletes nothing. LAST works (highest
  message retrieved).
* Locking: fcntl (POSIX record) locks, only while loading and updating the
  mbox, not for the session: a second session of the same user logs in and
  works at once (``+OK``, same STAT). A process holding an fcntl lock makes
  PASS wait until it is released (flock is ignored); deliver() takes an
  fcntl lock. When another session has rewritten the mbox, the next command
  that reads it (RETR) gets no reply: popa3d closes the connection silently.
* Limits (params.h, per README.Debian): 200000 messages, 200000000 bytes
  per mailbox.

Standard library only.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import fcntl
import grp
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from tests.support.processes import free_ports as _free_ports
from tests.support.processes import live_members as _live_members
from tests.support.processes import running, short_tmp, spawn_reaped
from tests.support.processes import tail as _tail

__all__ = [
    "FROM_LINE",
    "Popa3d",
    "expected_uidl",
    "find_popa3d",
    "mbox_entry",
    "popa3d_unavailable",
    "require_popa3d",
    "split_mbox",
    "wire_form",
]

_INSTALL_HINT = "popa3d not available (needs apt-get download popa3d: tests/support/debs.py)"

_START_TIMEOUT = 15.0
_STOP_TIMEOUT = 10.0
_PORT_ATTEMPTS = 8
_FIRST_ID = 61000

#: Names that fit passwd/shadow and popa3d (no ':' or white space, not "."/"..").
_USERNAME_RE = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")

#: The From_ line deliver() writes before every message.
FROM_LINE = b"From archiver@localhost Thu Jan  1 00:00:00 1970\n"

#: Lines that mboxrd quoting protects: deliver() adds one ">" to each.
_FROM_QUOTE_RE = re.compile(rb"^(>*From )", re.MULTILINE)
_FROM_UNQUOTE_RE = re.compile(rb"^>(>*From )", re.MULTILINE)


# The acceptor: argv = port, popa3d binary, then SRC=DST bind mounts.
# Single-threaded; one forked child per connection, which unshares the mount
# namespace, makes it private (no propagation back to the system), binds our
# files and execs popa3d with the connection as stdin/stdout (inetd mode).
# On SIGTERM it stops accepting, SIGTERMs every other process of the group but
# the reaper (SIGKILL after 0.5 s) and exits once they are gone.
_ACCEPTOR = r"""
import ctypes, os, signal, socket, sys, time
port, binary, binds = int(sys.argv[1]), sys.argv[2], [a.split("=", 1) for a in sys.argv[3:]]
libc = ctypes.CDLL(None, use_errno=True)
libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_void_p]
CLONE_NEWNS, MS_BIND, MS_REC, MS_PRIVATE = 0x20000, 4096, 16384, 1 << 18
class Stop(Exception):
    pass
def stop(*_):
    raise Stop
listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    listener.bind(("127.0.0.1", port))
except OSError as exc:
    print(f"acceptor: bind 127.0.0.1:{port}: {exc}", flush=True)
    sys.exit(98 if exc.errno == 98 else 1)
listener.listen(64)
listener.settimeout(0.2)
me = os.getpid()
sessions = set()
def reap():
    while sessions:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            sessions.clear()
            return
        if pid == 0:
            return
        sessions.discard(pid)
def child(conn):
    listener.close()
    libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG; popa3d's setuid() clears it
    if os.getppid() != me:
        os._exit(1)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL)
    if libc.unshare(CLONE_NEWNS) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNS)")
    if libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        raise OSError(ctypes.get_errno(), "mount --make-rprivate /")
    for src, dst in binds:
        if libc.mount(src.encode(), dst.encode(), None, MS_BIND, None) != 0:
            raise OSError(ctypes.get_errno(), f"mount --bind {src} {dst}")
    os.dup2(conn.fileno(), 0)
    os.dup2(conn.fileno(), 1)
    conn.close()
    os.execv(binary, [binary])
signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)
print(f"acceptor: listening on 127.0.0.1:{port}", flush=True)
try:
    while True:
        reap()
        try:
            conn, _ = listener.accept()
        except (socket.timeout, BlockingIOError):
            continue
        pid = os.fork()
        if pid == 0:
            try:
                child(conn)
            except BaseException as exc:
                print(f"acceptor: session setup failed: {exc!r}", flush=True)
            finally:
                os._exit(127)
        sessions.add(pid)
        conn.close()
except Stop:
    pass
signal.signal(signal.SIGTERM, signal.SIG_IGN)
listener.close()
def strays():
    # Every live process of our group but the reaper and us: our sessions and
    # the grandchildren popa3d forks (re-parented to the reaper when their
    # session dies; a pre-auth child would wait for its client forever).
    group, found = os.getpgrp(), []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in (me, os.getppid()):
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group and fields[0] != b"Z":
            found.append(int(entry))
    return found
def signal_all(pids, sig):
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
signal_all(strays(), signal.SIGTERM)
deadline = time.monotonic() + 0.5
while True:
    reap()
    left = strays()
    if not left:
        break
    if time.monotonic() > deadline:
        signal_all(left, signal.SIGKILL)
    time.sleep(0.005)
"""


# -- availability -------------------------------------------------------------


def _candidate_binaries() -> list[str]:
    found = [os.environ.get("ARCHIVER_POPA3D", ""), "/usr/sbin/popa3d"]
    from tests.support.debs import unpacked

    tree = unpacked("popa3d")
    if tree is not None:
        found.append(str(tree / "usr" / "sbin" / "popa3d"))
    return found


_namespace_error: str | None | bool = False  # False: not checked yet


def _namespace_unavailable() -> str | None:
    """Why per-connection private mount namespaces cannot work here, or None."""
    global _namespace_error
    if _namespace_error is not False:
        return _namespace_error  # type: ignore[return-value]
    if os.geteuid() != 0:
        _namespace_error = "popa3d needs root (it authenticates system users and setuid()s)"
        return _namespace_error
    probe = (
        "import ctypes, sys\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_void_p]\n"
        "if libc.unshare(0x20000) != 0: sys.exit('unshare(CLONE_NEWNS): errno %d'"
        " % ctypes.get_errno())\n"
        "if libc.mount(None, b'/', None, 16384 | (1 << 18), None) != 0:"
        " sys.exit('mount --make-rprivate /: errno %d' % ctypes.get_errno())\n"
        "if libc.mount(b'/etc/hostname', b'/etc/hostname', None, 4096, None) != 0:"
        " sys.exit('mount --bind: errno %d' % ctypes.get_errno())\n"
    )
    import sys

    result = subprocess.run([sys.executable, "-I", "-S", "-c", probe],
                            capture_output=True, text=True, timeout=30, check=False)
    _namespace_error = None
    if result.returncode != 0:
        _namespace_error = ("no private mount namespace for popa3d: "
                            + (result.stderr.strip()[-300:] or f"exit {result.returncode}"))
    return _namespace_error


_versions: dict[str, str | None] = {}


def _version_of(binary: str) -> str | None:
    if binary not in _versions:
        _versions[binary] = _run_version(binary)
    return _versions[binary]


def _run_version(binary: str) -> str | None:
    try:
        out = subprocess.run([binary, "-V"], capture_output=True, text=True, timeout=10,
                             check=False, stdin=subprocess.DEVNULL)
    except OSError:
        return None
    match = re.search(r"popa3d version (\S+)", out.stdout + out.stderr)
    return match.group(1) if match else None


def popa3d_unavailable() -> str | None:
    """Why no private popa3d can run here (missing binary, not root, no mount
    namespaces), or None when it can."""
    if find_popa3d() is None:
        return _INSTALL_HINT
    return _namespace_unavailable()


def find_popa3d() -> str | None:
    """Path of a runnable popa3d binary, or None.

    ``$ARCHIVER_POPA3D`` wins when set; then an installed /usr/sbin/popa3d;
    then the ``dpkg -x`` tree of tests/support/debs.py (downloaded once).
    """
    for candidate in _candidate_binaries():
        if (candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK)
                and _version_of(candidate)):
            return candidate
    return None


def require_popa3d() -> str:
    """The popa3d binary for a test; skip the test when it cannot run here.

    On CI (``$CI`` set and non-empty) that is a failure, not a skip.
    """
    import pytest  # test-only helper; the module itself must not need pytest

    reason = popa3d_unavailable()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must be able to run it", pytrace=False)
        pytest.skip(reason)
    binary = find_popa3d()
    assert binary is not None
    return binary


# -- helpers --------------------------------------------------------------------


_libcrypt = None


def _crypt_sha512(password: str) -> str:
    """A SHA-512 crypt(3) hash ($6$), as pam_unix verifies it (libcrypt via ctypes)."""
    global _libcrypt
    if _libcrypt is None:
        lib = ctypes.CDLL(ctypes.util.find_library("crypt") or "libcrypt.so.1")
        lib.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
        lib.crypt.restype = ctypes.c_char_p
        _libcrypt = lib
    alphabet = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    salt = "".join(secrets.choice(alphabet) for _ in range(16))
    hashed = _libcrypt.crypt(password.encode(), f"$6${salt}$".encode())
    if not hashed or not hashed.startswith(b"$6$"):
        raise RuntimeError("libcrypt could not hash the password (no SHA-512 crypt?)")
    return hashed.decode()




def _write_atomic(path: Path, data: bytes, mode: int, gid: int = 0) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fchown(fd, 0, gid)
        os.fchmod(fd, mode)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def mbox_entry(raw: bytes) -> bytes:
    """``raw`` as deliver() appends it: the From_ line, the message with CRLF
    turned into LF (mbox is LF; popa3d would send a stored CRLF as CR CR LF),
    mboxrd-quoted (one ">" added to every line matching ``^>*From ``), a final
    LF when missing, and the blank line that separates it from the next."""
    body = _FROM_QUOTE_RE.sub(rb">\1", raw.replace(b"\r\n", b"\n"))
    if body and not body.endswith(b"\n"):
        body += b"\n"
    return FROM_LINE + body + b"\n"


def wire_form(raw: bytes) -> bytes:
    """What popa3d's RETR returns, dot-unstuffed, for a message deliver() stored.

    The stored message (mbox_entry without From_ line and separator) with
    every LF sent as CRLF. popa3d undoes no quoting: ">From " lines reach
    the client as stored. A message without an empty line (headers only, or
    empty) comes back with one more CRLF: popa3d drops the separating blank
    line only once the header section has ended.
    """
    stored = mbox_entry(raw)[len(FROM_LINE) : -1]
    wire = stored.replace(b"\n", b"\r\n")
    if not stored.startswith(b"\n") and b"\n\n" not in stored:
        wire += b"\r\n"
    return wire


#: The header fields whose lines popa3d's UIDL hashes (case-insensitive names).
UIDL_HEADERS = (b"received:", b"delivered-to:", b"date:", b"message-id:", b"x-delivery-id:")


def expected_uidl(raw: bytes) -> str:
    """The UIDL popa3d gives a message deliver() stored (measured, not from its source).

    MD5 over some of the header section's lines, with their continuation
    lines and line ends, in order: the first ``Received:`` field only;
    ``Date:`` and ``Message-ID:`` only when above the first ``Received:``;
    every ``Delivered-To:`` and ``X-Delivery-ID:``. Names match
    case-insensitively. The UIDL is the first 8 bytes of the digest, printed
    as two little-endian 32-bit words in hex. Nothing else counts: not the
    body, the size, the From_ line, From:, Subject: or the position.
    """
    import hashlib
    import struct

    stored = mbox_entry(raw)[len(FROM_LINE) : -1]
    digest = hashlib.md5()
    hashing = seen_received = False
    for line in stored.splitlines(keepends=True):
        if line == b"\n":
            break
        if line[:1] in (b" ", b"\t"):
            if hashing:
                digest.update(line)
            continue
        name = line.lower()
        if name.startswith(b"received:"):
            hashing, seen_received = not seen_received, True
        elif name.startswith((b"date:", b"message-id:")):
            hashing = not seen_received
        else:
            hashing = name.startswith((b"delivered-to:", b"x-delivery-id:"))
        if hashing:
            digest.update(line)
    low, high = struct.unpack("<II", digest.digest()[:8])
    return f"{low:08x}{high:08x}"


def split_mbox(data: bytes) -> list[bytes]:
    """The messages of an mbox as deliver() wrote them (From_ line and the
    separating blank line removed, one level of ">From " quoting undone)."""
    if not data:
        return []
    messages = []
    starts = [0] if data.startswith(b"From ") else []
    starts += [m.start() + 1 for m in re.finditer(rb"\nFrom ", data)]
    for i, start in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else len(data)
        chunk = data[start:end]
        chunk = chunk[chunk.find(b"\n") + 1 :] if b"\n" in chunk else b""
        if chunk.endswith(b"\n\n") or chunk == b"\n":
            chunk = chunk[:-1]  # the blank line before the next From_ line
        messages.append(_FROM_UNQUOTE_RE.sub(rb"\1", chunk))
    return messages




class Popa3d:
    """A private popa3d on 127.0.0.1 (plain POP3, USER/PASS only); see the module doc."""

    host: str = "127.0.0.1"
    name: str = "popa3d"
    ssl: bool = False
    ca_file = None
    pop3s_port: int | None = None

    def __init__(self, root: Path) -> None:
        self.root = Path(root).absolute()
        self.pop3_port: int = 0
        self.binary: str | None = None
        self.version: str = ""
        self._process: subprocess.Popen[bytes] | None = None
        self._lifeline: int | None = None
        self._run_dir: Path | None = None
        self._lock = threading.RLock()
        self._users: dict[str, tuple[int, str]] = {}  # name -> (uid = gid, crypt hash)
        self._daemon_id: int | None = None  # uid/gid of our "popa3d" user, if we add one

    # -- paths -----------------------------------------------------------

    @property
    def mail_dir(self) -> Path:
        """Bound over /var/mail in popa3d's namespace."""
        return self.root / "mail"

    def mbox(self, user: str) -> Path:
        return self.mail_dir / user

    @property
    def out_path(self) -> Path:
        return self.root / "popa3d.out"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        """Process id of the reaper that leads the server's process group."""
        return self._process.pid if self._process is not None else None

    # -- lifecycle -------------------------------------------------------

    def start(self) -> Popa3d:
        """Write the private files, start the acceptor on a free port, wait for a greeting."""
        if self.running:
            return self
        self._shutdown()
        reason = popa3d_unavailable()
        if reason is not None:
            raise RuntimeError(reason)
        self.binary = find_popa3d()
        assert self.binary is not None
        self.version = _version_of(self.binary) or ""
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            with self._lock:
                self._prepare()
            self._launch()
        except BaseException:
            self._shutdown()
            raise
        running.add(self)
        return self

    def stop(self) -> None:
        """Stop the acceptor and every session; wait until all are gone. Idempotent."""
        running.discard(self)
        self._shutdown()

    def __enter__(self) -> Popa3d:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"pop3={self.pop3_port}" if self.running else "stopped"
        return f"<Popa3d {self.root} {state}>"

    def _prepare(self) -> None:
        run = Path(tempfile.mkdtemp(prefix="popa3d-", dir=short_tmp()))
        self._run_dir = run
        os.chmod(run, 0o755)
        (run / "etc").mkdir(mode=0o755)
        (run / "varlib" / "popa3d").mkdir(parents=True, mode=0o755)  # the pre-auth chroot
        os.chmod(run / "varlib", 0o755)
        pam = run / "etc" / "pam.d"
        shutil.copytree("/etc/pam.d", pam, symlinks=True)
        package_pam = Path(self.binary or "").resolve().parents[2] / "etc/pam.d/popa3d"
        if package_pam.is_file():
            shutil.copyfile(package_pam, pam / "popa3d")
        elif not (pam / "popa3d").exists():
            (pam / "popa3d").write_text("@include common-auth\n@include common-account\n")
        # Failed logins answered at once: pam_unix's ~2 s failure delay off (in
        # our copy only), since tests fail logins on purpose.
        common_auth = pam / "common-auth"
        if common_auth.is_file():
            text = common_auth.read_text()
            common_auth.unlink()  # may be a symlink: never write through it
            common_auth.write_text(re.sub(r"^(auth\s.*pam_unix\.so\b)(?!.*\bnodelay\b)",
                                          r"\1 nodelay", text, flags=re.MULTILINE))
        if not self.mail_dir.exists():
            self.mail_dir.mkdir(parents=True)
        mail_gid = grp.getgrnam("mail").gr_gid if _has_group("mail") else 0
        os.chown(self.mail_dir, 0, mail_gid)
        os.chmod(self.mail_dir, 0o2775)
        self._write_user_files()

    def _binds(self) -> list[str]:
        assert self._run_dir is not None
        etc = self._run_dir / "etc"
        pairs = [(etc / name, f"/etc/{name}") for name in ("passwd", "shadow", "group")]
        if os.path.exists("/etc/gshadow"):
            pairs.append((etc / "gshadow", "/etc/gshadow"))
        pairs += [(etc / "pam.d", "/etc/pam.d"), (self.mail_dir, "/var/mail"),
                  (self._run_dir / "varlib", "/var/lib")]
        return [f"{src}={dst}" for src, dst in pairs]

    def _launch(self) -> None:
        assert self.binary is not None and self._run_dir is not None
        import sys

        last_error = ""
        for _attempt in range(_PORT_ATTEMPTS):
            self.pop3_port = _free_ports(1)[0]
            argv = [sys.executable, "-I", "-S", "-c", _ACCEPTOR, str(self.pop3_port),
                    self.binary, *self._binds()]
            self._process, self._lifeline = spawn_reaped(argv, self._run_dir, self.out_path)
            if self._wait_until_serving():
                return
            last_error = _tail(self.out_path, 30)
            if self._process.poll() is not None:
                last_error += f"\nexit status {self._process.returncode}"
            self._shutdown_processes()
            if "Address already in use" not in last_error:
                break
        raise RuntimeError(f"popa3d did not start:\n{last_error}")

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
                    return False  # a session that fails to set up closes at once
            except OSError:
                time.sleep(0.01)
        return False

    def _shutdown(self) -> None:
        with self._lock:
            try:
                self._shutdown_processes()
            finally:
                if self._run_dir is not None:
                    shutil.rmtree(self._run_dir, ignore_errors=True)
                    self._run_dir = None

    def _shutdown_processes(self) -> None:
        process, self._process = self._process, None
        try:
            if process is not None:
                pgid = process.pid
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)  # forwarded to the acceptor
                deadline = time.monotonic() + _STOP_TIMEOUT
                killed = False
                while _live_members(pgid) or process.poll() is None:
                    if time.monotonic() > deadline and not killed:
                        try:
                            os.killpg(pgid, signal.SIGKILL)
                        except ProcessLookupError:
                            pass
                        killed = True
                    if time.monotonic() > deadline + _STOP_TIMEOUT:
                        raise RuntimeError(f"popa3d processes survived SIGKILL: "
                                           f"{_live_members(pgid)}")
                    try:
                        process.wait(timeout=0.005)
                    except subprocess.TimeoutExpired:
                        pass
                process.wait()
        finally:
            if self._lifeline is not None:
                os.close(self._lifeline)
                self._lifeline = None

    # -- users -------------------------------------------------------------

    def _free_ids(self, count: int) -> list[int]:
        taken = {p.pw_uid for p in pwd.getpwall()} | {g.gr_gid for g in grp.getgrall()}
        taken |= {uid for uid, _ in self._users.values()}
        if self._daemon_id is not None:
            taken.add(self._daemon_id)
        ids, candidate = [], _FIRST_ID
        while len(ids) < count:
            if candidate not in taken:
                ids.append(candidate)
            candidate += 1
        return ids

    def add_user(self, name: str, password: str) -> None:
        """Create (or change the password of) a POP3 user, with an empty mbox.

        Works before and after start(). The user exists only in popa3d's
        namespace; its name must not be a system user's. popa3d refuses
        empty passwords; a password may not contain CR, LF or NUL.
        """
        if not _USERNAME_RE.match(name) or name == "popa3d":
            raise ValueError(f"user name {name!r}: use [a-z_][a-z0-9_.-]*, at most 32")
        if any(c in password for c in "\r\n\0"):
            raise ValueError("a POP3 password cannot contain CR, LF or NUL")
        try:
            pwd.getpwnam(name)
        except KeyError:
            pass
        else:
            raise ValueError(f"{name!r} is a system user: pick another name")
        with self._lock:
            uid = self._users[name][0] if name in self._users else self._free_ids(1)[0]
            self._users[name] = (uid, _crypt_sha512(password))
            self.mail_dir.mkdir(parents=True, exist_ok=True)
            box = self.mbox(name)
            fd = os.open(box, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                os.fchown(fd, uid, uid)
            finally:
                os.close(fd)
            if self._run_dir is not None:
                self._write_user_files()

    def users(self) -> list[str]:
        return sorted(self._users)

    def uid(self, user: str) -> int:
        return self._users[user][0]

    def _write_user_files(self) -> None:
        assert self._run_dir is not None
        etc = self._run_dir / "etc"
        passwd = Path("/etc/passwd").read_bytes()
        group = Path("/etc/group").read_bytes()
        shadow = Path("/etc/shadow").read_bytes()
        gshadow = Path("/etc/gshadow").read_bytes() if os.path.exists("/etc/gshadow") else b""
        extra_passwd, extra_group, extra_shadow, extra_gshadow = [], [], [], []
        try:
            pwd.getpwnam("popa3d")
        except KeyError:
            if self._daemon_id is None:
                self._daemon_id = self._free_ids(1)[0]
            i = self._daemon_id
            extra_passwd.append(f"popa3d:x:{i}:{i}:popa3d:/var/lib/popa3d:/usr/sbin/nologin")
            extra_group.append(f"popa3d:x:{i}:")
            extra_shadow.append("popa3d:!:19000::::::")
            extra_gshadow.append("popa3d:!::")
        for name, (uid, hashed) in sorted(self._users.items()):
            extra_passwd.append(f"{name}:x:{uid}:{uid}:archiver test user:/nonexistent:"
                                "/usr/sbin/nologin")
            extra_group.append(f"{name}:x:{uid}:")
            extra_shadow.append(f"{name}:{hashed}:19000:0:99999:7:::")
            extra_gshadow.append(f"{name}:!::")

        def joined(base: bytes, extra: list[str]) -> bytes:
            if base and not base.endswith(b"\n"):
                base += b"\n"
            return base + "".join(line + "\n" for line in extra).encode()

        shadow_gid = grp.getgrnam("shadow").gr_gid if _has_group("shadow") else 0
        _write_atomic(etc / "passwd", joined(passwd, extra_passwd), 0o644)
        _write_atomic(etc / "group", joined(group, extra_group), 0o644)
        _write_atomic(etc / "shadow", joined(shadow, extra_shadow), 0o640, shadow_gid)
        if os.path.exists("/etc/gshadow"):
            _write_atomic(etc / "gshadow", joined(gshadow, extra_gshadow), 0o640, shadow_gid)

    # -- mail --------------------------------------------------------------

    def _open_mbox(self, user: str) -> int:
        if user not in self._users:
            raise ValueError(f"no such user {user!r}: call add_user() first")
        fd = os.open(self.mbox(user), os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        os.fchown(fd, self._users[user][0], self._users[user][0])
        fcntl.lockf(fd, fcntl.LOCK_EX)  # fcntl(F_SETLKW), as popa3d locks (see the doc)
        return fd

    quote = staticmethod(lambda raw: mbox_entry(raw))

    def deliver(self, user: str, raw: bytes) -> None:
        """Append one message to the user's mbox, as mbox_entry() writes it.

        RETR then returns wire_form(raw) (after dot-unstuffing), and LIST
        reports exactly that many octets.
        """
        self.deliver_many(user, [raw])

    def deliver_many(self, user: str, messages: Iterable[bytes]) -> int:
        """Append messages to the user's mbox, in order, under popa3d's lock; the count."""
        with self._lock:
            fd = self._open_mbox(user)
            try:
                count = 0
                batch: list[bytes] = []
                for raw in messages:
                    batch.append(mbox_entry(raw))
                    count += 1
                    if len(batch) >= 1000:
                        _write_all(fd, b"".join(batch))
                        batch = []
                _write_all(fd, b"".join(batch))
                return count
            finally:
                os.close(fd)

    def append_mbox(self, user: str, data: bytes) -> None:
        """Append ``data`` to the mbox verbatim (From_ lines and all): for
        probing popa3d's parser with what deliver() would never write."""
        with self._lock:
            fd = self._open_mbox(user)
            try:
                _write_all(fd, data)
            finally:
                os.close(fd)

    def mbox_bytes(self, user: str) -> bytes:
        try:
            return self.mbox(user).read_bytes()
        except FileNotFoundError:
            return b""

    def mailbox_count(self, user: str) -> int:
        """Messages in the user's mbox (From_ lines at the start of a line)."""
        return len(split_mbox(self.mbox_bytes(user)))

    def mailbox_messages(self, user: str) -> list[bytes]:
        """The messages as stored (see split_mbox): as delivered, but with
        CRLF as LF and a final LF added where it was missing."""
        return split_mbox(self.mbox_bytes(user))


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _has_group(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True
