"""The running daemon's pid file, so `maild reload` finds it without systemd.

    write_pid_file(spool_dir)       # `maild serve`, once its listeners are bound
    pid = running_pid(spool_dir)    # raises DaemonNotRunning (no file, or a stale one)
    remove_pid_file(spool_dir)      # at a clean stop (only our own pid is removed)

The file is `maild.pid` in the spool directory (the one place maild is sure to own and
write); written atomically (temp file + rename).  A pid file left by a crash may name a
process that reused the number: `running_pid` accepts a pid only when that process's
command line is a `maild ... serve` (read from /proc), so a reload never signals a
stranger.  Under systemd, `systemctl reload maild`
sends the same SIGHUP through `$MAINPID` and needs no file.
"""
from __future__ import annotations

import os
from pathlib import Path

PID_FILE = "maild.pid"


class DaemonNotRunning(Exception):
    """No running maild answers at the pid file's process id."""


def write_pid_file(spool_dir: Path) -> Path:
    path = Path(spool_dir) / PID_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"{os.getpid()}\n")
    tmp.replace(path)
    return path


def remove_pid_file(spool_dir: Path) -> None:
    path = Path(spool_dir) / PID_FILE
    try:
        if int(path.read_text().strip()) == os.getpid():
            path.unlink()
    except (OSError, ValueError):
        pass


def running_pid(spool_dir: Path) -> int:
    path = Path(spool_dir) / PID_FILE
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        raise DaemonNotRunning(f"maild is not running (no pid file at {path})") from None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        raise DaemonNotRunning(f"maild is not running (stale pid file {path}: no process {pid})") from None
    except PermissionError:
        pass                     # it runs, as another user: the signal will say if we may
    if not _is_maild_serve(pid):
        raise DaemonNotRunning(f"maild is not running (stale pid file {path}: process {pid} "
                               "is not maild serve)")
    return pid


def _is_maild_serve(pid: int) -> bool:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except FileNotFoundError:
        return False                     # it exited meanwhile
    except OSError:
        return True                      # no /proc here: the pid is all we know
    words = [a.decode(errors="replace") for a in argv]
    return "serve" in words and any("maild" in w for w in words)
