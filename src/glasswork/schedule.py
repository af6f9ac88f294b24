"""Amazon EventBridge schedule expressions, parsed and evaluated in UTC.

`parse_schedule("rate(5 minutes)")` or `parse_schedule("cron(0 10 ? * 6L *)")`
checks an expression as EventBridge does and returns a value whose
`next_after(moment)` is the first tick strictly after `moment`. Nothing here
reads a clock: the local scheduler passes `now` in.

Rates
    `rate(value unit)`: a positive integer and `minute`, `hour` or `day`,
    singular exactly when the value is 1. EventBridge counts a rate from the
    moment the rule is created, which a local run has no equivalent of; here
    a rate ticks at the whole multiples of its period since the Unix epoch
    (1970-01-01T00:00Z), so that every worker process computes the same ticks
    without talking to the others (the scheduler's lease relies on that).
    `rate(1 day)` fires at 00:00 UTC, `rate(5 minutes)` at :00, :05, ...

Crons
    `cron(minutes hours day-of-month month day-of-week year)`, six fields, in
    UTC, always at second 0. Minutes 0-59, hours 0-23, day-of-month 1-31,
    month 1-12 or JAN-DEC, day-of-week 1-7 or SUN-SAT (1 is Sunday, unlike
    Unix cron), year 1970-2199; names are case-insensitive. The wildcards
    each field takes are AWS's table: `, - * /` in minutes, hours, month and
    year; `, - * ? / L W` in day-of-month; `, - * ? L #` in day-of-week (no
    `/` there: AWS does not list it, so it is refused).

    - `a-b` is a range; `a/n`, `*/n` and `a-b/n` step by n from a (to b, or
      to the field's end). n is 1-59, 1-23, 1-31 and 1-12 in minutes, hours,
      day-of-month and month (Quartz's limits; EventBridge refuses `*/60`),
      any positive number in year.
    - `?` means "no specific value" and is the whole field. Exactly one of
      day-of-month and day-of-week is `?`: AWS refuses a value or `*` in both,
      and Quartz, whose rules EventBridge's cron follows, refuses `?` in both.
    - Day-of-month `L` is the last day of the month, `L-n` the n-th day
      before it (n 0-30; none in a month too short for it), `nW` the weekday
      (Monday-Friday) nearest day n, `LW` (or `L-nW`) the weekday nearest the
      last (or L-n-th) day (`L-n` and `LW` are Quartz forms AWS does not
      document). `W` never leaves the month (Quartz): `1W` on a
      Saturday is Monday the 3rd, `31W` on a Sunday Friday the 29th, and `nW`
      does not fire in a month without a day n. These forms are the whole
      field, as Quartz asks.
    - Day-of-week `L` alone is the last day of the week, Saturday (7); `nL`
      is the last day n of the month (`6L`: the last Friday); `d#n` the n-th
      day d of the month (n 1-5; a month without a fifth one is skipped).
      `#` (AWS: "3#1,6#3" is invalid) and `nL` (Quartz) are the whole field.
    - A reversed range wraps around, as in Quartz: `50-10` in minutes is
      50-59 and 0-10, `FRI-MON` is Friday to Monday, `NOV-FEB` November to
      February. A reversed year range cannot wrap and is refused.

    An expression that never fires (`cron(0 0 30 2 ? *)`, February 30th) is
    accepted, as EventBridge accepts it, and `next_after` returns `None`; so
    it does once the year field is exhausted (2199 at the latest).

Sources: AWS's "Cron expressions reference" and "Rate expressions reference"
(EventBridge user guide); Quartz's `CronExpression` documentation for what
AWS leaves unsaid (W at the month's edges, `L` alone in day-of-week,
wrapping ranges, step limits, `?` in both day fields).

Why not a library: croniter (declared abandoned by its author in 2025, since
taken over by pallets-eco) numbers days of the week 0-6 from Sunday, has no
`W`, takes a year only after a seconds field and only up to 2099, and ORs a
day-of-month with a day-of-week; cronsim follows Debian's cron (five fields,
no year, 0 = Sunday, the same OR); APScheduler's `CronTrigger` counts days of
the week from Monday = 0 and spells `6L` and `3#2` "last fri" and "2nd tue",
with no `?` or `W`. Each would need a translation that changes meaning in the
corners this module exists to get right, so the engine is written here on
the standard library (its values are msgspec Structs, like the rest of
glasswork).
"""

