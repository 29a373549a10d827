"""Parse raw RFC 5322 bytes into a `ParsedMail` (the boundary value of this package).

    mail = parse(raw_bytes)
    mail.subject, mail.from_address, mail.text, mail.visible_text, mail.attachments

What you get:
- Header values (`headers`, in message order) unfolded and decoded: RFC 2047 encoded
  words in any charset (adjacent words joined first, so a character split across two
  words survives; bad base64 padding is tolerated), and raw 8-bit header bytes as UTF-8
  or, failing that, by a small guess (see `decode_bytes`).  Each value is one line: a
  line break hidden in an encoded word becomes a space and cannot reach an outbound
  Subject.
- Addresses as lower-cased addr-specs.  They are split with `email.utils.getaddresses`
  *before* the display names are decoded: a decoded name such as "Doe, John" would
  otherwise split one address into two.
- `text`: the text/plain body parts joined, or, without any, the HTML parts converted by
  `parsers.html`.  `html`: the first text/html part.  Line ends are '\\n'.  Parts inside
  an attached message or with a filename (non-inline) are attachments, not text.
  Converting HTML costs up to ~4 s per MB, so only the first `MAX_HTML_CHARS` (256,000)
  characters of HTML, all parts together, are converted (cut before a partial tag; a
  defect says so); `html` stays whole.  `visible_text` is bounded by `parsers.quotes`.
- Bodies decoded from their declared charset; when that fails (unknown name, mislabelled
  bytes) the charset's relatives are tried (ISO-2022-JP -> EUC-JP/CP932, GB2312 ->
  GB18030, EUC-KR -> CP949, Latin-1 -> CP1252, ...), then UTF-8, then a guess.  Text never
  carries NUL characters or lone surrogates (PostgreSQL refuses both).
- `attachments` with their decoded bytes (mail-parser hands binary payloads as base64).
  A filename is what the sender wrote (decoded, on one line): never use it as a path.
- `defects`: mail-parser's defect notes plus ours (charset fallbacks, failures).
- `trimmed`: what `limits` (a `parsers.limits.Limits`) left out, one sentence each, e.g.
  "attachment 'big.bin' (52,428,800 bytes) over max_attachment_size 10 MiB: not
  stored"; they also come first in `defects`.  A header section over `max_header_bytes`
  or with more than `max_headers` fields is refused before anything else is read
  (`MessageRefused`).  The MIME parse reads at most `max_mime_parts` parts and stops
  reading there; containers deeper than `max_mime_depth` stay closed; attachments beyond
  `max_attachments` or over `max_attachment_size` are not kept (the size is read off the
  base64 text: they are never decoded).  Nothing is ever decompressed.  `parsers.limits`
  lists every limit, its default and its outcome.

mail-parser does the MIME walk and attachment extraction, on the Message the stdlib
parse gives (`parsers.feed`, the parse `mailparser.parse_from_bytes` would make, parsed
once) and without the parts of its work we never read (`_Extraction`).  It is not quite
"never raises": it raised AttributeError on two corpus bounces (sisimai
lhost-sendgrid-01/02, an epilogue without boundary).  Then we extract what we can from
the stdlib's Message ourselves; if even the MIME structure is unusable (e.g. nested too
deep for the interpreter, with `max_mime_depth` raised), the headers alone.  Every such
step adds a defect string.  Only input with nothing in it (empty or whitespace) raises
`UnparseableMessage`.

The raw bytes are not kept here (the store keeps them byte for byte).
"""
from __future__ import annotations

import email
import email.parser
import email.policy
import email.utils
import hashlib
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime

import mailparser

from parsers.charsets import clean, decode_bytes
from parsers.feed import read_message
from parsers.headers import (addresses, as_text, b64decode, decode_header, decode_words,
                             encode_text, one_line, parse_date, unfold)
from parsers.html import html_to_text
from parsers.limits import Limits, MessageRefused, check_header_section, size_text
from parsers.msgid import normalize_message_id, parse_message_ids
from parsers.quotes import visible_text

log = logging.getLogger(__name__)

MAX_HTML_CHARS = 256_000    # HTML converted to text, all parts together (see module doc)


