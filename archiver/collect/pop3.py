"""A POP3 client written for archiving: byte-exact, fast, strict about TLS.

This module speaks POP3 over a plain ``socket`` (optionally wrapped by
``ssl``); it does not use :mod:`poplib`, whose line-by-line reader is too slow
for pipelined collection and whose errors are not ours. It imports nothing of
archiver except :mod:`archiver.errors`, so it can be tested and reused alone.

Standards followed
------------------
* RFC 1939 (POP3): greeting, USER/PASS, APOP, STAT, LIST, UIDL, RETR, DELE,
  NOOP, QUIT; deletions happen only when QUIT is answered ``+OK`` (the UPDATE
  state), which is why :meth:`POP3Client.quit` raises unless it gets ``+OK``
  and why closing the client never sends QUIT.
* RFC 2449 (CAPA, response codes, PIPELINING): capabilities are read after
  the greeting and again after STLS; ``[IN-USE]``, ``[LOGIN-DELAY]`` and
  ``[SYS/TEMP]``/``[SYS/PERM]`` are mapped to our error classes; RETR and
  DELE are pipelined when the server lists PIPELINING.
* RFC 2595 (STLS): with ``tls="starttls"`` the server must list STLS; if it
  does not, or refuses it, we raise :class:`~archiver.errors.TLSError` and
  never go on in clear text. Bytes received after the ``+OK`` to STLS and
  before the handshake are refused (command-injection defence).
* RFC 6856 (UTF8): when CAPA lists ``UTF8`` the client sends ``UTF8``
  before logging in, so servers that otherwise replace messages with 8-bit
  headers by a downgraded stand-in (Courier) send them as stored.
* RFC 3206 (``[AUTH]``, ``[SYS/...]``, AUTH-RESP-CODE): see *Errors* below.
* RFC 5034 (SASL AUTH): PLAIN and XOAUTH2. The initial response is sent on
  the AUTH line only when the whole line stays within 255 octets; otherwise
  ``AUTH MECH`` is sent alone and the response follows the ``+`` continuation.

The multi-line reader (what is accepted, exactly)
-------------------------------------------------
A *line* ends at LF; the CR before it, if any, is part of the line end.
After a ``+OK`` status line, the body is read up to the first line that is
exactly ``.`` followed by ``CRLF`` or by a bare ``LF`` -- i.e. the terminator
is ``"\\n.\\r\\n"`` or ``"\\n.\\n"`` (or ``".\\r\\n"`` / ``".\\n"`` right at the
start of the body). Treating bare LF as a line end tolerates servers that
send bare-LF replies; RFC 1939 servers (Dovecot) always send CRLF, and a
server that stuffs dots must then stuff them after any LF (ours does).

The body handed to the sink is every byte before the terminator line,
including the line end before it, with dot-unstuffing applied: a line that
starts with ``..`` loses its first dot. A line that starts with one dot
followed by anything other than a line end is kept unchanged (a server
that forgot to stuff does not make us drop bytes). Nothing else is altered:
CRLF, bare LF, bare CR and NUL bytes pass through as sent, lines of any
length work (a 20 MB line streams through bounded memory).

The reader works on whole receive blocks (256 KiB) with ``bytes.find`` and
``bytes.replace``; it never loops over lines in Python, carries at most two
bytes across block boundaries, and writes each completed block to the sink
in one ``write`` call. Status lines longer than 64 KiB are a protocol error.

Timeouts
--------
Every socket read and write uses ``timeout``. In addition each command has
an overall deadline measured with :func:`time.monotonic`:
``command_deadline`` seconds, extended for RETR by ``size_hint / 64 KiB``
seconds. A server that keeps the connection alive by dripping bytes fails
with :class:`~archiver.errors.NetworkError` ("... timed out ..."). For a
pipelined RETR the deadline starts when the client starts reading that
command's reply (after the previous reply was read), so time the caller
spends storing a message is not charged to the next one.

Errors
------
Everything raised is an :class:`~archiver.errors.CollectError`; library
exceptions are translated at this boundary. Messages name ``host:port``,
the command and the server's text, with the secret (and anything derived
from it) replaced by ``****``; the password, token and PASS/AUTH/APOP
command lines never appear in errors or in the protocol trace (logger
``archiver.pop3`` at DEBUG).

* ``[AUTH]`` -> :class:`AuthError`.
* ``[IN-USE]``, ``[LOGIN-DELAY]``, ``[SYS/TEMP]`` -> :class:`ServerBusy`.
* ``[SYS/PERM]`` -> :class:`ServerPermanentError`.
* A login failure without one of those codes: wording about locks, a busy
  mailbox, "in use", "temporary" or "try again later" -> ServerBusy;
  otherwise :class:`AuthError` when the server does not list AUTH-RESP-CODE.
  A server that lists AUTH-RESP-CODE promises ``[AUTH]`` for every
  credential problem (RFC 3206 section 4), so a failure without it is about
  something else and raises :class:`ServerPermanentError`.
* A greeting of ``-ERR`` without a code -> ServerBusy (servers refuse at the
  greeting for connection limits and load).
* socket errors, EOF, timeouts -> :class:`NetworkError`; TLS handshake and
  certificate problems, missing STLS -> :class:`TLSError`.
* replies a POP3 server must not send -> :class:`ProtocolError`; no UIDL
  command -> :class:`UIDLUnsupported`; a message over ``max_size`` ->
  :class:`MessageTooLarge` (the session stays usable).
* A configured ``auth`` mechanism the server does not offer raises
  :class:`AuthError` naming what the server offers: logging in cannot
  succeed as configured, retrying will not help, and the fix is in the
  account's ``auth`` setting -- it is not the server violating POP3, which
  is what ProtocolError means.

After a network or protocol failure in the middle of a reply the connection
is closed (the stream is out of step); after a ``-ERR`` for one command the
session stays usable.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import re
import select
import socket
import ssl
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass
from typing import Protocol

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

__all__ = ["POP3Client", "RetrResult", "Sink"]

log = logging.getLogger("archiver.pop3")

#: bytes asked for per recv(); large so that many pipelined replies arrive per call
_RECV_SIZE = 256 * 1024
#: a status line longer than this is a protocol error (listings are bounded by _MAX_LISTING)
_MAX_STATUS_LINE = 64 * 1024
#: RFC 2449 section 4 / RFC 5034 section 4: command line limit, CRLF included
_MAX_COMMAND_LINE = 255
#: RETR deadlines grow by size_hint / this many bytes per second
_RETR_MIN_RATE = 64 * 1024

_TLS_MODES = ("implicit", "starttls", "none")
_MECHANISMS = ("user", "apop", "plain", "xoauth2")

_APOP_TIMESTAMP = re.compile(rb"<[^<>\s]+@[^<>\s]+>")
#: RFC 2449 EXPIRE written without its space, as GNU Mailutils does ("EXPIRENEVER", "EXPIRE0")
_EXPIRE_GLUED = re.compile(r"^EXPIRE(NEVER|\d+)$", re.IGNORECASE)
#: A POP3 server greets at once; a port that expects implicit TLS says nothing
#: until the client's handshake. After this long without a greeting on a
#: clear-text connection the client speaks first to find out (see _plain_greeting).
GREETING_PROBE_AFTER = 2.0
#: TLS record types a TLS server answers with (alert, handshake), in the first byte
_TLS_RECORD_TYPES = (0x15, 0x16)
#: OpenSSL's reasons when the peer's first bytes are not TLS (a plain POP3 greeting)
_NOT_TLS_REASONS = ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "UNKNOWN_PROTOCOL",
                    "PACKET_LENGTH_TOO_LONG", "HTTP_REQUEST")
_RESP_CODE = re.compile(r"^-ERR\s*\[([^\]\s]*)\]", re.IGNORECASE)
_BUSY_WORDING = re.compile(
    r"lock|busy|in[ -]use|temporar|try again later|try later|again later|too many",
    re.IGNORECASE,
)
# UIDL/LIST lines: "msgnum uid" / "msgnum size [more]"; digits bounded so a
# hostile server cannot make int() choke on a million-digit number.
_UIDL_LINE = re.compile(r"^[ \t]*(\d{1,15})[ \t]+(\S+)[ \t]*\r?$", re.MULTILINE | re.ASCII)
_UIDL_LOOSE = re.compile(r"[ \t]*(\d{1,15})(?:[ \t]+(.*?))?[ \t]*\r?", re.ASCII)
_LIST_LINE = re.compile(
    r"^[ \t]*(\d{1,15})[ \t]+(\d{1,20})(?:[ \t][^\r\n]*)?\r?$", re.MULTILINE | re.ASCII
)


class Sink(Protocol):
    """Anything with ``write(bytes)``: a file, ``io.BytesIO``, a hashing spool."""

    def write(self, data: bytes, /) -> object: ...


@dataclass
class RetrResult:
    """The outcome of one RETR inside :meth:`POP3Client.retr_many`.

    ``size`` is the message size in octets after dot-unstuffing (counting
    bytes discarded past ``max_size``); ``error`` is set for a per-message
    failure (``-ERR`` for this message, :class:`MessageTooLarge`), in which
    case the sink's content must be discarded.
    """

    msgnum: int
    sink: object
    size: int
    error: CollectError | None = None


class _Collect(list[bytes]):
    """An in-memory sink for the small multi-line replies (CAPA, UIDL, LIST)."""

    write = list.append


class POP3Client:
    """One POP3 session. Not thread-safe; one client per connection.

    Typical use::

        with POP3Client(host, 995) as pop:
            pop.connect()
            pop.login(user, secret)
            for msgnum, uid in pop.uidl(): ...
            for result in pop.retr_many(wanted, make_spool): ...
            pop.dele_many(due)
            pop.quit()          # only now are the deletions real

    Leaving the ``with`` block closes the socket without QUIT, so an
    exception never commits deletions by accident.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        tls: str = "implicit",
        verify_tls: bool = True,
        ca_file: str | None = None,
        timeout: float = 60.0,
        command_deadline: float = 300.0,
        server_hostname: str | None = None,
    ) -> None:
        if tls not in _TLS_MODES:
            raise ValueError(f"tls must be one of {', '.join(_TLS_MODES)}, got {tls!r}")
        self.host = host
        self.port = port
        self.tls = tls
        self.verify_tls = verify_tls
        self.ca_file = ca_file
        self.timeout = timeout
        self.command_deadline = command_deadline
        self.server_hostname = server_hostname or host
        #: upper-cased capability name -> arguments (SASL mechanisms upper-cased)
        self.capabilities: dict[str, list[str]] = {}
        #: the server's greeting line, without "+OK"
        self.greeting: str = ""
        self._capa_answered = False
        #: the server accepted RFC 6856 UTF8: it sends messages as stored, 8-bit headers too
        self.utf8 = False
        self._apop_timestamp: bytes | None = None
        self._sock: socket.socket | None = None
        self._secure = False
        self._logged_in = False
        self._data = b""
        self._off = 0
        self._sock_timeout: float | None = None
        self._secrets: list[str] = []

    # ------------------------------------------------------------------ basics

    @property
    def where(self) -> str:
        """``host:port`` as used in every error message."""
        return f"{self.host}:{self.port}"

    @property
    def connected(self) -> bool:
        return self._sock is not None

    @property
    def secure(self) -> bool:
        """True once the connection is protected by TLS."""
        return self._secure

    def __enter__(self) -> POP3Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Drop the connection without QUIT (so nothing is deleted). Idempotent."""
        sock, self._sock = self._sock, None
        self._data = b""
        self._off = 0
        self._logged_in = False
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    # ---------------------------------------------------------- connect / TLS

    def connect(self) -> None:
        """Open TCP (+ implicit TLS), read the greeting, CAPA; STLS + CAPA if configured."""
        if self._sock is not None:
            raise ProtocolError(f"{self.where}: already connected")
        deadline = time.monotonic() + self.command_deadline
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        except TimeoutError as exc:
            raise NetworkError(
                f"{self.where}: connecting timed out after {self.timeout:g}s"
            ) from exc
        except OSError as exc:
            raise NetworkError(f"{self.where}: cannot connect: {_os_reason(exc)}") from exc
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        self._sock = sock
        self._sock_timeout = self.timeout
        self._secure = False
        self._data, self._off = b"", 0
        try:
            capa_sent = False
            if self.tls == "implicit":
                self._start_tls()
                line = self._read_status_line(deadline, "greeting")
            else:
                line, capa_sent = self._plain_greeting(deadline)
            if not _is_ok(line):
                raise self._reply_error(line, "greeting", default=ServerBusy)
            self.greeting = _text(line[3:]).strip()
            match = _APOP_TIMESTAMP.search(line)
            self._apop_timestamp = match.group(0) if match else None
            self._capa(sent=capa_sent)
            if self.tls == "starttls":
                self._stls()
            if "UTF8" in self.capabilities:
                self._utf8()
        except BaseException:
            self.close()
            raise

    def _plain_greeting(self, deadline: float) -> tuple[bytes, bool]:
        """The greeting on a connection that starts in clear text, and whether CAPA
        was already sent.

        A POP3 server greets at once; a port that expects implicit TLS waits
        silently for the client's handshake, which would otherwise cost the
        whole timeout and end in a puzzling error. So after
        GREETING_PROBE_AFTER seconds of silence we send CAPA: a TLS server
        answers with a TLS alert or hangs up (we say to set tls = "implicit"),
        a POP3 server that is merely slow greets and then answers that CAPA,
        whose reply the caller reads as its own.
        """
        assert self._sock is not None
        wait = min(GREETING_PROBE_AFTER, self.timeout)
        try:
            ready, _, _ = select.select([self._sock], [], [], wait)
        except (OSError, ValueError):
            ready = [self._sock]  # let the normal read report it
        if ready:
            return self._read_status_line(deadline, "greeting"), False
        advice = (f'set tls = "implicit" for it, or keep tls = "{self.tls}" and use the '
                  "server's plain POP3 port (usually 110)")
        self._send(b"CAPA\r\n", f"CAPA (no greeting after {wait:g}s)")
        sock = self._sock
        try:
            sock.settimeout(max(0.001, min(self.timeout, deadline - time.monotonic())))
            self._sock_timeout = None
            data = sock.recv(_RECV_SIZE)
        except TimeoutError as exc:
            self.close()
            raise NetworkError(
                f"{self.where}: greeting timed out: no data for {self.timeout:g}s; if this "
                f"port expects implicit TLS (usually 995), {advice}") from exc
        except OSError:
            data = b""  # reset: what a TLS server does with bytes that are not TLS
        if not data or data[0] in _TLS_RECORD_TYPES:
            self.close()
            answer = "answered in TLS" if data else "hung up when spoken to"
            raise TLSError(
                f"{self.where}: the server did not greet in clear text and {answer}: this "
                f"port expects implicit TLS; {advice}")
        self._data, self._off = data, 0
        return self._read_status_line(deadline, "greeting"), True

    def _tls_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        if self.ca_file:
            try:
                context.load_verify_locations(cafile=self.ca_file)
            except (OSError, ssl.SSLError) as exc:
                raise TLSError(
                    f"{self.where}: cannot load ca_file {self.ca_file}: {_os_reason(exc)}"
                ) from exc
        if not self.verify_tls:
            log.warning(
                "%s: TLS certificate verification is disabled (verify_tls = false); "
                "the connection is encrypted but the server is not authenticated",
                self.where,
            )
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def _start_tls(self) -> None:
        assert self._sock is not None
        context = self._tls_context()
        try:
            self._sock = context.wrap_socket(self._sock, server_hostname=self.server_hostname)
        except ssl.SSLCertVerificationError as exc:
            reason = exc.verify_message or exc.reason or str(exc)
            raise TLSError(
                f"{self.where}: TLS certificate of {self.server_hostname} not accepted: "
                f"{reason} (set ca_file to trust a private CA)"
            ) from exc
        except ssl.SSLError as exc:
            hint = ""
            if self.tls == "implicit" and (exc.reason or "") in _NOT_TLS_REASONS:
                hint = (': the server answered in clear text, so this port speaks plain '
                        'POP3; set tls = "starttls" for it (STLS on this port; tls = "none" '
                        "if the server has no TLS at all), or keep tls = \"implicit\" and "
                        "use the server's POP3S port (usually 995)")
            raise TLSError(
                f"{self.where}: TLS handshake failed: {exc.reason or exc}{hint}") from exc
        except TimeoutError as exc:
            raise NetworkError(f"{self.where}: TLS handshake timed out") from exc
        except OSError as exc:
            raise NetworkError(
                f"{self.where}: connection lost during the TLS handshake: {_os_reason(exc)}"
            ) from exc
        self._secure = True
        self._sock_timeout = self.timeout

    def _stls(self) -> None:
        if "STLS" not in self.capabilities:
            raise TLSError(
                f'{self.where}: tls = "starttls" is configured but the server does not '
                'offer STLS; refusing to continue in clear text (use tls = "implicit" '
                "on port 995 if the server supports it)"
            )
        line = self._simple("STLS")
        if not _is_ok(line):
            raise TLSError(
                f"{self.where}: the server refused STLS ({self._redact(_text(line))}); "
                "refusing to continue in clear text"
            )
        if self._off < len(self._data):
            raise TLSError(
                f"{self.where}: the server sent data after accepting STLS and before the "
                "TLS handshake (possible command injection); refusing to continue"
            )
        self._data, self._off = b"", 0
        self._start_tls()
        self._capa()

    def _utf8(self) -> None:
        """RFC 6856: enable UTF-8 mode (AUTHORIZATION state, before login).

        Without it a server may not send a message with raw UTF-8 headers as
        stored: Courier then serves a "Cannot display Unicode content" wrapper
        in its place (with LIST still giving the original size), which must
        never be archived as the message. A refusal is not an error: such
        servers send what they store.
        """
        line = self._simple("UTF8")
        self.utf8 = _is_ok(line)
        if not self.utf8:
            log.info("%s: the server lists UTF8 but refused it: %s", self.where,
                     self._redact(_text(line)))

    def capa(self) -> dict[str, list[str]]:
        """Re-issue CAPA and return the capabilities.

        After login a server may announce per-user values (RFC 2449:
        ``EXPIRE 30 USER`` before login means "ask again after it").
        """
        self._require_connected()
        self._capa()
        return self.capabilities

    def _capa(self, *, sent: bool = False) -> None:
        if not sent:
            self._send(b"CAPA\r\n", "CAPA")
        deadline = time.monotonic() + self.command_deadline
        line = self._read_status_line(deadline, "CAPA")
        self.capabilities = {}
        if not _is_ok(line):
            # RFC 1939-only server: no CAPA. Not an error; we know nothing.
            self._capa_answered = False
            return
        body = self._read_small_body(deadline, "CAPA")
        caps: dict[str, list[str]] = {}
        for raw in body.split(b"\n"):
            words = _text(raw).split()
            if not words:
                continue
            name = words[0].upper()
            args = words[1:]
            glued = _EXPIRE_GLUED.match(name)
            if glued:  # "EXPIRENEVER" / "EXPIRE0": read as RFC 2449 "EXPIRE NEVER" / "EXPIRE 0"
                name, args = "EXPIRE", [glued.group(1), *args]
            if name == "SASL":
                args = [a.upper() for a in args]
            caps[name] = args
        self.capabilities = caps
        self._capa_answered = True

    # ---------------------------------------------------------- authentication

    def login(self, username: str, secret: str, auth: str = "auto") -> str:
        """Authenticate; returns the mechanism used: ``user``, ``apop``, ``plain``, ``xoauth2``.

        ``secret`` is the password, or the OAuth2 access token for xoauth2.
        ``auth="auto"`` picks: APOP on a clear-text connection whose greeting
        has a timestamp; else SASL PLAIN if listed; else USER (listed, or the
        server has no CAPA); else APOP; never XOAUTH2. When auto's APOP is
        refused with a plain ``-ERR`` or ``[AUTH]`` (a greeting timestamp does
        not prove the server has an APOP secret for the user: GNU Mailutils
        always sends one and answers ``-ERR [AUTH] Bad login``, as for a wrong
        password), the next of PLAIN and USER is tried on the same connection,
        so the TLS state never changes; ``[IN-USE]``, ``[SYS/...]``,
        ``[LOGIN-DELAY]`` or busy wording end the login.
        """
        self._require_connected()
        if self._logged_in:
            raise ProtocolError(f"{self.where}: already logged in")
        auth = auth.lower()
        if auth != "auto" and auth not in _MECHANISMS:
            raise ValueError(f"auth must be auto or one of {', '.join(_MECHANISMS)}, got {auth!r}")
        for value, what in ((username, "username"), (secret, "password/token")):
            if any(c in value for c in "\r\n\0"):
                raise AuthError(
                    f"{self.where}: the {what} contains a line break or NUL byte and "
                    "cannot be sent to a POP3 server; check the account's credentials"
                )
        if secret:
            self._secrets.append(secret)
        mechanism = self._choose_mechanism(auth)
        if mechanism == "apop" and auth == "auto":
            refusal = self._login_apop(username, secret, may_fall_back=True)
            if refusal is None:
                self._logged_in = True
                return mechanism
            offers = self._offers()
            fallback = next((m for m in ("plain", "user") if offers[m]), None)
            if fallback is None:
                raise refusal
            log.info("%s: APOP refused (%s); trying %s", self.where, refusal, fallback.upper())
            try:
                self._login_with(fallback, username, secret)
            except AuthError as exc:  # say what was tried, both times
                raise AuthError(f"{exc}; APOP had been refused before: {refusal}") from exc
            self._logged_in = True
            return fallback
        self._login_with(mechanism, username, secret)
        self._logged_in = True
        return mechanism

    def _login_with(self, mechanism: str, username: str, secret: str) -> None:
        if mechanism == "user":
            self._login_user(username, secret)
        elif mechanism == "apop":
            self._login_apop(username, secret)
        elif mechanism == "plain":
            response = b"\0" + username.encode() + b"\0" + secret.encode()
            self._sasl("PLAIN", response)
        else:
            response = f"user={username}\x01auth=Bearer {secret}\x01\x01".encode()
            self._sasl("XOAUTH2", response)

    def _offers(self) -> dict[str, bool]:
        sasl = self.capabilities.get("SASL", [])
        return {
            "user": "USER" in self.capabilities or not self._capa_answered,
            "apop": self._apop_timestamp is not None,
            "plain": "PLAIN" in sasl,
            "xoauth2": "XOAUTH2" in sasl,
        }

    def _describe_offers(self) -> str:
        parts = []
        if "USER" in self.capabilities:
            parts.append("USER")
        elif not self._capa_answered:
            parts.append("USER (assumed: no CAPA)")
        if self._apop_timestamp is not None:
            parts.append("APOP")
        sasl = self.capabilities.get("SASL")
        if sasl:
            parts.append("SASL " + " ".join(sasl))
        return ", ".join(parts) if parts else "no login mechanism we know"

    def _choose_mechanism(self, auth: str) -> str:
        offers = self._offers()
        if auth != "auto":
            if not offers[auth]:
                raise AuthError(
                    f'{self.where}: auth = "{auth}" is configured but the server does not '
                    f"offer it (it offers: {self._describe_offers()}); change the account's "
                    "auth setting"
                )
            return auth
        if not self._secure and offers["apop"]:
            return "apop"
        for mechanism in ("plain", "user", "apop"):
            if offers[mechanism]:
                return mechanism
        raise AuthError(
            f"{self.where}: no login mechanism can be chosen automatically (the server "
            f"offers: {self._describe_offers()}); set the account's auth explicitly"
        )

    def _login_user(self, username: str, secret: str) -> None:
        line = self._simple("USER " + username)
        if not _is_ok(line):
            raise self._reply_error(line, "login (USER)", login=True)
        line = self._simple("PASS " + secret, masked="PASS ****")
        if not _is_ok(line):
            raise self._reply_error(line, "login (USER/PASS)", login=True)

    def _login_apop(self, username: str, secret: str, *,
                    may_fall_back: bool = False) -> CollectError | None:
        """APOP. Raises on refusal, except that with ``may_fall_back`` a refusal
        about the credentials (``-ERR`` with no response code or ``[AUTH]``, and
        no busy wording) is returned instead, the session still usable."""
        if self._apop_timestamp is None:  # pragma: no cover - guarded by _choose_mechanism
            raise AuthError(f"{self.where}: the greeting has no APOP timestamp")
        digest = hashlib.md5(self._apop_timestamp + secret.encode()).hexdigest()
        self._secrets.append(digest)
        line = self._simple(f"APOP {username} {digest}", masked=f"APOP {username} ****")
        if _is_ok(line):
            return None
        error = self._reply_error(line, "login (APOP)", login=True)
        text = _text(line)
        code = _resp_code(text)
        if (may_fall_back and self._sock is not None and line.startswith(b"-ERR")
                and code in (None, "AUTH") and not _BUSY_WORDING.search(text)):
            return AuthError(f"{self.where}: login (APOP) failed: {self._redact(text)}")
        raise error

    def _sasl(self, mechanism: str, response: bytes) -> None:
        encoded = base64.b64encode(response)
        self._secrets.append(encoded.decode("ascii"))
        what = f"login (AUTH {mechanism})"
        deadline = time.monotonic() + self.command_deadline
        command = b"AUTH " + mechanism.encode() + b" " + encoded + b"\r\n"
        if len(command) <= _MAX_COMMAND_LINE:
            self._send(command, f"AUTH {mechanism} ****")
        else:
            # RFC 5034 section 4: too long for the command line; wait for "+".
            self._send(b"AUTH " + mechanism.encode() + b"\r\n", f"AUTH {mechanism}")
            line = self._read_status_line(deadline, what)
            if not _is_continuation(line):
                if _is_ok(line) or not line.startswith(b"-"):
                    self.close()
                    raise ProtocolError(
                        f"{self.where}: expected a '+' continuation after AUTH {mechanism}, "
                        f"got {self._redact(_text(line))!r}"
                    )
                raise self._reply_error(line, what, login=True)
            self._send(encoded + b"\r\n", "****")
        line = self._read_status_line(deadline, what)
        detail = ""
        if _is_continuation(line):
            if mechanism == "XOAUTH2":
                # The server reports a failed token as a continuation carrying a
                # base64 JSON error; the client answers with an empty line and
                # then gets the final -ERR.
                detail = _xoauth2_detail(line[1:].strip())
                self._send(b"\r\n", "(empty response to the XOAUTH2 error)")
            else:
                self._send(b"*\r\n", "* (cancel)")
            line = self._read_status_line(deadline, what)
        if _is_ok(line):
            return
        if not line.startswith(b"-"):
            self.close()
            raise ProtocolError(
                f"{self.where}: unexpected reply to AUTH {mechanism}: {self._redact(_text(line))!r}"
            )
        raise self._reply_error(line, what, login=True, detail=detail)

    # ------------------------------------------------------- simple commands

    def stat(self) -> tuple[int, int]:
        """STAT: (message count, maildrop size in octets)."""
        line = self._simple("STAT")
        if not _is_ok(line):
            raise self._reply_error(line, "STAT")
        words = line.split()
        try:
            return int(words[1]), int(words[2])
        except (IndexError, ValueError):
            self.close()
            raise ProtocolError(
                f"{self.where}: malformed STAT reply {self._redact(_text(line))!r}"
            ) from None

    def noop(self) -> None:
        line = self._simple("NOOP")
        if not _is_ok(line):
            raise self._reply_error(line, "NOOP")

    def dele(self, msgnum: int) -> None:
        """Mark one message deleted; it is removed only when QUIT gets +OK."""
        line = self._simple(f"DELE {int(msgnum)}")
        if not _is_ok(line):
            raise self._reply_error(line, f"DELE {msgnum}")

    def quit(self) -> None:
        """QUIT: commit deletions. Returns only if the server answered +OK.

        Raises :class:`ProtocolError` for ``-ERR`` (whatever its response
        code: the caller's only question is "were the deletions committed?")
        and :class:`NetworkError` if the reply never comes; in both cases
        treat the deletions as not done. The connection is closed either way.
        """
        try:
            line = self._simple("QUIT")
            if not _is_ok(line):
                raise ProtocolError(
                    f"{self.where}: QUIT failed, so the server did not commit the "
                    f"deletions of this session: {self._redact(_text(line))}"
                )
        finally:
            self.close()

    def uidl(self) -> list[tuple[int, str]]:
        """UIDL: ``[(msgnum, uid), ...]`` in server order, raw and unvalidated.

        UIDs are decoded as Latin-1 (lossless: ``uid.encode("latin-1")``
        gives the bytes sent). Duplicates, over-long UIDs and control
        characters are returned as they are; the caller decides. A UID with
        spaces inside yields the rest of the line with the spaces around it
        removed; a line with a number and nothing else yields ``""``.
        Raises :class:`UIDLUnsupported` if the server refuses UIDL.
        """
        deadline = time.monotonic() + self.command_deadline
        self._send(b"UIDL\r\n", "UIDL")
        line = self._read_status_line(deadline, "UIDL")
        if not _is_ok(line):
            text = self._redact(_text(line))
            code = _resp_code(text)
            if code and _code_class(code) is not None:
                raise self._reply_error(line, "UIDL")
            raise UIDLUnsupported(
                f"{self.where}: the server does not support UIDL ({text}); messages "
                "cannot be tracked across passes, so leave-on-server is impossible"
            )
        body = self._read_small_body(deadline, "UIDL").decode("latin-1")
        entries = self._parse_listing("UIDL", body, _UIDL_LINE, _UIDL_LOOSE)
        return [(int(num), uid) for num, uid in entries]

    def list_sizes(self) -> dict[int, int]:
        """LIST: ``{msgnum: size in octets}`` as the server reports it."""
        deadline = time.monotonic() + self.command_deadline
        self._send(b"LIST\r\n", "LIST")
        line = self._read_status_line(deadline, "LIST")
        if not _is_ok(line):
            raise self._reply_error(line, "LIST")
        body = self._read_small_body(deadline, "LIST").decode("latin-1")
        entries = self._parse_listing("LIST", body, _LIST_LINE, _LIST_LINE)
        return {int(num): int(size) for num, size in entries}

    def _parse_listing(
        self, what: str, body: str, fast: re.Pattern[str], loose: re.Pattern[str]
    ) -> list[tuple[str, str]]:
        """Split a UIDL/LIST body into (number, value) string pairs.

        One regex pass over the whole body (100k lines in tens of ms); the
        per-line loop runs only when some line does not fit the common form.
        """
        entries = fast.findall(body)
        if len(entries) == body.count("\n"):  # bodies end with a line end
            return entries
        result = []
        for raw in body.split("\n"):
            raw = raw.removesuffix("\r")
            if not raw.strip(" \t"):
                continue  # tolerate blank lines
            match = loose.fullmatch(raw)
            if match is None:
                self.close()
                raise ProtocolError(
                    f"{self.where}: malformed {what} line {self._redact(raw[:200])!r}"
                )
            result.append((match.group(1), match.group(2) or ""))
        return result

    # ----------------------------------------------------------------- RETR

    def retr(
        self,
        msgnum: int,
        sink: Sink,
        *,
        max_size: int | None = None,
        size_hint: int | None = None,
    ) -> int:
        """RETR one message into ``sink``; returns its size in octets.

        Raises the classified error for ``-ERR`` and :class:`MessageTooLarge`
        (after reading to the end, so the session stays usable; the sink then
        holds a partial message that the caller must discard).
        """
        msgnum = int(msgnum)
        self._send(b"RETR %d\r\n" % msgnum, f"RETR {msgnum}")
        result = self._read_retr_reply(msgnum, sink, max_size, size_hint)
        if result.error is not None:
            raise result.error
        return result.size

    def retr_many(
        self,
        requests: Iterable[tuple[int, int | None]],
        sink_factory: Callable[[int], Sink],
        *,
        max_size: int | None = None,
        window: int = 32,
    ) -> Generator[RetrResult, None, None]:
        """RETR many messages, pipelined when the server lists PIPELINING.

        ``requests`` yields ``(msgnum, size_hint_or_None)``; ``sink_factory(msgnum)``
        is called just before that message's reply is read. Results come in
        request order. Per-message failures (``-ERR``, MessageTooLarge) are
        yielded in ``RetrResult.error``; connection-level failures raise. If
        the consumer stops early, the replies still outstanding are read and
        discarded so the session stays usable (or, if that fails, the
        connection is closed). If a sink raises, the connection is closed
        (the reply was half read) and the exception propagates.

        Nothing is sent until the first result is requested.
        """
        self._require_connected()
        if window < 1 or "PIPELINING" not in self.capabilities:
            window = 1
        refill_below = max(1, window // 2)
        todo = iter(requests)
        pending: deque[tuple[int, int | None]] = deque()
        exhausted = False
        mid_reply = False
        try:
            while True:
                if not exhausted and len(pending) < refill_below:
                    batch = []
                    while len(pending) < window:
                        try:
                            msgnum, hint = next(todo)
                        except StopIteration:
                            exhausted = True
                            break
                        msgnum = int(msgnum)
                        pending.append((msgnum, hint))
                        batch.append(b"RETR %d\r\n" % msgnum)
                    if batch:
                        self._send(b"".join(batch), _batch_trace(batch))
                if not pending:
                    return
                msgnum, hint = pending[0]
                mid_reply = True
                sink = sink_factory(msgnum)
                result = self._read_retr_reply(msgnum, sink, max_size, hint)
                pending.popleft()
                mid_reply = False
                yield result
        finally:
            if mid_reply:
                self.close()
            elif pending and self._sock is not None:
                self._drain_retr(pending)

    def _drain_retr(self, pending: deque[tuple[int, int | None]]) -> None:
        """Read and discard the replies to RETRs already sent (consumer stopped early)."""
        try:
            while pending:
                msgnum, hint = pending.popleft()
                self._read_retr_reply(msgnum, None, None, hint)
        except CollectError:
            self.close()

    def _read_retr_reply(
        self, msgnum: int, sink: Sink | None, max_size: int | None, size_hint: int | None
    ) -> RetrResult:
        budget = self.command_deadline + (size_hint or 0) / _RETR_MIN_RATE
        deadline = time.monotonic() + budget
        what = f"RETR {msgnum}"
        line = self._read_status_line(deadline, what)
        if not _is_ok(line):
            return RetrResult(msgnum, sink, 0, self._reply_error(line, what))
        size, too_large = self._read_body(sink, max_size, deadline, what)
        error = None
        if too_large:
            error = MessageTooLarge(
                f"{self.where}: message {msgnum} is {size} bytes, more than "
                f"max_message_size ({max_size} bytes); it was not archived and stays on "
                "the server (raise max_message_size to archive it)"
            )
            error.msgnum = msgnum  # type: ignore[attr-defined]
            error.size = size  # type: ignore[attr-defined]
        return RetrResult(msgnum, sink, size, error)

    # ----------------------------------------------------------------- DELE

    def dele_many(self, msgnums: Iterable[int], *, window: int = 64) -> list[int]:
        """DELE many messages (pipelined with PIPELINING); returns those answered +OK.

        A ``-ERR`` for one message leaves it out of the result; a connection
        failure raises. Deletions become real only when :meth:`quit` succeeds.
        """
        self._require_connected()
        if window < 1 or "PIPELINING" not in self.capabilities:
            window = 1
        refill_below = max(1, window // 2)
        todo = iter(msgnums)
        pending: deque[int] = deque()
        exhausted = False
        deleted: list[int] = []
        while True:
            if not exhausted and len(pending) < refill_below:
                batch = []
                while len(pending) < window:
                    try:
                        msgnum = int(next(todo))
                    except StopIteration:
                        exhausted = True
                        break
                    pending.append(msgnum)
                    batch.append(b"DELE %d\r\n" % msgnum)
                if batch:
                    self._send(b"".join(batch), _batch_trace(batch))
            if not pending:
                return deleted
            msgnum = pending.popleft()
            line = self._read_status_line(
                time.monotonic() + self.command_deadline, f"DELE {msgnum}"
            )
            if _is_ok(line):
                deleted.append(msgnum)
            elif line.startswith(b"-ERR"):
                log.info("%s: DELE %d refused: %s", self.where, msgnum, self._redact(_text(line)))
            else:
                self.close()
                raise ProtocolError(
                    f"{self.where}: unexpected reply to DELE {msgnum}: "
                    f"{self._redact(_text(line))!r}"
                )

    # ------------------------------------------------------------ the wire

    def _require_connected(self) -> None:
        if self._sock is None:
            raise NetworkError(f"{self.where}: not connected (the connection was closed)")

    def _simple(self, command: str, *, masked: str | None = None) -> bytes:
        """Send one command line and read its status line."""
        deadline = time.monotonic() + self.command_deadline
        self._send(command.encode() + b"\r\n", masked or command)
        return self._read_status_line(deadline, (masked or command).split(" ", 1)[0])

    def _send(self, data: bytes, trace: str) -> None:
        sock = self._sock
        if sock is None:
            self._require_connected()
        assert sock is not None
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s C: %s", self.where, trace)
        if self._sock_timeout != self.timeout:
            sock.settimeout(self.timeout)
            self._sock_timeout = self.timeout
        try:
            sock.sendall(data)
        except TimeoutError as exc:
            self.close()
            raise NetworkError(
                f"{self.where}: sending {trace.split(' ', 1)[0]} timed out after {self.timeout:g}s"
            ) from exc
        except OSError as exc:
            self.close()
            raise NetworkError(
                f"{self.where}: connection lost while sending {trace.split(' ', 1)[0]}: "
                f"{_os_reason(exc)}"
            ) from exc

    def _recv_more(self, data: bytes, start: int, deadline: float, what: str) -> bytes:
        """Return ``data[start:]`` followed by the next block from the socket."""
        sock = self._sock
        if sock is None:
            self._require_connected()
        assert sock is not None
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            self.close()
            raise NetworkError(
                f"{self.where}: {what} timed out: the reply did not complete within the "
                "command deadline"
            )
        wait = self.timeout if remaining > self.timeout else remaining
        if wait != self._sock_timeout:
            sock.settimeout(wait)
            self._sock_timeout = wait
        try:
            chunk = sock.recv(_RECV_SIZE)
        except TimeoutError as exc:
            self.close()
            if wait < self.timeout:
                raise NetworkError(
                    f"{self.where}: {what} timed out: the reply did not complete within "
                    "the command deadline"
                ) from exc
            raise NetworkError(
                f"{self.where}: {what} timed out: no data for {self.timeout:g}s"
            ) from exc
        except OSError as exc:
            self.close()
            raise NetworkError(
                f"{self.where}: connection lost during {what}: {_os_reason(exc)}"
            ) from exc
        if not chunk:
            self.close()
            raise NetworkError(f"{self.where}: the server closed the connection during {what}")
        if start < len(data):
            return data[start:] + chunk
        return chunk

    def _read_status_line(self, deadline: float, what: str) -> bytes:
        """One reply line without its line end (CRLF or bare LF)."""
        data, off = self._data, self._off
        scan = off
        while True:
            i = data.find(b"\n", scan)
            if i >= 0:
                break
            if len(data) - off > _MAX_STATUS_LINE:
                self.close()
                raise ProtocolError(
                    f"{self.where}: reply line to {what} is longer than "
                    f"{_MAX_STATUS_LINE} bytes without a line end"
                )
            scan = len(data) - off
            data = self._recv_more(data, off, deadline, what)
            off = 0
        if i - off > _MAX_STATUS_LINE:
            self.close()
            raise ProtocolError(
                f"{self.where}: reply line to {what} is longer than {_MAX_STATUS_LINE} bytes"
            )
        end = i - 1 if i > off and data[i - 1] == 0x0D else i
        line = data[off:end]
        self._data, self._off = data, i + 1
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s S: %s", self.where, self._redact(_text(line)))
        return line

    def _read_small_body(self, deadline: float, what: str) -> bytes:
        parts = _Collect()
        self._read_body(parts, _MAX_LISTING, deadline, what)
        return b"".join(parts)

    def _read_body(
        self, sink: Sink | None, max_size: int | None, deadline: float, what: str
    ) -> tuple[int, bool]:
        """Stream a multi-line body into ``sink``; see the module docstring.

        Returns ``(size, too_large)``. Always reads through the terminator.
        """
        data = self._data
        s = self._off
        size = 0
        too_large = False
        write = sink.write if sink is not None else None
        at_line_start = True
        while True:
            if at_line_start:
                n = len(data) - s
                if n < 3 and (
                    n == 0 or (data[s] == 0x2E and (n == 1 or (n == 2 and data[s + 1] == 0x0D)))
                ):
                    data = self._recv_more(data, s, deadline, what)
                    s = 0
                    continue
                if data[s] == 0x2E:
                    second = data[s + 1]
                    if second == 0x0A:
                        self._data, self._off = data, s + 2
                        return size, too_large
                    if second == 0x0D and data[s + 2] == 0x0A:
                        self._data, self._off = data, s + 3
                        return size, too_large
                    if second == 0x2E:
                        s += 1
                at_line_start = False
            crlf = data.find(b"\n.\r\n", s)
            if crlf >= 0:
                lf = data.find(b"\n.\n", s, crlf + 3)
            else:
                lf = data.find(b"\n.\n", s)
            if lf >= 0:
                end, after = lf + 1, lf + 3
            elif crlf >= 0:
                end, after = crlf + 1, crlf + 4
            else:
                end = after = -1
            if end >= 0:
                piece = data[s:end].replace(b"\n..", b"\n.")
            else:
                last_lf = data.rfind(b"\n", s)
                if last_lf >= 0:
                    # Emit through the last line end; the next line's start is
                    # examined (and unstuffed) above once enough bytes are here.
                    piece = data[s : last_lf + 1].replace(b"\n..", b"\n.")
                    s = last_lf + 1
                    at_line_start = True
                else:
                    piece = data[s:]
                    s = len(data)
            if piece:
                size += len(piece)
                if not too_large:
                    if max_size is not None and size > max_size:
                        too_large = True
                    elif write is not None:
                        write(piece)
            if end >= 0:
                self._data, self._off = data, after
                return size, too_large
            if not at_line_start:
                data = self._recv_more(data, s, deadline, what)
                s = 0

    # -------------------------------------------------------------- errors

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            if secret:
                text = text.replace(secret, "****")
        return text

    def _reply_error(
        self,
        line: bytes,
        what: str,
        *,
        login: bool = False,
        default: type[CollectError] = ProtocolError,
        detail: str = "",
    ) -> CollectError:
        """Turn a non-+OK status line into the right exception (not raised here)."""
        text = self._redact(_text(line))
        if detail:
            text = f"{text} ({self._redact(detail)})"
        if not line.startswith(b"-ERR"):
            self.close()
            return ProtocolError(f"{self.where}: {what}: expected +OK or -ERR, got {text[:200]!r}")
        message = f"{self.where}: {what} failed: {text}"
        code = _resp_code(text)
        cls = _code_class(code) if code else None
        if cls is not None:
            return cls(message)
        if login:
            if _BUSY_WORDING.search(text):
                return ServerBusy(message)
            if "AUTH-RESP-CODE" in self.capabilities:
                return ServerPermanentError(
                    message + " (the server marks credential problems with [AUTH] and "
                    "did not here, so the refusal is about something else)"
                )
            return AuthError(message)
        return default(message)


#: UIDL/LIST/CAPA listings are held in memory; 100k entries are ~3 MB
_MAX_LISTING = 256 * 1024 * 1024


def _is_ok(line: bytes) -> bool:
    return line[:3] == b"+OK" or line[:3].upper() == b"+OK"


def _is_continuation(line: bytes) -> bool:
    return line[:1] == b"+" and not _is_ok(line)


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def _resp_code(text: str) -> str | None:
    match = _RESP_CODE.match(text)
    return match.group(1).upper() if match else None


def _code_class(code: str) -> type[CollectError] | None:
    for prefix, cls in (
        ("AUTH", AuthError),
        ("IN-USE", ServerBusy),
        ("LOGIN-DELAY", ServerBusy),
        ("SYS/TEMP", ServerBusy),
        ("SYS/PERM", ServerPermanentError),
    ):
        if code == prefix or code.startswith(prefix + "/"):
            return cls
    return None


def _xoauth2_detail(payload: bytes) -> str:
    try:
        info = json.loads(base64.b64decode(payload, validate=True))
    except (binascii.Error, ValueError):
        return ""
    if not isinstance(info, dict):
        return ""
    status = info.get("status")
    return f"token rejected, status {status}" if status else "token rejected"


def _batch_trace(batch: list[bytes]) -> str:
    if not log.isEnabledFor(logging.DEBUG):
        return batch[0][:4].decode()  # only the verb is needed for error messages
    if len(batch) == 1:
        return batch[0].decode().strip()
    return f"{batch[0].decode().strip()} ... {batch[-1].decode().strip()} ({len(batch)} pipelined)"


def _os_reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):
        return exc.reason or str(exc)
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
