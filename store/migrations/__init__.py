"""Versioned schema: `migrate(db)` brings any database to `LATEST`.

A new database gets the current models' tables and is stamped `LATEST` (like Alembic's
stamp).  An existing one runs each `m<NNNN>_*.py` module's `upgrade(db)` above its
recorded version, in order, each in its own transaction.  A migration never edits an
earlier one; it adds a new module and raises `LATEST`.
"""
from __future__ import annotations

import importlib
import logging
import pkgutil

import peewee

from store.db import utcnow
from store.models import ALL_MODELS, Counter, SchemaVersion

log = logging.getLogger(__name__)


def _steps() -> list[tuple[int, str]]:
    found = []
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("m") and info.name[1:5].isdigit():
            found.append((int(info.name[1:5]), info.name))
    return sorted(found)


LATEST = _steps()[-1][0] if _steps() else 1


class SchemaTooNew(Exception):
    """The database was written by a newer maild; refuse rather than corrupt it."""


def current_version(db: peewee.Database) -> int | None:
    if not db.table_exists(SchemaVersion._meta.table_name):
        return None
    row = SchemaVersion.select(peewee.fn.MAX(SchemaVersion.version)).scalar()
    return int(row) if row is not None else None


def migrate(db: peewee.Database) -> tuple[int | None, int]:
    """Create or upgrade the schema; return (version before, version after)."""
    before = current_version(db)
    if before is None:
        with db.atomic():
            db.create_tables(ALL_MODELS, safe=True)
            Counter.insert(name="ticket", value=0).on_conflict_ignore().execute()
            SchemaVersion.create(version=LATEST, applied_at=utcnow())
        log.info("created schema version %d", LATEST)
        return None, LATEST
    if before > LATEST:
        raise SchemaTooNew(f"database schema {before} is newer than this maild ({LATEST})")
    for number, name in _steps():
        if number <= before:
            continue
        module = importlib.import_module(f"{__name__}.{name}")
        with db.atomic():
            module.upgrade(db)
            SchemaVersion.create(version=number, applied_at=utcnow())
        log.info("upgraded schema to version %d (%s)", number, name)
    return before, LATEST
