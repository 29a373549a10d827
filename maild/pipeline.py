"""From a spooled message to what the store records: parse → classify → identify → thread → route.

    inbound, routing = prepare(raw, envelope, context, received_at=t)   # no database
    refusal = may_auto_reply(inbound, routing, context)   # None: an acknowledgement may go

`prepare` turns raw bytes and their envelope into a frozen `store.tickets.InboundMessage`;
every step is a function of values, so each is tested alone and a failure anywhere
becomes a quarantine reason rather than a crash.

Route (DESIGN §6): the rules see the message's `rules.facts.Facts` (with the sender's
`contacts:` entry and the time it was received, for `business_hours`) and decide twice,
as a new ticket and as a reply, because only the store knows which it is
(`rules.engine.route`); `maild.routing` applies the one that came true.

Bounces: a mail classified `bounce` that carries a machine's marks (`_report`: the null
sender, a delivery-status report, X-Failed-Recipients, an SES bounce, our VERP address)
also gets its `parsers.dsn.DeliveryReport` (`inbound.report`) for `maild.bounce_mail`;
without them, or forwarded by a person ("Fwd: Undelivered Mail ...", `forwarded_bounce`),
it is someone's mail: a ticket, no acknowledgement.  Every mail gets `inbound.body_hash`
(`visible_body_hash`: its subject, visible text and attachments), which the burst brake
compares.

Identify (DESIGN §5): mail whose From is an agent's address or alias, and that is not
automatic, is checked with `parsers.auth` under `context.trust` (the DKIM policy may look
up keys through `context.dns`).  Proven → `inbound.author` is the agent and its command
lines are split off (`parsers.commands`); `maild.agent_mail` handles it.  Not proven →
`inbound.auth` says why, and it is handled as a customer's mail that executes nothing.
"""
from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cached_property
from typing import Callable

from maild.envelope import Envelope
from parsers.auth import TrustPolicy, authenticate
from parsers.commands import split_commands
from parsers import threading as threads
from parsers.classify import (AUTOMATIC, BOUNCE, NORMAL, classify, delivery_status_report,
                              ses_bounce)
from parsers.dsn import read_report, verp_outbox_id
from parsers.html import sanitize
from parsers.limits import Limits
from parsers.message import ParsedMail, parse
from rules.engine import Routing, route
from rules.facts import Facts
from rules.model import Ruleset
from store.tickets import NEW_TICKET, UNVERIFIED, InboundMessage, message_key

log = logging.getLogger(__name__)

LOOP_HEADER = "X-Maild-Loop"
STRANGER_POLICIES = (UNVERIFIED, NEW_TICKET)


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
    auto_replies_per_ticket_per_hour: int = 3
    burst_window_minutes: int = 10            # 0: a burst of the same text is not collapsed
    mail_from: str | None = None              # base of our VERP envelope senders (ours too)
    comment_address: str | None = None       # mail to it from an agent is an internal note
    trust: TrustPolicy | None = None          # None: nobody is proven to be an agent
    unknown_sender: str = UNVERIFIED          # a stranger's reply: UNVERIFIED | NEW_TICKET
    reopen_days: int = 14
    expose_agent_address: bool = False
    dns: Callable | None = None               # DKIM key lookups (tests inject their own)
    limits: Limits = Limits()                 # what parse reads of a message (maild.yaml limits:)

    @cached_property
    def own_addresses(self) -> frozenset[str]:
        extra = {a.lower() for a in (self.comment_address, self.mail_from) if a}
        return self.ruleset.addresses | {self.helpdesk_address.lower()} | extra

    @cached_property
    def not_participants(self) -> frozenset[str]:
        """Addresses never added to a ticket as participants: ours and the agents'."""
        return self.own_addresses | self.ruleset.agent_addresses

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


def prepare(raw: bytes, envelope: Envelope, context: Context, *,
            received_at: datetime | None = None) -> tuple[InboundMessage, Routing]:
    """`received_at`: when the spool accepted it (naive = UTC; None: now)."""
    mail = parse(raw, context.limits)       # MessageRefused: quarantined with its reason
    verdict = classify_mail(mail, envelope, context)
    recipient = receiving_address(envelope, mail, context)
    candidates = threads.reply_candidates(mail)
    ours = tuple(n for n in (threads.ticket_from_message_id(c, context.hostname) for c in candidates)
                 if n is not None)
    token = threads.find_token(mail.subject, context.token_prefix)
    routing = route(context.ruleset, rule_facts(mail, verdict.kind, recipient, context, received_at),
                    may_be_reply=bool(candidates) or token is not None)
    decision = routing.new
    author, auth, commands = identify(raw, mail, verdict.kind, context)
    inbound = InboundMessage(
        raw=raw, message_key=message_key(mail.message_id, raw), message_id=mail.message_id,
        recipient=recipient, via=envelope.received_via, kind=verdict.kind,
        evidence=verdict.evidence, from_address=mail.from_address, from_name=mail.from_name,
        to=mail.to, cc=mail.cc, subject=mail.subject, in_reply_to=mail.in_reply_to,
        references=mail.references, text=mail.text, visible_text=mail.visible_text,
        html=sanitize(mail.html), trimmed=mail.trimmed,    # stored for display: nothing that runs
        attachments=mail.attachments,
        token_ticket=token,
        reply_candidates=candidates, our_ticket_refs=ours, queue=decision.queue,
        priority=decision.priority,
        own_addresses=context.not_participants,
        author=author, auth=auth, commands=commands,
        to_comment=bool(context.comment_address)
        and context.comment_address in (*envelope.rcpt_tos, *mail.to, *mail.cc),
        # a trimmed mail's stored parts don't say what it was: never collapsed as a burst
        body_hash=None if mail.trimmed else visible_body_hash(
            mail.visible_text, mail.subject, tuple(a.sha256 for a in mail.attachments)),
        report=_report(mail, raw, envelope, context) if verdict.kind == BOUNCE else None)
    return inbound, routing


