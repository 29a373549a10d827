"""The transactional outbox: outbound mail is a row first, a delivery later.

`enqueue()` runs inside the transaction that caused the mail (a new ticket, a reply), so
the mail exists exactly when the change does.  It also stores the outbound mail as a
ticket `Message` (direction `out`) so its Message-ID threads replies.  The sender claims
due rows (`claim_due`), hands them to the relay, and records the outcome: `mark_sent`,
`mark_retry` (4xx, network errors; next attempt after a backoff) or `mark_failed` (5xx,
or too many attempts), each leaving an event on the ticket.  A bounce that comes back
later for a mail the relay took marks it `bounced` (`mark_bounced`, from
`maild.bounce_mail`); `failed` stays what the relay refused at once.

Loop brakes count rows here: `automatic_sent_since` (automatic mails to one address) and
`automatic_on_ticket_since` (automatic mails on one ticket that left the help desk).

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
from store.fastsql import execute, fetch, insert_row
from store.models import Event, Message, Outbox

log = logging.getLogger(__name__)

QUEUED, SENDING, SENT, FAILED, BOUNCED = "queued", "sending", "sent", "failed", "bounced"
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


def automatic_on_ticket_since(ticket_id: int, since: datetime) -> int:
    """How many automatic mails on this ticket to anyone outside the help desk (not the
    agents' internal notifications) were queued since `since` (loop brake)."""
    [(count,)] = fetch(Outbox._meta.database,
                       'SELECT COUNT(*) FROM "outbox" o JOIN "message" m ON m."id" = o."ticket_message_id" '
                       'WHERE o."ticket_id" = ? AND o."automatic" = ? AND m."internal" = ? '
                       'AND o."created_at" >= ?', [ticket_id, True, False, since])
    return count


def mark_bounced(outbox_id: int, error: str) -> bool:
    """A bounce came back for this mail: `bounced` (in the caller's transaction; the
    caller leaves the ticket's event).  Only a mail a relay accepted (`sent`) can have
    bounced: a "bounce" for one still queued, waiting for a retry or being handed over is
    forged (VERP ids are sequential) or confused, and must not stop it (False)."""
    return execute(Outbox._meta.database,
                   'UPDATE "outbox" SET "status" = ?, "last_error" = ? WHERE "id" = ? AND "status" = ?',
                   [BOUNCED, error, outbox_id, SENT]) == 1


def sent_to(ticket_id: int, message_ids: tuple[str, ...], addresses: tuple[str, ...]) -> bool:
    """Is one of `message_ids` a mail of this ticket that we sent to one of `addresses`?"""
    if not message_ids or not addresses:
        return False
    return (Outbox.select(Outbox.id)
            .where(Outbox.ticket == ticket_id, Outbox.message_id.in_(list(message_ids)),
                   Outbox.to_address.in_(list(addresses)))
            .exists())


_DUE = ('SELECT "outbox"."id", "outbox"."attempts", "outbox"."template", "outbox"."automatic", '
        '"outbox"."from_name", "outbox"."from_address", "outbox"."to_address", "outbox"."subject", '
        '"outbox"."message_id", "outbox"."in_reply_to", "outbox"."references", "outbox"."text", '
        '"outbox"."html", "outbox"."cc", "outbox"."reply_to", "outbox"."auto_submitted", '
        '"ticket"."id", "ticket"."number" '
        'FROM "outbox" JOIN "ticket" ON "ticket"."id" = "outbox"."ticket_id" '
        'WHERE "outbox"."status" IN (?, ?) AND "outbox"."next_attempt_at" <= ? '
        'ORDER BY "outbox"."next_attempt_at", "outbox"."id" LIMIT ?')
_LOCK_DUE = ' FOR UPDATE OF "outbox" SKIP LOCKED'       # PostgreSQL: never race another sender


def claim_due(db: peewee.Database, now: datetime, limit: int = 32,
              max_attempts: int = 10) -> list[DueMail]:
    """Lease up to `limit` due rows (queued, or sending with an expired lease); fail rows
    that already had `max_attempts` leases without an outcome.  Fixed SQL (`fastsql`):
    the sender claims once per few deliveries, and building the query and model
    instances with peewee cost more than SQLite's work."""
    lease_until = now + LEASE
    with db.atomic():
        rows = fetch(db, _DUE if is_sqlite(db) else _DUE + _LOCK_DUE,
                     [QUEUED, SENDING, now, limit])
        spent = [r for r in rows if r[1] >= max_attempts]
        for (row_id, attempts, template, _, _, _, to_address, *_, ticket_id, _) in spent:
            execute(db, 'UPDATE "outbox" SET "status" = ?, "last_error" = ? WHERE "id" = ?',
                    [FAILED, f"no outcome after {attempts} attempts", row_id])
            insert_row(Event, ticket=ticket_id, at=now, actor="system", kind="mail_failed",
                       detail=f"{template} to {to_address}: no outcome after {attempts} attempts")
        rows = [r for r in rows if r[1] < max_attempts]
        if not rows:
            return []
        execute(db, 'UPDATE "outbox" SET "status" = ?, "next_attempt_at" = ?, '
                    '"attempts" = "attempts" + 1 WHERE "id" IN (' + ", ".join("?" * len(rows)) + ")",
                [SENDING, lease_until, *(r[0] for r in rows)])
    return [DueMail(id=row_id, ticket_number=number, attempts=attempts + 1, lease_until=lease_until,
                    draft=OutgoingDraft(
                        ticket_id=ticket_id, template=template, automatic=bool(automatic),
                        from_name=from_name, from_address=from_address, to_address=to_address,
                        subject=subject, message_id=message_id, in_reply_to=in_reply_to,
                        references=tuple(references.split()), text=text, html=html,
                        cc=tuple(a for a in cc.split(", ") if a), reply_to=reply_to,
                        auto_submitted=auto_submitted))
            for (row_id, attempts, template, automatic, from_name, from_address, to_address,
                 subject, message_id, in_reply_to, references, text, html, cc, reply_to,
                 auto_submitted, ticket_id, number) in rows]


_HOLDING = ' WHERE "id" = ? AND "status" = ? AND "next_attempt_at" = ?'


def _update_held(due: DueMail, assignments: str, values: list) -> bool:
    """UPDATE the row only while the lease is still the one we were given."""
    return execute(Outbox._meta.database, 'UPDATE "outbox" SET ' + assignments + _HOLDING,
                   [*values, due.id, SENDING, due.lease_until]) > 0


def mark_sent(due: DueMail, *, now: datetime, detail: str = "") -> bool:
    if not _update_held(due, '"status" = ?, "sent_at" = ?, "last_error" = NULL', [SENT, now]):
        return False
    insert_row(Event, ticket=due.draft.ticket_id, at=now, actor="system", kind="mail_sent",
               detail=f"{due.draft.template} to {due.draft.to_address} {detail}".strip())
    return True


def mark_retry(due: DueMail, *, now: datetime, next_attempt_at: datetime, error: str) -> bool:
    return _update_held(due, '"status" = ?, "next_attempt_at" = ?, "last_error" = ?',
                        [QUEUED, next_attempt_at, error])


def mark_failed(due: DueMail, *, now: datetime, error: str) -> bool:
    if not _update_held(due, '"status" = ?, "last_error" = ?', [FAILED, error]):
        return False
    insert_row(Event, ticket=due.draft.ticket_id, at=now, actor="system", kind="mail_failed",
               detail=f"{due.draft.template} to {due.draft.to_address}: {error}")
    return True


def release(due: DueMail, *, now: datetime) -> bool:
    """Give a lease back unused (stopping): due again at once, the attempt not counted."""
    return _update_held(due, '"status" = ?, "next_attempt_at" = ?, "attempts" = "attempts" - 1',
                        [QUEUED, now])
