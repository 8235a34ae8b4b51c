"""crontab(5) expressions: validation in our words, and APScheduler 3 triggers.

``check_cron`` validates the 5-field expressions that config.toml accepts
(``schedule``, ``retention_schedule``); ``cron_trigger`` turns a valid one
into an APScheduler trigger that fires exactly when cron would.

This module is pure: it imports nothing of archiver's, so ``archiver.config``
may use it. Importing APScheduler costs ~8 ms of CPU, and ``archiver collect``
loads the config every few minutes, so the common field forms (``*``, ``*/n``,
numbers, ranges and lists of them, every day-of-week form) are checked here;
only the rest (month names, ranges with steps, ...) is handed to APScheduler.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, tzinfo
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from apscheduler.triggers.base import BaseTrigger

__all__ = ["CRON_EXPECTED", "check_cron", "cron_trigger"]

#: what an expression must look like; the tail of the "wrong number of fields" error
CRON_EXPECTED = (
    'expected 5 fields "minute hour day-of-month month day-of-week", like "0 3 * * *"'
)

_FIELDS = (
    # (what users call it, CronTrigger argument, first, last, range as documented)
    ("minute", "minute", 0, 59, "0-59"),
    ("hour", "hour", 0, 23, "0-23"),
    ("day-of-month", "day", 1, 31, "1-31"),
    ("month", "month", 1, 12, "1-12 or jan-dec"),
    ("day-of-week", "day_of_week", 0, 7, "0-7 or sun-sat, 0 and 7 being Sunday"),
)
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# "*", "*/n", "a" or "a-b": the forms whose validity is plain arithmetic
_SIMPLE_ITEM = re.compile(r"\*(?:/(?P<step>[0-9]+))?|(?P<first>[0-9]+)(?:-(?P<last>[0-9]+))?",
                          re.ASCII)


def check_cron(expression: str) -> str:
    """``expression`` unchanged if it is a valid 5-field crontab expression.

    Fields are minute, hour, day-of-month, month and day-of-week (0 and 7 are
    Sunday, as in cron); each is ``*``, a value, a range ``a-b``, a list
    ``a,b`` or any of these with a step ``/n``. Raises ``ValueError`` with a
    message in our words that names the bad field, ready to be prefixed with
    a key path.
    """
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(f"invalid cron expression {_quote(expression)}: {CRON_EXPECTED}")
    for text, (label, argument, first, last, allowed) in zip(fields, _FIELDS, strict=True):
        try:
            if argument == "day_of_week":
                _cron_day_of_week(text)  # its result is always valid for APScheduler
            elif not _is_simple_and_valid(text, first, last):
                _check_with_apscheduler(argument, text)
        except ValueError:
            raise ValueError(
                f"invalid cron expression {_quote(expression)}: bad {label} field {_quote(text)} "
                f"({label} is {allowed}; also *, lists a,b, ranges a-b and steps */n)"
            ) from None
    return expression


def cron_trigger(expression: str, timezone: tzinfo | str | None = None) -> BaseTrigger:
    """An APScheduler 3 trigger that fires as crontab(5) would for ``expression``.

    ``CronTrigger.from_crontab`` differs from cron in two ways this fixes:
    weekday numbers (cron: 0 and 7 are Sunday; APScheduler 3: 0 is Monday)
    and a day-of-month *and* day-of-week both restricted, which cron treats
    as "either matches" (then an ``OrTrigger`` is returned). The expression
    must be valid (``check_cron``; config validation calls it).
    """
    from apscheduler.triggers.cron import CronTrigger

    minute, hour, day, month, day_of_week = expression.split()
    weekdays = _cron_day_of_week(day_of_week)
    if day.startswith("*") or day_of_week.startswith("*"):
        return CronTrigger(minute=minute, hour=hour, day=day, month=month,
                           day_of_week=weekdays, timezone=timezone)
    from apscheduler.triggers.combining import OrTrigger

    return OrTrigger([
        CronTrigger(minute=minute, hour=hour, day=day, month=month, timezone=timezone),
        CronTrigger(minute=minute, hour=hour, month=month, day_of_week=weekdays,
                    timezone=timezone),
    ])


def _is_simple_and_valid(field: str, first: int, last: int) -> bool:
    """True if every item of ``field`` is a simple form and within range.

    False means "not decided here" (APScheduler decides), never "invalid":
    the bounds are exactly those APScheduler 3 enforces (a step at most
    last - first, ranges not reversed), so what passes here passes there.
    """
    for item in field.split(","):
        match = _SIMPLE_ITEM.fullmatch(item)
        if match is None:
            return False
        if match["step"] is not None:
            if len(match["step"]) > 9 or not 0 < int(match["step"]) <= last - first:
                return False
        elif match["first"] is not None:
            low = match["first"]
            high = match["last"] if match["last"] is not None else low
            if len(low) > 9 or len(high) > 9 or not first <= int(low) <= int(high) <= last:
                return False
    return True


def _check_with_apscheduler(argument: str, text: str) -> None:
    from apscheduler.triggers.cron import CronTrigger

    CronTrigger(timezone=UTC, **{argument: text})


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
    Raises ``ValueError`` for anything cron would not accept.
    """
    if field == "*":
        return "*"
    days: set[int] = set()
    for item in field.split(","):
        base, slash, step_text = item.partition("/")
        if slash and not (step_text.isascii() and step_text.isdigit() and 0 < int(step_text)):
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


def _quote(text: str, limit: int = 60) -> str:
    """``text`` in double quotes, escaped, shortened when very long."""
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return json.dumps(text, ensure_ascii=False)
