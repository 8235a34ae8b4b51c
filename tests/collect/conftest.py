"""A real Dovecot for collector tests, and account keys that point at it.

``dovecot`` is one private Dovecot per test module (starting one takes
~50 ms, but every test runs once per database backend, so sharing it keeps
the suite quick). Tests never share a mailbox: ``mailbox`` makes a new POP3
user with a random password for each test, and ``mailbox_factory`` makes as
many more as a test needs. Tests that need a differently configured server
(no TLS, a certificate for another name, another UIDL format) start their
own with ``start_dovecot``.

Without Dovecot the tests are skipped on a laptop and fail under CI
(``require_dovecot``).
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.dovecot import Dovecot, Pop3Session, require_dovecot
from tests.support.pop3server import ScriptedPOP3Server

_users = itertools.count(1)


def dovecot_account(server: Dovecot, user: str, password: str, name: str = "dovecot", *,
                    tls: str = "implicit", **overrides) -> dict:
    """config.toml keys of an account on ``server``.

    ``tls="implicit"`` uses the POP3S port, ``"starttls"`` and ``"none"`` the
    plain one; both TLS modes trust the server's own certificate via
    ``ca_file``. ``overrides`` replace or add keys (``ca_file=None`` drops it).
    """
    port = server.pop3s_port if tls == "implicit" else server.pop3_port
    acc = {"name": name, "host": server.host, "port": port, "tls": tls,
           "username": user, "password": password, "timeout": "20s"}
    if tls != "none" and server.ssl:
        acc["ca_file"] = str(server.ca_file)
    acc.update(overrides)
    return {k: v for k, v in acc.items() if v is not None}


@dataclass
class Mailbox:
    """One POP3 user on a Dovecot, with the helpers tests need around it."""

    server: Dovecot
    user: str
    password: str

    def account(self, name: str | None = None, *, tls: str = "implicit", **overrides) -> dict:
        password = overrides.pop("password", self.password)
        return dovecot_account(self.server, self.user, password, name or self.user, tls=tls,
                               **overrides)

    def deliver(self, raw: bytes) -> None:
        self.server.deliver(self.user, raw)

    def deliver_many(self, messages: Iterable[bytes]) -> int:
        return self.server.deliver_many(self.user, messages)

    def count(self) -> int:
        """Messages in the maildir now (what the server still holds)."""
        return self.server.mailbox_count(self.user)

    def sessions(self) -> list[Pop3Session]:
        return self.server.sessions(self.user)

    def wait_for_sessions(self, count: int, timeout: float = 10.0) -> list[Pop3Session]:
        """At least ``count`` logged sessions of this user (Dovecot logs just after QUIT)."""
        return self.server.wait_for_sessions(count, self.user, timeout=timeout)


def new_mailbox(server: Dovecot, prefix: str = "u") -> Mailbox:
    user = f"{prefix}{next(_users)}"
    password = "pw-" + secrets.token_urlsafe(12)
    server.add_user(user, password)
    return Mailbox(server, user, password)


@pytest.fixture(scope="module")
def dovecot(tmp_path_factory):
    """A private Dovecot (POP3 + STLS on pop3_port, POP3S on pop3s_port) for this module."""
    require_dovecot()
    server = Dovecot(tmp_path_factory.mktemp("dovecot")).start()
    yield server
    server.stop()


@pytest.fixture
def mailbox(dovecot) -> Mailbox:
    """A new, empty POP3 user on the module's Dovecot."""
    return new_mailbox(dovecot)


@pytest.fixture
def mailbox_factory(dovecot):
    """``make(server=None)`` -> another new, empty POP3 user on ``server`` (default:
    the module's Dovecot)."""
    return lambda server=None: new_mailbox(server or dovecot)


@pytest.fixture
def start_dovecot(tmp_path):
    """``start(**Dovecot kwargs)`` -> a dedicated, running Dovecot, stopped after the test."""
    require_dovecot()
    servers: list[Dovecot] = []

    def start(**kwargs) -> Dovecot:
        server = Dovecot(Path(tmp_path) / f"dovecot-{len(servers)}", **kwargs).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def pop3():
    """Start scripted servers; all are stopped after the test."""
    servers: list[ScriptedPOP3Server] = []

    def start(messages=None, **kwargs) -> ScriptedPOP3Server:
        server = ScriptedPOP3Server(messages, **kwargs).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
