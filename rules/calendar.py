"""Business calendars: when a help desk is open, and business time on its clock.

In rules.yaml::

    calendars:
      office: {timezone: Europe/Berlin, hours: {mon-fri: "09:00-17:00"},
               holidays: [2026-12-24, 2026-12-31], country: DE, subdivision: BY}
      always: {timezone: UTC, hours: {mon-sun: "00:00-24:00"}}
      split:  {timezone: America/New_York,
               hours: {mon-thu: "08:00-12:00, 13:00-17:00", fri: "08:00-12:00"}}

``timezone`` (required)
    An IANA time zone name (``Europe/Berlin``, ``UTC``); the hours are its wall-clock times.
``hours`` (required)
    Day or day range -> one or more ``HH:MM-HH:MM`` ranges separated by commas. Days are
    ``mon tue wed thu fri sat sun``; a range runs forwards inside one week (``mon-fri``,
    ``sat-sun``; not ``fri-mon``: write ``fri-sun`` and ``mon``). A day belongs to one
    entry only. A range ends after it starts and never past midnight (``24:00`` ends the
    day; split a night shift into ``22:00-24:00`` and ``00:00-06:00`` on the next day).
    Ranges of one day do not overlap (they may touch). Days not given are closed. At
    least one day must have hours.
``holidays`` (optional)
    Dates (``2026-12-24``, quoted or not) on which the calendar is closed all day.
``country`` (optional), ``subdivision`` (optional, needs ``country``)
    The public holidays of a country (ISO code, ``DE``, ``US``) and region (``BY``) as the
    `holidays` package knows them close the calendar too, on top of ``holidays``.

`parse_calendar(name, data, key_path)` turns one entry into a `Calendar`, or reports
every problem at once as (key path, message) for the loader to locate.

A `Calendar` answers on instants: naive datetimes are UTC (the store keeps naive UTC),
results are aware UTC. *Business time* is real elapsed time while the calendar is open:

- `is_open(at)`, `next_open(at)` (`at` itself when open), `is_holiday(local_date)`,
  `open_weekdays` (5 for mon-fri);
- `add(start, timedelta)`: the instant when that much business time has passed after
  `start` (zero: `next_open(start)`); when the amount runs out exactly at a closing time,
  the closing time (Friday 16:00 + 1h is Friday 17:00, not Monday 09:00);
- `add_duration(start, Duration)`: SLA targets with business days (`rules.durations`);
- `between(start, end)`: the business time from start to end; `between(s, add(s, d)) == d`.

Each local day's ranges become intervals of instants. Daylight saving time:

- the hours are wall-clock hours, so 09:00-17:00 is 8 business hours on every day, and
  an interval covering a clock change has its real length: 00:00-24:00 is 23 hours on a
  spring-forward day and 25 hours on a fall-back day.
- A wall time that does not exist (the clocks jump over it: 02:30 on 2026-03-29 in
  Berlin) means the moment of the jump (03:00 summer time). So a range inside the gap
  (02:00-03:00) is empty that day and skipped, and 01:30-02:30 lasts 30 minutes.
- A wall time that happens twice (the clocks go back over it: 02:30 on 2026-10-25 in
  Berlin) means its first occurrence (summer time; PEP 495 fold=0). So 02:00-03:00 lasts
  two hours that day, 01:00-02:30 one and a half, 02:30-04:00 two and a half.
  These choices keep the open intervals in order and without overlaps, so `is_open`,
  `add` and `between` always agree.

`Calendar.hours` holds 7 entries, Monday first, each a tuple of (start, end) local
times in order; an end of 24:00 is `END_OF_DAY` (= `time.max`), never time(0, 0).
Country holidays are looked up per (country, subdivision, year) on first use and cached
for the process. A calendar closed for `MAX_CLOSED_DAYS` days in a row (every day a
holiday) makes `add`, `add_duration` and `next_open` raise `CalendarNeverOpens`.
"""
from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import holidays as holidays_package

from rules.durations import Duration
from rules.source import KeyPath, did_you_mean

__all__ = ["END_OF_DAY", "MAX_CLOSED_DAYS", "Calendar", "CalendarNeverOpens", "Problem",
           "parse_calendar"]

Problem = tuple[KeyPath, str]
Hours = tuple[tuple[tuple[time, time], ...], ...]

