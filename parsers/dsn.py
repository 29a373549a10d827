"""What a bounce says: which recipients failed, why, and which mail of ours it returns.

    report = read_report(mail, raw, addresses=("support+bounces-42@example.com",))
    report.failed               # the recipients whose delivery failed (action 'failed')
    report.recipients[0].status, report.recipients[0].diagnostic   # '5.1.1', '<x@y>: ...'
    report.original_message_ids # Message-IDs of the returned original, best first
    report.verp_outbox_id       # 42: the outbox row named by our VERP envelope sender

Pure: bytes and a `ParsedMail` in, a frozen `DeliveryReport` out; no database.

Where each fact comes from, in order:

1. **RFC 3464** (`multipart/report; report-type=delivery-status`): every
   `message/delivery-status` part (also `text/delivery-status`, and one that was sent
   base64-encoded): the per-message fields (Reporting-MTA) and one block per recipient
   (Final-Recipient, Original-Recipient, Action, Status, Diagnostic-Code, Remote-MTA).
   Some MTAs (Amazon WorkMail, a few appliances) write those same fields into the text
   of a plain bounce; they are read there too.
2. **Non-standard bounces** (qmail, Exim, Sendmail, Exchange/Office 365, Gmail, Yahoo,
   Amazon SES, Postfix, and the rest): the failed recipients come from `flufl.bounce`,
   GNU Mailman's bounce detectors (its temporary failures are `delayed`), plus Exim's
   `X-Failed-Recipients`; where neither finds one, `_text_recipients` takes the
   addresses the text names next to an error.  The status is the first enhanced code
   (`5.1.1`) in the bounce's own text, else one made from an SMTP reply code (`550` ->
   `5.0.0`), else '' (unknown); the diagnostic is the first line naming the recipient
   and a code, else the first naming the code, else the first naming the recipient.
   The action is `delayed` when the text says so (`DELAY_WORDS`), else `failed`.
   Only the bounce's own words count: the text is cut where the copy of the returned
   mail begins (`COPY_MARKERS`), so the original's Received lines lend no code.
3. **The returned original**: the Message-ID of each `message/rfc822` part, of each
   `text/rfc822-headers` (or `message/rfc822-headers`) part, then quoted
   `Message-ID: <...>` lines in the text (non-standard bounces inline the original),
   then the bounce's own In-Reply-To/References (Gmail's DSNs thread to the mail).
4. **VERP**: the first of `addresses` (the envelope recipients, then To, as the caller
   gives them) of the form `<local>+bounces-<N>@<domain>` names outbox row N.  The
   caller passes only addresses that are ours: anyone can write such an address.

`FORMATS` names the software that wrote a non-standard bounce (the first marker found),
for the record and for the coverage table of the corpus test; it changes no extraction.
Nothing here raises on bad input: an unreadable part is skipped, and a bounce from which
nothing can be read is a `DeliveryReport` with no recipients.
"""
from __future__ import annotations

import base64
import binascii
import email.parser
import email.policy
import logging
import re
from dataclasses import dataclass, field
from email.message import Message

from flufl.bounce import all_failures

from parsers.charsets import decode_bytes
from parsers.feed import read_message
from parsers.headers import as_text, unfold
from parsers.message import ParsedMail
from parsers.msgid import normalize_message_id

log = logging.getLogger(__name__)

FAILED, DELAYED, DELIVERED, RELAYED, EXPANDED = "failed", "delayed", "delivered", "relayed", "expanded"
ACTIONS = (FAILED, DELAYED, DELIVERED, RELAYED, EXPANDED)
RFC3464 = "rfc3464"
MAX_TEXT = 200_000            # characters of a bounce's text searched (hostile input stays cheap)
MAX_DIAGNOSTIC = 500
MAX_GUESSED = 20              # recipients taken from a bounce's prose at most
MAX_LINE = 1_000              # characters of a line searched (a 100 KB "word" stays linear)
MAX_PARTS, MAX_DEPTH = 1_000, 100   # MIME read of a bounce, as parsers.limits' defaults
FLUFL_BYTES = 256 * 1024      # flufl.bounce reads every line: a big bounce is cut for it
WINDOW = 6                    # lines after a recipient's address searched for its reason

