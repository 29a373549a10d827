"""Keep a ticket's SLA clocks in step with the ticket, inside the transaction that changed it.

    sync(ticket_id, ruleset, now, customer_replied=True)   # after a customer's reply
    sync(ticket_id, ruleset, now, agent_replied=True)      # after an agent's public reply
    sync(ticket_id, ruleset, now)                          # after status/priority/policy changes
    clocks(ticket_id, ruleset) -> [(row, Clock, calendar, target)]   # `maild sla show`

`sync` reconciles the `sla_clock` rows with what the ticket is now (DESIGN §7):

first response
    runs from creation until the first public agent reply (`ticket.first_response_at`).
next response
    starts at each customer reply once the first response was given (a new cycle each
    time), stops at the agents' next public reply.
resolution
    runs until the ticket is resolved or closed; a reopened ticket resumes it.

Every clock pauses while the ticket is `pending` (waiting on the customer) and resumes
when it is open again, without drift (`rules.sla_clock`).  The targets come from the
ticket's policy (`ticket.sla_policy`) and priority; a change of either re-targets the
running clocks from the business time already used.  A priority without a target for a
clock has no such clock; a ticket without a policy (or whose policy left the rules) has
its clocks stopped.  `due_at` is written for running clocks only, in naive UTC.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

from rules.model import Ruleset
from rules.sla_clock import (AROUND_THE_CLOCK, CLOCKS, FIRST_RESPONSE, NEXT_RESPONSE, RESOLUTION,
                             PAUSED, RUNNING, STOPPED, Clock, budget_for)
from store.fastsql import insert_row
from store.models import SlaClock, Ticket

log = logging.getLogger(__name__)

WAITING = ("pending",)
DONE = ("resolved", "closed")


def calendar_of(policy, ruleset: Ruleset):
    return (ruleset.calendar(policy.calendar) if policy.calendar else None) or AROUND_THE_CLOCK


def sync(ticket_id: int, ruleset: Ruleset, now: datetime, *, customer_replied: bool = False,
         agent_replied: bool = False) -> None:
    if not ruleset.sla_policies:
        return      # no SLA in the rules: not a query more (the sweep ignores orphaned clocks)
    ticket = Ticket.get_by_id(ticket_id)
    rows = {row.clock: row for row in SlaClock.select().where(SlaClock.ticket == ticket_id)}
    policy = ruleset.sla_policy(ticket.sla_policy)
    if policy is None:
        for row in rows.values():
            _save(row, _clock(row).stop(AROUND_THE_CLOCK, now), None)
        return
    calendar = calendar_of(policy, ruleset)
    for name in CLOCKS:
        target = policy.target(ticket.priority, name)
        row = rows.get(name)
        clock = _clock(row) if row is not None else None
        wanted = _wanted(name, ticket, clock, customer_replied=customer_replied,
                         agent_replied=agent_replied)
        if clock is None:
            if wanted == RUNNING and target is not None:
                clock = Clock.start(name, budget_for(calendar, now, target), now)
                _insert(ticket_id, clock, policy.name, ticket.priority, calendar)
            continue
        if name == NEXT_RESPONSE and customer_replied and wanted == RUNNING and target is not None:
            clock = clock.restart(budget_for(calendar, now, target), now)
        elif target is None:
            clock = clock.stop(calendar, now)          # this priority has no such clock
        else:
            if (row.policy, row.priority) != (policy.name, ticket.priority):
                clock = clock.retarget(budget_for(calendar, clock.started_at, target))
            if wanted == RUNNING:
                clock = clock.resume(now)
            elif wanted == STOPPED:
                clock = clock.stop(calendar, now)
            else:
                clock = clock.pause(calendar, now)
        row.policy, row.priority = policy.name, ticket.priority
        _save(row, clock, calendar)


def _wanted(name: str, ticket: Ticket, clock: Clock | None, *, customer_replied: bool,
            agent_replied: bool) -> str:
    """The state the ticket asks of clock `name` now: RUNNING, PAUSED or STOPPED."""
    if ticket.status in DONE:
        return STOPPED
    if name == FIRST_RESPONSE and ticket.first_response_at is not None:
        return STOPPED
    if name == NEXT_RESPONSE:
        if agent_replied:
            return STOPPED
        started = customer_replied and ticket.first_response_at is not None
        if not started and (clock is None or clock.state == STOPPED):
            return STOPPED                         # nothing asked since the last answer
    return PAUSED if ticket.status in WAITING else RUNNING


def clocks(ticket_id: int, ruleset: Ruleset) -> list[tuple[SlaClock, Clock, object, object]]:
    """Each clock of the ticket with its calendar and current target (None: not in the
    rules any more), in CLOCKS order."""
    ticket = Ticket.get_by_id(ticket_id)
    rows = {row.clock: row for row in SlaClock.select().where(SlaClock.ticket == ticket_id)}
    out = []
    for name in CLOCKS:
        row = rows.get(name)
        if row is None:
            continue
        policy = ruleset.sla_policy(row.policy)
        calendar = calendar_of(policy, ruleset) if policy else AROUND_THE_CLOCK
        target = policy.target(ticket.priority, name) if policy else None
        out.append((row, _clock(row), calendar, target))
    return out


def _clock(row: SlaClock) -> Clock:
    return Clock(row.clock, timedelta(seconds=row.budget_s), _aware(row.started_at),
                 used_before=timedelta(seconds=row.used_s),
                 running_since=_aware(row.running_since), stopped_at=_aware(row.stopped_at),
                 cycle=row.cycle)


def _insert(ticket_id: int, clock: Clock, policy: str, priority: str, calendar) -> None:
    insert_row(SlaClock, ticket=ticket_id, clock=clock.name, cycle=clock.cycle, policy=policy,
               priority=priority, **_columns(clock, calendar))


def _save(row: SlaClock, clock: Clock, calendar) -> None:
    for key, value in _columns(clock, calendar).items():
        setattr(row, key, value)
    row.cycle = clock.cycle
    row.save()


def _columns(clock: Clock, calendar) -> dict:
    due = clock.due_at(calendar) if calendar is not None else None
    return {"budget_s": int(clock.budget.total_seconds()),
            "used_s": int(clock.used_before.total_seconds()),
            "started_at": _naive(clock.started_at), "running_since": _naive(clock.running_since),
            "stopped_at": _naive(clock.stopped_at), "due_at": _naive(due)}


def _aware(at: datetime | None) -> datetime | None:
    return at.replace(tzinfo=timezone.utc) if at is not None and at.tzinfo is None else at


def _naive(at: datetime | None) -> datetime | None:
    return at.astimezone(timezone.utc).replace(tzinfo=None) if at is not None else None


__all__ = ["FIRST_RESPONSE", "NEXT_RESPONSE", "RESOLUTION", "calendar_of", "clocks", "sync"]
