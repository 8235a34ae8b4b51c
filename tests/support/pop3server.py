"""A scripted, fault-injecting POP3 server on 127.0.0.1, standard library only.

For the tests that need faults a real Dovecot will not produce on demand
(a connection dropped in the middle of RETR, ``-ERR`` to QUIT, response
codes at login, dripping bytes, bare-LF replies, ...). With no fault enabled
it is a correct RFC 1939 / 2449 / 2595 / 5034 server: CAPA, STLS (or
implicit TLS), USER/PASS, APOP, SASL PLAIN and XOAUTH2, STAT, LIST, UIDL,
RETR, TOP, DELE, RSET, NOOP, QUIT, pipelining, several sessions at once,
thousands of messages per second. (`archiver demo` has its own small,
fault-free server: archiver.demo.loopback.)

Mailbox model (as a real server)
--------------------------------
Messages are given in wire form: ``(uidl, raw_bytes)``; ``uidl=None`` lets
the server assign one (Dovecot-like ``%08X%08X``: a counter and a per-server
"uidvalidity"). A session takes a snapshot of the mailbox when it logs in
(msgnums 1..n are fixed for the session); DELE only marks; the marked
messages leave the mailbox when QUIT is answered ``+OK`` (RFC 1939 UPDATE
state). A dropped connection, or a QUIT answered ``-ERR``, deletes nothing.

On RETR a message is sent as Dovecot sends it: a final CRLF is added if the
message does not end with a line end; every line starting with "." gets
another "." (a line starts at the beginning and after every LF, so bare-LF
messages round-trip through a client that treats LF as a line end); then
``.\\r\\n``. Bytes are otherwise sent as stored (bare LF, bare CR and NUL
pass through), unless ``normalize_newlines=True``, which stores every bare
LF as CRLF like Dovecot does. LIST sizes are the octets RETR delivers after
unstuffing.

Fault hooks
-----------
Named faults are one-liners on the server; each accepts ``times=N`` (fire N
times, then disarm; default: until :meth:`clear_faults`)::

    server.drop_during_retr(2, after_bytes=100)   # RETR 2: status + 100 body bytes, then drop
    server.drop_after_dele()                      # drop right after the 1st DELE's +OK
    server.fail_quit()                            # QUIT -> -ERR, nothing deleted
    server.fail_login("in-use")                   # or login-delay, sys-temp, sys-perm, auth,
                                                  # locked, or any literal "-ERR ..." line
    server.disable_uidl()                         # no UIDL in CAPA, UIDL -> -ERR unknown command
    server.set_list_size(3, 999)                  # LIST says 999 for message 3; RETR is true
    server.fail_retr(4)                           # RETR 4 -> -ERR [SYS/TEMP] ...
    server.drip(chunk=10, delay=0.01, commands={"RETR"})   # slow writes
    server.bare_lf()                              # every reply with LF line ends
    server.migrate()                              # same messages, every UIDL changes
    server.replace_mailbox([("uid-1", b"other content\\r\\n")])   # UIDL reused, new content

Duplicate UIDLs, UIDLs over 70 characters or with control characters need no
fault: put them in ``messages``. XOAUTH2 answers a bad token the way Gmail
does -- a ``+ <base64 JSON>`` continuation, then ``-ERR`` after the client's
empty line (``server.xoauth2_error_continuation = False`` answers ``-ERR``
at once); an AUTH without initial response gets the ``+ `` continuation.

For anything else, override a command::

    def handler(session, arg):          # arg: the rest of the command line
        return "-ERR [SYS/TEMP] try later"   # str: one status line (CRLF added)
        # bytes: sent verbatim; b"": send nothing more; None: default behaviour
        # session.send(...), session.default(verb, arg), session.drop() also work
    server.script("STAT", handler, times=1)

``server.log`` lists every command line received (PASS/APOP/AUTH payloads and
SASL responses masked as ``****``; an empty SASL line is logged as ``""``).
``server.stats`` counts sessions, commands and the most command lines that
arrived in one read (``max_pipelined``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, NoReturn

__all__ = ["LOGIN_FAULTS", "POP3Session", "ScriptedPOP3Server", "StoredMessage"]

DEFAULT_CAPABILITIES = [
    "TOP",
    "UIDL",
    "USER",
    "RESP-CODES",
    "AUTH-RESP-CODE",
    "PIPELINING",
    "SASL PLAIN XOAUTH2",
]

#: ready-made login refusals for :meth:`ScriptedPOP3Server.fail_login`
LOGIN_FAULTS = {
    "in-use": "-ERR [IN-USE] Mailbox is locked by another POP3 session.",
    "login-delay": "-ERR [LOGIN-DELAY] Logged in too recently, wait 300 seconds.",
    "sys-temp": "-ERR [SYS/TEMP] Temporary internal error, try again.",
    "sys-perm": "-ERR [SYS/PERM] Account disabled by the administrator.",
    "auth": "-ERR [AUTH] Authentication failed.",
    "locked": "-ERR mailbox locked, try again later",
}

_MAX_LINE = 64 * 1024
_FLUSH_AT = 1024 * 1024
_BARE_LF = re.compile(rb"(?<!\r)\n")


class _Dropped(Exception):
    """Raised inside a session to end it abruptly (no reply, no UPDATE)."""


@dataclass(eq=False)
class StoredMessage:
    """One message as the server holds it (immutable once stored)."""

    uidl: str
    data: bytes
    _wire: bytes | None = field(default=None, repr=False)

    @property
    def size(self) -> int:
        """Octets a client receives after dot-unstuffing (LIST size)."""
        if self.data and not self.data.endswith(b"\n"):
            return len(self.data) + 2
        return len(self.data)

    @property
    def wire(self) -> bytes:
        """The RETR body as sent: final line end, dot-stuffing, terminator."""
        if self._wire is None:
            body = self.data
            if body and not body.endswith(b"\n"):
                body += b"\r\n"
            body = body.replace(b"\n.", b"\n..")
            if body.startswith(b"."):
                body = b"." + body
            self._wire = body + b".\r\n"
        return self._wire


@dataclass
class _Fault:
    params: dict[str, Any]
    remaining: int | None


Handler = Callable[["POP3Session", str], "str | bytes | None"]


class ScriptedPOP3Server:
    """A POP3 server in a background thread; see the module docstring."""

    def __init__(
        self,
        messages: Iterable[tuple[str | None, bytes]] | None = None,
        *,
        users: dict[str, str] | None = None,
        capabilities: list[str] | None = None,
        tls_context: ssl.SSLContext | None = None,
        implicit_tls: bool = False,
        apop_timestamp: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        normalize_newlines: bool = False,
    ) -> None:
        self.host = host
        self.port = port
        self.users = dict(users) if users is not None else {"user": "pass"}
        self.capabilities = list(DEFAULT_CAPABILITIES if capabilities is None else capabilities)
        self.tls_context = tls_context
        self.implicit_tls = implicit_tls
        self.apop_timestamp = apop_timestamp
        self.normalize_newlines = normalize_newlines
        #: answer a bad XOAUTH2 token with "+ <base64 JSON>" first (Gmail style)
        self.xoauth2_error_continuation = True
        #: every command line received, credentials masked
        self.log: list[str] = []
        #: problems on the server side (TLS handshake failures, handler errors)
        self.errors: list[str] = []
        self.stats = {"sessions": 0, "commands": 0, "max_pipelined": 0}
        self._lock = threading.Lock()
        self._uid_counter = 0
        self._uidvalidity = int.from_bytes(os.urandom(4), "big") | 1
        self._mailbox: list[StoredMessage] = []
        self._faults: dict[str, _Fault] = {}
        self._hooks: dict[str, list[tuple[Handler, list[int | None]]]] = {}
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._sessions: set[POP3Session] = set()
        self._stopping = threading.Event()
        self.replace_mailbox(messages or [])

    # ------------------------------------------------------------- lifecycle

    def start(self) -> ScriptedPOP3Server:
        listener = socket.create_server((self.host, self.port), backlog=128)
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._stopping.clear()
        self._thread = threading.Thread(
            target=self._accept_loop, name=f"pop3-scripted-{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, cut every live session, wait for the threads."""
        if self._listener is None:
            return
        self._stopping.set()
        try:  # wake the blocking accept()
            socket.create_connection((self.host, self.port), timeout=1).close()
        except OSError:
            pass
        if self._thread is not None:
            self._thread.join(5)
        self._listener.close()
        self._listener = None
        with self._lock:
            sessions = list(self._sessions)
        for session in sessions:
            session._abort()
        for session in sessions:
            session._thread.join(5)

    def __enter__(self) -> ScriptedPOP3Server:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except OSError:
                if self._stopping.is_set():
                    return
                time.sleep(0.01)
                continue
            if self._stopping.is_set():
                sock.close()
                return
            session = POP3Session(self, sock)
            with self._lock:
                self._sessions.add(session)
                self.stats["sessions"] += 1
            session._thread.start()

    def _forget(self, session: POP3Session) -> None:
        with self._lock:
            self._sessions.discard(session)

    # --------------------------------------------------------------- mailbox

    @property
    def mailbox(self) -> list[tuple[str, bytes]]:
        """The messages currently in the maildrop, as ``(uidl, bytes)``."""
        with self._lock:
            return [(m.uidl, m.data) for m in self._mailbox]

    def replace_mailbox(self, messages: Iterable[tuple[str | None, bytes]]) -> None:
        """Swap the whole maildrop (sessions already logged in keep their snapshot)."""
        stored = [self._store(uidl, data) for uidl, data in messages]
        with self._lock:
            self._mailbox = stored

    def add_message(self, data: bytes, uidl: str | None = None) -> str:
        """Deliver one more message; returns its UIDL."""
        message = self._store(uidl, data)
        with self._lock:
            self._mailbox.append(message)
        return message.uidl

    def migrate(self) -> None:
        """Simulate a server migration: same messages, every UIDL new."""
        with self._lock:
            self._uidvalidity = (self._uidvalidity + 0x9E3779B1) & 0xFFFFFFFF or 1
            current = [m.data for m in self._mailbox]
        self.replace_mailbox((None, data) for data in current)

    def _store(self, uidl: str | None, data: bytes) -> StoredMessage:
        if not isinstance(data, bytes | bytearray):
            raise TypeError("messages are bytes in wire form")
        data = bytes(data)
        if self.normalize_newlines:
            data = _BARE_LF.sub(b"\r\n", data)
        if uidl is None:
            with self._lock:
                self._uid_counter += 1
                uidl = f"{self._uid_counter:08X}{self._uidvalidity:08X}"
        return StoredMessage(uidl, data)

    def _snapshot(self) -> list[StoredMessage]:
        with self._lock:
            return list(self._mailbox)

    def _expunge(self, gone: list[StoredMessage]) -> None:
        ids = {id(m) for m in gone}
        with self._lock:
            self._mailbox = [m for m in self._mailbox if id(m) not in ids]

    # ---------------------------------------------------------------- faults

    def script(
        self, command: str, handler: Handler, *, times: int | None = None
    ) -> ScriptedPOP3Server:
        """Override ``command`` (case-insensitive) with ``handler(session, arg)``.

        The handler's return value: ``str`` -> one status line (CRLF added);
        ``bytes`` -> sent verbatim; ``b""`` -> nothing more is sent; ``None`` ->
        the built-in behaviour runs. Later scripts for the same command win.
        """
        self._hooks.setdefault(command.upper(), []).append((handler, [times]))
        return self

    def clear_faults(self) -> ScriptedPOP3Server:
        """Remove every named fault and scripted handler."""
        with self._lock:
            self._faults.clear()
            self._hooks.clear()
        return self

    def _set_fault(self, name: str, times: int | None, **params: Any) -> ScriptedPOP3Server:
        with self._lock:
            self._faults[name] = _Fault(params, times)
        return self

    def _fire(self, name: str, **match: Any) -> dict[str, Any] | None:
        """The fault's parameters if it is armed (and matches); counts one use."""
        fault = self._faults.get(name)
        if fault is None:
            return None
        with self._lock:
            if any(fault.params.get(k) != v for k, v in match.items()):
                return None
            if fault.remaining is not None:
                if fault.remaining <= 0:
                    return None
                fault.remaining -= 1
            return fault.params

    def _armed(self, name: str) -> dict[str, Any] | None:
        fault = self._faults.get(name)
        if fault is None or (fault.remaining is not None and fault.remaining <= 0):
            return None
        return fault.params

    def _hook(self, verb: str) -> Handler | None:
        hooks = self._hooks.get(verb)
        if not hooks:
            return None
        with self._lock:
            for handler, remaining in reversed(hooks):
                if remaining[0] is None:
                    return handler
                if remaining[0] > 0:
                    remaining[0] -= 1
                    return handler
        return None

    def drop_during_retr(
        self, msgnum: int, after_bytes: int = 0, *, times: int | None = None
    ) -> ScriptedPOP3Server:
        """RETR msgnum: send the +OK line and ``after_bytes`` of the body, then drop."""
        return self._set_fault("drop_during_retr", times, msgnum=msgnum, after_bytes=after_bytes)

    def drop_after_dele(self, after: int = 1, *, times: int | None = None) -> ScriptedPOP3Server:
        """Answer the ``after``-th DELE of a session with +OK, then drop (no UPDATE)."""
        return self._set_fault("drop_after_dele", times, after=after)

    def fail_quit(
        self,
        reply: str = "-ERR [SYS/TEMP] Cannot update the maildrop, no messages deleted.",
        *,
        times: int | None = None,
    ) -> ScriptedPOP3Server:
        """Answer QUIT with ``reply``; nothing is deleted; the connection closes."""
        return self._set_fault("fail_quit", times, reply=reply)

    def fail_login(self, reply: str = "in-use", *, times: int | None = None) -> ScriptedPOP3Server:
        """Answer the final login step (PASS, APOP, AUTH) with ``reply``.

        ``reply`` is a key of :data:`LOGIN_FAULTS` (``in-use``, ``login-delay``,
        ``sys-temp``, ``sys-perm``, ``auth``, ``locked``) or a literal line.
        """
        return self._set_fault("fail_login", times, reply=LOGIN_FAULTS.get(reply, reply))

    def disable_uidl(self) -> ScriptedPOP3Server:
        """No UIDL: not in CAPA, and the command answers ``-ERR unknown command``."""
        return self._set_fault("disable_uidl", None)

    def set_list_size(self, msgnum: int, size: int) -> ScriptedPOP3Server:
        """Make LIST (and STAT) report ``size`` for ``msgnum``; RETR is unchanged."""
        with self._lock:
            fault = self._faults.setdefault("list_size", _Fault({"sizes": {}}, None))
            fault.params["sizes"][msgnum] = size
        return self

    def fail_retr(
        self,
        msgnum: int,
        reply: str = "-ERR [SYS/TEMP] Message temporarily unavailable.",
        *,
        times: int | None = None,
    ) -> ScriptedPOP3Server:
        """Answer RETR msgnum with ``reply`` (the session goes on)."""
        with self._lock:
            fault = self._faults.setdefault("fail_retr", _Fault({"replies": {}}, None))
            fault.params["replies"][msgnum] = [reply, times]
        return self

    def drip(
        self,
        chunk: int = 1,
        delay: float = 0.01,
        *,
        commands: Iterable[str] | None = None,
        times: int | None = None,
    ) -> ScriptedPOP3Server:
        """Send replies ``chunk`` bytes at a time with ``delay`` seconds between.

        ``commands`` limits it to replies to those commands (``"GREETING"``
        names the greeting); None means every reply.
        """
        verbs = None if commands is None else {c.upper() for c in commands}
        return self._set_fault("drip", times, chunk=max(1, chunk), delay=delay, commands=verbs)

    def bare_lf(self, enabled: bool = True) -> ScriptedPOP3Server:
        """Send every reply (status lines and message bodies) with LF line ends."""
        if enabled:
            return self._set_fault("bare_lf", None)
        with self._lock:
            self._faults.pop("bare_lf", None)
        return self

    # ----------------------------------------------------------- credentials

    def _check_password(self, user: str | None, secret: str) -> bool:
        return user is not None and user in self.users and self.users[user] == secret

    def _check_apop(self, user: str, digest: str) -> bool:
        if self.apop_timestamp is None or user not in self.users:
            return False
        expected = hashlib.md5((self.apop_timestamp + self.users[user]).encode()).hexdigest()
        return digest.lower() == expected

    def _auth_failed_line(self) -> str:
        if "AUTH-RESP-CODE" in self.capabilities or "RESP-CODES" in self.capabilities:
            return "-ERR [AUTH] Authentication failed."
        return "-ERR Authentication failed."

    def _capa_lines(self, secure: bool) -> list[str]:
        lines = list(self.capabilities)
        if self._armed("disable_uidl") is not None:
            lines = [c for c in lines if c.split()[0].upper() != "UIDL"]
        if self.tls_context is not None and not secure:
            lines.append("STLS")
        return lines

    def _sasl_mechanisms(self) -> set[str]:
        for cap in self.capabilities:
            words = cap.split()
            if words and words[0].upper() == "SASL":
                return {w.upper() for w in words[1:]}
        return set()