_VERP = re.compile(r"^[^@+\s]+\+bounces-(\d{1,18})@[^@\s]+$", re.I)
_STATUS = re.compile(r"(?<![\w.-])([245]\.\d{1,3}\.\d{1,3})(?!\.?\d)")
_SMTP_CODE = re.compile(r"(?:^|[\s:(\[\"'])([45][0-5]\d)(?=[\s-])")
_ADDRESS = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+", re.A)
_PLAUSIBLE = re.compile(r"[\w.!#$%&'*+/=?^`|~-]{1,64}@[\w-]+(?:\.[\w-]+)+", re.A)
_LEADING_ADDRESS = re.compile(r"^<?[\w.!#$%&'*+/=?^`|~-]+@[\w-]+(?:\.[\w-]+)+>?:?\s*$", re.A)
_QUOTED_ID = re.compile(r"^[ \t>]*Message-ID:[ \t]*(?:\r?\n[ \t]+)?(<[^<>\s]+>)", re.I | re.M)
_FIELD = re.compile(r"^([A-Za-z][A-Za-z0-9-]*):[ \t]*(.*)$")
_DSN_FIELDS = ("final-recipient", "original-recipient", "action", "status", "diagnostic-code",
               "remote-mta", "reporting-mta", "x-actual-recipient")
_CUT_DIAGNOSTIC = re.compile(r"^(?:[45]\d\d[ -])?(?:#?[245]\.\d{1,3}\.\d{1,3}\b\s*)?")

# The bounce's own text ends where the returned mail's copy begins.
COPY_MARKERS = re.compile(
    r"^[ \t]*(?:-+[ \t]*)?(?:below this line is a copy of the message|this is a copy of the message"
    r"|original message(?: follows| headers| header)?\b|the original message|message headers follow"
    r"|headers of the original message|forwarded message|returned message|included is a copy"
    r"|a copy of the original message|undelivered message headers|---+ ?original message"
    r"|content-type: message/rfc822|received: from |return-path: )", re.I | re.M)
DELAY_WORDS = re.compile(
    r"\b(?:delayed|delay(?:ed)? notification|has not (?:yet )?been delivered|not yet been delivered"
    r"|will (?:continue|keep) (?:to )?(?:try|trying|retry)|still trying|will be retried"
    r"|will retry|(?:is|are) being retried|warning: message|temporarily deferred"
    r"|delivery (?:is |has been )?(?:delayed|deferred))\b", re.I)
PERMANENT_WORDS = re.compile(r"\b(?:permanent(?:ly)?|given up|giving up|gave up|fatal)\b", re.I)
FORMATS: tuple[tuple[str, re.Pattern[str]], ...] = tuple((name, re.compile(marker, re.I)) for name, marker in (
    ("qmail", r"this is the qmail-send program|qmail[- ]send"),
    ("exim", r"this message was created automatically by mail delivery software"),
    ("postfix", r"this is the mail system at host|this is the postfix program"),
    ("sendmail", r"the original message was received at|-+ transcript of session follows -+"
                 r"|the following addresses had permanent fatal errors"),
    ("exchange", r"delivery has failed to these recipients or groups|your message did not reach"
                 r"|did not reach the following recipient|microsoft exchange|could not be delivered to"
                 r" one or more recipients"),
    ("gmail", r"delivery to the following recipient(?:s)? (?:failed|has been delayed)"
              r"|google tried to deliver your message|the response from the remote server was"),
    ("yahoo", r"sorry, we were unable to deliver your message to the following address"),
    ("amazonses", r"an error occurred while trying to deliver the mail to the following recipients"),
    ("opensmtpd", r"this is the mailer-daemon, please do not reply"),
    ("dragonfly", r"this is the dragonfly mail agent"),
    ("courier", r"this is a delivery status notification from|courier mail server"),
    ("domino", r"your message\s+subject: .*\s+was not delivered to"),
))


