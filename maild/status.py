"""The one line `systemctl status maild` shows (STATUS=, see maild/notify.py).

    counter = OutboxCounter(settings.database_url, own=True)
    snapshot = collect(spool, counter, db)      # on the store thread: SQLite and SQL reads
    snapshot.line()
    # 'spool 3 incoming, 1 processing, 0 quarantined; outbox 2 queued; imap support idle'

Counting reads the spool and the ticket database, so `collect` runs on the daemon's store
thread, never on the event loop.  The intake role has no database connection of its own
(processing happens in the child): the counter opens one when first asked and, while the
database is down, answers None ("outbox ? (database unavailable)") and tries again the
next time; counting never holds up the watchdog.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Mapping

import peewee

from maild.spool import STATES, Spool, SpoolError
from store.db import DatabaseUnavailable, open_database

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Snapshot:
    spool: Mapping[str, int] | None           # None: the spool is unreadable
    outbox: int | None                        # mail not yet delivered; None: database down
    imap: Mapping[str, str] = field(default_factory=dict)    # account name -> state
    note: str = ""                            # "draining", "last reload refused ..."

    def line(self) -> str:
        parts = [self.note] if self.note else []
        if self.spool is None:
            parts.append("spool unreadable")
        else:
            parts.append("spool " + ", ".join(f"{self.spool.get(s, 0)} {s}" for s in STATES))
        parts.append("outbox ? (database unavailable)" if self.outbox is None
                     else f"outbox {self.outbox} queued")
        if self.imap:
            parts.append("imap " + ", ".join(f"{name} {state}" for name, state in self.imap.items()))
        return "; ".join(parts)


def outbox_queued(db: peewee.Database) -> int:
    """Outbound mail not delivered yet (queued, retrying or being sent)."""
    from store.fastsql import fetch
    from store.outbox import QUEUED, SENDING

    [(count,)] = fetch(db, 'SELECT count(*) FROM "outbox" WHERE "status" IN (?, ?)',
                       [QUEUED, SENDING])
    return count


class OutboxCounter:
    """`outbox_queued` over the daemon's database or, with `own` (the intake role), over
    a connection of its own; None when there is neither or the database is down."""

    def __init__(self, database_url: str, *, own: bool = False):
        self.database_url = database_url
        self.may_open = own
        self.own: peewee.Database | None = None

    def __call__(self, db: peewee.Database | None = None) -> int | None:
        try:
            if db is None:
                if not self.may_open:
                    return None
                if self.own is None:
                    self.own = open_database(self.database_url)
                db = self.own
            return outbox_queued(db)
        except (DatabaseUnavailable, peewee.PeeweeException) as exc:
            log.debug("outbox not counted: %s", exc)
            self.close()                  # reconnect next time
            return None

    def close(self) -> None:
        if self.own is not None:
            try:
                self.own.close()
            except peewee.PeeweeException:
                pass
            self.own = None


def collect(spool: Spool, counter: OutboxCounter, db: peewee.Database | None = None,
            imap: Mapping[str, str] | None = None, note: str = "") -> Snapshot:
    """Count everything; on the store thread."""
    try:
        depth = spool.depth()
    except SpoolError as exc:
        log.debug("spool not counted: %s", exc)
        depth = None
    return Snapshot(spool=depth, outbox=counter(db), imap=dict(imap or {}), note=note)
