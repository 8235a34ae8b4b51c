"""The demo's built-in POP3 server, probed byte by byte over a raw socket."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from archiver.demo.loopback import LoopbackPOP3Server, wire_form

#: file-form messages: a dot line, a line starting with a dot, bare LF, no final line end
MESSAGES = [
    b"Subject: one\r\n\r\nfirst\r\n.\r\n..two dots\r\n.starts with a dot\r\n",
    b"Subject: two\n\nbare LF\nand no final line end",
    b".Subject: starts the message with a dot\r\n\r\nbody\r\n",
]


class Client:
    """A raw POP3 reader: byte-exact multi-line replies, commands as given."""

    def __init__(self, server: LoopbackPOP3Server) -> None:
        self.sock = socket.create_connection((server.host, server.port), timeout=10)
        self.file = self.sock.makefile("rb")
        assert self.file.readline().startswith(b"+OK")

    def send(self, *lines: str) -> None:
        self.sock.sendall("".join(line + "\r\n" for line in lines).encode())

    def line(self) -> bytes:
        return self.file.readline()

    def command(self, line: str) -> bytes:
        self.send(line)
        return self.line()

    def multiline(self) -> bytes:
        """The body of a multi-line reply, still dot-stuffed, without the final '.'."""
        body = b""
        while (line := self.file.readline()) != b".\r\n":
            assert line, "connection closed inside a multi-line reply"
            body += line
        return body

    def login(self, user: str = "demo", password: str = "pw") -> bytes:
        assert self.command(f"USER {user}").startswith(b"+OK")
        return self.command(f"PASS {password}")

    def close(self) -> None:
        self.file.close()
        self.sock.close()


@pytest.fixture
def server():
    with LoopbackPOP3Server("demo", "pw", MESSAGES) as running:
        yield running


def _unstuff(body: bytes) -> bytes:
    return b"".join(line[1:] if line.startswith(b".") else line
                    for line in body.splitlines(keepends=True))


def test_capabilities_before_login(server):
    client = Client(server)
    assert client.command("CAPA").startswith(b"+OK")
    assert client.multiline().split() == [b"USER", b"UIDL", b"PIPELINING", b"RESP-CODES",
                                          b"IMPLEMENTATION", b"archiver-demo"]
    assert client.command("STAT").startswith(b"-ERR")
    assert client.command("QUIT") == b"+OK bye\r\n"


def test_retr_sends_wire_form_dot_stuffed_and_list_counts_it(server):
    client = Client(server)
    assert client.login() == b"+OK 3 messages\r\n"
    wires = [wire_form(m) for m in MESSAGES]
    assert wires[1] == b"Subject: two\r\n\r\nbare LF\r\nand no final line end\r\n"
    assert client.command("STAT") == f"+OK 3 {sum(map(len, wires))}\r\n".encode()
    assert client.command("LIST").startswith(b"+OK")
    assert client.multiline() == b"".join(b"%d %d\r\n" % (n, len(w))
                                          for n, w in enumerate(wires, start=1))
    for number, wire in enumerate(wires, start=1):
        assert client.command(f"RETR {number}") == b"+OK %d octets\r\n" % len(wire)
        body = client.multiline()
        assert not any(line.startswith(b".") and not line.startswith(b"..")
                       for line in body.splitlines())
        assert _unstuff(body) == wire
    assert client.command("LIST 2") == b"+OK 2 %d\r\n" % len(wires[1])
    assert client.command("RETR 4").startswith(b"-ERR")
    assert client.command("RETR x").startswith(b"-ERR")
    client.command("QUIT")


def test_uidls_are_unique_and_stable(server):
    def uidls() -> list[bytes]:
        client = Client(server)
        client.login()
        assert client.command("UIDL").startswith(b"+OK")
        listing = client.multiline()
        assert client.command("UIDL 1") == b"+OK " + listing.split(b"\r\n")[0] + b"\r\n"
        client.command("QUIT")
        return [line.split()[1] for line in listing.splitlines()]

    first = uidls()
    assert len(set(first)) == 3
    assert all(0x21 <= c <= 0x7E for uidl in first for c in uidl) and max(map(len, first)) <= 70
    assert uidls() == first


def test_dele_takes_effect_only_when_quit_is_answered(server):
    client = Client(server)
    client.login()
    assert client.command("DELE 1").startswith(b"+OK")
    assert client.command("DELE 1").startswith(b"-ERR")
    assert client.command("RETR 1").startswith(b"-ERR")
    assert client.command("STAT").startswith(b"+OK 2 ")
    client.close()  # no QUIT: nothing is deleted
    _wait_unlocked(server)
    assert len(server.messages) == 3

    client = Client(server)
    client.login()
    client.command("DELE 2")
    assert client.command("RSET").startswith(b"+OK")
    client.command("DELE 3")
    assert client.command("QUIT") == b"+OK bye\r\n"
    client.close()
    assert server.messages == [wire_form(MESSAGES[0]), wire_form(MESSAGES[1])]


def test_bad_password_and_a_locked_maildrop(server):
    client = Client(server)
    assert client.login(password="wrong").startswith(b"-ERR [AUTH]")
    assert client.login().startswith(b"+OK")
    other = Client(server)
    assert other.login().startswith(b"-ERR [IN-USE]")
    client.command("QUIT")
    _wait_unlocked(server)
    assert other.login().startswith(b"+OK")
    other.command("QUIT")


def test_pipelined_commands_are_answered_in_order(server):
    client = Client(server)
    client.send("USER demo", "PASS pw", "STAT", "RETR 1", "RETR 2", "NOOP", "QUIT")
    assert [client.line()[:3] for _ in range(3)] == [b"+OK"] * 3
    for message in MESSAGES[:2]:
        assert client.line().startswith(b"+OK")
        assert _unstuff(client.multiline()) == wire_form(message)
    assert client.line() == b"+OK\r\n"
    assert client.line() == b"+OK bye\r\n"
    assert client.line() == b""


def test_stop_ends_open_sessions_and_leaves_no_thread():
    before = set(threading.enumerate())
    server = LoopbackPOP3Server("demo", "pw", MESSAGES).start()
    idle = Client(server)
    idle.login()
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 2
    assert idle.line() == b""  # cut off, and nothing was deleted
    assert set(threading.enumerate()) <= before
    server.stop()  # idempotent


def _wait_unlocked(server: LoopbackPOP3Server, timeout: float = 5.0) -> None:
    """Wait until the session that held the maildrop has finished on the server side."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server._maildrop_lock.acquire(blocking=False):
            server._maildrop_lock.release()
            return
        time.sleep(0.01)
    pytest.fail("the maildrop stayed locked")