@dataclass(frozen=True)
class RecipientReport:
    """One recipient of the returned mail, as the bounce reports it."""
    final_recipient: str              # lower-cased address ('' if the bounce names none)
    original_recipient: str = ""
    action: str = FAILED              # one of ACTIONS
    status: str = ""                  # '5.1.1'; '' when the bounce gives no code
    diagnostic: str = ""              # the reason, one line, without its type and codes
    remote_mta: str = ""

    @property
    def address(self) -> str:
        return self.original_recipient or self.final_recipient


@dataclass(frozen=True)
class DeliveryReport:
    format: str                                   # 'rfc3464', a FORMATS name, or ''
    reporting_mta: str = ""
    recipients: tuple[RecipientReport, ...] = ()
    original_message_ids: tuple[str, ...] = ()    # normalized, best first
    verp_outbox_id: int | None = None

    @property
    def failed(self) -> tuple[RecipientReport, ...]:
        return tuple(r for r in self.recipients if r.action == FAILED)

    @property
    def delayed(self) -> tuple[RecipientReport, ...]:
        return tuple(r for r in self.recipients if r.action == DELAYED)

    @property
    def primary(self) -> RecipientReport | None:
        """The recipient the bounce is mostly about: the first failed, else the first."""
        return (self.failed or self.recipients or (None,))[0]


def verp_outbox_id(address: str) -> int | None:
    """42 for '<local>+bounces-42@<domain>', else None."""
    match = _VERP.match((address or "").strip().strip("<>"))
    return int(match.group(1)) if match else None


def read_report(mail: ParsedMail, raw: bytes, *, addresses: tuple[str, ...] = (),
                null_sender: bool = True, max_parts: int = MAX_PARTS,
                max_depth: int = MAX_DEPTH) -> DeliveryReport:
    """Everything `mail` (a bounce) reports; `addresses`: ours that may carry a VERP id.
    The mail's own In-Reply-To/References count as returned ids only from the null
    sender (a person at postmaster@ answering our mail is not returning it).  The MIME
    tree is read within `max_parts`/`max_depth` (parse's limits), every line of the text
    within MAX_LINE characters: nothing a stranger writes costs more than linear time."""
    verp = next((n for n in map(verp_outbox_id, addresses) if n is not None), None)
    try:
        message = read_message(raw, max_parts=max_parts, max_depth=max_depth)[0]
    except Exception as exc:  # noqa: BLE001 - absurd nesting and the like: the text alone
        log.info("dsn: MIME structure unusable (%r), reading the text only", exc)
        message = None
    parts = _parts(message) if message is not None else _Parts()
    text = "\n".join(line[:MAX_LINE] for line in (mail.text or "")[:MAX_TEXT].splitlines())
    own_text = _own_text(text)
    reporting_mta, recipients = _standard(parts.delivery_status)
    fmt = RFC3464 if recipients else ""
    if not recipients:
        reporting_mta, recipients = _standard([_blocks(own_text)])
    if not recipients:
        fmt = _format_of(own_text)
        recipients = _non_standard(mail, message, raw, own_text)
    else:
        recipients = tuple(_complete(r, own_text) for r in recipients)
    ids = [*parts.returned_ids, *(_QUOTED_ID.findall(text)),
           *((*mail.in_reply_to, *reversed(mail.references)) if null_sender else ())]
    normalized = (normalize_message_id(i) for i in ids)
    own = mail.message_id
    return DeliveryReport(format=fmt, reporting_mta=reporting_mta, recipients=recipients,
                          original_message_ids=tuple(dict.fromkeys(i for i in normalized if i and i != own)),
                          verp_outbox_id=verp)


# -- the MIME parts ------------------------------------------------------------------

