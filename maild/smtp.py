"""The SMTP listener: aiosmtpd's SMTP with maild's intake rules (see `maild.intake`).

For MTAs that can only relay by SMTP, and for tests. One `250 2.0.0 Ok: queued as <id>`
after DATA, once the message is durable.
"""
from __future__ import annotations

from typing import Callable

from aiosmtpd.smtp import DATA_SIZE_DEFAULT, SMTP

from maild.intake import IntakeHandler, IntakeProtocol, protocol_factory

IDENT = "maild ESMTP"


class SMTPServer(IntakeProtocol, SMTP):
    """One SMTP connection."""

    PROTOCOL = "smtp"


def smtp_factory(handler: IntakeHandler, *, hostname: str,
                 data_size_limit: int | None = DATA_SIZE_DEFAULT) -> Callable[[], SMTPServer]:
    """A protocol factory for `loop.create_server` / `loop.create_unix_server`."""
    return protocol_factory(SMTPServer, handler, hostname=hostname, ident=IDENT,
                            data_size_limit=data_size_limit)
