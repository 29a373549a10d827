"""Spool micro-benchmark: serial put() vs group-committed put_async() from many producers.

    python bench/spool.py [--dir DIR] [--serial 2000] [--messages 20000] [--producers 64]

Serial: one put() at a time, so one commit (one WAL fsync) per message, as `maild ingest`
does. Concurrent: PRODUCERS asyncio tasks put_async() in a loop, as many LMTP sessions do;
the writer thread commits whatever is queued in one transaction. Prints messages/s, the
ratio group/serial, and how many messages shared a commit on average. Use --dir to
measure on the file system the real spool lives on (the default is a temporary
directory). A benchmark, not a test: the numbers depend on the disk.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from maild.envelope import Envelope  # noqa: E402
from maild.spool import Spool  # noqa: E402

ENVELOPE = Envelope("customer@example.org", ("support@example.com",), "lmtp", "127.0.0.1")
SIZES = (4 * 1024, 20 * 1024)


def message(size: int) -> bytes:
    head = b"From: customer@example.org\r\nSubject: bench\r\n\r\n"
    return head + os.urandom(size - len(head))


def serial(directory: Path, raw: bytes, count: int) -> tuple[float, int]:
    with Spool(directory) as spool:
        before, start = spool.commits, time.perf_counter()
        for _ in range(count):
            spool.put(raw, ENVELOPE)
        return count / (time.perf_counter() - start), spool.commits - before


async def concurrent(directory: Path, raw: bytes, count: int, producers: int) -> tuple[float, int]:
    with Spool(directory) as spool:
        async def produce(n: int) -> None:
            for _ in range(n):
                await spool.put_async(raw, ENVELOPE)

        before, start = spool.commits, time.perf_counter()
        shares = [count // producers + (i < count % producers) for i in range(producers)]
        await asyncio.gather(*(produce(n) for n in shares))
        return count / (time.perf_counter() - start), spool.commits - before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, help="parent directory for the spools")
    parser.add_argument("--serial", type=int, default=2000, help="messages put serially")
    parser.add_argument("--messages", type=int, default=20000, help="messages put concurrently")
    parser.add_argument("--producers", type=int, default=64)
    args = parser.parse_args()

    print(f"{'size':>6} {'serial msg/s':>13} {'group msg/s':>12} {'ratio':>6} {'msgs/commit':>12}")
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="spool-bench-") as tmp:
        for size in SIZES:
            raw = message(size)
            one_by_one, _ = serial(Path(tmp) / f"serial-{size}", raw, args.serial)
            grouped, commits = asyncio.run(concurrent(Path(tmp) / f"group-{size}", raw,
                                                      args.messages, args.producers))
            print(f"{size // 1024:>4}KB {one_by_one:>13,.0f} {grouped:>12,.0f}"
                  f" {grouped / one_by_one:>5.1f}x {args.messages / commits:>12.1f}")
    where = args.dir or tempfile.gettempdir()
    print(f"({args.producers} producers; temporary spools under {where})")


if __name__ == "__main__":
    main()
