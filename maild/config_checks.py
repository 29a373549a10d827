"""Value checks for maild.yaml: each takes the raw value and returns it or raises
ValueError with the message the sysadmin reads (the loader adds file:line:column)."""
from __future__ import annotations

import ipaddress
import logging
import re
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator

from maild.redact import _ENCODE_USERINFO, _scrub, _unencoded_userinfo, redact_url

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


def parse_listen(spec: str) -> tuple[str | None, int] | Path:
    """'host:port' -> (host, port), brackets removed from IPv6; '*:port' -> (None, port),
    every local address; 'unix:/path' -> Path. Agrees with maild/listen.py.

    Raises ValueError with a message fit for the user.
    """
    if spec.startswith("unix:"):
        if not spec[len("unix:"):]:
            raise ValueError("unix: needs a socket path, e.g. unix:/run/maild/lmtp.sock")
        return Path(spec[len("unix:"):])
    match = re.fullmatch(r"\[([^\]]*)\]:(\d+)|([^:\[\]]*):(\d+)", spec)
    if not match:
        if spec.count(":") > 1 and "[" not in spec:
            raise ValueError(f"put an IPv6 address in brackets, e.g. [::1]:2424; got {spec!r}")
        raise ValueError(f"expected host:port or unix:/path, got {spec!r}")
    host, port = (match[1], match[2]) if match[2] else (match[3], match[4])
    if int(port) > 65535:
        raise ValueError(f"port {port} is out of range 0-65535")
    if match[2]:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"not an IPv6 address in brackets: [{host}]") from None
    elif host == "*":
        return None, int(port)
    elif not _is_hostname(host):
        raise ValueError(f"not a host name or IPv4 address: {host!r} (in {spec!r})")
    return host, int(port)



_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def _is_hostname(host: str) -> bool:
    if re.fullmatch(r"[\d.]+", host):
        try:
            ipaddress.IPv4Address(host)
            return True
        except ValueError:
            return False
    return 0 < len(host) <= 253 and all(_LABEL.fullmatch(label) for label in host.split("."))


def _check_hostname(value: str) -> str:
    if not _is_hostname(value):
        raise ValueError(f"not a host name: {value!r}")
    return value


def _check_listen(value: str) -> str:
    parse_listen(value)
    return value


def _check_path(value: str) -> str:
    if not value.strip():
        raise ValueError("expected a path, got an empty string")
    return value


def _sqlite_path(rest: str) -> str:
    """The path part of 'sqlite:REST', still unresolved."""
    path, query, _ = rest.partition("?")
    if query:
        raise ValueError("a sqlite URL takes no ?options; maild sets the SQLite options itself")
    if path.startswith("//"):
        authority, _, tail = path[2:].partition("/")
        if authority:
            raise ValueError(f"a sqlite URL names no host ({redact_url(authority)!r}); write "
                             "sqlite:///absolute/path.db or sqlite:relative/path.db")
        path = "/" + tail.lstrip("/")
    if path.strip("/") == "":
        raise ValueError("the sqlite URL has no file: write sqlite:///var/lib/maild/maild.db")
    if "#" in path:
        raise ValueError("a sqlite path may not contain '#'")
    return path


def _check_database(value: str) -> str:
    scheme, colon, rest = value.partition(":")
    scheme = scheme.lower()
    if not colon or scheme not in ("sqlite", "postgresql", "postgres"):
        raise ValueError(f"unsupported database {redact_url(value)!r}; use "
                         "sqlite:///path/to/maild.db or postgresql://user@host/dbname")
    if scheme == "sqlite":
        _sqlite_path(rest)
        return value
    if _unencoded_userinfo(value):
        raise ValueError(f"bad database URL {redact_url(value)!r}: {_ENCODE_USERINFO}")
    try:
        url = urlsplit(value)
        url.port                                   # raises ValueError on a bad port
    except ValueError as exc:
        raise ValueError(f"bad database URL {redact_url(value)!r}: {_url_problem(exc, value)}"
                         ) from None
    if not url.path.strip("/"):
        raise ValueError(f"the database URL names no database: {scheme}://user@host/dbname")
    return value


