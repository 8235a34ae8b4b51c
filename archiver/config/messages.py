"""How values are written in config error messages: as in TOML, shortened, never a secret."""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Iterable, Mapping
from datetime import date, datetime, time, timedelta
from pathlib import Path

from archiver import units

__all__ = ["kind", "one_of", "quote", "show", "show_path", "suggest", "unknown_key"]


def kind(value: object) -> str:
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


def quote(text: str, limit: int = 60) -> str:
    """``text`` in double quotes, escaped as in TOML, shortened when very long."""
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return json.dumps(text, ensure_ascii=False)


def show(value: object) -> str:
    """``value`` as it would be written in TOML, shortened; compound values by kind."""
    if isinstance(value, str):
        return quote(value)
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
            return quote(units.format_duration(value))
        except ValueError:
            return str(value)
    return kind(value)


def suggest(word: str, candidates: Iterable[str]) -> str:
    """`` (did you mean "x"?)`` when ``word`` is close to one of ``candidates``, else ``""``."""
    lowered = {c.lower(): c for c in candidates}
    close = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.6)
    return f' (did you mean "{lowered[close[0]]}"?)' if close else ""


def one_of(choices: Iterable[str]) -> str:
    return ", ".join(choices)


def unknown_key(key: str, valid: Iterable[str]) -> str:
    """``unknown key (did you mean "host"?)``, or the valid keys when none is close."""
    valid = list(valid)
    hint = suggest(key, valid) or f" (valid keys: {', '.join(valid)})"
    return f"unknown key{hint}"


def show_path(path: Path | str) -> str:
    """A path as the user would type it: relative ones get a ``./``."""
    text = str(path)
    if not os.path.isabs(text) and not text.startswith("."):
        text = "./" + text
    return text
