"""The LMTP listener (RFC 2033): what the MTA (Postfix, Exim) delivers into.

aiosmtpd's LMTP class answers DATA once. RFC 2033 §4.2 wants one reply per accepted
recipient, in RCPT order, and an MTA's LMTP client waits for all of them: `IntakeHandler`
returns them joined with CRLF. aiosmtpd's own refusals after the final dot (`552` too
much data, `500` line too long) are single lines; `LMTPServer` repeats them once per
recipient, so the MTA gets its answer instead of waiting until its timeout.
"""
from __future__ import annotations

from typing import AnyStr, Callable

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import DATA_SIZE_DEFAULT

from maild.intake import CRLF, IntakeHandler, IntakeProtocol, protocol_factory

IDENT = "maild LMTP"


class LMTPServer(IntakeProtocol, LMTP):
    """One LMTP connection."""

    PROTOCOL = "lmtp"

    _replies_due = 0          # recipients of the DATA in progress
    _after_dot = False        # the 354 went out; the next reply answers the message

    async def smtp_DATA(self, arg: str) -> None:
        self._replies_due = len(self.envelope.rcpt_tos) if self.envelope else 0
        try:
            await super().smtp_DATA(arg)
        finally:
            self._replies_due, self._after_dot = 0, False

    async def push(self, status: AnyStr) -> None:
        if self._replies_due and isinstance(status, str):
            if status.startswith("354"):
                self._after_dot = True
            elif self._after_dot:
                self._after_dot = False
                if CRLF not in status:
                    status = CRLF.join([status] * self._replies_due)
        await super().push(status)


def lmtp_factory(handler: IntakeHandler, *, hostname: str,
                 data_size_limit: int | None = DATA_SIZE_DEFAULT) -> Callable[[], LMTPServer]:
    """A protocol factory for `loop.create_server` / `loop.create_unix_server`."""
    return protocol_factory(LMTPServer, handler, hostname=hostname, ident=IDENT,
                            data_size_limit=data_size_limit)
