"""POP3Client against the scripted, fault-injecting POP3 server.

Real-server behaviour (Dovecot) is tested elsewhere; here we drive the
faults a real server will not produce on demand, and the byte-level edge
cases of the multi-line reader (including every split of the terminator
across reads, by shrinking the client's receive size).
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import random
import shutil
import socket
import ssl
import subprocess
import threading
import time

import pytest

from archiver.collect import pop3
from archiver.collect.pop3 import POP3Client
from archiver.errors import (
    AuthError,
    CollectError,
    MessageTooLarge,
    NetworkError,
    ProtocolError,
    ServerBusy,
    ServerPermanentError,
    TLSError,
    UIDLUnsupported,
)
from tests.support.pop3server import ScriptedPOP3Server

NO_PIPELINING = ["TOP", "UIDL", "USER", "RESP-CODES", "AUTH-RESP-CODE", "SASL PLAIN XOAUTH2"]
APOP_TS = "<1896.697170952@dbc.mtview.ca.us>"


# --------------------------------------------------------------- helpers


@pytest.fixture
def serve(pop3):
    """The scripted-server starter of tests/collect/conftest.py (``pop3`` is the module here)."""
    return pop3


def client(server: ScriptedPOP3Server, **kwargs) -> POP3Client:
    kwargs.setdefault("tls", "none")
    kwargs.setdefault("timeout", 5.0)
    kwargs.setdefault("command_deadline", 10.0)
    return POP3Client(server.host, server.port, **kwargs)


def session(server, user="user", secret="pass", auth="auto", **kwargs) -> POP3Client:
    pop = client(server, **kwargs)
    pop.connect()
    pop.login(user, secret, auth)
    return pop


def fetch(pop: POP3Client, msgnum: int, **kwargs) -> bytes:
    sink = io.BytesIO()
    size = pop.retr(msgnum, sink, **kwargs)
    assert size == len(sink.getvalue())
    return sink.getvalue()


def wire_form(data: bytes) -> bytes:
    """What a POP3 client must deliver for a stored message: a final CRLF added."""
    return data if not data or data.endswith(b"\n") else data + b"\r\n"


TRICKY = {
    "lone-dot-line": b"Subject: x\r\n\r\nbefore\r\n.\r\nafter\r\n",
    "leading-dots": b".starts\r\n..two\r\n...three\r\n.\r\n..\r\n",
    "dot-first-line": b".\r\nafter the dot\r\n",
    "only-a-dot-line": b".\r\n",
    "long-lines": b"x" * 5000 + b"\r\n" + b"y" * 70_000 + b"\r\n.z" + b"w" * 3000 + b"\r\n",
    "bare-lf": b"a\nb\n.\n..c\n.d\nend\n",
    "bare-cr": b"a\rb\r.\r\n.\rX\r\n\r.\r\r\n",
    "nul-bytes": b"a\x00b\r\n\x00.\r\n.\x00\r\n",
    "crlf-dot-cr-not-terminator": b"a\r\n.\rb\r\n.\r\r\nc\r\n.\r",
    "last-line-without-crlf": b"Subject: y\r\n\r\nno final newline",
    "ends-with-dot-no-crlf": b"text\r\n.",
    "dot-after-bare-lf-then-crlf": b"a\n.\r\nb\r\n",
    "empty": b"",
    "crlf-only": b"\r\n",
    "dot-lf-after-crlf": b"a\r\n.\nb\r\n",
}


def random_messages(count: int, seed: int = 7) -> list[bytes]:
    """Short messages built from the bytes that matter to the framing."""
    rnd = random.Random(seed)
    alphabet = [b".", b"..", b"\r", b"\n", b"\r\n", b"a", b"\x00", b"\r\n.", b"\n.\r"]
    return [
        b"".join(rnd.choice(alphabet) for _ in range(rnd.randrange(0, 60))) for _ in range(count)
    ]


# ----------------------------------------------------------- byte exactness


@pytest.mark.parametrize("name", sorted(TRICKY))
def test_retr_is_byte_exact_for_tricky_bodies(serve, name):
    data = TRICKY[name]
    server = serve([("u1", data)])
    with session(server) as pop:
        assert pop.list_sizes() == {1: len(wire_form(data))}
        assert fetch(pop, 1) == wire_form(data)
        pop.noop()  # still in step with the server


@pytest.mark.parametrize("recv_size", [1, 2, 3, 5, 4096])
def test_terminator_and_dot_split_across_reads(serve, monkeypatch, recv_size):
    """Every way "\\r\\n.\\r\\n" and "\\r\\n.." can be cut between two reads."""
    messages = [d for d in TRICKY.values() if len(d) < 1000] + random_messages(60)
    server = serve([(None, m) for m in messages])
    monkeypatch.setattr(pop3, "_RECV_SIZE", recv_size)
    with session(server) as pop:
        results = list(
            pop.retr_many(((n, None) for n in range(1, len(messages) + 1)), lambda n: io.BytesIO())
        )
        assert [r.sink.getvalue() for r in results] == [wire_form(m) for m in messages]
        assert pop.stat()[0] == len(messages)


def test_twenty_megabyte_single_line_streams_in_bounded_pieces(serve):
    data = b"Subject: big\r\n\r\n" + b"A" * (20 * 1024 * 1024) + b"\r\n"
    server = serve([("big", data)])

    class Recorder:
        def __init__(self):
            self.digest = hashlib.sha256()
            self.size = 0
            self.largest = 0

        def write(self, piece):
            self.digest.update(piece)
            self.size += len(piece)
            self.largest = max(self.largest, len(piece))

    sink = Recorder()
    with session(server) as pop:
        assert pop.retr(1, sink, size_hint=len(data)) == len(data)
        pop.noop()
    assert sink.digest.digest() == hashlib.sha256(data).digest()
    assert sink.largest <= 256 * 1024  # memory stays bounded by the receive block


def test_pipelined_and_sequential_retr_many_give_identical_bytes(serve):
    messages = random_messages(300, seed=11) + list(TRICKY.values())
    stored = [(None, m) for m in messages]
    pipelined = serve(stored)
    sequential = serve(stored, capabilities=NO_PIPELINING)
    wanted = [(n, None) for n in range(1, len(messages) + 1)]
    got = {}
    for name, server in (("pipelined", pipelined), ("sequential", sequential)):
        with session(server) as pop:
            got[name] = [r.sink.getvalue() for r in pop.retr_many(wanted, lambda n: io.BytesIO())]
            pop.quit()
    assert got["pipelined"] == got["sequential"] == [wire_form(m) for m in messages]
    assert pipelined.stats["max_pipelined"] > 1
    assert sequential.stats["max_pipelined"] == 1


def test_retr_many_yields_per_message_errors_in_order(serve):
    server = serve(
        [(None, b"one\r\n"), (None, b"two\r\n"), (None, b"x" * 5000 + b"\r\n"), (None, b"four\r\n")]
    )
    server.fail_retr(2)
    with session(server) as pop:
        results = list(
            pop.retr_many(
                [(1, None), (2, None), (3, None), (99, None), (4, None)],
                lambda n: io.BytesIO(),
                max_size=1000,
            )
        )
        assert [r.msgnum for r in results] == [1, 2, 3, 99, 4]
        assert results[0].error is None and results[0].sink.getvalue() == b"one\r\n"
        assert isinstance(results[1].error, ServerBusy)  # [SYS/TEMP]
        assert isinstance(results[2].error, MessageTooLarge)
        assert results[2].size == 5002
        assert isinstance(results[3].error, ProtocolError)
        assert "RETR 99" in str(results[3].error)
        assert results[4].error is None and results[4].sink.getvalue() == b"four\r\n"
        pop.noop()


def test_retr_many_stopped_early_leaves_session_usable(serve):
    messages = [b"message %d\r\n" % i for i in range(50)]
    server = serve([(None, m) for m in messages])
    with session(server) as pop:
        results = pop.retr_many(((n, None) for n in range(1, 51)), lambda n: io.BytesIO())
        for count, _result in enumerate(results, 1):
            if count == 3:
                break
        results.close()
        assert pop.connected
        pop.noop()
        assert fetch(pop, 40) == messages[39]
        assert pop.stat() == (50, sum(len(m) for m in messages))
        pop.quit()


def test_retr_many_sends_nothing_until_iterated_and_closes_on_sink_error(serve):
    server = serve([(None, b"a\r\n"), (None, b"b\r\n")])
    with session(server) as pop:
        pop.retr_many([(1, None)], lambda n: io.BytesIO())  # never iterated
        assert "RETR 1" not in server.log

        class Broken:
            def write(self, data):
                raise OSError("disk full")

        with pytest.raises(OSError, match="disk full"):
            list(pop.retr_many([(1, None), (2, None)], lambda n: Broken()))
        assert not pop.connected  # half-read reply: the session cannot go on


def test_connection_dropped_during_retr_many(serve):
    server = serve([(None, b"m%d\r\n" % i + b"x" * 1000 + b"\r\n") for i in range(5)])
    server.drop_during_retr(3, after_bytes=100)
    seen = []
    with session(server) as pop:
        with pytest.raises(NetworkError, match="closed the connection during RETR 3"):
            for result in pop.retr_many([(n, None) for n in range(1, 6)], lambda n: io.BytesIO()):
                seen.append(result.msgnum)
        assert not pop.connected
    assert seen == [1, 2]
    assert len(server.mailbox) == 5


def test_max_size_reads_to_the_end_and_keeps_the_session(serve):
    big = b"Subject: big\r\n\r\n" + b"line\r\n.dotted\r\n" * 10_000
    server = serve([("big", big), ("small", b"small\r\n")])
    with session(server) as pop:
        sink = io.BytesIO()
        with pytest.raises(MessageTooLarge, match="message 1 is") as info:
            pop.retr(1, sink, max_size=4096)
        assert info.value.size == len(big)
        assert len(sink.getvalue()) <= 4096
        assert "127.0.0.1" in str(info.value)
        assert fetch(pop, 2) == b"small\r\n"
        assert fetch(pop, 1, max_size=len(big)) == big


def test_bare_lf_reply_followed_by_crlf_reply_in_one_read(serve):
    server = serve([("a", b"unused\r\n"), ("b", b"second\r\n.\r\n")])
    server.script("RETR", lambda s, a: b"+OK\nfirst\n..x\n.\n" if a == "1" else None)
    with session(server) as pop:
        results = list(pop.retr_many([(1, None), (2, None)], lambda n: io.BytesIO()))
        assert [r.sink.getvalue() for r in results] == [b"first\n.x\n", b"second\r\n.\r\n"]
        pop.noop()


def test_list_size_may_differ_from_retr(serve):
    server = serve([("a", b"12345678\r\n")])
    server.set_list_size(1, 3)
    with session(server) as pop:
        assert pop.list_sizes() == {1: 3}
        assert fetch(pop, 1, size_hint=3) == b"12345678\r\n"


def test_bare_lf_server(serve):
    server = serve([("a", b"Subject: x\r\n\r\nbody\r\n.dot\r\n.\r\n")], apop_timestamp=APOP_TS)
    server.bare_lf()
    with session(server, auth="user") as pop:
        assert pop.uidl() == [(1, "a")]
        assert fetch(pop, 1) == b"Subject: x\n\nbody\n.dot\n.\n"
        pop.quit()


# ------------------------------------------------------------- UIDL / LIST


def test_uidl_returns_raw_values_duplicates_included(serve):
    long_uid = "L" * 100
    server = serve(
        [
            ("dup", b"1\r\n"),
            ("dup", b"2\r\n"),
            (long_uid, b"3\r\n"),
            ("ctl\x01\x7f", b"4\r\n"),
            ("with space", b"5\r\n"),
            ("ok", b"6\r\n"),
        ]
    )
    with session(server) as pop:
        assert pop.uidl() == [
            (1, "dup"),
            (2, "dup"),
            (3, long_uid),
            (4, "ctl\x01\x7f"),
            (5, "with space"),
            (6, "ok"),
        ]


def test_uidl_unsupported(serve):
    server = serve([(None, b"x\r\n")])
    server.disable_uidl()
    with session(server) as pop:
        assert "UIDL" not in pop.capabilities
        with pytest.raises(UIDLUnsupported, match="leave-on-server"):
            pop.uidl()
        pop.noop()


def test_malformed_listing_is_a_protocol_error(serve):
    server = serve([(None, b"x\r\n")])
    server.script("UIDL", lambda s, a: b"+OK\r\n1 fine\r\nnot-a-number x\r\n.\r\n")
    with session(server) as pop:
        with pytest.raises(ProtocolError, match="malformed UIDL line 'not-a-number x'"):
            pop.uidl()


def test_hundred_thousand_entries_parse(serve):
    # Correctness only: how fast is bench/ingest.py's business (no timed tests).
    server = serve([(None, b"x\r\n")] * 100_000)
    with session(server) as pop:
        listing = pop.uidl()
        sizes = pop.list_sizes()
    assert len(listing) == 100_000 and listing[-1][0] == 100_000
    assert len(set(uid for _, uid in listing)) == 100_000
    assert sizes[100_000] == 3


def test_mailbox_migration_and_uidl_reuse_between_sessions(serve):
    server = serve([(None, b"first\r\n"), (None, b"second\r\n")])
    with session(server) as pop:
        before = dict(pop.uidl())
        pop.quit()
    server.migrate()
    with session(server) as pop:
        after = dict(pop.uidl())
        assert set(before.values()).isdisjoint(after.values())
        assert fetch(pop, 2) == b"second\r\n"
        pop.quit()
    server.replace_mailbox([(before[1], b"other content\r\n")])
    with session(server) as pop:
        assert pop.uidl() == [(1, before[1])]
        assert fetch(pop, 1) == b"other content\r\n"


# ----------------------------------------------------------- DELE / QUIT


@pytest.mark.parametrize("capabilities", [None, NO_PIPELINING], ids=["pipelined", "sequential"])
def test_dele_many_then_quit_commits(serve, capabilities):
    server = serve([("a", b"a\r\n"), ("b", b"b\r\n"), ("c", b"c\r\n")], capabilities=capabilities)
    with session(server) as pop:
        assert pop.dele_many([1, 3, 99]) == [1, 3]
        assert server.mailbox == [("a", b"a\r\n"), ("b", b"b\r\n"), ("c", b"c\r\n")]
        pop.quit()
        assert not pop.connected
    assert server.mailbox == [("b", b"b\r\n")]


def test_quit_error_raises_and_nothing_is_deleted(serve):
    server = serve([("a", b"a\r\n")])
    server.fail_quit()
    with session(server) as pop:
        pop.dele(1)
        with pytest.raises(ProtocolError, match="did not commit the deletions"):
            pop.quit()
    assert server.mailbox == [("a", b"a\r\n")]


def test_connection_dropped_after_dele(serve):
    server = serve([("a", b"a\r\n"), ("b", b"b\r\n")])
    server.drop_after_dele()
    with session(server) as pop:
        assert pop.dele_many([1]) == [1]
        with pytest.raises(NetworkError):
            pop.quit()
    assert len(server.mailbox) == 2


def test_close_and_context_manager_never_send_quit(serve):
    server = serve([("a", b"a\r\n")])
    with session(server) as pop:
        pop.dele(1)
    pop.close()  # idempotent
    assert "QUIT" not in server.log
    assert server.mailbox == [("a", b"a\r\n")]
    with pytest.raises(NetworkError, match="not connected"):
        pop.noop()


# -------------------------------------------------------- authentication


@pytest.mark.parametrize(
    ("auth", "expected_log"),
    [
        ("user", ["USER user", "PASS ****"]),
        ("apop", ["APOP user ****"]),
        ("plain", ["AUTH PLAIN ****"]),
        ("xoauth2", ["AUTH XOAUTH2 ****"]),
    ],
)
def test_every_mechanism_logs_in(serve, auth, expected_log):
    server = serve([(None, b"x\r\n")], apop_timestamp=APOP_TS)
    with session(server, auth=auth) as pop:
        assert pop.stat() == (1, 3)
    assert server.log == ["CAPA", *expected_log, "STAT"]


@pytest.mark.parametrize(
    ("mechanism", "user", "secret", "inline"),
    [
        ("plain", "u" * 90, "p" * 88, True),  # 180 octets -> 240 base64 -> 253-octet line
        ("plain", "u" * 90, "p" * 89, False),  # 181 octets -> 244 base64 -> 257-octet line
        ("xoauth2", "user", "t" * 1500, False),  # real tokens are long: two-step
    ],
)
def test_rfc5034_initial_response_only_within_255_octets(serve, mechanism, user, secret, inline):
    server = serve([(None, b"x\r\n")], users={user: secret})
    with session(server, user, secret, auth=mechanism):
        pass
    verb = f"AUTH {mechanism.upper()}"
    if inline:
        assert server.log[1:] == [f"{verb} ****"]
    else:
        assert server.log[1:] == [verb, "****"]


def test_xoauth2_failure_uses_the_error_continuation(serve):
    server = serve([(None, b"x\r\n")], users={"user": "good-token"})
    pop = client(server)
    pop.connect()
    with pytest.raises(AuthError, match=r"\[AUTH\].*status 401"):
        pop.login("user", "expired-token", auth="xoauth2")
    assert server.log[1:] == ["AUTH XOAUTH2 ****", ""]  # the empty line after "+ <json>"
    pop.close()


def test_plain_failure(serve):
    server = serve([(None, b"x\r\n")])
    pop = client(server)
    pop.connect()
    with pytest.raises(AuthError, match=r"127\.0\.0\.1:\d+: login \(AUTH PLAIN\) failed"):
        pop.login("user", "wrong", auth="plain")
    pop.close()


@pytest.mark.parametrize(
    ("server_kwargs", "expected"),
    [
        ({"apop_timestamp": APOP_TS}, "apop"),  # clear text: APOP beats PLAIN
        ({}, "plain"),
        ({"capabilities": ["UIDL", "USER"]}, "user"),
        ({"capabilities": ["UIDL"], "apop_timestamp": APOP_TS}, "apop"),
    ],
)
def test_auto_selection(serve, server_kwargs, expected):
    server = serve([(None, b"x\r\n")], **server_kwargs)
    pop = client(server)
    pop.connect()
    assert pop.login("user", "pass") == expected
    pop.close()


@pytest.mark.parametrize("refusal", ["-ERR authentication failed", "-ERR APOP not available",
                                     "-ERR [AUTH] Bad login"])
def test_auto_falls_back_from_apop_refused_for_the_credentials(serve, refusal):
    """GNU Mailutils greets with a timestamp even without an APOP secret for anyone,
    and refuses APOP with "-ERR [AUTH] Bad login", as it does a wrong password."""
    server = serve([(None, b"x\r\n")], capabilities=["UIDL", "USER"], apop_timestamp=APOP_TS)
    server.script("APOP", lambda s, a: refusal)
    pop = client(server)
    pop.connect()
    assert pop.login("user", "pass") == "user"
    assert server.log[1:] == ["APOP user ****", "USER user", "PASS ****"]
    assert not pop.secure  # the same clear-text connection: nothing was up- or downgraded
    pop.close()


def test_when_the_fallback_fails_too_the_error_names_both(serve):
    server = serve([(None, b"x\r\n")], users={"user": "other"},
                   capabilities=["UIDL", "USER", "AUTH-RESP-CODE"], apop_timestamp=APOP_TS)
    pop = client(server)
    pop.connect()
    with pytest.raises(AuthError, match=r"login \(USER/PASS\) failed.*APOP had been refused "
                                        r"before: .*login \(APOP\) failed"):
        pop.login("user", "pass")
    pop.close()


@pytest.mark.parametrize("refusal", ["-ERR [SYS/PERM] account disabled",
                                     "-ERR [IN-USE] mailbox locked",
                                     "-ERR mailbox is locked, try again later"])
def test_auto_keeps_an_apop_refusal_that_is_about_the_mailbox_or_the_server(
        serve, refusal):
    server = serve([(None, b"x\r\n")], capabilities=["UIDL", "USER"], apop_timestamp=APOP_TS)
    server.script("APOP", lambda s, a: refusal)
    pop = client(server)
    pop.connect()
    with pytest.raises((ServerPermanentError, ServerBusy)):
        pop.login("user", "pass")
    assert "PASS ****" not in server.log
    pop.close()


def test_explicit_apop_never_falls_back(serve):
    server = serve([(None, b"x\r\n")], capabilities=["UIDL", "USER"], apop_timestamp=APOP_TS)
    server.script("APOP", lambda s, a: "-ERR authentication failed")
    pop = client(server)
    pop.connect()
    with pytest.raises(AuthError, match=r"login \(APOP\) failed"):
        pop.login("user", "pass", auth="apop")
    assert server.log[1:] == ["APOP user ****"]
    pop.close()


@pytest.mark.parametrize(("reply", "enabled"), [("+OK UTF8 enabled", True),
                                                ("-ERR not now", False)])
def test_utf8_is_sent_before_login_when_offered(serve, reply, enabled):
    server = serve([(None, b"x\r\n")], capabilities=["UIDL", "USER", "UTF8"])
    server.script("UTF8", lambda s, a: reply)
    with session(server, auth="user") as pop:
        assert pop.utf8 is enabled
        assert server.log[:4] == ["CAPA", "UTF8", "USER user", "PASS ****"]


def test_utf8_is_not_sent_when_not_offered(serve):
    server = serve([(None, b"x\r\n")], capabilities=["UIDL", "USER"])
    with session(server, auth="user") as pop:
        assert not pop.utf8 and "UTF8" not in server.log


@pytest.mark.parametrize(("advertised", "parsed"), [
    ("EXPIRENEVER", ["NEVER"]), ("EXPIRE0", ["0"]), ("EXPIRE 30 USER", ["30", "USER"]),
    ("expire31", ["31"]), ("EXPIRE NEVER", ["NEVER"])])
def test_expire_is_parsed_with_or_without_its_space(serve, advertised, parsed):
    server = serve([(None, b"x\r\n")], capabilities=["UIDL", "USER", advertised])
    pop = client(server)
    pop.connect()
    assert pop.capabilities["EXPIRE"] == parsed
    pop.close()


def test_auto_selection_without_capa_uses_user(serve):
    server = serve([(None, b"x\r\n")])
    server.script("CAPA", lambda s, a: "-ERR Unknown command.")
    pop = client(server)
    pop.connect()
    assert pop.capabilities == {}
    assert pop.login("user", "pass") == "user"
    pop.close()


def test_auto_never_picks_xoauth2_and_explicit_mechanism_must_be_offered(serve):
    server = serve([(None, b"x\r\n")], capabilities=["UIDL", "SASL XOAUTH2"])
    pop = client(server)
    pop.connect()
    with pytest.raises(AuthError, match="offers: SASL XOAUTH2"):
        pop.login("user", "pass")
    with pytest.raises(AuthError, match=r'auth = "plain" is configured.*offers: SASL XOAUTH2'):
        pop.login("user", "pass", auth="plain")
    with pytest.raises(AuthError, match='auth = "apop"'):
        pop.login("user", "pass", auth="apop")
    assert server.log == ["CAPA"]  # nothing was tried
    pop.close()


# ------------------------------------------------------ error classification


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ("in-use", ServerBusy),
        ("login-delay", ServerBusy),
        ("sys-temp", ServerBusy),
        ("sys-perm", ServerPermanentError),
        ("auth", AuthError),
        ("locked", ServerBusy),
    ],
)
@pytest.mark.parametrize("auth", ["user", "plain"])
def test_login_refusals_are_classified(serve, fault, error, auth):
    server = serve([(None, b"x\r\n")])
    server.fail_login(fault)
    pop = client(server)
    pop.connect()
    with pytest.raises(error) as info:
        pop.login("user", "pass", auth=auth)
    assert type(info.value) is error
    assert f"127.0.0.1:{server.port}" in str(info.value)
    pop.close()


@pytest.mark.parametrize(
    ("capabilities", "reply", "error"),
    [
        (["USER"], None, AuthError),  # plain "-ERR Authentication failed."
        (None, None, AuthError),  # "[AUTH]"
        (["USER"], "-ERR Authentication failed, try again", AuthError),
        (["USER"], "-ERR Mailbox is busy", ServerBusy),
        (["USER"], "-ERR unable to lock maildrop", ServerBusy),
        (["USER"], "-ERR [LOGIN-DELAY/X-SOON] wait", ServerBusy),
        # AUTH-RESP-CODE promises [AUTH] for credential problems; none here
        (None, "-ERR Plaintext authentication disallowed", ServerPermanentError),
    ],
)
def test_login_failure_without_fault_hooks(serve, capabilities, reply, error):
    server = serve([(None, b"x\r\n")], capabilities=capabilities)
    if reply is not None:
        server.script("PASS", lambda s, a: reply)
    pop = client(server)
    pop.connect()
    with pytest.raises(error) as info:
        pop.login("user", "wrong" if reply is None else "pass", auth="user")
    assert type(info.value) is error
    pop.close()


@pytest.mark.parametrize(
    ("greeting", "error"),
    [
        ("-ERR too many connections", ServerBusy),
        ("-ERR [SYS/PERM] service closed for good", ServerPermanentError),
        ("* OK IMAP4rev1 ready", ProtocolError),
    ],
)
def test_greeting_refusals(serve, greeting, error):
    server = serve()
    server.script("GREETING", lambda s, a: greeting)
    pop = client(server)
    with pytest.raises(error):
        pop.connect()
    assert not pop.connected


def test_malformed_reply_is_a_protocol_error_and_closes(serve):
    server = serve([(None, b"x\r\n")])
    server.script("STAT", lambda s, a: "hello there")
    with session(server) as pop:
        with pytest.raises(ProtocolError, match="expected \\+OK or -ERR"):
            pop.stat()
        assert not pop.connected


def test_overlong_status_line_is_a_protocol_error(serve):
    server = serve([(None, b"x\r\n")])
    server.script("NOOP", lambda s, a: b"+OK " + b"x" * (70 * 1024) + b"\r\n")
    with session(server) as pop:
        with pytest.raises(ProtocolError, match="longer than 65536 bytes"):
            pop.noop()


def test_connection_refused_is_a_network_error():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    pop = POP3Client("127.0.0.1", port, tls="none", timeout=2)
    with pytest.raises(NetworkError, match=f"127.0.0.1:{port}: cannot connect"):
        pop.connect()


def test_silent_server_read_timeout(serve):
    server = serve([(None, b"x\r\n")])

    def silent(session, arg):
        session.sleep(3)
        return "+OK late"

    server.script("NOOP", silent)
    with session(server, timeout=0.3) as pop:
        started = time.monotonic()
        with pytest.raises(NetworkError, match="timed out"):
            pop.noop()
        assert time.monotonic() - started < 2


def test_command_deadline_caps_the_socket_timeout(serve):
    server = serve([(None, b"x\r\n")])
    server.script("NOOP", lambda s, a: s.sleep(3))  # returns None only after 3 s
    with session(server, timeout=5.0, command_deadline=0.3) as pop:
        started = time.monotonic()
        with pytest.raises(NetworkError, match=r"NOOP timed out.*command deadline"):
            pop.noop()
        assert time.monotonic() - started < 1.5


def test_dripping_server_hits_the_command_deadline(serve):
    data = b"x" * 78 + b"\r\n"
    server = serve([("drip", data * 250)])  # 20 kB
    server.drip(chunk=1000, delay=0.05, commands={"RETR"})  # ~1 s in total
    with session(server, timeout=1.0, command_deadline=0.3) as pop:
        started = time.monotonic()
        with pytest.raises(NetworkError, match=r"RETR 1 timed out.*command deadline"):
            pop.retr(1, io.BytesIO())
        assert time.monotonic() - started < 0.9
        assert not pop.connected


def test_size_hint_extends_the_retr_deadline(serve):
    data = (b"x" * 78 + b"\r\n") * 100  # 8 kB in 8 drips of 1 kB, ~0.4 s
    server = serve([("drip", data)])
    server.drip(chunk=1000, delay=0.05, commands={"RETR"})
    with session(server, timeout=1.0, command_deadline=0.2) as pop:
        # 64 KiB/s is the slowest rate we wait for: +1 s for a 64 KiB hint
        assert fetch(pop, 1, size_hint=64 * 1024) == data


# ------------------------------------------------------------------- TLS


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for localhost and 127.0.0.1, made by openssl."""
    openssl = shutil.which("openssl")
    assert openssl, "the openssl command is needed to make a test certificate"
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture
def tls_server_context(certificate):
    cert, key = certificate
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