class UnparseableMessage(Exception):
    """Not even headers could be had from the bytes (e.g. an empty message)."""


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    data: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True)
class ParsedMail:
    message_id: str | None                 # normalized (see normalize_message_id), None if absent
    in_reply_to: tuple[str, ...]           # normalized Message-IDs
    references: tuple[str, ...]            # normalized Message-IDs, oldest first
    subject: str                           # decoded, unfolded
    from_address: str                      # lower-cased addr-spec, '' if none
    from_name: str
    reply_to: tuple[str, ...]
    to: tuple[str, ...]                    # lower-cased addr-specs
    cc: tuple[str, ...]
    date: datetime | None                  # aware datetime, None if missing/unparseable
    headers: tuple[tuple[str, str], ...]   # (name, decoded value) in message order
    text: str                              # full text body (plain parts, or HTML converted)
    html: str                              # first text/html part as sent ('' if none)
    visible_text: str                      # new text of a reply: quotes and signature removed
    attachments: tuple[Attachment, ...] = ()
    defects: tuple[str, ...] = field(default=())
    trimmed: tuple[str, ...] = ()          # what the limits left out (see parsers.limits)

    def header(self, name: str) -> str | None:
        """First value of header `name` (case-insensitive), or None."""
        lname = name.lower()
        for key, value in self.headers:
            if key.lower() == lname:
                return value
        return None

    def header_all(self, name: str) -> tuple[str, ...]:
        lname = name.lower()
        return tuple(v for k, v in self.headers if k.lower() == lname)


DEFAULT_LIMITS = Limits()


def parse(raw: bytes, limits: Limits = DEFAULT_LIMITS) -> ParsedMail:
    """Facts from raw message bytes; best effort on anything malformed (see module doc).
    Raises MessageRefused for a message over a limit that refuses (`parsers.limits`)."""
    if not isinstance(raw, (bytes, bytearray, memoryview)):
        raise UnparseableMessage(f"expected bytes, got {type(raw).__name__}")
    raw = bytes(raw)
    if not raw or raw.isspace():                # (not .strip(): no copy of a 25 MB message)
        raise UnparseableMessage("empty message")
    check_header_section(raw, limits)
    defects: list[str] = []
    trimmed: list[str] = []
    extracted, message = _mime(raw, limits, defects, trimmed)
    try:
        return _build(message, extracted, defects, trimmed, limits, with_bodies=True)
    except Exception as exc:  # a stdlib surprise deep in some part: keep the headers
        log.warning("parse: extraction failed, keeping headers only: %r", exc)
        defects.append(f"extraction failed, headers only: {exc!r}"[:300])
        try:
            return _build(_headers_only(raw), None, defects, trimmed, limits, with_bodies=False)
        except Exception as again:
            raise UnparseableMessage(f"no headers could be read: {again!r}") from again


# -- MIME ---------------------------------------------------------------------------

class _Extraction(mailparser.MailParser):
    """mail-parser's walk over a Message we parsed: its attachments, defects and date,
    without the two things of it we never read -- the `mail` dictionaries (`_make_mail`
    decodes every header twice) and its decoded body text (`_bodies` decodes the parts
    by our own charset rules; the only defect that step adds, CharsetDecodeDefect, is
    one we drop anyway)."""

    def _make_mail(self, complete=True):
        return {}

    def _decode_body_payload(self, part, charset, part_index):
        return ""


def _mime(raw: bytes, limits: Limits, defects: list[str], trimmed: list[str]):
    """(mail-parser result or None, stdlib Message).  The bytes are parsed once, as
    `mailparser.parse_from_bytes` parses them (`email.message_from_bytes`) but within
    `limits` (`parsers.feed.read_message`), and that Message is handed to mail-parser."""
    try:
        message = _read(raw, limits, trimmed)
    except Exception as exc:  # RecursionError on absurd nesting, and the like
        log.info("parse: MIME structure unusable (%r)", exc)
        defects.append(f"mail-parser failed: {exc!r}"[:300])
        defects.append(f"MIME structure unusable, headers only: {exc!r}"[:300])
        return None, _headers_only(raw)
    try:
        return _Extraction(message), message
    except Exception as exc:
        log.info("parse: mail-parser failed (%r), falling back to the stdlib", exc)
        defects.append(f"mail-parser failed: {exc!r}"[:300])
    return None, _read(raw, limits, [])     # fresh: mail-parser may have left it half-walked


def _read(raw: bytes, limits: Limits, trimmed: list[str]):
    message, cut = read_message(raw, max_parts=limits.max_mime_parts,
                                max_depth=limits.max_mime_depth)
    if cut.parts_after:
        trimmed.append(f"MIME parts after the first {limits.max_mime_parts:,} not read "
                       f"(max_mime_parts {limits.max_mime_parts:,}): the rest of the "
                       "message is only in the raw message")
    if cut.unopened:
        trimmed.append(f"{cut.unopened:,} MIME container(s) nested deeper than "
                       f"max_mime_depth {limits.max_mime_depth:,} not opened: their parts "
                       "are only in the raw message")
    return message


