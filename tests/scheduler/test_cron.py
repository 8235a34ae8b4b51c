"""crontab(5) expressions: what check_cron accepts, and triggers that fire as cron would."""

from __future__ import annotations

import ast
import itertools
from datetime import UTC, datetime
from pathlib import Path

import pytest

from archiver.scheduler import cron
from archiver.scheduler.cron import check_cron, cron_trigger

FIELD_RANGES = {"minute": (0, 59), "hour": (0, 23), "day": (1, 31), "month": (1, 12)}


@pytest.mark.parametrize(
    "expression",
    ["*/15 * * * *", "0 3 * * 7", "0 3 * * 0-6", "0 3 * * mon-fri", "0 0 1 jan *",
     "0 3 1,15 * *", "5 4 * * sun", "0 22 * * 1-5", "0 */2 * * *", "0 3 * * */2",
     "0-30/5 9-17 * * *", "007 3 * * *", "0 3 * jan-mar,oct *", "0 3 * * 1,3-5,SAT"],
)
def test_valid_expressions_are_returned_unchanged(expression: str) -> None:
    assert check_cron(expression) == expression
    cron_trigger(expression, timezone=UTC)  # and APScheduler takes them


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("@daily", ('invalid cron expression "@daily": expected 5 fields '
         '"minute hour day-of-month month day-of-week", like "0 3 * * *"')),
        ("0 3 * *", ('invalid cron expression "0 3 * *": expected 5 fields '
         '"minute hour day-of-month month day-of-week", like "0 3 * * *"')),
        ("61 3 * * *", ('invalid cron expression "61 3 * * *": bad minute field "61" '
         "(minute is 0-59; also *, lists a,b, ranges a-b and steps */n)")),
        ("0 24 * * *", ('invalid cron expression "0 24 * * *": bad hour field "24" '
         "(hour is 0-23; also *, lists a,b, ranges a-b and steps */n)")),
        ("0 3 0 * *", ('invalid cron expression "0 3 0 * *": bad day-of-month field "0" '
         "(day-of-month is 1-31; also *, lists a,b, ranges a-b and steps */n)")),
        ("0 3 * 13 *", ('invalid cron expression "0 3 * 13 *": bad month field "13" '
         "(month is 1-12 or jan-dec; also *, lists a,b, ranges a-b and steps */n)")),
        ("0 3 * * 8", ('invalid cron expression "0 3 * * 8": bad day-of-week field "8" '
         "(day-of-week is 0-7 or sun-sat, 0 and 7 being Sunday; also *, lists a,b, "
         "ranges a-b and steps */n)")),
        ("*/0 * * * *", ('invalid cron expression "*/0 * * * *": bad minute field "*/0" '
         "(minute is 0-59; also *, lists a,b, ranges a-b and steps */n)")),
        ("30-10 * * * *", ('invalid cron expression "30-10 * * * *": bad minute field "30-10" '
         "(minute is 0-59; also *, lists a,b, ranges a-b and steps */n)")),
        ("0 3 * * fri-mon", ('invalid cron expression "0 3 * * fri-mon": bad day-of-week field '
         '"fri-mon" (day-of-week is 0-7 or sun-sat, 0 and 7 being Sunday; also *, lists a,b, '
         "ranges a-b and steps */n)")),
    ],
)
def test_invalid_expressions_name_the_field(expression: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        check_cron(expression)
    assert str(info.value) == message


def _apscheduler_accepts(field: str, text: str) -> bool:
    from apscheduler.triggers.cron import CronTrigger

    try:
        CronTrigger(timezone=UTC, **{field: text})
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("field", sorted(FIELD_RANGES))
def test_fields_checked_without_apscheduler_agree_with_it(field: str) -> None:
    """The fast path (no APScheduler import) accepts nothing APScheduler refuses."""
    low, high = FIELD_RANGES[field]
    numbers = [str(n) for n in range(low - 1, high + 2)] + ["00", "007", "1" * 12]
    steps = [f"*/{n}" for n in range(high - low + 3)]
    ranges = [f"{a}-{b}" for a, b in itertools.product(["0", "1", "5", str(high)],
                                                       ["0", "4", str(high), str(high + 1)])]
    lists = ["1,2", "1,,2", ",1", "1-3,5", "*,1", "*/2,1"]
    for text in numbers + steps + ranges + lists:
        if cron._is_simple_and_valid(text, low, high):
            assert _apscheduler_accepts(field, text), (field, text)


@pytest.mark.parametrize("text", ["*", "0", "7", "1-5", "mon-fri", "*/2", "1/2", "sun,sat",
                                  "0-7", "1-7/2", "MON", "*/7", "*/100"])
def test_day_of_week_translations_are_valid_for_apscheduler(text: str) -> None:
    assert _apscheduler_accepts("day_of_week", cron._cron_day_of_week(text))


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        # 2024-01-01 is a Monday
        ("0 3 * * 0", "2024-01-01T00:00", "2024-01-07T03:00"),  # cron 0 = Sunday
        ("0 3 * * 7", "2024-01-01T00:00", "2024-01-07T03:00"),  # so is 7
        ("0 3 * * 1-5", "2024-01-06T00:00", "2024-01-08T03:00"),  # Saturday → Monday
        ("0 3 * * */2", "2024-01-01T04:00", "2024-01-02T03:00"),  # Sun, Tue, Thu, Sat
        ("0 3 * * *", "2024-01-01T04:00", "2024-01-02T03:00"),
        # day-of-month and day-of-week both set: either matches, as in cron
        ("0 12 15 * 5", "2024-01-01T00:00", "2024-01-05T12:00"),
        ("0 12 2 * 5", "2024-01-01T00:00", "2024-01-02T12:00"),
    ],
)
def test_cron_trigger_has_crontab_semantics(expression: str, after: str, expected: str) -> None:
    now = datetime.fromisoformat(after).replace(tzinfo=UTC)
    fire = cron_trigger(expression, timezone=UTC).get_next_fire_time(None, now)
    assert fire == datetime.fromisoformat(expected).replace(tzinfo=UTC)


def test_cron_imports_nothing_of_ours() -> None:
    """config imports it, so it must not import anything that imports config."""
    for module in ("cron.py", "__init__.py"):
        source = (Path(cron.__file__).parent / module).read_text(encoding="utf-8")
        imported = {
            node.module if isinstance(node, ast.ImportFrom) else alias.name
            for node in ast.walk(ast.parse(source))
            if isinstance(node, (ast.Import, ast.ImportFrom))
            for alias in node.names
        }
        ours = {name for name in imported if name and name.split(".")[0] == "archiver"}
        assert ours <= {"archiver.errors"}, (module, ours)