def test_implicit_tls_with_ca_file(serve, certificate, tls_server_context):
    server = serve(
        [(None, b"secret mail\r\n")],
        tls_context=tls_server_context,
        implicit_tls=True,
        apop_timestamp=APOP_TS,
    )
    with session(server, tls="implicit", ca_file=str(certificate[0])) as pop:
        assert pop.secure
        assert fetch(pop, 1) == b"secret mail\r\n"
    # over TLS, auto prefers SASL PLAIN even though the greeting offers APOP
    assert server.log[1] == "AUTH PLAIN ****"


def test_untrusted_certificate_is_a_tls_error(serve, tls_server_context):
    server = serve(tls_context=tls_server_context, implicit_tls=True)
    pop = client(server, tls="implicit")
    with pytest.raises(
        TLSError, match=rf"127\.0\.0\.1:{server.port}: TLS certificate .*not accepted"
    ):
        pop.connect()
    assert not pop.connected


def test_hostname_mismatch_is_a_tls_error(serve, certificate, tls_server_context):
    server = serve(tls_context=tls_server_context, implicit_tls=True)
    pop = client(
        server, tls="implicit", ca_file=str(certificate[0]), server_hostname="pop.example.com"
    )
    with pytest.raises(TLSError, match=r"pop\.example\.com"):
        pop.connect()


