"""Message-IDs as the threading code compares them.

    normalize_message_id("<Abc.1@Example.COM>")  -> "Abc.1@example.com"
    parse_message_ids(references_header)          -> ("a@x", "b@y", ...)
"""
from __future__ import annotations

import re

from parsers.headers import unfold

_COMMENT = re.compile(r"\([^()]*\)")
_BRACKETED = re.compile(r"<([^<>]*)>")
_BAD_ID_CHARS = re.compile(r"[\s<>()\x00-\x1f\x7f]")


def normalize_message_id(value: str) -> str | None:
    """'<Abc.1@Example.COM>' -> 'Abc.1@example.com'; None for empty or garbage.

    Comments and whitespace are dropped, the first bracketed id wins, the part after the
    last '@' is lower-cased (the local part is case-sensitive)."""
    value = _strip_comments(str(value or ""))
    bracketed = _BRACKETED.search(value)
    if bracketed:
        return _normalize_id(bracketed.group(1))       # whitespace inside: folding, dropped
    value = value.strip()
    return None if re.search(r"\s", value) else _normalize_id(value)


def parse_message_ids(header_value: str) -> tuple[str, ...]:
    """All Message-IDs in an In-Reply-To or References value, in order, de-duplicated.

    Bracketed ids win; without brackets, whitespace/comma-separated words containing
    '@' are taken (so "Your message of <date>" prose yields nothing)."""
    value = _strip_comments(unfold(str(header_value or "")))
    found = [_normalize_id(m) for m in _BRACKETED.findall(value)]
    if not found:
        found = [_normalize_id(word) for word in re.split(r"[\s,]+", value) if "@" in word]
    return tuple(dict.fromkeys(i for i in found if i))


def _strip_comments(value: str) -> str:
    for _ in range(10):                            # nested comments, bounded
        stripped = _COMMENT.sub(" ", value)
        if stripped == value:
            break
        value = stripped
    return value


def _normalize_id(value: str) -> str | None:
    value = re.sub(r"\s+", "", value).strip("<>")
    if not value or len(value) > 995 or _BAD_ID_CHARS.search(value) or value in ("@",):
        return None
    local, at, domain = value.rpartition("@")
    if at and not (local and domain):
        return None
    return f"{local}@{domain.lower()}" if at else value
