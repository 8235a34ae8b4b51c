"""config.toml → frozen, validated objects (DESIGN.md §3).

``load_config(path)`` reads the whole file, validates every key and raises
one ``ConfigError`` listing *all* problems, one line each, in TOML terms::

    accounts[2].port: must be 1-65535, got 0
    accounts[0].hots: unknown key (did you mean "host"?)

Pydantic does the walking; its errors are translated here, so users never
see pydantic's wording. Rules that involve several keys (``interval`` vs
``schedule``, ``tls = "none"`` to a remote host, duplicate names) are checked
on the raw table in ``mode="wrap"`` model validators, so they are reported
together with the per-key mistakes instead of only once those are fixed.

Paths written in the file (``ca_file``, ``file:`` secrets, a relative SQLite
database) are resolved against the directory of the config file, not the
working directory, so ``archiver --config /etc/archiver/config.toml`` works
from anywhere. ``~`` is expanded.

Secrets (``accounts[].password``, ``archive.database``) are resolved at load
time and never appear in ``repr()``, errors or ``to_display()``.

In code (tests, other modules) the models can be built directly; then
durations may also be ``timedelta`` and sizes ``int`` bytes, while a file must
use the written forms (``"10m"``, ``"50MB"``).

Start-up time matters (``archiver collect`` runs every few minutes), so this
module imports only the standard library and pydantic at import time;
SQLAlchemy (URL validation) and APScheduler (cron validation) are imported
inside the functions that need them.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import os
import re
import tomllib
import types
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Union, get_args, get_origin

# pydantic looks up third-party plugins through package metadata at import,
# a scan of every installed distribution on each start; archiver uses none.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    PlainValidator,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic_core import core_schema

from archiver import units
from archiver.errors import ConfigError

__all__ = [
    "CONFIG_ENV_VAR",
    "DEFAULT_CONFIG_PATH",
    "MASK",
    "SAMPLE_CONFIG",
    "Account",
    "ArchiveSettings",
    "Config",
    "DatabaseURL",
    "MetricsSettings",
    "RetentionMatch",
    "RetentionRule",
    "RetentionSettings",
    "SchedulerSettings",
    "Secret",
    "WebSettings",
    "cron_trigger",
    "load_config",
    "parse_config",
    "resolve_config_path",
]

DEFAULT_CONFIG_PATH = "config.toml"
#: environment variable naming the config file when --config is not given
CONFIG_ENV_VAR = "ARCHIVER_CONFIG"
#: what a secret looks like wherever it is shown
MASK = "********"

#: the commented sample written by ``archiver init`` (identical to the repository's config.toml)
SAMPLE_CONFIG = Path(__file__).with_name("sample_config.toml").read_text(encoding="utf-8")

DEFAULT_DATABASE = "sqlite:///archive.db"
DEFAULT_INTERVAL = timedelta(minutes=5)
DEFAULT_RETENTION_SCHEDULE = "0 3 * * *"
DEFAULT_KEEP = timedelta(days=7 * 365)
_IMPLICIT_TLS_PORT = 995
_PLAIN_PORT = 110
_MAX_SECRET_FILE = 64 * 1024


# --------------------------------------------------------------------------
# how values are shown in messages


def _kind(value: Any) -> str:
    """The TOML type of ``value`` in words, for messages that must not echo it."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "an array"
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, datetime):
        return "a date-time"
    if isinstance(value, date):
        return "a date"
    if isinstance(value, time):
        return "a time"
    return f"a {type(value).__name__}"


def _quote(text: str, limit: int = 60) -> str:
    """``text`` in double quotes, escaped as in TOML, shortened when very long."""
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return json.dumps(text, ensure_ascii=False)


def _show(value: Any) -> str:
    """``value`` as it would be written in TOML, shortened; compound values by kind."""
    if isinstance(value, str):
        return _quote(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        text = str(value)
        return text if len(text) <= 30 else text[:29] + "…"
    if isinstance(value, float):
        return {"inf": "inf", "-inf": "-inf", "nan": "nan"}.get(str(value), repr(value))
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, timedelta):
        try:
            return _quote(units.format_duration(value))
        except ValueError:
            return str(value)
    return _kind(value)


def _suggest(word: str, candidates: list[str] | tuple[str, ...]) -> str:
    """`` (did you mean "x"?)`` when ``word`` is close to one of ``candidates``."""
    lowered = {c.lower(): c for c in candidates}
    close = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.6)
    return f' (did you mean "{lowered[close[0]]}"?)' if close else ""


def _one_of(choices: tuple[str, ...]) -> str:
    return ", ".join(choices)


def _show_path(path: Path | str) -> str:
    """A path as the user would type it: relative ones get a ``./``."""
    text = str(path)
    if not os.path.isabs(text) and not text.startswith("."):
        text = "./" + text
    return text


# --------------------------------------------------------------------------
# validation context: where the file lives and which environment to read

def _context(info: ValidationInfo | None) -> Mapping[str, Any]:
    ctx = info.context if info is not None else None
    return ctx if isinstance(ctx, Mapping) else {}


def _base_dir(info: ValidationInfo | None) -> Path:
    return _context(info).get("base_dir") or Path.cwd()


def _environ(info: ValidationInfo | None) -> Mapping[str, str]:
    environ = _context(info).get("environ")
    return os.environ if environ is None else environ


def _from_file(info: ValidationInfo | None) -> bool:
    """True while validating config.toml (only written forms allowed)."""
    return bool(_context(info).get("from_file"))


