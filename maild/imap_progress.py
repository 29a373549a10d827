"""How far each IMAP account has got, kept in the spool's own SQLite file.

One row per account and folder::

    imap_progress(account, folder, uidvalidity, last_uid, acted_uid, host, port, user)

``last_uid`` is the highest UID whose message is in the spool, ``acted_uid`` the highest
UID whose ``after`` action (flag, move, delete) is done; ``acted_uid <= last_uid``.
``host, port, user`` name the mailbox the numbers belong to (`Mailbox`): UIDVALIDITY is
unique per server and folder only (Dovecot takes the creation second, other servers
small constants), so an account repointed at another mailbox must not take the old
one's ``last_uid``. maild/imap.py starts such a row over with a WARNING. A spool written
before these columns existed gets them at the first `load` (ALTER TABLE, NULL); a row
without them is adopted, once, by the mailbox that reads it next (`adopt`).

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
    host TEXT, port INTEGER, user TEXT,
    PRIMARY KEY (account, folder))
"""
IDENTITY = (("host", "TEXT"), ("port", "INTEGER"), ("user", "TEXT"))   # added later


@dataclass(frozen=True)
class Mailbox:
    """Whose folder: the server and the user logged in as (host lower-case)."""
    host: str
    port: int
    user: str

    def __str__(self) -> str:
        return f"{self.user} at {self.host}:{self.port}"


@dataclass(frozen=True)
class Progress:
    uidvalidity: int
    last_uid: int = 0
    acted_uid: int = 0
    mailbox: Mailbox | None = None         # as stored; None: a row from before it was


def create_schema(conn: sqlite3.Connection) -> None:
    """The table, and the identity columns on a table from an older maild."""
    conn.execute(SCHEMA)
    have = {row[1] for row in conn.execute("PRAGMA table_info(imap_progress)")}
    for column, kind in IDENTITY:
        if column not in have:
            conn.execute(f"ALTER TABLE imap_progress ADD COLUMN {column} {kind}")


class ImapProgress:
    """The progress rows of one account's folder, read and written on the spool's writer."""

    def __init__(self, spool: Spool, account: str, folder: str, mailbox: Mailbox):
        self.spool = spool
        self.key = (account, folder)
        self.mailbox = mailbox

    async def _run(self, fn: Callable[[sqlite3.Connection], object]):
        return await asyncio.wrap_future(self.spool.transaction(fn))

    async def load(self) -> Progress | None:
        def run(conn: sqlite3.Connection) -> Progress | None:
            create_schema(conn)
            row = conn.execute("SELECT uidvalidity, last_uid, acted_uid, host, port, user"
                               " FROM imap_progress WHERE account = ? AND folder = ?",
                               self.key).fetchone()
            if row is None:
                return None
            mailbox = Mailbox(*row[3:]) if row[3] is not None else None
            return Progress(*row[:3], mailbox=mailbox)
        return await self._run(run)

    async def adopt(self) -> None:
        """Record this mailbox on a row written before maild stored one."""
        def run(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE imap_progress SET host = ?, port = ?, user = ? WHERE"
                         " account = ? AND folder = ? AND host IS NULL",
                         (*self._identity(), *self.key))
        await self._run(run)

    async def reset(self, uidvalidity: int) -> Progress:
        """Start the folder over under `uidvalidity`, for this mailbox: nothing spooled,
        nothing acted on."""
        def run(conn: sqlite3.Connection) -> None:
            create_schema(conn)
            conn.execute("INSERT INTO imap_progress (account, folder, uidvalidity, last_uid,"
                         " acted_uid, host, port, user) VALUES (?, ?, ?, 0, 0, ?, ?, ?)"
                         " ON CONFLICT (account, folder) DO UPDATE SET"
                         " uidvalidity = excluded.uidvalidity, last_uid = 0, acted_uid = 0,"
                         " host = excluded.host, port = excluded.port, user = excluded.user",
                         (*self.key, uidvalidity, *self._identity()))
        await self._run(run)
        return Progress(uidvalidity, mailbox=self.mailbox)

    def _identity(self) -> tuple[str, int, str]:
        return self.mailbox.host, self.mailbox.port, self.mailbox.user

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
