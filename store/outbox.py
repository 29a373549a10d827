"""The transactional outbox: outbound mail is a row first, a delivery later.

`enqueue()` runs inside the transaction that caused the mail (a new ticket, a reply), so
the mail exists exactly when the change does.  It also stores the outbound mail as a
ticket `Message` (direction `out`) so its Message-ID threads replies.  The sender claims
due rows (`claim_due`), hands them to the relay, and records the outcome: `mark_sent`,
`mark_retry` (4xx, network errors; next attempt after a backoff) or `mark_failed` (5xx,
or too many attempts), each leaving an event on the ticket.

A claim is a lease: the row turns `sending`, its attempt is counted, and
`next_attempt_at` moves `LEASE` ahead.  If its sender dies (or its outcome can't be
recorded), the lease runs out and any instance claims the row again, so mail is delivered
at least once and never stuck; a row claimed `max_attempts` times without an outcome is
failed at the next claim.  Outcomes are written only while the lease is still the one
claimed (`DueMail.lease_until`), so a sender that outlived its lease can't overwrite what
the next holder recorded.  A live sender on another instance (PostgreSQL,
`FOR UPDATE SKIP LOCKED`) is never raced.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import peewee

from store.db import is_sqlite
from store.fastsql import fetch, insert_row
from store.models import Event, Message, Outbox

log = logging.getLogger(__name__)

QUEUED, SENDING, SENT, FAILED = "queued", "sending", "sent", "failed"
LEASE = timedelta(minutes=10)     # longer than any relay timeout


@dataclass(frozen=True)
class OutgoingDraft:
    ticket_id: int
    template: str
    automatic: bool
    from_name: str
    from_address: str
    to_address: str
    subject: str
    message_id: str
    in_reply_to: str | None
    references: tuple[str, ...]
    text: str
    html: str | None
    kind: str = "ack"           # the kind of its copy on the ticket: ack | reply | notify | command_error
    cc: tuple[str, ...] = ()
    reply_to: str | None = None
    auto_submitted: str | None = None   # 'auto-replied' / 'auto-generated'; None: a person wrote it
    internal: bool = False      # its copy on the ticket is for agents only


@dataclass(frozen=True)
class DueMail:
    """A claimed outbox row, detached from the database: the draft plus delivery state."""
    id: int
    ticket_number: int
    attempts: int               # including this one
    lease_until: datetime
    draft: OutgoingDraft


def enqueue(draft: OutgoingDraft, *, now: datetime) -> int:
    """Queue `draft` (and its copy on the ticket) in the caller's transaction; the row id."""
    message_pk = insert_row(
        Message, ticket=draft.ticket_id, direction="out", kind=draft.kind,
        message_key="mid:" + draft.message_id, message_id=draft.message_id,
        in_reply_to=draft.in_reply_to or "", references=" ".join(draft.references),
        from_address=draft.from_address, from_name=draft.from_name, to=draft.to_address,
        cc=", ".join(draft.cc), subject=draft.subject, visible_text=draft.text, text=draft.text,
        html=draft.html or "", internal=draft.internal, created_at=now)
    return insert_row(
        Outbox, ticket=draft.ticket_id, ticket_message=message_pk, template=draft.template,
        automatic=draft.automatic, from_name=draft.from_name,
        from_address=draft.from_address, to_address=draft.to_address, cc=", ".join(draft.cc),
        reply_to=draft.reply_to, auto_submitted=draft.auto_submitted,
        subject=draft.subject, message_id=draft.message_id, in_reply_to=draft.in_reply_to,
        references=" ".join(draft.references), text=draft.text, html=draft.html,
        status=QUEUED, next_attempt_at=now, created_at=now)


def automatic_sent_since(address: str, since: datetime) -> int:
    """How many automatic mails to `address` were queued since `since` (loop brake)."""
    [(count,)] = fetch(Outbox._meta.database,
                       'SELECT COUNT(*) FROM "outbox" WHERE "to_address" = ? AND "automatic" = ? '
                       'AND "created_at" >= ?', [address, True, since])
    return count


