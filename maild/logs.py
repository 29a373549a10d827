"""Configure logging once: one line per event on stderr, journald-friendly.

Lines carry the logger name and, for messages, the Message-ID and ticket number (the
callers put them in the text).  Under systemd (JOURNAL_STREAM set) the timestamp is left
to the journal.
"""
from __future__ import annotations

import logging
import os
import sys


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time (tests swap it)."""

    def __init__(self):
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def configure(level: str = "info") -> None:
    fmt = "%(levelname)s %(name)s: %(message)s"
    if not os.environ.get("JOURNAL_STREAM"):
        fmt = "%(asctime)s " + fmt
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter(fmt))
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), handlers=[handler],
                        force=True)
    logging.getLogger("mail-parser").setLevel(logging.CRITICAL)
    logging.getLogger("mailparser").setLevel(logging.CRITICAL)
    logging.getLogger("peewee").setLevel(logging.WARNING)
    logging.getLogger("mail.log").setLevel(logging.WARNING)   # aiosmtpd: ~12 INFO lines a message
    logging.getLogger("aioimaplib").setLevel(logging.WARNING)  # logs IMAP LOGIN (password) at DEBUG
