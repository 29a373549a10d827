"""How much of a message maild reads: `Limits`, and `MessageRefused` for what it won't.

    limits = Limits(max_attachment_size=20 * MiB)
    mail = parse(raw, limits)     # raises MessageRefused, or trims and says so in mail.trimmed

Hostile or broken mail must not make the worker raise, hang, or grow its memory beyond a
bounded multiple of the message size.  Each limit is checked before the expensive work
it protects, and ends in one of two outcomes:

* **refused** -- `parse` raises `MessageRefused(reason)`; the worker quarantines the
  message with that reason (`maild quarantine list`), to be replayed after the limit is
  raised.  Used where what is left could not be trusted.
* **trimmed** -- the message is parsed with the excess left out, and a sentence in
  `ParsedMail.trimmed` (also among its `defects`) says exactly what was left out; the
  store records each as a `trimmed` event on the ticket.  Nothing is lost: the raw bytes
  are kept byte for byte by the store (DESIGN §1.7).

=====================  ==========  ========  ==============================================
limit                  default     outcome   why this default
=====================  ==========  ========  ==============================================
max_header_bytes       256 KiB     refused   the whole header section (up to the blank
                                             line).  Postfix cuts each header at 100 KiB
                                             (header_size_limit), Exim refuses a section
                                             over 1 MiB (header_maxsize); the largest in
                                             the corpus is 205 KiB (one 3,300-line
                                             Subject), real mail a few KiB.  Over it, the
                                             threading headers can't be trusted, and the
                                             scan stops at the limit, so it costs nothing.
max_headers            1,000       refused   header fields in that section.  Each costs
                                             ~50 us and ~500 bytes however short it is;
                                             the corpus' most is 82, Postfix stops
                                             forwarding at 50 Received (hopcount_limit).
max_mime_parts         1,000       trimmed   every part the MIME parser creates (the
                                             message itself, containers, leaves, the
                                             blocks of a delivery report).  Dovecot stops
                                             at 10,000; maild spends ~0.1 ms a part, the
                                             corpus' largest real message has 330.  The
                                             parser stops at part 1,001: the rest of the
                                             message is not read at all.
max_mime_depth         100         trimmed   containers (multipart/*, message/*) nested
                                             deeper are not opened: kept as one opaque
                                             part.  Postfix (mime_nesting_limit) and
                                             Dovecot use 100; real mail nests < 10.
max_attachments        500         trimmed   attachments after the 500th are not stored.
                                             A real message in the corpus has 328 (an
                                             export of small text files); each is a row.
max_attachment_size    10 MiB      trimmed   a larger attachment is not stored (its size
                                             is read off the encoded text: it is never
                                             decoded).  It stays in the raw message.
=====================  ==========  ========  ==============================================

Nothing here or in `parsers.message` decompresses anything: a zip or gzip attachment is
kept as the bytes that were sent, and base64 or quoted-printable decoding of a part is
bounded by that part's size.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

KiB = 1024
MiB = 1024 * KiB

# A header line or its continuation, as `email.feedparser` tells them apart (headerRE):
# the header section ends at the first line that is neither (normally the blank line).
_HEADER_LINE = re.compile(rb"From |[\041-\071\073-\176]*:|[\t ]")
_LINE_END = re.compile(rb"\r\n|\r|\n")


class MessageRefused(Exception):
    """The message is over a limit that makes it untrustworthy; `reason` says which.
    The worker quarantines it with this text."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Limits:
    max_header_bytes: int = 256 * KiB
    max_headers: int = 1_000
    max_mime_parts: int = 1_000
    max_mime_depth: int = 100
    max_attachments: int = 500
    max_attachment_size: int = 10 * MiB

    def __post_init__(self):
        for name in ("max_header_bytes", "max_headers", "max_mime_parts", "max_mime_depth",
                     "max_attachments", "max_attachment_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a whole number, 1 or more (got {value!r})")


def check_header_section(raw: bytes, limits: Limits) -> int:
    """The size of `raw`'s header section in bytes; raises MessageRefused when it is over
    `limits.max_header_bytes` or holds more than `limits.max_headers` fields.  Reads at
    most max_header_bytes bytes (plus one line end)."""
    limit, pos, size, fields = limits.max_header_bytes, 0, len(raw), 0
    while pos < size:
        if not _HEADER_LINE.match(raw, pos):
            break                                   # the blank line, or the first body line
        if raw[pos] not in b" \t":                  # not a continuation line
            fields += 1
            if fields > limits.max_headers:
                raise MessageRefused(
                    f"more than max_headers {limits.max_headers:,} header fields; its "
                    "headers can't be trusted")
        end = _LINE_END.search(raw, pos, min(size, limit + 2))
        pos = end.end() if end else min(size, limit + 2)
        if pos > limit:
            raise MessageRefused(
                f"header section over max_header_bytes {size_text(limit)}: more than "
                f"{limit:,} bytes before the first blank line; its headers can't be trusted")
    return pos


def size_text(n: int) -> str:
    """``10 MiB``, ``256 KiB``, ``1,234 bytes``: sizes as people read them."""
    for unit, name in ((MiB, "MiB"), (KiB, "KiB")):
        if n >= unit and n % unit == 0:
            return f"{n // unit:,} {name}"
    return f"{n:,} bytes"


__all__ = ["Limits", "MessageRefused", "KiB", "MiB", "check_header_section", "size_text"]
