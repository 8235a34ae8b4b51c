"""Durations ("7y") and sizes ("50MB"): the strict grammar of archiver.units."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from archiver.units import (
    DURATION_UNITS,
    MAX_SIZE,
    SIZE_UNITS,
    format_duration,
    format_size,
    parse_duration,
    parse_size,
)

DURATION_ERROR = (
    'expected a whole number and a unit (s, m, h, d, w, y), like "30s", "10m", "90d", "7y"'
)
SIZE_ERROR = 'expected a whole number and a unit (B, KB, MB, GB, TB), like "50MB"'
MAX_DAYS = 999_999_999  # timedelta's limit


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0s", timedelta(0)),
        ("30s", timedelta(seconds=30)),
        ("10m", timedelta(minutes=10)),
        ("6h", timedelta(hours=6)),
        ("90d", timedelta(days=90)),
        ("26w", timedelta(weeks=26)),
        ("1y", timedelta(days=365)),
        ("7y", timedelta(days=7 * 365)),
        ("007d", timedelta(days=7)),  # leading zeros are harmless: no octal here
        (f"{MAX_DAYS}d", timedelta(days=MAX_DAYS)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "5",  # no unit
        "m",  # no number
        "5 minutes",
        "5 m",  # space inside
        " 5m",
        "5m ",
        "1.5h",  # fractions
        ".5h",
        "-5m",  # signs
        "+5m",
        "1h30m",  # combinations
        "5min",
        "5mo",  # no months
        "5ms",
        "P1D",  # ISO 8601
        "\u0665m",  # ARABIC-INDIC DIGIT FIVE: only ASCII digits count
        "5m\n",
    ],
)
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_duration(text)
    assert str(info.value).endswith(DURATION_ERROR)
    assert str(info.value).startswith("invalid duration ")


def test_duration_error_message_is_exact() -> None:
    with pytest.raises(ValueError) as info:
        parse_duration("5 minutes")
    assert str(info.value) == f'invalid duration "5 minutes": {DURATION_ERROR}'


@pytest.mark.parametrize("text", ["5M", "5S", "7Y", "10D", "2H", "3W"])
def test_duration_units_are_lower_case(text: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_duration(text)
    assert str(info.value) == (
        f'invalid duration "{text}": {DURATION_ERROR} (units are lower-case: "m" is minutes)'
    )


@pytest.mark.parametrize(
    ("text", "limit"),
    [
        (f"{MAX_DAYS + 1}d", f"{MAX_DAYS}d"),
        ("3000000y", "2739726y"),
        ("99999999999999999999999999999999999999s", "86399999999999s"),
        ("1" * 5000 + "s", "86399999999999s"),  # no int() on absurdly long input
    ],
)
def test_duration_too_large(text: str, limit: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_duration(text)
    assert str(info.value).endswith(f": expected at most {limit}")


def test_duration_error_shortens_long_input() -> None:
    with pytest.raises(ValueError) as info:
        parse_duration("x" * 500)
    assert len(str(info.value)) < 200


def test_parse_duration_needs_str() -> None:
    with pytest.raises(TypeError):
        parse_duration(300)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(0), "0s"),
        (timedelta(seconds=59), "59s"),
        (timedelta(seconds=60), "1m"),
        (timedelta(seconds=90), "90s"),
        (timedelta(minutes=90), "90m"),
        (timedelta(hours=24), "1d"),
        (timedelta(days=7), "1w"),
        (timedelta(days=14), "2w"),
        (timedelta(days=90), "90d"),
        (timedelta(days=364), "52w"),
        (timedelta(days=365), "1y"),
        (timedelta(days=7 * 365), "7y"),
        (timedelta(days=MAX_DAYS), f"{MAX_DAYS}d"),
    ],
)
def test_format_duration(value: timedelta, text: str) -> None:
    assert format_duration(value) == text


@pytest.mark.parametrize("value", [timedelta(seconds=-1), timedelta(milliseconds=1500)])
def test_format_duration_rejects_what_cannot_be_written(value: timedelta) -> None:
    with pytest.raises(ValueError):
        format_duration(value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0B", 0),
        ("1B", 1),
        ("1KB", 1024),  # binary units
        ("50MB", 50 * 1024**2),
        ("100MB", 100 * 1024**2),
        ("10GB", 10 * 1024**3),
        ("2TB", 2 * 1024**4),
        ("50mb", 50 * 1024**2),  # case-insensitive
        ("50Mb", 50 * 1024**2),
        ("1kb", 1024),
        ("3b", 3),
        ("1KiB", 1024),  # aliases
        ("1MiB", 1024**2),
        ("1gib", 1024**3),
        ("1TiB", 1024**4),
        ("0050MB", 50 * 1024**2),
        (f"{MAX_SIZE}B", MAX_SIZE),
        (f"{MAX_SIZE >> 40}TB", (MAX_SIZE >> 40) << 40),
    ],
)
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "50",  # no unit
        "MB",
        "50 megs",
        "50 MB",
        " 50MB",
        "1.5MB",
        "-1MB",
        "50M",  # a unit must end in B
        "50K",
        "50PB",
        "50kB ",
        "1e6B",
        "\uff15MB",  # FULLWIDTH DIGIT FIVE
    ],
)
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_size(text)
    assert str(info.value).endswith(SIZE_ERROR)


def test_size_error_message_is_exact() -> None:
    with pytest.raises(ValueError) as info:
        parse_size("50 megs")
    assert str(info.value) == f'invalid size "50 megs": {SIZE_ERROR}'


@pytest.mark.parametrize(
    ("text", "limit"),
    [(f"{MAX_SIZE + 1}B", f"{MAX_SIZE}B"), ("9999999TB", "8388607TB"), ("9" * 50 + "KB", None)],
)
def test_size_too_large(text: str, limit: str | None) -> None:
    with pytest.raises(ValueError) as info:
        parse_size(text)
    assert ": expected at most " in str(info.value)
    if limit:
        assert str(info.value).endswith(limit)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0B"),
        (1, "1B"),
        (1023, "1023B"),
        (1024, "1KB"),
        (1536, "1536B"),  # exact, never rounded
        (100 * 1024**2, "100MB"),
        (1024**3, "1GB"),
        (10 * 1024**3, "10GB"),
        (1024**4, "1TB"),
        (1024**5, "1024TB"),
    ],
)
def test_format_size(value: int, text: str) -> None:
    assert format_size(value) == text


@pytest.mark.parametrize("value", [-1, 1.0, True, "1"])
def test_format_size_rejects(value: object) -> None:
    with pytest.raises((ValueError, TypeError)):
        format_size(value)  # type: ignore[arg-type]


whole_seconds = st.integers(min_value=0, max_value=MAX_DAYS * 86400 + 86399)


@given(whole_seconds)
def test_duration_round_trip(seconds: int) -> None:
    value = timedelta(seconds=seconds)
    assert parse_duration(format_duration(value)) == value


@given(st.integers(min_value=0, max_value=10**6), st.sampled_from(list(DURATION_UNITS)))
def test_written_duration_round_trip(number: int, unit: str) -> None:
    value = parse_duration(f"{number}{unit}")
    canonical = format_duration(value)
    assert parse_duration(canonical) == value
    assert format_duration(parse_duration(canonical)) == canonical


@given(st.integers(min_value=0, max_value=MAX_SIZE))
def test_size_round_trip(value: int) -> None:
    assert parse_size(format_size(value)) == value


@given(st.integers(min_value=0, max_value=MAX_SIZE >> 40), st.sampled_from(list(SIZE_UNITS)))
def test_written_size_round_trip(number: int, unit: str) -> None:
    value = parse_size(f"{number}{unit}")
    assert parse_size(format_size(value)) == value