@dataclass
class _Parts:
    """What the MIME tree holds: delivery-status field blocks, the returned Message-IDs."""
    delivery_status: list[list[dict[str, str]]] = field(default_factory=list)
    returned_ids: list[str] = field(default_factory=list)


def _parts(message: Message) -> _Parts:
    found = _Parts()
    for part in message.walk():
        ctype = part.get_content_type()
        if ctype in ("message/delivery-status", "text/delivery-status",
                     "message/global-delivery-status"):
            found.delivery_status.append(_status_blocks(part))
        elif ctype == "message/rfc822":
            payload = part.get_payload()
            inner = payload[0] if isinstance(payload, list) and payload else None
            if isinstance(inner, Message) and inner.get("Message-ID"):
                found.returned_ids.append(as_text(inner.get("Message-ID")))
            elif isinstance(payload, str):
                found.returned_ids.extend(_QUOTED_ID.findall(payload[:MAX_TEXT]))
        elif ctype in ("text/rfc822-headers", "message/rfc822-headers", "message/global-headers"):
            headers = _decoded(part)
            parsed = email.parser.HeaderParser(policy=email.policy.compat32).parsestr(headers[:MAX_TEXT])
            if parsed.get("Message-ID"):
                found.returned_ids.append(as_text(parsed.get("Message-ID")))
            else:
                found.returned_ids.extend(_QUOTED_ID.findall(headers[:MAX_TEXT]))
    return found


def _decoded(part: Message) -> str:
    """A leaf part's text, decoded from its transfer encoding and charset."""
    try:
        data = part.get_payload(decode=True)
    except Exception:  # noqa: BLE001 - a broken encoding: the text as it stands
        data = None
    if data is None:
        payload = part.get_payload()
        return payload if isinstance(payload, str) else ""
    return decode_bytes(data, part.get_content_charset())[0].replace("\r\n", "\n")


def _status_blocks(part: Message) -> list[dict[str, str]]:
    """The field blocks of a delivery-status part: the stdlib parses a plain one into
    header blocks; an encoded one (base64, quoted-printable) stays text we read here."""
    payload = part.get_payload()
    if isinstance(payload, list):
        blocks = [{k.lower(): unfold(as_text(v)) for k, v in block.items()}
                  for block in payload if isinstance(block, Message)]
        encoding = (part.get("Content-Transfer-Encoding") or "").strip().lower()
        if encoding not in ("base64", "quoted-printable") and any(blocks):
            return blocks
        text = "\n\n".join("\n".join(f"{k}: {v}" for k, v in block.items())
                           for block in payload if isinstance(block, Message))
        if encoding == "base64":
            try:
                text = base64.b64decode(re.sub(r"[^A-Za-z0-9+/=]", "", text) + "==").decode(
                    "utf-8", "replace")
            except (binascii.Error, ValueError):
                return blocks
        return _blocks(text)
    return _blocks(_decoded(part))


def _blocks(text: str) -> list[dict[str, str]]:
    """'Field: value' blocks separated by blank lines (continuation lines unfolded);
    only lines of DSN fields count, so a plain bounce's prose yields nothing."""
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    last = None
    for line in text[:MAX_TEXT].splitlines():
        if not line.strip():
            if current:
                blocks.append(current)
            current, last = {}, None
            continue
        if line[:1] in (" ", "\t") and last is not None:
            current[last] += " " + line.strip()
            continue
        match = _FIELD.match(line.strip())
        name = match.group(1).lower() if match else None
        if name in _DSN_FIELDS:
            current.setdefault(name, match.group(2).strip())
            last = name
        else:
            last = None
    if current:
        blocks.append(current)
    return blocks


