"""The SLA sweep: mail each escalation step that fell due, exactly once.

    result = sweep(db, context, now)                 # the scheduler, every 30 s
    result = sweep(db, context, now, dry_run=True)   # `maild sla sweep --dry-run`
    result.sent      # (Escalated(ticket 1042, first_response, '80%', to alice@...), ...)

A sweep reads only the clocks whose next step is due (`store.sla.due_clocks`, an index
range on `sla_clock.next_step_at`), so its cost follows the tickets due, not the tickets
stored.  For each clock it takes the steps due now (`rules.sla_steps`), and for each step,
in one transaction:

1. the ledger row (`sla_escalation`, unique per ticket, clock, cycle and step) — if it
   exists the step was sent already (a crash after commit, a second instance) and
   nothing is queued;
2. one mail per recipient into the outbox, rendered from the step's template;
3. an event on the ticket (`sla_warning` / `sla_breach`, with step and recipients);
4. the clock's `steps_sent` and its `next_step_at`, moved to its next unsent step.

So a step is mailed once per ticket, clock and cycle, across any number of sweeps and
restarts; after downtime each step that fell due meanwhile is mailed once (a late
warning says how overdue the ticket is now), never once per missed sweep.

Recipients (`notify:`): ``assignee`` is the ticket's assignee, or the queue's team when
nobody is assigned; ``team`` is the queue's team (its available members; all of them when
everyone is away; every agent when the queue has no team); an address is taken as the
admin wrote it.  A step with nobody to tell is recorded with an event saying so.

A clock whose escalation fails (a site template that does not render) is logged and
looked at again 15 minutes later; the other clocks of the sweep go on.

On PostgreSQL several instances may run the sweep: each batch takes an advisory lock
(`store.sla.sweep_lock`) and an instance that can't get it skips that sweep.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from maild import drafts
from rules.durations import format_duration
from rules.sla_clock import Clock
from rules.sla_steps import Step, due_steps, overdue, parse_sent
from store import outbox, sla, tickets
from store.models import Message
from store.snapshot import TicketSnapshot, last_customer_message, snapshot

log = logging.getLogger(__name__)

BATCH = 200                    # clocks per transaction
RETRY_FAILED = timedelta(minutes=15)   # a clock whose escalation failed is looked at again then
DRY_RUN_LIMIT = 10_000         # clocks a dry run looks at (it commits nothing, so one batch)
SUMMARY_CHARS = 600
CLOCK_LABELS = {"first_response": "first response", "next_response": "next response",
                "resolution": "resolution"}
_LINK = re.compile(r"(?i)\b(?:https?://|ftp://|www\.)\S+|<[a-z][a-z0-9+.-]*:[^>\s]*>")
_BLANK_LINES = re.compile(r"\n\s*\n+")


@dataclass(frozen=True)
class Escalated:
    """One step sent (or, in a dry run, that would be)."""
    ticket_number: int
    clock: str
    cycle: int
    step: str
    due_at: datetime               # aware UTC: when the step fell due
    breached: bool
    recipients: tuple[str, ...]


@dataclass(frozen=True)
class SweepResult:
    sent: tuple[Escalated, ...] = ()
    clocks: int = 0                # clocks looked at
    locked_out: bool = False       # another instance holds the sweep lock


def sweep(db, context, now: datetime, *, dry_run: bool = False, batch: int = BATCH) -> SweepResult:
    """Escalate everything due at `now` (aware or naive UTC); a dry run rolls back."""
    sent: list[Escalated] = []
    looked = 0
    while True:
        with db.atomic() as transaction:
            if not sla.sweep_lock(db):
                log.info("SLA sweep skipped: another instance is sweeping")
                return SweepResult(tuple(sent), looked, locked_out=True)
            rows = sla.due_clocks(now, DRY_RUN_LIMIT if dry_run else batch)
            for row in rows:
                try:
                    with db.atomic():          # a savepoint: one bad ticket spoils nothing else
                        sent.extend(_escalate(row, context, now))
                except ClockChanged:
                    log.info("ticket id %s: SLA %s changed during the sweep; its mails were "
                             "not queued, the next sweep looks again", row.ticket_id, row.clock)
                except Exception:  # noqa: BLE001 - e.g. a site template that fails to render
                    log.exception("ticket id %s: SLA %s escalation failed; trying again in %s",
                                  row.ticket_id, row.clock, RETRY_FAILED)
                    sla.defer(row, now + RETRY_FAILED)
            looked += len(rows)
            if dry_run:
                transaction.rollback()
        if dry_run or len(rows) < batch:
            break
    if not dry_run:
        for step in sent:
            log.info("ticket=#%s SLA %s %s (cycle %s) due %s: %s", step.ticket_number, step.clock,
                     step.step, step.cycle, f"{step.due_at:%Y-%m-%d %H:%M} UTC",
                     ", ".join(step.recipients) or "nobody to notify")
    return SweepResult(tuple(sent), looked)


class ClockChanged(Exception):
    """The clock row changed between the sweep's read and its write (never expected: the
    row is locked on PostgreSQL and SQLite has one writer); the step is not sent."""


def _escalate(row, context, now: datetime) -> list[Escalated]:
    ruleset = context.ruleset
    # the clocks as the ticket asks now: repairs a clock left running while the rules had
    # no SLA (nothing kept them then), so a resolved ticket never escalates
    sla.sync(row.ticket_id, ruleset, now)
    row = sla.reread(row)
    if row is None or row.next_step_at is None or row.next_step_at > sla.naive(now):
        return []
    policy, calendar, hours = sla.policy_and_calendar(row, ruleset)
    clock = sla.clock_of(row)
    due = due_steps(policy, clock, calendar, parse_sent(row.steps_sent), now, hours) if policy else []
    out = []
    if due:
        snap = snapshot(row.ticket_id)
        last = _last_customer_message(row.ticket_id)
        for step, when in due:
            recipients = _recipients(step, snap, ruleset)
            if not sla.claim_step(row, step.key, when, now, tuple(a for _, a in recipients)):
                continue                       # already sent: never twice
            values = _values(step, row, clock, calendar, policy, now)
            for recipient in recipients:
                outbox.enqueue(drafts.escalation(snap, context, template=step.escalation.template,
                                                 recipient=recipient, sla=values,
                                                 last_message=last), now=now)
            addresses = tuple(a for _, a in recipients)
            tickets.add_event(row.ticket_id, now, "", "sla_breach" if values["breached"] else "sla_warning",
                              f"{row.clock} {step.key}: " + (", ".join(addresses) or "nobody to notify"))
            out.append(Escalated(snap.number, row.clock, row.cycle, step.key, when,
                                 values["breached"], addresses))
    if not sla.record_sent(row, [step.key for step, _ in due], ruleset, now):
        raise ClockChanged(row.id)
    return out


def _recipients(step: Step, snap: TicketSnapshot, ruleset) -> list[tuple[str, str]]:
    """(name, address) of each person the step notifies, once each, in `notify:` order."""
    team = [a for a in ruleset.agents_for_queue(snap.queue) if a.available] or \
        list(ruleset.agents_for_queue(snap.queue))
    found: dict[str, str] = {}
    for who in step.escalation.notify:
        if who == "assignee" and snap.assignee:
            agent = ruleset.agent_for(snap.assignee)
            people = [(agent.name if agent else "", snap.assignee)]
        elif who in ("assignee", "team"):
            people = [(a.name, a.address) for a in team]
        else:
            agent = ruleset.agent_for(who)
            people = [(agent.name if agent else "", who)]
        for name, address in people:
            found.setdefault(address.lower(), name)
    return [(name, address) for address, name in found.items()]


def _values(step: Step, row, clock: Clock, calendar, policy, now: datetime) -> dict:
    """The `sla` values of the templates (see templates.SAMPLE_CONTEXTS['sla_breach'])."""
    used, late = clock.used(calendar, now), overdue(clock, calendar, now)
    due = clock.due_at(calendar)
    breached = step.is_breach or late > timedelta(0)
    target = policy.target(row.priority, row.clock)
    budget = clock.budget.total_seconds()
    return {
        "policy": policy.name, "clock": row.clock, "clock_label": CLOCK_LABELS.get(row.clock, row.clock),
        "step": step.key.split("#")[0], "target": str(target) if target else format_duration(clock.budget),
        "calendar": calendar.name,
        "due_at": due.astimezone(ZoneInfo(calendar.timezone)).strftime("%Y-%m-%d %H:%M %Z") if due else "",
        "due_at_utc": due.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC") if due else "",
        "breached": breached,
        "left": "" if breached else format_duration(clock.remaining(calendar, now)),
        "overdue": format_duration(late) if breached else "",
        "used": format_duration(used),
        "percent_used": int(used.total_seconds() * 100 // budget) if budget else 100,
    }


def _last_customer_message(ticket_id: int) -> dict | None:
    last = last_customer_message(ticket_id, Message.from_name, Message.from_address,
                                 Message.visible_text, Message.created_at)
    if last is None:
        return None
    return {"from_name": last.from_name, "from_address": last.from_address,
            "at": f"{last.created_at:%Y-%m-%d %H:%M} UTC", "summary": summary(last.visible_text)}


def summary(text: str, limit: int = SUMMARY_CHARS) -> str:
    """The customer's words without links (an escalation mail is link-free: nobody clicks a
    customer's URL from a manager's inbox), blank runs folded, cut at `limit` characters."""
    text = _BLANK_LINES.sub("\n\n", _LINK.sub("[link removed]", text or "")).strip()
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(None, 1)[0] if " " in text[:limit] else text[:limit]
    return cut.rstrip() + " […]"
