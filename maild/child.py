"""The processing half of `maild serve`, run as a child process.

    child = ProcessingChild(config_path)
    child.start()          # `maild -c CONFIG process --wake-fd N`
    child.wake()           # after each accepted message: one byte down a pipe
    await child.stop()     # EOF on the pipe + SIGTERM: the child finishes its batch and exits

Intake (the listeners, the spool's group commit) and processing (parse, store, send)
each get a core and a GIL of their own; measured on two cores, processing in the same
process cost intake about 40% of its rate.  The spool is the only thing they share: the
parent only adds to it, the child is the one process that claims from it
(`spool/claim.lock`).  The wake pipe also tells the child that the parent is gone: on EOF
it stops as if sent SIGTERM, so a killed `maild serve` leaves no orphan behind.  A child
that dies is started again after `RESTART_SECONDS`; accepted mail waits in the spool.
"""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from maild.aio import wait_first

log = logging.getLogger(__name__)

RESTART_SECONDS = 2.0
STOP_SECONDS = 20.0        # with the listeners' 5 s, below systemd's TimeoutStopSec=30
QUICK_SECONDS = 10.0       # a child that dies this soon after starting ...
MAX_QUICK_DEATHS = 5       # ... this many times in a row is not restarted again


class ChildKeepsDying(Exception):
    """The processing child fails right after every start (e.g. a broken maild.yaml)."""


class ProcessingChild:
    def __init__(self, config_path: Path):
        self.config_path = config_path
        self.proc: subprocess.Popen | None = None
        self._wake_w: int | None = None
        self._terminated = False
        self.started_at = 0.0

    def start(self) -> None:
        read_end, write_end = os.pipe()
        try:
            os.set_blocking(write_end, False)
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "maild.cli", "-c", str(self.config_path), "process",
                 "--wake-fd", str(read_end)], pass_fds=(read_end,),
                start_new_session=True)     # a terminal's Ctrl-C reaches the parent only; it
                                            # relays the stop, so the child never sees two
        except BaseException:
            os.close(write_end)
            raise
        finally:
            os.close(read_end)
        self._wake_w = write_end
        self._terminated = False
        self.started_at = time.monotonic()
        log.info("processing child started, pid %d", self.proc.pid)

    def wake(self) -> None:
        if self._wake_w is None:
            return
        try:
            os.write(self._wake_w, b"\0")
        except BlockingIOError:
            pass                       # the pipe is full: a wake-up is pending anyway
        except OSError as exc:         # the child is gone; the supervisor restarts it
            log.debug("wake-up not delivered: %s", exc)

    def exited(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def terminate(self) -> None:
        """Ask the child to finish its batch and exit (SIGTERM); `stop()` waits for it."""
        if self.proc is not None and self.proc.poll() is None and not self._terminated:
            self._terminated = True              # once: a second SIGTERM means "exit now"
            self.proc.send_signal(signal.SIGTERM)

    async def stop(self) -> None:
        """SIGTERM, wait for the batch in hand (at most STOP_SECONDS), then close the pipe
        (EOF means "parent gone" only when the parent dies without this)."""
        self.terminate()
        if self.proc is not None and self.proc.poll() is None:
            try:
                await asyncio.get_running_loop().run_in_executor(None, self.proc.wait, STOP_SECONDS)
            except subprocess.TimeoutExpired:
                log.error("processing child did not stop in %ss; killing it (its batch is retried)",
                          STOP_SECONDS)
                self.proc.kill()
        if self._wake_w is not None:
            os.close(self._wake_w)
            self._wake_w = None

    async def supervise(self, stop: asyncio.Event) -> None:
        """Restart the child whenever it dies while we are not stopping; after
        `MAX_QUICK_DEATHS` deaths in a row within `QUICK_SECONDS` of starting, give up
        (raise), so maild stops and systemd, not a loop, decides what comes next."""
        quick_deaths = 0
        while not stop.is_set():
            await wait_first(stop, timeout=0.5)
            code = self.exited()
            if code is None or stop.is_set():
                continue
            quick = time.monotonic() - self.started_at < QUICK_SECONDS
            quick_deaths = quick_deaths + 1 if quick else 0
            if quick_deaths >= MAX_QUICK_DEATHS:
                raise ChildKeepsDying(f"processing child exited {quick_deaths} times in a row "
                                      f"within {QUICK_SECONDS}s of starting (last: {code})")
            log.error("processing child exited with %s; restarting in %ss", code, RESTART_SECONDS)
            await self.stop()
            await wait_first(stop, timeout=RESTART_SECONDS)
            if stop.is_set():
                return
            try:
                self.start()
            except OSError as exc:
                log.error("could not start the processing child: %s", exc)
                self.started_at = time.monotonic()

    def forward(self, signum: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signum)