from __future__ import annotations

import re
from bisect import bisect_left
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol, TypeAlias, assert_never

import msgspec

from glasswork.errors import ConfigurationError

__all__ = [
    "CronSchedule",
    "DayRule",
    "DaysOfMonth",
    "DaysOfWeek",
    "LastDayOfMonth",
    "LastDayOfWeek",
    "NearestWeekday",
    "NthDayOfWeek",
    "RateSchedule",
    "Schedule",
    "parse_schedule",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MINUTE = timedelta(minutes=1)
_CRON_END = datetime(2200, 1, 1, tzinfo=UTC)
"""The first minute no cron can reach: the year field stops at 2199."""

_EXPRESSION = re.compile(r"(?P<kind>rate|cron)\((?P<body>[^()]*)\)")
_SPACE = re.compile(r"\s+", re.ASCII)
_NUMBER = re.compile(r"[0-9]+")
_ITEM = re.compile(r"(?P<start>\*|[0-9]+|[A-Z]+)(?:-(?P<end>[0-9]+|[A-Z]+))?(?:/(?P<step>[0-9]+))?")
_DOM_LAST = re.compile(r"L(?:-(?P<offset>[0-9]+))?(?P<nearest>W)?")
_DOM_NEAREST = re.compile(r"(?P<day>[0-9]+)W")
_DOW_LAST = re.compile(r"(?P<day>[0-9]+|[A-Z]+)L")
_DOW_NTH = re.compile(r"(?P<day>[0-9]+|[A-Z]+)#(?P<nth>[0-9]+)")

_RATE_UNITS: dict[str, Literal["minute", "hour", "day"]] = {
    "minute": "minute",
    "minutes": "minute",
    "hour": "hour",
    "hours": "hour",
    "day": "day",
    "days": "day",
}
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}
_MONTH_NAMES = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAY_NAMES = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
_MONTH_LENGTHS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_MAX_LAST_OFFSET = 30
_MAX_NTH = 5


class Schedule(Protocol):
    """A parsed schedule expression: what the local scheduler needs of one."""

    @property
    def expression(self) -> str:
        """The expression as written (surrounding whitespace stripped)."""
        ...

    def next_after(self, moment: datetime) -> datetime | None:
        """The first tick strictly after `moment`, in UTC, or `None` if there is none."""
        ...


