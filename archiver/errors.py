"""The one exception tree of archiver.

Every error a user can see is one of these, raised with a message that says
what went wrong, where, and how to fix it. Library exceptions (socket, ssl,
SQLAlchemy, zstandard, ...) are translated at the boundary with
``raise ... from exc`` so callers only ever handle these types.

No message built here may contain a password or token (DESIGN.md §2 rule 8).

    ArchiverError
    ├── ConfigError            bad config.toml (exit 2)
    ├── UsageError             bad command-line input (exit 2)
    │   └── QuerySyntaxError   a search query that does not parse (column, expected)
    ├── DatabaseError          archive unusable: schema missing, too old or too new,
    │   │                      or a statement the database refused
    │   └── DatabaseUnavailable  cannot connect, or the connection was lost: retry later
    ├── StoreError
    │   ├── MessageNotFound    no message has that id / prefix
    │   ├── AmbiguousId        a prefix matches several messages
    │   └── CorruptContent     stored content no longer decodes or matches its hash
    ├── ImportSourceError      an import file or folder cannot be read
    └── CollectError           one account's collection pass failed
        ├── AuthError          bad credentials (retrying will not help)
        ├── ServerBusy         [IN-USE], [LOGIN-DELAY], [SYS/TEMP]: retry later
        ├── ServerPermanentError  [SYS/PERM]: the server refuses until a human acts
        ├── NetworkError       connect, read, timeout, connection lost
        │   └── TLSError       handshake or certificate failure, STLS missing
        ├── ProtocolError      the server said something a POP3 server must not
        │   └── UIDLUnsupported  no UIDL: leave-on-server is impossible
        └── MessageTooLarge    one message exceeds max_message_size (per message)
"""

from __future__ import annotations


class ArchiverError(Exception):
    """Base of every error archiver raises on purpose."""

    #: process exit code when this error ends a command (DESIGN.md §4)
    exit_code = 1


class ConfigError(ArchiverError):
    """config.toml is missing, unreadable or invalid.

    ``problems`` holds one line per mistake, each naming the key path, the
    bad value and what is expected (``accounts[2].port: must be 1-65535,
    got 0``); ``str()`` joins them.
    """

    exit_code = 2

    def __init__(self, problems: str | list[str], *, path: str | None = None) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        self.path = path
        where = f"{path}: " if path else ""
        if len(self.problems) == 1:
            text = f"{where}{self.problems[0]}"
        else:
            text = f"{where}{len(self.problems)} problems\n" + "\n".join(
                f"  {p}" for p in self.problems
            )
        super().__init__(text)


class UsageError(ArchiverError):
    """A command was called with arguments that cannot work."""

    exit_code = 2


class QuerySyntaxError(UsageError):
    """A search query (CLI, web UI, hold, retention rule) that does not parse.

    ``str()`` is the whole message, ready to show as is: what is wrong, the
    column and what was expected (``after: expects YYYY-MM-DD at column 7,
    got "yesterday"``). ``query`` is the text as given; ``position`` the
    0-based offset of the offending character in it (``len(query)`` when
    the query ended too soon) and ``column`` the same 1-based, both counted
    in characters (code points); ``expected`` says what would have been valid
    there (``YYYY-MM-DD``, ``a closing "``).
    """

    def __init__(self, message: str, *, query: str, position: int, expected: str) -> None:
        super().__init__(message)
        self.query = query
        self.position = position
        self.expected = expected

    @property
    def column(self) -> int:
        """The 1-based column of :attr:`position`."""
        return self.position + 1


class DatabaseError(ArchiverError):
    """The archive database cannot be used (no schema, old schema) or refused a
    statement. Raised by :mod:`archiver.db.boundary`, never a SQLAlchemy error."""


class DatabaseUnavailable(DatabaseError):
    """The archive database cannot be reached, or the connection was lost.

    Retrying later can help (the server restarts, the network comes back).
    """

    retryable = True


class StoreError(ArchiverError):
    """Storing or reading message content failed."""


class MessageNotFound(StoreError):
    """No message matches the given id or prefix."""


class AmbiguousId(StoreError):
    """An id prefix matches more than one message."""


class CorruptContent(StoreError):
    """Stored content no longer decompresses, or no longer hashes to its id."""


class ImportSourceError(ArchiverError):
    """A file or folder given to ``archiver import`` cannot be used at all
    (missing, not a mail format, nothing to import): bad usage, exit 2."""

    exit_code = 2


class CollectError(ArchiverError):
    """A collection pass for one account failed.

    ``retryable`` tells the scheduler whether trying again later can help
    (busy servers and network trouble) or a human must act first (bad
    credentials, permanent refusals, protocol violations).
    """

    retryable = False
    #: short machine-readable kind, used in ``collect --json`` and run records
    kind = "error"


class AuthError(CollectError):
    """The server rejected the credentials (``[AUTH]`` or a plain login failure)."""

    kind = "auth"


class ServerBusy(CollectError):
    """The server refused for now: ``[IN-USE]``, ``[LOGIN-DELAY]``, ``[SYS/TEMP]``,
    or lock/wait wording from servers without response codes."""

    retryable = True
    kind = "busy"


class ServerPermanentError(CollectError):
    """The server refused permanently (``[SYS/PERM]``)."""

    kind = "permanent"


class NetworkError(CollectError):
    """Connecting failed, a read or command timed out, or the connection dropped."""

    retryable = True
    kind = "network"


class TLSError(NetworkError):
    """TLS could not be established as configured: handshake or certificate
    failure, or STLS required but not offered. Never retried in clear text."""

    retryable = False
    kind = "tls"


class ProtocolError(CollectError):
    """The server's reply violates POP3 (RFC 1939) in a way we cannot work around."""

    kind = "protocol"


class UIDLUnsupported(ProtocolError):
    """The server has no UIDL command, so messages cannot be tracked across passes."""

    kind = "no-uidl"


class MessageTooLarge(CollectError):
    """One message is larger than the account's ``max_message_size``.

    Raised per message; the pass skips it (leaving it on the server) and goes on.
    """

    kind = "too-large"


__all__ = [
    "AmbiguousId",
    "ArchiverError",
    "AuthError",
    "CollectError",
    "ConfigError",
    "CorruptContent",
    "DatabaseError",
    "DatabaseUnavailable",
    "ImportSourceError",
    "MessageNotFound",
    "MessageTooLarge",
    "NetworkError",
    "ProtocolError",
    "QuerySyntaxError",
    "ServerBusy",
    "ServerPermanentError",
    "StoreError",
    "TLSError",
    "UIDLUnsupported",
    "UsageError",
]
