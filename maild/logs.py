"""Configure logging once: one line per event on stderr, journald-friendly.

    logs.configure("info")                 # text: "2026-11-21 10:00:00,123 INFO maild.worker: ..."
    logs.configure("info", "json")         # {"ts": ..., "level": ..., "logger": ..., "msg": ...}
    log.info("... queued", extra=logs.about(message_id, ticket))

Formats (maild.yaml ``log_format``, ``maild serve --log-format``, or $MAILD_LOG_FORMAT,
which the processing child inherits; the command line wins, then the variable, then the
file):

``text`` (default)
    ``LEVEL logger: message``, with the time in front unless JOURNAL_STREAM is set (under
    systemd the journal stamps each line itself).  Lines about a message carry
    ``message-id=<...>`` and ``ticket=#N`` in the text (the callers write them).
``json``
    One JSON object per line: ``ts`` (UTC, ISO 8601, milliseconds), ``level``,
    ``logger``, ``msg``, and for a line about a message ``message_id`` (without the angle
    brackets) and ``ticket`` (the number) where known, ``spool_id`` where the spool item
    is; ``exc`` holds a traceback.  The fields come from ``extra=logs.about(...)`` at the
    call site; a line without them whose text follows the convention above
    (``message-id=<x>``, ``ticket=#N``, ``spool item N``) gets them read from the text,
    so every line about a message carries them in both formats.

One event is one line in both formats: in text, a line break inside a message or a
traceback is written as ``\\n`` (journald and syslog split a stream at line breaks, and
a customer's header can hold one); the traceback follows the message on the same line,
after `` | ``.  `tr '|' '\\n'`` or ``jq -r .exc`` makes it readable again.

Quiet libraries: mail-parser (noisy on malformed mail), peewee's SQL, aiosmtpd's
session chatter and aioimaplib (which logs the IMAP LOGIN, password included, at DEBUG)
are held at WARNING or above, whatever ``log_level`` says.
"""
from __future__ import annotations

import json
import logging
import os
import re
import sys
from datetime import datetime, timezone

FORMATS = ("text", "json")
ENV_FORMAT = "MAILD_LOG_FORMAT"
_FIELDS = ("message_id", "ticket", "spool_id")
_MESSAGE_ID = re.compile(r"message-id=<([^>\s]*)>")
_TICKET = re.compile(r"ticket=#(\d+)")
_SPOOL_ID = re.compile(r"spool item (\d+)")


def about(message_id: str | None = None, ticket: int | None = None, *,
          spool_id: int | None = None) -> dict:
    """`extra=` for a log line about a message: the fields the JSON format shows."""
    fields = {}
    if message_id and not message_id.startswith("("):      # "(no Message-ID)"
        fields["message_id"] = message_id.strip().strip("<>")
    if ticket is not None:
        fields["ticket"] = ticket
    if spool_id is not None:
        fields["spool_id"] = spool_id
    return fields


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


def _one_line(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\r", "\\r").replace("\n", "\\n")


class TextFormatter(logging.Formatter):
    """``[time ]LEVEL logger: message[ | traceback]``, always one line."""

    def __init__(self, *, timestamps: bool = True):
        fmt = "%(levelname)s %(name)s: %(message)s"
        super().__init__("%(asctime)s " + fmt if timestamps else fmt)

    def formatMessage(self, record: logging.LogRecord) -> str:
        return _one_line(super().formatMessage(record))

    def formatException(self, ei) -> str:
        return _one_line(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return _one_line(stack_info)

    def format(self, record: logging.LogRecord) -> str:
        # logging.Formatter joins message and traceback with a line break: make it " | "
        exc_text, stack = record.exc_text, record.stack_info
        line = super().format(record)
        if record.exc_info or exc_text or stack:
            head, _, rest = line.partition("\n")
            line = head + (" | " + rest.replace("\n", " | ") if rest else "")
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line (see the module docstring for the fields)."""

    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage()
        entry = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc)
                          .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "msg": msg,
        }
        entry.update(fields_of(record, msg))
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def fields_of(record: logging.LogRecord, msg: str) -> dict:
    """message_id, ticket and spool_id of a line: from `extra=`, else from its text."""
    fields = {name: getattr(record, name) for name in _FIELDS if getattr(record, name, None) is not None}
    if "message_id" not in fields and (found := _MESSAGE_ID.search(msg)):
        fields["message_id"] = found[1]
    if "ticket" not in fields and (found := _TICKET.search(msg)):
        fields["ticket"] = int(found[1])
    if "spool_id" not in fields and (found := _SPOOL_ID.search(msg)):
        fields["spool_id"] = int(found[1])
    return fields


def formatter(log_format: str = "text") -> logging.Formatter:
    if log_format == "json":
        return JsonFormatter()
    if log_format != "text":
        raise ValueError(f"unknown log format {log_format!r}; use one of {', '.join(FORMATS)}")
    return TextFormatter(timestamps=not os.environ.get("JOURNAL_STREAM"))


def chosen_format(command_line: str | None, configured: str = "text") -> str:
    """The format in force: the command line's, else $MAILD_LOG_FORMAT, else maild.yaml's."""
    return command_line or os.environ.get(ENV_FORMAT) or configured


def configure(level: str = "info", log_format: str | None = None) -> None:
    handler = _StderrHandler()
    handler.setFormatter(formatter(chosen_format(log_format)))
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), handlers=[handler],
                        force=True)
    logging.getLogger("mail-parser").setLevel(logging.CRITICAL)
    logging.getLogger("mailparser").setLevel(logging.CRITICAL)
    logging.getLogger("peewee").setLevel(logging.WARNING)
    logging.getLogger("mail.log").setLevel(logging.WARNING)   # aiosmtpd: ~12 INFO lines a message
    logging.getLogger("aioimaplib").setLevel(logging.WARNING)  # logs IMAP LOGIN (password) at DEBUG