class POP3Session:
    """One client connection. Handlers get it to look at state or act.

    Useful attributes: ``state`` (``"AUTHORIZATION"``/``"TRANSACTION"``),
    ``user``, ``messages`` (the snapshot; msgnum ``n`` is ``messages[n-1]``),
    ``deleted`` (msgnums marked), ``secure``, ``server``.
    """

    def __init__(self, server: ScriptedPOP3Server, sock: socket.socket) -> None:
        self.server = server
        self.state = "AUTHORIZATION"
        self.user: str | None = None
        self.messages: list[StoredMessage] = []
        self.deleted: set[int] = set()
        self.secure = False
        self._sock = sock
        self._out: list[bytes] = []
        self._out_len = 0
        self._verb = "GREETING"
        self._sasl_mech: str | None = None
        self._xoauth2_failed = False
        self._deles = 0
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="pop3-session", daemon=True)

    # -------------------------------------------------------- handler API

    def send(self, data: bytes | str) -> None:
        """Queue a reply: ``str`` is one line (CRLF added), ``bytes`` verbatim."""
        if isinstance(data, str):
            data = data.encode() + b"\r\n"
        drip = self.server._armed("drip")
        if drip is not None and (drip["commands"] is None or self._verb in drip["commands"]):
            if self.server._fire("drip") is not None:
                self.flush()
                self._send_slowly(data, drip["chunk"], drip["delay"])
                return
        self._out.append(data)
        self._out_len += len(data)
        if self._out_len >= _FLUSH_AT:
            self.flush()

    def flush(self) -> None:
        if not self._out:
            return
        data = b"".join(self._out)
        self._out.clear()
        self._out_len = 0
        if self.server._armed("bare_lf") is not None:
            data = data.replace(b"\r\n", b"\n")
        self._sock.sendall(data)

    def drop(self) -> NoReturn:
        """Send what is queued, then cut the connection (no QUIT processing)."""
        try:
            self.flush()
        except OSError:
            pass
        raise _Dropped

    def sleep(self, seconds: float) -> None:
        """Wait, but wake up at once when the server stops."""
        self.server._stopping.wait(seconds)

    def message(self, msgnum: int | str) -> StoredMessage | None:
        """The undeleted message ``msgnum`` of this session, or None."""
        try:
            n = int(msgnum)
        except (TypeError, ValueError):
            return None
        if 1 <= n <= len(self.messages) and n not in self.deleted:
            return self.messages[n - 1]
        return None

    def default(self, verb: str, arg: str = "") -> None:
        """Run the built-in behaviour for ``verb``."""
        method = getattr(self, "_cmd_" + verb.upper(), None)
        if method is None or verb.upper() not in _STATES.get(self.state, ()):
            if method is not None:
                self.send("-ERR Command not allowed in this state.")
            else:
                self.send("-ERR Unknown command.")
            return
        method(arg)

    # ----------------------------------------------------------- main loop

    def _abort(self) -> None:
        self._closed = True
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _run(self) -> None:
        server = self.server
        try:
            if server.implicit_tls:
                self._start_tls()
            greeting = "+OK POP3 scripted server ready."
            if server.apop_timestamp:
                greeting += " " + server.apop_timestamp
            hook = server._hook("GREETING")
            result = hook(self, "") if hook is not None else None
            if result is None:
                self.send(greeting)
            else:
                self._send_result(result)
            self.flush()
            self._serve()
        except (_Dropped, OSError, ssl.SSLError):
            pass
        except Exception as exc:  # a handler bug: keep it visible to the test
            server.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            self._closed = True
            try:
                self._sock.close()
            except OSError:
                pass
            server._forget(self)

    def _serve(self) -> None:
        buf = b""
        pos = 0
        stats = self.server.stats
        while not self._closed:
            nl = buf.find(b"\n", pos)
            if nl < 0:
                self.flush()
                if len(buf) - pos > _MAX_LINE:
                    self.send("-ERR Line too long.")
                    self.drop()
                chunk = self._sock.recv(65536)
                if not chunk:
                    return
                buf = buf[pos:] + chunk
                pos = 0
                waiting = buf.count(b"\n")
                if waiting > stats["max_pipelined"]:
                    stats["max_pipelined"] = waiting
                continue
            line = buf[pos:nl]
            pos = nl + 1
            if line.endswith(b"\r"):
                line = line[:-1]
            stats["commands"] += 1
            if self._handle(line.decode("utf-8", "replace")):
                buf, pos = b"", 0  # STLS: whatever came before the handshake is discarded
        self.flush()

    def _handle(self, line: str) -> bool:
        """Process one line; True if the transport changed (STLS)."""
        server = self.server
        if self._sasl_mech is not None:
            mech, self._sasl_mech = self._sasl_mech, None
            server.log.append("*" if line == "*" else "****" if line else "")
            if line == "*":
                self.send("-ERR Authentication aborted by client.")
            else:
                self._sasl_finish(mech, line)
            return False
        if self._xoauth2_failed:
            self._xoauth2_failed = False
            server.log.append("****" if line else "")
            self.send(server._auth_failed_line())
            return False
        verb, _, arg = line.partition(" ")
        verb = verb.upper()
        server.log.append(_masked(verb, arg, line))
        self._verb = verb
        hook = server._hook(verb)
        if hook is not None:
            result = hook(self, arg)
            if result is not None:
                self._send_result(result)
                return False
        was_secure = self.secure
        self.default(verb, arg)
        return self.secure != was_secure

    def _send_result(self, result: str | bytes) -> None:
        if result != b"":
            self.send(result)

    def _send_slowly(self, data: bytes, chunk: int, delay: float) -> None:
        if self.server._armed("bare_lf") is not None:
            data = data.replace(b"\r\n", b"\n")
        for i in range(0, len(data), chunk):
            if self._closed or self.server._stopping.is_set():
                raise _Dropped
            self._sock.sendall(data[i : i + chunk])
            self.sleep(delay)

    def _start_tls(self) -> None:
        context = self.server.tls_context
        assert context is not None
        try:
            self._sock = context.wrap_socket(self._sock, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            self.server.errors.append(f"TLS handshake failed: {exc}")
            raise _Dropped from exc
        self.secure = True

    def _login_ok(self, user: str) -> None:
        fault = self.server._fire("fail_login")
        if fault is not None:
            self.send(fault["reply"])
            return
        self.user = user
        self.state = "TRANSACTION"
        self.messages = self.server._snapshot()
        self.deleted = set()
        self.send(f"+OK Logged in, {len(self.messages)} messages.")

    def _login_failed(self) -> None:
        fault = self.server._fire("fail_login")
        self.send(fault["reply"] if fault is not None else self.server._auth_failed_line())

    # ------------------------------------------------- AUTHORIZATION state

    def _cmd_CAPA(self, arg: str) -> None:
        lines = self.server._capa_lines(self.secure)
        self.send(
            (
                "+OK Capability list follows\r\n" + "".join(c + "\r\n" for c in lines) + ".\r\n"
            ).encode()
        )

    def _cmd_STLS(self, arg: str) -> None:
        if self.server.tls_context is None or self.server.implicit_tls or self.secure:
            self.send("-ERR STLS not available.")
            return
        self.send("+OK Begin TLS negotiation now.")
        self.flush()
        self._start_tls()

    def _cmd_USER(self, arg: str) -> None:
        if not any(c.split()[0].upper() == "USER" for c in self.server.capabilities if c.split()):
            self.send("-ERR [AUTH] USER/PASS is not allowed here.")
            return
        self.user = arg.strip() or None
        self.send("+OK")

    def _cmd_PASS(self, arg: str) -> None:
        if self.user is None:
            self.send("-ERR No username given.")
            return
        if self.server._check_password(self.user, arg):
            self._login_ok(self.user)
        else:
            self._login_failed()

    def _cmd_APOP(self, arg: str) -> None:
        words = arg.split()
        if self.server.apop_timestamp is None or len(words) != 2:
            self.send("-ERR APOP not available.")
            return
        if self.server._check_apop(words[0], words[1]):
            self._login_ok(words[0])
        else:
            self._login_failed()

    def _cmd_AUTH(self, arg: str) -> None:
        words = arg.split()
        if not words:
            self.send("-ERR Missing mechanism.")
            return
        mech = words[0].upper()
        if mech not in self.server._sasl_mechanisms():
            self.send("-ERR Unsupported authentication mechanism.")
            return
        if len(words) > 1:
            self._sasl_finish(mech, words[1])
        else:
            self._sasl_mech = mech
            self.send("+ ")

    def _sasl_finish(self, mech: str, encoded: str) -> None:
        try:
            raw = b"" if encoded == "=" else base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            self.send("-ERR Invalid base64 data in continued response.")
            return
        if mech == "PLAIN":
            parts = raw.split(b"\0")
            if len(parts) != 3:
                self._login_failed()
                return
            user, secret = parts[1].decode(errors="replace"), parts[2].decode(errors="replace")
            if self.server._check_password(user, secret):
                self._login_ok(user)
            else:
                self._login_failed()
            return
        # XOAUTH2: "user=<u>\x01auth=Bearer <token>\x01\x01"
        fields = dict(
            f.split("=", 1) for f in raw.decode(errors="replace").split("\x01") if "=" in f
        )
        user = fields.get("user")
        token = fields.get("auth", "")
        token = token[len("Bearer ") :] if token.startswith("Bearer ") else None
        if token is not None and self.server._check_password(user, token):
            self._login_ok(user or "")
            return
        fault = self.server._fire("fail_login")
        if fault is not None:
            self.send(fault["reply"])
            return
        if self.server.xoauth2_error_continuation:
            error = {"status": "401", "schemes": "Bearer", "scope": "https://mail.example/"}
            self.send("+ " + base64.b64encode(json.dumps(error).encode()).decode())
            self._xoauth2_failed = True
        else:
            self.send(self.server._auth_failed_line())

    def _cmd_QUIT(self, arg: str) -> None:
        if self.state == "TRANSACTION":
            fault = self.server._fire("fail_quit")
            if fault is not None:
                self.send(fault["reply"])
                self.drop()
            gone = [self.messages[n - 1] for n in sorted(self.deleted)]
            self.server._expunge(gone)
            self.send(f"+OK Logging out, {len(gone)} messages deleted.")
        else:
            self.send("+OK Logging out.")
        self.flush()
        self._closed = True

    # --------------------------------------------------- TRANSACTION state

    def _size(self, msgnum: int, message: StoredMessage) -> int:
        fault = self.server._armed("list_size")
        if fault is not None and msgnum in fault["sizes"]:
            return fault["sizes"][msgnum]
        return message.size

    def _live(self) -> Iterable[tuple[int, StoredMessage]]:
        deleted = self.deleted
        return ((n, m) for n, m in enumerate(self.messages, 1) if n not in deleted)

    def _cmd_STAT(self, arg: str) -> None:
        live = list(self._live())
        self.send(f"+OK {len(live)} {sum(self._size(n, m) for n, m in live)}")

    def _cmd_LIST(self, arg: str) -> None:
        if arg.strip():
            message = self.message(arg.strip())
            if message is None:
                self.send("-ERR No such message.")
            else:
                self.send(f"+OK {int(arg)} {self._size(int(arg), message)}")
            return
        live = list(self._live())
        lines = "".join(f"{n} {self._size(n, m)}\r\n" for n, m in live)
        self.send(f"+OK {len(live)} messages\r\n{lines}.\r\n".encode())

    def _cmd_UIDL(self, arg: str) -> None:
        if self.server._armed("disable_uidl") is not None:
            self.send("-ERR Unknown command.")
            return
        if arg.strip():
            message = self.message(arg.strip())
            if message is None:
                self.send("-ERR No such message.")
            else:
                self.send(f"+OK {int(arg)} {message.uidl}")
            return
        lines = "".join(f"{n} {m.uidl}\r\n" for n, m in self._live())
        self.send(b"+OK\r\n" + lines.encode("utf-8", "surrogateescape") + b".\r\n")

    def _cmd_RETR(self, arg: str) -> None:
        message = self.message(arg.strip())
        if message is None:
            self.send("-ERR No such message.")
            return
        msgnum = int(arg)
        failing = self.server._armed("fail_retr")
        if failing is not None and msgnum in failing["replies"]:
            entry = failing["replies"][msgnum]
            if entry[1] is None or entry[1] > 0:
                if entry[1] is not None:
                    entry[1] -= 1
                self.send(entry[0])
                return
        drop = self.server._fire("drop_during_retr", msgnum=msgnum)
        if drop is not None:
            self.send(b"+OK %d octets\r\n" % message.size + message.wire[: drop["after_bytes"]])
            self.drop()
        self.send(b"+OK %d octets\r\n" % message.size + message.wire)

    def _cmd_TOP(self, arg: str) -> None:
        words = arg.split()
        message = self.message(words[0]) if len(words) == 2 else None
        if message is None or not words[1].isdigit():
            self.send("-ERR No such message.")
            return
        lines = message.data.splitlines(keepends=True)
        out = []
        in_body = False
        body_lines = 0
        for line in lines:
            if in_body:
                if body_lines >= int(words[1]):
                    break
                body_lines += 1
            elif line in (b"\r\n", b"\n"):
                in_body = True
            out.append(line)
        top = StoredMessage("", b"".join(out)).wire
        self.send(b"+OK\r\n" + top)

    def _cmd_DELE(self, arg: str) -> None:
        message = self.message(arg.strip())
        if message is None:
            self.send("-ERR No such message.")
            return
        self.deleted.add(int(arg))
        self.send("+OK Marked to be deleted.")
        self._deles += 1
        if self.server._fire("drop_after_dele", after=self._deles) is not None:
            self.drop()

    def _cmd_NOOP(self, arg: str) -> None:
        self.send("+OK")

    def _cmd_RSET(self, arg: str) -> None:
        self.deleted = set()
        self.send("+OK")


_STATES = {
    "AUTHORIZATION": {"CAPA", "STLS", "USER", "PASS", "APOP", "AUTH", "QUIT"},
    "TRANSACTION": {"CAPA", "STAT", "LIST", "UIDL", "RETR", "TOP", "DELE", "NOOP", "RSET", "QUIT"},
}


def _masked(verb: str, arg: str, line: str) -> str:
    if verb == "PASS":
        return "PASS ****"
    if verb == "APOP":
        return f"APOP {arg.split(' ', 1)[0]} ****"
    if verb == "AUTH":
        words = arg.split()
        return f"AUTH {words[0]} ****" if len(words) > 1 else line
    return line