def _url_problem(exc: ValueError, url: str) -> str:
    """What urllib's complaint about `url` means, without quoting any of it."""
    if "port" in str(exc).lower():
        return "the port must be a number from 0 to 65535"
    return _scrub(str(exc), url)


def _check_relay(value: str) -> str:
    """Accept exactly what `maild.relay.relay_from_url` accepts, by asking it. Building a
    relay opens no connection; the relay never sees the password (a stand-in of the same
    emptiness takes its place), and its construction-time warnings are silenced here: the
    daemon logs them when it builds the real relay."""
    from maild.relay import relay_from_url        # here: importing config stays light

    if _unencoded_userinfo(value):
        raise ValueError(f"bad relay URL {redact_url(value)!r}: {_ENCODE_USERINFO}")
    try:
        parts = urlsplit(value)
    except ValueError as exc:
        raise ValueError(f"bad relay URL {redact_url(value)!r}: {_url_problem(exc, value)}"
                         ) from None
    probe = value
    if parts.password is not None:
        user = parts.netloc.rpartition("@")[0].partition(":")[0]
        host = parts.netloc.rpartition("@")[2]
        stand_in = "***" if parts.password else ""
        probe = parts._replace(netloc=f"{user}:{stand_in}@{host}").geturl()
    relay_log = logging.getLogger("maild.relay")
    silence = lambda record: False                # noqa: E731 - a filter that drops all
    relay_log.addFilter(silence)
    try:
        relay_from_url(probe)
    except ValueError as exc:
        raise ValueError(_scrub(str(exc), value)) from None
    finally:
        relay_log.removeFilter(silence)
    return value


def _check_token_prefix(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}", value):
        raise ValueError("use up to 32 letters, digits, '.', '_' or '-' (it appears in "
                         f"subjects as [Prefix #1042]); got {value!r}")
    return value


def _check_name(value: str) -> str:
    if not value.strip() or any(c in value for c in "\r\n"):
        raise ValueError("expected a one-line, non-empty name")
    return value


TRUST_POLICIES = ("authentication-results", "dkim", "none")
UNKNOWN_SENDER_POLICIES = ("unverified", "new_ticket")


def _check_trust_policy(value: str) -> str:
    if value not in TRUST_POLICIES:
        raise ValueError(f"unknown trust policy {value!r}; use one of "
                         f"{', '.join(TRUST_POLICIES)}")
    return value


def _check_unknown_sender(value: str) -> str:
    if value not in UNKNOWN_SENDER_POLICIES:
        raise ValueError(f"expected unverified (append to the ticket, flagged) or new_ticket, "
                         f"got {value!r}")
    return value


# RFC 8601 authserv-id: a MIME token (RFC 2045), in practice the MTA's host name
_TOKEN = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+")


def _check_authserv_id(value: str) -> str:
    if not _TOKEN.fullmatch(value):
        raise ValueError("expected the authserv-id your MTA writes first in its "
                         f"Authentication-Results header (like mx.example.com), got {value!r}")
    return value


_SIZE = re.compile(r"(\d+)\s*(?:([kmg])i?b?|b)?", re.IGNORECASE)
_UNIT = {None: 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}


def _parse_size(value: Any) -> Any:
    """'25MB' / '25 MiB' / '512k' / '1G' / '100' -> bytes; other values pass unchanged."""
    if not isinstance(value, str):
        return value
    match = _SIZE.fullmatch(value.strip())
    if not match:
        raise ValueError(f"expected a size in bytes or like '25MB', got {value!r}")
    return int(match[1]) * _UNIT[match[2] and match[2].lower()]


def _check_positive(value: int) -> int:
    if value <= 0:
        raise ValueError(f"expected a size above 0, got {value}")
    return value


def _check_log_level(value: str) -> str:
    if value.lower() not in LOG_LEVELS:
        raise ValueError(f"unknown log level {value!r}; use one of {', '.join(LOG_LEVELS)}")
    return value.lower()


PathText = Annotated[str, AfterValidator(_check_path)]
ListenSpec = Annotated[str, AfterValidator(_check_listen)]
Size = Annotated[int, BeforeValidator(_parse_size), AfterValidator(_check_positive)]
