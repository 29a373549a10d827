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

Escalations (the sweep, `maild.escalations`) read this module's other half:
`next_step_at` is kept with every clock change (the earliest unsent escalation step of
the running clock, `rules.sla_steps`; NULL while paused or stopped), so

    due_clocks(now, limit)           # the clocks with a step due: an indexed range read
    claim_step(row, key, due, now, recipients)   # the ledger row; False: already sent
    record_sent(row, keys, ruleset, now)   # steps_sent += keys, next_step_at recomputed
    defer(row, until)                # its escalation failed: look again later
    reschedule(ruleset, now)         # after start or a rules reload: recompute them all
    sweep_lock(db)                   # PostgreSQL: one sweeping instance at a time
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

from rules.model import Ruleset
from rules.sla_clock import (AROUND_THE_CLOCK, CLOCKS, FIRST_RESPONSE, NEXT_RESPONSE, RESOLUTION,
                             PAUSED, RUNNING, STOPPED, Clock, budget_for)
from rules.sla_steps import LEGACY, due_steps, format_sent, next_step_at, parse_sent
from store.db import is_sqlite
from store.fastsql import fetch, insert_row
from store.models import SlaClock, SlaEscalation, Ticket

log = logging.getLogger(__name__)

WAITING = ("pending",)
DONE = ("resolved", "closed")


def calendar_of(policy, ruleset: Ruleset):
    return (ruleset.calendar(policy.calendar) if policy.calendar else None) or AROUND_THE_CLOCK


def notify_hours(policy, ruleset: Ruleset):
    """The calendar of the policy's only_in_business_hours steps; None: its own calendar."""
    return ruleset.calendar(policy.notify_calendar) if policy and policy.notify_calendar else None


def sync(ticket_id: int, ruleset: Ruleset, now: datetime, *, customer_replied: bool = False,
         agent_replied: bool = False) -> None:
    if not ruleset.sla_policies:
        return      # no SLA in the rules: not a query more (the sweep ignores orphaned clocks)
    ticket = Ticket.get_by_id(ticket_id)
    rows = {row.clock: row for row in SlaClock.select().where(SlaClock.ticket == ticket_id)}
    policy = ruleset.sla_policy(ticket.sla_policy)
    if policy is None:
        for row in rows.values():
            _save(row, _clock(row).stop(AROUND_THE_CLOCK, now), None, None, None)
        return
    calendar, hours = calendar_of(policy, ruleset), notify_hours(policy, ruleset)
    for name in CLOCKS:
        target = policy.target(ticket.priority, name)
        row = rows.get(name)
        clock = _clock(row) if row is not None else None
        wanted = _wanted(name, ticket, clock, customer_replied=customer_replied,
                         agent_replied=agent_replied)
        if clock is None:
            if wanted == RUNNING and target is not None:
                clock = Clock.start(name, budget_for(calendar, now, target), now)
                _insert(ticket_id, clock, policy, ticket.priority, calendar, hours)
            continue
        if (name == NEXT_RESPONSE and customer_replied and wanted == RUNNING and target is not None
                and clock.state == STOPPED):
            # the first unanswered customer mail starts a cycle; a follow-up ("any news?")
            # before the agents answered moves no deadline (as Zendesk's next reply time)
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
        _save(row, clock, calendar, policy, hours)


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


def _insert(ticket_id: int, clock: Clock, policy, priority: str, calendar, hours) -> None:
    insert_row(SlaClock, ticket=ticket_id, clock=clock.name, cycle=clock.cycle, policy=policy.name,
               priority=priority, steps_sent="",
               **_columns(clock, calendar, policy, frozenset(), hours))


def _save(row: SlaClock, clock: Clock, calendar, policy, hours) -> None:
    if clock.cycle != row.cycle:
        row.steps_sent = ""                     # a new cycle escalates afresh
    for key, value in _columns(clock, calendar, policy, parse_sent(row.steps_sent), hours).items():
        setattr(row, key, value)
    row.cycle = clock.cycle
    row.save()


def _columns(clock: Clock, calendar, policy, sent: frozenset[str], hours) -> dict:
    due = clock.due_at(calendar) if calendar is not None else None
    step = next_step_at(policy, clock, calendar, sent, hours) if calendar is not None else None
    return {"budget_s": int(clock.budget.total_seconds()),
            "used_s": int(clock.used_before.total_seconds()),
            "started_at": _naive(clock.started_at), "running_since": _naive(clock.running_since),
            "stopped_at": _naive(clock.stopped_at), "due_at": _naive(due),
            "next_step_at": _naive(step)}


# --- escalations ---------------------------------------------------------------------

SWEEP_LOCK = 0x6D61696C64534C41     # 'maildSLA': pg advisory lock key of the sweep


def sweep_lock(db) -> bool:
    """Take the sweep's lock for the current transaction; False: another instance holds it.
    SQLite needs none: its write transaction (BEGIN IMMEDIATE) already excludes others."""
    if is_sqlite(db):
        return True
    [(taken,)] = fetch(db, "SELECT pg_try_advisory_xact_lock(?)", [SWEEP_LOCK])
    return bool(taken)


