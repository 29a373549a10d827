"""DirectorySync: every rename is covered by a directory fsync that began after it, and
renames made while one runs share the next."""
from __future__ import annotations

import os
import threading

import pytest

from maild.dirsync import DirectorySync


class Flushes:
    """An fsync that counts, can hold the first call until released, and can fail."""

    def __init__(self, *, hold_first: bool = False, fail_first: bool = False):
        self.count = 0
        self.started = threading.Event()
        self.release = threading.Event()
        if not hold_first:
            self.release.set()
        self.fail_first = fail_first

    def __call__(self, fd: int) -> None:
        self.count += 1
        first = self.count == 1
        self.started.set()
        self.release.wait()
        if first and self.fail_first:
            raise OSError(5, "Input/output error")
        os.fsync(fd)


def wait_until(predicate) -> None:
    event = threading.Event()
    while not predicate():
        event.wait(0.01)


def test_alone_every_change_gets_its_own_flush(tmp_path):
    flushes = Flushes()
    synced = DirectorySync(tmp_path, fsync=flushes)
    for _ in range(3):
        synced.after_change()
    assert flushes.count == 3


def test_changes_made_while_a_flush_runs_share_the_next_one(tmp_path):
    flushes = Flushes(hold_first=True)
    synced = DirectorySync(tmp_path, fsync=flushes)
    first = threading.Thread(target=synced.after_change)
    first.start()
    flushes.started.wait()                      # the first flush runs, and is held
    later = [threading.Thread(target=synced.after_change) for _ in range(3)]
    for thread in later:
        thread.start()
    wait_until(lambda: synced._changes == 4)    # all three registered behind it
    flushes.release.set()
    for thread in [first, *later]:
        thread.join()
    assert flushes.count == 2                   # one for the first, one for the other three


def test_a_failed_flush_raises_in_its_caller_and_the_waiters_flush_again(tmp_path):
    flushes = Flushes(hold_first=True, fail_first=True)
    synced = DirectorySync(tmp_path, fsync=flushes)
    errors: list[BaseException] = []

    def change() -> None:
        try:
            synced.after_change()
        except OSError as exc:
            errors.append(exc)

    first = threading.Thread(target=change)
    first.start()
    flushes.started.wait()
    waiter = threading.Thread(target=change)
    waiter.start()
    wait_until(lambda: synced._changes == 2)
    flushes.release.set()
    first.join()
    waiter.join()
    assert len(errors) == 1 and flushes.count == 2          # the waiter's change got its own
    synced.after_change()
    assert flushes.count == 3


def test_a_missing_directory_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        DirectorySync(tmp_path / "gone").after_change()