END_OF_DAY = time.max              # a range ending at 24:00
MAX_CLOSED_DAYS = 3 * 366          # closed this many days in a row: the calendar never opens
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
KEYS = ("timezone", "hours", "holidays", "country", "subdivision")
UTC = timezone.utc
_DAY = timedelta(days=1)


class CalendarNeverOpens(ValueError):
    """The calendar stays closed for MAX_CLOSED_DAYS days in a row: no deadline exists."""


@dataclass(frozen=True)
class Calendar:
    name: str
    timezone: str                      # IANA name as written
    hours: Hours                       # 7 entries, Monday first; 24:00 is END_OF_DAY
    holidays: frozenset[date] = frozenset()
    country: str | None = None
    subdivision: str | None = None
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Refuse (ValueError) what parse_calendar would refuse, for hand-built calendars."""
        try:
            object.__setattr__(self, "_zone", ZoneInfo(self.timezone))
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise ValueError(f"timezone: unknown time zone {self.timezone!r}") from None
        if len(self.hours) != 7:
            raise ValueError(f"hours: expected 7 days, Monday first, got {len(self.hours)}")
        for day, ranges in zip(DAYS, self.hours):
            ends = [time.min] + [end for _, end in ranges]
            for (start, end), previous_end in zip(ranges, ends):
                if not previous_end <= start < end:
                    raise ValueError(f"hours: {day}: ranges must be in order, not overlap, "
                                     f"and end after they start: {ranges}")
        if not any(self.hours):
            raise ValueError("hours: the calendar is never open")
        problem = _country_problem(self.country, self.subdivision)
        if problem:
            raise ValueError(f"{problem[0]}: {problem[1]}")

    # --- questions about one instant ---------------------------------------------------

    def is_holiday(self, day: date) -> bool:
        """True when the local date `day` is closed all day (listed, or a public holiday)."""
        return day in self.holidays or (
            self.country is not None
            and day in _country_holidays(self.country, self.subdivision, day.year))

    def is_open(self, at: datetime) -> bool:
        """True when `at` lies in opening hours of a day that is not a holiday."""
        at = _utc(at)
        day = self._local_date(at)
        return any(a <= at < b for d in (day - _DAY, day, day + _DAY)
                   for a, b in self._intervals(d))

    def next_open(self, at: datetime) -> datetime:
        """`at` itself when open, else the next opening. Raises CalendarNeverOpens."""
        at = _utc(at)
        for a, _ in self._from(at):
            return max(a, at)
        raise AssertionError("unreachable: _from never ends")   # pragma: no cover

    # --- business time -----------------------------------------------------------------

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """When `duration` of business time has passed after `start`. Raises CalendarNeverOpens."""
        if duration < timedelta(0):
            raise ValueError(f"cannot add a negative duration: {duration}")
        at, remaining = _utc(start), duration
        for a, b in self._from(at):
            a = max(a, at)
            if remaining <= b - a:
                return a + remaining
            remaining -= b - a
        raise AssertionError("unreachable: _from never ends")   # pragma: no cover

    def add_duration(self, start: datetime, duration: Duration) -> datetime:
        """The deadline `duration` (business weeks and days, then business time) after `start`.

        The clock starts at `next_open(start)`, at local time T on day D. N business days
        later is time T on the N-th open day after D, clamped into that day's hours: its
        closing time if it closes before T, the end of the range before a break T falls
        in, its opening if it opens after T. Then `duration.time` is added with `add`.
        A week is as many business days as the calendar has open weekdays.
        """
        days = duration.days + duration.weeks * self.open_weekdays
        if not days:
            return self.add(start, duration.time)
        at = self.next_open(start)
        day = next(d for d, intervals in self._open_days(self._local_date(at) - _DAY)
                   if any(a <= at < b for a, b in intervals))
        wall = at.astimezone(self._zone).replace(tzinfo=None) - datetime.combine(day, time())
        target_day, intervals = next(itertools.islice(self._open_days(day + _DAY), days - 1, None))
        target = _instant(self._zone, target_day, wall)
        due = max((min(b, target) for a, b in intervals if a <= target), default=intervals[0][0])
        return self.add(due, duration.time) if duration.time else due

    def between(self, start: datetime, end: datetime) -> timedelta:
        """Business time from `start` to `end`; zero when end <= start."""
        start, end = _utc(start), _utc(end)
        total = timedelta(0)
        if end <= start:
            return total
        day, last = self._local_date(start) - _DAY, self._local_date(end) + _DAY
        while day <= last:
            for a, b in self._intervals(day):
                total += max(timedelta(0), min(b, end) - max(a, start))
            day += _DAY
        return total

    @property
    def open_weekdays(self) -> int:
        """How many days of the week have opening hours (5 for mon-fri)."""
        return sum(1 for ranges in self.hours if ranges)

    # --- the walk over days ------------------------------------------------------------

    def _local_date(self, at: datetime) -> date:
        return at.astimezone(self._zone).date()

    def _intervals(self, day: date) -> tuple[tuple[datetime, datetime], ...]:
        """The open intervals of local date `day` as UTC instants (none on a holiday)."""
        if self.is_holiday(day):
            return ()
        out = []
        for start, end in self.hours[day.weekday()]:
            a = _instant(self._zone, day, _offset(start))
            b = _instant(self._zone, day, _offset(end))
            if a < b:                  # empty when the range lies in a spring-forward gap
                out.append((a, b))
        return tuple(out)

    def _open_days(self, day: date) -> Iterator[tuple[date, tuple[tuple[datetime, datetime], ...]]]:
        """The open days from `day` on, with their intervals (endless); raises
        CalendarNeverOpens after MAX_CLOSED_DAYS closed days in a row."""
        closed = 0
        while True:
            intervals = self._intervals(day)
            if intervals:
                closed = 0
                yield day, intervals
            else:
                closed += 1
                if closed >= MAX_CLOSED_DAYS:
                    raise CalendarNeverOpens(
                        f"calendar {self.name!r} is closed for {MAX_CLOSED_DAYS} days in a "
                        f"row, from {day - (MAX_CLOSED_DAYS - 1) * _DAY} to {day}")
            day += _DAY

    def _from(self, at: datetime) -> Iterator[tuple[datetime, datetime]]:
        """The open intervals that end after `at`, in order (endless)."""
        for _, intervals in self._open_days(self._local_date(at) - _DAY):
            for a, b in intervals:
                if b > at:
                    yield a, b


def as_utc(at: datetime) -> datetime:
    """Aware UTC; a naive datetime is UTC already (as the store keeps times)."""
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


_utc = as_utc


def _offset(t: time) -> timedelta:
    """Time since midnight; END_OF_DAY is 24 hours."""
    if t == END_OF_DAY:
        return _DAY
    return timedelta(hours=t.hour, minutes=t.minute, seconds=t.second, microseconds=t.microsecond)


def _instant(zone: ZoneInfo, day: date, offset: timedelta) -> datetime:
    """The UTC instant when the wall clock of `zone` shows `day` midnight + `offset`.

    A wall time that happens twice is its first occurrence (fold=0); one that does not
    happen (skipped by a clock change) is the moment of the jump.
    """
    wall = datetime.combine(day, time()) + offset
    utc = wall.replace(tzinfo=zone).astimezone(UTC)
    if utc.astimezone(zone).replace(tzinfo=None) == wall:
        return utc
    # In a gap: fold=1 reads wall with the offset after the jump, giving an instant before
    # it; the jump is the first instant with that offset. Jumps happen on whole seconds.
    after = utc.astimezone(zone).utcoffset()
    lo = wall.replace(tzinfo=zone, fold=1).astimezone(UTC).replace(microsecond=0)
    lo_s, hi_s = 0, int((utc - lo).total_seconds()) + 1
    while hi_s - lo_s > 1:
        mid = (lo_s + hi_s) // 2
        if (lo + timedelta(seconds=mid)).astimezone(zone).utcoffset() == after:
            hi_s = mid
        else:
            lo_s = mid
    return lo + timedelta(seconds=hi_s)


# --- holidays by country ----------------------------------------------------------------

@functools.lru_cache(maxsize=512)
def _country_holidays(country: str, subdivision: str | None, year: int) -> frozenset[date]:
    return frozenset(holidays_package.country_holidays(country, subdiv=subdivision, years=year))


@functools.lru_cache(maxsize=1)
def _supported_countries() -> dict[str, list[str]]:
    return holidays_package.list_supported_countries()


def _country_problem(country: str | None, subdivision: str | None) -> Problem | None:
    """(key, message) when the holidays package does not know country or subdivision."""
    if country is None:
        return (("subdivision",), "a subdivision needs a country") if subdivision else None
    known = _supported_countries()
    if country not in known:
        guess = f"; did you mean {country.upper()!r}?" if country.upper() in known else ""
        return ("country",), (f"unknown country {country!r}{guess} (an ISO code the "
                              f"holidays package knows, like DE, US, GB, FR)")
    if subdivision is not None:
        try:
            holidays_package.country_holidays(country, subdiv=subdivision)
        except NotImplementedError:
            names = ", ".join(known[country]) or "none"
            return ("subdivision",), (f"{country} has no subdivision {subdivision!r} "
                                      f"(known: {names})")
    return None


# --- parsing ----------------------------------------------------------------------------

_DAYS = re.compile(r"\s*(\w+)\s*(?:-\s*(\w+)\s*)?")
_RANGE = re.compile(r"(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})")


def parse_calendar(name: str, data: Any, path: KeyPath) -> tuple[Calendar | None, list[Problem]]:
    """One entry of `calendars:` -> (Calendar, []) or (None, every problem found)."""
    if not isinstance(data, dict):
        return None, [(path, f"expected a mapping with timezone and hours, got "
                             f"{_describe(data)}")]
    problems: list[Problem] = []
    for key in data:
        if key not in KEYS:
            hint = did_you_mean(str(key), KEYS)
            problems.append(((*path, key), f"unknown key{hint} (allowed here: "
                                           f"{', '.join(KEYS)})"))
    for key in ("timezone", "hours"):
        if key not in data:
            problems.append(((*path, key), "required key is missing"))
    zone = _parse_timezone(data["timezone"], (*path, "timezone"), problems) \
        if "timezone" in data else None
    hours = _parse_hours(data["hours"], (*path, "hours"), problems) if "hours" in data else None
    days = _parse_holidays(data.get("holidays", []), (*path, "holidays"), problems)
    country, subdivision = (_parse_code(data, key, path, problems)
                            for key in ("country", "subdivision"))
    if country is not False and subdivision is not False:
        found = _country_problem(country, subdivision)
        if found:
            problems.append(((*path, *found[0]), found[1]))
    if problems or zone is None or hours is None:
        return None, problems
    return Calendar(name, zone, hours, days, country, subdivision), []


def _parse_timezone(value: Any, path: KeyPath, problems: list[Problem]) -> str | None:
    if not isinstance(value, str):
        problems.append((path, f"expected a time zone name like Europe/Berlin, got "
                               f"{_describe(value)}"))
        return None
    try:
        ZoneInfo(value)
        return value
    except (ZoneInfoNotFoundError, ValueError, OSError):
        hint = did_you_mean(value, available_timezones())
        problems.append((path, f"unknown time zone {value!r}{hint} (an IANA name like "
                               f"Europe/Berlin or UTC)"))
        return None


def _parse_hours(value: Any, path: KeyPath, problems: list[Problem]) -> Hours | None:
    if not isinstance(value, dict):
        problems.append((path, f"expected a mapping of days to hours like "
                               f'mon-fri: "09:00-17:00", got {_describe(value)}'))
        return None
    if not value:
        problems.append((path, 'the calendar is never open; give hours like '
                               'mon-fri: "09:00-17:00"'))
        return None
    week: list[tuple[tuple[time, time], ...]] = [()] * 7
    given_by: dict[int, str] = {}
    before = len(problems)
    for key, ranges in value.items():
        days = _parse_days(key, (*path, key), problems)
        parsed = _parse_ranges(ranges, (*path, key), problems)
        for day in days or ():
            if day in given_by:
                problems.append(((*path, key), f"{DAYS[day]} is already given by "
                                               f"{given_by[day]!r}; a day belongs to one entry"))
            else:
                given_by[day] = str(key)
                week[day] = parsed or ()
    return tuple(week) if len(problems) == before else None


def _parse_days(key: Any, path: KeyPath, problems: list[Problem]) -> range | None:
    if not isinstance(key, str):
        problems.append((path, f"expected a day or day range like mon-fri, got "
                               f"{_describe(key)}"))
        return None
    match = _DAYS.fullmatch(key.lower())
    unknown = [d for d in (match.groups() if match else (key,)) if d and d not in DAYS]
    if unknown:
        problems.append((path, f"unknown day {unknown[0]!r}; days are {' '.join(DAYS)}, "
                               f"ranges like mon-fri"))
        return None
    first, last = match.group(1), match.group(2) or match.group(1)
    start, end = DAYS.index(first), DAYS.index(last)
    if end < start:
        problems.append((path, f"{key!r} wraps around the week; a range runs from mon "
                               f"towards sun: write {first}-sun and mon"
                               f"{'-' + last if last != 'mon' else ''} as two entries"))
        return None
    return range(start, end + 1)


def _parse_ranges(value: Any, path: KeyPath, problems: list[Problem]
                  ) -> tuple[tuple[time, time], ...] | None:
    if not isinstance(value, str) or not value.strip():
        problems.append((path, f'expected time ranges like "09:00-17:00" or '
                               f'"08:00-12:00, 13:00-17:00", got {_describe(value)}'))
        return None
    ranges, ok = [], True
    for text in (part.strip() for part in value.split(",")):
        match = _RANGE.fullmatch(text)
        if match is None:
            problems.append((path, f"expected a range HH:MM-HH:MM, got {text!r}"))
            ok = False
            continue
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        if h1 > 23 or m1 > 59 or h2 > 24 or m2 > 59 or (h2 == 24 and m2):
            problems.append((path, f"{text!r}: not a time of day (00:00 to 23:59, and "
                                   f"24:00 as an end)"))
            ok = False
            continue
        start, end = _minutes(h1, m1), _minutes(h2, m2)
        if end <= start:
            problems.append((path, f"{text!r} ends before it starts; a range cannot run "
                                   f"past midnight (use 24:00, and 00:00 on the next day)"))
            ok = False
            continue
        ranges.append((start, end, text))
    ranges.sort()
    for (_, end, first), (start, _, second) in zip(ranges, ranges[1:]):
        if start < end:
            problems.append((path, f"{second!r} overlaps {first!r}"))
            ok = False
    if not ok:
        return None
    return tuple((_time(start), _time(end)) for start, end, _ in ranges)


def _minutes(hours: int, minutes: int) -> int:
    return hours * 60 + minutes


def _time(minutes: int) -> time:
    return END_OF_DAY if minutes == 24 * 60 else time(*divmod(minutes, 60))


def _parse_holidays(value: Any, path: KeyPath, problems: list[Problem]) -> frozenset[date]:
    if not isinstance(value, list):
        problems.append((path, f"expected a list of dates like [2026-12-24], got "
                               f"{_describe(value)}"))
        return frozenset()
    days = set()
    for i, item in enumerate(value):
        if isinstance(item, date) and not isinstance(item, datetime):
            days.add(item)
            continue
        try:
            if isinstance(item, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", item.strip()):
                days.add(date.fromisoformat(item.strip()))
                continue
        except ValueError:
            pass
        hint = "; a holiday closes the whole day, write the date alone" \
            if isinstance(item, datetime) else ""
        problems.append(((*path, i), f"expected a date like 2026-12-24, got "
                                     f"{_describe(item)}{hint}"))
    return frozenset(days)


def _parse_code(data: dict, key: str, path: KeyPath, problems: list[Problem]
                ) -> str | None | bool:
    """The country or subdivision code; None when absent, False when refused."""
    value = data.get(key)
    if value is None and key not in data:
        return None
    if isinstance(value, str) and value.strip():
        return value.strip()
    example = "DE or US" if key == "country" else "BY"
    problems.append(((*path, key), f"expected a code like {example}, got {_describe(value)}"))
    return False


def _describe(value: Any) -> str:
    """How a problem message names a value: "string 'x'", 'integer 5', 'a mapping'."""
    if value is None:
        return "an empty value"
    if isinstance(value, (dict, list)):
        return "a mapping" if isinstance(value, dict) else "a list"
    kinds = ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"),
             (datetime, "timestamp"), (date, "date"))
    kind = next((k for cls, k in kinds if isinstance(value, cls)), type(value).__name__)
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"         # as YAML spells it
    return f"{kind} {value!r}" if isinstance(value, str) else f"{kind} {value}"
