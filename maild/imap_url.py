"""`imap:` account URLs and `after:` values of maild.yaml, parsed into values.

    parse_imap_url("imaps://support%40example.com@imap.example.com/INBOX")
      -> ImapUrl(tls=True, host="imap.example.com", port=993,
                 user="support@example.com", folder="INBOX")
    parse_after("move:Processed") -> ("move", "Processed")

User and folder are percent-decoded (``%40`` is '@', ``%20`` a space, UTF-8 for letters
outside ASCII: ``Eing%C3%A4nge``); the folder is the path without its leading '/', INBOX
when there is none. The password never goes in the URL (a URL is shown in logs and error
messages): it comes from ``password_file`` or ``password_env``, and a URL holding one is
refused without quoting it. ``imap://`` (no TLS) is refused unless the host is loopback
(127.0.0.0/8, ::1, localhost): aioimaplib has no STARTTLS, so LOGIN would carry the
password across the network in clear text. Port 0 is refused, not read as the default.
Every ValueError message is fit for the sysadmin and never shows a password.

`folder_key` is a folder name as the server compares it: INBOX in any case is INBOX (RFC
3501 §5.1), every other name is case-sensitive and compared as sent (modified UTF-7), so
``move:inbox`` on INBOX is "the folder read" and ``/inbox`` and ``/INBOX`` one folder.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from maild import imap_utf7
from maild.redact import redact_url

SCHEMES = {"imap": (False, 143), "imaps": (True, 993)}
AFTER_ACTIONS = ("keep", "seen", "delete", "move:<folder>")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True)
class ImapUrl:
    tls: bool
    host: str
    port: int
    user: str
    folder: str


def parse_imap_url(value: str) -> ImapUrl:
    """`value` as an IMAP account URL, or ValueError saying what is wrong."""
    scheme = value.partition(":")[0].lower()
    if scheme not in SCHEMES or not value[len(scheme):].startswith("://"):
        raise ValueError(f"expected imaps://user@host[:port]/FOLDER (or imap:// without "
                         f"TLS), got {redact_url(value)!r}")
    try:
        url = urlsplit(value)
        port = url.port
    except ValueError:
        port = 0
    if port == 0 and _has_port(url.netloc):
        raise ValueError(f"bad IMAP URL {redact_url(value)!r}: the port must be a number "
                         "from 1 to 65535")
    userinfo, at, _ = url.netloc.rpartition("@")
    if ":" in userinfo:
        raise ValueError(f"the IMAP URL {redact_url(value)!r} holds a password: remove it and "
                         "give password_file or password_env instead")
    if not at or not userinfo:
        raise ValueError(f"the IMAP URL {value!r} names no user: write "
                         "imaps://USER@host/FOLDER (an '@' in the user as %40)")
    if not url.hostname:
        raise ValueError(f"the IMAP URL {value!r} names no host")
    if url.query or url.fragment:
        raise ValueError(f"the IMAP URL {value!r} takes no ?options or #fragment "
                         "(a '?' or '#' in the folder name: write %3F or %23)")
    tls, default_port = SCHEMES[scheme]
    if not tls and not is_loopback(url.hostname):
        raise ValueError(f"imap:// to {url.hostname} would send the password in clear text "
                         "(maild has no STARTTLS): write imaps:// (implicit TLS, port 993); "
                         "imap:// is for a loopback host only (127.0.0.1, ::1, localhost)")
    folder = unquote(url.path.lstrip("/")) or "INBOX"
    for what, text in (("user", unquote(userinfo)), ("folder", folder)):
        if any(c in text for c in "\r\n\0"):
            raise ValueError(f"the IMAP URL's {what} contains a line break or NUL")
    return ImapUrl(tls=tls, host=url.hostname, port=port or default_port,
                   user=unquote(userinfo), folder=folder)


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or localhost."""
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def folder_key(name: str) -> str:
    """`name` as the server compares folder names: INBOX case-insensitively, the rest as
    sent (modified UTF-7)."""
    return "INBOX" if name.isascii() and name.upper() == "INBOX" else imap_utf7.encode(name)


def _has_port(netloc: str) -> bool:
    """A ':PORT' after the host (an IPv6 literal's colons are not one)."""
    host = netloc.rpartition("@")[2]
    return ":" in host.rpartition("]")[2]


def parse_after(value: str) -> tuple[str, str | None]:
    """'keep' | 'seen' | 'delete' | 'move:FOLDER' -> (action, folder or None)."""
    action, colon, folder = value.partition(":")
    if action == "move" and colon:
        if not folder.strip() or any(c in folder for c in "\r\n\0"):
            raise ValueError("move: needs a folder name, e.g. move:Processed")
        return "move", folder
    if not colon and action in ("keep", "seen", "delete"):
        return action, None
    raise ValueError(f"expected one of {', '.join(AFTER_ACTIONS)}, got {value!r}")


def check_account_name(value: str) -> str:
    if not _NAME.fullmatch(value):
        raise ValueError("use up to 64 letters, digits, '.', '_' or '-' (it names the "
                         f"account in logs and metrics), got {value!r}")
    return value
