"""URLs as they may appear in messages and logs: never with the password.

    redact_url("postgresql://maild:s3cret@db/maild")  ->  "postgresql://maild:***@db/maild"

Everything up to the *last* '@' of the authority counts as user:password, so a password
with an unencoded '/', '?', '#' or '@' is still hidden whole; `?password=` values too.
"""
from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_SCHEME_SLASH = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:/+")
_QUERY_PASSWORD = re.compile(r"([?&;](?:password|passwd|pass|pwd|sslpassword)=)[^&;#]*",
                             re.IGNORECASE)


def redact_url(url: str) -> str:
    """`url` fit for messages and logs: the password of its ``user:password@`` part is
    replaced by ``***`` (``smtp://user:***@host:587``), and so is a ``?password=`` value.

    Errs on the safe side and never raises: the user:password part ends at the *last* '@',
    so a password with an unencoded '/', '?', '#' or '@' is still hidden whole, and text
    that only looks like ``user:password@host`` (no scheme) is redacted as well.
    """
    userinfo = _userinfo(url)
    if userinfo:
        head, user, _, tail = userinfo
        url = f"{head}{user}:***@{tail}"
    return _QUERY_PASSWORD.sub(r"\1***", url)


def _userinfo(url: str) -> tuple[str, str, str, str] | None:
    """(text before the user, user, password, text after the '@') when `url` seems to hold
    a user:password@ part (see `redact_url`), else None."""
    head, at, tail = url.rpartition("@")
    if not at:
        return None
    scheme = _SCHEME_SLASH.match(head)           # 'scheme:/' or 'scheme://': a path or a host
    start = scheme.end() if scheme else 0        # 'x:y@z': x may be the user, not a scheme
    user, colon, password = head[start:].partition(":")
    return (head[:start], user, password, tail) if colon else None


def _secrets(url: str) -> list[str]:
    """Every spelling of the passwords in `url` that a message could contain, longest first."""
    found = set()
    userinfo = _userinfo(url)
    if userinfo:
        found.add(userinfo[2])
    try:
        found.add(urlsplit(url).password or "")
    except ValueError:
        pass
    found.update(m[0][len(m[1]):] for m in _QUERY_PASSWORD.finditer(url))
    found |= {unquote(secret) for secret in found}
    found.discard("")
    return sorted(found, key=len, reverse=True)


def _scrub(text: str, url: str) -> str:
    """`text` (a message about `url`) with `url` shown redacted and no password left in it."""
    text = text.replace(url, redact_url(url))
    for secret in _secrets(url):
        text = text.replace(secret, "***")
    return text


def _unencoded_userinfo(url: str) -> bool:
    """True when a user:password part seems to hold an unencoded '/', '?' or '#': the
    host part (up to the first of those) has a ':' but no '@', and an '@' comes later
    (``smtp://user:pa/ss@host`` parses as host 'user', port 'pa')."""
    scheme = _SCHEME.match(url)
    if not scheme:
        return False
    rest = url[scheme.end():]
    netloc = re.match(r"[^/?#]*", rest)[0]
    return ":" in netloc and "@" not in netloc and "@" in rest


_ENCODE_USERINFO = ("percent-encode '/', '?' and '#' in the user name and password "
                    "(as %2F, %3F and %23)")
