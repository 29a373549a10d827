"""The SLA and performance report of `maild report`: response and resolution times, SLA
compliance per queue and priority, and the breaches.  Reads only; prints nothing.

    report = build(now, since=now - timedelta(days=30), ruleset=ruleset)
    report.first_response.wall.median, report.compliance, report.breaches

Population
    the tickets created at or after `since` (default: 30 days before `now`), whatever
    their state now.  `now` is the instant "due" is measured against; the clocks are read
    as they are in the database (a past `now` does not rewind them).
Times (`Measure`: wall and business, each `Times(count, median, p90)` as timedeltas)
    first response: `created_at` to `first_response_at` (wall time) over the tickets that
    got one, and the business time of their stopped `first_response` clock.  Resolution:
    `created_at` to `resolved_at` (kept when a resolved ticket is closed; `closed_at` for
    tickets closed before that was so) over the tickets resolved or closed now, and the business time of their
    stopped `resolution` clock.  No such tickets or clocks: count 0, median and p90 None.
    Median: the middle value (the mean of the two middle ones for an even count).  p90:
    nearest rank, the value at rank ceil(0.9 * count) of the sorted times.
Compliance (`Compliance`, one per queue, priority and clock, plus `overall`)
    counted in SQL from the `sla_clock` rows of the population: *met* = stopped within
    its budget; *breached* = more business time used than the budget (stopped or paused),
    or running and due at or before `now`; *running* = running, or paused, and within
    its budget (not counted in `percent`).  percent = met / (met + breached) * 100, None
    when nothing finished.  The queue is the ticket's current queue; the priority is the
    one the clock's budget was set for.  A ticket keeps one row per clock: the next
    response counts its latest cycle only.
Breaches (`Breach`, at most `breaches_limit`, `breaches_total` counts them all)
    newest first: by due time for running clocks, else by stop time (else start time).
    `due_at` is known for running clocks only (stopped or paused ones do not keep it);
    `overdue` is business time beyond the budget: for running clocks up to `now` on the
    policy's calendar from `ruleset` (around the clock without a ruleset, or when the
    policy left the rules: then it is wall time since `due_at`).
All datetimes in the database are naive UTC; `now` and `since` may be aware or naive UTC.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import peewee as pw

from rules.sla_clock import AROUND_THE_CLOCK, CLOCKS, FIRST_RESPONSE, RESOLUTION, Clock
from store.models import PRIORITIES, SlaClock, Ticket
from store.sla import DONE, calendar_of, naive as _naive

DEFAULT_PERIOD = timedelta(days=30)


@dataclass(frozen=True)
class Times:
    count: int
    median: timedelta | None
    p90: timedelta | None


@dataclass(frozen=True)
class Measure:
    wall: Times          # calendar time
    business: Times      # the SLA clock's business time


@dataclass(frozen=True)
class Compliance:
    queue: str | None    # None in the overall line
    priority: str | None
    clock: str | None
    met: int
    breached: int
    running: int
    percent: float | None


@dataclass(frozen=True)
class Breach:
    ticket: int          # the ticket's number
    queue: str
    priority: str
    clock: str
    cycle: int
    state: str           # running | paused | stopped
    due_at: datetime | None     # naive UTC; running clocks only
    overdue: timedelta   # business time beyond the budget


@dataclass(frozen=True)
class Report:
    now: datetime        # naive UTC
    since: datetime      # naive UTC
    tickets: int         # created at or after `since`
    first_response: Measure
    resolution: Measure
    compliance: tuple[Compliance, ...]
    overall: Compliance
    breaches: tuple[Breach, ...]
    breaches_total: int


def build(now: datetime, since: datetime | None = None, *, breaches_limit: int = 50,
          ruleset=None) -> Report:
    now = _naive(now)
    since = _naive(since) if since is not None else now - DEFAULT_PERIOD
    population = Ticket.created_at >= since
    rows = list(Ticket.select(Ticket.created_at, Ticket.first_response_at, Ticket.resolved_at,
                              Ticket.closed_at, Ticket.status).where(population).tuples())
    first_wall = [first - created for created, first, _, _, _ in rows if first is not None]
    resolved_wall = [(resolved or closed) - created for created, _, resolved, closed, status in rows
                     if status in DONE and (resolved or closed) is not None]
    first_business = _used(population, FIRST_RESPONSE, Ticket.first_response_at.is_null(False))
    resolved_business = _used(population, RESOLUTION, Ticket.status.in_(DONE))
    compliance = _compliance(population, now)
    overall = _line(None, None, None, *(sum(getattr(c, k) for c in compliance)
                                        for k in ("met", "breached", "running")))
    return Report(now=now, since=since, tickets=len(rows),
                  first_response=Measure(times(first_wall), times(first_business)),
                  resolution=Measure(times(resolved_wall), times(resolved_business)),
                  compliance=compliance, overall=overall,
                  breaches=_breaches(population, now, breaches_limit, ruleset),
                  breaches_total=overall.breached)


def times(values: list[timedelta]) -> Times:
    """Count, median and nearest-rank p90 of `values`."""
    if not values:
        return Times(0, None, None)
    ordered = sorted(values)
    median = statistics.median(ordered)      # the mean of two timedeltas for an even count
    return Times(len(ordered), median, ordered[math.ceil(0.9 * len(ordered)) - 1])


def _used(population, clock: str, done) -> list[timedelta]:
    query = (SlaClock.select(SlaClock.used_s).join(Ticket)
             .where(population, done, SlaClock.clock == clock, SlaClock.stopped_at.is_null(False)))
    return [timedelta(seconds=used) for (used,) in query.tuples()]


def _met():
    return SlaClock.stopped_at.is_null(False) & (SlaClock.used_s <= SlaClock.budget_s)


def _breached(now: datetime):
    running = SlaClock.running_since.is_null(False)
    return ((running & (SlaClock.due_at <= now))
            | (SlaClock.running_since.is_null() & (SlaClock.used_s > SlaClock.budget_s)))


def _compliance(population, now: datetime) -> tuple[Compliance, ...]:
    def count(condition):
        return pw.fn.SUM(pw.Case(None, ((condition, 1),), 0))

    query = (SlaClock.select(Ticket.queue, SlaClock.priority, SlaClock.clock, count(_met()),
                             count(_breached(now)), pw.fn.COUNT(SlaClock.id))
             .join(Ticket).where(population)
             .group_by(Ticket.queue, SlaClock.priority, SlaClock.clock))
    lines = []
    for queue, priority, clock, met, breached, total in query.tuples():
        met, breached = int(met or 0), int(breached or 0)
        lines.append(_line(queue, priority, clock, met, breached, int(total) - met - breached))
    return tuple(sorted(lines, key=_order))


def _order(line: Compliance):
    rank = PRIORITIES.index(line.priority) if line.priority in PRIORITIES else -1
    return (line.queue, -rank, line.priority,
            CLOCKS.index(line.clock) if line.clock in CLOCKS else len(CLOCKS), line.clock)


def _line(queue, priority, clock, met: int, breached: int, running: int) -> Compliance:
    finished = met + breached
    percent = round(met / finished * 100, 1) if finished else None
    return Compliance(queue, priority, clock, met, breached, running, percent)


def _breaches(population, now: datetime, limit: int, ruleset) -> tuple[Breach, ...]:
    newest = pw.fn.COALESCE(SlaClock.due_at, SlaClock.stopped_at, SlaClock.started_at)
    query = (SlaClock.select(SlaClock.clock, SlaClock.cycle, SlaClock.policy,
                             SlaClock.priority, SlaClock.budget_s, SlaClock.used_s,
                             SlaClock.started_at, SlaClock.running_since, SlaClock.stopped_at,
                             SlaClock.due_at, Ticket.number, Ticket.queue).join(Ticket)
             .where(population, _breached(now))
             .order_by(newest.desc(), Ticket.number.desc(), SlaClock.id.desc()).limit(limit))
    out = []
    for row in query:
        clock = Clock(row.clock, timedelta(seconds=row.budget_s), _aware(row.started_at),
                      used_before=timedelta(seconds=row.used_s),
                      running_since=_aware(row.running_since), stopped_at=_aware(row.stopped_at),
                      cycle=row.cycle)
        policy = ruleset.sla_policy(row.policy) if ruleset is not None else None
        calendar = calendar_of(policy, ruleset) if policy is not None else AROUND_THE_CLOCK
        out.append(Breach(ticket=row.ticket.number, queue=row.ticket.queue, priority=row.priority,
                          clock=row.clock, cycle=row.cycle, state=clock.state, due_at=row.due_at,
                          overdue=clock.used(calendar, _aware(now)) - clock.budget))
    return tuple(out)




def _aware(at: datetime | None) -> datetime | None:
    return at.replace(tzinfo=timezone.utc) if at is not None else None
