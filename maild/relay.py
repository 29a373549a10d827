"""Hand a composed message to whatever delivers it, and say what happened.

``relay_from_url(url)`` builds the relay named in maild.yaml:

    smtp://[user:pass@]host[:25]           plain SMTP, the local MTA (no STARTTLS)
    smtp+starttls://[user:pass@]host[:587] STARTTLS required
    smtps://[user:pass@]host[:465]         implicit TLS
        query options: ?verify=no (don't check the TLS certificate), ?helo=name
    maildir:/path                          write into a Maildir (development, tests, or
                                           a local mailbox picked up by another program)

User and password are percent-decoded; they never appear in logs, errors or ``repr``.

Every ``deliver()`` returns a ``DeliveryResult`` and raises nothing for a delivery
problem; the outbound sender decides what to do with it:

    SENT    the relay took the message (250), for at least one recipient; recipients
            that were refused are listed in ``refused`` and in ``detail``
    RETRY   try again later (``backoff()``): any 4xx reply, connection refused, timeout,
            disconnect, TLS failure; and a 5xx that is about the *session* rather than
            this message (greeting, EHLO, AUTH): that is our configuration, and once it
            is fixed the message should still go out
    FAILED  the relay refused this message for good: 5xx to MAIL FROM, to every RCPT
            TO, or to DATA, or an address that can't be sent at all

Each delivery opens its own SMTP connection.
"""
from __future__ import annotations

import asyncio
import enum
import ipaddress
import itertools
import logging
import os
import random as _random
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Protocol, runtime_checkable
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib
from aiosmtplib import SMTPStatus

from maild.dirsync import DirectorySync
from maild.redact import redact_url

log = logging.getLogger(__name__)


class DeliveryStatus(enum.StrEnum):
    SENT = "sent"
    RETRY = "retry"
    FAILED = "failed"


SENT = DeliveryStatus.SENT
RETRY = DeliveryStatus.RETRY
FAILED = DeliveryStatus.FAILED


@dataclass(frozen=True)
class DeliveryResult:
    status: DeliveryStatus
    code: int | None                 # the SMTP reply code that decided, if any
    detail: str                      # for logs and for the ticket ("550 5.1.1 no such user")
    refused: tuple[tuple[str, int, str], ...] = ()   # (recipient, code, text) when SENT


@runtime_checkable
class Relay(Protocol):
    async def deliver(self, data: bytes, *, sender: str,
                      recipients: Sequence[str]) -> DeliveryResult: ...


def _reply(code: int, message: str) -> str:
    return f"{code} {' '.join(str(message).split())}"


def _by_code(code: int, detail: str) -> DeliveryResult:
    """5xx → FAILED; 4xx and anything odd (-1: unparseable reply) → RETRY."""
    status = FAILED if 500 <= code < 600 else RETRY
    return DeliveryResult(status, code, detail)


# -- SMTP ------------------------------------------------------------------------------