def _report(mail: ParsedMail, raw: bytes, envelope: Envelope, context: Context):
    """What a bounce reports, when it truly is one; None sends it down the customer's path
    (a ticket, never an acknowledgement).  A subject ("Delivery failed for my order") or
    a postmaster@ From alone is what people write too, and a forwarded bounce is a
    person's question: only a machine's marks count -- the null sender, a
    delivery-status report, X-Failed-Recipients, an SES bounce, or our VERP address."""
    ours = tuple(a for a in (*envelope.rcpt_tos, *mail.to) if context.is_ours(a))
    null = null_sender(mail, envelope)
    machine = (null or any(verp_outbox_id(a) is not None for a in ours)
               or mail.header("X-Failed-Recipients") is not None
               or delivery_status_report(mail, None) or ses_bounce(mail, None))
    if not machine or forwarded_bounce(mail, envelope):
        return None
    limits = context.limits
    return read_report(mail, raw, addresses=ours, null_sender=null,
                       max_parts=limits.max_mime_parts, max_depth=limits.max_mime_depth)


def null_sender(mail: ParsedMail, envelope: Envelope) -> bool:
    """From the null sender <>: the envelope's, or Return-Path when it is unknown (IMAP)."""
    if envelope.mail_from is not None:
        return envelope.mail_from.strip() in ("", "<>")
    return (mail.header("Return-Path") or "x").strip() in ("", "<>")


_FORWARD = re.compile(r"^\s*(?:fwd?|wg|tr|rv|vs)\s*:", re.I)


def forwarded_bounce(mail: ParsedMail, envelope: Envelope) -> bool:
    """A bounce a person forwarded: a forward's subject, and not from the null sender."""
    return bool(_FORWARD.match(mail.subject)) and not null_sender(mail, envelope)


_SPACE = re.compile(r"\s+")


def visible_body_hash(text: str, subject: str = "", attachments: tuple[str, ...] = ()) -> str | None:
    """sha256 (hex) of what makes two mails the same mail: the visible text with
    whitespace runs made one space, the subject likewise, the attachments' hashes.
    The subject and attachments count because people send one text with different
    subjects or files ("invoice attached") and mean different things; None when there
    is neither text nor an attachment (an empty mail says nothing about sameness)."""
    normalised = _SPACE.sub(" ", text or "").strip()
    if not normalised and not attachments:
        return None
    title = _SPACE.sub(" ", subject or "").strip()
    whole = "\n".join((title, normalised, *sorted(attachments)))
    return hashlib.sha256(whole.encode("utf-8", "surrogatepass")).hexdigest()


def _aware(at: datetime | None) -> datetime:
    if at is None:
        return datetime.now(timezone.utc)
    return at if at.tzinfo is not None else at.replace(tzinfo=timezone.utc)


def classify_mail(mail: ParsedMail, envelope: Envelope, context: Context):
    """`parsers.classify` with what this help desk knows (its addresses, its loop header)."""
    return classify(mail, envelope_sender=envelope.mail_from, own_addresses=context.own_addresses,
                    loop_header=LOOP_HEADER, loop_value=context.hostname)


def rule_facts(mail: ParsedMail, kind: str, recipient: str, context: Context,
               received_at: datetime | None, *, is_reply: bool = False) -> Facts:
    """What the rules see of a message (`rules.facts`)."""
    return Facts.of(mail, recipient=recipient, is_reply=is_reply, received_at=_aware(received_at),
                    contact=context.ruleset.contact(mail.from_address) if mail.from_address else None,
                    automatic=kind in AUTOMATIC, kind=kind)


def identify(raw: bytes, mail: ParsedMail, kind: str, context: Context):
    """(agent address, '', commands) for a proven agent; ('', why not, None) for mail from
    an agent's address that is not proven or is automatic; ('', '', None) for the rest."""
    agent = context.ruleset.agent_for(mail.from_address) if mail.from_address else None
    if agent is None:
        return "", "", None
    if kind != NORMAL:
        return "", f"automatic mail ({kind}) from an agent's address", None
    if context.trust is None:
        return "", "not authenticated: no trust policy", None
    verdict = authenticate(raw, mail.from_address, context.trust, dns=context.dns)
    if not verdict.authenticated:
        log.warning("message-id=<%s> from agent address %s not authenticated: %s",
                    mail.message_id, mail.from_address, verdict.reason)
        return "", f"not authenticated: {verdict.reason}", None
    return agent.address, "", split_commands(mail.visible_text)


def may_auto_reply(inbound: InboundMessage, routing: Routing, context: Context) -> str | None:
    """None if an automatic reply is allowed, else the reason it is not."""
    if routing.new.discard:
        return "rules: discarded (" + "; ".join(routing.new.matched) + ")"
    if routing.new.changes.auto_reply is False:
        return "rules: no acknowledgement (" + "; ".join(routing.new.matched) + ")"
    if inbound.kind != NORMAL:
        return f"automatic mail ({inbound.kind}: {inbound.evidence})"
    if not inbound.from_address or "@" not in inbound.from_address:
        return "no sender address"
    if context.is_ours(inbound.from_address):
        return "sender is one of our own addresses"
    return None