def test_verify_tls_false_connects_and_warns(serve, tls_server_context, caplog):
    server = serve(tls_context=tls_server_context, implicit_tls=True)
    with caplog.at_level(logging.WARNING, logger="archiver.pop3"):
        with session(server, tls="implicit", verify_tls=False) as pop:
            assert pop.secure
    assert any("verification is disabled" in r.getMessage() for r in caplog.records)


def test_implicit_tls_against_a_plain_server(serve):
    server = serve()
    t0 = time.monotonic()
    with pytest.raises(TLSError, match='TLS handshake failed.*plain POP3; set tls = "starttls"'):
        client(server, tls="implicit", timeout=30.0).connect()
    assert time.monotonic() - t0 < 5  # at once, not after the 30 s timeout


@pytest.mark.parametrize("tls", ["starttls", "none"])
def test_clear_text_modes_against_an_implicit_tls_port_fail_fast_with_a_hint(
        serve, tls_server_context, tls):
    """A TLS port says nothing until the client's handshake: after GREETING_PROBE_AFTER
    seconds of silence the client speaks, gets a TLS alert, and names the setting."""
    server = serve(tls_context=tls_server_context, implicit_tls=True)
    t0 = time.monotonic()
    with pytest.raises(TLSError, match='(answered in TLS|hung up when spoken to): this port expects implicit TLS; '
                                       'set tls = "implicit"'):
        client(server, tls=tls, timeout=60.0, command_deadline=120.0).connect()
    assert time.monotonic() - t0 < pop3.GREETING_PROBE_AFTER + 3


