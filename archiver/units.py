"""Durations and sizes as people write them: ``"30s"``, ``"7y"``, ``"50MB"``.

One strict grammar, shared by ``config.toml`` and the search language
(``larger:5MB``), so this module depends on the standard library only.

Durations
    ``<digits><unit>`` with unit ``s`` (seconds), ``m`` (minutes), ``h``,
    ``d``, ``w`` (7 days) or ``y`` (365 days; there are no months). Units are
    lower-case only (``5M`` is rejected rather than guessed: minutes or
    months?). No spaces, signs, fractions or combinations (``1h30m``): write
    ``90m``.

Sizes
    ``<digits><unit>`` with unit ``B``, ``KB``, ``MB``, ``GB`` or ``TB``.
    Units are *binary*: 1 KB = 1024 B, 1 MB = 1024 KB, and so on, which is
    what mail servers and ``ls -lh`` mean. ``KiB``, ``MiB``, ``GiB`` and
    ``TiB`` are accepted as aliases. Size units are case-insensitive
    (``50mb`` = ``50MB``); a number without a unit is rejected.

In both, leading zeros are accepted (``007d`` is seven days) and the number is
a whole number: ``0`` is allowed here, and callers that need a positive value
check that themselves. Every ``ValueError`` raised here says what was given
and what is expected, ready to be prefixed with a key name or a position.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta

__all__ = [
    "DURATION_EXPECTED",
    "DURATION_UNITS",
    "MAX_SIZE",
    "SIZE_EXPECTED",
    "SIZE_UNITS",
    "format_duration",
    "format_size",
    "parse_duration",
    "parse_size",
]

#: seconds per duration unit, largest first (the order format_duration tries)
DURATION_UNITS: dict[str, int] = {
    "y": 365 * 86400,
    "w": 7 * 86400,
    "d": 86400,
    "h": 3600,
    "m": 60,
    "s": 1,
}

#: bytes per size unit, largest first (the order format_size tries)
SIZE_UNITS: dict[str, int] = {
    "TB": 1 << 40,
    "GB": 1 << 30,
    "MB": 1 << 20,
    "KB": 1 << 10,
    "B": 1,
}
_SIZE_ALIASES = {"TIB": "TB", "GIB": "GB", "MIB": "MB", "KIB": "KB"}

#: what a duration must look like; the tail of every duration error
DURATION_EXPECTED = (
    'a whole number and a unit (s, m, h, d, w, y), like "30s", "10m", "90d", "7y"'
)
#: what a size must look like; the tail of every size error
SIZE_EXPECTED = 'a whole number and a unit (B, KB, MB, GB, TB), like "50MB"'

#: the largest size accepted: what a signed 64-bit database column holds
MAX_SIZE = (1 << 63) - 1
# timedelta cannot go beyond 999999999 days
_MAX_DURATION_SECONDS = timedelta.max.days * 86400 + timedelta.max.seconds
# more digits than this is out of range for both kinds; checking the length
# first keeps int() away from absurdly long digit strings
_MAX_DIGITS = 20

_DURATION_RE = re.compile(r"([0-9]+)([smhdwy])", re.ASCII)
_SIZE_RE = re.compile(r"([0-9]+)([A-Za-z]+)", re.ASCII)


def parse_duration(text: str) -> timedelta:
    """Parse ``"<digits><unit>"`` (unit s, m, h, d, w or y) into a timedelta.

    Raises ``ValueError`` naming the text and the expected form, or the
    largest value the unit allows when the number is too large.
    """
    if not isinstance(text, str):
        raise TypeError(f"a duration must be a str, not {type(text).__name__}")
    match = _DURATION_RE.fullmatch(text)
    if match is None:
        hint = ""
        if _DURATION_RE.fullmatch(text.lower()):
            hint = ' (units are lower-case: "m" is minutes)'
        raise ValueError(f"invalid duration {_quote(text)}: expected {DURATION_EXPECTED}{hint}")
    digits, unit = match.groups()
    per_unit = DURATION_UNITS[unit]
    limit = _MAX_DURATION_SECONDS // per_unit
    if len(digits) > _MAX_DIGITS or int(digits) > limit:
        raise ValueError(f"invalid duration {_quote(text)}: expected at most {limit}{unit}")
    return timedelta(seconds=int(digits) * per_unit)


def parse_size(text: str) -> int:
    """Parse ``"<digits><unit>"`` (unit B, KB, MB, GB, TB; binary) into bytes.

    Units are case-insensitive and ``KiB``/``MiB``/``GiB``/``TiB`` are
    aliases. Raises ``ValueError`` naming the text and the expected form.
    """
    if not isinstance(text, str):
        raise TypeError(f"a size must be a str, not {type(text).__name__}")
    match = _SIZE_RE.fullmatch(text)
    unit = match[2].upper() if match else ""
    unit = _SIZE_ALIASES.get(unit, unit)
    if match is None or unit not in SIZE_UNITS:
        raise ValueError(f"invalid size {_quote(text)}: expected {SIZE_EXPECTED}")
    digits = match[1]
    per_unit = SIZE_UNITS[unit]
    limit = MAX_SIZE // per_unit
    if len(digits) > _MAX_DIGITS or int(digits) > limit:
        raise ValueError(f"invalid size {_quote(text)}: expected at most {limit}{unit}")
    return int(digits) * per_unit


def format_duration(value: timedelta) -> str:
    """The shortest way to write ``value`` that parse_duration reads back.

    Uses the largest unit that divides it exactly (``timedelta(days=7)`` is
    ``"1w"``, ``timedelta(days=365)`` is ``"1y"``, zero is ``"0s"``). Raises
    ``ValueError`` for negative durations and fractions of a second, which
    the grammar cannot express.
    """
    if not isinstance(value, timedelta):
        raise TypeError(f"expected a timedelta, not {type(value).__name__}")
    if value < timedelta(0):
        raise ValueError(f"cannot write a negative duration ({value})")
    if value.microseconds:
        raise ValueError(f"cannot write a duration with a fraction of a second ({value})")
    seconds = value.days * 86400 + value.seconds
    if seconds == 0:
        return "0s"
    for unit, per_unit in DURATION_UNITS.items():
        if seconds % per_unit == 0:
            return f"{seconds // per_unit}{unit}"
    raise AssertionError("unreachable: 1 divides every number")  # pragma: no cover


def format_size(value: int) -> str:
    """The shortest way to write ``value`` bytes that parse_size reads back.

    Uses the largest binary unit that divides it exactly (``1048576`` is
    ``"1MB"``, ``1536`` is ``"1536B"``, zero is ``"0B"``). Exact on purpose:
    this is the written form used by ``config show``, not a rounded figure
    for humans.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an int number of bytes, not {type(value).__name__}")
    if value < 0:
        raise ValueError(f"cannot write a negative size ({value})")
    if value == 0:
        return "0B"
    for unit, per_unit in SIZE_UNITS.items():
        if value % per_unit == 0:
            return f"{value // per_unit}{unit}"
    raise AssertionError("unreachable: 1 divides every number")  # pragma: no cover


def _quote(text: str, limit: int = 60) -> str:
    """``text`` in double quotes, escaped, shortened when very long."""
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return json.dumps(text, ensure_ascii=False)
