"""What the fuzz targets check of a parse: the exceptions it may raise, the values it must
return (storable in PostgreSQL, single-line where a header goes), and the memory it takes
(`parse_peak`)."""
from __future__ import annotations

import dataclasses
import tracemalloc
from datetime import datetime

from parsers import message
from parsers.message import Attachment, ParsedMail, normalize_message_id, parse

LINE_BREAKS = frozenset("\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")


def allowed_exceptions() -> tuple[type[Exception], ...]:
    """The refusals `parsers.message` exports: `UnparseableMessage`, and any other
    exception class in its `__all__` named ...Message or ...Refused (a size limit)."""
    found = []
    for name in message.__all__:
        value = getattr(message, name, None)
        if (isinstance(value, type) and issubclass(value, Exception)
                and name.endswith(("Message", "Refused"))):
            found.append(value)
    return tuple(found)


ALLOWED = allowed_exceptions()


def storable(value: str) -> bool:
    """No NUL and no lone surrogate: PostgreSQL text takes it."""
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def single_line(value: str) -> bool:
    return not LINE_BREAKS.intersection(value)


def parse_or_refuse(raw: bytes) -> ParsedMail | None:
    """parse(raw), or None when it refuses the input with one of `ALLOWED` and a reason;
    any other exception propagates and fails the test."""
    try:
        return parse(raw)
    except ALLOWED as refusal:
        assert str(refusal).strip(), f"{type(refusal).__name__} without a reason"
        return None


def problems(mail: ParsedMail) -> list[str]:
    """Everything wrong with a ParsedMail's values; [] when it is fit to store and send."""
    found = []
    strings: list[tuple[str, str, bool]] = []          # (where, value, must be one line)
    for name in ("subject", "from_address", "from_name"):
        strings.append((name, getattr(mail, name), True))
    for name in ("text", "html", "visible_text"):
        strings.append((name, getattr(mail, name), False))
    for name in ("to", "cc", "reply_to", "in_reply_to", "references"):
        strings += [(name, value, True) for value in getattr(mail, name)]
    strings += [("defects", value, False) for value in mail.defects]
    for key, value in mail.headers:
        strings += [("header name", key, True), (f"header {key!r}", value, True)]
    for attachment in mail.attachments:
        if not isinstance(attachment, Attachment) or not isinstance(attachment.data, bytes):
            found.append(f"attachment {attachment!r}")
            continue
        strings += [("attachment filename", attachment.filename, True),
                    ("attachment content type", attachment.content_type, True)]
    if mail.message_id is not None:
        strings.append(("message_id", mail.message_id, True))
    for where, value, one_line in strings:
        if not isinstance(value, str):
            found.append(f"{where} is {type(value).__name__}, not str")
        elif not storable(value):
            found.append(f"{where} not storable: {value[:80]!r}")
        elif one_line and not single_line(value):
            found.append(f"{where} spans lines: {value[:80]!r}")
    for mid in (mail.message_id, *mail.in_reply_to, *mail.references):
        if isinstance(mid, str) and (not mid or any(ch.isspace() for ch in mid)
                                     or normalize_message_id(mid) != mid):
            found.append(f"Message-ID not normalized: {mid[:80]!r}")
    if mail.date is not None and (not isinstance(mail.date, datetime) or mail.date.tzinfo is None):
        found.append(f"date {mail.date!r} not an aware datetime")
    if len(mail.defects) > 50:
        found.append(f"{len(mail.defects)} defects (at most 50)")
    for field in dataclasses.fields(mail):
        if not isinstance(getattr(mail, field.name), (str, tuple, type(None), datetime)):
            found.append(f"{field.name} is {type(getattr(mail, field.name)).__name__}")
    return found


def parse_peak(raw: bytes) -> int:
    """Bytes allocated at the peak of parse(raw), after one untraced parse."""
    try:
        parse(raw)
    except ALLOWED:
        pass
    tracemalloc.start()
    try:
        parse(raw)
    except ALLOWED:
        pass
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak
