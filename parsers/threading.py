"""Threading keys: which ticket does a mail answer?

    find_token("Re: [Acme #1042] Printer broken", "Acme")   # 1042
    add_token("Printer broken", "Acme", 1042)                # '[Acme #1042] Printer broken'
    make_message_id(1042, "help.example.com", "3f9a1c")
                                          # 'maild.1042.3f9a1c@help.example.com'
    ticket_from_message_id("maild.1042.3f9a1c@help.example.com", "help.example.com")
                                          # 1042
    reply_candidates(mail)                # In-Reply-To ids, then References newest first

The subject token is `[<prefix> #<number>]`, found anywhere in the subject (after any
Re:/AW:/SV:/Fwd:), with the prefix matched case-insensitively and spaces tolerated
(`[acme#12]`, `[ Acme  # 12 ]`).  A token with another prefix is not ours.

Our outbound Message-IDs carry the ticket number, so a reply still finds its ticket when
the stored row is gone.  That is a fallback only: anyone can write such an id into
In-Reply-To, so the sender check (DESIGN section 4) applies to whatever it finds, and
`unique` should be unguessable (e.g. `secrets.token_hex(8)`).

(This module is `parsers.threading`; it does not and must not import the stdlib
`threading`.)
"""
from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING

from parsers.message import normalize_message_id

if TYPE_CHECKING:
    from parsers.message import ParsedMail

_MAX_DIGITS = 18                      # fits a 64-bit column; longer numbers are not ours
_ID_LOCAL = re.compile(r"maild\.(\d{1,18})\.[^@]+")
_UNIQUE = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+")


@functools.lru_cache(maxsize=16)
def _token_regex(prefix: str) -> re.Pattern[str]:
    words = r"\s+".join(re.escape(word) for word in prefix.split())
    return re.compile(rf"\[\s*{words}\s*#\s*(\d{{1,{_MAX_DIGITS}}})\s*\]", re.I)


def find_token(subject: str, prefix: str) -> int | None:
    """The ticket number in our `[<prefix> #<n>]` token, or None."""
    if not subject or not prefix.strip():
        return None
    match = _token_regex(prefix).search(subject)
    return int(match.group(1)) if match else None


def add_token(subject: str, prefix: str, number: int) -> str:
    """`subject` with our token in front; an existing token of ours is replaced (a
    merged ticket gets its new number), everything else is left as it was."""
    token = f"[{prefix.strip()} #{int(number)}]"
    subject = subject or ""
    pattern = _token_regex(prefix)
    if pattern.search(subject):
        return pattern.sub(lambda _: token, subject, count=1)
    return f"{token} {subject}".rstrip()


def make_message_id(ticket: int, hostname: str, unique: str) -> str:
    """Normalized Message-ID (no angle brackets) for an outbound mail about `ticket`.
    ValueError for anything `ticket_from_message_id` could not read back: an unusable
    hostname or unique part, a negative ticket or one of more than 18 digits."""
    host = hostname.strip().lower()
    if not host or not _UNIQUE.fullmatch(host) or not _UNIQUE.fullmatch(unique or ""):
        raise ValueError(f"unusable hostname or unique part: {hostname!r}, {unique!r}")
    if not 0 <= int(ticket) < 10**_MAX_DIGITS:
        raise ValueError(f"ticket number out of range: {ticket!r}")
    return f"maild.{int(ticket)}.{unique}@{host}"


def ticket_from_message_id(message_id: str, hostname: str) -> int | None:
    """The ticket number in one of *our* Message-IDs (made for `hostname`), else None."""
    normalized = normalize_message_id(message_id or "")
    if not normalized or "@" not in normalized:
        return None
    local, _, domain = normalized.rpartition("@")
    match = _ID_LOCAL.fullmatch(local)
    if domain != hostname.strip().lower() or not match:
        return None
    return int(match.group(1))


def reply_candidates(mail: ParsedMail) -> tuple[str, ...]:
    """Message-IDs this mail answers, best first: In-Reply-To, then References newest
    first; de-duplicated."""
    return tuple(dict.fromkeys((*mail.in_reply_to, *reversed(mail.references))))
