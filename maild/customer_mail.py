"""A customer's mail (anyone who is not an authenticated agent): record it, answer, tell agents.

    outcome = handle(inbound, routing, context, now=now)    # inside the batch transaction

1. `store.tickets.record_inbound` threads it into a ticket or opens one (duplicates,
   strangers, reopening: see there).  A reply that an `on: reply` rule discards is
   stored without reopening anything.  A burst -- the same subject, text and attachments from the same
   sender within `limits.burst_window_minutes` -- joins the first one's ticket and stops
   there: no rules, no SLA change, no acknowledgement, no notification.
2. `maild.routing` applies the rules' decision: tags, SLA policy, assignee, discard.
   A discarded mail stops here: no acknowledgement, no notification.
3. A new ticket gets the acknowledgement (the rules may pick its template or none),
   unless the mail is automatic, from the null sender or from us, or a loop brake holds
   (DESIGN §1.5): its sender had `limits.auto_replies_per_hour` automatic mails in the
   past hour, or the ticket sent `limits.auto_replies_per_ticket_per_hour` automatic
   mails out of the help desk (agents' notifications not counted).  Both are counted in
   the database, so every instance and every restart sees the same count.
4. The agents hear of it: a new ticket → the assignee, else the queue's team; a reply →
   the assignee, else the team (also when the assignee is the claimed sender or no longer
   an agent).  A stranger's reply is announced with a warning; so is
   mail from an agent's address that failed authentication (it acts as nothing).
   Automatic mail (auto-replies, lists, reports, loops) is stored but announced to
   nobody, and changes neither the ticket's status nor its SLA clocks.  (Bounces never
   get here: `maild.bounce_mail`.)
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from maild import drafts, routing as rules_routing
from maild.pipeline import Context, may_auto_reply
from parsers.classify import NORMAL
from rules.engine import Routing
from store import outbox, sla, tickets
from store.snapshot import snapshot
from store.tickets import APPENDED, DUPLICATE, InboundMessage, Recorded

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    recorded: Recorded
    acknowledged: bool = False
    notified: int = 0
    summary: str = ""


def handle(inbound: InboundMessage, routing: Routing, context: Context, *, now: datetime) -> Outcome:
    quiet = routing.reply is not None and routing.reply.discard
    burst = timedelta(minutes=context.burst_window_minutes) if context.burst_window_minutes else None
    recorded = tickets.record_inbound(inbound, now=now, reopen_days=context.reopen_days,
                                      strangers=context.unknown_sender, quiet=quiet,
                                      burst_window=burst)
    if recorded.outcome == DUPLICATE:
        return Outcome(recorded)
    if recorded.collapsed:
        return Outcome(recorded, summary="collapsed: the same mail as one just before")
    if inbound.auth:
        tickets.add_event(recorded.ticket_id, now, inbound.from_address, "auth_failed", inbound.auth)
    applied = rules_routing.apply(recorded, routing, context.ruleset, now=now,
                                  automatic=inbound.kind != NORMAL)
    sla.sync(recorded.ticket_id, context.ruleset, now,
             customer_replied=recorded.outcome == APPENDED and not recorded.unverified
             and inbound.kind == NORMAL and not quiet)
    if applied.discarded:
        return Outcome(recorded, summary="discarded by the rules")
    acked = recorded.created and _acknowledge(recorded, inbound, routing, context, now)
    notified = _notify(recorded, inbound, context, now) if inbound.kind == NORMAL else 0
    return Outcome(recorded, acknowledged=acked, notified=notified)


def _acknowledge(recorded: Recorded, inbound: InboundMessage, routing: Routing,
                 context: Context, now: datetime) -> bool:
    refusal = may_auto_reply(inbound, routing, context) or loop_brake(
        recorded.ticket_id, recorded.ticket_number, inbound.from_address, context, now)
    if refusal is not None:
        tickets.add_event(recorded.ticket_id, now, "system", "no_acknowledgement", refusal)
        return False
    outbox.enqueue(drafts.acknowledgement(recorded, inbound, context, template=routing.new.template),
                   now=now)
    return True


def loop_brake(ticket_id: int, number: int, address: str, context: Context, now: datetime) -> str | None:
    """Why one more automatic mail to `address` about this ticket must not go, or None."""
    hour_ago = now - timedelta(hours=1)
    if outbox.automatic_sent_since(address, hour_ago) >= context.auto_replies_per_hour:
        return f"loop brake: {context.auto_replies_per_hour} automatic mails/hour to {address}"
    limit = context.auto_replies_per_ticket_per_hour
    if outbox.automatic_on_ticket_since(ticket_id, hour_ago) >= limit:
        return f"loop brake: {limit} automatic mails/hour on ticket #{number}"
    return None


def _notify(recorded: Recorded, inbound: InboundMessage, context: Context, now: datetime) -> int:
    if not context.ruleset.agents:
        return 0                     # nobody to tell: spare the ticket's snapshot
    snap = snapshot(recorded.ticket_id)
    team = tuple(a.address for a in context.ruleset.agents_for_queue(snap.queue))
    recipients = tuple(r for r in ((snap.assignee,) if snap.assignee else team)
                       if r and r != inbound.from_address and context.ruleset.agent_for(r))
    if not recipients:
        # the assignee is the (claimed, unproven) sender, or no agent any more: the team
        # hears of it rather than nobody
        recipients = tuple(r for r in team if r != inbound.from_address)
    warning = ""
    if recorded.unverified:
        event = drafts.UNVERIFIED
        warning = (f"{inbound.from_address} is not on this ticket: the message was kept but "
                   "its sender was not added and receives nothing from this ticket.")
    else:
        event = drafts.NEW_TICKET if recorded.created else drafts.CUSTOMER_REPLY
    if inbound.auth:
        warning = (warning + " " if warning else "") + (
            f"This mail uses an agent's address but did not prove it ({inbound.auth}); "
            "it was handled as a customer's mail and no command in it was executed.")
    queued = drafts.notifications(snap, context, event=event, recipients=recipients,
                                  author_name=inbound.from_name, author_address=inbound.from_address,
                                  text=inbound.visible_text, warning=warning,
                                  answers=(inbound.message_id, inbound.references))
    for draft in queued:
        outbox.enqueue(draft, now=now)
    return len(queued)
