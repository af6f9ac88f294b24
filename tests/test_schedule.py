"""EventBridge schedule expressions: `parse_schedule` and `next_after`.

Known answers were worked out on a calendar by hand. The properties compare
the engine with `_Matcher`, a deliberately naive second reading of the
expression: membership by arithmetic, field by field, and a day-by-day scan
for a tick the engine skipped.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from glasswork import JobContext, define_periodic_job
from glasswork.errors import ConfigurationError
from glasswork.schedule import (
    CronSchedule,
    DaysOfMonth,
    DaysOfWeek,
    LastDayOfMonth,
    LastDayOfWeek,
    NearestWeekday,
    NthDayOfWeek,
    RateSchedule,
    Schedule,
    parse_schedule,
)


def at(
    year: int,
    month: int,
    day: int,
    hour: int = 0,
    minute: int = 0,
    *,
    second: int = 0,
    micro: int = 0,
    tz: tzinfo = UTC,
) -> datetime:
    """An aware datetime, UTC unless told."""
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=tz)


def next_tick(expression: str, moment: datetime) -> datetime | None:
    schedule: Schedule = parse_schedule(expression)
    return schedule.next_after(moment)


# --- parsing ------------------------------------------------------------------------


def test_a_rate_is_parsed_to_value_and_singular_unit() -> None:
    schedule = parse_schedule("  rate(5 minutes)\n")

    assert schedule == RateSchedule(expression="rate(5 minutes)", value=5, unit="minute")
    assert schedule.period_seconds == 300


@pytest.mark.parametrize(
    ("expression", "seconds"),
    [("rate(1 minute)", 60), ("rate(1 hour)", 3600), ("rate(12 hours)", 43200), ("rate(7 days)", 604800)],
)
def test_rate_period_seconds(expression: str, seconds: int) -> None:
    schedule = parse_schedule(expression)

    assert isinstance(schedule, RateSchedule)
    assert schedule.period_seconds == seconds


def test_a_cron_is_parsed_to_its_field_sets() -> None:
    schedule = parse_schedule("cron(0/15 8-10 ? jan-MAR Mon-Fri 2025-2026)")

    assert schedule == CronSchedule(
        expression="cron(0/15 8-10 ? jan-MAR Mon-Fri 2025-2026)",
        minutes=(0, 15, 30, 45),
        hours=(8, 9, 10),
        days=DaysOfWeek(days=(2, 3, 4, 5, 6)),
        months=(1, 2, 3),
        years=(2025, 2026),
    )
    assert repr(schedule) == "CronSchedule(expression='cron(0/15 8-10 ? jan-MAR Mon-Fri 2025-2026)')"


@pytest.mark.parametrize(
    ("day_of_month", "day_of_week", "rule"),
    [
        ("1-31/10", "?", DaysOfMonth(days=(1, 11, 21, 31))),
        ("L", "?", LastDayOfMonth()),
        ("L-3", "?", LastDayOfMonth(offset=3)),
        ("LW", "?", LastDayOfMonth(nearest_weekday=True)),
        ("L-2W", "?", LastDayOfMonth(offset=2, nearest_weekday=True)),
        ("15W", "?", NearestWeekday(day=15)),
        ("?", "L", DaysOfWeek(days=(7,))),
        ("?", "6L", LastDayOfWeek(day_of_week=6)),
        ("?", "friL", LastDayOfWeek(day_of_week=6)),
        ("?", "3#2", NthDayOfWeek(day_of_week=3, nth=2)),
        ("?", "TUE#2", NthDayOfWeek(day_of_week=3, nth=2)),
        ("?", "*", DaysOfWeek(days=(1, 2, 3, 4, 5, 6, 7))),
        ("?", "SAT-MON", DaysOfWeek(days=(1, 2, 7))),
    ],
)
def test_day_fields_are_parsed_to_day_rules(day_of_month: str, day_of_week: str, rule: object) -> None:
    schedule = parse_schedule(f"cron(0 0 {day_of_month} * {day_of_week} *)")

    assert isinstance(schedule, CronSchedule)
    assert schedule.days == rule


def test_star_covers_the_whole_field() -> None:
    schedule = parse_schedule("cron(* * * * ? *)")

    assert isinstance(schedule, CronSchedule)
    assert schedule.minutes == tuple(range(60))
    assert schedule.hours == tuple(range(24))
    assert schedule.days == DaysOfMonth(days=tuple(range(1, 32)))
    assert schedule.months == tuple(range(1, 13))
    assert schedule.years == tuple(range(1970, 2200))


def test_a_reversed_range_wraps_around_and_steps_across_the_edge() -> None:
    schedule = parse_schedule("cron(50-10/5 22-1 28-2 NOV-FEB ? *)")

    assert isinstance(schedule, CronSchedule)
    assert schedule.minutes == (0, 5, 10, 50, 55)
    assert schedule.hours == (0, 1, 22, 23)
    assert schedule.days == DaysOfMonth(days=(1, 2, 28, 29, 30, 31))
    assert schedule.months == (1, 2, 11, 12)


def test_a_start_with_a_step_runs_to_the_end_of_the_field() -> None:
    schedule = parse_schedule("cron(1/10 20/2 ? 7/6 * 2190/4)")

    assert isinstance(schedule, CronSchedule)
    assert schedule.minutes == (1, 11, 21, 31, 41, 51)
    assert schedule.hours == (20, 22)
    assert schedule.months == (7,)
    assert schedule.years == (2190, 2194, 2198)


# --- next_after: known answers ------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        # rates tick on whole multiples of the period since 1970-01-01T00:00Z
        ("rate(1 day)", at(2026, 11, 3, 10, 7, second=30), at(2026, 11, 4)),
        ("rate(5 minutes)", at(2026, 11, 3, 10, 7, second=30), at(2026, 11, 3, 10, 10)),
        ("rate(5 minutes)", at(2026, 11, 3, 10, 10), at(2026, 11, 3, 10, 15)),
        (
            "rate(5 minutes)",
            at(2026, 11, 3, 12, 7, second=30, tz=timezone(timedelta(hours=2))),
            at(2026, 11, 3, 10, 10),
        ),
        ("rate(1 hour)", at(2026, 11, 3, 10, 0, micro=1), at(2026, 11, 3, 11)),
        ("rate(7 days)", at(2026, 11, 3), at(2026, 11, 5)),  # 1970-01-01 was a Thursday
        ("rate(1 day)", at(1969, 12, 31, 12), at(1970, 1, 1)),
        ("rate(1 minute)", at(1969, 12, 31, 23, 59, second=59), at(1970, 1, 1)),
    ],
)
def test_rate_known_answers(expression: str, after: datetime, expected: datetime) -> None:
    assert next_tick(expression, after) == expected


def test_a_rate_past_what_datetime_holds_has_no_tick() -> None:
    assert next_tick("rate(99999999 days)", at(2026, 1, 1)) is None


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        # minutes and hours: lists, ranges, steps
        ("cron(0 10,15 * * ? *)", at(2026, 11, 3, 10), at(2026, 11, 3, 15)),
        ("cron(0/15 * * * ? *)", at(2026, 11, 3, 10, 7), at(2026, 11, 3, 10, 15)),
        ("cron(1/10 * * * ? *)", at(2026, 11, 3, 10, 5), at(2026, 11, 3, 10, 11)),
        ("cron(*/10 * * * ? *)", at(2026, 11, 3, 10, 51), at(2026, 11, 3, 11)),
        ("cron(5-40/5 * * * ? *)", at(2026, 11, 3, 10, 41), at(2026, 11, 3, 11, 5)),
        ("cron(50-10 * * * ? *)", at(2026, 11, 3, 10, 10), at(2026, 11, 3, 10, 50)),
        ("cron(50-10 * * * ? *)", at(2026, 11, 3, 10, 59), at(2026, 11, 3, 11)),
        ("cron(0 22-2 * * ? *)", at(2026, 11, 3, 2), at(2026, 11, 3, 22)),
        ("cron(0 22-2 * * ? *)", at(2026, 11, 3, 23), at(2026, 11, 4, 0)),
        # strictly after, at second 0, whatever the moment's zone
        ("cron(* * * * ? *)", at(2026, 11, 3, 10, 0, second=30), at(2026, 11, 3, 10, 1)),
        ("cron(0 10 * * ? *)", at(2026, 11, 3, 10), at(2026, 11, 4, 10)),
        ("cron(0 5 * * ? *)", at(2026, 11, 1, 23, 30, tz=timezone(timedelta(hours=-5))), at(2026, 11, 2, 5)),
        ("cron(0 0 1 1 ? *)", at(1960, 5, 5), at(1970, 1, 1)),
        # day-of-month: values and months without the day
        ("cron(0 0 31 * ? *)", at(2026, 4, 1), at(2026, 5, 31)),
        ("cron(0 0 29 2 ? *)", at(2026, 3, 1), at(2028, 2, 29)),
        ("cron(0 0 29 2 ? *)", at(2096, 3, 1), at(2104, 2, 29)),  # 2100 is no leap year
        # L: the last day of the month, leap years included
        ("cron(0 0 L 2 ? *)", at(2027, 1, 1), at(2027, 2, 28)),
        ("cron(0 0 L 2 ? *)", at(2028, 1, 1), at(2028, 2, 29)),
        ("cron(0 0 L 2 ? *)", at(2100, 1, 1), at(2100, 2, 28)),
        ("cron(0 0 L 2 ? *)", at(2000, 1, 1), at(2000, 2, 29)),
        ("cron(0 0 L * ? *)", at(2026, 4, 1), at(2026, 4, 30)),
        ("cron(0 0 L-3 * ? *)", at(2026, 2, 1), at(2026, 2, 25)),
        ("cron(0 0 L-30 * ? *)", at(2026, 2, 1), at(2026, 3, 1)),  # February has no L-30
        # W: the nearest weekday, never leaving the month
        ("cron(0 9 15W * ? *)", at(2026, 8, 1), at(2026, 8, 14, 9)),  # Sat 15th -> Fri 14th
        ("cron(0 9 15W * ? *)", at(2026, 2, 1), at(2026, 2, 16, 9)),  # Sun 15th -> Mon 16th
        ("cron(0 9 15W * ? *)", at(2026, 10, 1), at(2026, 10, 15, 9)),  # Thu 15th stays
        ("cron(0 9 1W * ? *)", at(2026, 7, 2), at(2026, 8, 3, 9)),  # Sat 1st -> Mon 3rd
        ("cron(0 9 1W * ? *)", at(2026, 1, 31), at(2026, 2, 2, 9)),  # Sun 1st -> Mon 2nd
        ("cron(0 9 31W * ? *)", at(2026, 4, 1), at(2026, 5, 29, 9)),  # no 31st in April; Sun 31st -> Fri
        ("cron(0 9 LW * ? *)", at(2025, 11, 1), at(2025, 11, 28, 9)),  # Sun 30th -> Fri 28th
        ("cron(0 9 LW * ? *)", at(2026, 2, 1), at(2026, 2, 27, 9)),  # Sat 28th -> Fri 27th
        ("cron(0 9 L-1W * ? *)", at(2026, 5, 1), at(2026, 5, 29, 9)),  # Sat 30th -> Fri 29th
        # day-of-week: 1 is Sunday; names, ranges, L, nL, #
        ("cron(0 12 ? * 1 *)", at(2026, 11, 2), at(2026, 11, 8, 12)),
        ("cron(0 12 ? * SUN *)", at(2026, 11, 2), at(2026, 11, 8, 12)),
        ("cron(0 12 ? * 7 *)", at(2026, 11, 2), at(2026, 11, 7, 12)),
        ("cron(0 9 ? * MON-FRI *)", at(2026, 11, 6, 18), at(2026, 11, 9, 9)),
        ("cron(0 9 ? * mon-fri *)", at(2026, 11, 4, 9), at(2026, 11, 5, 9)),
        ("cron(0 9 ? * MON,WED,FRI *)", at(2026, 11, 3), at(2026, 11, 4, 9)),
        ("cron(0 0 ? * FRI-MON *)", at(2026, 11, 3), at(2026, 11, 6)),
        ("cron(0 0 ? * FRI-MON *)", at(2026, 11, 9), at(2026, 11, 13)),
        ("cron(0 0 ? * L *)", at(2026, 11, 2), at(2026, 11, 7)),  # L alone: Saturday
        ("cron(0 10 ? * 6L *)", at(2026, 11, 1), at(2026, 11, 27, 10)),  # last Friday
        ("cron(0 10 ? * 1L *)", at(2026, 11, 1), at(2026, 11, 29, 10)),  # last Sunday
        ("cron(0 0 ? * 3#2 *)", at(2026, 11, 1), at(2026, 11, 10)),  # second Tuesday
        ("cron(0 0 ? * 3#2 *)", at(2026, 11, 10), at(2026, 12, 8)),
        ("cron(0 0 ? * 2#5 *)", at(2026, 12, 1), at(2027, 3, 29)),  # no fifth Monday in Dec-Feb
        ("cron(0 0 ? * 3#5 *)", at(2026, 3, 1), at(2026, 3, 31)),  # the fifth Tuesday is the last day
        ("cron(0 0 ? * 1#1 *)", at(2026, 2, 2), at(2026, 3, 1)),
        # month and year
        ("cron(0 0 1 NOV-FEB ? *)", at(2026, 2, 15), at(2026, 11, 1)),
        ("cron(0 0 1 1 ? 2020)", at(2019, 6, 1), at(2020, 1, 1)),
        ("cron(0 0 1 1 ? 2020/5)", at(2021, 1, 1), at(2025, 1, 1)),
        ("cron(15 10 ? * 6L 2022-2023)", at(2023, 12, 1), at(2023, 12, 29, 10, 15)),
        ("cron(59 23 31 12 ? 2199)", at(2199, 12, 31, 23, 58), at(2199, 12, 31, 23, 59)),
    ],
)
def test_cron_known_answers(expression: str, after: datetime, expected: datetime) -> None:
    assert next_tick(expression, after) == expected


@pytest.mark.parametrize(
    ("expression", "after"),
    [
        ("cron(0 0 1 1 ? 2020)", at(2020, 1, 1)),  # the year field is exhausted
        ("cron(15 10 ? * 6L 2022-2023)", at(2023, 12, 29, 10, 15)),
        ("cron(59 23 31 12 ? 2199)", at(2199, 12, 31, 23, 59)),
        ("cron(* * * * ? *)", at(2199, 12, 31, 23, 59)),
        ("cron(* * * * ? *)", at(9999, 12, 31, 23, 59)),
        ("cron(0 0 30 2 ? *)", at(1970, 1, 1)),  # February 30th: accepted, never fires
        ("cron(0 0 31 APR,JUN,SEP,NOV ? *)", at(1970, 1, 1)),
        ("cron(0 0 ? 2 2#5 2021-2023)", at(2020, 1, 1)),
    ],
)
def test_cron_without_a_next_tick_returns_none(expression: str, after: datetime) -> None:
    assert next_tick(expression, after) is None


@pytest.mark.parametrize("expression", ["rate(5 minutes)", "cron(0 12 * * ? *)"])
def test_a_naive_moment_is_a_value_error(expression: str) -> None:
    with pytest.raises(ValueError, match="aware datetime"):
        parse_schedule(expression).next_after(datetime(2026, 1, 1))


# --- rejections ---------------------------------------------------------------------

REJECTED = [
    ("", "not 'rate(value unit)' or 'cron(minutes hours day-of-month month day-of-week year)'"),
    (
        "every 5 minutes",
        "not 'rate(value unit)' or 'cron(minutes hours day-of-month month day-of-week year)'",
    ),
    ("5 * * * *", "not 'rate(value unit)' or 'cron(minutes hours day-of-month month day-of-week year)'"),
    (
        "RATE(5 minutes)",
        "not 'rate(value unit)' or 'cron(minutes hours day-of-month month day-of-week year)'",
    ),
    ("rate()", "a rate needs 'value unit', e.g. 'rate(5 minutes)'"),
    ("rate(5)", "a rate needs 'value unit', e.g. 'rate(5 minutes)'"),
    ("rate(five minutes)", "rate value 'five' is not a positive integer"),
    ("rate(-5 minutes)", "rate value '-5' is not a positive integer"),
    ("rate(0 minutes)", "rate value must be a positive integer, got 0"),
    ("rate(5 weeks)", "unknown rate unit 'weeks'; use minute(s), hour(s) or day(s)"),
    ("rate(1 minutes)", "a rate of 1 needs the singular unit 'minute', got 'minutes'"),
    ("rate(1 hours)", "a rate of 1 needs the singular unit 'hour', got 'hours'"),
    ("rate(5 minute)", "a rate of 5 needs the plural unit 'minutes', got 'minute'"),
    ("rate(2 day)", "a rate of 2 needs the plural unit 'days', got 'day'"),
    ("cron()", "cron needs 6 fields (minutes hours day-of-month month day-of-week year), got 0"),
    ("cron(0 12 * * *)", "cron needs 6 fields (minutes hours day-of-month month day-of-week year), got 5"),
    (
        "cron(0 0 12 * * ? *)",
        "cron needs 6 fields (minutes hours day-of-month month day-of-week year), got 7",
    ),
    # the day fields
    ("cron(0 12 * * * *)", "day-of-month and day-of-week cannot both be set; use '?' in one of them"),
    ("cron(0 12 1 * MON *)", "day-of-month and day-of-week cannot both be set; use '?' in one of them"),
    ("cron(0 12 ? * ? *)", "day-of-month and day-of-week cannot both be '?'; set one of them"),
    ("cron(0 0 ?,1 * ? *)", "day-of-month: '?' must be the whole field, got '?,1'"),
    # out of range
    ("cron(60 * * * ? *)", "minutes: 60 is out of range 0-59"),
    ("cron(0 24 * * ? *)", "hours: 24 is out of range 0-23"),
    ("cron(0 0 0 * ? *)", "day-of-month: 0 is out of range 1-31"),
    ("cron(0 0 32 * ? *)", "day-of-month: 32 is out of range 1-31"),
    ("cron(0 0 1 13 ? *)", "month: 13 is out of range 1-12"),
    ("cron(0 0 ? * 0 *)", "day-of-week: 0 is out of range 1-7"),
    ("cron(0 0 ? * 8 *)", "day-of-week: 8 is out of range 1-7"),
    ("cron(0 0 1 * ? 1969)", "year: 1969 is out of range 1970-2199"),
    ("cron(0 0 1 * ? 2200)", "year: 2200 is out of range 1970-2199"),
    ("cron(0 0 1 * ? 2020-2200)", "year: 2200 is out of range 1970-2199"),
    # names
    ("cron(0 0 1 JANUARY ? *)", "month: unknown name 'JANUARY'; use JAN-DEC"),
    ("cron(0 0 1 JAN-FOO ? *)", "month: unknown name 'FOO'; use JAN-DEC"),
    ("cron(0 0 ? * SUNDAY *)", "day-of-week: unknown name 'SUNDAY'; use SUN-SAT"),
    ("cron(L 0 1 * ? *)", "minutes: 'L' is not a number"),
    ("cron(0 0 1 * ? FOO)", "year: 'FOO' is not a number"),
    # lists, ranges, steps
    ("cron(1,,2 * * * ? *)", "minutes: empty item in '1,,2'"),
    ("cron(1, * * * ? *)", "minutes: empty item in '1,'"),
    ("cron(1.5 * * * ? *)", "minutes: cannot read '1.5'"),
    # a dotless i upper-cases to "I", which would make "FRI" out of non-ASCII text
    ("cron(0 0 ? * fr\u0131 *)", "day-of-week: cannot read 'fr\u0131'"),
    ("cron(-5 * * * ? *)", "minutes: cannot read '-5'"),
    ("cron(*-5 * * * ? *)", "minutes: '*' cannot start a range, got '*-5'"),
    ("cron(*/0 * * * ? *)", "minutes: the step in '*/0' must be 1-59"),
    ("cron(*/60 * * * ? *)", "minutes: the step in '*/60' must be 1-59"),
    ("cron(0 0/24 * * ? *)", "hours: the step in '0/24' must be 1-23"),
    ("cron(0 0 1/32 * ? *)", "day-of-month: the step in '1/32' must be 1-31"),
    ("cron(0 0 1 1-12/13 ? *)", "month: the step in '1-12/13' must be 1-12"),
    ("cron(0 0 1 1 ? 2020/0)", "year: the step in '2020/0' must be at least 1"),
    ("cron(0 0 1 1 ? 2030-2020)", "year: the range '2030-2020' is reversed; a year range cannot wrap around"),
    # wildcards a field does not take
    ("cron(0 ? * * ? *)", "hours: '?' is not allowed here (hours takes , - * /)"),
    ("cron(0 0 1 # ? *)", "month: '#' is not allowed here (month takes , - * /)"),
    ("cron(0 0 1 * ? #)", "year: '#' is not allowed here (year takes , - * /)"),
    ("cron(0 0 1# * ? *)", "day-of-month: '#' is not allowed here (day-of-month takes , - * ? / L W)"),
    ("cron(0 0 ? * 1/2 *)", "day-of-week: '/' is not allowed here (day-of-week takes , - * ? L #)"),
    # L and W in day-of-month
    (
        "cron(0 0 1,L * ? *)",
        "day-of-month: 'L' and 'W' must be the whole field (one day, no list or range), got '1,L'",
    ),
    (
        "cron(0 0 1-15W * ? *)",
        "day-of-month: 'L' and 'W' must be the whole field (one day, no list or range), got '1-15W'",
    ),
    (
        "cron(0 0 L/2 * ? *)",
        "day-of-month: 'L' and 'W' must be the whole field (one day, no list or range), got 'L/2'",
    ),
    ("cron(0 0 W * ? *)", "day-of-month: cannot read 'W'; use a day 1-31, 'L', 'L-n', 'nW' or 'LW'"),
    ("cron(0 0 L- * ? *)", "day-of-month: cannot read 'L-'; use a day 1-31, 'L', 'L-n', 'nW' or 'LW'"),
    ("cron(0 0 L-31 * ? *)", "day-of-month: the offset in 'L-31' must be 0-30"),
    ("cron(0 0 32W * ? *)", "day-of-month: 32 is out of range 1-31"),
    ("cron(0 0 0W * ? *)", "day-of-month: 0 is out of range 1-31"),
    # L and # in day-of-week
    (
        "cron(0 0 ? * 2,6L *)",
        "day-of-week: 'L' must be the whole field ('L' or one 'nL', e.g. '6L'), got '2,6L'",
    ),
    (
        "cron(0 0 ? * 2-6L *)",
        "day-of-week: 'L' must be the whole field ('L' or one 'nL', e.g. '6L'), got '2-6L'",
    ),
    ("cron(0 0 ? * 8L *)", "day-of-week: 8 is out of range 1-7"),
    ("cron(0 0 ? * 3#1,6#3 *)", "day-of-week: '#' allows one expression only, got '3#1,6#3'"),
    ("cron(0 0 ? * 3#6 *)", "day-of-week: the n in '3#6' must be 1-5"),
    ("cron(0 0 ? * 3#0 *)", "day-of-week: the n in '3#0' must be 1-5"),
    ("cron(0 0 ? * 8#1 *)", "day-of-week: 8 is out of range 1-7"),
    ("cron(0 0 ? * # *)", "day-of-week: cannot read '#'; '#' takes 'd#n', e.g. '3#2' (the second Tuesday)"),
]


@pytest.mark.parametrize(("expression", "problem"), REJECTED)
def test_rejected_expressions_name_the_problem(expression: str, problem: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_schedule(expression)

    assert str(caught.value) == f"schedule {expression.strip()!r}: {problem}"
    assert "\n" not in str(caught.value)


def test_a_non_string_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="schedule must be a string, got int"):
        parse_schedule(5)  # type: ignore[arg-type]  # the runtime check under test


def _tick(payload: None, ctx: JobContext) -> None:
    pass


def test_define_periodic_job_prefixes_the_job_name() -> None:
    with pytest.raises(ConfigurationError) as caught:
        define_periodic_job(name="tick", handler=_tick, schedule=" cron(0 12 * * * *) ")

    assert str(caught.value) == (
        "job 'tick': schedule 'cron(0 12 * * * *)': "
        "day-of-month and day-of-week cannot both be set; use '?' in one of them"
    )


def test_define_periodic_job_keeps_the_stripped_expression() -> None:
    job = define_periodic_job(name="tick", handler=_tick, schedule=" cron(0 10 ? * 6L *)\n")

    assert job.schedule == "cron(0 10 ? * 6L *)"


# --- properties ---------------------------------------------------------------------

MONTH_NAMES = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
DAY_NAMES = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
SCAN_DAYS = 400
"""How far past the moment the brute-force check looks for a tick the engine missed."""


def _value(token: str, names: tuple[str, ...], low: int) -> int:
    return int(token) if token.isdigit() else names.index(token.upper()) + low


def _item_allows(item: str, value: int, low: int, high: int, names: tuple[str, ...]) -> bool:
    """Whether one list item (`*`, `a`, `a-b`, each with an optional `/step`) allows `value`.

    Membership by arithmetic on the distance from the item's start, going
    round the field: a different route from the engine's enumeration.
    """
    body, _, step_text = item.partition("/")
    step = int(step_text) if step_text else 1
    if body == "*":
        first, last = low, high
    elif "-" in body:
        start, end = body.split("-")
        first, last = _value(start, names, low), _value(end, names, low)
    else:
        first = _value(body, names, low)
        last = high if step_text else first
    span = high - low + 1
    distance = (value - first) % span
    return distance <= (last - first) % span and distance % step == 0


def _field_allows(field: str, value: int, low: int, high: int, names: tuple[str, ...] = ()) -> bool:
    return any(_item_allows(item, value, low, high, names) for item in field.split(","))


def _nearest_weekday(target: int, year: int, month: int) -> int | None:
    """The Monday-Friday of the month closest to day `target` (None if the month has no such day)."""
    length = calendar.monthrange(year, month)[1]
    if target < 1 or target > length:
        return None
    weekdays = [d for d in range(1, length + 1) if date(year, month, d).isoweekday() <= 5]
    return min(weekdays, key=lambda d: abs(d - target))


def _day_of_month_allows(field: str, day: date) -> bool:
    length = calendar.monthrange(day.year, day.month)[1]
    if field.startswith("L"):
        body = field.removesuffix("W")
        target = length - (int(body[2:]) if body.startswith("L-") else 0)
        wanted = _nearest_weekday(target, day.year, day.month) if field.endswith("W") else target
        return day.day == wanted
    if field.endswith("W"):
        return day.day == _nearest_weekday(int(field[:-1]), day.year, day.month)
    return _field_allows(field, day.day, 1, 31)


def _day_of_week_allows(field: str, day: date) -> bool:
    number = day.isoweekday() % 7 + 1  # 1 = Sunday ... 7 = Saturday
    length = calendar.monthrange(day.year, day.month)[1]
    if field == "L":
        return number == 7
    if "#" in field:
        wanted, nth = field.split("#")
        return number == _value(wanted, DAY_NAMES, 1) and (day.day - 1) // 7 + 1 == int(nth)
    if field.endswith("L"):
        return number == _value(field[:-1], DAY_NAMES, 1) and day.day + 7 > length
    return _field_allows(field, number, 1, 7, DAY_NAMES)


class _Matcher:
    """A naive, independent reading of a cron expression: does this minute match?"""

    def __init__(self, expression: str) -> None:
        minutes, hours, self.dom, self.month, self.dow, self.year = expression[5:-1].split()
        self.minutes = [m for m in range(60) if _field_allows(minutes, m, 0, 59)]
        self.hours = [h for h in range(24) if _field_allows(hours, h, 0, 23)]

    def day_matches(self, day: date) -> bool:
        if not 1970 <= day.year <= 2199 or not _field_allows(self.year, day.year, 1970, 2199):
            return False
        if not _field_allows(self.month, day.month, 1, 12, MONTH_NAMES):
            return False
        if self.dom != "?":
            return _day_of_month_allows(self.dom, day)
        return _day_of_week_allows(self.dow, day)

    def matches(self, moment: datetime) -> bool:
        return (
            moment.second == 0
            and moment.microsecond == 0
            and moment.hour in self.hours
            and moment.minute in self.minutes
            and self.day_matches(moment.date())
        )

    def first_between(self, after: datetime, before: datetime) -> datetime | None:
        """The first matching minute strictly between `after` and `before` (UTC), scanning day by day."""
        day = after.date()
        while datetime.combine(day, time(), UTC) < before:
            if self.day_matches(day):
                for hour in self.hours:
                    for minute in self.minutes:
                        candidate = datetime.combine(day, time(hour, minute), UTC)
                        if candidate > after:
                            return candidate if candidate < before else None
            day += timedelta(days=1)
        return None


def _token(value: int, names: tuple[str, ...], low: int) -> st.SearchStrategy[str]:
    if names:
        return st.sampled_from([str(value), names[value - low], names[value - low].lower()])
    return st.just(str(value))


@st.composite
def _list_field(draw: st.DrawFn, low: int, high: int, names: tuple[str, ...], max_step: int | None) -> str:
    """A list of 1-3 items: `*`, `a`, `a-b` (reversed ones wrap), each with a step if allowed."""
    items: list[str] = []
    for _ in range(draw(st.integers(1, 3))):
        values = st.integers(low, high)
        kind = draw(st.sampled_from(["*", "a", "a-b"]))
        body = "*"
        if kind != "*":
            body = draw(values.flatmap(lambda v: _token(v, names, low)))
        if kind == "a-b":
            body += "-" + draw(values.flatmap(lambda v: _token(v, names, low)))
        if max_step is not None and draw(st.booleans()):
            body += f"/{draw(st.integers(1, max_step))}"
        items.append(body)
    return ",".join(items)


@st.composite
def _day_of_month_field(draw: st.DrawFn) -> str:
    special = st.sampled_from(["L", "LW"]) | st.integers(0, 30).map(lambda n: f"L-{n}")
    special |= st.integers(0, 30).map(lambda n: f"L-{n}W") | st.integers(1, 31).map(lambda n: f"{n}W")
    return draw(special if draw(st.booleans()) else _list_field(1, 31, (), 31))


@st.composite
def _day_of_week_field(draw: st.DrawFn) -> str:
    day = st.integers(1, 7).flatmap(lambda v: _token(v, DAY_NAMES, 1))
    special = st.just("L") | day.map(lambda d: f"{d}L")
    special |= st.tuples(day, st.integers(1, 5)).map(lambda dn: f"{dn[0]}#{dn[1]}")
    return draw(special if draw(st.booleans()) else _list_field(1, 7, DAY_NAMES, None))


@st.composite
def _year_field(draw: st.DrawFn, year: int) -> str:
    """A year field around `year`, so that most ticks lie within the brute-force scan."""
    near = st.integers(max(1970, year - 2), min(2199, year + 1))
    first = draw(near)
    choices = [
        "*",
        str(first),
        f"{first}-{min(2199, first + draw(st.integers(0, 3)))}",
        f"{first}/{draw(st.integers(1, 3))}",
        f"{first},{draw(near)}",
    ]
    return draw(st.sampled_from(choices))


MOMENTS = st.builds(
    lambda naive, offset: naive.replace(tzinfo=timezone(offset)),
    st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2199, 12, 30)),
    st.timedeltas(min_value=timedelta(hours=-14), max_value=timedelta(hours=14)).map(
        lambda d: timedelta(minutes=d // timedelta(minutes=1))
    ),
)


@st.composite
def _cron_cases(draw: st.DrawFn) -> tuple[str, datetime]:
    moment = draw(MOMENTS)
    minutes = draw(_list_field(0, 59, (), 59))
    hours = draw(_list_field(0, 23, (), 23))
    if draw(st.booleans()):
        dom, dow = draw(_day_of_month_field()), "?"
    else:
        dom, dow = "?", draw(_day_of_week_field())
    month = draw(_list_field(1, 12, MONTH_NAMES, 12))
    year = draw(_year_field(moment.astimezone(UTC).year))
    return f"cron({minutes} {hours} {dom} {month} {dow} {year})", moment


@given(_cron_cases())
def test_cron_next_after_is_the_first_matching_minute(case: tuple[str, datetime]) -> None:
    expression, moment = case
    matcher = _Matcher(expression)
    schedule = parse_schedule(expression)

    found = schedule.next_after(moment)

    start = moment.astimezone(UTC)
    horizon = min(start + timedelta(days=SCAN_DAYS), datetime(2200, 1, 1, tzinfo=UTC))
    if found is None:
        assert matcher.first_between(start, horizon) is None
        return
    assert found > moment
    assert found.tzinfo is UTC
    assert matcher.matches(found)
    assert matcher.first_between(start, min(found, horizon)) is None
    assert schedule.next_after(found - timedelta(microseconds=1)) == found


@given(
    st.integers(1, 10_000),
    st.sampled_from(["minute", "hour", "day"]),
    MOMENTS,
)
def test_rate_next_after_is_aligned_strictly_after_and_within_one_period(
    value: int, unit: str, moment: datetime
) -> None:
    plural = unit if value == 1 else unit + "s"
    schedule = parse_schedule(f"rate({value} {plural})")
    assert isinstance(schedule, RateSchedule)
    period = timedelta(seconds=schedule.period_seconds)

    found = schedule.next_after(moment)

    assert found is not None
    assert found.tzinfo is UTC
    assert moment < found <= moment + period
    assert (found - datetime(1970, 1, 1, tzinfo=UTC)) % period == timedelta(0)
    assert schedule.next_after(found) == found + period


@given(st.text(alphabet="0123456789*/,-?LW#JANMOFRIcrontae() ", max_size=40) | st.text(max_size=40))
def test_any_text_parses_or_is_a_configuration_error(text: str) -> None:
    parse: Callable[[str], object] = parse_schedule
    try:
        parse(text)
    except ConfigurationError as exc:
        message = str(exc)
    else:
        return
    assert message.startswith("schedule ")
    assert "\n" not in message
