"""Write inbound mail into tickets: the body of the one transaction per message.

    with db.atomic():
        recorded = record_inbound(inbound, now=utcnow())
        if recorded.created: ...queue the acknowledgement with store.outbox.enqueue...

`record_inbound` runs inside the caller's transaction, so the ticket, its message, the
audit events and the outbox rows the caller adds commit together or not at all
(DESIGN §1.3).  It decides, in this order (DESIGN §4):

1. duplicate delivery: the (message key, receiving address) pair is known → nothing new;
   the same message for another of our addresses joins the message already stored;
2. the ticket named by the subject token, then by In-Reply-To/References (our own
   outbound Message-IDs carry the ticket number, so they match without a row);
3. a burst: mail that would open a new ticket, but whose subject, visible text and
   attachments (`body_hash`) its sender sent within `burst_window` already, joins the first one's ticket (event
   `collapsed` naming it) and changes nothing there -- a client or robot resending the
   same mail opens one ticket, not five;
4. otherwise a new ticket, numbered from the `ticket` counter.

A reply from an address that is neither requester nor participant is stored as
*unverified*: it is kept for the agents but its sender gets nothing from the ticket (or,
with `strangers=NEW_TICKET`, a person's mail opens a new ticket linked to the one it
named; automatic mail stays on its ticket, unverified).
A reply to a resolved ticket reopens it; so does a reply to a ticket closed less than
`reopen_days` ago; a reply to one closed earlier opens a new ticket that links to it.
A reply to a pending ticket (waiting on the customer) makes it open.
What the parse limits left out of a message (`InboundMessage.trimmed`, e.g. an attachment
over max_attachment_size) is recorded as one `trimmed` event per reason on its ticket,
which `maild show` lists; the raw message, stored whole, still holds it.

An authenticated agent's mail is not recorded here: `maild/agent_mail.py` finds its
ticket with `find_ticket` and stores it with `store_agent_message`; a bounce neither
(`maild/bounce_mail.py` keeps it on the ticket of the mail it returns with
`store_bounce_message`, or nowhere).
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from parsers.commands import CommandBlock
from parsers.dsn import DeliveryReport
from parsers.message import Attachment
from store.fastsql import fetch, insert_row
from store.models import Attachment as StoredAttachment
from store.models import (Contact, Counter, Delivery, Event, Message, MessageAttachment,
                          Participant, Ticket)

log = logging.getLogger(__name__)

CREATED, APPENDED, DUPLICATE = "created", "appended", "duplicate"
BY_TOKEN, BY_HEADERS, BY_OUR_ID, NEW = "subject token", "In-Reply-To/References", "our Message-ID", "new ticket"
BY_BURST = "burst of the same mail"
REOPENS = ("resolved",)       # a reply reopens these
CLOSED = ("closed",)          # a reply reopens these within reopen_days, else opens a new, linked one
WAITS = ("pending",)          # a customer's reply ends the wait: the ticket is open again
UNVERIFIED, NEW_TICKET = "unverified", "new_ticket"     # what a stranger's reply does
DISCARDED = "discarded"       # message kind of mail the rules discarded


@dataclass(frozen=True)
class InboundMessage:
    """Everything the store needs about one received message, computed off the database."""
    raw: bytes
    message_key: str                    # 'mid:<normalized Message-ID>' or 'sha256:<hex>'
    message_id: str | None
    recipient: str                      # the support address it arrived for
    via: str
    kind: str                           # classification (normal, auto_reply, bounce, ...)
    evidence: str
    from_address: str
    from_name: str
    to: tuple[str, ...]
    cc: tuple[str, ...]
    subject: str
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    text: str
    visible_text: str
    html: str                           # sanitised for display (parsers.html.sanitize)
    attachments: tuple[Attachment, ...]   # parsers.message.Attachment values
    token_ticket: int | None            # number from the subject token, if any
    reply_candidates: tuple[str, ...]   # Message-IDs to match, most relevant first
    our_ticket_refs: tuple[int, ...]    # numbers decoded from our own Message-IDs among them
    queue: str
    priority: str
    own_addresses: frozenset[str]       # never added as participants (ours and the agents')
    author: str = ""                    # the authenticated agent who sent it, else ''
    to_comment: bool = False            # the comment address is among its recipients (envelope, To, Cc)
    auth: str = ""                      # why mail from an agent's address did not count as theirs
    commands: CommandBlock | None = None  # an agent's command lines and the text after them
    trimmed: tuple[str, ...] = ()       # what the parse limits left out (ParsedMail.trimmed)
    body_hash: str | None = None        # sha256 of subject, visible text, attachments (pipeline.visible_body_hash)
    report: DeliveryReport | None = None  # a bounce's contents (parsers.dsn)


@dataclass(frozen=True)
class Recorded:
    outcome: str                  # CREATED | APPENDED | DUPLICATE
    ticket_number: int
    ticket_id: int
    message_pk: int
    threaded_by: str
    unverified: bool = False
    reopened: bool = False
    linked_to: int | None = None
    collapsed: bool = False       # joined the ticket of the same mail sent just before (BY_BURST)

    @property
    def created(self) -> bool:
        return self.outcome == CREATED


def message_key(message_id: str | None, raw: bytes) -> str:
    if message_id:
        return "mid:" + message_id
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def record_inbound(msg: InboundMessage, *, now: datetime, reopen_days: int = 14,
                   strangers: str = UNVERIFIED, quiet: bool = False,
                   burst_window: timedelta | None = None) -> Recorded:
    """Thread `msg` into its ticket or open one.  `quiet`: if it answers a ticket, store
    it without changing the ticket's status (the rules discarded it).  `burst_window`:
    how far back the same text from the same sender collapses (None: never)."""
    known = known_delivery(msg, now)
    if known is not None:
        return known
    ticket, threaded_by = find_ticket(msg)
    linked_to, reopened = None, False
    if ticket is not None and ticket.status in CLOSED and not _recently(ticket.closed_at, now, reopen_days):
        linked_to, ticket, threaded_by = ticket.number, None, NEW
    elif (ticket is not None and strangers == NEW_TICKET and msg.kind == "normal"
          and not _is_party(ticket, msg.from_address)):
        # automatic mail (out-of-office, bounces) stays on the ticket it answers, unverified
        linked_to, ticket, threaded_by = ticket.number, None, NEW
    if ticket is None and burst_window:
        first = burst_origin(msg, now - burst_window)
        if first is not None:
            return _collapse(msg, first, now)
    if ticket is None:
        ticket_id, number = _open_ticket(msg, now=now, linked_to=linked_to)
        message_pk = _store_message(ticket_id, msg, now=now, unverified=False)
        add_event(ticket_id, now, msg.from_address or "unknown", "created",
               f"queue={msg.queue} priority={msg.priority} via={msg.via}"
               + (f" linked_to={linked_to}" if linked_to else ""))
        return Recorded(CREATED, number, ticket_id, message_pk, threaded_by, linked_to=linked_to)
    unverified = not _is_party(ticket, msg.from_address)
    message_pk = _store_message(ticket.id, msg, now=now, unverified=unverified)
    counts = not quiet and not unverified and msg.kind == "normal"   # a customer's own reply
    if counts and ticket.status in (*REOPENS, *CLOSED):
        ticket.status, ticket.resolved_at, ticket.closed_at, reopened = "open", None, None, True
        add_event(ticket.id, now, msg.from_address or "unknown", "reopened", "customer replied")
    elif counts and ticket.status in WAITS:
        ticket.status = "open"          # the wait on the customer is over (DESIGN §7)
        add_event(ticket.id, now, msg.from_address or "unknown", "status", "open (customer replied)")
    ticket.updated_at = now
    ticket.save()
    add_event(ticket.id, now, msg.from_address or "unknown", "unverified_message" if unverified else "message",
           f"kind={msg.kind} by={threaded_by}")
    return Recorded(APPENDED, ticket.number, ticket.id, message_pk, threaded_by,
                    unverified=unverified, reopened=reopened)


def burst_origin(msg: InboundMessage, since: datetime) -> tuple[int, int, str, datetime] | None:
    """(message pk, ticket id, Message-ID, received at) of the first inbound mail since
    `since` from this sender with this `body_hash`; None without one (or without a hash)."""
    if not msg.body_hash or not msg.from_address:
        return None
    rows = fetch(_db(), 'SELECT "id", "ticket_id", "message_id", "created_at" FROM "message" '
                        'WHERE "body_hash" = ? AND "from_address" = ? AND "direction" = ? '
                        'AND "created_at" >= ? ORDER BY "id" LIMIT 1',
                 [msg.body_hash, msg.from_address, "in", since])
    return tuple(rows[0]) if rows else None


def _collapse(msg: InboundMessage, first, now: datetime) -> Recorded:
    first_pk, ticket_id, first_id, first_at = first
    ticket = Ticket.get_by_id(ticket_id)
    message_pk = _store_message(ticket.id, msg, now=now, unverified=not _is_party(ticket, msg.from_address))
    ticket.updated_at = now
    ticket.save()
    at = first_at if isinstance(first_at, datetime) else datetime.fromisoformat(str(first_at))
    add_event(ticket.id, now, msg.from_address, "collapsed",
              f"the same mail as message <{first_id or f'#{first_pk}'}> received {at:%Y-%m-%d %H:%M:%S} UTC: "
              "no new ticket, no acknowledgement, no notification")
    return Recorded(APPENDED, ticket.number, ticket.id, message_pk, BY_BURST, collapsed=True)


def _recently(at: datetime | None, now: datetime, days: int) -> bool:
    return at is not None and now - at <= timedelta(days=days)


def known_delivery(msg: InboundMessage, now: datetime) -> Recorded | None:
    """The message already stored for this (message key, receiving address), or None.
    The same message for another of our addresses is recorded as a delivery of it."""
    rows = fetch(_db(), 'SELECT d."message_id", d."recipient", m."ticket_id", t."number" '
                        'FROM "delivery" d JOIN "message" m ON m."id" = d."message_id" '
                        'JOIN "ticket" t ON t."id" = m."ticket_id" '
                        'WHERE d."message_key" = ? LIMIT 50', [msg.message_key])
    if not rows:
        return None
    message_pk, _, ticket_id, number = rows[0]
    if not any(recipient == msg.recipient for _, recipient, _, _ in rows):
        insert_row(Delivery, message_key=msg.message_key, recipient=msg.recipient,
                   message=message_pk, received_at=now, via=msg.via)
    return Recorded(DUPLICATE, number, ticket_id, message_pk, "duplicate")


def _db():
    return Message._meta.database


def find_ticket(msg: InboundMessage) -> tuple[Ticket | None, str]:
    """The ticket `msg` answers and what decided it (DESIGN §4), or (None, NEW)."""
    if msg.token_ticket is not None:
        ticket = Ticket.get_or_none(Ticket.number == msg.token_ticket)
        if ticket is not None:
            return ticket, BY_TOKEN
    if msg.reply_candidates:
        marks = ", ".join("?" * len(msg.reply_candidates))
        found = dict(fetch(_db(), f'SELECT "message_id", "ticket_id" FROM "message" '
                                  f'WHERE "message_id" IN ({marks})', msg.reply_candidates))
        for candidate in msg.reply_candidates:
            if candidate in found:
                return Ticket.get_by_id(found[candidate]), BY_HEADERS
    for number in msg.our_ticket_refs:
        ticket = Ticket.get_or_none(Ticket.number == number)
        if ticket is not None:
            return ticket, BY_OUR_ID
    return None, NEW


def next_ticket_number() -> int:
    """The next ticket number, from the `ticket` counter row (one statement, row-locked)."""
    table = Counter._meta.table_name
    cursor = Counter._meta.database.execute_sql(
        f'UPDATE "{table}" SET "value" = "value" + 1 WHERE "name" = \'ticket\' RETURNING "value"')
    return int(cursor.fetchone()[0])


def contact_for(address: str, name: str, now: datetime) -> int:
    """The id of the contact with `address`, created on first sight."""
    rows = fetch(_db(), 'SELECT "id", "name" FROM "contact" WHERE "address" = ?', [address])
    if not rows:
        return insert_row(Contact, address=address, name=name or "", created_at=now)
    contact_id, known_name = rows[0]
    if name and not known_name:
        Contact.update(name=name).where(Contact.id == contact_id).execute()
    return contact_id


def _open_ticket(msg: InboundMessage, *, now: datetime, linked_to: int | None) -> tuple[int, int]:
    requester = contact_for(msg.from_address, msg.from_name, now)
    number = next_ticket_number()
    ticket_id = insert_row(Ticket, number=number, subject=msg.subject[:2000], status="new",
                           priority=msg.priority, queue=msg.queue, requester=requester,
                           linked_to=linked_to, created_at=now, updated_at=now)
    insert_row(Participant, ticket=ticket_id, contact=requester, role="requester")
    if msg.kind == "normal":
        others = {a for a in (*msg.to, *msg.cc)
                  if a and not _is_own(a, msg.own_addresses) and a != msg.from_address}
        for address in sorted(others):
            Participant.insert(ticket=ticket_id, contact=contact_for(address, "", now),
                               role="cc").on_conflict_ignore().execute()
    return ticket_id, number


def _is_own(address: str, own: frozenset[str]) -> bool:
    """`address` is one of `own`, also with a +detail (support+x@ is support@)."""
    if address in own:
        return True
    local, _, domain = address.partition("@")
    return "+" in local and f"{local.split('+', 1)[0]}@{domain}" in own


def _is_party(ticket: Ticket, address: str) -> bool:
    return (Participant.select().join(Contact)
            .where(Participant.ticket == ticket, Contact.address == address).exists())


def store_agent_message(ticket_id: int, msg: InboundMessage, *, kind: str, text: str,
                        internal: bool, now: datetime) -> int:
    """Store an authenticated agent's mail on the ticket: `kind` agent_reply | note |
    command | refused, `text` what it says once command lines are removed."""
    return _store_message(ticket_id, msg, now=now, unverified=False, kind=kind,
                          visible_text=text, internal=internal)


def store_bounce_message(ticket_id: int, msg: InboundMessage, *, now: datetime) -> int:
    """Store a bounce on the ticket of the mail it returns: internal (agents see it, no
    customer ever does), the ticket itself unchanged."""
    # unverified: anyone can write a bounce (to a VERP address, with our Message-ID)
    return _store_message(ticket_id, msg, now=now, unverified=True, internal=True)


def _store_message(ticket_id: int, msg: InboundMessage, *, now: datetime, unverified: bool,
                   kind: str | None = None, visible_text: str | None = None,
                   internal: bool = False) -> int:
    message_pk = insert_row(
        Message, ticket=ticket_id, direction="in", kind=kind or msg.kind, message_key=msg.message_key,
        message_id=msg.message_id, in_reply_to=" ".join(msg.in_reply_to),
        references=" ".join(msg.references), from_address=msg.from_address,
        from_name=msg.from_name, to=", ".join(msg.to), cc=", ".join(msg.cc),
        subject=msg.subject, text=msg.text, html=msg.html,
        visible_text=msg.visible_text if visible_text is None else visible_text,
        unverified=unverified, evidence=msg.evidence, raw=msg.raw, created_at=now,
        author=msg.author, internal=internal, auth=msg.auth, body_hash=msg.body_hash)
    insert_row(Delivery, message_key=msg.message_key, recipient=msg.recipient, message=message_pk,
               received_at=now, via=msg.via)
    for att in msg.attachments:
        insert_row(MessageAttachment, message=message_pk, attachment=_attachment_row(att),
                   filename=att.filename)
    for reason in msg.trimmed:          # agents see it in `maild show`; the raw keeps it all
        add_event(ticket_id, now, "", "trimmed", f"message <{msg.message_id or msg.message_key}>: {reason}")
    return message_pk


def _attachment_row(att: Attachment) -> int:
    """The id of the stored attachment with these bytes; stored once by sha256."""
    digest = hashlib.sha256(att.data).hexdigest()
    found = StoredAttachment.select(StoredAttachment.id).where(StoredAttachment.sha256 == digest).scalar()
    if found is not None:
        return found
    return insert_row(StoredAttachment, sha256=digest, content_type=att.content_type,
                      size=len(att.data), data=att.data)


def mark_discarded(message_pk: int, why: str) -> None:
    """The rules discarded this inbound message: kind `discarded` (no agent reply answers
    it, `maild show` labels it), its classification kept in `evidence`."""
    message = Message.get_by_id(message_pk)
    message.evidence = f"{why}; classified {message.kind}" + (
        f" ({message.evidence})" if message.evidence else "")
    message.kind = DISCARDED
    message.save()


def add_event(ticket_id: int, at: datetime, actor: str, kind: str, detail: str = "") -> None:
    """One audit-log line on the ticket; `actor` is an address, or '' for maild itself."""
    insert_row(Event, ticket=ticket_id, at=at, actor=actor or "system", kind=kind, detail=detail)


