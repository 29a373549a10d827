"""Apply the rules' decision to the ticket a message was recorded on (inside its transaction).

    applied = apply(recorded, routing, context.ruleset, now=now)

A new ticket was opened with the decision's queue and priority (`store.tickets`); here
it gets the rest of `routing.new`: its tags, its SLA policy, its assignee (a named agent
or a team's turn, `store.assignment`) and, when a rule discarded it, the status closed.
A reply gets only what `on: reply` rules set (`routing.reply.changes`), and only when it
is the mail of someone on the ticket and not automatic: a stranger's or a robot's mail
that names a ticket must not escalate or reassign it (an event says the rules matched
and were not applied).  A discarded message is marked (kind `discarded`); a discarded
reply changes nothing else on its ticket.

Every new ticket's audit log says which rules matched (event `rules`), also "none" (not
when the file has no rules at all); a reply's does when an `on: reply` rule matched.  All changes are made by the actor
`rules`, one audit event each (`store.changes`).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from rules.engine import Decision, Routing
from rules.model import Ruleset
from store import assignment, changes, tickets
from store.changes import Change
from store.tickets import APPENDED, Recorded

log = logging.getLogger(__name__)

ACTOR = "rules"


@dataclass(frozen=True)
class Applied:
    decision: Decision | None = None     # the decision that applied (None: nothing did)
    assignee: str | None = None

    @property
    def discarded(self) -> bool:
        return self.decision is not None and self.decision.discard


def apply(recorded: Recorded, routing: Routing, ruleset: Ruleset, *, now: datetime,
          automatic: bool = False) -> Applied:
    """`automatic`: the mail is not a person's (bounce, auto-reply, list): on a ticket it
    answers, like an unverified stranger's mail, it changes nothing (DESIGN §1.6)."""
    if recorded.created:
        return _new_ticket(recorded, routing.new, ruleset, now)
    if recorded.outcome == APPENDED and routing.reply is not None and routing.reply.matched:
        if recorded.unverified or automatic:
            who = "the sender is not on the ticket" if recorded.unverified else "automatic mail"
            tickets.add_event(recorded.ticket_id, now, ACTOR, "rules_not_applied",
                              f"{_matched(routing.reply)}; not applied: {who}")
            return Applied()
        return _reply(recorded, routing.reply, ruleset, now)
    return Applied()


def _new_ticket(recorded: Recorded, decision: Decision, ruleset: Ruleset, now: datetime) -> Applied:
    if ruleset.rules:                  # with no rules in the file there is nothing to record
        tickets.add_event(recorded.ticket_id, now, ACTOR, "rules", _matched(decision))
    wanted = [Change("tag", tag) for tag in decision.tags]
    if decision.sla:
        wanted.append(Change("sla", decision.sla))
    assignee = _assign(recorded, decision.assign, ruleset, now, wanted)
    if decision.discard:
        wanted.append(Change("status", "closed"))
    changes.apply(recorded.ticket_id, tuple(wanted), actor=ACTOR, now=now)
    if decision.discard:
        _discard(recorded, decision, now)
    return Applied(decision, assignee)


def _reply(recorded: Recorded, decision: Decision, ruleset: Ruleset, now: datetime) -> Applied:
    """What `on: reply` rules set; a discarded reply is only stored and marked (its
    ticket belongs to the customer: a spam reply must not tag or move it)."""
    tickets.add_event(recorded.ticket_id, now, ACTOR, "rules", _matched(decision))
    if decision.discard:
        _discard(recorded, decision, now)
        return Applied(decision)
    set_ = decision.changes
    wanted = [Change(name, value) for name, value in
              (("queue", set_.queue), ("priority", set_.priority), ("sla", set_.sla)) if value]
    wanted += [Change("tag", tag) for tag in set_.tags]
    assignee = _assign(recorded, set_.assign, ruleset, now, wanted)
    changes.apply(recorded.ticket_id, tuple(wanted), actor=ACTOR, now=now)
    return Applied(decision, assignee)


def _assign(recorded: Recorded, how, ruleset: Ruleset, now: datetime, wanted: list) -> str | None:
    """Pick the assignee `how` asks for (None: no assignment asked), record why, and add
    the change to `wanted`."""
    if how is None:
        return None
    assignee, why = assignment.pick(how, ruleset)
    if assignee:
        wanted.append(Change("assign", assignee))
    tickets.add_event(recorded.ticket_id, now, ACTOR, "assignment", f"{assignee or 'nobody'}: {why}")
    return assignee


def _discard(recorded: Recorded, decision: Decision, now: datetime) -> None:
    tickets.mark_discarded(recorded.message_pk, "discarded by rules: " + "; ".join(decision.matched))
    tickets.add_event(recorded.ticket_id, now, ACTOR, "discarded", _matched(decision))


def _matched(decision: Decision) -> str:
    return "matched: " + "; ".join(decision.matched) if decision.matched else "no rule matched"
