"""The SMTP envelope of a received message: who handed it over, for whom, and how.

A frozen value passed from the transports (LMTP, SMTP, pipe, IMAP) through the spool to
the worker; the routing uses `rcpt_tos`, not the To: header.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Envelope:
    mail_from: str | None          # reverse path; '' for the null sender <> (bounces), None if unknown
    rcpt_tos: tuple[str, ...]      # accepted recipients, lower-cased
    received_via: str              # 'lmtp' | 'smtp' | 'ingest' | 'imap'
    peer: str = ''                 # client address, for logs

    def to_json(self) -> dict:
        return {"mail_from": self.mail_from, "rcpt_tos": list(self.rcpt_tos),
                "received_via": self.received_via, "peer": self.peer}

    @classmethod
    def from_json(cls, data: dict) -> "Envelope":
        return cls(mail_from=data.get("mail_from"), rcpt_tos=tuple(data.get("rcpt_tos", ())),
                   received_via=data.get("received_via", ""), peer=data.get("peer", ""))
