"""Housekeeping on the ticket database: what time alone changes.

    closed = close_resolved(ruleset, now, after=timedelta(days=7))   # [ticket numbers]

A ticket resolved more than `after` ago and not answered since is closed, with a
`status` event by `system`, in batches of `limit` per call (the caller commits and calls
again while a full batch came back).  A reply to a closed ticket reopens it within the
help desk's ``reopen_days``, as it would after an agent's ``#close``.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from rules.model import Ruleset
from store import changes, sla
from store.changes import Change
from store.models import Ticket

log = logging.getLogger(__name__)

BATCH = 500


def close_resolved(ruleset: Ruleset, now: datetime, *, after: timedelta, limit: int = BATCH) -> list[int]:
    cutoff = sla.naive(now) - after
    rows = list(Ticket.select(Ticket.id, Ticket.number)
                .where(Ticket.status == "resolved", Ticket.resolved_at <= cutoff)
                .order_by(Ticket.resolved_at).limit(limit))
    for row in rows:
        changes.apply(row.id, (Change("status", "closed"),), actor="system", now=sla.naive(now))
        sla.sync(row.id, ruleset, sla.naive(now))
    return [row.number for row in rows]
