"""The processing half of `maild serve`, run as a child process.

    child = ProcessingChild(config_path)
    child.start()          # `maild -c CONFIG process --wake-fd N`
    child.wake()           # after each accepted message: one byte down the socket
    child.responsive(10)   # has its event loop beaten within 10 s?
    await child.stop()     # SIGTERM, then close the socket: it finishes its batch and exits

Intake (the listeners, the spool's group commit) and processing (parse, store, send)
each get a core and a GIL of their own; measured on two cores, processing in the same
process cost intake about 40% of its rate.  The spool is the only thing they share: the
parent only adds to it, the child is the one process that claims from it
(`spool/claim.lock`).  A child that dies is started again after `RESTART_SECONDS`;
accepted mail waits in the spool.

Parent and child share one unix socket pair (`--wake-fd`).  Down it go wake-ups (a byte
per accepted message); EOF tells the child that the parent is gone, and it stops as if
sent SIGTERM, so a killed `maild serve` leaves no orphan behind.  Up it go beats: the
child's event loop writes a byte every second (maild/daemon.py), and the parent sends
systemd's WATCHDOG=1 only while the child is `responsive()`, so a processing loop that
hangs (while the listeners still accept) makes systemd restart maild.  A child that is
stopping or dead counts as responsive (a dead one is the supervisor's business); a new
one has FIRST_BEAT_SECONDS for its first beat.  The child gets no NOTIFY_SOCKET
(maild/notify.py `child_environment`): only `maild serve` talks to systemd.
"""
from __future__ import annotations

import asyncio
import logging
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from maild.aio import wait_first
from maild.notify import child_environment

log = logging.getLogger(__name__)

RESTART_SECONDS = 2.0
STOP_SECONDS = 20.0        # worst drain: listeners 2x5 s + IMAP 20 s + this < TimeoutStopSec=60
QUICK_SECONDS = 10.0       # a child that dies this soon after starting ...
MAX_QUICK_DEATHS = 5       # ... this many times in a row is not restarted again
FIRST_BEAT_SECONDS = 30.0  # a new child's first beat may take this long (imports, rules)


class ChildKeepsDying(Exception):
    """The processing child fails right after every start (e.g. a broken maild.yaml)."""


class ProcessingChild:
    def __init__(self, config_path: Path, *, clock: Callable[[], float] = time.monotonic):
        self.config_path = config_path
        self.clock = clock
        self.proc: subprocess.Popen | None = None
        self._sock: socket.socket | None = None     # ours of the pair: wake-ups out, beats in
        self._terminated = False
        self.started_at = 0.0
        self.last_beat: float | None = None

    def start(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            ours.setblocking(False)
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "maild.cli", "-c", str(self.config_path), "process",
                 "--wake-fd", str(theirs.fileno())], pass_fds=(theirs.fileno(),),
                env=child_environment(),
                start_new_session=True)     # a terminal's Ctrl-C reaches the parent only; it
                                            # relays the stop, so the child never sees two
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self._sock = ours
        self._terminated = False
        self.started_at, self.last_beat = self.clock(), None
        asyncio.get_running_loop().add_reader(ours.fileno(), self._beats)
        log.info("processing child started, pid %d", self.proc.pid)

    def wake(self) -> None:
        if self._sock is None:
            return
        try:
            self._sock.send(b"\0")
        except BlockingIOError:
            pass                       # the socket is full: a wake-up is pending anyway
        except OSError as exc:         # the child is gone; the supervisor restarts it
            log.debug("wake-up not delivered: %s", exc)

    def _beats(self) -> None:
        try:
            data = self._sock.recv(4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            self.last_beat = self.clock()
        else:                          # the child closed its end: it is exiting or gone
            asyncio.get_running_loop().remove_reader(self._sock.fileno())

    def responsive(self, silence: float) -> bool:
        """False only when a running child's event loop has not beaten for `silence`
        seconds (it is stuck), or not at all within FIRST_BEAT_SECONDS of its start."""
        if self.proc is None or self._terminated or self.proc.poll() is not None:
            return True
        if self.last_beat is None:
            return self.clock() - self.started_at < FIRST_BEAT_SECONDS
        return self.clock() - self.last_beat < silence

    def exited(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def terminate(self) -> None:
        """Ask the child to finish its batch and exit (SIGTERM); `stop()` waits for it."""
        if self.proc is not None and self.proc.poll() is None and not self._terminated:
            self._terminated = True              # once: a second SIGTERM means "exit now"
            self.proc.send_signal(signal.SIGTERM)

    async def stop(self) -> None:
        """SIGTERM, wait for the batch in hand (at most STOP_SECONDS), then close the
        socket (EOF means "parent gone" only when the parent dies without this)."""
        self.terminate()
        if self.proc is not None and self.proc.poll() is None:
            try:
                await asyncio.get_running_loop().run_in_executor(None, self.proc.wait, STOP_SECONDS)
            except subprocess.TimeoutExpired:
                log.error("processing child did not stop in %ss; killing it (its batch is retried)",
                          STOP_SECONDS)
                self.proc.kill()
        if self._sock is not None:
            asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None

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