def due_clocks(now: datetime, limit: int) -> list[SlaClock]:
    """Clocks with an escalation step due at `now`, the longest due first (an index range).
    On PostgreSQL the rows are locked for the transaction (`FOR UPDATE SKIP LOCKED`): a
    worker changing the same clock (a customer's reply starting a new cycle) waits for the
    sweep's commit, or the sweep reads what it committed."""
    query = (SlaClock.select().where(SlaClock.next_step_at <= _naive(now))
             .order_by(SlaClock.next_step_at, SlaClock.id).limit(limit))
    if not is_sqlite(SlaClock._meta.database):
        query = query.for_update("FOR UPDATE SKIP LOCKED")
    return list(query)


def policy_and_calendar(row: SlaClock, ruleset: Ruleset):
    """(policy, calendar, notify hours) of a clock row; (None, AROUND_THE_CLOCK, None) when
    its policy left the rules."""
    policy = ruleset.sla_policy(row.policy)
    return (policy, calendar_of(policy, ruleset) if policy else AROUND_THE_CLOCK,
            notify_hours(policy, ruleset))


def reread(row: SlaClock) -> SlaClock | None:
    """The clock row as it is now in this transaction (None: gone)."""
    return SlaClock.get_or_none(SlaClock.id == row.id)


def naive(at: datetime) -> datetime:
    """Naive UTC, as the database keeps times."""
    return _naive(at)


def clock_of(row: SlaClock) -> Clock:
    return _clock(row)


def claim_step(row: SlaClock, key: str, due_at: datetime, now: datetime,
               recipients: tuple[str, ...]) -> bool:
    """Write the ledger row of step `key` of this clock cycle; False when it exists (sent)."""
    db = SlaEscalation._meta.database
    rows = fetch(db, 'INSERT INTO "sla_escalation" ("ticket_id", "clock", "cycle", "step", '
                     '"due_at", "sent_at", "recipients") VALUES (?, ?, ?, ?, ?, ?, ?) '
                     'ON CONFLICT DO NOTHING RETURNING "id"',
                 [row.ticket_id, row.clock, row.cycle, key, _naive(due_at), _naive(now),
                  ", ".join(recipients)])
    return bool(rows)


def record_sent(row: SlaClock, keys, ruleset: Ruleset, now: datetime) -> bool:
    """Add `keys` to the clock's sent steps and move `next_step_at` to the next unsent one;
    False (nothing written) when the clock changed since `row` was read."""
    sent = format_sent(parse_sent(row.steps_sent) | set(keys))
    policy, calendar, hours = policy_and_calendar(row, ruleset)
    when = next_step_at(policy, _clock(row), calendar, parse_sent(sent), hours, now)
    changed = (SlaClock.update(steps_sent=sent, next_step_at=_naive(when))
               .where(SlaClock.id == row.id, SlaClock.cycle == row.cycle,
                      SlaClock.steps_sent == row.steps_sent,
                      SlaClock.running_since == row.running_since).execute())
    row.steps_sent = sent
    return bool(changed)


def defer(row: SlaClock, until: datetime) -> None:
    """Look at this clock again at `until` (its escalation failed now)."""
    SlaClock.update(next_step_at=_naive(until)).where(SlaClock.id == row.id).execute()


def reschedule(ruleset: Ruleset, now: datetime, *, batch: int = 1000) -> int:
    """Recompute `next_step_at` of every running clock from the rules as they are now (the
    first sweep after start and after a reload: escalations may have changed), one
    transaction per `batch` clocks.  Returns how many changed.

    Clocks from before schema 5 (`steps_sent` = LEGACY) had no escalations: the steps
    that fell due before now are marked sent without a mail, so an upgrade does not mail
    every step of every open ticket's history at once."""
    db = SlaClock._meta.database
    changed, last = 0, 0
    while True:
        with db.atomic():
            rows = list(SlaClock.select().where(SlaClock.running_since.is_null(False), SlaClock.id > last)
                        .order_by(SlaClock.id).limit(batch))
            for row in rows:
                changed += _reschedule_one(row, ruleset, now)
        if len(rows) < batch:
            return changed
        last = rows[-1].id


def _reschedule_one(row: SlaClock, ruleset: Ruleset, now: datetime) -> int:
    policy, calendar, hours = policy_and_calendar(row, ruleset)
    clock, sent = _clock(row), parse_sent(row.steps_sent)
    if row.steps_sent == LEGACY:
        sent = frozenset(step.key for step, _ in due_steps(policy, clock, calendar, set(), now, hours)) \
            if policy else frozenset()
        row.steps_sent = format_sent(sent)
        log.info("ticket id %s: SLA %s steps due before the upgrade to escalations, not mailed: %s",
                 row.ticket_id, row.clock, row.steps_sent or "none")
    when = _naive(next_step_at(policy, clock, calendar, sent, hours, now))
    if when == row.next_step_at and row.steps_sent == format_sent(sent):
        return 0
    (SlaClock.update(next_step_at=when, steps_sent=row.steps_sent)
     .where(SlaClock.id == row.id).execute())
    return 1


def _aware(at: datetime | None) -> datetime | None:
    return at.replace(tzinfo=timezone.utc) if at is not None and at.tzinfo is None else at


def _naive(at: datetime | None) -> datetime | None:
    """Naive UTC; a naive value is UTC already (never read as the host's local time)."""
    if at is None or at.tzinfo is None:
        return at
    return at.astimezone(timezone.utc).replace(tzinfo=None)


__all__ = ["FIRST_RESPONSE", "NEXT_RESPONSE", "RESOLUTION", "calendar_of", "claim_step", "clock_of",
           "clocks", "defer", "due_clocks", "naive", "reread", "policy_and_calendar", "record_sent", "reschedule",
           "sweep_lock", "sync"]
