"""py-spy against a running `maild serve`, and a per-thread summary of where the time went.

    profiler = Profiler(Path("prof"), start_child=...)
    profiler.start(pid); ...load...; profiler.stop()
    print(render(profiler.summary()))

Two samplers run side by side, both non-blocking (maild is never paused) at RATE Hz:

- ``maild.pyspy.txt``: every thread, idle ones included (``--threads --idle``);
- ``maild.gil.pyspy.txt``: only the thread holding the GIL (``--threads --gil``).

Both are collapsed stacks (``--format raw``; load them in speedscope or flamegraph.pl).
Per thread role the summary gives the share of samples in which the thread was *active*
(not parked in select/queue/condition waits) and the share in which it *held the GIL*:
active minus GIL is time spent waiting for the GIL (or in a syscall). Then the project
functions (maild/, parsers/, rules/, store/, templates/) and libraries that the GIL
holder spent its samples in, inclusive, and the event-loop samples inside database or
fsync code, which should be none (DESIGN §2).
"""
from __future__ import annotations

import collections
import re
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Callable

RATE = 100
ROLES = (("MainThread", "event loop"), ("maild-store", "store thread"),
         ("maild-spool-writer", "spool writer"), ("asyncio_", "default executor"),
         ("maild-template-watchdog", "template watchdog"))
# Leaf frames of a thread that waits for work rather than doing any.
IDLE_LEAVES = ("select (selectors.py", "poll (selectors.py", "wait (threading.py",
               "_wait_for_tstate_lock", "get (queue.py", "_worker (concurrent/futures/thread.py",
               "_Watchdog._run (templates/__init__.py")   # blocks in Lock.acquire(timeout)
# Frames that touch the database or fsync; the event loop must never run them.
BLOCKING = ("(peewee.py", "(playhouse/", "(store/", "Spool._write ", "Spool._claim ",
            "Spool._read ", "Spool._connection ", "_insert (maild/spool.py", "_fsync_directory",
            "MaildirRelay._write ", "sqlite3", "fsync")
PROJECT = ("(maild/", "(parsers/", "(rules/", "(store/", "(templates/")
LIBRARIES = ("(peewee.py", "(mailparser/", "(mailparser_reply/", "(email/", "(jinja2/",
             "(inscriptis/", "(aiosmtpd/", "(asyncio/", "(json/", "(re/", "(uuid.py")
# Frames every sample of a thread passes through: left out of the per-function shares.
SCAFFOLDING = ("(maild/cli.py", "(maild/commands.py", "(asyncio/runners.py",
               "(asyncio/base_events.py", "(asyncio/events.py", "(threading.py",
               "(concurrent/futures/thread.py", "(maild:")
_LINE = re.compile(r":\d+\)$")


class ProfilerMissing(Exception):
    """py-spy is not installed."""


def role_of(stack: str) -> str:
    thread = stack.split(";", 1)[0]
    return next((role for marker, role in ROLES if marker in thread), "other")


def _function(frame: str) -> str:
    """'fn (path/to/mod.py:12)' -> 'fn (path/to/mod.py)'."""
    return _LINE.sub(")", frame)


def _read(path: Path):
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if count.isdigit():
            yield stack, int(count)


class Profiler:
    """Two py-spy samplers against one pid, started and stopped by the benchmark.

    `start_child(name, argv, log_path)` starts a subprocess the caller keeps track of
    and returns an object with `stop(sig, timeout)` (the benchmark's `Child`)."""

    def __init__(self, directory: Path, start_child: Callable) -> None:
        self.directory = directory
        self.all = directory / "maild.pyspy.txt"
        self.gil = directory / "maild.gil.pyspy.txt"
        self._start_child = start_child
        self._children: list = []
        self.exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        if not Path(self.exe).exists():
            raise ProfilerMissing("--profile needs py-spy: .venv/bin/pip install py-spy")

    def start(self, pid: int) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        common = [self.exe, "record", "--pid", str(pid), "--threads", "--nonblocking",
                  "--rate", str(RATE), "--format", "raw"]
        for name, extra, out in (("py-spy", ["--idle"], self.all),
                                 ("py-spy --gil", ["--gil"], self.gil)):
            self._children.append(self._start_child(
                name, [*common, *extra, "--output", str(out)],
                self.directory / (out.stem + ".log")))
        time.sleep(1.0)         # attached before the load starts

    def stop(self) -> None:
        for child in self._children:
            child.stop(signal.SIGINT, timeout=30)     # py-spy writes its output on SIGINT
        self._children.clear()

    def summary(self, top: int = 15) -> dict:
        total, active = collections.Counter(), collections.Counter()
        blocked = collections.Counter()
        for stack, n in _read(self.all):
            role = role_of(stack)
            total[role] += n
            frames = stack.split(";")
            if any(marker in frames[-1] for marker in IDLE_LEAVES):
                continue
            active[role] += n
            if role == "event loop":
                hit = next((f for f in frames[1:] if any(b in f for b in BLOCKING)), None)
                if hit:
                    blocked[_function(hit)] += n
        held, spent = collections.Counter(), collections.defaultdict(collections.Counter)
        for stack, n in _read(self.gil):
            role = role_of(stack)
            held[role] += n
            seen = set()
            for frame in stack.split(";")[1:]:
                name = _function(frame)
                if (name not in seen and any(p in name for p in PROJECT + LIBRARIES)
                        and not any(p in name for p in SCAFFOLDING)):
                    seen.add(name)
                    spent[role][name] += n
        gil_total = sum(held.values())
        roles = {}
        for role, samples in total.most_common():
            roles[role] = {
                "samples": samples,
                "active": round(active[role] / samples, 3),
                "holds_gil": round(held[role] / samples, 3),
                "share_of_gil": round(held[role] / gil_total, 3) if gil_total else 0.0,
                "gil_time_in": [(name, round(n / held[role], 3))
                                for name, n in spent[role].most_common(top)] if held[role] else [],
            }
        return {"threads": roles, "gil_samples": gil_total,
                "event_loop_in_database_or_fsync": dict(blocked.most_common(top)),
                "files": [str(self.all), str(self.gil)]}


def render(summary: dict) -> str:
    lines = ["maild profile (py-spy, from warm-up end to last ack delivered):",
             "  thread             active  holds GIL  share of all GIL time"]
    for role, data in summary["threads"].items():
        lines.append(f"  {role:<18} {data['active']:>6.0%}  {data['holds_gil']:>9.0%}"
                     f"  {data['share_of_gil']:>8.0%}")
    for role, data in summary["threads"].items():
        if data["gil_time_in"] and data["share_of_gil"] >= 0.05:
            lines.append(f"  {role}, while holding the GIL (inclusive):")
            lines.extend(f"    {share:6.1%}  {name}" for name, share in data["gil_time_in"])
    blocked = summary["event_loop_in_database_or_fsync"]
    lines.append("  event-loop samples in database/fsync code: "
                 + (", ".join(f"{k}: {v}" for k, v in blocked.items()) if blocked else "none"))
    lines.append("  collapsed stacks: " + ", ".join(summary["files"]))
    return "\n".join(lines)
