"""One SLA clock as a value: how much business time it allows, how much is used, when it is due.

    budget = budget_for(calendar, started, parse_duration("8h"))
    clock = Clock.start("first_response", budget, now)
    clock = clock.pause(calendar, now)          # the ticket waits on the customer
    clock = clock.resume(later)                 # the customer answered
    clock.due_at(calendar)                      # the instant the budget runs out
    clock.used(calendar, now), clock.remaining(calendar, now)

A clock counts *business time* on its policy's calendar (`rules.calendar`).  Its budget
is fixed when it starts: a target in business days (`5d`) becomes the business time from
the start to the same local time five open days later, so pausing and resuming never
drifts (the deadline after a pause is `calendar.add(resumed, budget - used)`, exactly the
paused business time later).  A priority or policy change re-targets a clock: a new
budget from its start, the business time already used kept.

States: running (`running_since` set), paused (neither set), stopped (`stopped_at` set).
`cycle` counts restarts of the same clock on a ticket (the next-response clock starts
again at every customer reply); escalations are sent once per clock and cycle.

Pure: no database, no clock of its own; every instant is passed in (aware or naive UTC).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, time, timedelta

from rules.calendar import END_OF_DAY, Calendar, as_utc as _utc
from rules.durations import Duration

FIRST_RESPONSE, NEXT_RESPONSE, RESOLUTION = "first_response", "next_response", "resolution"
CLOCKS = (FIRST_RESPONSE, NEXT_RESPONSE, RESOLUTION)
RUNNING, PAUSED, STOPPED = "running", "paused", "stopped"

# A policy without `calendar:` counts every hour of every day, in UTC.
AROUND_THE_CLOCK = Calendar(name="(around the clock)", timezone="UTC",
                            hours=(((time(0, 0), END_OF_DAY),),) * 7)


def budget_for(calendar: Calendar, start: datetime, target: Duration) -> timedelta:
    """The business time `target` allows from `start` (business days made exact)."""
    return calendar.between(start, calendar.add_duration(start, target))


@dataclass(frozen=True)
class Clock:
    name: str                           # FIRST_RESPONSE | NEXT_RESPONSE | RESOLUTION
    budget: timedelta                   # business time allowed
    started_at: datetime
    used_before: timedelta = timedelta(0)   # business time used before `running_since`
    running_since: datetime | None = None
    stopped_at: datetime | None = None
    cycle: int = 1

    @classmethod
    def start(cls, name: str, budget: timedelta, now: datetime, *, cycle: int = 1) -> "Clock":
        return cls(name, budget, _utc(now), running_since=_utc(now), cycle=cycle)

    @property
    def state(self) -> str:
        if self.stopped_at is not None:
            return STOPPED
        return RUNNING if self.running_since is not None else PAUSED

    def used(self, calendar: Calendar, now: datetime) -> timedelta:
        """Business time used up to `now` (frozen while paused or stopped)."""
        if self.running_since is None:
            return self.used_before
        return self.used_before + calendar.between(self.running_since, _utc(now))

    def remaining(self, calendar: Calendar, now: datetime) -> timedelta:
        """Business time left; negative when overdue."""
        return self.budget - self.used(calendar, now)

    def due_at(self, calendar: Calendar) -> datetime | None:
        """When a running clock breaches (in the past when it already has); None otherwise."""
        if self.running_since is None:
            return None
        left = self.budget - self.used_before
        if left <= timedelta(0):
            return self.running_since
        return calendar.add(self.running_since, left)

    def at_fraction(self, calendar: Calendar, fraction: float) -> datetime | None:
        """When a running clock has used `fraction` (0.8) of its budget; None otherwise."""
        if self.running_since is None:
            return None
        left = self.budget * fraction - self.used_before
        if left <= timedelta(0):
            return self.running_since
        return calendar.add(self.running_since, left)

    def pause(self, calendar: Calendar, now: datetime) -> "Clock":
        if self.running_since is None:
            return self
        return replace(self, used_before=self.used(calendar, now), running_since=None)

    def resume(self, now: datetime) -> "Clock":
        if self.state == RUNNING:
            return self
        return replace(self, running_since=_utc(now), stopped_at=None)

    def stop(self, calendar: Calendar, now: datetime) -> "Clock":
        if self.state == STOPPED:
            return self
        return replace(self.pause(calendar, now), stopped_at=_utc(now))

    def retarget(self, budget: timedelta) -> "Clock":
        """The same clock with a new budget (a priority or policy change); used time kept."""
        return replace(self, budget=budget)

    def restart(self, budget: timedelta, now: datetime) -> "Clock":
        """A new cycle of the same clock (the next response after a customer reply)."""
        return Clock.start(self.name, budget, now, cycle=self.cycle + 1)
