"""A private Dovecot for `archiver demo`: one user, POP3S on localhost, gone with the demo.

    with DemoDovecot("demo", "secret", messages) as server:
        ...  # POP3S on localhost:server.port, trusting server.ca_file

Everything (config, self-signed certificate, passwd-file, maildir, sockets,
log) lives in one temporary directory that stop() removes. Dovecot runs in
the foreground (``dovecot -F``) as our direct child, in a session of its
own, with its stdio on a file: its master and log processes keep stdio
open, and a caller reading ours through a pipe would otherwise hang.

Nothing outlives the process that started it: Dovecot runs under a small
trampoline (``_DIE_WITH_PARENT``, our direct child) that has
PR_SET_PDEATHSIG(SIGTERM), so when that process dies, however (SIGKILL
too), the kernel sends the trampoline SIGTERM and it stops Dovecot, repeating
the SIGTERM until the master goes (one sent in the master's first
milliseconds is lost) and reaping every Dovecot process. A preexec_fn could
deadlock in a process with threads (the demo has a progress bar's), hence a
trampoline. The signal follows the *thread* that called start():
start it from a thread that lives as long as the server (the demo uses the
main thread). Linux only; elsewhere stop() still stops it, but a killed
demo leaves Dovecot running.

As root, Dovecot's own processes run as its ``dovecot``/``dovenull`` users
and the mail belongs to the unprivileged ``mail`` user, as in production;
as a normal user everything runs as that user.
"""

from __future__ import annotations

import base64
import grp
import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Self

__all__ = ["DemoDovecot", "find_dovecot"]

# Run as `python -I -S -c _DIE_WITH_PARENT PARENT_PID DOVECOT ARGS...`: asks
# for SIGTERM when the parent dies, makes sure the parent did not die already,
# and runs Dovecot as its child, reaping every process of it (a child
# subreaper: Dovecot's log process outlives its master). On SIGTERM (stop(),
# or the parent's death) it tells the master to stop, again and again: a
# master still starting loses a SIGTERM (seen: within its first ~10 ms), and
# the demo may be killed just then. After 10 s the master gets SIGKILL.
_DIE_WITH_PARENT = """
import ctypes, os, signal, sys, time
try:
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    prctl(1, 15, 0, 0, 0)  # PR_SET_PDEATHSIG, SIGTERM
    prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
except (OSError, AttributeError):
    pass  # not Linux: stop() still works
if os.getppid() != int(sys.argv[1]):
    sys.exit(1)
stopping = []
signal.signal(signal.SIGTERM, lambda *_: stopping.append(time.monotonic()))
master = os.fork()
if master == 0:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.execv(sys.argv[2], sys.argv[2:])
status = 0
while True:
    try:
        pid, wstatus = os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        break
    if pid == master:
        status = os.waitstatus_to_exitcode(wstatus)
        master = 0
    if pid == 0:
        if stopping and master:
            os.kill(master, signal.SIGKILL if time.monotonic() - stopping[0] > 10
                    else signal.SIGTERM)
        time.sleep(0.1 if stopping else 0.25)
sys.exit(status if status >= 0 else 128 - status)
"""
_START_TIMEOUT = 15.0
_STOP_TIMEOUT = 10.0


def find_dovecot() -> str | None:
    """The dovecot binary when Dovecot with its POP3 server is installed, else None.

    Looks on PATH and in the ``sbin`` beside each ``bin`` on it: a normal
    user's PATH often lacks the sbin directories, where distributions put
    dovecot.
    """
    dirs = os.environ.get("PATH", os.defpath).split(os.pathsep)
    dirs += [os.path.join(os.path.dirname(d), "sbin") for d in dirs if os.path.basename(d) == "bin"]
    binary = shutil.which("dovecot", path=os.pathsep.join(dirs))
    if binary is None:
        return None
    # dovecot-core without dovecot-pop3d has no pop3 executables beside its others
    prefix = Path(binary).resolve().parent.parent
    libexec = [prefix / sub / "dovecot" for sub in ("lib", "libexec")]
    known = [d for d in libexec if (d / "config").exists()]
    if known and not any((d / "pop3").exists() and (d / "pop3-login").exists() for d in known):
        return None
    return binary


#: Longest parent folder for the server's directory (its sockets must fit in sun_path).
MAX_PARENT = 60


def _world_traversable(folder: Path) -> bool:
    try:
        return all(os.stat(p).st_mode & 0o001 for p in (folder, *folder.parents))
    except OSError:
        return False

