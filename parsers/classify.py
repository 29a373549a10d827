"""Is this mail automatic?  Bounce, auto-reply, report, list mail, our own loop, or normal.

    result = classify(mail, envelope_sender="", own_addresses=frozenset({"support@x.org"}))
    result.kind in AUTOMATIC        # True: never answer it automatically (RFC 3834)
    result.evidence                 # e.g. "Auto-Submitted: auto-replied"

The checks are data: `CHECKS` is a tuple of (kind, check) run in order, and the first
check that returns evidence decides.  A check is a small function of the mail and the
context returning the header/value that decided, or None.  To add a signal, write one
function and put it in the tuple at the right place.

The order, and why:
1. loop: our loop header (with our value, or any value when none is configured), or
   From is one of our own addresses.
2. Content-Type multipart/report: report-type=delivery-status is a bounce (RFC 3464);
   feedback-report (RFC 5965, abuse reports) and disposition-notification (read
   receipts, RFC 8098) are reports.
   Amazon SES notifications (JSON over SNS, with x-amz-sns-message-id): "Bounce" is a
   bounce, "Complaint" and "Delivery" are reports.
3. Other bounce signals: X-Failed-Recipients (Exim), From MAILER-DAEMON/postmaster or
   "Mail Delivery System" or "<>", typical bounce subjects (several languages, Japanese carriers' too).  These
   run before the auto-reply checks because real bounces also carry Auto-Submitted.
   Then Hotmail's complaint subject (a report without multipart/report).
4. auto-reply: Auto-Submitted other than "no" (RFC 3834), X-Autoreply, X-Autorespond,
   Precedence bulk/junk/auto_reply, out-of-office subjects (en/de/fr/es/nl/it/pt/sv/da),
   and a no-reply From address (notifications: nobody would read our answer).
   X-Auto-Response-Suppress is deliberately NOT a signal: it asks *recipients* not to
   auto-respond.  Exchange sets it on its auto-replies, but also on meeting requests,
   and senders (ticket systems, CRMs) set it on ordinary mail written by people.  The
   Exchange auto-replies in the corpus are caught by their subjects or Auto-Submitted.
5. null envelope sender (`envelope_sender == ''`, or, when the envelope is unknown, a
   `Return-Path: <>` header) is a bounce.  It comes this late because RFC 3834 asks
   auto-replies to use the null sender too: "Automatic reply:" from <> is an auto-reply.
6. list: List-Id, List-Unsubscribe and the other RFC 2369 List-* headers, ezmlm's
   Mailing-List, fml's X-ML-Name/X-MLServer, Precedence: list.

Subjects are matched at the start only ("Out of Office: ..."), so "Re: Out of Office
setup" or "Why do I get a failure notice?" stay customer mail.  A *forwarded* bounce
("Fwd: Returned mail: ...", also Fw:/WG:/TR:/RV:/VS:) does count as a bounce: the corpus
has one (sisimai lhost-sendmail-14, forwarded by a mail rule), and its ground truth is
that no such mail gets an automatic answer.  The price: a customer who forwards a bounce
to ask about it gets no acknowledgement; the ticket is still opened for the agents.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from parsers.message import ParsedMail

NORMAL = "normal"
BOUNCE = "bounce"
AUTO_REPLY = "auto_reply"
LIST = "list"
LOOP = "loop"
REPORT = "report"
AUTOMATIC = frozenset({BOUNCE, AUTO_REPLY, LIST, LOOP, REPORT})


@dataclass(frozen=True)
class Classification:
    kind: str
    evidence: str


@dataclass(frozen=True)
class Context:
    """What a check may look at besides the mail."""
    envelope_sender: str | None
    own_addresses: frozenset[str]
    loop_header: str
    loop_value: str | None


Check = Callable[[ParsedMail, Context], str | None]

_DAEMONS = frozenset({"mailer-daemon", "postmaster", "post-master", "mail-daemon", "mailerdaemon"})
_NO_REPLY = re.compile(r"^(?:no-?reply|do-?not-?reply|no-?respond)(?:[-+._].*)?$|[-+._]no-?reply$")
_LIST_HEADERS = ("List-Id", "List-Unsubscribe", "List-Post", "List-Subscribe", "List-Help",
                 "List-Owner", "List-Archive", "Mailing-List", "X-Mailing-List", "X-ML-Name",
                 "X-MLServer")
_DAEMON_NAMES = re.compile(r"^mail delivery (?:sub)?system$", re.I)
_REPORT_TYPE = re.compile(r"report-type\s*=\s*\"?([\w.-]+)", re.I)
_FORWARDED = r"(?:(?:fwd?|wg|tr|rv|vs)\s*:\s*)?"
_BOUNCE_SUBJECT = re.compile(
    rf"^\s*{_FORWARDED}(?:undeliver(?:ed|able)|delivery status\b"
    r"|mail delivery failed|failure notice|returned mail\b|mail system error"
    r"|delivery (?:failure|failed|notification: delivery has failed)|non-?deliver"
    r"|message (?:not delivered|delivery (?:has )?failed)|could not send message"
    r"|mail could not be delivered|warning: could not send|delayed mail"
    r"|unzustellbar|nicht zustellbar|non remis|impossible de remettre|onbestelbaar"
    r"|no se puede entregar|não é possível entregar|non recapitabile|olevererbart"
    r"|メールエラー通知)",
    re.I)
# Amazon SES event notifications (over SNS): JSON with "notificationType" (the quotes
# may be escaped when the JSON is itself a string inside the SNS envelope).
_SES_TYPE = re.compile(r'\\?"(?:notificationType|eventType)\\?"\s*:\s*\\?"(\w+)')
_REPORT_SUBJECT = re.compile(r"^\s*complaint about message from\b", re.I)  # Hotmail JMRP
_AUTO_REPLY_SUBJECT = re.compile(
    r"^\s*(?:out of (?:the )?office|automatic reply|auto[- ]?reply|auto[- ]?respon"
    r"|automated response|away from (?:the|my) (?:office|desk)|on vacation|vacation reply"
    r"|abwesenheitsnotiz|automatische antwort|abwesend|nicht im büro"
    r"|réponse automatique|message d'absence|absent du bureau|absence\s*:"
    r"|respuesta automática|fuera de la oficina|ausencia\s*:"
    r"|automatisch antwoord|afwezigheidsbericht|afwezig\s*:"
    r"|risposta automatica|fuori ufficio|resposta automática|fora do escritório"
    r"|automatiskt svar|frånvaro|autosvar|automatisk svar|fraværende)",
    re.I)


def _first_word(value: str | None) -> str:
    words = (value or "").replace(";", " ").split()
    return words[0].lower() if words else ""


def _cut(value: str) -> str:
    return value if len(value) <= 120 else value[:117] + "..."


# -- loop ---------------------------------------------------------------------------

def loop_header(mail: ParsedMail, ctx: Context) -> str | None:
    for value in mail.header_all(ctx.loop_header):
        if ctx.loop_value is None or value.strip().lower() == ctx.loop_value.strip().lower():
            return f"{ctx.loop_header}: {_cut(value)}"
    return None


def own_address(mail: ParsedMail, ctx: Context) -> str | None:
    own = {address.lower() for address in ctx.own_addresses}
    return f"From: {mail.from_address} (our own address)" if mail.from_address in own else None


# -- reports and bounces ------------------------------------------------------------

def _report_type(mail: ParsedMail) -> str:
    content_type = mail.header("Content-Type") or ""
    if _first_word(content_type) != "multipart/report":
        return ""
    match = _REPORT_TYPE.search(content_type)
    return match.group(1).lower() if match else ""


def delivery_status_report(mail: ParsedMail, ctx: Context) -> str | None:
    if _report_type(mail) == "delivery-status":
        return "Content-Type: multipart/report; report-type=delivery-status"
    return None


def feedback_or_receipt(mail: ParsedMail, ctx: Context) -> str | None:
    kind = _report_type(mail)
    if kind in ("feedback-report", "disposition-notification"):
        return f"Content-Type: multipart/report; report-type={kind}"
    return None


def _ses_notification(mail: ParsedMail) -> str:
    if mail.header("x-amz-sns-message-id") is None:
        return ""
    match = _SES_TYPE.search(mail.text[:20_000])
    return match.group(1) if match else ""


def ses_bounce(mail: ParsedMail, ctx: Context) -> str | None:
    """Amazon SES bounce notifications come from no-reply@sns.amazonaws.com as JSON."""
    return 'x-amz-sns-message-id and "notificationType": "Bounce"' if (
        _ses_notification(mail) == "Bounce") else None


def ses_report(mail: ParsedMail, ctx: Context) -> str | None:
    kind = _ses_notification(mail)
    return f'x-amz-sns-message-id and "notificationType": "{kind}"' if kind in (
        "Complaint", "Delivery") else None


def failed_recipients(mail: ParsedMail, ctx: Context) -> str | None:
    value = mail.header("X-Failed-Recipients")
    return f"X-Failed-Recipients: {_cut(value)}" if value is not None else None


def daemon_sender(mail: ParsedMail, ctx: Context) -> str | None:
    local = mail.from_address.partition("@")[0].replace("_", "-")
    if (mail.header("From") or "").strip() == "<>":
        return "From: <>"
    if local in _DAEMONS or _DAEMON_NAMES.match(mail.from_name.strip()):
        name = mail.from_name.strip()
        return f"From: {name} <{mail.from_address}>" if name else f"From: {mail.from_address}"
    return None


def bounce_subject(mail: ParsedMail, ctx: Context) -> str | None:
    return f"Subject: {_cut(mail.subject)}" if _BOUNCE_SUBJECT.match(mail.subject) else None


def report_subject(mail: ParsedMail, ctx: Context) -> str | None:
    return f"Subject: {_cut(mail.subject)}" if _REPORT_SUBJECT.match(mail.subject) else None


def null_sender(mail: ParsedMail, ctx: Context) -> str | None:
    if ctx.envelope_sender is not None:
        if ctx.envelope_sender.strip() in ("", "<>"):
            return "envelope sender <>"
        return None
    return_path = mail.header("Return-Path")
    if return_path is not None and return_path.strip() in ("", "<>"):
        return "Return-Path: <>"
    return None


# -- auto-replies -------------------------------------------------------------------

def auto_submitted(mail: ParsedMail, ctx: Context) -> str | None:
    value = mail.header("Auto-Submitted")
    if value is not None and _first_word(value) not in ("", "no"):
        return f"Auto-Submitted: {_cut(value.strip())}"
    return None


def autoreply_headers(mail: ParsedMail, ctx: Context) -> str | None:
    for name in ("X-Autoreply", "X-Autorespond", "X-Autoresponder"):
        value = mail.header(name)
        if value is not None and _first_word(value) not in ("no", "false", "0"):
            return f"{name}: {_cut(value.strip())}"
    return None


def bulk_precedence(mail: ParsedMail, ctx: Context) -> str | None:
    value = _first_word(mail.header("Precedence"))
    return f"Precedence: {value}" if value in ("bulk", "junk", "auto_reply") else None


def auto_reply_subject(mail: ParsedMail, ctx: Context) -> str | None:
    return f"Subject: {_cut(mail.subject)}" if _AUTO_REPLY_SUBJECT.match(mail.subject) else None


def no_reply_sender(mail: ParsedMail, ctx: Context) -> str | None:
    """no-reply@, noreply-alerts@, do-not-reply@ ...: nobody reads what we would send."""
    local = mail.from_address.partition("@")[0]
    return f"From: {mail.from_address} (no-reply address)" if _NO_REPLY.search(local) else None


# -- lists --------------------------------------------------------------------------

def list_headers(mail: ParsedMail, ctx: Context) -> str | None:
    for name in _LIST_HEADERS:
        value = mail.header(name)
        if value is not None:
            return f"{name}: {_cut(value.strip())}"
    if _first_word(mail.header("Precedence")) == "list":
        return "Precedence: list"
    return None


CHECKS: tuple[tuple[str, Check], ...] = (
    (LOOP, loop_header),
    (LOOP, own_address),
    (BOUNCE, delivery_status_report),
    (REPORT, feedback_or_receipt),
    (BOUNCE, ses_bounce),
    (REPORT, ses_report),
    (BOUNCE, failed_recipients),
    (BOUNCE, daemon_sender),
    (BOUNCE, bounce_subject),
    (REPORT, report_subject),
    (AUTO_REPLY, auto_submitted),
    (AUTO_REPLY, autoreply_headers),
    (AUTO_REPLY, bulk_precedence),
    (AUTO_REPLY, auto_reply_subject),
    (AUTO_REPLY, no_reply_sender),
    (BOUNCE, null_sender),
    (LIST, list_headers),
)


def classify(mail: ParsedMail, *, envelope_sender: str | None,
             own_addresses: frozenset[str] = frozenset(),
             loop_header: str = "X-Maild-Loop", loop_value: str | None = None,
             checks: tuple[tuple[str, Check], ...] = CHECKS) -> Classification:
    """The kind of `mail` and the evidence that decided; NORMAL when no check fires.

    `envelope_sender` is the SMTP MAIL FROM ('' for the null sender <>), or None when
    unknown (IMAP, tests); then the Return-Path header stands in for it."""
    ctx = Context(envelope_sender, frozenset(own_addresses), loop_header, loop_value)
    for kind, check in checks:
        evidence = check(mail, ctx)
        if evidence:
            return Classification(kind, evidence)
    return Classification(NORMAL, "no automatic signal")
