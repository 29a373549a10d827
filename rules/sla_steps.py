"""When each escalation step of an SLA policy falls due for one clock.

    for step in steps_for(policy, "first_response"):
        step.key                     # '80%', 'breach', 'breach+2h' (unique in the policy)
        fire_at(step, clock, calendar)   # None while the clock is paused or stopped
    next_step_at(policy, clock, calendar, sent={"80%"})   # the earliest unsent step
    due_steps(policy, clock, calendar, sent, now)          # [(step, when)] due at `now`

A step is due on a *running* clock:

``N%``
    when the clock has used N% of its budget (`Clock.at_fraction`);
``breach``
    when the budget is used up (`Clock.due_at`);
``breach+D``
    D of business time after the breach, on the same calendar (``breach+2h`` at a
    breach at 16:30 on a 09:00-17:00 calendar is 10:30 the next open day).

A step with ``only_in_business_hours`` that falls due while the policy's notify calendar
(``notify_calendar``, else its own) is closed waits for its next opening: a breach at
the 17:00 close is announced at 09:00; on a policy counted around the clock with
``notify_calendar: office``, a breach on Saturday is announced on Monday morning.  A paused clock
(pending ticket) has no step due; resuming it moves the steps by the paused time, as it
moves the deadline.  Which steps were already sent is the caller's record, per clock and
cycle (`store.sla`); a step is sent once per cycle, also when a priority change moves
the deadline.  Pure: no database, no clock of its own.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from rules.calendar import Calendar, as_utc as _utc
from rules.sla_clock import Clock
from rules.sla_policy import Escalation, SlaPolicy


@dataclass(frozen=True)
class Step:
    key: str                    # unique within the policy: str(escalation), '#2' on repeats
    escalation: Escalation

    @property
    def is_breach(self) -> bool:
        return self.escalation.percent is None


def steps_for(policy: SlaPolicy, clock_name: str) -> tuple[Step, ...]:
    """The policy's steps that apply to `clock_name`, keyed stably across reloads."""
    seen: Counter[str] = Counter()
    out = []
    for escalation in policy.escalations:
        base = str(escalation)
        seen[base] += 1
        key = base if seen[base] == 1 else f"{base}#{seen[base]}"
        if clock_name in escalation.clocks:
            out.append(Step(key, escalation))
    return tuple(out)


def fire_at(step: Step, clock: Clock, calendar: Calendar,
            hours: Calendar | None = None) -> datetime | None:
    """When `step` falls due on `clock` (aware UTC), or None when the clock isn't running.
    `hours`: the calendar of only_in_business_hours (default `calendar`)."""
    escalation = step.escalation
    if escalation.percent is not None:
        when = clock.at_fraction(calendar, escalation.percent / 100)
    else:
        when = clock.due_at(calendar)
        if when is not None and escalation.after is not None:
            when = calendar.add_duration(when, escalation.after)
    if when is None:
        return None
    hours = hours or calendar
    if escalation.only_in_business_hours and not hours.is_open(when):
        when = hours.next_open(when)
    return _utc(when)


def next_step_at(policy: SlaPolicy | None, clock: Clock, calendar: Calendar,
                 sent: frozenset[str] | set[str], hours: Calendar | None = None,
                 now: datetime | None = None) -> datetime | None:
    """The earliest time an unsent step of `clock` may be sent; None: nothing to wait for.
    Given `now`, a business-hours step already due but held back (closed now) counts
    from the next opening after `now`."""
    if policy is None:
        return None
    times = [_sendable(step, when, calendar, hours, now) for step in steps_for(policy, clock.name)
             if step.key not in sent for when in (fire_at(step, clock, calendar, hours),)
             if when is not None]
    return min(times, default=None)


def due_steps(policy: SlaPolicy, clock: Clock, calendar: Calendar, sent: frozenset[str] | set[str],
              now: datetime, hours: Calendar | None = None) -> list[tuple[Step, datetime]]:
    """The unsent steps of `clock` to send at `now`, earliest first (one entry per step,
    however long ago it fell due: a sweep after downtime catches up once, not once per
    missed run).  A business-hours step that fell due while maild was down waits for the
    office to open, like one that falls due at night."""
    now = _utc(now)
    due = [(step, when) for step in steps_for(policy, clock.name) if step.key not in sent
           for when in (fire_at(step, clock, calendar, hours),)
           if when is not None and _sendable(step, when, calendar, hours, now) <= now]
    return sorted(due, key=lambda pair: pair[1])


def _sendable(step: Step, when: datetime, calendar: Calendar, hours: Calendar | None,
              now: datetime | None) -> datetime:
    """When a step due at `when` may go out, seen at `now`."""
    if now is None or when > _utc(now) or not step.escalation.only_in_business_hours:
        return when
    hours = hours or calendar
    return hours.next_open(_utc(now))


def overdue(clock: Clock, calendar: Calendar, now: datetime) -> timedelta:
    """Business time past the budget (zero when not breached)."""
    return max(timedelta(0), -clock.remaining(calendar, now))


LEGACY = "?"       # steps_sent of a clock from before escalations existed (schema 4)


def parse_sent(text: str) -> frozenset[str]:
    return frozenset(k for k in text.split(",") if k)


def format_sent(keys) -> str:
    return ",".join(sorted(set(keys)))
