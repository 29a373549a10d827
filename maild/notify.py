"""Tell systemd how maild is doing: the sd_notify protocol, in a few lines of stdlib.

    notifier = Notifier.from_environment()   # NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID
    notifier.ready()                         # READY=1: listeners bound, mail is accepted
    notifier.status("spool 0 incoming ...")  # STATUS=: the line `systemctl status` shows
    notifier.watchdog()                      # WATCHDOG=1: every watchdog_seconds / 2
    notifier.reloading(); notifier.ready()   # around a SIGHUP reload
    notifier.stopping()                      # STOPPING=1: the drain has begun

Under `Type=notify` systemd passes ``NOTIFY_SOCKET``: the path of a unix datagram socket,
or an abstract socket name written with a leading ``@``.  Each message is one datagram of
``KEY=value`` lines.  Without ``NOTIFY_SOCKET`` (a terminal, the tests' in-process
daemon) every call is a no-op, so callers never ask whether systemd is there.

A send never blocks and never raises: the socket is non-blocking, and a full or missing
receiver costs one log line (the first time), not the daemon.  ``WatchdogSec=`` reaches
us as ``WATCHDOG_USEC`` (and ``WATCHDOG_PID``, when set, must be our pid, else the
watchdog is meant for another process); ``watchdog_seconds`` is None without one.

``RELOADING=1`` carries ``MONOTONIC_USEC`` as ``Type=notify-reload`` (systemd 253) wants;
systemd 252 (Debian 12) takes it under ``Type=notify`` too, with ``ExecReload=kill -HUP``.

Children: `maild serve` is the main process (``NotifyAccess=main``); it starts its
processing child with ``child_environment()``, which drops these variables, so only the
main process speaks to systemd (the child beats to its parent instead, maild/child.py).
"""
from __future__ import annotations

import logging
import os
import socket
import time
from typing import Callable, Mapping

log = logging.getLogger(__name__)

ENVIRONMENT = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")
READY, STOPPING, RELOADING, WATCHDOG = "READY=1", "STOPPING=1", "RELOADING=1", "WATCHDOG=1"


def socket_address(value: str | None) -> str | bytes | None:
    """The address NOTIFY_SOCKET names: a path, or an abstract name ('@' -> NUL)."""
    if not value:
        return None
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    log.warning("NOTIFY_SOCKET=%r is neither a path nor @abstract; not notifying systemd", value)
    return None


def watchdog_seconds(environ: Mapping[str, str], pid: int) -> float | None:
    """The watchdog interval systemd expects pings within, or None without a watchdog."""
    usec, owner = environ.get("WATCHDOG_USEC", ""), environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if owner and (not owner.isdigit() or int(owner) != pid):
        return None                      # set for another process (our parent, say)
    return int(usec) / 1_000_000


def child_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """`environ` without the notify variables, for a process that must not notify."""
    return {k: v for k, v in (os.environ if environ is None else environ).items()
            if k not in ENVIRONMENT}


class Notifier:
    def __init__(self, address: str | bytes | None, *, watchdog: float | None = None,
                 monotonic_ns: Callable[[], int] = time.monotonic_ns):
        self.address = address
        self.watchdog_seconds = watchdog
        self._monotonic_ns = monotonic_ns
        self._sock: socket.socket | None = None
        self._failing = False

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None, *,
                         pid: int | None = None) -> "Notifier":
        environ = os.environ if environ is None else environ
        address = socket_address(environ.get("NOTIFY_SOCKET"))
        pid = os.getpid() if pid is None else pid
        return cls(address, watchdog=watchdog_seconds(environ, pid) if address else None)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def ready(self, status: str | None = None) -> bool:
        return self.send(READY, *([f"STATUS={status}"] if status else []))

    def status(self, text: str) -> bool:
        return self.send(f"STATUS={text}")

    def watchdog(self) -> bool:
        return self.send(WATCHDOG)

    def stopping(self, status: str | None = None) -> bool:
        return self.send(STOPPING, *([f"STATUS={status}"] if status else []))

    def reloading(self) -> bool:
        return self.send(RELOADING, f"MONOTONIC_USEC={self._monotonic_ns() // 1000}")

    def send(self, *lines: str) -> bool:
        """One datagram of `lines`; True if the socket took it."""
        if self.address is None:
            return False
        message = "\n".join(line.replace("\n", " ") for line in lines).encode()
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.setblocking(False)
            self._sock.sendto(message, self.address)
        except OSError as exc:          # no receiver, queue full: systemd's watchdog decides
            if not self._failing:
                log.warning("could not notify systemd at %r: %s", self.address, exc)
            self._failing = True
            return False
        if self._failing:
            log.info("notifying systemd again")
            self._failing = False
        return True

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