class DemoDovecot:
    """Dovecot serving one user's ``messages`` over POP3S on a free localhost port."""

    host = "localhost"  # the name the certificate carries (and 127.0.0.1)

    def __init__(self, username: str, password: str, messages: Iterable[bytes], *,
                 parent: Path | None = None) -> None:
        self.username = username
        self.password = password
        self.messages = list(messages)
        # Where the server's directory goes: inside the demo folder, so a killed demo
        # leaves nothing in the temp dir and the next run clears it. Unix socket paths
        # are limited to ~107 bytes, so a deep folder falls back to the temp dir.
        # Dovecot's unprivileged processes must be able to pass through every folder above.
        self.parent = parent if parent is not None and len(str(parent)) <= MAX_PARENT \
            and _world_traversable(parent) else None
        self.port = 0
        self.root: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def ca_file(self) -> Path:
        """The server's self-signed certificate, which clients trust."""
        assert self.root is not None, "start() first"
        return self.root / "cert.pem"

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> Self:
        """Write everything into a new temporary directory and start Dovecot there.

        Returns once the server greets over TLS; raises RuntimeError with the
        tail of Dovecot's log when it does not.
        """
        binary = find_dovecot()
        if binary is None:
            raise RuntimeError("dovecot is not installed (dovecot-core dovecot-pop3d)")
        self.root = Path(tempfile.mkdtemp(prefix=".dovecot-" if self.parent else
                                          "archiver-demo-dovecot-", dir=self.parent))
        try:
            ids = _Ids.detect()
            if ids.as_root:
                self.root.chmod(0o755)  # Dovecot's unprivileged processes work in here
            self._make_certificate()
            self._write_mail(ids)
            for _attempt in range(5):  # a free port may be taken before Dovecot binds it
                self.port = _free_port()
                self._write_config(ids)
                self._launch(binary)
                if self._wait_until_serving():
                    return self
                log = self._log_tail()
                self._stop_process()
                if "Address already in use" not in log:
                    break
            raise RuntimeError(f"Dovecot did not start:\n{log}")
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop Dovecot, wait for its processes, remove the directory. Idempotent."""
        try:
            self._stop_process()
        finally:
            if self.root is not None:
                shutil.rmtree(self.root, ignore_errors=True)
                self.root = None

    # -- what start() writes -------------------------------------------------------------

    def _make_certificate(self) -> None:
        assert self.root is not None
        openssl = shutil.which("openssl")
        if openssl is None:
            raise RuntimeError("openssl not found: needed for the demo server's certificate")
        cnf = self.root / "openssl.cnf"
        # Its own trust anchor (CA:TRUE, keyCertSign) for serverAuth with the
        # names clients check: passes OpenSSL's strict X.509 verification.
        cnf.write_text(
            "[req]\ndistinguished_name = dn\nx509_extensions = v3\nprompt = no\n"
            "[dn]\nCN = localhost\nO = archiver demo\n"
            "[v3]\nbasicConstraints = critical,CA:TRUE\n"
            "keyUsage = critical,digitalSignature,keyCertSign\n"
            "extendedKeyUsage = serverAuth\nsubjectKeyIdentifier = hash\n"
            "authorityKeyIdentifier = keyid:always\n"
            "subjectAltName = DNS:localhost,IP:127.0.0.1\n"
        )
        done = subprocess.run(
            [openssl, "req", "-x509", "-config", str(cnf), "-newkey", "ec",
             "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "30",
             "-keyout", str(self.root / "key.pem"), "-out", str(self.ca_file)],
            stdin=subprocess.DEVNULL, capture_output=True, check=False,
        )
        if done.returncode != 0:
            raise RuntimeError("openssl could not create the demo certificate: "
                               + done.stderr.decode(errors="replace").strip())

    def _write_mail(self, ids: _Ids) -> None:
        assert self.root is not None
        maildir = self.root / "mail"
        for sub in ("", "cur", "new", "tmp"):
            (maildir / sub).mkdir(mode=0o700)
            os.chown(maildir / sub, ids.mail_uid, ids.mail_gid)
        # Dovecot numbers new mail by file name: equal timestamps and a
        # zero-padded serial keep the messages in order.
        stamp = f"{int(time.time())}.M0P{os.getpid()}"
        for serial, raw in enumerate(self.messages):
            path = maildir / "new" / f"{stamp}Q{serial:06d}.demo"
            path.write_bytes(raw)
            os.chown(path, ids.mail_uid, ids.mail_gid)
        # passwd-file: user:{scheme}password:uid:gid::home (base64 survives any character)
        secret = base64.b64encode(self.password.encode()).decode()
        users = self.root / "users"
        users.write_text(f"{self.username}:{{PLAIN.BASE64}}{secret}:"
                         f"{ids.mail_uid}:{ids.mail_gid}::{self.root}\n")
        users.chmod(0o640)
        if ids.as_root:
            os.chown(users, 0, grp.getgrnam(ids.internal_group).gr_gid)

    def _write_config(self, ids: _Ids) -> None:
        assert self.root is not None
        root = self.root
        # only root can chroot Dovecot's login and anvil processes
        unchrooted = "" if ids.as_root else "service anvil {\n  chroot =\n}\n"
        chroot = "" if ids.as_root else "  chroot =\n"
        (root / "dovecot.conf").write_text(
            f"base_dir = {root / 'run'}\n"
            f"state_dir = {root / 'state'}\n"
            f"instance_name = {root.name}\n"
            f"log_path = {root / 'dovecot.log'}\n"
            "protocols = pop3\n"
            "listen = 127.0.0.1\n"
            "ssl = required\n"
            f"ssl_cert = <{self.ca_file}\n"
            f"ssl_key = <{root / 'key.pem'}\n"
            f"passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN {root / 'users'}\n}}\n"
            f"userdb {{\n  driver = passwd-file\n  args = {root / 'users'}\n}}\n"
            f"mail_location = maildir:{root / 'mail'}\n"
            f"first_valid_uid = {ids.mail_uid}\n"
            f"last_valid_uid = {ids.mail_uid}\n"
            f"default_internal_user = {ids.internal_user}\n"
            f"default_internal_group = {ids.internal_group}\n"
            f"default_login_user = {ids.login_user}\n"
            f"{unchrooted}"
            "service pop3-login {\n"
            f"{chroot}"
            "  inet_listener pop3 {\n    port = 0\n  }\n"
            f"  inet_listener pop3s {{\n    port = {self.port}\n    ssl = yes\n  }}\n"
            "}\n"
        )

    # -- the process ---------------------------------------------------------------------

    def _launch(self, binary: str) -> None:
        assert self.root is not None
        with open(self.root / "dovecot.out", "wb") as out:
            self._process = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _DIE_WITH_PARENT, str(os.getpid()),
                 binary, "-F", "-c", str(self.root / "dovecot.conf")],
                stdin=subprocess.DEVNULL, stdout=out, stderr=out, close_fds=True,
                start_new_session=True,
            )

    def _wait_until_serving(self) -> bool:
        """True once POP3S greets with +OK; False if Dovecot exits or never greets."""
        assert self._process is not None
        context = ssl.create_default_context(cafile=str(self.ca_file))
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=2) as raw, \
                        context.wrap_socket(raw, server_hostname=self.host) as tls:
                    if tls.recv(512).startswith(b"+OK"):
                        tls.sendall(b"QUIT\r\n")
                        return True
            except (OSError, ssl.SSLError):
                pass
            time.sleep(0.02)
        return False

    def _stop_process(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()  # the master stops every Dovecot process, then exits
            try:
                process.wait(_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                # Wedged: kill its whole session (it leads one, and while it is
                # not reaped its id cannot name anyone else's group).
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def _log_tail(self) -> str:
        assert self.root is not None
        text = ""
        for name in ("dovecot.out", "dovecot.log"):
            try:
                text += (self.root / name).read_text(errors="replace")
            except FileNotFoundError:
                pass
        return "\n".join(text.splitlines()[-30:])


class _Ids:
    """Who owns the mail and runs Dovecot's internal and login processes."""

    def __init__(self, mail: pwd.struct_passwd, internal: pwd.struct_passwd,
                 login: pwd.struct_passwd, as_root: bool) -> None:
        self.mail_uid, self.mail_gid = mail.pw_uid, mail.pw_gid
        self.internal_user = internal.pw_name
        self.internal_group = grp.getgrgid(internal.pw_gid).gr_name
        self.login_user = login.pw_name
        self.as_root = as_root

    @classmethod
    def detect(cls) -> _Ids:
        if os.geteuid() != 0:
            me = pwd.getpwuid(os.geteuid())
            return cls(me, me, me, as_root=False)
        return cls(_user("mail", "nobody"), _user("dovecot", "nobody"),
                   _user("dovenull", "nobody"), as_root=True)


def _user(*names: str) -> pwd.struct_passwd:
    for name in names:
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError(f"none of the system users {', '.join(names)} exists")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])

