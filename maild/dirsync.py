"""Make renames into a directory durable with as few directory fsyncs as possible.

    synced = DirectorySync(path)
    os.rename(tmp, path / name)
    synced.after_change()          # returns once an fsync of `path` began after the rename

A rename is durable once the directory has been fsynced *after* it.  Threads that rename
at about the same time need one such fsync, not one each: whoever finds no fsync running
starts one, which covers every change registered before it started; the others wait for
it (or for the next one, if theirs came in while it was already running).  An fsync that
fails raises in the thread that ran it; the threads waiting on it try again themselves,
so every caller either returns with its change durable or raises.  The Maildir relay
uses it for `new/`: with deliveries running in parallel, most of them share a flush.
"""
from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

log = logging.getLogger(__name__)


class DirectorySync:
    def __init__(self, path: Path | str, *, fsync=os.fsync):
        self.path = Path(path)
        self._fsync = fsync            # injectable: tests count and fail flushes
        self._lock = threading.Condition()
        self._changes = 0              # changes registered so far
        self._durable = 0              # changes covered by a completed fsync
        self._running = False

    def after_change(self) -> None:
        """Block until a directory fsync that began after this call's change completed."""
        with self._lock:
            self._changes += 1
            mine = self._changes
            while self._durable < mine:
                if self._running:
                    self._lock.wait()
                    continue
                self._running, covers, flushed = True, self._changes, False
                self._lock.release()           # others register changes meanwhile
                try:
                    self._flush()
                    flushed = True
                finally:
                    self._lock.acquire()
                    self._running = False
                    if flushed:
                        self._durable = max(self._durable, covers)
                    self._lock.notify_all()

    def _flush(self) -> None:
        fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            self._fsync(fd)
        finally:
            os.close(fd)
