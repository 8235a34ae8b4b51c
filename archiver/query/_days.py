"""Calendar days -> instants: where ``after:`` and ``before:`` meet the clock.

The parser yields ``datetime.date`` values only; the archive's time zone
(``[archive] timezone``, frozen into each hold) decides which instants a day
covers. Pure: no clock, no database.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, tzinfo

__all__ = ["day_bounds", "day_start"]

_EARLIEST = datetime.min.replace(tzinfo=UTC)
_LATEST = datetime.max.replace(tzinfo=UTC)


def day_start(day: date, tz: tzinfo) -> datetime:
    """The first instant of ``day`` in ``tz``, as an aware UTC datetime.

    ``after:D`` keeps messages dated at or after ``day_start(D, tz)``,
    ``before:D`` those dated before it. On a day whose midnight a DST change
    skips, the day starts at the change (the first wall-clock time that
    exists); when midnight happens twice, at the first one. At the ends of
    ``datetime``'s range (year 1 east of UTC) the result is clamped to the
    earliest or latest representable instant instead of overflowing.
    """
    if isinstance(day, datetime) or not isinstance(day, date):
        raise TypeError(f"expected a datetime.date, not {type(day).__name__}")
    try:
        return datetime.combine(day, time(), tzinfo=tz).astimezone(UTC)
    except OverflowError:
        return _EARLIEST if day.year == 1 else _LATEST


def day_bounds(day: date, tz: tzinfo) -> tuple[datetime, datetime]:
    """``(start, end)`` in UTC: the instants of ``day`` in ``tz`` are ``start <= t < end``.

    23 or 25 hours long on DST change days. See :func:`day_start`.
    """
    start = day_start(day, tz)
    end = _LATEST if day == date.max else day_start(day + timedelta(days=1), tz)
    return start, end
