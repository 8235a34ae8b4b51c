"""Secrets (passwords, tokens, the database URL): kept as written, revealed on use.

In config.toml a secret is a literal, ``env:NAME`` or ``file:PATH``. Loading
checks only how it is written; the variable or file is read by the first
``reveal()``, which only the command that needs the secret calls (``collect``
logs in, every database command makes an engine). So ``config show``,
``status``, ``search`` and the other readers work for someone who does not
have the POP3 passwords, and a missing one fails only the commands that need
it, with an error that names the key and never the value::

    accounts[0].password: environment variable SALES_POP3_PASSWORD is not set

``str()``, ``repr()``, f-strings and ``display()`` never contain a secret
(DESIGN.md §2 rule 8); ``reveal()`` is the only way to the value.

This module imports no third-party package at import time (pydantic
included); SQLAlchemy is imported when a URL is parsed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from archiver.config.messages import quote, suggest
from archiver.errors import ConfigError

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

__all__ = ["MASK", "DatabaseURL", "Secret", "resolve_path"]

#: what a secret looks like wherever it is shown
MASK = "********"

_MAX_SECRET_FILE = 64 * 1024
_ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.ASCII)


def resolve_path(text: str, base_dir: Path) -> Path:
    """A path written in config.toml: ``~`` expanded, relative ones taken from ``base_dir``."""
    path = Path(os.path.expanduser(text))
    return path if path.is_absolute() else base_dir / path


class Secret:
    """A password or token, kept as written and looked up on first ``reveal()``.

    ``source`` is ``"literal"``, ``"env:NAME"`` or ``"file:/absolute/path"``
    and is safe to show. ``key`` is the config key it was written under
    (``accounts[0].password``), used in errors. Equal secrets have the same
    source (and, for literals, the same value); comparing never looks up.
    """

    __slots__ = ("_config_path", "_environ", "_key", "_source", "_value")

    _source: str
    _value: str | None
    _environ: Mapping[str, str] | None
    _key: str | None
    _config_path: str | None

    def __init__(self, value: str) -> None:
        """A literal secret: ``value`` is the secret itself."""
        if not isinstance(value, str):
            raise TypeError(f"a secret is a str, not {type(value).__name__}")
        self._source, self._value = "literal", value
        self._environ = self._key = self._config_path = None

    @classmethod
    def parse(
        cls,
        text: str,
        *,
        base_dir: Path | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Secret:
        """A secret as written: a literal, ``env:NAME`` or ``file:PATH``.

        Nothing is looked up yet. A relative PATH is taken from ``base_dir``
        (the config file's directory); ``environ`` (default: ``os.environ``
        at the time of ``reveal()``) is where NAME is looked up. A text
        starting with ``env:`` or ``file:`` is always a reference. Raises
        ``ValueError`` for a malformed reference or an empty literal.
        """
        if text.startswith("env:"):
            name = text[4:]
            if not _ENV_NAME_RE.fullmatch(name):
                raise ValueError(
                    f'invalid secret reference {quote(text)}: expected "env:NAME" '
                    'where NAME is made of letters, digits and "_"'
                )
            return cls._reference(f"env:{name}", environ)
        if text.startswith("file:"):
            if not text[5:]:
                raise ValueError('invalid secret reference "file:": expected "file:PATH"')
            path = resolve_path(text[5:], base_dir or Path.cwd())
            return cls._reference(f"file:{path}", environ)
        if not text:
            raise ValueError('must not be empty (write the secret, "env:NAME" or "file:PATH")')
        return cls(text)

    @classmethod
    def _reference(cls, source: str, environ: Mapping[str, str] | None) -> Secret:
        self = cls.__new__(cls)
        self._source, self._value, self._environ = source, None, environ
        self._key = self._config_path = None
        return self

    def at(self, key: str, *, config_path: str | None = None) -> Secret:
        """This secret, with errors naming ``key`` (and the config file ``config_path``)."""
        copy = type(self).__new__(type(self))
        copy._source, copy._value, copy._environ = self._source, self._value, self._environ
        copy._key, copy._config_path = key, config_path
        return copy

    @property
    def source(self) -> str:
        """``"literal"``, ``"env:NAME"`` or ``"file:/path"``: safe to show."""
        return self._source

    @property
    def key(self) -> str | None:
        """The config key this secret was written under, if known."""
        return self._key

    @property
    def config_path(self) -> str | None:
        """The config file this secret was written in, if known."""
        return self._config_path

    def reveal(self) -> str:
        """The secret itself (looked up once, then kept). Never log it.

        Raises ``ConfigError`` naming the key and the variable or file, never
        the value: ``accounts[0].password: environment variable X is not set``.
        """
        if self._value is None:
            try:
                self._value = self._look_up()
            except ValueError as exc:
                problem = f"{self._key}: {exc}" if self._key else str(exc)
                raise ConfigError(problem, path=self._config_path) from None
        return self._value

    def _look_up(self) -> str:
        scheme, _, where = self._source.partition(":")
        if scheme == "env":
            environ = os.environ if self._environ is None else self._environ
            value = environ.get(where)
            if value is None:
                raise ValueError(f"environment variable {where} is not set")
            if not value:
                raise ValueError(f"environment variable {where} is empty")
            return value
        try:
            with open(where, "rb") as handle:
                data = handle.read(_MAX_SECRET_FILE + 1)
        except OSError as exc:
            raise ValueError(
                f"cannot read secret file {where}: {exc.strerror or type(exc).__name__}"
            ) from None
        if len(data) > _MAX_SECRET_FILE:
            raise ValueError(
                f"secret file {where} is larger than 64KB; it must hold only the secret"
            )
        try:
            value = data.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"cannot read secret file {where}: not UTF-8 text") from None
        if value.endswith("\n"):  # exactly one line end, as `echo secret > file` writes
            value = value[:-2] if value.endswith("\r\n") else value[:-1]
        if not value:
            raise ValueError(f"secret file {where} is empty")
        return value

    def display(self) -> str:
        """Masked form for ``config show``: ``********`` or ``env:NAME (********)``."""
        return MASK if self._source == "literal" else f"{self._source} ({MASK})"

    def __repr__(self) -> str:
        return f"Secret({MASK!r}, source={self._source!r})"

    def __str__(self) -> str:
        return MASK

    def __format__(self, spec: str) -> str:
        return format(MASK, spec)

    def _identity(self) -> tuple[str, str | None]:
        return (self._source, self._value if self._source == "literal" else None)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return self._identity() == other._identity()

    def __hash__(self) -> int:
        return hash((Secret, *self._identity()))


# --------------------------------------------------------------------------
# the database URL

#: backend → (allowed drivers, driver used when the URL names none)
_DATABASE_DRIVERS: dict[str, tuple[tuple[str, ...], str | None]] = {
    "sqlite": (("pysqlite",), None),
    "postgresql": (("psycopg",), "psycopg"),
    "mysql": (("pymysql",), "pymysql"),
    "mariadb": (("pymysql",), "pymysql"),
}
_SUPPORTED_DATABASES = "sqlite, postgresql(+psycopg), mysql(+pymysql) or mariadb(+pymysql)"
DATABASE_EXAMPLES = (
    '"sqlite:///archive.db", "postgresql+psycopg://user:password@host/archive" '
    'or "mysql+pymysql://user:password@host/archive"'
)
_SECRET_QUERY_KEY = re.compile(r"pass|pwd|secret|token", re.IGNORECASE)
#: Python module and the archiver extra that provides it, per driver.
#: driver -> (module to look for, the PyPI package that provides it, our extra). The
#: hint names the driver's own package: "archiver" on PyPI is somebody else's project.
_DRIVER_MODULES = {"psycopg": ("psycopg", "psycopg[binary]", "postgres"),
                   "pymysql": ("pymysql", "PyMySQL", "mysql")}


class DatabaseURL:
    """The archive's SQLAlchemy URL, normalised. Not a ``str``, so it cannot leak.

    ``str()``, ``repr()``, f-strings and ``display()`` show it masked
    (``postgresql+psycopg://archiver:***@db/archive``; only the source, like
    ``env:ARCHIVER_DATABASE_URL (********)``, for a reference). ``reveal()``
    is the full URL for ``create_engine``: call it where the engine is made.

    A literal URL is validated when the config is loaded. One written as
    ``env:NAME`` or ``file:PATH`` is looked up and validated by the first
    ``reveal()`` (or ``backend``/``masked``), which raises ``ConfigError``
    naming ``archive.database``.
    """

    __slots__ = ("_base_dir", "_masked", "_secret", "_url")

    _secret: Secret
    _base_dir: Path
    _url: str | None
    _masked: str | None

    def __init__(self, url: str, *, base_dir: Path | None = None) -> None:
        """A literal URL, validated now; see ``parse``."""
        self._secret, self._base_dir = Secret(url), base_dir or Path.cwd()
        self._url, self._masked = _normalise(url, self._base_dir, source="literal")

    @classmethod
    def parse(cls, text: str, *, base_dir: Path | None = None) -> DatabaseURL:
        """Validate and normalise a URL: supported backend, default driver
        (psycopg, pymysql) filled in, a relative SQLite path made absolute
        against ``base_dir``. Raises ``ValueError`` without echoing the URL.
        """
        return cls(text, base_dir=base_dir)

    @classmethod
    def from_secret(cls, secret: Secret, *, base_dir: Path | None = None) -> DatabaseURL:
        """The URL held by ``secret``: validated now if literal, on first use if a reference."""
        if secret.source == "literal":
            return cls(secret.reveal(), base_dir=base_dir)
        self = cls.__new__(cls)
        self._secret, self._base_dir = secret, base_dir or Path.cwd()
        self._url = self._masked = None
        return self

    def at(self, key: str, *, config_path: str | None = None) -> DatabaseURL:
        """This URL, with errors naming ``key`` (and the config file ``config_path``)."""
        copy = type(self).__new__(type(self))
        copy._secret = self._secret.at(key, config_path=config_path)
        copy._base_dir, copy._url, copy._masked = self._base_dir, self._url, self._masked
        return copy

    @property
    def source(self) -> str:
        """``"literal"``, ``"env:NAME"`` or ``"file:/path"``, like ``Secret.source``."""
        return self._secret.source

    def reveal(self) -> str:
        """The full URL, password included, for ``create_engine``. Never log it."""
        if self._url is None:
            text = self._secret.reveal()
            try:
                self._url, self._masked = _normalise(text, self._base_dir, source=self.source)
            except ValueError as exc:
                key = self._secret.key
                raise ConfigError(
                    f"{key}: {exc}" if key else str(exc), path=self._secret.config_path
                ) from None
        return self._url

    @property
    def masked(self) -> str:
        """The URL with its password (and password-like query values) hidden."""
        self.reveal()
        assert self._masked is not None
        return self._masked

    @property
    def backend(self) -> str:
        """``sqlite``, ``postgresql``, ``mysql`` or ``mariadb``."""
        return self.reveal().split(":", 1)[0].partition("+")[0]

    def display(self) -> str:
        """Masked form for ``config show``; a reference shows only where it comes from."""
        if self.source == "literal":
            assert self._masked is not None
            return self._masked
        return f"{self.source} ({MASK})"

    def __str__(self) -> str:
        return self.display()

    def __format__(self, spec: str) -> str:
        return format(self.display(), spec)

    def __repr__(self) -> str:
        shown = self._masked if self.source == "literal" else MASK
        return f"DatabaseURL({shown!r}, source={self.source!r})"

    def _identity(self) -> tuple[str, str | None]:
        return (self.source, self._url if self.source == "literal" else None)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DatabaseURL):
            return NotImplemented
        return self._identity() == other._identity()

    def __hash__(self) -> int:
        return hash((DatabaseURL, *self._identity()))


def _normalise(text: str, base_dir: Path, *, source: str) -> tuple[str, str]:
    """``text`` validated and normalised, and its masked form; ``ValueError`` never echoes it."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    origin = "" if source == "literal" else f" (from {source})"
    try:
        url = make_url(text)
    except (ArgumentError, ValueError):  # ValueError for a bad port; both echo the URL
        raise ValueError(
            f"not a valid database URL{origin}; expected one like {DATABASE_EXAMPLES}"
        ) from None
    if url.host and "@" in url.host:
        # make_url splits user:password@host at the LAST "@": a password with a raw
        # "@" leaves its tail in the host, where it would be printed and sent to DNS.
        raise ValueError(
            f"the database URL{origin} has an '@' after its user part: percent-encode "
            "'@' in the password as %40 (and ':' as %3A, '/' as %2F)"
        )
    backend, _, driver = url.drivername.partition("+")
    if backend not in _DATABASE_DRIVERS:
        raise ValueError(
            f"unsupported database {quote(backend)}{origin}"
            f"{suggest(backend, _DATABASE_DRIVERS)}; expected {_SUPPORTED_DATABASES}"
        )
    drivers, default_driver = _DATABASE_DRIVERS[backend]
    if driver and driver not in drivers:
        raise ValueError(
            f"unsupported driver {quote(driver)} for {backend}{origin}; "
            f"expected {backend}+{drivers[0]} or plain {backend}://"
        )
    normalised = url
    if not driver and default_driver:
        normalised = normalised.set(drivername=f"{backend}+{default_driver}")
    _require_driver(backend, normalised.drivername.partition("+")[2])
    in_memory = url.database in (None, "", ":memory:")
    if backend == "sqlite" and not in_memory and url.query.get("uri") != "true":
        assert url.database is not None
        normalised = normalised.set(database=str(resolve_path(url.database, base_dir)))
    # re-render only what changed: rendering escapes ":" ("sqlite:///%3Amemory%3A")
    if normalised != url:
        text = normalised.render_as_string(hide_password=False)
    return text, _mask_url(normalised)


def _require_driver(backend: str, driver: str) -> None:
    """Fail at load time, not with an ImportError mid-command, when the driver is missing."""
    import importlib.util

    module, package, extra = _DRIVER_MODULES.get(driver, (None, None, None))
    if module and importlib.util.find_spec(module) is None:
        raise ValueError(
            f"{backend} needs the {module} driver, which is not installed: "
            f"pip install '{package}' (or, in a checkout of archiver, "
            f"pip install -e '.[{extra}]')"
        )


def _mask_url(url: URL) -> str:
    """The URL with its password (and password-like query values) hidden."""
    hidden = sorted(key for key in url.query if _SECRET_QUERY_KEY.search(key))
    text: str = url.difference_update_query(hidden).render_as_string(hide_password=True)
    if hidden:
        text += ("&" if "?" in text else "?") + "&".join(f"{key}=***" for key in hidden)
    return text