def _headers_only(raw: bytes):
    return email.parser.BytesParser(policy=email.policy.compat32).parsebytes(raw, headersonly=True)


def _build(message, extracted, defects: list[str], trimmed: list[str], limits: Limits, *,
           with_bodies: bool) -> ParsedMail:
    headers = tuple((str(name), decode_header(value)) for name, value in message.raw_items())
    raw_first = {}
    for name, value in message.raw_items():
        raw_first.setdefault(name.lower(), unfold(as_text(value)))
    plain, html_parts = _bodies(message, defects) if with_bodies else ([], [])
    text = "\n\n".join(plain) if plain else _html_text(html_parts, defects)
    from_list = addresses(raw_first.get("from", ""), require_at=False)
    if extracted is not None:
        attachments = _attachments_from_mailparser(extracted.attachments, limits, trimmed,
                                                   _written_names(message))
        defects.extend(_mailparser_defects(extracted.defects))
    else:
        attachments = _attachments_from_parts(message, limits, trimmed) if with_bodies else ()
    return ParsedMail(
        message_id=normalize_message_id(raw_first.get("message-id", "")),
        in_reply_to=parse_message_ids(raw_first.get("in-reply-to", "")),
        references=parse_message_ids(raw_first.get("references", "")),
        subject=decode_header(raw_first.get("subject", "")),
        from_address=from_list[0][1] if from_list else "",
        from_name=from_list[0][0] if from_list else "",
        reply_to=tuple(a for _, a in addresses(raw_first.get("reply-to", ""))),
        to=tuple(a for _, a in addresses(raw_first.get("to", ""))),
        cc=tuple(a for _, a in addresses(raw_first.get("cc", ""))),
        date=parse_date(raw_first.get("date"), extracted),
        headers=headers,
        text=clean(text),
        html=clean(html_parts[0]) if html_parts else "",
        visible_text=clean(visible_text(text)),
        attachments=attachments,
        defects=tuple(dict.fromkeys(trimmed + defects))[:50],
        trimmed=tuple(dict.fromkeys(trimmed)),
    )


def _bodies(message, defects: list[str]) -> tuple[list[str], list[str]]:
    """Decoded text/plain and text/html body parts, in order (mail-parser's rules: a
    part with a filename or `attachment` disposition is not body text unless `inline`),
    skipping everything inside an attached container (a forwarded .eml)."""
    plain: list[str] = []
    html_parts: list[str] = []
    attached: set[int] = set()
    for part in message.walk():
        inside = id(part) in attached
        if part.is_multipart():
            payload = part.get_payload()
            disposition = part.get_content_disposition()
            if inside or disposition not in (None, "inline") or (
                    disposition is None and part.get_filename()):
                attached.update(id(child) for child in payload if not isinstance(child, str))
            continue
        subtype = part.get_content_subtype()
        if part.get_content_maintype() == "multipart":
            subtype = "plain"       # a "multipart" without parts: its body is all we have
        elif part.get_content_maintype() != "text" or subtype not in ("plain", "html"):
            continue
        if inside:
            continue
        disposition = part.get_content_disposition()
        if disposition != "inline" and (disposition == "attachment" or part.get_filename()):
            continue
        text, note = decode_bytes(part.get_payload(decode=True) or b"", part.get_content_charset())
        if note:
            defects.append(f"text/{subtype}: {note}")
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        if text.strip():
            (plain if subtype == "plain" else html_parts).append(text.strip("\n"))
    return plain, html_parts


def _html_text(parts: list[str], defects: list[str]) -> str:
    """The HTML parts as text, converting at most MAX_HTML_CHARS characters in all."""
    texts: list[str] = []
    budget = MAX_HTML_CHARS
    for html in parts:
        if len(html) > budget:
            defects.append(f"text/html: longer than {MAX_HTML_CHARS} characters in all, "
                           "only the first converted to text")
            html = html[:budget]
            if html.rfind("<") > html.rfind(">"):
                html = html[:html.rfind("<")]       # no partial tag at the end
            budget = 0
        else:
            budget -= len(html)
        texts.append(html_to_text(html))
    return "\n\n".join(filter(None, texts))


