"""Validators for config.toml values, each failing with our own message.

Every check here raises ``invalid(message)``: a ``PydanticCustomError`` of
type ``CONFIG_ERROR`` whose message is final, in our words, ready to be
prefixed with a key path (``must be 1-65535, got 0``). Loading takes it as
is, so users never see pydantic's wording. The ``Annotated`` aliases at the
end bind each check to its type, and durations, sizes and secrets to the
form ``config show`` writes them in (``"5m"``, ``"100MB"``, masked).

A file must use the written forms (``port = 995``, ``interval = "10m"``,
``max_message_size = "50MB"``; ``port = "995"`` is a mistake, not a number);
models built in code also take ``timedelta`` durations and ``int`` sizes.
Values that may be secrets are never echoed, only their kind.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, get_args

from pydantic import BeforeValidator, PlainSerializer, PlainValidator, ValidationInfo
from pydantic_core import PydanticCustomError

from archiver import units
from archiver.config.messages import kind, one_of, show, suggest
from archiver.config.secrets import DATABASE_EXAMPLES, DatabaseURL, Secret, resolve_path
from archiver.scheduler.cron import check_cron

__all__ = [
    "CONFIG_ERROR", "AccountNames", "Address", "AtLeastOne", "Bool", "Cron", "DatabaseValue",
    "Domain", "Duration", "Host", "Listen", "Name", "NonEmptyStr", "Port", "PositiveDuration",
    "PositiveSize", "ReadableFile", "SecretValue", "Size", "base_dir", "choice", "config_path",
    "environ", "from_file", "invalid", "is_loopback", "loaded_from", "split_listen", "tables",
]

#: the pydantic error type of every message written here
CONFIG_ERROR = "archiver_config"


def invalid(message: str) -> PydanticCustomError:
    """The error to raise for a bad value: ``message`` is shown after the key path, as is."""
    # no context: the template is returned unformatted, so "{" in a value is harmless
    return PydanticCustomError(CONFIG_ERROR, message)


# --------------------------------------------------------------------------
# validation context: where the file lives and which environment to read


def _context(info: ValidationInfo | None) -> Mapping[str, Any]:
    context = info.context if info is not None else None
    return context if isinstance(context, Mapping) else {}


def from_file(info: ValidationInfo | None) -> bool:
    """True while validating config.toml (only written forms allowed)."""
    return bool(_context(info).get("from_file"))


def base_dir(info: ValidationInfo | None) -> Path:
    """The directory relative paths are taken from: the config file's, else the cwd."""
    directory = _context(info).get("base_dir")
    return directory if isinstance(directory, Path) else Path.cwd()


def environ(info: ValidationInfo | None) -> Mapping[str, str] | None:
    """Where ``env:NAME`` secrets will be looked up; None means ``os.environ``."""
    found = _context(info).get("environ")
    return found if isinstance(found, Mapping) else None


def loaded_from(info: ValidationInfo | None) -> Path | None:
    """The config file being validated (absolute), or None for models built in code."""
    path = _context(info).get("path")
    return path if isinstance(path, Path) else None


def config_path(info: ValidationInfo | None) -> str | None:
    """The config file as the caller named it, for errors raised after loading."""
    path = _context(info).get("shown_path")
    return path if isinstance(path, str) else None


# --------------------------------------------------------------------------
# scalars


def string(value: object) -> str:
    if not isinstance(value, str):
        raise invalid(f"must be a string, got {show(value)}")
    return value


