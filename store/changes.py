"""Agents change tickets: status, priority, assignee, queue, tags, the first response.

    with db.atomic():
        changes = apply(ticket_id, (Change("status", "pending"), Change("tag", "vip")),
                        actor="alice@example.com", now=now)
        record_reply(ticket_id, actor=..., now=now)     # an agent answered the customer

Each change writes the ticket and one audit event with the agent as actor, inside the
caller's transaction (DESIGN §1.3): the mail that asked for the changes, the changes and
the mails they cause commit together.  Values arrive validated (`parsers.commands` for the
syntax, the caller for agents and queues against the rules); a change that changes nothing
(the status it already has, a tag it already carries) is skipped and leaves no event.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from store.fastsql import insert_row
from store.models import Event, Ticket, TicketTag

log = logging.getLogger(__name__)

FIELDS = ("status", "priority", "assign", "queue", "sla", "tag", "untag")
COLUMNS = {"priority": "priority", "assign": "assignee", "queue": "queue",
           "sla": "sla_policy"}   # plain column sets


class UnknownChange(ValueError):
    """A change this module does not know (a programming error upstream)."""


@dataclass(frozen=True)
class Change:
    name: str        # one of FIELDS
    value: str       # validated: a status, a priority, an agent address, a queue name, a tag


def apply(ticket_id: int, changes: tuple[Change, ...], *, actor: str, now: datetime) -> tuple[Change, ...]:
    """Apply `changes` in order; return those that changed something."""
    if not changes:
        return ()
    ticket = Ticket.get_by_id(ticket_id)
    done = []
    for change in changes:
        if _apply_one(ticket, change, now):
            insert_row(Event, ticket=ticket_id, at=now, actor=actor, kind=change.name,
                       detail=change.value)
            done.append(change)
    if done:
        ticket.updated_at = now
        ticket.save()
    return tuple(done)


def _apply_one(ticket: Ticket, change: Change, now: datetime) -> bool:
    name, value = change.name, change.value
    if name == "status":
        if ticket.status == value:
            return False
        # closing keeps the time it was resolved (a direct close resolves it now): the
        # resolution time of `maild report` is not the auto-close delay
        ticket.resolved_at = (now if value == "resolved" else
                              (ticket.resolved_at or now) if value == "closed" else None)
        ticket.status = value
        ticket.closed_at = now if value == "closed" else None
        return True
    if name in COLUMNS:
        column = COLUMNS[name]
        if getattr(ticket, column) == value:
            return False
        setattr(ticket, column, value)
        return True
    if name == "tag":
        if _has_tag(ticket.id, value):
            return False
        TicketTag.insert(ticket=ticket.id, tag=value).execute()
        return True
    if name == "untag":
        return bool(TicketTag.delete().where(TicketTag.ticket == ticket.id,
                                             TicketTag.tag == value).execute())
    raise UnknownChange(name)


def _has_tag(ticket_id: int, tag: str) -> bool:
    return TicketTag.select().where(TicketTag.ticket == ticket_id, TicketTag.tag == tag).exists()


def record_reply(ticket_id: int, *, actor: str, now: datetime) -> None:
    """An agent answered the customer: the first response time, and a new ticket is open."""
    ticket = Ticket.get_by_id(ticket_id)
    if ticket.first_response_at is None:
        ticket.first_response_at = now
    if ticket.status == "new":
        ticket.status = "open"
    ticket.updated_at = now
    ticket.save()
    insert_row(Event, ticket=ticket_id, at=now, actor=actor, kind="replied", detail="")
