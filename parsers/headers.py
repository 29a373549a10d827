"""Header values to one-line text: unfolding, RFC 2047 encoded words, raw 8-bit bytes,
address lists and dates.

Adjacent encoded words are joined before decoding, so a character split across two words
survives; bad base64 padding is tolerated; a line break hidden in an encoded word becomes
a space and cannot reach an outbound Subject.  Addresses are split with
`email.utils.getaddresses` before display names are decoded ("Doe, John" stays one).
"""
from __future__ import annotations

import binascii
import logging
import email.utils
import re
from datetime import datetime, timezone

from parsers.charsets import clean, decode_bytes

log = logging.getLogger(__name__)

_FOLD = re.compile(r"\r?\n(?=[ \t])")
_ENCODED_WORD = re.compile(r"=\?([^?\s]{1,75})\?([bBqQ])\?([^?]*)\?=")


def as_text(value) -> str:
    """A raw header value as str; raw 8-bit bytes (surrogate-escaped by the stdlib)
    decoded as UTF-8 or guessed."""
    value = str(value)
    if value.isascii() and "\x1b" not in value:
        return value
    data = value.encode("utf-8", "surrogateescape")
    return decode_bytes(data)[0]


def unfold(value: str) -> str:
    return _FOLD.sub("", value).replace("\r", " ").replace("\n", " ").strip()


# Every character str.splitlines() breaks at (also the file/group/record separators).
_LINE_BREAKS = re.compile(r"[\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]+")


def decode_header(value) -> str:
    """Unfolded, RFC 2047-decoded text of a header value, on one line: a line break
    smuggled in through an encoded word must not reach an outbound Subject."""
    try:
        return one_line(decode_words(unfold(as_text(value))))
    except Exception as exc:  # one odd header must not cost the whole message
        log.info("parse: header value not decodable (%r), kept undecoded", exc)
        return one_line(unfold(encode_text(str(value)).decode("utf-8", "replace")))


def one_line(text: str) -> str:
    return clean(_LINE_BREAKS.sub(" ", text).strip())


def decode_words(value: str) -> str:
    """Decode RFC 2047 encoded words anywhere in `value`, leniently.

    Whitespace between two encoded words is dropped; adjacent words in one charset are
    joined as bytes before decoding; unknown charsets fall back like bodies do."""
    if "=?" not in value:
        return value
    out: list[str] = []
    pending: list[tuple[str, bytes]] = []      # consecutive encoded words
    pos = 0
    for match in _ENCODED_WORD.finditer(value):
        between = value[pos:match.start()]
        if between and not (pending and between.isspace()):
            out.append(_flush(pending))
            out.append(between)
        charset, kind, payload = match.groups()
        data = b64decode(payload) if kind in "bB" else _qdecode(payload)
        charset = charset.split("*", 1)[0].lower()
        if pending and pending[-1][0] == charset:
            pending[-1] = (charset, pending[-1][1] + data)
        else:
            pending.append((charset, data))
        pos = match.end()
    out.append(_flush(pending))
    out.append(value[pos:])
    return "".join(out)


def _flush(pending: list[tuple[str, bytes]]) -> str:
    text = "".join(decode_bytes(data, charset)[0] for charset, data in pending)
    pending.clear()
    return text


def _qdecode(payload: str) -> bytes:
    return binascii.a2b_qp(payload.encode("utf-8", "surrogateescape"), header=True)


def addresses(value: str, *, require_at: bool = True) -> list[tuple[str, str]]:
    """(decoded display name, lower-cased addr-spec) pairs of an address header.
    Without any addr-spec containing '@', `require_at=False` keeps bare local parts
    (From: MAILER-DAEMON)."""
    pairs = []
    for name, addr in email.utils.getaddresses([value]):
        addr = clean(decode_words(addr)).strip().lower()
        if addr and not any(ch.isspace() for ch in addr):
            pairs.append((one_line(decode_words(name)), addr))
    with_at = [pair for pair in pairs if "@" in pair[1]]
    return with_at if with_at or require_at else pairs


def parse_date(value: str | None, extracted) -> datetime | None:
    if value:
        try:
            parsed = email.utils.parsedate_to_datetime(value)
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
        except (TypeError, ValueError, IndexError, OverflowError):
            pass
    fallback = getattr(extracted, "date", None) if extracted is not None else None
    if isinstance(fallback, datetime):
        return fallback if fallback.tzinfo else fallback.replace(tzinfo=timezone.utc)
    return None


def encode_text(text: str) -> bytes:
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace")


def b64decode(text: str) -> bytes:
    """Lenient base64: ignore junk characters, repair the padding."""
    try:
        return binascii.a2b_base64(text)           # already skips non-alphabet characters
    except (binascii.Error, ValueError):
        pass
    data = re.sub(r"[^A-Za-z0-9+/]", "", text)
    if len(data) % 4 == 1:
        data = data[:-1]
    try:
        return binascii.a2b_base64(data + "=" * (-len(data) % 4))
    except (binascii.Error, ValueError):
        return b""
