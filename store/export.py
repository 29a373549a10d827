"""Tickets as plain dicts, one at a time, for `maild export` (JSON lines).

    with snapshot(db):
        for ticket in export_tickets(now=utcnow(), since=..., until=..., with_raw=False):
            write(json.dumps(ticket))

Constant memory: tickets are read in batches of `BATCH` by ascending id (keyset, never
OFFSET), and each batch's messages, tags, attachments, deliveries, events and SLA clocks
are read with one query each for that batch; nothing is kept from one batch to the next.
A message's raw bytes are read only with `with_raw`, one message at a time.

`snapshot(db)` is the read transaction to run it in, so the export is one consistent
picture even while the daemon writes: PostgreSQL REPEATABLE READ; on SQLite a deferred
(read) transaction, which takes no write lock (store.db's transactions begin IMMEDIATE),
so the daemon keeps writing while the export runs (WAL).

`since`/`until` select on `updated_at` (since <= updated_at < until), naive UTC like
every datetime in the database.  The keys of each ticket (all times ISO 8601 UTC with Z):

    number, subject, status, queue, priority, assignee, sla_policy, linked_to,
    requester {address, name}, participants [{address, name, role}], tags [...],
    created_at, updated_at, first_response_at, resolved_at, closed_at,
    sla [{clock, cycle, policy, priority, state (running|paused|stopped), budget_s,
          used_s, started_at, due_at, stopped_at, breached, steps_sent [...]}],
    messages [{direction, kind, message_id, in_reply_to, references [...], from,
               from_name, to, cc, subject, created_at, delivered_to [{recipient, via,
               received_at}], unverified, internal, author, auth, text, visible_text,
               html, attachments [{filename, content_type, size, sha256}],
               raw_base64 (with_raw only; null for outbound mail, which has no raw)}],
    events [{at, actor, kind, detail}]

In `sla`, `used_s` is the business time used before the clock last started running (the
running stretch since is not in it); `breached` is whether a running clock's `due_at` has
passed at `now`, or a paused or stopped clock used more than its budget.

The order is stable: tickets by id (creation order), messages, events and attachments by
id, tags by name.
"""
from __future__ import annotations

import base64
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime

import peewee

from rules.sla_steps import parse_sent
from store.db import is_sqlite
from store.models import (Attachment, Contact, Delivery, Event, Message, MessageAttachment,
                          Participant, SlaClock, Ticket, TicketTag)

BATCH = 200
RUNNING, PAUSED, STOPPED = "running", "paused", "stopped"

# Every column of Message but the raw bytes (read apart, and only when asked).
MESSAGE_FIELDS = tuple(f for f in Message._meta.sorted_fields if f.name != "raw")


def snapshot(db: peewee.Database):
    """A read-only transaction: one consistent picture, no write lock held."""
    if is_sqlite(db):
        return db.atomic(lock_type="DEFERRED")
    return db.atomic(isolation_level="REPEATABLE READ")


def export_tickets(*, now: datetime, since: datetime | None = None,
                   until: datetime | None = None, with_raw: bool = False,
                   batch: int = BATCH) -> Iterator[dict]:
    """Each ticket updated in [since, until) as a dict (the module docstring has the keys)."""
    chosen = []
    if since is not None:
        chosen.append(Ticket.updated_at >= since)
    if until is not None:
        chosen.append(Ticket.updated_at < until)
    last_id = 0
    while True:
        tickets = list(Ticket.select(Ticket, Contact).join(Contact)
                       .where(Ticket.id > last_id, *chosen).order_by(Ticket.id).limit(batch))
        if not tickets:
            return
        # the batch's rows of the other tables: a subquery, not a list of 200 ids
        in_batch = Ticket.select(Ticket.id).where(
            Ticket.id.between(tickets[0].id, tickets[-1].id), *chosen)
        last_id = tickets[-1].id
        yield from _batch(tickets, in_batch, now=now, with_raw=with_raw)


