"""Open the ticket database from its URL and bind the models to it.

    db = open_database("sqlite:///var/lib/maild/maild.db")   # or postgresql://user@host/db
    with db.atomic():
        ...

SQLite runs in WAL mode with `synchronous=FULL`: the spool deletes a message once the
ticket transaction that consumed it has committed, so that commit must survive a power
loss too.  Write transactions begin IMMEDIATE (see `SqliteDatabase`), so several
processes (the worker, the sender, `maild ingest`) queue for the write lock instead of
failing.  PostgreSQL uses peewee's driver (psycopg 3).  Datetimes are stored as naive
UTC; `utcnow()` is the one place that makes them.
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path

import peewee
from playhouse.db_url import connect

log = logging.getLogger(__name__)

SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "synchronous": "full",
    "foreign_keys": 1,
    "busy_timeout": 10_000,
    "cache_size": -16_000,
}


class SqliteDatabase(peewee.SqliteDatabase):
    """Every outermost `atomic()` begins with `BEGIN IMMEDIATE`: it takes SQLite's write
    lock at once, waiting for it (busy_timeout) if another process holds it.  A deferred
    transaction that reads first cannot wait when it comes to write after another process
    committed (its snapshot is stale): SQLite answers "database is locked" at once, and
    with the worker and the sender in processes of their own that happened every few
    batches.  Nested `atomic()` blocks are savepoints, as before."""

    def atomic(self, lock_type: str | None = None):
        return super().atomic(lock_type=lock_type or "IMMEDIATE")


class DatabaseUnavailable(Exception):
    """The ticket database cannot be reached or opened; the spool keeps the mail."""


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def is_sqlite(db: peewee.Database) -> bool:
    return isinstance(db, peewee.SqliteDatabase)


CONNECT_TIMEOUT_SECONDS = 10


def open_database(url: str) -> peewee.Database:
    """Connect to `url`, bind every model to it, and return the database."""
    from store.models import ALL_MODELS

    if url.startswith("sqlite:"):
        path = url.split(":///", 1)[1] if ":///" in url else url.split(":", 1)[1]
        if path not in (":memory:", ""):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        db = SqliteDatabase(path, pragmas=SQLITE_PRAGMAS, timeout=10)
    else:
        # bounded: a database host that accepts TCP and never answers must not hang
        # start-up, the STATUS count or a stop until systemd's SIGKILL
        db = connect(url, connect_timeout=CONNECT_TIMEOUT_SECONDS)
    try:
        db.connect(reuse_if_open=True)
    except peewee.OperationalError as exc:
        raise DatabaseUnavailable(f"cannot open database: {exc}") from exc
    db.bind(ALL_MODELS, bind_refs=False, bind_backrefs=False)
    return db
