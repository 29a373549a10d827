"""A ticket as outbound mail needs to know it, read inside the current transaction.

    snap = snapshot(ticket_id)
    snap.requester, snap.participants, snap.assignee, snap.last_customer_message, snap.notes

Mail is built from this frozen value (DESIGN §3: values at boundaries), after the change
that causes it, so a notification shows the ticket as the change left it.  The last
customer message is the newest verified inbound mail from the requester or a participant
(not an agent's, not an unverified stranger's, not an automatic one): agent replies
answer it, so the customer's client threads them.
"""
from __future__ import annotations

from dataclasses import dataclass

from store.models import Contact, Message, Participant, Ticket, TicketTag


@dataclass(frozen=True)
class Person:
    address: str
    name: str = ""


@dataclass(frozen=True)
class CustomerMessage:
    message_id: str | None
    references: tuple[str, ...]


@dataclass(frozen=True)
class TicketSnapshot:
    id: int
    number: int
    subject: str
    status: str
    priority: str
    queue: str
    assignee: str | None
    tags: tuple[str, ...]
    requester: Person
    participants: tuple[Person, ...]          # cc'd customers, the requester not included
    last_customer_message: CustomerMessage | None
    notes: tuple[str, ...]                    # texts of the internal notes, oldest first


def last_customer_message(ticket_id: int, *columns) -> Message | None:
    """The newest verified, non-automatic inbound mail from the ticket's customers (only
    `columns`), or None."""
    return (Message.select(*columns)
            .where(Message.ticket == ticket_id, Message.direction == "in", Message.author == "",
                   Message.internal == False, Message.unverified == False,  # noqa: E712
                   Message.kind == "normal")
            .order_by(Message.id.desc()).first())


def snapshot(ticket_id: int) -> TicketSnapshot:
    ticket = Ticket.select(Ticket, Contact).join(Contact).where(Ticket.id == ticket_id).get()
    people = [(p.role, Person(p.contact.address, p.contact.name))
              for p in Participant.select(Participant, Contact).join(Contact)
              .where(Participant.ticket == ticket_id).order_by(Participant.id)]
    last = last_customer_message(ticket_id, Message.message_id, Message.references)
    notes = tuple(m.visible_text for m in Message.select(Message.visible_text)
                  .where(Message.ticket == ticket_id, Message.kind == "note").order_by(Message.id))
    tags = tuple(t.tag for t in TicketTag.select(TicketTag.tag)
                 .where(TicketTag.ticket == ticket_id).order_by(TicketTag.tag))
    return TicketSnapshot(
        id=ticket.id, number=ticket.number, subject=ticket.subject, status=ticket.status,
        priority=ticket.priority, queue=ticket.queue, assignee=ticket.assignee, tags=tags,
        requester=Person(ticket.requester.address, ticket.requester.name),
        participants=tuple(p for role, p in people if role != "requester"),
        last_customer_message=CustomerMessage(last.message_id, tuple(last.references.split()))
        if last else None,
        notes=notes)
