"""`maild export`: tickets as JSON lines, one ticket per line, with their messages.

    maild export [--since DATE] [--until DATE] [--output FILE] [--with-raw]

For backups you can read without maild, audits, and moving to another system.  Each line
is one JSON object: the ticket's fields, its SLA clocks, its messages (header fields,
text, HTML, direction, kind, where it was delivered, and its attachments' names, types,
sizes and sha256) and its audit events; `store.export` lists every key.  The attachments'
bytes are not exported; a message's raw bytes only with `--with-raw` (base64, in
`raw_base64`: the message as received, attachments included).

`--since`/`--until` select tickets by when they last changed (`updated_at`,
since <= updated_at < until): a date (YYYY-MM-DD, midnight UTC) or an ISO 8601 time
(without an offset: UTC).  So `--since` of the last run's start exports what changed since.

Streamed: tickets are read in batches and written as they come, so memory stays flat
however many there are; the export is one consistent picture (a read transaction) and
never blocks the running daemon.  With `--output FILE` it is written to a temporary file
beside FILE, flushed to disk and renamed, so FILE is either the whole export or absent;
without it, to stdout.  The file is readable by its owner only (0600).  A summary ("N ticket(s), M message(s)") goes to stderr.
Exit 0, 64 for a bad date, 1 if FILE cannot be written or the database fails midway
(then FILE is not created; on stdout, what was written so far stays written).
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from maild.cli import EX_FAILED, EX_OK, EX_USAGE


def parse_date(option: str, text: str) -> datetime:
    """'2026-11-01' -> 2026-11-01 00:00 UTC; naive UTC, as the database keeps times."""
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{option} {text!r}: expected a date like 2026-11-01 or an ISO 8601 "
                         "time like 2026-11-01T09:00:00+01:00") from None
    if at.tzinfo is not None:
        at = at.astimezone(timezone.utc).replace(tzinfo=None)
    return at


def cmd_export(args) -> int:
    import peewee

    from maild.commands import _read_database, _settings
    from store.db import utcnow
    from store.export import export_tickets, snapshot

    settings = _settings(args)
    try:
        since = parse_date("--since", args.since) if args.since else None
        until = parse_date("--until", args.until) if args.until else None
    except ValueError as exc:
        print(f"maild export: {exc}", file=sys.stderr)
        return EX_USAGE
    db = _read_database(settings)
    tickets = messages = 0
    try:
        with _output(args.output) as out, snapshot(db):
            for ticket in export_tickets(now=utcnow(), since=since, until=until,
                                         with_raw=args.with_raw):
                out.write(_line(ticket))
                tickets += 1
                messages += len(ticket["messages"])
    except BrokenPipeError:
        raise                 # `maild export | head`: maild.cli exits quietly
    except OSError as exc:
        print(f"maild export: {args.output or 'stdout'}: {exc.strerror or exc}", file=sys.stderr)
        return EX_FAILED
    except peewee.DatabaseError as exc:
        print(f"maild export: database error, nothing written: {exc}", file=sys.stderr)
        return EX_FAILED
    finally:
        db.close()            # no read transaction left open: the daemon may be writing
    where = f" to {args.output}" if args.output else ""
    print(f"maild export: {tickets} ticket(s), {messages} message(s){where}", file=sys.stderr)
    return EX_OK


def _line(ticket: dict) -> bytes:
    """One JSON line, UTF-8.  Text from mail may hold a lone surrogate (undecodable bytes
    kept by the parser): such a line is written with \\u escapes instead, still valid JSON."""
    text = json.dumps(ticket, ensure_ascii=False, separators=(",", ":"))
    try:
        return text.encode("utf-8") + b"\n"
    except UnicodeEncodeError:
        return json.dumps(ticket, separators=(",", ":")).encode("ascii") + b"\n"


@contextmanager
def _output(path: Path | None):
    """stdout, or a temporary file beside `path` renamed to it once all is written."""
    if path is None:
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "wb", buffering=1 << 20) as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)          # mode 0600 (mkstemp's): it is customer data
    except BaseException:
        os.unlink(tmp)
        raise
    directory = os.open(path.parent or ".", os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