class SmtpRelay:
    """Delivers through an SMTP server with aiosmtplib; one connection per message."""

    DEFAULT_PORTS = {"none": 25, "starttls": 587, "implicit": 465}

    def __init__(self, host: str, port: int | None = None, *, tls: str = "none",
                 username: str | None = None, password: str | None = None,
                 verify: bool = True, timeout: float = 30,
                 local_hostname: str | None = None) -> None:
        if tls not in self.DEFAULT_PORTS:
            raise ValueError(f"tls must be one of {sorted(self.DEFAULT_PORTS)}, not {tls!r}")
        if bool(username) != bool(password):
            raise ValueError("relay credentials need both a user and a password")
        self.host = host
        self.port = port or self.DEFAULT_PORTS[tls]
        self.tls = tls
        self.username = username
        self._password = password
        self.verify = verify
        self.timeout = timeout
        self.local_hostname = local_hostname
        if username and tls == "none" and not _is_loopback(host):
            log.warning("relay %s: credentials would be sent without TLS; "
                        "use smtps:// or smtp+starttls://", self)

    @classmethod
    def from_url(cls, url: str, *, timeout: float = 30) -> "SmtpRelay":
        parts = urlsplit(url)
        tls = {"smtp": "none", "smtp+starttls": "starttls", "smtps": "implicit"}.get(parts.scheme)
        if tls is None:
            raise ValueError(f"not an SMTP relay URL scheme: {parts.scheme!r}")
        if not parts.hostname:
            raise ValueError(f"relay URL {redact_url(url)} names no host")
        try:
            port = parts.port
        except ValueError:
            raise ValueError(f"relay URL {redact_url(url)} has a bad port") from None
        options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        unknown = set(options) - {"verify", "helo"}
        if unknown:
            raise ValueError(f"relay URL {redact_url(url)}: unknown option(s) {sorted(unknown)}")
        verify = options.get("verify", "yes").lower() not in ("no", "false", "0", "off")
        return cls(parts.hostname, port, tls=tls,
                   username=unquote(parts.username) if parts.username else None,
                   password=unquote(parts.password) if parts.password else None,
                   verify=verify, timeout=timeout, local_hostname=options.get("helo"))

    def __repr__(self) -> str:
        scheme = {"none": "smtp", "starttls": "smtp+starttls", "implicit": "smtps"}[self.tls]
        user = f"{self.username}@" if self.username else ""
        return f"SmtpRelay({scheme}://{user}{self.host}:{self.port})"

    __str__ = __repr__

    async def deliver(self, data: bytes, *, sender: str,
                      recipients: Sequence[str]) -> DeliveryResult:
        where = f"{self.host}:{self.port}"
        if not recipients:
            return DeliveryResult(FAILED, None, "no recipients")
        client = aiosmtplib.SMTP(
            hostname=self.host, port=self.port, timeout=self.timeout,
            use_tls=self.tls == "implicit", start_tls=self.tls == "starttls",
            validate_certs=self.verify, username=self.username, password=self._password,
            local_hostname=self.local_hostname)
        try:
            try:
                await client.connect()
            except aiosmtplib.SMTPResponseException as exc:     # greeting, EHLO, AUTH
                return DeliveryResult(RETRY, exc.code,
                                      f"relay {where} refused the session: "
                                      f"{_reply(exc.code, exc.message)}")
            except (aiosmtplib.SMTPException, OSError) as exc:
                return DeliveryResult(RETRY, None, f"relay {where}: {_describe(exc)}")
            return await self._send(client, data, sender, list(recipients), where)
        finally:
            await _close(client)

    async def _send(self, client: aiosmtplib.SMTP, data: bytes, sender: str,
                    recipients: list[str], where: str) -> DeliveryResult:
        try:
            refused, reply = await client.sendmail(sender, recipients, data)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            return _all_refused(exc.recipients)
        except (aiosmtplib.SMTPSenderRefused, aiosmtplib.SMTPDataError) as exc:
            return _by_code(exc.code, _reply(exc.code, exc.message))
        except aiosmtplib.SMTPResponseException as exc:         # EHLO again, odd replies
            return DeliveryResult(RETRY, exc.code,
                                  f"relay {where}: {_reply(exc.code, exc.message)}")
        except ValueError as exc:                               # an address aiosmtplib refuses
            return DeliveryResult(FAILED, None, f"cannot send: {exc}")
        except (aiosmtplib.SMTPException, OSError) as exc:
            return DeliveryResult(RETRY, None, f"relay {where}: {_describe(exc)}")
        accepted = len(recipients) - len(refused)
        detail = _reply(SMTPStatus.completed, reply)
        listed = tuple((rcpt, resp.code, " ".join(resp.message.split()))
                       for rcpt, resp in refused.items())
        if listed:
            detail = (f"accepted for {accepted} of {len(recipients)} recipients ({detail}); "
                      "refused: " + "; ".join(f"{r}: {c} {m}" for r, c, m in listed))
        return DeliveryResult(SENT, int(SMTPStatus.completed), detail, listed)


