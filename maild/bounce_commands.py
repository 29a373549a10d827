"""`maild bounces`: the bounces received, newest first, and what each was matched to.

    maild bounces [--unmatched] [--limit N] [--json]

One line per bounce: when it came, the recipient it reports with status and reason, and
the ticket and outbound mail it was matched to (by VERP address or returned Message-ID),
or "unmatched" -- kept on no ticket (`store.bounces`, `maild.bounce_mail`).
`--unmatched` shows only those; an unmatched bounce keeps its raw bytes (`size`).  With
`--json`, a list of objects with the keys id, received_at, from, subject, message_id,
recipient, action, status, diagnostic, reporting_mta, matched_by (verp | message-id |
null), ticket, outbox, template, to, size.  Reads only.
"""
from __future__ import annotations

from maild.cli import EX_OK, print_json


def cmd_bounces(args) -> int:
    from maild.commands import _read_database, _settings
    from store.bounces import listing

    db = _read_database(_settings(args))
    try:
        rows = listing(unmatched=args.unmatched, limit=args.limit)
    finally:
        db.close()            # no statement left open: the daemon may be writing
    if args.json:
        print_json(rows)
        return EX_OK
    for row in rows:
        print(line(row))
    print(f"{len(rows)} {'unmatched ' if args.unmatched else ''}bounce(s)")
    return EX_OK


def line(row: dict) -> str:
    where = (f"#{row['ticket']} {row['template'] or 'mail'} by {row['matched_by']}" if row["ticket"]
             else "unmatched")
    return (f"{row['id']:>6} {row['received_at']} {row['action'] or '-':<8} {row['status'] or '-':<7} "
            f"{row['recipient'] or '-':<32} {where:<26} {(row['diagnostic'] or row['subject'])[:70]}")