def _slow_greeter(delay: float, greet: bool = True):
    """A one-connection POP3 server that greets only after ``delay`` seconds (or never)
    and answers each CAPA it reads; returns (port, received lines, thread)."""
    listener = socket.create_server(("127.0.0.1", 0))
    received: list[bytes] = []

    def serve_one():
        conn, _ = listener.accept()
        with conn, listener:
            time.sleep(delay)
            if not greet:
                conn.settimeout(10)
                while conn.recv(1024):
                    pass
                return
            conn.sendall(b"+OK slow server ready\r\n")
            buf = b""
            conn.settimeout(10)
            while True:
                while b"\n" not in buf:
                    chunk = conn.recv(1024)
                    if not chunk:
                        return
                    buf += chunk
                line, buf = buf.split(b"\n", 1)
                received.append(line.rstrip(b"\r"))
                if line.startswith(b"CAPA"):
                    conn.sendall(b"+OK\r\nUSER\r\nUIDL\r\n.\r\n")
                elif line.startswith(b"QUIT"):
                    conn.sendall(b"+OK bye\r\n")
                    return

    thread = threading.Thread(target=serve_one, daemon=True)
    thread.start()
    return listener.getsockname()[1], received, thread


def test_a_slow_greeting_still_works_and_the_early_capa_is_read_once():
    port, received, thread = _slow_greeter(pop3.GREETING_PROBE_AFTER + 0.5)
    pop = POP3Client("127.0.0.1", port, tls="none", timeout=10.0)
    pop.connect()
    assert pop.greeting == "slow server ready"
    assert pop.capabilities == {"USER": [], "UIDL": []}
    pop.quit()
    thread.join(5)
    assert received == [b"CAPA", b"QUIT"]  # CAPA sent once, before the greeting


