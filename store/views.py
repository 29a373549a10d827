"""Read-only views of tickets for the CLI (`maild tickets`, `maild show`, `maild outbox`).

Each function returns plain dicts with the keys documented for `--json` output, so the
CLI prints the same facts for people and for tools.
"""
from __future__ import annotations

import peewee

from store.models import Contact, Event, Message, Outbox, Participant, Ticket, TicketTag


class TicketNotFound(LookupError):
    """No ticket has that number."""


def _iso(value) -> str | None:
    return value.isoformat(timespec="seconds") + "Z" if value else None


def list_tickets(status: str | None = None, limit: int | None = None, *,
                 assignee: str | None = None, queue: str | None = None) -> list[dict]:
    counts = (Message.select(Message.ticket, peewee.fn.COUNT(Message.id).alias("n"))
              .group_by(Message.ticket))
    count_of = {row.ticket_id: row.n for row in counts}
    query = (Ticket.select(Ticket, Contact).join(Contact).order_by(Ticket.number))
    if status:
        query = query.where(Ticket.status == status)
    if assignee:
        query = query.where(Ticket.assignee == assignee.lower())
    if queue:
        query = query.where(Ticket.queue == queue)
    if limit:
        query = query.limit(limit)
    tickets = list(query)
    tags = _tags_of([t.id for t in tickets])
    return [{"number": t.number, "subject": t.subject, "status": t.status,
             "priority": t.priority, "queue": t.queue, "requester": t.requester.address,
             "assignee": t.assignee, "tags": tags.get(t.id, []),
             "messages": count_of.get(t.id, 0), "created_at": _iso(t.created_at),
             "updated_at": _iso(t.updated_at)} for t in tickets]


def _tags_of(ticket_ids: list[int]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    if not ticket_ids:
        return out
    for row in TicketTag.select().where(TicketTag.ticket.in_(ticket_ids)).order_by(TicketTag.tag):
        out.setdefault(row.ticket_id, []).append(row.tag)
    return out


def show_ticket(number: int) -> dict:
    ticket = Ticket.get_or_none(Ticket.number == number)
    if ticket is None:
        raise TicketNotFound(f"no ticket #{number}")
    participants = [{"address": p.contact.address, "name": p.contact.name, "role": p.role}
                    for p in Participant.select(Participant, Contact).join(Contact)
                    .where(Participant.ticket == ticket).order_by(Participant.id)]
    messages = [{"direction": m.direction, "kind": m.kind, "from": m.from_address,
                 "from_name": m.from_name, "to": m.to, "cc": m.cc, "subject": m.subject,
                 "message_id": m.message_id, "text": m.visible_text,
                 "unverified": m.unverified, "internal": m.internal, "author": m.author,
                 "auth": m.auth, "created_at": _iso(m.created_at)}
                for m in Message.select().where(Message.ticket == ticket).order_by(Message.id)]
    events = [{"at": _iso(e.at), "actor": e.actor, "kind": e.kind, "detail": e.detail}
              for e in Event.select().where(Event.ticket == ticket).order_by(Event.id)]
    return {"number": ticket.number, "subject": ticket.subject, "status": ticket.status,
            "priority": ticket.priority, "queue": ticket.queue, "sla": ticket.sla_policy,
            "requester": ticket.requester.address, "assignee": ticket.assignee,
            "tags": _tags_of([ticket.id]).get(ticket.id, []), "linked_to": ticket.linked_to,
            "participants": participants, "created_at": _iso(ticket.created_at),
            "first_response_at": _iso(ticket.first_response_at),
            "resolved_at": _iso(ticket.resolved_at), "closed_at": _iso(ticket.closed_at),
            "updated_at": _iso(ticket.updated_at), "messages": messages, "events": events}


def list_outbox(status: str | None = None) -> list[dict]:
    query = Outbox.select(Outbox, Ticket.number).join(Ticket).order_by(Outbox.id)
    if status:
        query = query.where(Outbox.status == status)
    return [{"ticket": r.ticket.number, "to": r.to_address, "subject": r.subject,
             "template": r.template, "status": r.status, "attempts": r.attempts,
             "message_id": r.message_id, "last_error": r.last_error,
             "next_attempt_at": _iso(r.next_attempt_at), "sent_at": _iso(r.sent_at)}
            for r in query]