def _all_refused(errors: list[aiosmtplib.SMTPRecipientRefused]) -> DeliveryResult:
    detail = "all recipients refused: " + "; ".join(
        f"{e.recipient}: {_reply(e.code, e.message)}" for e in errors)
    temporary = [e for e in errors if not 500 <= e.code < 600]
    deciding = temporary[0] if temporary else errors[0]
    return _by_code(deciding.code, detail)


def _describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def _close(client: aiosmtplib.SMTP) -> None:
    """QUIT politely; a failure here changes nothing about the delivery."""
    if not client.is_connected:
        return
    try:
        await client.quit()
    except (aiosmtplib.SMTPException, OSError):
        client.close()
    except BaseException:
        client.close()
        raise


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# -- Maildir ---------------------------------------------------------------------------

class MaildirRelay:
    """Delivers into a Maildir (cr.yp.to/proto/maildir.html): write ``tmp/<name>``,
    fsync, rename to ``new/<name>``, fsync ``new/`` (one fsync for the deliveries that
    renamed meanwhile: ``maild.dirsync``). The file holds exactly the bytes
    given (CRLF line ends from ``compose.to_bytes``); nothing is prepended. The blocking
    work runs in the default executor, so the event loop never waits on fsync."""

    _counter = itertools.count(1)

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._ready = False
        self._new_synced = DirectorySync(self.path / "new")   # parallel deliveries share fsyncs

    @classmethod
    def from_url(cls, url: str) -> "MaildirRelay":
        parts = urlsplit(url)
        if parts.scheme != "maildir" or parts.netloc or not parts.path:
            raise ValueError(f"not a Maildir URL: {redact_url(url)!r} (use maildir:/path/to/Maildir)")
        return cls(Path(unquote(parts.path)))

    def __repr__(self) -> str:
        return f"MaildirRelay(maildir:{self.path})"

    async def deliver(self, data: bytes, *, sender: str,
                      recipients: Sequence[str]) -> DeliveryResult:
        loop = asyncio.get_running_loop()
        try:
            name = await loop.run_in_executor(None, self._write, data)
        except OSError as exc:
            return DeliveryResult(RETRY, None, f"maildir {self.path}: {_describe(exc)}")
        return DeliveryResult(SENT, None, f"delivered to {self.path / 'new' / name}")

    def _unique_name(self) -> str:
        now = time.time()
        host = socket.gethostname().replace("/", r"\057").replace(":", r"\072")
        return (f"{int(now)}.M{int(now % 1 * 1_000_000)}P{os.getpid()}"
                f"Q{next(self._counter)}.{host}")

    def _write(self, data: bytes) -> str:
        if not self._ready:
            for sub in ("tmp", "new", "cur"):
                (self.path / sub).mkdir(mode=0o700, parents=True, exist_ok=True)
            self._ready = True
        name = self._unique_name()
        tmp, new = self.path / "tmp" / name, self.path / "new" / name
        try:
            with open(tmp, "xb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.rename(tmp, new)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self._new_synced.after_change()
        return name


# -- construction and retry ------------------------------------------------------------

def relay_from_url(url: str, *, timeout: float = 30) -> Relay:
    """The relay a URL names; ValueError (without the password) when it names none."""
    scheme = urlsplit(url).scheme.lower()
    if scheme in ("smtp", "smtps", "smtp+starttls"):
        return SmtpRelay.from_url(url, timeout=timeout)
    if scheme == "maildir":
        return MaildirRelay.from_url(url)
    raise ValueError(f"unsupported relay URL {redact_url(url)}: use smtp://, smtp+starttls://, "
                     "smtps:// or maildir:/path")


def backoff(attempts: int, *, base: float = 60, cap: float = 3600, jitter: float = 0.25,
            rand: Callable[[], float] = _random.random) -> timedelta:
    """Wait before the next try after ``attempts`` failed ones: base, 2·base, 4·base, …
    up to ``cap``; then up to ``jitter`` of it taken off at random, so that mails
    failing together don't all come back together. Never more than ``cap``."""
    delay = min(cap, base * 2 ** min(max(attempts, 1) - 1, 62))
    return timedelta(seconds=delay * (1 - jitter * rand()))