class RateSchedule(msgspec.Struct, frozen=True, kw_only=True):
    """`rate(value unit)`: every `value` units, aligned on the Unix epoch.

    Attributes:
        expression: The expression as written.
        value: How many units between ticks (at least 1).
        unit: The unit, singular.
    """

    expression: str
    value: int
    unit: Literal["minute", "hour", "day"]

    @property
    def period_seconds(self) -> int:
        """The time between two ticks, in seconds."""
        return self.value * _UNIT_SECONDS[self.unit]

    def next_after(self, moment: datetime) -> datetime | None:
        """The first whole multiple of the period since the epoch strictly after `moment`.

        Args:
            moment: An aware datetime, in any time zone.

        Returns:
            The tick, in UTC; `None` if it lies past what `datetime` can hold.

        Raises:
            ValueError: `moment` is naive.
        """
        _require_aware(moment)
        elapsed = moment - _EPOCH
        elapsed_us = (elapsed.days * 86_400 + elapsed.seconds) * 1_000_000 + elapsed.microseconds
        period_us = self.period_seconds * 1_000_000
        tick_seconds = (elapsed_us // period_us + 1) * self.period_seconds
        try:
            return _EPOCH + timedelta(seconds=tick_seconds)
        except OverflowError:
            return None


class DaysOfMonth(msgspec.Struct, frozen=True, kw_only=True):
    """Day-of-month values, lists, ranges and steps (a day a month lacks never fires)."""

    days: tuple[int, ...]


class LastDayOfMonth(msgspec.Struct, frozen=True, kw_only=True):
    """`L`, `L-n`, `LW`, `L-nW`: the last day minus `offset`, moved to the nearest weekday if asked."""

    offset: int = 0
    nearest_weekday: bool = False


class NearestWeekday(msgspec.Struct, frozen=True, kw_only=True):
    """`nW`: the weekday (Monday-Friday) nearest day `day`, within the same month."""

    day: int


class DaysOfWeek(msgspec.Struct, frozen=True, kw_only=True):
    """Day-of-week values, lists and ranges; 1 is Sunday, 7 Saturday (`L` alone is 7)."""

    days: tuple[int, ...]


class LastDayOfWeek(msgspec.Struct, frozen=True, kw_only=True):
    """`nL`: the last day `day_of_week` (1 = Sunday) of the month."""

    day_of_week: int


class NthDayOfWeek(msgspec.Struct, frozen=True, kw_only=True):
    """`d#n`: the `nth` day `day_of_week` (1 = Sunday) of the month."""

    day_of_week: int
    nth: int


DayRule: TypeAlias = DaysOfMonth | LastDayOfMonth | NearestWeekday | DaysOfWeek | LastDayOfWeek | NthDayOfWeek
"""Which days of a month a cron fires on: its day-of-month or its day-of-week field."""


class CronSchedule(msgspec.Struct, frozen=True, kw_only=True):
    """`cron(...)`, parsed: each field as the sorted values it allows.

    Attributes:
        expression: The expression as written.
        minutes: Minutes 0-59.
        hours: Hours 0-23.
        days: The day-of-month or day-of-week rule (whichever is not `?`).
        months: Months 1-12.
        years: Years 1970-2199.
    """

    expression: str
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: DayRule
    months: tuple[int, ...]
    years: tuple[int, ...]

    def __repr__(self) -> str:
        return f"CronSchedule(expression={self.expression!r})"

    def next_after(self, moment: datetime) -> datetime | None:
        """The first minute strictly after `moment` that the expression matches.

        The search steps field by field (year, month, day, hour, minute), so
        it costs at most a few thousand steps even for an expression that
        never fires again.

        Args:
            moment: An aware datetime, in any time zone.

        Returns:
            The tick, in UTC, at second 0; `None` if there is none.

        Raises:
            ValueError: `moment` is naive.
        """
        _require_aware(moment)
        if moment >= _CRON_END - _MINUTE:
            return None
        start = _EPOCH + ((moment - _EPOCH) // _MINUTE + 1) * _MINUTE
        for year in _from(self.years, start.year):
            same_year = year == start.year
            for month in _from(self.months, start.month if same_year else 1):
                same_month = same_year and month == start.month
                for day in _from(_days_of(self.days, year, month), start.day if same_month else 1):
                    same_day = same_month and day == start.day
                    for hour in _from(self.hours, start.hour if same_day else 0):
                        same_hour = same_day and hour == start.hour
                        minutes = _from(self.minutes, start.minute if same_hour else 0)
                        if minutes:
                            return datetime(year, month, day, hour, minutes[0], tzinfo=UTC)
        return None


def parse_schedule(expression: str) -> RateSchedule | CronSchedule:
    """Parse an EventBridge schedule expression, checking it as EventBridge does.

    Args:
        expression: `rate(value unit)` or `cron(minutes hours day-of-month
            month day-of-week year)`; surrounding whitespace is ignored.

    Returns:
        A `RateSchedule` or a `CronSchedule`, both `Schedule`s.

    Raises:
        ConfigurationError: The expression is not one EventBridge accepts; the
            one-line message names the part at fault.
    """
    if not isinstance(expression, str):
        msg = f"schedule must be a string, got {type(expression).__name__}"
        raise ConfigurationError(msg)
    text = expression.strip()
    try:
        return _parse(text)
    except _ExpressionError as exc:
        msg = f"schedule {text!r}: {exc}"
        raise ConfigurationError(msg) from None


class _ExpressionError(Exception):
    """What is wrong with an expression, before the expression is named."""


class _Field(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    low: int
    high: int
    wildcards: str
    names: tuple[str, ...] = ()
    max_step: int | None = None
    wraps: bool = True


_MINUTES = _Field(name="minutes", low=0, high=59, wildcards=", - * /", max_step=59)
_HOURS = _Field(name="hours", low=0, high=23, wildcards=", - * /", max_step=23)
_DAY_OF_MONTH = _Field(name="day-of-month", low=1, high=31, wildcards=", - * ? / L W", max_step=31)
_MONTH = _Field(name="month", low=1, high=12, wildcards=", - * /", names=_MONTH_NAMES, max_step=12)
_DAY_OF_WEEK = _Field(name="day-of-week", low=1, high=7, wildcards=", - * ? L #", names=_DAY_NAMES)
_YEAR = _Field(name="year", low=1970, high=2199, wildcards=", - * /", wraps=False)
_FIELDS = (_MINUTES, _HOURS, _DAY_OF_MONTH, _MONTH, _DAY_OF_WEEK, _YEAR)


def _parse(text: str) -> RateSchedule | CronSchedule:
    match = _EXPRESSION.fullmatch(text)
    if match is None:
        msg = "not 'rate(value unit)' or 'cron(minutes hours day-of-month month day-of-week year)'"
        raise _ExpressionError(msg)
    parts = _SPACE.split(match["body"].strip()) if match["body"].strip() else []
    if match["kind"] == "rate":
        return _parse_rate(text, parts)
    return _parse_cron(text, parts)


def _parse_rate(text: str, parts: list[str]) -> RateSchedule:
    if len(parts) != 2:
        msg = "a rate needs 'value unit', e.g. 'rate(5 minutes)'"
        raise _ExpressionError(msg)
    value_text, unit_text = parts
    if not _NUMBER.fullmatch(value_text):
        msg = f"rate value {value_text!r} is not a positive integer"
        raise _ExpressionError(msg)
    value = int(value_text)
    if value < 1:
        msg = f"rate value must be a positive integer, got {value}"
        raise _ExpressionError(msg)
    unit = _RATE_UNITS.get(unit_text)
    if unit is None:
        msg = f"unknown rate unit {unit_text!r}; use minute(s), hour(s) or day(s)"
        raise _ExpressionError(msg)
    if value == 1 and unit_text != unit:
        msg = f"a rate of 1 needs the singular unit {unit!r}, got {unit_text!r}"
        raise _ExpressionError(msg)
    if value > 1 and unit_text == unit:
        msg = f"a rate of {value} needs the plural unit {unit + 's'!r}, got {unit_text!r}"
        raise _ExpressionError(msg)
    return RateSchedule(expression=text, value=value, unit=unit)


def _parse_cron(text: str, parts: list[str]) -> CronSchedule:
    if len(parts) != 6:
        msg = f"cron needs 6 fields (minutes hours day-of-month month day-of-week year), got {len(parts)}"
        raise _ExpressionError(msg)
    for field, part in zip(_FIELDS, parts, strict=True):
        if not part.isascii():
            msg = f"{field.name}: cannot read {part!r}"
            raise _ExpressionError(msg)
        _check_wildcards(field, part.upper())
    minutes, hours, dom, month, dow, year = (part.upper() for part in parts)
    minute_values, hour_values = _values(_MINUTES, minutes), _values(_HOURS, hours)
    month_values, year_values = _values(_MONTH, month), _values(_YEAR, year)
    if dom == "?" and dow == "?":
        msg = "day-of-month and day-of-week cannot both be '?'; set one of them"
        raise _ExpressionError(msg)
    if dom != "?" and dow != "?":
        msg = "day-of-month and day-of-week cannot both be set; use '?' in one of them"
        raise _ExpressionError(msg)
    return CronSchedule(
        expression=text,
        minutes=minute_values,
        hours=hour_values,
        days=_day_of_month(dom) if dow == "?" else _day_of_week(dow),
        months=month_values,
        years=year_values,
    )


def _check_wildcards(field: _Field, value: str) -> None:
    """Refuse the wildcards AWS does not list for `field`, and a `?` that is not the whole field."""
    for char in "?#/*,-":
        if char in value and char not in field.wildcards:
            msg = f"{field.name}: {char!r} is not allowed here ({field.name} takes {field.wildcards})"
            raise _ExpressionError(msg)
    if "?" in value and value != "?":
        msg = f"{field.name}: '?' must be the whole field, got {value!r}"
        raise _ExpressionError(msg)


def _day_of_month(value: str) -> DayRule:
    if "L" not in value and "W" not in value:
        return DaysOfMonth(days=_values(_DAY_OF_MONTH, value))
    if (last := _DOM_LAST.fullmatch(value)) is not None:
        offset = int(last["offset"]) if last["offset"] is not None else 0
        if offset > _MAX_LAST_OFFSET:
            msg = f"day-of-month: the offset in {value!r} must be 0-{_MAX_LAST_OFFSET}"
            raise _ExpressionError(msg)
        return LastDayOfMonth(offset=offset, nearest_weekday=last["nearest"] is not None)
    if (nearest := _DOM_NEAREST.fullmatch(value)) is not None:
        return NearestWeekday(day=_number(_DAY_OF_MONTH, nearest["day"]))
    if "," in value or "/" in value or ("-" in value and not value.startswith("L")):
        msg = f"day-of-month: 'L' and 'W' must be the whole field (one day, no list or range), got {value!r}"
        raise _ExpressionError(msg)
    msg = f"day-of-month: cannot read {value!r}; use a day 1-31, 'L', 'L-n', 'nW' or 'LW'"
    raise _ExpressionError(msg)


def _day_of_week(value: str) -> DayRule:
    if value == "L":
        return DaysOfWeek(days=(7,))
    if "#" in value:
        if "," in value:
            msg = f"day-of-week: '#' allows one expression only, got {value!r}"
            raise _ExpressionError(msg)
        nth = _DOW_NTH.fullmatch(value)
        if nth is None:
            msg = f"day-of-week: cannot read {value!r}; '#' takes 'd#n', e.g. '3#2' (the second Tuesday)"
            raise _ExpressionError(msg)
        if not 1 <= int(nth["nth"]) <= _MAX_NTH:
            msg = f"day-of-week: the n in {value!r} must be 1-{_MAX_NTH}"
            raise _ExpressionError(msg)
        return NthDayOfWeek(day_of_week=_number(_DAY_OF_WEEK, nth["day"]), nth=int(nth["nth"]))
    if "L" in value:
        last = _DOW_LAST.fullmatch(value)
        if last is None:
            msg = f"day-of-week: 'L' must be the whole field ('L' or one 'nL', e.g. '6L'), got {value!r}"
            raise _ExpressionError(msg)
        return LastDayOfWeek(day_of_week=_number(_DAY_OF_WEEK, last["day"]))
    return DaysOfWeek(days=_values(_DAY_OF_WEEK, value))


def _values(field: _Field, value: str) -> tuple[int, ...]:
    """The sorted values a list of `*`, `a`, `a-b` and steps allows in `field`."""
    chosen: set[int] = set()
    for item in value.split(","):
        if not item:
            msg = f"{field.name}: empty item in {value!r}"
            raise _ExpressionError(msg)
        chosen.update(_item_values(field, item))
    return tuple(sorted(chosen))


def _item_values(field: _Field, item: str) -> range | list[int]:
    match = _ITEM.fullmatch(item)
    if match is None:
        msg = f"{field.name}: cannot read {item!r}"
        raise _ExpressionError(msg)
    step = 1
    if match["step"] is not None:
        step = int(match["step"])
        top = field.max_step
        if step < 1 or (top is not None and step > top):
            bounds = f"1-{top}" if top is not None else "at least 1"
            msg = f"{field.name}: the step in {item!r} must be {bounds}"
            raise _ExpressionError(msg)
    if match["start"] == "*":
        if match["end"] is not None:
            msg = f"{field.name}: '*' cannot start a range, got {item!r}"
            raise _ExpressionError(msg)
        return range(field.low, field.high + 1, step)
    start = _number(field, match["start"])
    if match["end"] is None:
        return range(start, field.high + 1, step) if match["step"] is not None else [start]
    end = _number(field, match["end"])
    if start <= end:
        return range(start, end + 1, step)
    if not field.wraps:
        msg = f"{field.name}: the range {item!r} is reversed; a {field.name} range cannot wrap around"
        raise _ExpressionError(msg)
    span = field.high - field.low + 1
    return [field.low + (v - field.low) % span for v in range(start, end + span + 1, step)]


def _number(field: _Field, token: str) -> int:
    """A value of `field`, given as digits or (month, day-of-week) a three-letter name."""
    if _NUMBER.fullmatch(token):
        number = int(token)
    elif token in field.names:
        number = field.names.index(token) + field.low
    elif field.names:
        msg = f"{field.name}: unknown name {token!r}; use {field.names[0]}-{field.names[-1]}"
        raise _ExpressionError(msg)
    else:
        msg = f"{field.name}: {token!r} is not a number"
        raise _ExpressionError(msg)
    if not field.low <= number <= field.high:
        msg = f"{field.name}: {number} is out of range {field.low}-{field.high}"
        raise _ExpressionError(msg)
    return number


def _require_aware(moment: datetime) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        msg = f"moment must be an aware datetime (e.g. tzinfo=datetime.UTC), got naive {moment!r}"
        raise ValueError(msg)


def _from(values: tuple[int, ...], low: int) -> tuple[int, ...]:
    """The values (sorted) that are at least `low`."""
    return values[bisect_left(values, low) :]


def _month_length(year: int, month: int) -> int:
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    return 29 if month == 2 and leap else _MONTH_LENGTHS[month - 1]


def _day_of_week_number(year: int, month: int, day: int) -> int:
    """EventBridge's number for the day of the week of a date: 1 is Sunday, 7 Saturday."""
    return (datetime(year, month, day).weekday() + 1) % 7 + 1


def _nearest_weekday(day: int, year: int, month: int, length: int) -> int:
    """The Monday-Friday nearest `day` without leaving the month (Quartz's `W`)."""
    weekday = _day_of_week_number(year, month, day)
    if weekday == 7:
        return day + 2 if day == 1 else day - 1
    if weekday == 1:
        return day - 2 if day == length else day + 1
    return day


def _days_of(rule: DayRule, year: int, month: int) -> tuple[int, ...]:
    """The days of `month` in `year` that `rule` fires on, sorted."""
    length = _month_length(year, month)
    match rule:
        case DaysOfMonth(days=days):
            return days[: bisect_left(days, length + 1)]
        case LastDayOfMonth(offset=offset, nearest_weekday=nearest):
            target = length - offset
            if target < 1:
                return ()
            return (_nearest_weekday(target, year, month, length) if nearest else target,)
        case NearestWeekday(day=day):
            return (_nearest_weekday(day, year, month, length),) if day <= length else ()
        case DaysOfWeek(days=days):
            first = _day_of_week_number(year, month, 1)
            return tuple(d for d in range(1, length + 1) if (first + d - 2) % 7 + 1 in days)
        case LastDayOfWeek(day_of_week=wanted):
            last = _day_of_week_number(year, month, length)
            return (length - (last - wanted) % 7,)
        case NthDayOfWeek(day_of_week=wanted, nth=nth):
            first = _day_of_week_number(year, month, 1)
            day = 1 + (wanted - first) % 7 + 7 * (nth - 1)
            return (day,) if day <= length else ()
        case _:
            assert_never(rule)