def test_a_silent_server_times_out_with_the_implicit_tls_hint():
    port, _, thread = _slow_greeter(0, greet=False)
    pop = POP3Client("127.0.0.1", port, tls="starttls", timeout=pop3.GREETING_PROBE_AFTER + 1)
    with pytest.raises(NetworkError, match='greeting timed out.*set tls = "implicit"'):
        pop.connect()
    thread.join(15)


def test_starttls_upgrades_and_reissues_capa(serve, certificate, tls_server_context):
    server = serve([(None, b"x\r\n")], tls_context=tls_server_context)
    with session(server, tls="starttls", ca_file=str(certificate[0])) as pop:
        assert pop.secure
        assert "STLS" not in pop.capabilities  # the post-TLS CAPA
    assert server.log == ["CAPA", "STLS", "CAPA", "AUTH PLAIN ****"]


def test_starttls_not_offered_never_continues_in_clear(serve):
    server = serve([(None, b"x\r\n")])
    pop = client(server, tls="starttls")
    with pytest.raises(TLSError, match="does not offer STLS; refusing to continue in clear text"):
        pop.connect()
    assert not pop.connected
    time.sleep(0.05)
    assert server.log == ["CAPA"]


def test_starttls_refused_or_injected(serve, tls_server_context):
    server = serve([(None, b"x\r\n")], tls_context=tls_server_context)
    server.script("STLS", lambda s, a: "-ERR not today", times=1)
    with pytest.raises(TLSError, match="refused STLS"):
        client(server, tls="starttls").connect()
    server.script("STLS", lambda s, a: b"+OK Begin TLS\r\n+OK injected\r\n", times=1)
    with pytest.raises(TLSError, match="possible command injection"):
        client(server, tls="starttls").connect()
    assert "USER user" not in server.log and "PASS ****" not in server.log


