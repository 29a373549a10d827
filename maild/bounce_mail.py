"""A bounce: mark the mail it returns, tell the ticket, answer nobody, open no ticket.

    outcome = handle(inbound, context, now=now)    # inside the batch transaction

Mail classified `bounce` (`parsers.classify`) comes here instead of `maild.customer_mail`.
`inbound.report` is what the bounce says (`parsers.dsn`).  It is matched to the outbound
mail it returns (`store.bounces.match`): first the VERP id of the address it was sent to
(`support+bounces-42@example.com` names outbox row 42), then a Message-ID of ours among
those it returns.  In one transaction:

- matched, the delivery failed: the outbox row becomes `bounced` (never sent again) with
  `last_error` "<status> <diagnostic>"; event `delivery_failed` on its ticket names the
  recipient, status, diagnostic, which mail it was (its template) and how it was matched;
- matched, the delivery is only delayed (`Action: delayed`): event `delivery_delayed`;
  the row keeps its status (the remote MTA is still trying);
- matched, a success report (delivered/relayed/expanded, asked for by nobody here but
  sent by some MTAs): event `delivery_report`;
- matched, in every case: the bounce is stored on the ticket as an internal message of
  kind `bounce`: agents see it, no customer ever does.  The ticket's status, SLA clocks
  and participants do not change, and nobody gets a mail (no acknowledgement, no
  notification: DESIGN §1.5);
- not matched: no ticket at all.  Every bounce, matched or not, gets a row in the
  `bounce` table (`maild bounces [--unmatched]`); an unmatched one keeps its raw bytes
  there.

A replay of the same bounce (same message key) finds its row and changes nothing
(DESIGN §1.2).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from maild.pipeline import Context
from parsers.dsn import FAILED, DeliveryReport, RecipientReport
from store import bounces, outbox, tickets
from store.tickets import InboundMessage

log = logging.getLogger(__name__)

RECORDED, DUPLICATE = "bounce", "duplicate"
FAILED_EVENT, DELAYED_EVENT, REPORT_EVENT = "delivery_failed", "delivery_delayed", "delivery_report"


@dataclass(frozen=True)
class Outcome:
    outcome: str                        # RECORDED | DUPLICATE
    ticket_number: int | None = None    # the ticket it was kept on (None: unmatched)
    matched_by: str = ""                # store.bounces.VERP | MESSAGE_ID | '' (unmatched)
    event: str = ""                     # the event left on the ticket
    summary: str = ""
    marked: bool = False                # an outbox row became `bounced`


def handle(inbound: InboundMessage, context: Context, *, now: datetime) -> Outcome:
    if bounces.known(inbound.message_key):
        return Outcome(DUPLICATE, summary="bounce already recorded")
    report = inbound.report or DeliveryReport(format="")
    found = bounces.match(verp_outbox_id=report.verp_outbox_id,
                          message_ids=report.original_message_ids, hostname=context.hostname)
    first = report.primary or RecipientReport("")
    event = _event(report)
    message_pk, marked = None, False
    if found is not None:
        detail = _detail(report, first, found)
        marked = (event == FAILED_EVENT and found.outbox_id is not None
                  and outbox.mark_bounced(found.outbox_id, error(first)))
        if event == FAILED_EVENT and found.outbox_id is not None and not marked:
            detail += "; the mail is not marked sent, so this cannot be its bounce: its status stays"
        message_pk = tickets.store_bounce_message(found.ticket_id, inbound, now=now)
        tickets.add_event(found.ticket_id, now, inbound.from_address or "system", event, detail)
    bounces.record(bounces.BounceRecord(
        received_at=now, message_key=inbound.message_key, message_id=inbound.message_id,
        from_address=inbound.from_address, subject=inbound.subject, recipient=first.address,
        action=first.action if report.recipients else "", status=first.status,
        diagnostic=first.diagnostic, reporting_mta=report.reporting_mta,
        raw=None if found is not None else inbound.raw, match=found, message_pk=message_pk))
    if found is None:
        return Outcome(RECORDED, summary=f"unmatched bounce ({_what(first)})")
    return Outcome(RECORDED, found.ticket_number, found.matched_by, event, marked=marked, summary=
                   f"{event} for {found.template or 'a mail'} to {first.address or found.to_address}")


def error(first: RecipientReport) -> str:
    """The outbox row's last_error: '5.1.1 <x@y>: Recipient address rejected'."""
    return " ".join(p for p in (first.status, first.diagnostic) if p) or "bounced (no reason given)"


def _event(report: DeliveryReport) -> str:
    if report.failed or not report.recipients:
        return FAILED_EVENT            # a bounce we cannot read is still a bounce
    if report.delayed:
        return DELAYED_EVENT
    return REPORT_EVENT


def _detail(report: DeliveryReport, first: RecipientReport, found: bounces.Match) -> str:
    mail = f"{found.template or 'mail'} to {found.to_address}" if found.outbox_id else (
        f"a mail of this ticket <{found.message_id}>")
    how = "VERP address" if found.matched_by == bounces.VERP else "returned Message-ID"
    others = len(report.failed if first.action == FAILED else report.recipients) - 1
    return (f"{_what(first)}; the mail: {mail} (matched by {how})"
            + (f"; {others} more recipient(s) in the report" if others > 0 else ""))


def _what(first: RecipientReport) -> str:
    if not first.address and not first.status:
        return "the bounce names no recipient and no status"
    return ", ".join(p for p in (first.address or "recipient unknown", first.status or "status unknown",
                                 first.diagnostic) if p)

