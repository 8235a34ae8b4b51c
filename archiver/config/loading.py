"""Reading config.toml: TOML, then the models, then every problem as one ConfigError.

Each problem is one line: the key path in TOML terms and the message the
validator wrote (``accounts[2].port: must be 1-65535, got 0``), in schema
order, so one run shows every mistake. Paths in the file are taken from the
file's directory, not the working directory.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from archiver.config.messages import show_path
from archiver.config.model import DEFAULT_CONFIG_PATH, Config
from archiver.config.validators import CONFIG_ERROR
from archiver.errors import ConfigError

__all__ = [
    "CONFIG_ENV_VAR", "key_path", "load_config", "parse_config", "problems", "resolve_config_path",
]

#: environment variable naming the config file when --config is not given
CONFIG_ENV_VAR = "ARCHIVER_CONFIG"


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

    ``environ`` (default: ``os.environ``, read when a secret is revealed) is
    where ``env:NAME`` secrets are looked up. Secrets are not looked up here.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"config file {show_path(path)} not found "
            '(run "archiver init" to create one, or pass --config PATH)'
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"cannot read config file {show_path(path)}: {exc.strerror or type(exc).__name__}"
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
        "shown_path": str(path),
        "environ": environ,
    }
    try:
        return Config.model_validate(data, context=context)
    except ValidationError as exc:
        # "from None": the pydantic error holds the raw inputs, passwords included
        raise ConfigError(problems(exc), path=str(path)) from None


_TOML_POSITION = re.compile(
    r"(?P<reason>.*) \(at line (?P<line>\d+), column (?P<column>\d+)\)", re.DOTALL
)
_TOML_END = re.compile(r"(?P<reason>.*) \(at end of document\)", re.DOTALL)
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


# --------------------------------------------------------------------------
# pydantic's errors → our lines

#: the only pydantic error types our validators leave to pydantic
_PYDANTIC_MESSAGES = {"missing": "required key is missing"}


def problems(exc: ValidationError) -> list[str]:
    """One line per error, ``key.path: message``, in schema order, without repeats."""
    lines: list[str] = []
    for error in sorted(exc.errors(include_url=False, include_input=False), key=_schema_order):
        loc = tuple(error["loc"])
        message = _message(error)
        line = f"{key_path(loc)}: {message}" if loc else message
        if line not in lines:
            lines.append(line)
    return lines


def _message(error: ErrorDetails) -> str:
    if error["type"] == CONFIG_ERROR:
        return error["msg"]
    if error["type"] == "value_error":  # a ValueError some validator let through
        return str(error.get("ctx", {}).get("error", "invalid value"))
    # never pydantic's wording (nor the input: it may be a password)
    return _PYDANTIC_MESSAGES.get(error["type"], "invalid value")


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+", re.ASCII)


def key_path(loc: tuple[str | int, ...]) -> str:
    """``('accounts', 2, 'port')`` → ``accounts[2].port``; odd keys quoted as in TOML."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            key = part if _BARE_KEY.fullmatch(part) else json.dumps(part, ensure_ascii=False)
            text += f".{key}" if text else key
    return text


def _schema_order(error: ErrorDetails) -> list[int]:
    """Sort key: array indexes, and keys in the order the models declare them
    (the order of the documented sample); unknown keys last in their table."""
    order: list[int] = []
    model: type[BaseModel] | None = Config
    for part in error["loc"]:
        if isinstance(part, int):
            order.append(part)
            continue
        fields = {} if model is None else {
            field.alias or attr: field for attr, field in model.model_fields.items()
        }
        keys = list(fields)
        order.append(keys.index(part) if part in fields else len(keys))
        model = _model_in(fields[part].annotation) if part in fields else None
    return order


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds (``Account`` in ``tuple[Account, ...]``), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None
