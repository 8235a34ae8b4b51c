"""Calendar days in the archive's time zone -> UTC instants, at DST edges too."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from archiver.query import day_bounds, day_start


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_a_day_in_utc():
    assert day_bounds(date(2024, 1, 31), UTC) == (utc(2024, 1, 31), utc(2024, 2, 1))


def test_a_day_east_and_west_of_utc():
    assert day_bounds(date(2024, 1, 31), ZoneInfo("Europe/Berlin")) == (
        utc(2024, 1, 30, 23), utc(2024, 1, 31, 23))
    assert day_bounds(date(2024, 7, 1), ZoneInfo("America/New_York")) == (
        utc(2024, 7, 1, 4), utc(2024, 7, 2, 4))
    assert day_start(date(2024, 1, 1), timezone(timedelta(hours=5, minutes=30))) == (
        utc(2023, 12, 31, 18, 30))


def test_dst_days_are_23_and_25_hours_long():
    berlin = ZoneInfo("Europe/Berlin")
    start, end = day_bounds(date(2024, 3, 31), berlin)
    assert (start, end - start) == (utc(2024, 3, 30, 23), timedelta(hours=23))
    start, end = day_bounds(date(2024, 10, 27), berlin)
    assert (start, end - start) == (utc(2024, 10, 26, 22), timedelta(hours=25))


def test_a_day_whose_midnight_is_skipped_starts_at_the_change():
    # São Paulo, 2018-11-04: clocks jumped from 00:00 to 01:00 (-03 to -02)
    start, end = day_bounds(date(2018, 11, 4), ZoneInfo("America/Sao_Paulo"))
    assert start == utc(2018, 11, 4, 3)
    assert start.astimezone(ZoneInfo("America/Sao_Paulo")).hour == 1
    assert end - start == timedelta(hours=23)


def test_a_day_whose_midnight_happens_twice_starts_at_the_first():
    # Havana, 2023-11-05: clocks went back from 01:00 to 00:00 (-04 to -05)
    start, end = day_bounds(date(2023, 11, 5), ZoneInfo("America/Havana"))
    assert start == utc(2023, 11, 5, 4)
    assert end - start == timedelta(hours=25)


def test_just_before_and_just_after_a_boundary():
    berlin = ZoneInfo("Europe/Berlin")
    start, _ = day_bounds(date(2024, 6, 1), berlin)
    just_before = datetime(2024, 5, 31, 23, 59, 59, 999999, tzinfo=berlin)
    at_midnight = datetime(2024, 6, 1, tzinfo=berlin)
    assert just_before < start <= at_midnight


def test_the_ends_of_the_calendar_do_not_overflow():
    tokyo, new_york = ZoneInfo("Asia/Tokyo"), ZoneInfo("America/New_York")
    assert day_start(date.min, tokyo) == datetime.min.replace(tzinfo=UTC)
    assert day_bounds(date.max, new_york)[1] == datetime.max.replace(tzinfo=UTC)
    start, end = day_bounds(date.max, UTC)
    assert start == utc(9999, 12, 31) and start < end


def test_days_only():
    with pytest.raises(TypeError):
        day_start(datetime(2024, 1, 1), UTC)