def _standard(parts: list[list[dict[str, str]]]) -> tuple[str, tuple[RecipientReport, ...]]:
    reporting_mta, recipients = "", []
    for blocks in parts:
        for block in blocks:
            if not reporting_mta and block.get("reporting-mta"):
                reporting_mta = _typed(block["reporting-mta"])
            original = _address(block.get("original-recipient", ""))
            final = (_address(block.get("final-recipient", ""))
                     or _address(block.get("x-actual-recipient", "")) or original)
            if not final and not block.get("action"):
                continue
            status = _STATUS.search(block.get("status", ""))
            diagnostic = block.get("diagnostic-code", "")
            recipients.append(RecipientReport(
                final_recipient=final, original_recipient=original,
                action=_action(block.get("action", "")),
                status=status.group(1) if status else _status_of(diagnostic),
                diagnostic=_clean_diagnostic(_typed(diagnostic)),
                remote_mta=_typed(block.get("remote-mta", ""))))
    return reporting_mta, tuple(r for r in recipients if r.final_recipient or r.status)


def _complete(r: RecipientReport, text: str) -> RecipientReport:
    """A DSN block without a Diagnostic-Code gets the line of the text naming it."""
    if r.diagnostic or not r.final_recipient:
        return r
    line = _line_with(text, r.final_recipient, r.status)
    return RecipientReport(r.final_recipient, r.original_recipient, r.action, r.status,
                           line, r.remote_mta)


def _action(value: str) -> str:
    word = value.strip().lower().split(" ")[0].rstrip(";,.") if value.strip() else ""
    if word in ACTIONS:
        return word
    if word in ("error", "failure", "fail"):        # OpenSMTPD writes 'error'
        return FAILED
    return DELAYED if word.startswith("delay") else FAILED


def _typed(value: str) -> str:
    """'dns; mx.example.com' -> 'mx.example.com'; 'smtp; 550 ...' -> '550 ...'."""
    kind, sep, rest = value.partition(";")
    return (rest if sep and " " not in kind.strip() else value).strip()


def _address(value: str) -> str:
    found = _ADDRESS.search(_typed(value).strip("<> "))
    return found.group(0).lower() if found else ""


def _plausible(address: str) -> bool:
    """An addr-spec, not JSON or prose a heuristic detector took for one."""
    return bool(_PLAUSIBLE.fullmatch(address))


def _status_of(text: str) -> str:
    found = _STATUS.search(text)
    if found:
        return found.group(1)
    code = _SMTP_CODE.search(text)
    return f"{code.group(1)[0]}.0.0" if code else ""


def _clean_diagnostic(text: str) -> str:
    """'550 5.1.1 <x@y>: Recipient address rejected' -> '<x@y>: Recipient address rejected'."""
    text = " ".join(text.split())
    cut = _CUT_DIAGNOSTIC.sub("", text, count=1).strip()
    return (cut or text)[:MAX_DIAGNOSTIC]


# -- non-standard bounces -----------------------------------------------------------

def _own_text(text: str) -> str:
    """The bounce's own words: its text up to where the returned mail's copy starts."""
    marker = COPY_MARKERS.search(text)
    return text[:marker.start()] if marker else text


def _format_of(text: str) -> str:
    return next((name for name, marker in FORMATS if marker.search(text)), "")


def _non_standard(mail: ParsedMail, message: Message | None, raw: bytes,
                  text: str) -> tuple[RecipientReport, ...]:
    delayed = bool(DELAY_WORDS.search(text) or DELAY_WORDS.search(mail.subject)) and not (
        PERMANENT_WORDS.search(text))
    temporary, permanent = _flufl(message, raw)
    addresses = dict.fromkeys([*permanent, *temporary])
    for value in mail.header_all("X-Failed-Recipients"):
        addresses.update(dict.fromkeys(a.lower() for a in _ADDRESS.findall(value)))
    if not addresses:
        addresses = dict.fromkeys(_text_recipients(mail, text))
    status = _status_of(text)
    if not addresses:
        if not status:
            return ()
        return (RecipientReport("", action=DELAYED if delayed else FAILED, status=status,
                                diagnostic=_clean_diagnostic(_line_with(text, "", status))),)
    out = []
    lowered = text.lower()
    for address in sorted(addresses, key=lambda a: (lowered.find(a) % (len(lowered) + 1), a)):
        action = DELAYED if (address in temporary and address not in permanent) or delayed else FAILED
        line = _line_with(text, address, status)
        own_status = _status_of(line) or status
        out.append(RecipientReport(address, action=action, status=own_status,
                                   diagnostic=_clean_diagnostic(line)))
    return tuple(out)


