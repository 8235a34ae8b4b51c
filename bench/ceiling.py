"""The protocol ceiling: the least a POP3 client can do to fetch a mailbox, as a child process.

    python bench/ceiling.py --host H --port P --user U --password W --mode MODE

Modes (all print one JSON line: messages, bytes, seconds in-process):

``seq``
    A raw-socket client written here (no poplib, no archiver code): USER,
    PASS, UIDL, then ``RETR n`` for every listed message, one at a time
    (send, read the whole reply, send the next), throwing the bytes away.
``pipe``
    The same, but every RETR is sent at once by a writer thread while the
    main thread reads the replies (RFC 2449 PIPELINING, which Dovecot lists).
    Nothing a real client does can be faster on this server: it is the
    ceiling for any client that stores nothing.
``pop3client``
    archiver's own :class:`archiver.collect.pop3.POP3Client` (UIDL, LIST,
    then ``retr_many`` pipelined with its default window) writing into a
    null sink that only counts bytes: archiver's protocol layer without the
    store. The gap between this and ``archiver collect`` is storage; the gap
    between this and ``pipe`` is the POP3 client.
``uidl``
    The no-op ceiling: USER, PASS, UIDL, QUIT. What every client must do
    to learn that nothing is new.

The raw reader only counts reply terminators: a body is dot-stuffed, so
``CRLF . CRLF`` cannot occur inside one, and counting it across the stream
(carrying 4 bytes across receive blocks) counts finished replies. It does
not check for ``-ERR``; the harness checks Dovecot's session log instead
(``retr`` must equal the number of messages).
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import threading
import time

_RECV = 256 * 1024
_TERMINATOR = b"\r\n.\r\n"


class RawSession:
    """Just enough POP3 to log in, list UIDs and count RETR replies."""

    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.create_connection((host, port), timeout=300)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.received = 0  # bytes of RETR replies, status lines and terminators included

    def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            self._fill()
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def ok(self, command: bytes) -> bytes:
        self.sock.sendall(command + b"\r\n")
        reply = self.line()
        if not reply.startswith(b"+OK"):
            raise SystemExit(f"{command.split()[0].decode()}: {reply.decode(errors='replace')}")
        return reply

    def multiline(self) -> bytes:
        """The body of a multi-line reply whose status line was read (small replies only)."""
        while True:
            end = self.buf.find(b"\r\n.\r\n")
            if end >= 0:
                body, self.buf = self.buf[:end + 2], self.buf[end + 5:]
                return body
            if self.buf.startswith(b".\r\n"):  # empty listing
                self.buf = self.buf[3:]
                return b""
            self._fill()

    def _fill(self) -> None:
        data = self.sock.recv(_RECV)
        if not data:
            raise SystemExit("server closed the connection")
        self.buf += data

    def count_replies(self, wanted: int) -> int:
        """Read until ``wanted`` more multi-line replies have ended; returns bytes read."""
        # Whatever is buffered is the start of the first reply (the status
        # line, which cannot contain the terminator before its own CRLF).
        data, self.buf = self.buf, b""
        seen = data.count(_TERMINATOR)
        carry, total = data[-4:], len(data)
        recv = self.sock.recv
        while seen < wanted:
            data = recv(_RECV)
            if not data:
                raise SystemExit("server closed the connection")
            total += len(data)
            seen += (carry + data).count(_TERMINATOR)
            carry = data[-4:]
        if seen != wanted:
            raise SystemExit(f"read {seen} replies, expected {wanted} (stream out of step)")
        self.received += total
        return total


def login_and_list(session: RawSession, user: str, password: str) -> list[int]:
    session.line()  # greeting
    session.ok(b"USER " + user.encode())
    session.ok(b"PASS " + password.encode())
    session.ok(b"UIDL")
    listing = session.multiline()
    return [int(line.split()[0]) for line in listing.split(b"\r\n") if line]


def run_raw(args: argparse.Namespace) -> dict:
    session = RawSession(args.host, args.port)
    msgnums = login_and_list(session, args.user, args.password)
    if args.mode == "seq":
        for msgnum in msgnums:
            session.sock.sendall(b"RETR %d\r\n" % msgnum)
            session.count_replies(1)
    elif args.mode == "pipe":
        commands = b"".join(b"RETR %d\r\n" % n for n in msgnums)
        writer = threading.Thread(target=session.sock.sendall, args=(commands,), daemon=True)
        writer.start()
        session.count_replies(len(msgnums))
        writer.join()
    session.ok(b"QUIT")
    return {"listed": len(msgnums), "messages": 0 if args.mode == "uidl" else len(msgnums),
            "bytes_received": session.received}


def run_pop3client(args: argparse.Namespace) -> dict:
    from archiver.collect.pop3 import POP3Client

    class NullSink:
        size = 0

        def write(self, data: bytes) -> None:
            NullSink.size += len(data)

    sink = NullSink()
    with POP3Client(args.host, args.port, tls="none") as pop:
        pop.connect()
        pop.login(args.user, args.password)  # auth "auto", as archiver's default
        listed = pop.uidl()
        sizes = pop.list_sizes()
        messages = 0
        for result in pop.retr_many(((n, sizes.get(n)) for n, _ in listed), lambda n: sink):
            if result.error is not None:
                raise SystemExit(f"RETR {result.msgnum}: {result.error}")
            messages += 1
        pop.quit()
    return {"listed": len(listed), "messages": messages, "bytes": NullSink.size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--mode", choices=("seq", "pipe", "pop3client", "uidl"), required=True)
    args = parser.parse_args()
    started = time.perf_counter()
    result = run_pop3client(args) if args.mode == "pop3client" else run_raw(args)
    result["seconds"] = time.perf_counter() - started
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
