"""SLA targets as written in rules.yaml: `4h`, `1h30m`, `5d`, `2w` -> `Duration`, and back.

    target = parse_duration("1d4h")        # Duration(weeks=0, days=1, time=4h)
    due = calendar.add_duration(received, target)
    format_duration(target)                # '1d4h'
    format_duration(timedelta(hours=9))    # '9h' (an amount of business time, for display)

A duration is a sequence of whole numbers with units, largest unit first, each unit at
most once, spaces allowed between the parts:

``m`` minutes and ``h`` hours
    An amount of *business time*: `8h` on a Monday-to-Friday 09:00-17:00 calendar starting
    Friday 16:00 runs out Monday 16:00 (one hour Friday, seven on Monday). `90m` = `1h30m`.
``d`` business days
    `Nd` is the same local time on the N-th *open day* later (a day with opening hours that
    is not a holiday) — "five business days", as admins read `5d`, whatever the length of
    the calendar's day. It is *not* 24 hours: on a 09:00-17:00 calendar, 24 hours of
    business time would be three working days. Where that day closes earlier the deadline
    is its closing time; in a lunch break, the start of the break; before it opens, its
    opening (`Calendar.add_duration` gives the details).
``w`` business weeks
    `Nw` is N times as many business days as the calendar has open weekdays: `1w` is `5d`
    on a Monday-to-Friday calendar and `7d` on one open every day. Holidays inside the
    week push the deadline later, as they do for `d`.

Combinations count the days first, then the hours: `1d4h` is one business day, then four
business hours. Bare numbers are refused (`30`: minutes? hours?), so are seconds,
fractions (`1.5h`: write `1h30m`) and negative amounts. At most ten years (3660 days,
counting a week as 7 days and 24 hours as a day) — a longer target is a typing mistake.

`format_duration` writes a `Duration` the way it is parsed (`format_duration(
parse_duration(text))` is the canonical spelling of text: `90m` -> `1h30m`), and a
`timedelta` of business time in hours and minutes only (`120h`, never `5d`, since `5d`
means five business days), rounded down to the minute, `-` in front when negative.

This module is pure: it knows no calendar; `rules.calendar.Calendar` applies durations.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

__all__ = ["Duration", "format_duration", "parse_duration"]

FORMS = "30m, 4h, 1h30m (business time), 5d (business days), 2w (business weeks)"
MAX_DAYS = 3660                       # ten years, counting a week as 7 days

_SYNTAX = re.compile(r"(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?")


@dataclass(frozen=True)
class Duration:
    """An SLA target: whole business weeks and days, then an amount of business time."""
    weeks: int = 0
    days: int = 0
    time: timedelta = timedelta(0)        # business hours and minutes, after the days

    def __post_init__(self) -> None:
        if self.weeks < 0 or self.days < 0 or self.time < timedelta(0):
            raise ValueError(f"a duration cannot be negative: {self!r}")
        if self.weeks * 7 + self.days + self.time / timedelta(days=1) > MAX_DAYS:
            raise ValueError(f"a duration is at most {MAX_DAYS} days (ten years)")

    def __str__(self) -> str:
        return format_duration(self)


def parse_duration(value: Any) -> Duration:
    """'1h30m' -> Duration(time=1h30m); '5d' -> Duration(days=5). Raises ValueError."""
    if isinstance(value, bool) or not isinstance(value, str):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            raise ValueError(f"a bare number has no unit; write a duration like {FORMS}, "
                             f"got {value!r}")
        raise ValueError(f"expected a duration like {FORMS}, got {type(value).__name__} "
                         f"{value!r}")
    text = value.strip()
    match = _SYNTAX.fullmatch(re.sub(r"(?<=[wdhm])\s+(?=\d)", "", text))
    if not text or match is None:
        raise ValueError(f"expected a duration like {FORMS}, got {value!r}")
    weeks, days, hours, minutes = (int(part or 0) for part in match.groups())
    try:
        return Duration(weeks, days, timedelta(hours=hours, minutes=minutes))
    except (ValueError, OverflowError):
        raise ValueError(f"a duration is at most {MAX_DAYS} days (ten years), "
                         f"got {value!r}") from None


def format_duration(value: Duration | timedelta) -> str:
    """Duration(days=1, time=4h) -> '1d4h'; timedelta(minutes=90) -> '1h30m'; zero -> '0m'."""
    if isinstance(value, Duration):
        parts = f"{value.weeks}w" if value.weeks else ""
        parts += f"{value.days}d" if value.days else ""
        if value.time or not parts:
            parts += _hours_minutes(value.time)
        return parts
    sign = "-" if value < timedelta(0) else ""
    return sign + _hours_minutes(abs(value))


def _hours_minutes(td: timedelta) -> str:
    hours, minutes = divmod(td // timedelta(minutes=1), 60)
    if not hours:
        return f"{minutes}m"
    return f"{hours}h{minutes}m" if minutes else f"{hours}h"