# --------------------------------------------------------------- secrets


def test_credentials_never_reach_errors_or_logs(serve, caplog, certificate):
    password, token = "s3cr3t-Pa55", "ya29.token-" + "Z" * 400
    encoded = [
        base64.b64encode(b"\0user\0" + password.encode()).decode(),
        base64.b64encode(f"user=user\x01auth=Bearer {token}\x01\x01".encode()).decode(),
        hashlib.md5((APOP_TS + password).encode()).hexdigest(),
    ]
    errors: list[str] = []
    caplog.set_level(logging.DEBUG, logger="archiver.pop3")

    def attempt(server, secret, auth):
        pop = client(server)
        try:
            pop.connect()
            pop.login("user", secret, auth)
            pop.stat()
            pop.quit()
        except CollectError as exc:
            errors.append(str(exc))
            errors.append(repr(exc))
        finally:
            pop.close()

    good = serve([(None, b"x\r\n")], users={"user": password}, apop_timestamp=APOP_TS)
    for auth in ("user", "apop", "plain"):
        attempt(good, password, auth)
    tokens = serve([(None, b"x\r\n")], users={"user": token})
    attempt(tokens, token, "xoauth2")
    bad = serve([(None, b"x\r\n")], users={"user": "other"}, apop_timestamp=APOP_TS)
    for auth in ("user", "apop", "plain"):
        attempt(bad, password, auth)
    attempt(bad, token, "xoauth2")
    # a server that echoes what it got must not make us leak it
    echo = serve([(None, b"x\r\n")])
    echo.script("PASS", lambda s, arg: f"-ERR [AUTH] wrong password {arg!r}")
    echo.script("AUTH", lambda s, arg: f"-ERR [AUTH] cannot decode {arg}")
    attempt(echo, password, "user")
    attempt(echo, password, "plain")

    assert len(errors) == 2 * 6
    trace = [r.getMessage() for r in caplog.records]
    assert any("PASS ****" in line for line in trace)
    assert any("AUTH XOAUTH2" in line for line in trace)
    for text in errors + trace + good.log + bad.log + tokens.log + echo.log:
        for secret in [password, token, *encoded]:
            assert secret not in text, f"secret leaked into {text!r}"
    assert any("wrong password '****'" in e for e in errors)


# ------------------------------------------------------------ server bits


def test_concurrent_sessions_and_snapshot_semantics(serve):
    server = serve([("a", b"a\r\n"), ("b", b"b\r\n")])
    first, second = session(server), session(server)
    assert first.dele_many([1]) == [1]
    first.quit()
    # the second session keeps its snapshot: message 1 is still its message 1
    assert fetch(second, 1) == b"a\r\n"
    server.add_message(b"c\r\n", uidl="c")
    assert second.stat()[0] == 2
    second.quit()
    assert server.mailbox == [("b", b"b\r\n"), ("c", b"c\r\n")]
    assert server.stats["sessions"] == 2