def sent_to(ticket_id: int, message_ids: tuple[str, ...], addresses: tuple[str, ...]) -> bool:
    """Is one of `message_ids` a mail of this ticket that we sent to one of `addresses`?"""
    if not message_ids or not addresses:
        return False
    return (Outbox.select(Outbox.id)
            .where(Outbox.ticket == ticket_id, Outbox.message_id.in_(list(message_ids)),
                   Outbox.to_address.in_(list(addresses)))
            .exists())


def claim_due(db: peewee.Database, now: datetime, limit: int = 32,
              max_attempts: int = 10) -> list[DueMail]:
    """Lease up to `limit` due rows (queued, or sending with an expired lease); fail rows
    that already had `max_attempts` leases without an outcome."""
    from store.models import Ticket

    lease_until = now + LEASE
    with db.atomic():
        query = (Outbox.select(Outbox, Ticket.id, Ticket.number).join(Ticket)
                 .where(Outbox.status.in_([QUEUED, SENDING]), Outbox.next_attempt_at <= now)
                 .order_by(Outbox.next_attempt_at, Outbox.id).limit(limit))
        if not is_sqlite(db):
            query = query.for_update(of=Outbox, skip_locked=True)
        rows = list(query)
        spent = [r for r in rows if r.attempts >= max_attempts]
        for r in spent:
            Outbox.update(status=FAILED, last_error=f"no outcome after {r.attempts} attempts"
                          ).where(Outbox.id == r.id).execute()
            insert_row(Event, ticket=r.ticket.id, at=now, actor="system", kind="mail_failed",
                       detail=f"{r.template} to {r.to_address}: no outcome after {r.attempts} attempts")
        rows = [r for r in rows if r.attempts < max_attempts]
        if not rows:
            return []
        (Outbox.update(status=SENDING, next_attempt_at=lease_until, attempts=Outbox.attempts + 1)
         .where(Outbox.id.in_([r.id for r in rows])).execute())
    return [DueMail(id=r.id, ticket_number=r.ticket.number, attempts=r.attempts + 1,
                    lease_until=lease_until, draft=OutgoingDraft(
        ticket_id=r.ticket.id, template=r.template, automatic=r.automatic,
        from_name=r.from_name, from_address=r.from_address, to_address=r.to_address,
        subject=r.subject, message_id=r.message_id, in_reply_to=r.in_reply_to,
        references=tuple(r.references.split()), text=r.text, html=r.html,
        cc=tuple(a for a in r.cc.split(", ") if a), reply_to=r.reply_to,
        auto_submitted=r.auto_submitted)) for r in rows]


def _holding(due: DueMail):
    """Only while the lease is still the one we were given."""
    return ((Outbox.id == due.id) & (Outbox.status == SENDING)
            & (Outbox.next_attempt_at == due.lease_until))


def mark_sent(due: DueMail, *, now: datetime, detail: str = "") -> bool:
    if not Outbox.update(status=SENT, sent_at=now, last_error=None).where(_holding(due)).execute():
        return False
    insert_row(Event, ticket=due.draft.ticket_id, at=now, actor="system", kind="mail_sent",
               detail=f"{due.draft.template} to {due.draft.to_address} {detail}".strip())
    return True


def mark_retry(due: DueMail, *, now: datetime, next_attempt_at: datetime, error: str) -> bool:
    return bool(Outbox.update(status=QUEUED, next_attempt_at=next_attempt_at, last_error=error)
                .where(_holding(due)).execute())


def mark_failed(due: DueMail, *, now: datetime, error: str) -> bool:
    if not Outbox.update(status=FAILED, last_error=error).where(_holding(due)).execute():
        return False
    insert_row(Event, ticket=due.draft.ticket_id, at=now, actor="system", kind="mail_failed",
               detail=f"{due.draft.template} to {due.draft.to_address}: {error}")
    return True


def release(due: DueMail, *, now: datetime) -> bool:
    """Give a lease back unused (stopping): due again at once, the attempt not counted."""
    return bool(Outbox.update(status=QUEUED, next_attempt_at=now, attempts=Outbox.attempts - 1)
                .where(_holding(due)).execute())