def _batch(tickets: list[Ticket], in_batch, *, now: datetime, with_raw: bool) -> Iterator[dict]:
    tags = _grouped(TicketTag.select(TicketTag.ticket, TicketTag.tag)
                    .where(TicketTag.ticket.in_(in_batch)).order_by(TicketTag.tag).tuples(),
                    lambda r: r[0], lambda r: r[1])
    participants = _grouped(
        Participant.select(Participant.ticket, Contact.address, Contact.name, Participant.role)
        .join(Contact).where(Participant.ticket.in_(in_batch)).order_by(Participant.id).tuples(),
        lambda r: r[0], lambda r: {"address": r[1], "name": r[2], "role": r[3]})
    clocks = _grouped(SlaClock.select().where(SlaClock.ticket.in_(in_batch)).order_by(SlaClock.id),
                      lambda r: r.ticket_id, lambda r: _clock(r, now))
    events = _grouped(Event.select(Event.ticket, Event.at, Event.actor, Event.kind, Event.detail)
                      .where(Event.ticket.in_(in_batch)).order_by(Event.id).tuples(),
                      lambda r: r[0],
                      lambda r: {"at": _iso(r[1]), "actor": r[2], "kind": r[3], "detail": r[4]})
    of_batch = Message.select(Message.id).where(Message.ticket.in_(in_batch))
    attachments = _grouped(
        MessageAttachment.select(MessageAttachment.message, MessageAttachment.filename,
                                 Attachment.content_type, Attachment.size, Attachment.sha256)
        .join(Attachment).where(MessageAttachment.message.in_(of_batch))
        .order_by(MessageAttachment.id).tuples(),
        lambda r: r[0],
        lambda r: {"filename": r[1], "content_type": r[2], "size": r[3], "sha256": r[4]})
    delivered = _grouped(
        Delivery.select(Delivery.message, Delivery.recipient, Delivery.via, Delivery.received_at)
        .where(Delivery.message.in_(of_batch)).order_by(Delivery.id).tuples(),
        lambda r: r[0], lambda r: {"recipient": r[1], "via": r[2], "received_at": _iso(r[3])})
    by_ticket: dict[int, list[tuple[int, dict]]] = defaultdict(list)
    for m in (Message.select(*MESSAGE_FIELDS).where(Message.ticket.in_(in_batch))
              .order_by(Message.id).dicts()):
        by_ticket[m["ticket"]].append((m["id"], _message(m, attachments.get(m["id"], []),
                                                         delivered.get(m["id"], []))))
    for t in tickets:
        mine = by_ticket.pop(t.id, [])
        if with_raw:
            for message_pk, message in mine:
                message["raw_base64"] = _raw(message_pk)
        yield {"number": t.number, "subject": t.subject, "status": t.status, "queue": t.queue,
               "priority": t.priority, "assignee": t.assignee, "sla_policy": t.sla_policy,
               "linked_to": t.linked_to,
               "requester": {"address": t.requester.address, "name": t.requester.name},
               "participants": participants.get(t.id, []), "tags": tags.get(t.id, []),
               "created_at": _iso(t.created_at), "updated_at": _iso(t.updated_at),
               "first_response_at": _iso(t.first_response_at),
               "resolved_at": _iso(t.resolved_at), "closed_at": _iso(t.closed_at),
               "sla": clocks.get(t.id, []), "messages": [m for _, m in mine],
               "events": events.get(t.id, [])}


def _message(m: dict, attachments: list[dict], delivered: list[dict]) -> dict:
    return {"direction": m["direction"], "kind": m["kind"], "message_id": m["message_id"],
            "in_reply_to": m["in_reply_to"] or None, "references": m["references"].split(),
            "from": m["from_address"], "from_name": m["from_name"], "to": m["to"], "cc": m["cc"],
            "subject": m["subject"], "created_at": _iso(m["created_at"]),
            "delivered_to": delivered, "unverified": m["unverified"], "internal": m["internal"],
            "author": m["author"], "auth": m["auth"], "text": m["text"],
            "visible_text": m["visible_text"], "html": m["html"], "attachments": attachments}


def _raw(message_pk: int) -> str | None:
    """One message's raw bytes as base64, read alone (a message may be 25 MB)."""
    [raw] = Message.select(Message.raw).where(Message.id == message_pk).tuples().get()
    return base64.b64encode(bytes(raw)).decode("ascii") if raw is not None else None


def _clock(r: SlaClock, now: datetime) -> dict:
    state = STOPPED if r.stopped_at else RUNNING if r.running_since else PAUSED
    if state == RUNNING:
        breached = r.due_at is not None and r.due_at <= now
    else:
        breached = r.used_s > r.budget_s
    return {"clock": r.clock, "cycle": r.cycle, "policy": r.policy, "priority": r.priority,
            "state": state, "budget_s": r.budget_s, "used_s": r.used_s,
            "started_at": _iso(r.started_at), "due_at": _iso(r.due_at),
            "stopped_at": _iso(r.stopped_at), "breached": breached,
            "steps_sent": sorted(parse_sent(r.steps_sent))}


def _grouped(query, key, value) -> dict[int, list]:
    out: dict[int, list] = defaultdict(list)
    for row in query:
        out[key(row)].append(value(row))
    return out


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") + "Z" if value else None