def _flufl(message: Message | None, raw: bytes) -> tuple[set[str], set[str]]:
    """flufl.bounce's (temporary, permanent) failures, lower-cased text; nothing on error.
    It reads every line of every part (~1 s per MB), so a bounce bigger than FLUFL_BYTES
    is given its first FLUFL_BYTES only: the report comes first, the returned mail last."""
    try:
        if len(raw) > FLUFL_BYTES:
            message = read_message(raw[:FLUFL_BYTES], max_parts=MAX_PARTS, max_depth=MAX_DEPTH)[0]
        if message is None:
            return set(), set()
        temporary, permanent = all_failures(message)
    except Exception as exc:  # noqa: BLE001 - a detector's bug must not cost the bounce
        log.info("dsn: flufl.bounce failed (%r); reading the text only", exc)
        return set(), set()

    def text(found) -> set[str]:
        addresses = {(a.decode("ascii", "replace") if isinstance(a, bytes) else str(a)).strip("<> ").lower()
                     for a in found if a}
        return {a for a in addresses if _plausible(a)}
    return text(temporary), text(permanent)


_ERROR_LINE = re.compile(
    r"(?:\b[45]\d\d\b|[245]\.\d{1,3}\.\d{1,3}|unknown|not (?:exist|found|deliver|reach)|no such"
    r"|reject|fail|invalid|unavailable|could not|couldn't|unable|error|refused|denied|quota|full"
    r"|undeliverable|delivering|recipient|address)", re.I)


def _text_recipients(mail: ParsedMail, text: str) -> list[str]:
    """Addresses the bounce's own text names on a line about an error, other than its
    own sender and recipients (whose mail came back)."""
    skip = {mail.from_address, *mail.to, *mail.cc}
    found: list[str] = []
    for line in text.splitlines():
        if not _ERROR_LINE.search(line):
            continue
        for address in _ADDRESS.findall(line):
            address = address.lower()
            if address not in skip and address not in found:
                found.append(address)
                if len(found) == MAX_GUESSED:
                    return found
    return found


def _line_with(text: str, address: str, status: str) -> str:
    """The bounce's reason for `address`: the first line with a code among the address's
    line and the few after it (qmail and Exim put the reason under the address, Gmail a
    paragraph further), else the first of those lines that says more than an address or
    introduces the next ('Technical details:'); without the address, the first line
    with a code."""
    lines = [line.strip() for line in text.splitlines()]
    at = next((i for i, line in enumerate(lines) if address and address in line.lower()), None)
    if at is None:
        return next((line for line in lines if line and _has_code(line, status)), "")
    window = [lines[at]]
    for line in lines[at + 1:]:
        if len(window) > WINDOW or _LEADING_ADDRESS.match(line) and address not in line.lower():
            break                      # the next recipient's paragraph
        if line:
            window.append(line)
    coded = [line for line in window if _has_code(line, status)]
    if coded:
        return coded[0]
    said = [line for line in window if _ADDRESS.sub("", line).strip(" <>:;,.-()")
            and not line.endswith(":")]
    return said[0] if said else window[0]


def _has_code(line: str, status: str) -> bool:
    return bool((status and status in line) or _STATUS.search(line) or _SMTP_CODE.search(line))


__all__ = ["ACTIONS", "DELAYED", "DELIVERED", "DeliveryReport", "EXPANDED", "FAILED", "FORMATS",
           "RELAYED", "RFC3464", "RecipientReport", "read_report", "verp_outbox_id"]
