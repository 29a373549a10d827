"""Open the ticket database from its URL and bind the models to it.

    db = open_database("sqlite:///var/lib/maild/maild.db")   # or postgresql://user@host/db
    with db.atomic():
        ...

SQLite runs in WAL mode with `synchronous=FULL`: the spool deletes a message once the
ticket transaction that consumed it has committed, so that commit must survive a power
loss too.  PostgreSQL uses peewee's driver (psycopg 3).  Datetimes are stored as naive
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


class DatabaseUnavailable(Exception):
    """The ticket database cannot be reached or opened; the spool keeps the mail."""


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def is_sqlite(db: peewee.Database) -> bool:
    return isinstance(db, peewee.SqliteDatabase)


def open_database(url: str) -> peewee.Database:
    """Connect to `url`, bind every model to it, and return the database."""
    from store.models import ALL_MODELS

    if url.startswith("sqlite:"):
        path = url.split(":///", 1)[1] if ":///" in url else url.split(":", 1)[1]
        if path not in (":memory:", ""):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        db = peewee.SqliteDatabase(path, pragmas=SQLITE_PRAGMAS, timeout=10)
    else:
        db = connect(url)
    try:
        db.connect(reuse_if_open=True)
    except peewee.OperationalError as exc:
        raise DatabaseUnavailable(f"cannot open database: {exc}") from exc
    db.bind(ALL_MODELS, bind_refs=False, bind_backrefs=False)
    return db
