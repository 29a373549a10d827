"""The spool: maild's local durable queue between the transports and the worker.

Every received message is committed here before any transport acknowledges it (DESIGN
§1.1): one SQLite file, ``<directory>/spool.db`` (WAL, ``synchronous=FULL``), apart from
the ticket database so mail is accepted while that is down. One row per message::

    put ─> incoming ─claim─> processing ─finish─> (deleted; the store keeps the bytes)
             ^  ^                │ └─quarantine─> quarantined ─┐
             │  └─release/crash──┘                             │
             └─────────────────────replay──────────────────────┘

``submit(raw, envelope)`` returns a ``concurrent.futures.Future`` that resolves to the
row id once the row is committed, or fails with ``SpoolError``: answer ``451 4.3.0`` /
exit 75. ``put_async`` awaits it without blocking the event loop; ``put`` blocks.

Hooks for a transport that keeps its own progress next to the mail (IMAP, maild/imap.py):
``submit(raw, envelope, also=fn)`` runs ``fn(conn)`` right after the row's INSERT, in the
same transaction, so the message and what ``fn`` writes are durable together or not at
all; ``transaction(fn)`` runs ``fn(conn)`` alone on the writer thread (a future of its
result), and ``read(sql, params)`` reads. Their tables are the caller's to create
(``CREATE TABLE IF NOT EXISTS`` inside ``transaction``); the spool's own rows never
depend on them. A hook that raises fails its whole group like a failed commit.

Group commit: one writer thread owns the only write connection and runs every write. It
takes all that is queued when it wakes (up to ``MAX_BATCH_ITEMS``/``MAX_BATCH_BYTES``),
runs it in ONE transaction and resolves the futures after the commit (``commits`` counts
them). If that fails, every future of the group fails with ``SpoolError`` and none of it
is visible. (After some I/O errors a failed commit may still prove durable; the sender
retries and idempotent processing, §1.2, keeps one ticket message.) Reads (``get``,
``depth``, ``quarantined``) use one connection per calling thread.

Claiming: ``claim(limit, max_bytes)`` moves the oldest incoming rows to ``processing`` and
counts an attempt on each. It stops before the raw bytes would exceed ``max_bytes`` (at
least one row is always returned, however large): it first reads only ids and
``length(raw)``, and loads the bytes of the rows it hands out, so a batch of big messages
cannot take 64 × 25 MiB of memory.

Crashes: the claiming spool holds an exclusive ``flock`` on ``claim.lock`` until
``close``, so a second process (``maild ingest`` beside ``maild serve``) may put but not
claim (``SpoolBusy``) and never takes the daemon's rows back. Rows a dead claimer left in
``processing`` return to ``incoming`` when a spool opens (or first claims) and finds the
lock free, with the attempt still counted. ``release`` hands rows back and uncounts the
attempt (the ticket database is down: not the message's fault), so an incoming row with
``attempts > 0`` is one that was in hand when the process died: a *suspect*.

One poison message must not take its batch down with it. Mailman renames the file it
works on to ``.bak``; at start it puts ``.bak`` files back with a count and moves one
counted too often to the ``bad`` queue. Its runners take one message at a time, so the
count is exact. A claim here is a batch: a crash counts an attempt on every row in it,
and claiming the same rows in the same order would crash again and count again. So
``claim`` hands out suspects ONE at a time, oldest first, before any new batch: the
innocent rows of a crashed batch each get a try of their own, succeed and are finished
(the batch crash counted one attempt on them), and only the message that crashes the
process while alone keeps counting. A suspect with ``max_attempts`` is quarantined as
"processing crashed N times" instead of claimed. Hence ``max_attempts >= 2``: with 1,
the one crash of a batch would quarantine all of it. New mail waits behind the suspects,
for at most ``max_attempts - 1`` crash-and-restart cycles per poison message.

An unusable spool (unwritable directory, corrupt file, full disk) does not make the
constructor raise: every operation raises ``SpoolError`` until it works again, so the
transports keep answering "try later". Call ``depth()`` at start to fail early.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import fcntl
import json
import logging
import os
import queue
import sqlite3
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable

from maild.envelope import Envelope

log = logging.getLogger(__name__)

DB_NAME, LOCK_NAME = "spool.db", "claim.lock"
MAX_BATCH_ITEMS, MAX_BATCH_BYTES = 256, 8 * 1024 * 1024
CLAIM_LIMIT, CLAIM_MAX_BYTES = 64, 32 * 1024 * 1024     # one claim's rows and raw bytes
BUSY_TIMEOUT_MS = 10_000            # another process (maild ingest) is writing
STATES = ("incoming", "processing", "quarantined")
SCHEMA = """
CREATE TABLE IF NOT EXISTS spool (
    id INTEGER PRIMARY KEY AUTOINCREMENT,           -- never reused, unambiguous in logs
    state TEXT NOT NULL CHECK (state IN ('incoming', 'processing', 'quarantined')),
    attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT,
    received_at TEXT NOT NULL, updated_at TEXT NOT NULL,
    envelope TEXT NOT NULL, raw BLOB NOT NULL);     -- raw last: scans skip it
