"""From a spooled message to what the store records: parse → classify → thread → route.

    inbound = prepare(item, context)          # pure: no database, no network
    draft = acknowledgement(recorded, inbound, context, now=now)

`prepare` turns raw bytes and their envelope into a frozen `store.tickets.InboundMessage`;
every step is a function of values, so each is tested alone and a failure anywhere
becomes a quarantine reason rather than a crash.  `acknowledgement` renders the
templated reply to a new ticket — or returns None when the mail is automatic, comes from
the null sender or our own address, or the sender already had their hourly share of
automatic mail (the loop brake of DESIGN §1.5; the caller counts it in the store).
"""
from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from functools import cached_property

from maild.compose import sendable_message_id
from maild.envelope import Envelope
from parsers import threading as threads
from parsers.classify import AUTOMATIC, NORMAL, classify
from parsers.message import ParsedMail, parse
from rules.engine import Decision, Facts, evaluate
from rules.model import Ruleset
from store.outbox import OutgoingDraft
from store.tickets import InboundMessage, Recorded, message_key

log = logging.getLogger(__name__)

LOOP_HEADER = "X-Maild-Loop"
ACK_TEMPLATE = "ack"


@dataclass(frozen=True)
class Context:
    """What processing needs besides the message: settled at start and on reload."""
    ruleset: Ruleset
    helpdesk_name: str
    helpdesk_address: str
    token_prefix: str
    hostname: str
    render: object            # callable(name, context) -> Rendered(text, html)
    auto_replies_per_hour: int = 3

    @cached_property
    def own_addresses(self) -> frozenset[str]:
        return self.ruleset.addresses | {self.helpdesk_address.lower()}

    def is_ours(self, address: str) -> bool:
        """Ours, also with a +detail (support+x@example.com is support@example.com)."""
        address = address.lower()
        if address in self.own_addresses:
            return True
        local, _, domain = address.partition("@")
        return "+" in local and f"{local.split('+', 1)[0]}@{domain}" in self.own_addresses


def receiving_address(envelope: Envelope, mail: ParsedMail, context: Context) -> str:
    """The support address this copy arrived for: envelope first, then To/Cc headers."""
    for address in (*envelope.rcpt_tos, *mail.to, *mail.cc):
        if context.is_ours(address):
            return address.lower()
    return context.helpdesk_address.lower()


def prepare(raw: bytes, envelope: Envelope, context: Context) -> tuple[InboundMessage, Decision]:
    mail = parse(raw)
    verdict = classify(mail, envelope_sender=envelope.mail_from,
                       own_addresses=context.own_addresses, loop_header=LOOP_HEADER,
                       loop_value=context.hostname)
    recipient = receiving_address(envelope, mail, context)
    candidates = threads.reply_candidates(mail)
    ours = tuple(n for n in (threads.ticket_from_message_id(c, context.hostname) for c in candidates)
                 if n is not None)
    decision = evaluate(context.ruleset, Facts(
        recipient=recipient, from_address=mail.from_address, subject=mail.subject,
        is_reply=bool(candidates), automatic=verdict.kind in AUTOMATIC))
    inbound = InboundMessage(
        raw=raw, message_key=message_key(mail.message_id, raw), message_id=mail.message_id,
        recipient=recipient, via=envelope.received_via, kind=verdict.kind,
        evidence=verdict.evidence, from_address=mail.from_address, from_name=mail.from_name,
        to=mail.to, cc=mail.cc, subject=mail.subject, in_reply_to=mail.in_reply_to,
        references=mail.references, text=mail.text, visible_text=mail.visible_text,
        html=mail.html,
        attachments=mail.attachments,
        token_ticket=threads.find_token(mail.subject, context.token_prefix),
        reply_candidates=candidates, our_ticket_refs=ours, queue=decision.queue,
        priority=decision.priority, own_addresses=context.own_addresses)
    return inbound, decision


def may_auto_reply(inbound: InboundMessage, decision: Decision, context: Context) -> str | None:
    """None if an automatic reply is allowed, else the reason it is not."""
    if not decision.auto_reply:
        return "rules: no acknowledgement"
    if inbound.kind != NORMAL:
        return f"automatic mail ({inbound.kind}: {inbound.evidence})"
    if not inbound.from_address or "@" not in inbound.from_address:
        return "no sender address"
    if context.is_ours(inbound.from_address):
        return "sender is one of our own addresses"
    return None


def acknowledgement(recorded: Recorded, inbound: InboundMessage, context: Context) -> OutgoingDraft:
    subject = threads.add_token(inbound.subject or "(no subject)", context.token_prefix,
                                recorded.ticket_number)
    rendered = context.render(ACK_TEMPLATE, {
        "helpdesk": {"name": context.helpdesk_name, "address": context.helpdesk_address},
        "ticket": {"number": recorded.ticket_number, "subject": inbound.subject,
                   "token": f"[{context.token_prefix} #{recorded.ticket_number}]",
                   "status": "new", "priority": inbound.priority, "queue": inbound.queue},
        "customer": {"name": inbound.from_name, "address": inbound.from_address},
        "message": {"subject": inbound.subject, "text": inbound.visible_text},
    })
    thread = [i for i in (*inbound.references, inbound.message_id) if i and sendable_message_id(i)]
    references = tuple(dict.fromkeys(thread))
    in_reply_to = inbound.message_id if inbound.message_id and sendable_message_id(inbound.message_id) else None
    return OutgoingDraft(
        ticket_id=recorded.ticket_id, template=ACK_TEMPLATE, automatic=True,
        from_name=context.helpdesk_name, from_address=context.helpdesk_address,
        to_address=inbound.from_address, subject=subject,
        message_id=threads.make_message_id(recorded.ticket_number, context.hostname,
                                           uuid.uuid4().hex[:20]),
        in_reply_to=in_reply_to, references=references[-20:],
        text=rendered.text, html=rendered.html, kind="ack")
