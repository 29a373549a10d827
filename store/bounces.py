"""Bounces received: which outbound mail each reports on, and the record of every one.

    found = match(verp_outbox_id=42, message_ids=("maild.7.x@example.com",), hostname="example.com")
    found.outbox_id, found.ticket_id, found.matched_by      # 42, ..., 'verp'
    bounce_id = record(BounceRecord(...))                  # in the caller's transaction
    known("mid:abc@mx.example")                            # a replay: True
    listing(unmatched=True)                                # `maild bounces --unmatched`

`match` tries, in order (the first that finds a row decides):
1. `verp`: the outbox row named by the VERP envelope recipient `<local>+bounces-<N>@`;
2. `message-id`: an outbox row whose Message-ID is among those the bounce returned
   (best first); failing that, a returned Message-ID of ours (`maild.<ticket>.<x>@<host>`)
   whose ticket still exists: matched to the ticket, with no outbox row.
Anyone can write to a VERP address or quote our Message-ID, so a forged bounce can mark
one of our mails bounced; it changes no ticket's status and sends nothing.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from store.fastsql import fetch, insert_row
from store.models import Bounce, Message, Outbox, Ticket

log = logging.getLogger(__name__)

VERP, MESSAGE_ID, UNMATCHED = "verp", "message-id", ""


@dataclass(frozen=True)
class Match:
    ticket_id: int
    ticket_number: int
    matched_by: str                   # VERP | MESSAGE_ID
    outbox_id: int | None = None      # None: matched to the ticket by our Message-ID alone
    template: str = ""                # which mail bounced: ack, reply, notify, ...
    to_address: str = ""
    message_id: str = ""


@dataclass(frozen=True)
class BounceRecord:
    received_at: datetime
    message_key: str
    message_id: str | None
    from_address: str
    subject: str
    recipient: str
    action: str
    status: str
    diagnostic: str
    reporting_mta: str
    raw: bytes | None                 # None when the bounce is kept on its ticket
    match: Match | None = None
    message_pk: int | None = None     # its copy on the ticket


_BY_ID = ('SELECT o."id", o."ticket_id", t."number", o."template", o."to_address", o."message_id" '
          'FROM "outbox" o JOIN "ticket" t ON t."id" = o."ticket_id" ')


def match(*, verp_outbox_id: int | None, message_ids: tuple[str, ...], hostname: str) -> Match | None:
    """The outbound mail (or at least the ticket) a bounce reports on; None: nothing of ours."""
    db = Outbox._meta.database
    if verp_outbox_id is not None:
        rows = fetch(db, _BY_ID + 'WHERE o."id" = ?', [verp_outbox_id])
        if rows:
            return _match(rows[0], VERP)
    ids = list(dict.fromkeys(message_ids))[:50]
    if ids:
        rows = fetch(db, _BY_ID + f'WHERE o."message_id" IN ({", ".join("?" * len(ids))})', ids)
        by_id = {row[5]: row for row in rows}
        for message_id in ids:
            if message_id in by_id:
                return _match(by_id[message_id], MESSAGE_ID)
        # a mail of ours we keep on a ticket but not in the outbox: the exact id must be
        # stored (an id that merely looks like ours -- maild.<N>.<anything>@host -- is
        # what a stranger forges to write on ticket N)
        stored = {m.message_id: m for m in Message.select(Message.message_id, Message.ticket)
                  .where(Message.message_id.in_(ids), Message.direction == "out")}
        for message_id in ids:
            if message_id in stored:
                ticket = Ticket.get_by_id(stored[message_id].ticket_id)
                return Match(ticket.id, ticket.number, MESSAGE_ID, message_id=message_id)
    return None


def _match(row, how: str) -> Match:
    outbox_id, ticket_id, number, template, to_address, message_id = row
    return Match(ticket_id, number, how, outbox_id, template, to_address, message_id)


def known(message_key: str) -> bool:
    """Was this bounce (its message key) recorded already?"""
    return bool(fetch(Bounce._meta.database, 'SELECT 1 FROM "bounce" WHERE "message_key" = ?',
                      [message_key]))


def record(bounce: BounceRecord) -> int:
    """One `bounce` row, in the caller's transaction; its id."""
    found = bounce.match
    return insert_row(
        Bounce, received_at=bounce.received_at, message_key=bounce.message_key,
        message_id=bounce.message_id, from_address=bounce.from_address, subject=bounce.subject,
        outbox=found.outbox_id if found else None, ticket=found.ticket_id if found else None,
        ticket_message=bounce.message_pk, matched_by=found.matched_by if found else UNMATCHED,
        recipient=bounce.recipient, action=bounce.action, status=bounce.status,
        diagnostic=bounce.diagnostic, reporting_mta=bounce.reporting_mta, raw=bounce.raw)


_LISTING = ('SELECT b."id", b."received_at", b."from_address", b."subject", b."message_id", '
            'b."recipient", b."action", b."status", b."diagnostic", b."reporting_mta", b."matched_by", '
            't."number", b."outbox_id", o."template", o."to_address", LENGTH(b."raw") '
            'FROM "bounce" b LEFT JOIN "ticket" t ON t."id" = b."ticket_id" '
            'LEFT JOIN "outbox" o ON o."id" = b."outbox_id" ')


def listing(*, unmatched: bool = False, limit: int = 1000) -> list[dict]:
    """Bounces newest first, as `maild bounces --json` prints them; `unmatched`: only
    those kept on no ticket."""
    sql = _LISTING + ('WHERE b."ticket_id" IS NULL ' if unmatched else '') + 'ORDER BY b."id" DESC LIMIT ?'
    keys = ("id", "received_at", "from", "subject", "message_id", "recipient", "action", "status",
            "diagnostic", "reporting_mta", "matched_by", "ticket", "outbox", "template", "to", "size")
    out = []
    for row in fetch(Bounce._meta.database, sql, [limit]):
        item = dict(zip(keys, row))
        item["received_at"] = _iso(item["received_at"])
        item["matched_by"] = item["matched_by"] or None
        out.append(item)
    return out


def _iso(value) -> str | None:
    if not value:
        return None
    at = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return at.isoformat(timespec="seconds") + "Z"