# mail-parser names an attachment that has no name '<10 random letters>.txt' (or .rtf),
# so the same bytes would parse differently every time (replays, rules on names)
_INVENTED_NAME = re.compile(r"[A-Za-z]{10}\.(?:txt|rtf)")


def _written_names(message) -> frozenset[str]:
    """The file names the sender wrote, on any part."""
    return frozenset(str(name) for part in message.walk() if (name := part.get_filename()))


def _attachments_from_mailparser(items, limits: Limits, trimmed: list[str],
                                 written: frozenset[str] = frozenset()) -> tuple[Attachment, ...]:
    """mail-parser's attachment dicts as Attachments; binary payloads come as base64
    (and are decoded only when within `limits`).  A name mail-parser made up for an
    unnamed attachment (not among the `written` ones) becomes '' (no name), as the
    sender wrote it."""
    kept = _Kept(limits, trimmed)
    for item in items:
        payload = item.get("payload") or ""
        binary = item.get("binary") and isinstance(payload, str)
        invented = str(item.get("filename") or "")
        if _INVENTED_NAME.fullmatch(invented) and invented not in written:
            invented = ""
        filename = one_line(invented)
        size = _base64_size(payload) if binary else len(payload)
        if not kept.admits(filename, size):
            continue
        if binary:
            data = b64decode(payload)
        else:
            data = encode_text(payload) if isinstance(payload, str) else bytes(payload)
        content_type = str(item.get("mail_content_type") or "application/octet-stream")
        kept.add(Attachment(filename=filename, content_type=content_type, data=data))
    return kept.done()


def _attachments_from_parts(message, limits: Limits, trimmed: list[str]
                            ) -> tuple[Attachment, ...]:
    """The fallback when mail-parser failed: leaf parts with a filename or disposition."""
    kept = _Kept(limits, trimmed)
    for part in message.walk():
        if part.is_multipart():
            continue
        filename = part.get_filename()
        if not filename and part.get_content_disposition() != "attachment":
            continue
        filename = decode_header(filename or "")
        encoded = part.get_payload()
        encoded = encoded if isinstance(encoded, str) else ""
        if part.get("content-transfer-encoding", "").strip().lower() == "base64":
            size = _base64_size(encoded)
        else:
            size = len(encoded)             # quoted-printable and the rest: at most this
        if not kept.admits(filename, size):
            continue
        kept.add(Attachment(filename=filename, content_type=part.get_content_type(),
                            data=part.get_payload(decode=True) or b""))
    return kept.done()


def _base64_size(text: str) -> int:
    """The size base64 `text` decodes to, without decoding it (exact for well-formed
    base64; line breaks and blanks don't count)."""
    letters = len(text) - sum(text.count(c) for c in "\r\n \t=")
    return letters * 3 // 4


class _Kept:
    """Attachments within `max_attachments` and `max_attachment_size`; a sentence in
    `trimmed` for each one left out."""

    def __init__(self, limits: Limits, trimmed: list[str]):
        self.limits, self.trimmed = limits, trimmed
        self.found: list[Attachment] = []
        self.over: list[str] = []           # names of those past max_attachments

    def admits(self, filename: str, size: int) -> bool:
        if len(self.found) >= self.limits.max_attachments:
            self.over.append(filename)
            return False
        if size > self.limits.max_attachment_size:
            self.trimmed.append(f"attachment {filename!r} ({size:,} bytes) over "
                                f"max_attachment_size {size_text(self.limits.max_attachment_size)}: "
                                "not stored")
            return False
        return True

    def add(self, attachment: Attachment) -> None:
        self.found.append(attachment)

    def done(self) -> tuple[Attachment, ...]:
        if self.over:
            names = ", ".join(repr(n) for n in self.over[:5]) + (", ..." if len(self.over) > 5 else "")
            self.trimmed.append(f"{len(self.over):,} attachment(s) after the first "
                                f"{self.limits.max_attachments:,} not stored "
                                f"(max_attachments {self.limits.max_attachments:,}): {names}")
        return tuple(self.found)


def _mailparser_defects(items) -> list[str]:
    notes = []
    for item in items or ():
        for where, details in (item.items() if isinstance(item, dict) else [("", item)]):
            for detail in details if isinstance(details, list) else [details]:
                if not str(detail).startswith("CharsetDecodeDefect"):   # we decode ourselves
                    notes.append(f"{where}: {detail}"[:300])
    return notes


__all__ = ["parse", "ParsedMail", "Attachment", "UnparseableMessage", "MessageRefused",
           "Limits", "decode_bytes",
           "decode_words", "normalize_message_id", "parse_message_ids"]
