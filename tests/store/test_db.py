"""Several processes write one SQLite database (worker, sender, `maild ingest`): they take
turns for the write lock; none fails half-way through a transaction."""
from __future__ import annotations

import sqlite3

import pytest

from store.db import open_database
from store.migrations import migrate


def test_a_transaction_holds_the_write_lock_from_its_start(tmp_path):
    """A deferred transaction that reads, then writes after another process committed,
    fails with "database is locked" and no wait (its snapshot is stale): that stopped the
    worker every few batches once the sender had a process of its own.  An outermost
    `atomic()` therefore begins IMMEDIATE: from its first moment no other process can
    commit a write, so its reads stay current, and others wait for it (busy_timeout)."""
    path = tmp_path / "maild.db"
    db = open_database(f"sqlite:{path}")
    migrate(db)
    other = sqlite3.connect(path, timeout=0, isolation_level=None)   # another process, no waiting
    update = 'UPDATE "counter" SET "value" = "value" + 1 WHERE "name" = \'ticket\''
    with db.atomic():
        [(before,)] = db.execute_sql('SELECT "value" FROM "counter" WHERE "name" = ?', ["ticket"])
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute(update)
        db.execute_sql('UPDATE "counter" SET "value" = ? WHERE "name" = ?', [before + 10, "ticket"])
    other.execute(update)                           # the lock is free again after the commit
    [(after,)] = other.execute('SELECT "value" FROM "counter" WHERE "name" = \'ticket\'')
    assert after == before + 11
    other.close()
    db.close()