def integer(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid(f"must be an integer, got {show(value)}")
    return value


def boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise invalid(f"must be true or false, got {show(value)}")
    return value


def choice(literal: object) -> Callable[[object], Any]:
    """A check for one of the values of ``Literal[...]`` type ``literal``."""
    choices = tuple(str(arg) for arg in get_args(literal))

    def check(value: object) -> Any:
        if isinstance(value, str) and value in choices:
            return value
        hint = suggest(value, choices) if isinstance(value, str) else ""
        raise invalid(f"must be one of {one_of(choices)}, got {show(value)}{hint}")

    return check


_NAME_RE = re.compile(r"[A-Za-z0-9._-]{1,64}", re.ASCII)


def name(value: object) -> str:
    """An account or rule name: the stable id stored in the archive."""
    if not _NAME_RE.fullmatch(string(value)):
        raise invalid(
            f'must be 1-64 characters: letters, digits, ".", "_" or "-", got {show(value)}'
        )
    return str(value)


def non_empty(value: object) -> str:
    if not string(value).strip():
        raise invalid("must not be empty")
    return str(value)


def port(value: object) -> int:
    number = integer(value)
    if not 1 <= number <= 65535:
        raise invalid(f"must be 1-65535, got {number}")
    return number


def at_least_one(value: object) -> int:
    number = integer(value)
    if number < 1:
        raise invalid(f"must be at least 1, got {number}")
    return number


# --------------------------------------------------------------------------
# durations and sizes (the grammar lives in archiver.units)


def duration(value: object, info: ValidationInfo) -> timedelta:
    if isinstance(value, str):
        try:
            return units.parse_duration(value)
        except ValueError as exc:
            raise invalid(str(exc)) from None
    if isinstance(value, timedelta) and not from_file(info):
        if value < timedelta(0):
            raise invalid(f"must not be negative, got {value}")
        return value
    raise invalid(f"invalid duration {show(value)}: expected {units.DURATION_EXPECTED}")


def positive_duration(value: object, info: ValidationInfo) -> timedelta:
    parsed = duration(value, info)
    if parsed <= timedelta(0):
        raise invalid(f"must be greater than 0, got {show(value)}")
    return parsed


def size(value: object, info: ValidationInfo) -> int:
    if isinstance(value, str):
        try:
            return units.parse_size(value)
        except ValueError as exc:
            raise invalid(str(exc)) from None
    if isinstance(value, int) and not isinstance(value, bool) and not from_file(info):
        if not 0 <= value <= units.MAX_SIZE:
            raise invalid(f"must be 0-{units.MAX_SIZE} bytes, got {value}")
        return value
    raise invalid(f"invalid size {show(value)}: expected {units.SIZE_EXPECTED}")


def positive_size(value: object, info: ValidationInfo) -> int:
    parsed = size(value, info)
    if parsed <= 0:
        raise invalid(f"must be greater than 0, got {show(value)}")
    return parsed


def cron(value: object) -> str:
    try:
        return check_cron(string(value))
    except ValueError as exc:
        raise invalid(str(exc)) from None


# --------------------------------------------------------------------------
# hosts, addresses, files

_HOST_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_HOSTNAME_RE = re.compile(rf"{_HOST_LABEL}(?:\.{_HOST_LABEL})*\.?", re.ASCII)


def _is_hostname(value: str) -> bool:
    if not value.isascii():
        try:
            value = value.encode("idna").decode("ascii")
        except UnicodeError:
            return False
    return len(value) <= 254 and bool(_HOSTNAME_RE.fullmatch(value))


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def host(value: object) -> str:
    text = string(value)
    if _is_ip(text) or _is_hostname(text):
        return text
    hint = ""
    hostname, colon, number = text.rpartition(":")
    if "://" in text:
        hint = ' without a scheme (like "pop.example.com")'
    elif colon and number.isdigit() and _is_hostname(hostname):
        hint = f" without a port (set port = {int(number)} instead)"
    elif text.startswith("[") and text.endswith("]"):
        hint = " (write IPv6 addresses without brackets)"
    raise invalid(f"must be a host name or IP address{hint}, got {show(text)}")


def is_loopback(host: str) -> bool:
    """localhost, 127.0.0.0/8 or ::1: the only places clear text is harmless."""
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or bool(mapped and mapped.is_loopback)


def split_listen(value: str) -> tuple[str, int]:
    """``"host:port"`` (IPv6 as ``"[::1]:port"``) → (host, port); ``ValueError`` if malformed."""
    hostname, colon, number = value.rpartition(":")
    ok = (bool(colon and hostname) and number.isascii() and number.isdigit()
          and 1 <= int(number) <= 65535)
    if ok and hostname.startswith("[") and hostname.endswith("]"):
        hostname = hostname[1:-1]
        try:
            ok = ipaddress.ip_address(hostname).version == 6
        except ValueError:
            ok = False
    elif ok:
        ok = ":" not in hostname and (_is_hostname(hostname) or _is_ip(hostname))
    if not ok:
        raise ValueError(value)
    return hostname, int(number)


def listen(value: object) -> str:
    text = string(value)
    try:
        split_listen(text)
    except ValueError:
        raise invalid(
            f'must be "host:port" like "127.0.0.1:8080" (IPv6 as "[::1]:8080"), got {show(text)}'
        ) from None
    return text


def readable_file(value: object, info: ValidationInfo) -> Path:
    if isinstance(value, Path) and not from_file(info):
        path = value if value.is_absolute() else base_dir(info) / value
    elif isinstance(value, str) and value:
        path = resolve_path(value, base_dir(info))
    else:
        raise invalid(f"must be the path of a file, got {show(value)}")
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise invalid(f"cannot read CA file {path}: {exc.strerror or type(exc).__name__}") from None
    return path


def address(value: object) -> str:
    text = string(value)
    local, at, domain_part = text.rpartition("@")
    if not (at and local and domain_part) or any(c.isspace() for c in text):
        raise invalid(f'must be an email address like "alice@example.com", got {show(text)}')
    return text


def domain(value: object) -> str:
    text = string(value)
    if _is_hostname(text):
        return text
    hint = ' (without "@")' if text.startswith("@") else ""
    raise invalid(f'must be a domain like "example.com"{hint}, got {show(text)}')


def account_names(value: object) -> tuple[str, ...]:
    """One account name or an array of them (a retention rule's ``match.account``)."""
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        raise invalid(f"must be an account name or an array of account names, got {show(value)}")
    if not names:
        raise invalid("must name at least one account")
    return tuple(name(item) for item in names)


def array_of_tables(key: str) -> Callable[[object], object]:
    """A check that ``key`` is an array of tables (``[[key]]``), as a tuple for the model."""

    def check(value: object) -> object:
        if isinstance(value, list):
            return tuple(value)
        if isinstance(value, tuple):
            return value
        raise invalid(f"must be an array of tables ([[{key}]]), got {show(value)}")

    return check


# --------------------------------------------------------------------------
# secrets: the spelling is checked now, the value looked up on use


def secret(value: object, info: ValidationInfo) -> Secret:
    if isinstance(value, Secret):
        return value
    if not isinstance(value, str):
        # never echo: a password written without quotes is still a password
        raise invalid(
            f'must be a string (the secret, "env:NAME" or "file:PATH"), got {kind(value)}'
        )
    try:
        return Secret.parse(value, base_dir=base_dir(info), environ=environ(info))
    except ValueError as exc:
        raise invalid(str(exc)) from None


def database(value: object, info: ValidationInfo) -> DatabaseURL:
    if isinstance(value, DatabaseURL):
        return value
    if not isinstance(value, str):
        raise invalid(
            f"must be a string: a database URL like {DATABASE_EXAMPLES}, "
            f'or "env:NAME" / "file:PATH" holding one; got {kind(value)}'
        )
    try:
        written = Secret.parse(value, base_dir=base_dir(info), environ=environ(info))
        return DatabaseURL.from_secret(written, base_dir=base_dir(info))
    except ValueError as exc:
        raise invalid(str(exc)) from None


# --------------------------------------------------------------------------
# the types the models are made of


def _written_duration(value: timedelta) -> str:
    return units.format_duration(value)


def _written_size(value: int) -> str:
    return units.format_size(value)


_AS_WRITTEN_DURATION = PlainSerializer(_written_duration, when_used="json")
_AS_WRITTEN_SIZE = PlainSerializer(_written_size, when_used="json")

Bool = Annotated[bool, PlainValidator(boolean)]
Name = Annotated[str, PlainValidator(name)]
NonEmptyStr = Annotated[str, PlainValidator(non_empty)]
Host = Annotated[str, PlainValidator(host)]
Port = Annotated[int, PlainValidator(port)]
AtLeastOne = Annotated[int, PlainValidator(at_least_one)]
Duration = Annotated[timedelta, PlainValidator(duration), _AS_WRITTEN_DURATION]
PositiveDuration = Annotated[timedelta, PlainValidator(positive_duration), _AS_WRITTEN_DURATION]
Size = Annotated[int, PlainValidator(size), _AS_WRITTEN_SIZE]
PositiveSize = Annotated[int, PlainValidator(positive_size), _AS_WRITTEN_SIZE]
Cron = Annotated[str, PlainValidator(cron)]
Listen = Annotated[str, PlainValidator(listen)]
ReadableFile = Annotated[Path, PlainValidator(readable_file)]
Address = Annotated[str, PlainValidator(address)]
Domain = Annotated[str, PlainValidator(domain)]
# an explicit serializer: pydantic 2.14 warns when serializing a plain-validated tuple to JSON
AccountNames = Annotated[
    tuple[str, ...], PlainValidator(account_names), PlainSerializer(list, when_used="json")
]
SecretValue = Annotated[Secret, PlainValidator(secret), PlainSerializer(Secret.display)]
DatabaseValue = Annotated[
    DatabaseURL, PlainValidator(database), PlainSerializer(DatabaseURL.display)
]


def tables(key: str) -> BeforeValidator:
    """For ``Annotated[tuple[Model, ...], tables("key")]``: an array of tables, as a tuple."""
    return BeforeValidator(array_of_tables(key))