def _resolve_path(text: str, base_dir: Path) -> Path:
    path = Path(os.path.expanduser(text))
    return path if path.is_absolute() else base_dir / path


# --------------------------------------------------------------------------
# secrets


_ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.ASCII)


class Secret:
    """A password or token: the resolved value plus where it came from.

    ``source`` is ``"literal"``, ``"env:NAME"`` or ``"file:/absolute/path"``.
    ``repr()``, ``str()`` and ``format()`` never show the value; call
    ``reveal()`` at the one place that must send it (the POP3 login).
    """

    __slots__ = ("_source", "_value")

    def __init__(self, value: str, source: str = "literal") -> None:
        self._value = value
        self._source = source

    @classmethod
    def resolve(
        cls,
        text: str,
        *,
        base_dir: Path | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Secret:
        """Resolve a written secret: a literal, ``env:NAME`` or ``file:PATH``.

        A file's content loses one trailing newline; a relative PATH is taken
        from ``base_dir`` (the config file's directory). Raises ``ValueError``
        with a message that names the variable or file but never the value.
        A value starting with ``env:`` or ``file:`` is always a reference.
        """
        environ = os.environ if environ is None else environ
        if text.startswith("env:"):
            name = text[4:]
            if not _ENV_NAME_RE.fullmatch(name):
                raise ValueError(
                    f'invalid secret reference {_quote(text)}: expected "env:NAME" '
                    'where NAME is made of letters, digits and "_"'
                )
            value = environ.get(name)
            if value is None:
                raise ValueError(f"environment variable {name} is not set")
            if not value:
                raise ValueError(f"environment variable {name} is empty")
            return cls(value, f"env:{name}")
        if text.startswith("file:"):
            if not text[5:]:
                raise ValueError('invalid secret reference "file:": expected "file:PATH"')
            path = _resolve_path(text[5:], base_dir or Path.cwd())
            try:
                with open(path, "rb") as handle:
                    data = handle.read(_MAX_SECRET_FILE + 1)
            except OSError as exc:
                raise ValueError(
                    f"cannot read secret file {path}: {exc.strerror or type(exc).__name__}"
                ) from None
            if len(data) > _MAX_SECRET_FILE:
                raise ValueError(
                    f"secret file {path} is larger than 64KB; it must hold only the secret"
                )
            try:
                value = data.decode("utf-8")
            except UnicodeDecodeError:
                raise ValueError(f"cannot read secret file {path}: not UTF-8 text") from None
            if value.endswith("\n"):  # exactly one line end, as `echo secret > file` writes
                value = value[:-2] if value.endswith("\r\n") else value[:-1]
            if not value:
                raise ValueError(f"secret file {path} is empty")
            return cls(value, f"file:{path}")
        if not text:
            raise ValueError('must not be empty (write the secret, "env:NAME" or "file:PATH")')
        return cls(text)

    @property
    def source(self) -> str:
        """``"literal"``, ``"env:NAME"`` or ``"file:/path"``: safe to show."""
        return self._source

    def reveal(self) -> str:
        """The secret itself. Never log it."""
        return self._value

    def display(self) -> str:
        """Masked form for ``config show``: ``********`` or ``env:NAME (********)``."""
        return MASK if self._source == "literal" else f"{self._source} ({MASK})"

    def __repr__(self) -> str:
        return f"Secret({MASK!r}, source={self._source!r})"

    def __str__(self) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return self._source == other._source and self._value == other._value

    def __hash__(self) -> int:
        return hash((Secret, self._source, self._value))

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.with_info_plain_validator_function(_validate_secret)


def _validate_secret(value: Any, info: ValidationInfo) -> Secret:
    if isinstance(value, Secret):
        return value
    if not isinstance(value, str):
        # never echo: a password written without quotes is still a password
        raise ValueError(
            f'must be a string (the secret, "env:NAME" or "file:PATH"), got {_kind(value)}'
        )
    return Secret.resolve(value, base_dir=_base_dir(info), environ=_environ(info))


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
_DATABASE_EXAMPLES = (
    '"sqlite:///archive.db", "postgresql+psycopg://user:password@host/archive" '
    'or "mysql+pymysql://user:password@host/archive"'
)
_SECRET_QUERY_KEY = re.compile(r"pass|pwd|secret|token", re.IGNORECASE)


class DatabaseURL(str):
    """The archive's SQLAlchemy URL, normalised; a ``str`` for ``create_engine``.

    ``repr()`` shows ``masked`` (password hidden); ``source`` says where the
    URL came from like ``Secret.source``. ``str()`` is the real URL: log
    ``masked`` instead.
    """

    source: str
    masked: str

    def __new__(
        cls, url: str, *, source: str = "literal", masked: str | None = None
    ) -> DatabaseURL:
        self = super().__new__(cls, url)
        self.source = source
        self.masked = masked if masked is not None else _mask_url(url)
        return self

    @classmethod
    def parse(
        cls, text: str, *, base_dir: Path | None = None, source: str = "literal"
    ) -> DatabaseURL:
        """Validate and normalise a URL: supported backend, default driver
        (psycopg, pymysql) filled in, a relative SQLite path made absolute
        against ``base_dir``. Raises ``ValueError`` without echoing the URL.
        """
        from sqlalchemy.engine import make_url

        origin = "" if source == "literal" else f" (from {source})"
        try:
            url = make_url(text)
        except Exception:  # ArgumentError, or ValueError for a bad port; both echo the URL
            raise ValueError(
                f"not a valid database URL{origin}; expected one like {_DATABASE_EXAMPLES}"
            ) from None
        backend, _, driver = url.drivername.partition("+")
        if backend not in _DATABASE_DRIVERS:
            raise ValueError(
                f"unsupported database {_quote(backend)}{origin}"
                f"{_suggest(backend, list(_DATABASE_DRIVERS))}; expected {_SUPPORTED_DATABASES}"
            )
        drivers, default_driver = _DATABASE_DRIVERS[backend]
        if driver and driver not in drivers:
            raise ValueError(
                f"unsupported driver {_quote(driver)} for {backend}{origin}; "
                f"expected {backend}+{drivers[0]} or plain {backend}://"
            )
        normalised = url
        if not driver and default_driver:
            normalised = normalised.set(drivername=f"{backend}+{default_driver}")
        _require_driver(backend, normalised.drivername.partition("+")[2])
        in_memory = url.database in (None, "", ":memory:")
        if backend == "sqlite" and not in_memory and url.query.get("uri") != "true":
            path = _resolve_path(url.database, base_dir or Path.cwd())
            normalised = normalised.set(database=str(path))
        # re-render only what changed: rendering escapes ":" ("sqlite:///%3Amemory%3A")
        if normalised != url:
            text = normalised.render_as_string(hide_password=False)
        return cls(text, source=source, masked=_mask_url(normalised))

    @property
    def backend(self) -> str:
        """``sqlite``, ``postgresql``, ``mysql`` or ``mariadb``."""
        return self.split(":", 1)[0].partition("+")[0]

    def display(self) -> str:
        """Masked form for ``config show``, with the source for references."""
        return self.masked if self.source == "literal" else f"{self.source} ({self.masked})"

    def __repr__(self) -> str:
        return f"DatabaseURL({self.masked!r}, source={self.source!r})"

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.with_info_plain_validator_function(_validate_database)


#: Python module and the archiver extra that provides it, per driver.
_DRIVER_MODULES = {"psycopg": ("psycopg", "postgres"), "pymysql": ("pymysql", "mysql")}


def _require_driver(backend: str, driver: str) -> None:
    """Fail at load time, not with an ImportError mid-command, when the driver is missing."""
    import importlib.util

    module, extra = _DRIVER_MODULES.get(driver, (None, None))
    if module and importlib.util.find_spec(module) is None:
        raise ValueError(
            f"{backend} needs the {module} driver, which is not installed: "
            f"pip install 'archiver[{extra}]'"
        )


def _mask_url(url: Any) -> str:
    """The URL with its password (and password-like query values) hidden."""
    from sqlalchemy.engine import make_url

    try:
        url = make_url(url)
    except Exception:
        return MASK
    hidden = sorted(key for key in url.query if _SECRET_QUERY_KEY.search(key))
    text = url.difference_update_query(hidden).render_as_string(hide_password=True)
    if hidden:
        text += ("&" if "?" in text else "?") + "&".join(f"{key}=***" for key in hidden)
    return text


def _validate_database(value: Any, info: ValidationInfo) -> DatabaseURL:
    if isinstance(value, DatabaseURL):
        return value
    if not isinstance(value, str):
        raise ValueError(
            f"must be a string: a database URL like {_DATABASE_EXAMPLES}, "
            f'or "env:NAME" / "file:PATH" holding one; got {_kind(value)}'
        )
    secret = Secret.resolve(value, base_dir=_base_dir(info), environ=_environ(info))
    return DatabaseURL.parse(secret.reveal(), base_dir=_base_dir(info), source=secret.source)


# --------------------------------------------------------------------------
# durations, sizes, cron, names, hosts


def _duration(value: Any, info: ValidationInfo) -> timedelta:
    if isinstance(value, str):
        return units.parse_duration(value)
    if isinstance(value, timedelta) and not _from_file(info):
        if value < timedelta(0):
            raise ValueError(f"must not be negative, got {value}")
        return value
    raise ValueError(f"invalid duration {_show(value)}: expected {units.DURATION_EXPECTED}")


def _positive_duration(value: Any, info: ValidationInfo) -> timedelta:
    parsed = _duration(value, info)
    if parsed <= timedelta(0):
        raise ValueError(f"must be greater than 0, got {_show(value)}")
    return parsed


def _size(value: Any, info: ValidationInfo) -> int:
    if isinstance(value, str):
        return units.parse_size(value)
    if isinstance(value, int) and not isinstance(value, bool) and not _from_file(info):
        if not 0 <= value <= units.MAX_SIZE:
            raise ValueError(f"must be 0-{units.MAX_SIZE} bytes, got {value}")
        return value
    raise ValueError(f"invalid size {_show(value)}: expected {units.SIZE_EXPECTED}")


def _positive_size(value: Any, info: ValidationInfo) -> int:
    parsed = _size(value, info)
    if parsed <= 0:
        raise ValueError(f"must be greater than 0, got {_show(value)}")
    return parsed


class _SizeField:
    """Marks an int field as a size, so to_display() writes ``"100MB"``."""


_SIZE = _SizeField()

Duration = Annotated[timedelta, PlainValidator(_duration)]
PositiveDuration = Annotated[timedelta, PlainValidator(_positive_duration)]
Size = Annotated[int, PlainValidator(_size), _SIZE]
PositiveSize = Annotated[int, PlainValidator(_positive_size), _SIZE]


_CRON_FIELDS = (
    # (what users call it, CronTrigger argument, range as documented)
    ("minute", "minute", "0-59"),
    ("hour", "hour", "0-23"),
    ("day-of-month", "day", "1-31"),
    ("month", "month", "1-12 or jan-dec"),
    ("day-of-week", "day_of_week", "0-7 or sun-sat, 0 and 7 being Sunday"),
)
_CRON_EXPECTED = (
    'expected 5 fields "minute hour day-of-month month day-of-week", like "0 3 * * *"'
)
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def _weekday_number(token: str) -> int:
    """0-7 (both 0 and 7 are Sunday) or sun-sat; 7 stays 7 so "1-7" is a range."""
    if token.isascii() and token.isdigit() and int(token) <= 7:
        return int(token)
    if token.lower() in _WEEKDAYS:
        return _WEEKDAYS.index(token.lower())
    raise ValueError(token)


def _cron_day_of_week(field: str) -> str:
    """Standard cron day-of-week (0 or 7 = Sunday) as APScheduler 3 day names.

    APScheduler 3 numbers weekdays from Monday = 0 (its documented
    "historical mistake"), so numbers are never passed to it as written.
    """
    if field == "*":
        return "*"
    days: set[int] = set()
    for item in field.split(","):
        base, slash, step_text = item.partition("/")
        if slash and not (step_text.isascii() and step_text.isdigit() and int(step_text) > 0):
            raise ValueError(item)
        step = int(step_text) if slash else 1
        if base == "*":
            first, last = 0, 6
        elif "-" in base:
            low, _, high = base.partition("-")
            first, last = _weekday_number(low), _weekday_number(high)
            if first > last:
                raise ValueError(item)
        else:
            first = _weekday_number(base)
            last = 6 if slash else first
        days.update(day % 7 for day in range(first, last + 1, step))
    if len(days) == 7:
        return "*"
    return ",".join(_WEEKDAYS[day] for day in sorted(days))


def _check_cron(value: str) -> str:
    """Validate a 5-field crontab expression (APScheduler imported only here)."""
    if value == DEFAULT_RETENTION_SCHEDULE:
        return value  # known good; spares the APScheduler import on every start
    fields = value.split()
    if len(fields) != 5:
        raise ValueError(f"invalid cron expression {_show(value)}: {_CRON_EXPECTED}")
    from apscheduler.triggers.cron import CronTrigger

    for text, (label, argument, allowed) in zip(fields, _CRON_FIELDS, strict=True):
        try:
            value_for_apscheduler = _cron_day_of_week(text) if argument == "day_of_week" else text
            CronTrigger(**{argument: value_for_apscheduler}, timezone=UTC)
        except ValueError:
            raise ValueError(
                f"invalid cron expression {_show(value)}: bad {label} field {_quote(text)} "
                f"({label} is {allowed}; also *, lists a,b, ranges a-b and steps */n)"
            ) from None
    return value


def cron_trigger(expression: str, timezone: Any = None) -> Any:
    """An APScheduler 3 trigger that fires as crontab(5) would for ``expression``.

    ``CronTrigger.from_crontab`` differs from cron in two ways this fixes:
    weekday numbers (cron: 0 and 7 are Sunday; APScheduler 3: 0 is Monday)
    and a day-of-month *and* day-of-week both restricted, which cron treats
    as "either matches" (then an ``OrTrigger`` is returned). The expression
    must already be valid (config validation checks it).
    """
    from apscheduler.triggers.cron import CronTrigger

    minute, hour, day, month, day_of_week = expression.split()
    common = {"minute": minute, "hour": hour, "month": month, "timezone": timezone}
    weekdays = _cron_day_of_week(day_of_week)
    if day.startswith("*") or day_of_week.startswith("*"):
        return CronTrigger(day=day, day_of_week=weekdays, **common)
    from apscheduler.triggers.combining import OrTrigger

    return OrTrigger([CronTrigger(day=day, **common), CronTrigger(day_of_week=weekdays, **common)])


_NAME_RE = re.compile(r"[A-Za-z0-9._-]{1,64}", re.ASCII)


def _check_name(value: str) -> str:
    if not _NAME_RE.fullmatch(value):
        raise ValueError(
            f'must be 1-64 characters: letters, digits, ".", "_" or "-", got {_show(value)}'
        )
    return value


def _check_not_empty(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


_HOST_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_HOSTNAME_RE = re.compile(rf"{_HOST_LABEL}(?:\.{_HOST_LABEL})*\.?", re.ASCII)


def _is_hostname(value: str) -> bool:
    if not value.isascii():
        try:
            value = value.encode("idna").decode("ascii")
        except UnicodeError:
            return False
    return len(value) <= 254 and bool(_HOSTNAME_RE.fullmatch(value))


def _check_host(value: str) -> str:
    try:
        ipaddress.ip_address(value)
        return value
    except ValueError:
        pass
    if _is_hostname(value):
        return value
    hint = ""
    name, colon, port = value.rpartition(":")
    if "://" in value:
        hint = ' without a scheme (like "pop.example.com")'
    elif colon and port.isdigit() and _is_hostname(name):
        hint = f" without a port (set port = {int(port)} instead)"
    elif value.startswith("[") and value.endswith("]"):
        hint = " (write IPv6 addresses without brackets)"
    raise ValueError(f"must be a host name or IP address{hint}, got {_show(value)}")


def _is_loopback(host: str) -> bool:
    """localhost, 127.0.0.0/8 or ::1: the only places clear text is harmless."""
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or bool(mapped and mapped.is_loopback)


def _check_port(value: int) -> int:
    if not 1 <= value <= 65535:
        raise ValueError(f"must be 1-65535, got {value}")
    return value


def _check_at_least_one(value: int) -> int:
    if value < 1:
        raise ValueError(f"must be at least 1, got {value}")
    return value


def _split_listen(value: str) -> tuple[str, int]:
    host, colon, port = value.rpartition(":")
    ok = bool(colon and host) and port.isascii() and port.isdigit() and 1 <= int(port) <= 65535
    if ok and host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ok = ipaddress.ip_address(host).version == 6
        except ValueError:
            ok = False
    elif ok:
        ok = ":" not in host and (_is_hostname(host) or _is_ip(host))
    if not ok:
        raise ValueError(
            f'must be "host:port" like "127.0.0.1:8080" (IPv6 as "[::1]:8080"), got {_show(value)}'
        )
    return host, int(port)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _check_listen(value: str) -> str:
    _split_listen(value)
    return value


def _readable_file(value: Any, info: ValidationInfo) -> Path:
    if isinstance(value, Path) and not _from_file(info):
        path = value if value.is_absolute() else _base_dir(info) / value
    elif isinstance(value, str) and value:
        path = _resolve_path(value, _base_dir(info))
    else:
        raise ValueError(f"must be the path of a file, got {_show(value)}")
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ValueError(f"cannot read CA file {path}: {reason}") from None
    return path


def _check_address(value: str) -> str:
    local, at, domain = value.rpartition("@")
    if not (at and local and domain) or any(c.isspace() for c in value):
        raise ValueError(f'must be an email address like "alice@example.com", got {_show(value)}')
    return value


def _check_domain(value: str) -> str:
    if _is_hostname(value):
        return value
    hint = ' (without "@")' if value.startswith("@") else ""
    raise ValueError(f'must be a domain like "example.com"{hint}, got {_show(value)}')


def _account_names(value: Any, info: ValidationInfo) -> tuple[str, ...] | None:
    if value is None:
        return None
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        raise ValueError(
            f"must be an account name or an array of account names, got {_show(value)}"
        )
    if not names:
        raise ValueError("must name at least one account")
    return tuple(_check_name(name) for name in names)


def _list_to_tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


Name = Annotated[str, AfterValidator(_check_name)]
NonEmptyStr = Annotated[str, AfterValidator(_check_not_empty)]
Host = Annotated[str, AfterValidator(_check_host)]
Port = Annotated[int, AfterValidator(_check_port)]
AtLeastOne = Annotated[int, AfterValidator(_check_at_least_one)]
Cron = Annotated[str, AfterValidator(_check_cron)]
Listen = Annotated[str, AfterValidator(_check_listen)]
ReadableFile = Annotated[Path, PlainValidator(_readable_file)]
Address = Annotated[str, AfterValidator(_check_address)]
Domain = Annotated[str, AfterValidator(_check_domain)]

Compression = Literal["zstd", "none"]
TLSMode = Literal["implicit", "starttls", "none"]
AuthMethod = Literal["auto", "user", "apop", "plain", "xoauth2"]


# --------------------------------------------------------------------------
# the models

Problem = tuple[tuple[str | int, ...], str]


class _Model(BaseModel):
    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        strict=True,  # TOML has real types: port = "995" is a mistake, not a number
        hide_input_in_errors=True,  # inputs may be passwords
    )


def _validate_with(cls: type[BaseModel], data: Any, handler: Any, problems: list[Problem]) -> Any:
    """Run ``handler`` and report ``problems`` together with its own errors."""
    if not problems:
        return handler(data)
    details: list[Any] = []
    try:
        handler(data)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            detail = {"type": error["type"], "loc": error["loc"], "input": error["input"]}
            if "ctx" in error:
                detail["ctx"] = error["ctx"]
            details.append(detail)
    for loc, message in problems:
        details.append(
            {
                "type": "value_error",
                "loc": loc,
                "input": None,
                "ctx": {"error": ValueError(message)},
            }
        )
    raise ValidationError.from_exception_data(cls.__name__, details, hide_input=True)


def _duplicates(items: Any, what: str, section: str) -> list[Problem]:
    """Problems for names used twice in an array of tables (ignoring case)."""
    if not isinstance(items, (list, tuple)):
        return []
    seen: dict[str, tuple[int, str]] = {}
    problems: list[Problem] = []
    for index, item in enumerate(items):
        name = item.get("name") if isinstance(item, Mapping) else None
        if not isinstance(name, str):
            continue
        if name.lower() in seen:
            first, first_name = seen[name.lower()]
            also = f"{section}[{first}]"
            if first_name != name:
                also += f" {_quote(first_name)}; names are compared ignoring case"
            problems.append(((index, "name"), f"duplicate {what} name {_show(name)} (also {also})"))
        else:
            seen[name.lower()] = (index, name)
    return problems


class ArchiveSettings(_Model):
    """``[archive]``: where and how messages are stored."""

    database: DatabaseURL = Field(DEFAULT_DATABASE, validate_default=True)
    compression: Compression = "zstd"


class SchedulerSettings(_Model):
    """``[scheduler]``: polling defaults and when retention runs."""

    interval: PositiveDuration = DEFAULT_INTERVAL
    max_concurrent_accounts: AtLeastOne = 4
    retention_schedule: Cron = DEFAULT_RETENTION_SCHEDULE


class Account(_Model):
    """One ``[[accounts]]`` entry: a POP3 mailbox and its collection policy.

    ``interval`` is ``None`` exactly when ``schedule`` (cron) is set; in a
    loaded ``Config`` an account that sets neither has ``scheduler.interval``.
    ``port`` defaults to 995 for ``tls = "implicit"`` and 110 otherwise.
    """

    name: Name
    host: Host
    port: Port = _IMPLICIT_TLS_PORT
    tls: TLSMode = "implicit"
    verify_tls: bool = True
    ca_file: ReadableFile | None = None
    username: NonEmptyStr
    password: Secret
    auth: AuthMethod = "auto"
    interval: PositiveDuration | None = DEFAULT_INTERVAL
    schedule: Cron | None = None
    leave_on_server: bool = True
    delete_after: Duration | None = None
    max_message_size: PositiveSize = 100 << 20
    max_messages_per_pass: AtLeastOne = 50_000
    max_bytes_per_pass: PositiveSize = 10 << 30
    timeout: PositiveDuration = timedelta(seconds=60)
    allow_insecure: bool = False
    enabled: bool = True

    @model_validator(mode="wrap")
    @classmethod
    def _combinations(cls, data: Any, handler: Any) -> Any:
        problems: list[Problem] = []
        if isinstance(data, Mapping):
            data = dict(data)
            if "port" not in data:
                implicit = data.get("tls", "implicit") == "implicit"
                data["port"] = _IMPLICIT_TLS_PORT if implicit else _PLAIN_PORT
            if "schedule" in data and "interval" not in data:
                data["interval"] = None
            problems = _account_problems(data)
        return _validate_with(cls, data, handler, problems)


def _account_problems(data: dict[str, Any]) -> list[Problem]:
    """Rules that involve several keys of one account, checked on the raw table."""
    problems: list[Problem] = []
    if data.get("interval") is not None and data.get("schedule") is not None:
        problems.append((
            (),
            "both interval and schedule are set; use interval to poll every so often "
            "or schedule for a cron timetable, not both",
        ))
    if data.get("delete_after") is not None and data.get("leave_on_server") is False:
        problems.append((
            ("delete_after",),
            "only applies with leave_on_server = true; leave_on_server = false already "
            "deletes each message from the server right after it is archived "
            "(remove delete_after, or set leave_on_server = true)",
        ))
    host = data.get("host")
    if (
        data.get("tls") == "none"
        and isinstance(host, str)
        and not _is_loopback(host)
        and data.get("allow_insecure") is not True
    ):
        problems.append((
            ("tls",),
            f'"none" sends the password in clear text to {host}; allowed only to a '
            "loopback address, or set allow_insecure = true on this account",
        ))
    return problems


class _ListenSettings(_Model):
    listen: Listen | None = None

    @property
    def host(self) -> str | None:
        """The address part of ``listen`` (IPv6 without brackets), or None."""
        return _split_listen(self.listen)[0] if self.listen else None

    @property
    def port(self) -> int | None:
        """The port part of ``listen``, or None."""
        return _split_listen(self.listen)[1] if self.listen else None


class WebSettings(_ListenSettings):
    """``[web]``: ``listen = "host:port"`` serves the web UI from ``archiver run``."""


class MetricsSettings(_ListenSettings):
    """``[metrics]``: ``listen = "host:port"`` serves /metrics and /healthz."""


_MATCH_KEYS = ("account", "from", "from_domain", "to", "to_domain", "larger", "smaller",
               "folder", "query")


class RetentionMatch(_Model):
    """The ``match`` table of a retention rule; every key set must hold (AND).

    ``from`` is the attribute ``from_`` in Python. Values are kept as
    written; matching decides about case.
    """

    _display_skips_none: ClassVar[bool] = True

    account: Annotated[tuple[str, ...] | None, PlainValidator(_account_names)] = None
    from_: Address | None = Field(None, alias="from")
    from_domain: Domain | None = None
    to: Address | None = None
    to_domain: Domain | None = None
    larger: Size | None = None
    smaller: Size | None = None
    folder: NonEmptyStr | None = None
    query: NonEmptyStr | None = None

    @model_validator(mode="wrap")
    @classmethod
    def _combinations(cls, data: Any, handler: Any) -> Any:
        problems: list[Problem] = []
        if isinstance(data, Mapping):
            if not data:
                problems.append(((), "must set at least one of " + _one_of(_MATCH_KEYS)))
            try:
                larger = units.parse_size(data["larger"])
                smaller = units.parse_size(data["smaller"])
            except (KeyError, TypeError, ValueError):
                pass
            else:
                if larger >= smaller:
                    problems.append((
                        (),
                        f"larger = {_show(data['larger'])} and smaller = {_show(data['smaller'])}"
                        " can never both hold",
                    ))
        return _validate_with(cls, data, handler, problems)


class RetentionRule(_Model):
    """One ``[[retention.rules]]`` entry: ``keep`` is a minimum, ``delete_after`` a maximum."""

    name: Name
    match: RetentionMatch
    keep: Duration | None = None
    delete_after: Duration | None = None

    @model_validator(mode="wrap")
    @classmethod
    def _combinations(cls, data: Any, handler: Any) -> Any:
        problems: list[Problem] = []
        if isinstance(data, Mapping) and "keep" not in data and "delete_after" not in data:
            problems.append(
                ((), "needs keep, delete_after or both; a rule with neither does nothing")
            )
        return _validate_with(cls, data, handler, problems)


class RetentionSettings(_Model):
    """``[retention]``: defaults for messages no rule matches, and the rules."""

    default_keep: Duration = DEFAULT_KEEP
    default_delete_after: Duration | None = None
    rules: Annotated[tuple[RetentionRule, ...], BeforeValidator(_list_to_tuple)] = ()

    @model_validator(mode="wrap")
    @classmethod
    def _unique_names(cls, data: Any, handler: Any) -> Any:
        problems: list[Problem] = []
        if isinstance(data, Mapping):
            problems = [
                (("rules", *loc), message)
                for loc, message in _duplicates(data.get("rules"), "rule", "retention.rules")
            ]
        return _validate_with(cls, data, handler, problems)


_SECTIONS = ("archive", "scheduler", "accounts", "web", "metrics", "retention")


class Config(_Model):
    """The whole config.toml, validated; build it with ``load_config``."""

    archive: ArchiveSettings = Field(default_factory=dict, validate_default=True)
    scheduler: SchedulerSettings = Field(default_factory=dict, validate_default=True)
    accounts: Annotated[tuple[Account, ...], BeforeValidator(_list_to_tuple)] = ()
    web: WebSettings = Field(default_factory=dict, validate_default=True)
    metrics: MetricsSettings = Field(default_factory=dict, validate_default=True)
    retention: RetentionSettings = Field(default_factory=dict, validate_default=True)
    #: the file this was loaded from (absolute)
    path: Path = Path(DEFAULT_CONFIG_PATH)
    #: the directory relative paths in the file are resolved against
    base_dir: Path = Field(default_factory=Path.cwd)

    @model_validator(mode="wrap")
    @classmethod
    def _whole_file(cls, data: Any, handler: Any, info: ValidationInfo) -> Any:
        problems: list[Problem] = []
        if isinstance(data, Mapping):
            data = dict(data)
            if _from_file(info):
                for key in ("path", "base_dir"):  # attributes, not keys of the file
                    if key in data:
                        del data[key]
                        problems.append(((key,), _unknown_key(key, list(_SECTIONS))))
                data["path"] = _context(info)["path"]
                data["base_dir"] = _context(info)["base_dir"]
            problems += [
                (("accounts", *loc), message)
                for loc, message in _duplicates(data.get("accounts"), "account", "accounts")
            ]
        config = _validate_with(cls, data, handler, problems)
        accounts = tuple(
            account.model_copy(update={"interval": config.scheduler.interval})
            if not {"interval", "schedule"} & account.model_fields_set
            else account
            for account in config.accounts
        )
        return config.model_copy(update={"accounts": accounts})

    def account(self, name: str) -> Account:
        """The account called ``name``; ConfigError (with a suggestion) if none is."""
        for account in self.accounts:
            if account.name == name:
                return account
        names = [account.name for account in self.accounts]
        known = f"; accounts are: {', '.join(names)}" if names else "; no accounts are configured"
        raise ConfigError(
            f"no account named {_show(name)}{_suggest(name, names)}{known}", path=str(self.path)
        )

    def to_display(self) -> dict[str, Any]:
        """The effective configuration as plain data for ``config show``.

        Defaults filled in, durations and sizes in their written form
        (``"5m"``, ``"100MB"``), paths absolute, every secret masked. Keys are
        those of config.toml; unset optional keys are ``None`` (omitted in
        ``match`` tables).
        """
        return {section: _display(getattr(self, section)) for section in _SECTIONS}


def _is_size(field: Any) -> bool:
    """Whether a model field holds a size (``Size``, possibly optional)."""
    if _SIZE in field.metadata:
        return True
    return any(
        get_origin(arg) is Annotated and _SIZE in get_args(arg)[1:]
        for arg in get_args(field.annotation)
    )


def _display(value: Any, *, size: bool = False) -> Any:
    if isinstance(value, BaseModel):
        skip_none = getattr(type(value), "_display_skips_none", False)
        out: dict[str, Any] = {}
        for name, field in type(value).model_fields.items():
            if name in ("path", "base_dir"):
                continue
            item = getattr(value, name)
            if item is None and skip_none:
                continue
            out[field.alias or name] = _display(item, size=_is_size(field))
        return out
    if isinstance(value, (Secret, DatabaseURL)):
        return value.display()
    if isinstance(value, timedelta):
        return units.format_duration(value)
    if isinstance(value, tuple):
        return [_display(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    if size and isinstance(value, int):
        return units.format_size(value)
    return value


# --------------------------------------------------------------------------
# loading and error translation


def resolve_config_path(
    cli_value: str | None, *, environ: Mapping[str, str] | None = None
) -> Path:
    """Which config file to use: ``--config``, else $ARCHIVER_CONFIG, else ./config.toml."""
    environ = os.environ if environ is None else environ
    chosen = cli_value or environ.get(CONFIG_ENV_VAR) or DEFAULT_CONFIG_PATH
    return Path(os.path.expanduser(chosen))


def load_config(
    path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None
) -> Config:
    """Read and validate config.toml; ConfigError lists every problem found.

    ``environ`` (default ``os.environ``) is where ``env:NAME`` secrets are
    looked up.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"config file {_show_path(path)} not found "
            '(run "archiver init" to create one, or pass --config PATH)'
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"cannot read config file {_show_path(path)}: {exc.strerror or type(exc).__name__}"
        ) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"config file is not UTF-8 text (bad byte at offset {exc.start})", path=str(path)
        ) from None
    return parse_config(text, path=path, environ=environ)


def parse_config(
    text: str,
    *,
    path: str | os.PathLike[str] = DEFAULT_CONFIG_PATH,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Validate config.toml given as text, as if read from ``path``.

    ``path`` anchors relative paths (its directory) and prefixes errors.
    """
    path = Path(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(_toml_problem(exc), path=str(path)) from None
    absolute = Path(os.path.abspath(path))  # "etc/../config.toml" → "/…/config.toml"
    context = {
        "from_file": True,
        "path": absolute,
        "base_dir": absolute.parent,
        "environ": os.environ if environ is None else environ,
    }
    try:
        return Config.model_validate(data, context=context)
    except ValidationError as exc:
        # "from None": the pydantic error holds the raw inputs, passwords included
        raise ConfigError(_problems(exc), path=str(path)) from None


_TOML_POSITION = re.compile(
    r"(?P<reason>.*) \(at line (?P<line>\d+), column (?P<column>\d+)\)", re.S
)
_TOML_END = re.compile(r"(?P<reason>.*) \(at end of document\)", re.S)
_TOML_TUPLE = re.compile(r"\((?:'[^']*',? ?)+\)")


def _toml_problem(exc: tomllib.TOMLDecodeError) -> str:
    message = str(exc)
    if match := _TOML_POSITION.fullmatch(message):
        where = f"at line {match['line']}, column {match['column']}"
    elif match := _TOML_END.fullmatch(message):
        where = "at the end of the file"
    else:
        return f"invalid TOML: {message}"
    # tomllib shows table names as Python tuples: "Cannot declare ('archive',) twice"
    reason = _TOML_TUPLE.sub(lambda m: ".".join(re.findall(r"'([^']*)'", m[0])), match["reason"])
    return f"invalid TOML {where}: {reason[:1].lower()}{reason[1:]}"


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+", re.ASCII)


def _key_path(loc: tuple[str | int, ...]) -> str:
    """``('accounts', 2, 'port')`` → ``accounts[2].port``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            key = part if _BARE_KEY.fullmatch(part) else json.dumps(part, ensure_ascii=False)
            text += f".{key}" if text else key
    return text


def _strip(annotation: Any) -> Any:
    """Remove Annotated[...] and Optional[...] around a type."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            args = [arg for arg in get_args(annotation) if arg is not type(None)]
            if len(args) != 1:
                return annotation
            annotation = args[0]
        else:
            return annotation


def _fields_by_key(model: type[BaseModel]) -> dict[str, Any]:
    fields = {field.alias or name: field for name, field in model.model_fields.items()}
    if model is Config:
        fields = {key: fields[key] for key in _SECTIONS}
    return fields


def _type_at(loc: tuple[str | int, ...]) -> Any:
    """The (stripped) type the schema expects at ``loc``, or None if unknown."""
    annotation: Any = Config
    for part in loc:
        annotation = _strip(annotation)
        if isinstance(part, int):
            args = get_args(annotation)
            if get_origin(annotation) not in (tuple, list) or not args:
                return None
            annotation = args[0]
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = _fields_by_key(annotation).get(part)
            if field is None:
                return None
            annotation = field.annotation
        else:
            return None
    return _strip(annotation)


def _unknown_key(key: str, valid: list[str]) -> str:
    hint = _suggest(key, valid) or f" (valid keys: {', '.join(valid)})"
    return f"unknown key{hint}"


def _problems(exc: ValidationError) -> list[str]:
    """One line per error, in the order of the file's keys."""
    errors = sorted(exc.errors(include_url=False), key=lambda error: _order(tuple(error["loc"])))
    lines: list[str] = []
    for error in errors:
        loc = tuple(error["loc"])
        line = f"{_key_path(loc)}: {_message(error, loc)}" if loc else _message(error, loc)
        if line not in lines:
            lines.append(line)
    return lines


def _order(loc: tuple[str | int, ...]) -> list[int]:
    """Sort key for ``loc``: array indexes, and keys in schema order (unknown keys last)."""
    key: list[int] = []
    annotation: Any = Config
    for part in loc:
        annotation = _strip(annotation)
        if isinstance(part, int):
            key.append(part)
            args = get_args(annotation)
            annotation = args[0] if args else None
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
            fields = _fields_by_key(annotation)
            key.append(list(fields).index(part) if part in fields else len(fields))
            annotation = fields[part].annotation if part in fields else None
        else:
            key.append(0)
    return key


def _message(error: Any, loc: tuple[str | int, ...]) -> str:
    """One pydantic error in our words (never pydantic's, never a secret)."""
    kind, value = error["type"], error.get("input")
    expected = _type_at(loc)
    # never echo a secret, not even a mistyped one
    shown = _kind(value) if expected in (Secret, DatabaseURL) else _show(value)
    if kind in ("value_error", "assertion_error"):
        return str(error.get("ctx", {}).get("error", "invalid value"))
    if kind == "missing":
        return "required key is missing"
    if kind == "extra_forbidden":
        parent = _type_at(loc[:-1])
        valid = list(_fields_by_key(parent)) if isinstance(parent, type) else []
        return _unknown_key(str(loc[-1]), valid)
    if kind == "literal_error":
        literal = get_origin(expected) is Literal
        choices = tuple(str(arg) for arg in get_args(expected)) if literal else ()
        hint = _suggest(value, choices) if isinstance(value, str) else ""
        return f"must be one of {_one_of(choices)}, got {shown}{hint}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"must be a table, got {shown}"
    if kind in ("tuple_type", "list_type"):
        item = _strip(get_args(expected)[0]) if get_args(expected) else None
        if isinstance(item, type) and issubclass(item, BaseModel):
            return f"must be an array of tables ([[{_key_path(loc)}]]), got {shown}"
        return f"must be an array, got {shown}"
    if kind == "string_type":
        return f"must be a string, got {shown}"
    if kind == "int_type" or kind.startswith("int_"):
        return f"must be an integer, got {shown}"
    if kind == "bool_type" or kind.startswith("bool_"):
        return f"must be true or false, got {shown}"
    return f"invalid value {shown}"
