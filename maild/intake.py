"""Network intake: the aiosmtpd handler behind both the LMTP and the SMTP listener.

The handler only checks and hands over (DESIGN §1 promise 1, §2):

- RCPT TO: an address that `accepts()` refuses gets `550 5.1.1`; accepted ones are kept,
  lower-cased, in RCPT order.
- After DATA: the raw bytes exactly as received (`envelope.original_content`; the server
  runs with `decode_data=False`) go to `await submit(raw, Envelope(...))`, which makes them
  durable and returns a spool id. Only then do we answer `250`. Any exception from submit
  answers `451 4.3.0` so the sender retries. LMTP answers once per accepted recipient, in
  RCPT order (RFC 2033 §4.2); SMTP answers once.
- `drain()` (on SIGTERM): new sessions and new commands get `421 4.3.2` and the
  connection closes; a session between transactions is told so at once; a message
  already past DATA is finished (see `IntakeProtocol`).  `sessions` holds the open
  connections, so the daemon can wait for the ones still finishing (`sessions_closed`).

Nothing here blocks the event loop: no database, no fsync, no MIME parsing.
No Received: header is added (promise 7: the raw bytes are kept byte for byte); the
client address goes into `Envelope.peer` instead.
"""
from __future__ import annotations

import collections
import logging
import re
import asyncio
from typing import Any, Awaitable, Callable

from maild import logs
from maild.envelope import Envelope

log = logging.getLogger(__name__)

Submit = Callable[[bytes, Envelope], Awaitable[int]]
Accepts = Callable[[str], bool]

PROTOCOLS = ("lmtp", "smtp")
CRLF = "\r\n"

OK = "250 2.0.0 Ok: queued as {id}"
OK_RCPT = "250 2.1.5 Ok"
ERR_USER_UNKNOWN = "550 5.1.1 <{addr}>: Recipient address rejected: unknown support address"
ERR_TEMP = "451 4.3.0 Temporary failure, please retry"
ERR_SHUTDOWN = "421 4.3.2 maild shutting down"
# Not ours, aiosmtpd's (data_size_limit); named here so tests and docs can refer to them.
ERR_TOO_BIG = "552 Error: Too much mail data"                      # after DATA
ERR_TOO_BIG_DECLARED = "552 Error: message size exceeds fixed maximum message size"  # MAIL SIZE=

_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_SIMPLE_PATH = re.compile(rf"[ \t]*<({_ATOM}(?:\.{_ATOM})*@{_LABEL}(?:\.{_LABEL})*)>[ \t]*([^(]*)\Z",
                          re.DOTALL)
_MESSAGE_ID = re.compile(rb"^message-id:[ \t]*([^\r\n]*)", re.IGNORECASE | re.MULTILINE)


