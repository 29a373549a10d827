"""How far each IMAP account has got, kept in the spool's own SQLite file.

One row per account and folder::

    imap_progress(account, folder, uidvalidity, last_uid, acted_uid)

``last_uid`` is the highest UID whose message is in the spool, ``acted_uid`` the highest
UID whose ``after`` action (flag, move, delete) is done; ``acted_uid <= last_uid``.

Why here and not in the ticket database: ``last_uid`` moves in THE SAME TRANSACTION as
the spooled message (`Spool.submit(..., also=advance(...))`), so "spooled" and "progress
advanced" can never disagree. A crash between spooling and flagging therefore leaves
``acted_uid < last_uid``, and the next session applies ``after`` to those UIDs without
fetching them again; a crash before the commit leaves neither, and the message is fetched
again. The ticket database may be down while intake runs, so it could not hold this.

Progress never claims a message that is not durable: each message's update advances
``last_uid`` only from the UID before it (``WHERE last_uid = previous``). Messages of a
batch are submitted together and committed in groups in UID order; should one group
fail, the chain breaks there and the later messages (spooled, but not counted) are
fetched again next time, which processing de-duplicates (DESIGN §1.2).
"""
from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

from maild.spool import Spool

SCHEMA = """
CREATE TABLE IF NOT EXISTS imap_progress (
    account TEXT NOT NULL, folder TEXT NOT NULL,
    uidvalidity INTEGER NOT NULL, last_uid INTEGER NOT NULL, acted_uid INTEGER NOT NULL,
    PRIMARY KEY (account, folder))
"""


@dataclass(frozen=True)
class Progress:
    uidvalidity: int
    last_uid: int = 0
    acted_uid: int = 0


class ImapProgress:
    """The progress rows of one account's folder, read and written on the spool's writer."""

    def __init__(self, spool: Spool, account: str, folder: str):
        self.spool = spool
        self.key = (account, folder)

    async def _run(self, fn: Callable[[sqlite3.Connection], object]):
        return await asyncio.wrap_future(self.spool.transaction(fn))

    async def load(self) -> Progress | None:
        def run(conn: sqlite3.Connection) -> Progress | None:
            conn.execute(SCHEMA)
            row = conn.execute("SELECT uidvalidity, last_uid, acted_uid FROM imap_progress"
                               " WHERE account = ? AND folder = ?", self.key).fetchone()
            return Progress(*row) if row else None
        return await self._run(run)

    async def reset(self, uidvalidity: int) -> Progress:
        """Start the folder over under `uidvalidity`: nothing spooled, nothing acted on."""
        def run(conn: sqlite3.Connection) -> None:
            conn.execute(SCHEMA)
            conn.execute("INSERT INTO imap_progress VALUES (?, ?, ?, 0, 0) ON CONFLICT"
                         " (account, folder) DO UPDATE SET uidvalidity = excluded.uidvalidity,"
                         " last_uid = 0, acted_uid = 0", (*self.key, uidvalidity))
        await self._run(run)
        return Progress(uidvalidity)

    def advance(self, uidvalidity: int, previous: int, uid: int
                ) -> Callable[[sqlite3.Connection], None]:
        """The `also=` hook of message `uid`: last_uid previous -> uid, in its transaction."""
        def run(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE imap_progress SET last_uid = ? WHERE account = ? AND folder = ?"
                         " AND uidvalidity = ? AND last_uid = ?",
                         (uid, *self.key, uidvalidity, previous))
        return run

    async def acted(self, uidvalidity: int, uid: int) -> None:
        """`after` is done for every UID up to `uid`."""
        def run(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE imap_progress SET acted_uid = max(acted_uid, ?) WHERE"
                         " account = ? AND folder = ? AND uidvalidity = ? AND last_uid >= ?",
                         (uid, *self.key, uidvalidity, uid))
        await self._run(run)
