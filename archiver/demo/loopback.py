"""A small fault-free POP3 server on 127.0.0.1, for `archiver demo` without Dovecot.

    with LoopbackPOP3Server("demo", "secret", messages) as server:
        ...  # plain POP3 on server.host:server.port

One user, one maildrop held in memory, one thread per session (RFC 1939):
CAPA, USER, PASS, STAT, LIST, UIDL, RETR, DELE, NOOP, RSET, QUIT, with
PIPELINING (RFC 2449; commands are answered in order as they arrive). It
serves messages as Dovecot does: in wire form (every bare LF sent as CRLF, a
final CRLF added), dot-stuffed, sizes counted before stuffing. A session
locks the maildrop (a second one gets ``-ERR [IN-USE]``); DELE only marks,
and marked messages go when QUIT is answered. No TLS: it listens on
loopback only.
"""

from __future__ import annotations

import hashlib
import socket
import socketserver
import threading
from collections.abc import Iterable
from types import TracebackType
from typing import Self

__all__ = ["LoopbackPOP3Server"]

_MAX_LINE = 1024  # RFC 2449: commands up to 255 octets; be lenient, not unbounded
_IDLE_TIMEOUT = 600.0  # RFC 1939's minimum autologout timer


def wire_form(raw: bytes) -> bytes:
    """``raw`` as a POP3 server sends it: bare LF as CRLF, ending with CRLF."""
    wire = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    return wire if wire.endswith(b"\r\n") else wire + b"\r\n"


class LoopbackPOP3Server:
    """Serves ``messages`` to ``username``/``password`` on a free loopback port."""

    host = "127.0.0.1"

    def __init__(self, username: str, password: str, messages: Iterable[bytes]) -> None:
        self.username = username
        self.password = password
        # (uidl, wire bytes); a UIDL names the content, unique as RFC 1939 asks
        self._maildrop: list[tuple[str, bytes]] = []
        for number, raw in enumerate(messages, start=1):
            wire = wire_form(raw)
            self._maildrop.append((f"{number}.{hashlib.sha256(wire).hexdigest()[:16]}", wire))
        self._maildrop_lock = threading.Lock()  # held by the session in TRANSACTION state
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def messages(self) -> list[bytes]:
        """The maildrop now (wire form), without what a finished session deleted."""
        return [wire for _uidl, wire in self._maildrop]

    def start(self) -> Self:
        self._server = _Server((self.host, 0), _Session)
        self._server.pop3 = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name=f"pop3-loopback-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, end the open sessions (deleting nothing), wait for them."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.end_sessions()
        server.server_close()  # joins the session threads
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = False
    block_on_close = True
    pop3: LoopbackPOP3Server

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()

    def process_request(self, request: socket.socket, client_address: object) -> None:  # type: ignore[override]
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: socket.socket) -> None:  # type: ignore[override]
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def end_sessions(self) -> None:
        with self._open_lock:
            for sock in self._open:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