CREATE INDEX IF NOT EXISTS spool_state ON spool (state, id);
CREATE INDEX IF NOT EXISTS spool_suspect ON spool (id)  -- back from a crash: claimed alone
    WHERE state = 'incoming' AND attempts > 0;
"""
COLUMNS = "id, raw, envelope, attempts, received_at, state, last_error"


class SpoolError(Exception):
    """The spool could not do it (e.g. make a message durable): answer 451 / exit 75."""


class SpoolBusy(SpoolError):
    """Another live process claims from this spool; only one may."""


class UnknownSpoolItem(KeyError):
    """No spool row with that id (in the state the operation needs)."""


@dataclass(frozen=True)
class SpoolItem:
    id: int
    raw: bytes
    envelope: Envelope
    attempts: int
    received_at: datetime
    state: str
    last_error: str | None

    @property
    def size(self) -> int:
        return len(self.raw)


@dataclass(frozen=True)
class _Job:
    """One write for the writer thread; ``run`` raises UnknownSpoolItem or SpoolBusy
    only before it has written anything."""
    run: Callable[[sqlite3.Connection], object]
    future: concurrent.futures.Future
    size: int = 0
    wakes: bool = False             # adds incoming work
    claims: bool = False            # needs the claim lock


_STOP = object()


def _item(row: tuple) -> SpoolItem:
    id_, raw, envelope, attempts, received_at, state, last_error = row
    return SpoolItem(id_, bytes(raw), Envelope.from_json(json.loads(envelope)), attempts,
                     datetime.fromisoformat(received_at), state, last_error)


class Spool:
    def __init__(self, directory: Path, *, max_attempts: int = 5,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)):
        self.directory = Path(directory)
        self.path = self.directory / DB_NAME
        if max_attempts < 2:
            raise ValueError(f"max_attempts must be at least 2, not {max_attempts}: one crash"
                             " counts an attempt on every message of the batch")
        self.max_attempts = max_attempts
        self.commits = 0
        self._clock = clock
        self._jobs: queue.Queue = queue.Queue()
        self._work = threading.Event()
        self._lock = threading.Lock()
        self._closed = False
        self._conn: sqlite3.Connection | None = None    # the writer thread's
        self._claim_fd: int | None = None               # held while we may have claimed rows
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._writer = threading.Thread(target=self._write_loop, name="maild-spool-writer",
                                        daemon=True)
        self._writer.start()
        try:
            self._call(lambda conn: None)       # create and recover now
        except SpoolError as exc:
            log.error("spool %s unusable, refusing mail until it works: %s", self.path, exc)

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def submit(self, raw: bytes, envelope: Envelope, *,
               also: Callable[[sqlite3.Connection], None] | None = None
               ) -> concurrent.futures.Future:
        """Spool one message; ``also(conn)``, if given, runs in the same transaction."""
        if not isinstance(raw, (bytes, bytearray, memoryview)):
            raise TypeError(f"raw must be bytes, not {type(raw).__name__}")
        row = (self._now(), json.dumps(envelope.to_json()), bytes(raw))

        def run(conn: sqlite3.Connection) -> int:
            id_ = _insert(conn, *row)
            if also is not None:
                also(conn)
            return id_
        return self._submit(_Job(run, concurrent.futures.Future(), len(row[2]), wakes=True))

    async def put_async(self, raw: bytes, envelope: Envelope, *,
                        also: Callable[[sqlite3.Connection], None] | None = None) -> int:
        return await asyncio.wrap_future(self.submit(raw, envelope, also=also))

    def transaction(self, run: Callable[[sqlite3.Connection], object]) -> concurrent.futures.Future:
        """Run ``run(conn)`` on the writer thread in a group transaction; the future
        resolves to its result after the commit (or fails with ``SpoolError``)."""
        return self._submit(_Job(run, concurrent.futures.Future()))

    def read(self, sql: str, params: tuple = ()) -> list[tuple]:
        """Rows of a read-only query on this thread's reader connection."""
        return self._read(sql, params)

    def put(self, raw: bytes, envelope: Envelope) -> int:
        return self.submit(raw, envelope).result()

    def claim(self, limit: int = CLAIM_LIMIT, *,
              max_bytes: int = CLAIM_MAX_BYTES) -> list[SpoolItem]:
        """Up to ``limit`` oldest incoming rows, now ``processing``, whose raw bytes add up
        to at most ``max_bytes`` (but at least one row); a row back from a crash alone."""
        return self._call(lambda conn: self._claim(conn, limit, max_bytes), claims=True)

    def finish(self, ids: Iterable[int]) -> None:
        rows = [(id_,) for id_ in ids]
        if rows:
            self._call(lambda conn: conn.executemany(
                "DELETE FROM spool WHERE id = ? AND state = 'processing'", rows))

    def release(self, ids: Iterable[int]) -> None:
        rows = [(id_,) for id_ in ids]
        if rows:
            self._call(lambda conn: conn.executemany(
                "UPDATE spool SET state = 'incoming', attempts = max(attempts - 1, 0),"
                " updated_at = ? WHERE id = ? AND state = 'processing'",
                [(self._now(), id_) for (id_,) in rows]))

    def quarantine(self, id: int, reason: str) -> None:
        self._call(lambda conn: self._quarantine(conn, id, reason))

    def replay(self, id: int) -> None:
        self._call(lambda conn: self._replay(conn, id), wakes=True)

    def get(self, id: int) -> SpoolItem:
        rows = self._read(f"SELECT {COLUMNS} FROM spool WHERE id = ?", (id,))
        if not rows:
            raise UnknownSpoolItem(id)
        return _item(rows[0])

    def quarantined(self) -> list[SpoolItem]:
        rows = self._read(f"SELECT {COLUMNS} FROM spool WHERE state = 'quarantined' ORDER BY id")
        return [_item(row) for row in rows]

    def depth(self) -> dict[str, int]:
        return dict.fromkeys(STATES, 0) | dict(
            self._read("SELECT state, count(*) FROM spool GROUP BY state"))

    def wait_for_work(self, timeout: float) -> bool:
        woken = self._work.wait(timeout)
        if woken:
            self._work.clear()      # a claim after this sees everything that set it
        return woken

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._jobs.put(_STOP)   # behind every pending job: those are written first
        self._writer.join()
        for conn in self._readers:
            conn.close()
        if self._claim_fd is not None:
            os.close(self._claim_fd)

    # -- operations, run by the writer inside the group's transaction --------------------

    def _now(self) -> str:
        return self._clock().isoformat()

    def _claim(self, conn: sqlite3.Connection, limit: int, max_bytes: int) -> list[SpoolItem]:
        if self._claim_fd is None:
            raise SpoolBusy(f"another process claims from {self.path}")
        if limit < 1:
            return []
        while suspect := conn.execute(
                "SELECT id, attempts FROM spool INDEXED BY spool_suspect"
                " WHERE state = 'incoming' AND attempts > 0 ORDER BY id LIMIT 1").fetchone():
            id_, attempts = suspect
            if attempts < self.max_attempts:
                return self._take(conn, [id_])      # alone: if it crashes, it crashed alone
            reason = f"processing crashed {attempts} times"
            self._quarantine(conn, id_, reason)
            log.warning("spool item %s quarantined: %s", id_, reason)
        ids, total = [], 0              # no suspects: every incoming row has attempts 0
        for id_, size in conn.execute("SELECT id, length(raw) FROM spool WHERE state ="
                                      " 'incoming' ORDER BY id LIMIT ?", (limit,)).fetchall():
            if ids and total + size > max_bytes:
                break
            ids.append(id_)
            total += size
        return self._take(conn, ids)

    def _take(self, conn: sqlite3.Connection, ids: list[int]) -> list[SpoolItem]:
        """Move incoming rows ``ids`` to processing, counting the attempt; load them."""
        now, claimed = self._now(), []
        for id_ in ids:
            conn.execute("UPDATE spool SET state = 'processing', attempts = attempts + 1,"
                         " updated_at = ? WHERE id = ?", (now, id_))
            claimed.append(_item(conn.execute(f"SELECT {COLUMNS} FROM spool WHERE id = ?",
                                              (id_,)).fetchone()))
        return claimed

    def _quarantine(self, conn: sqlite3.Connection, id: int, reason: str) -> None:
        if not conn.execute("UPDATE spool SET state = 'quarantined', last_error = ?,"
                            " updated_at = ? WHERE id = ?", (reason, self._now(), id)).rowcount:
            raise UnknownSpoolItem(id)

    def _replay(self, conn: sqlite3.Connection, id: int) -> None:
        if not conn.execute("UPDATE spool SET state = 'incoming', attempts = 0, updated_at = ?"
                            " WHERE id = ? AND state = 'quarantined'", (self._now(), id)).rowcount:
            raise UnknownSpoolItem(f"no quarantined spool item {id}")
        log.info("spool item %s replayed from quarantine", id)

    # -- the writer thread ---------------------------------------------------------------

    def _call(self, run, *, wakes: bool = False, claims: bool = False):
        job = _Job(run, concurrent.futures.Future(), wakes=wakes, claims=claims)
        return self._submit(job).result()

    def _submit(self, job: _Job) -> concurrent.futures.Future:
        with self._lock:
            if self._closed:
                job.future.set_exception(SpoolError(f"spool {self.path} is closed"))
            else:
                self._jobs.put(job)
        return job.future

    def _write_loop(self) -> None:
        stopping = False
        while not stopping:
            jobs, stopping = self._take_batch()
            if jobs:
                self._write(jobs)
        if self._conn is not None:
            self._conn.close()

    def _take_batch(self) -> tuple[list[_Job], bool]:
        jobs: list[_Job] = []
        size, job = 0, self._jobs.get()
        while job is not _STOP:
            if job.future.set_running_or_notify_cancel():   # skip what callers cancelled
                jobs.append(job)
                size += job.size
            if len(jobs) >= MAX_BATCH_ITEMS or size >= MAX_BATCH_BYTES:
                return jobs, False
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                return jobs, False
        return jobs, True

    def _write(self, jobs: list[_Job]) -> None:
        outcomes: list[tuple[bool, object]] = []
        try:
            conn = self._connection()
            if self._claim_fd is None and any(job.claims for job in jobs):
                self._claim_fd = self._recover_orphans(conn)
            conn.execute("BEGIN IMMEDIATE")
            for job in jobs:
                try:
                    outcomes.append((True, job.run(conn)))
                except (UnknownSpoolItem, SpoolBusy) as exc:
                    outcomes.append((False, exc))
            conn.execute("COMMIT")
        except Exception as exc:    # whatever it was, none of the group is durable
            self._abort()
            log.error("spool write of %d job(s) failed: %s", len(jobs), exc)
            for job in jobs:
                job.future.set_exception(SpoolError(f"spool write failed: {exc}"))
            return
        self.commits += 1
        if any(job.wakes for job in jobs):
            self._work.set()
        for job, (ok, value) in zip(jobs, outcomes):
            if ok:
                job.future.set_result(value)
            else:
                job.future.set_exception(value)

    def _abort(self) -> None:
        try:
            if self._conn is not None and self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
        except sqlite3.Error as exc:
            log.warning("spool rollback failed, reopening: %s", exc)
            self._conn.close()
            self._conn = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            if not self.directory.is_dir():
                self.directory.mkdir(parents=True, exist_ok=True)
                _fsync_directory(self.directory.parent)
            conn = sqlite3.connect(self.path, isolation_level=None)
            try:
                _prepare(conn, self.directory)
                if (fd := self._recover_orphans(conn)) is not None:
                    os.close(fd)        # recovered; claim() takes the lock for good
                if conn.execute("SELECT 1 FROM spool WHERE state = 'incoming'").fetchone():
                    self._work.set()    # left over from before we opened
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def _recover_orphans(self, conn: sqlite3.Connection) -> int | None:
        """Take the claim lock; if free, rows in processing are a dead claimer's: requeue."""
        fd = os.open(self.directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        if os.geteuid() == 0:
            # root (an admin's `maild init`, a restore) must not leave the lock root-owned:
            # the service user could then never open the spool; it belongs to the folder's owner
            owner = os.stat(self.directory)
            os.fchown(fd, owner.st_uid, owner.st_gid)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            crashed = conn.execute("UPDATE spool SET state = 'incoming', updated_at = ?"
                                   " WHERE state = 'processing'", (self._now(),)).rowcount
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        if crashed:
            log.warning("spool %s: %d item(s) left in processing, back to incoming",
                        self.path, crashed)
        return fd

    def _read(self, sql: str, params: tuple = ()) -> list[tuple]:
        if self._closed:
            raise SpoolError(f"spool {self.path} is closed")
        try:
            return self._reader().execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise SpoolError(f"spool {self.path} unreadable: {exc}") from exc

    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:        # mode=rw: a reader never creates the file
            uri = self.path.absolute().as_uri() + "?mode=rw"
            conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            self._local.conn = conn
            with self._lock:
                self._readers.append(conn)
        return conn


def _insert(conn: sqlite3.Connection, received_at: str, envelope: str, raw: bytes) -> int:
    return conn.execute("INSERT INTO spool (state, received_at, updated_at, envelope, raw)"
                        " VALUES ('incoming', ?, ?, ?, ?)",
                        (received_at, received_at, envelope, raw)).lastrowid


def _prepare(conn: sqlite3.Connection, directory: Path) -> None:
    if (mode := conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]) != "wal":
        log.warning("spool in %s: journal_mode is %s, not wal", directory, mode)
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.executescript(SCHEMA)
    _fsync_directory(directory)             # the new files' directory entries are durable


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