class IntakeHandler:
    """aiosmtpd handler: check recipients, submit the message, answer only when durable."""

    def __init__(self, *, submit: Submit, accepts: Accepts, protocol: str) -> None:
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, not {protocol!r}")
        self._submit = submit
        self._accepts = accepts
        self.protocol = protocol
        self.draining = False
        self.sessions: set[IntakeProtocol] = set()     # open connections

    def drain(self) -> None:
        """Refuse from now on, and hang up (421) on every session between transactions."""
        self.draining = True
        for session in list(self.sessions):
            session.hang_up_if_idle()

    async def sessions_closed(self, timeout: float) -> bool:
        """Wait (at most `timeout` s) until every session has ended; False if some remain."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.sessions and loop.time() < deadline:
            await asyncio.sleep(0.05)
        return not self.sessions

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any,
                          address: str, rcpt_options: list[str]) -> str:
        address = address.lower()
        if not self._accepts(address):
            log.info("%s refused recipient %s", _peer(session.peer), address)
            return ERR_USER_UNKNOWN.format(addr=_printable(address))
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return OK_RCPT

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw: bytes = envelope.original_content
        # aiosmtpd keeps the null reverse path as the literal '<>'; our Envelope uses ''.
        mail_from = "" if envelope.mail_from == "<>" else envelope.mail_from
        env = Envelope(mail_from=mail_from,
                       rcpt_tos=tuple(dict.fromkeys(envelope.rcpt_tos)),  # once each, in order
                       received_via=self.protocol, peer=_peer(session.peer))
        message_id = message_id_of(raw)
        try:
            spool_id = await self._submit(raw, env)
        except Exception:
            log.exception("%s message-id=%s from <%s> for %s: spool failed, answered 451",
                          env.peer, message_id, mail_from, ",".join(env.rcpt_tos),
                          extra=logs.about(message_id))
            return self._per_recipient(ERR_TEMP, envelope)
        log.info("%s message-id=%s from <%s> for %s: %d bytes queued as spool item %s",
                 env.peer, message_id, mail_from, ",".join(env.rcpt_tos), len(raw), spool_id,
                 extra=logs.about(message_id, spool_id=spool_id))
        return self._per_recipient(OK.format(id=spool_id), envelope)

    async def handle_exception(self, error: Exception) -> str:
        # Replaces aiosmtpd's default, which logs on 'mail.log' and answers a permanent
        # '500 Error: (Type) text' that leaks internals and makes the MTA bounce.
        log.error("intake session error: %r", error, exc_info=error)
        return ERR_TEMP

    def _per_recipient(self, status: str, envelope: Any) -> str:
        """LMTP: one status per accepted RCPT, in order (RFC 2033 §4.2); SMTP: one."""
        if self.protocol == "lmtp":
            return CRLF.join(status for _ in envelope.rcpt_tos)
        return status


class IntakeProtocol:
    """Mixin for aiosmtpd's SMTP/LMTP classes: what maild changes in both.

    Draining: aiosmtpd has no hook before the greeting and none common to all commands,
    so this wraps its dispatch. A new session is greeted with 421 and closed; any new
    command but QUIT is answered 421 and the connection closed, as aiosmtpd itself does
    for its command-call limit. DATA already in progress is finished. Relies on aiosmtpd
    1.4 internals (`_handle_client`, `_smtp_methods`); the tests pin the behaviour.

    aiosmtpd keeps `command_size_limits` in a class-level dict that every new connection
    clears and every EHLO bumps; each connection gets its own here.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.command_size_limits = collections.defaultdict(lambda: self.command_size_limit)
        super().__init__(*args, **kwargs)
        self._smtp_methods = {name: (method if name == "QUIT" else self._gated(method))
                              for name, method in self._smtp_methods.items()}

    def _gated(self, method: Callable[[Any], Awaitable[None]]) -> Callable[[Any], Awaitable[None]]:
        async def gated(arg: Any) -> None:
            if self.event_handler.draining:
                await self._refuse_draining()
            else:
                await method(arg)
        return gated

    async def _handle_client(self) -> None:
        if self.event_handler.draining:
            await self._refuse_draining()
            return
        await super()._handle_client()

    async def _refuse_draining(self) -> None:
        log.info("%s refused: draining", _peer(self.session.peer))
        await self.push(ERR_SHUTDOWN)
        self.transport.close()

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self.event_handler.sessions.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.event_handler.sessions.discard(self)
        super().connection_lost(exc)

    def hang_up_if_idle(self) -> None:
        """Draining: a session with no transaction open (no MAIL FROM yet, or its message
        answered) gets 421 now instead of at its next command."""
        if self.transport is None or self.transport.is_closing():
            return
        if self.envelope is not None and self.envelope.mail_from is not None:
            return                          # mid-transaction: its next command gets the 421
        log.info("%s closed: draining", _peer(self.session.peer if self.session else None))
        self.transport.write(ERR_SHUTDOWN.encode() + CRLF.encode())
        self.transport.close()

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        """aiosmtpd's MAIL FROM / RCPT TO address parser, with a fast path.

        aiosmtpd parses every path with the email package's RFC 5322 header parser:
        about a seventh of the event loop's time under load (bench/ingest.py --profile).
        The common `<local@domain> PARAMS` with a plain dot-atom local part and domain
        gives the same (address, rest) with one regex; anything else (quoted local parts,
        source routes, address literals, `<>`, no brackets) goes to aiosmtpd's parser.
        The tests compare both on a list of real and odd paths."""
        match = _SIMPLE_PATH.match(arg)
        if match is None:
            return super()._getaddr(arg)
        address = match[1]
        if self.local_part_limit and len(address.rpartition("@")[0]) > self.local_part_limit:
            return None, None
        return address, match[2]


def _peer(peername: Any) -> str:
    """'127.0.0.1:5555', '[::1]:5555', or 'unix' for a local socket."""
    if isinstance(peername, tuple) and len(peername) >= 2:
        host, port = peername[0], peername[1]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return "unix" if not peername else str(peername)


def _printable(address: str) -> str:
    """Undo aiosmtpd's surrogateescape so the reply line can always be encoded."""
    return address.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def message_id_of(raw: bytes) -> str:
    """The Message-ID as written (``<x@y>``), for log lines only; a cheap scan of the
    header block."""
    ends = [i for i in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n")) if i >= 0]
    match = _MESSAGE_ID.search(raw, 0, min(ends, default=len(raw)))
    return match.group(1).strip().decode("ascii", "replace") if match else "(no Message-ID)"


def protocol_factory(server_class, handler: IntakeHandler, *, hostname: str, ident: str,
                     data_size_limit: int | None) -> Callable[[], IntakeProtocol]:
    """A protocol factory for `loop.create_server` / `loop.create_unix_server`: raw bytes
    kept (decode_data=False), SMTPUTF8 on, the handler's protocol checked once."""
    if handler.protocol != server_class.PROTOCOL:
        raise ValueError(f"a {server_class.PROTOCOL.upper()} listener needs a "
                         f"{server_class.PROTOCOL!r} handler, not {handler.protocol!r}")

    def factory():
        return server_class(handler, hostname=hostname, ident=ident,
                            data_size_limit=data_size_limit, decode_data=False,
                            enable_SMTPUTF8=True, loop=asyncio.get_running_loop())
    return factory