class _Session(socketserver.StreamRequestHandler):
    """One POP3 session: AUTHORIZATION, then TRANSACTION, then UPDATE on QUIT."""

    timeout = _IDLE_TIMEOUT
    server: _Server

    def handle(self) -> None:
        pop3 = self.server.pop3
        self.user: str | None = None
        self.maildrop: list[tuple[str, bytes]] | None = None  # set once logged in
        self.deleted: set[int] = set()
        self.reply("+OK archiver demo POP3 server ready")
        try:
            while True:
                line = self.rfile.readline(_MAX_LINE + 1)
                if not line:
                    return  # the client went away: UPDATE never happens
                if len(line) > _MAX_LINE or not line.endswith(b"\n"):
                    self.reply("-ERR line too long")
                    return
                verb, _, arg = line.rstrip(b"\r\n").decode("ascii", "replace").partition(" ")
                if not self.command(verb.upper(), arg.strip(), pop3):
                    return
        except OSError:
            return  # timed out or cut off by stop()
        finally:
            if self.maildrop is not None:
                pop3._maildrop_lock.release()

    def reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def command(self, verb: str, arg: str, pop3: LoopbackPOP3Server) -> bool:
        """Answer one command; False ends the session."""
        if verb == "QUIT":
            if self.maildrop is not None and self.deleted:
                gone = {self.maildrop[n - 1][0] for n in self.deleted}
                pop3._maildrop = [m for m in pop3._maildrop if m[0] not in gone]
            self.reply("+OK bye")
            return False
        if verb == "CAPA":
            self.wfile.write(b"+OK capabilities follow\r\nUSER\r\nUIDL\r\nPIPELINING\r\n"
                             b"RESP-CODES\r\nIMPLEMENTATION archiver-demo\r\n.\r\n")
        elif verb == "NOOP":
            self.reply("+OK")
        elif self.maildrop is None:
            self.authorize(verb, arg, pop3)
        else:
            self.transact(verb, arg)
        return True

    def authorize(self, verb: str, arg: str, pop3: LoopbackPOP3Server) -> None:
        if verb == "USER" and arg:
            self.user = arg
            self.reply("+OK send PASS")
        elif verb == "PASS" and self.user is not None:
            if (self.user, arg) != (pop3.username, pop3.password):
                self.user = None
                self.reply("-ERR [AUTH] invalid user name or password")
            elif not pop3._maildrop_lock.acquire(blocking=False):
                self.user = None
                self.reply("-ERR [IN-USE] the maildrop is locked by another session")
            else:
                self.maildrop = list(pop3._maildrop)  # msgnums are fixed for the session
                self.reply(f"+OK {len(self.maildrop)} messages")
        elif verb == "PASS":
            self.reply("-ERR USER first")
        elif verb in _TRANSACTION:
            self.reply("-ERR log in first (USER, PASS)")
        else:
            self.reply(f"-ERR unknown command {verb[:20]}")

    def transact(self, verb: str, arg: str) -> None:
        assert self.maildrop is not None
        live = [(n, uidl, wire) for n, (uidl, wire) in enumerate(self.maildrop, start=1)
                if n not in self.deleted]
        if verb == "STAT":
            self.reply(f"+OK {len(live)} {sum(len(wire) for _n, _u, wire in live)}")
        elif verb in ("LIST", "UIDL"):
            def entry(n: int, uidl: str, wire: bytes) -> str:
                return f"{n} {len(wire) if verb == 'LIST' else uidl}"

            if arg:
                number = self.message_number(arg)
                if number is not None:
                    self.reply("+OK " + entry(number, *self.maildrop[number - 1]))
            else:
                listing = "".join(entry(*message) + "\r\n" for message in live)
                self.wfile.write(f"+OK {len(live)} messages\r\n{listing}.\r\n".encode())
        elif verb == "RETR":
            number = self.message_number(arg)
            if number is not None:
                wire = self.maildrop[number - 1][1]
                stuffed = (b"." + wire if wire.startswith(b".") else wire).replace(b"\r\n.",
                                                                                   b"\r\n..")
                self.wfile.write(b"+OK %d octets\r\n" % len(wire) + stuffed + b".\r\n")
        elif verb == "DELE":
            number = self.message_number(arg)
            if number is not None:
                self.deleted.add(number)
                self.reply(f"+OK message {number} deleted")
        elif verb == "RSET":
            self.deleted.clear()
            self.reply(f"+OK {len(self.maildrop)} messages")
        else:
            self.reply(f"-ERR unknown command {verb[:20]}")

    def message_number(self, arg: str) -> int | None:
        """The message ``arg`` names, or None after answering -ERR."""
        assert self.maildrop is not None
        number = int(arg) if arg.isdigit() else 0
        if not 1 <= number <= len(self.maildrop):
            self.reply(f"-ERR no such message {arg[:20]}")
        elif number in self.deleted:
            self.reply(f"-ERR message {number} already deleted")
        else:
            return number
        return None


_TRANSACTION = {"STAT", "LIST", "UIDL", "RETR", "DELE", "RSET"}
