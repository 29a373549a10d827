"""Backup and restore as docs/operations.md says, on a live daemon: the sysadmin backs up
while mail keeps arriving, restores into a new folder, and the daemon there has every
ticket of the backup and processes what was in the spool, each message once.

The blocks marked `<!-- tested: backup -->` and `<!-- tested: restore -->` in
docs/operations.md are run line by line with `sh -c`, as they stand, with only the
machine-specific parts replaced: /var/lib/maild and /etc/maild -> the test's folders
(config and data share one folder here), /var/backups/maild -> the backup folder,
`maild` -> this checkout's, `-o maild -g maild` -> the test's user; `systemctl` lines are
the test's own start and stop.  Without the sqlite3 program, its `.backup` lines become
the Python one-liner the page gives instead.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
from pathlib import Path

from maild.config import load_settings
from maild.daemon import Daemon
from maild.runtime import Runtime
from tests.conftest import REPO
from tests.integration.harness import Helpdesk, RecordingSink, mail, running_helpdesk
from tests.integration.test_postfix import documented

DOCS = REPO / "docs" / "operations.md"
SQLITE_BACKUP = re.compile(r"""^sqlite3 (\S+) "\.backup '([^']+)'"$""")


def run_documented(block: str, paths: dict[str, Path]) -> list[str]:
    """Run the block's lines (but `systemctl`) with our paths; the commands run."""
    ran = []
    for line in documented(block, DOCS):
        if line.startswith("systemctl "):
            continue
        for documented_path, ours in paths.items():
            line = line.replace(documented_path, str(ours))
        line = line.replace("-o maild -g maild", f"-o {os.getuid()} -g {os.getgid()}")
        line = re.sub(r"^maild ", f"{shlex.quote(sys.executable)} -m maild.cli ", line)
        if shutil.which("sqlite3") is None and (match := SQLITE_BACKUP.match(line)):
            source, target = match.groups()
            line = (f"{shlex.quote(sys.executable)} -c \"import sqlite3; sqlite3.connect('{source}')"
                    f".backup(sqlite3.connect('{target}'))\"")
        done = subprocess.run(["sh", "-c", line], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, f"{line}: {done.stdout}{done.stderr}"
        ran.append(line)
    return ran


@contextlib.asynccontextmanager
async def daemon_from(config: Path):
    """maild on the test's loop, from a maild.yaml that is already there (not rewritten)."""
    daemon = Daemon(Runtime.open(load_settings(config)), install_signals=False)
    task = asyncio.create_task(daemon.run())
    try:
        await asyncio.wait_for(daemon.store_ready.wait(), 15)
        ports = [s.sockets[0].getsockname()[1] for s in daemon.servers]
        yield Helpdesk(config, daemon, RecordingSink(), task, *ports)
    finally:
        daemon.stop.set()
        await asyncio.wait_for(task, 15)


def customer_mail(n: int) -> bytes:
    return mail(f"Order {n} is late", f"Where is order {n}?", sender=f"Customer {n} <c{n}@customer.example>",
                message_id=f"order{n}@customer.example")


async def test_a_backup_of_a_live_daemon_restores_every_ticket_and_the_spool(tmp_path):
    live, backup, restored = tmp_path / "live", tmp_path / "backup", tmp_path / "restored"
    async with running_helpdesk(live, f"sqlite:///{live}/maild.db", relay=f"maildir:{live}/out") as desk:
        for n in range(3):                                   # in tickets before the backup
            await desk.send_smtp(customer_mail(n), sender=f"c{n}@customer.example")
        await desk.settle()
        # processing is busy (its one store thread held): what arrives now is accepted into
        # the spool and waits there, not yet in a ticket, while the backup runs
        held = threading.Event()
        desk.daemon.store.submit(held.wait)
        for n in range(3, 7):
            await desk.send_smtp(customer_mail(n), sender=f"c{n}@customer.example")
        assert desk.daemon.runtime.spool.depth()["incoming"] == 4
        ran = await asyncio.to_thread(run_documented, "backup", {
            "/var/lib/maild": live, "/etc/maild": live, "/var/backups/maild": backup})
        assert [line for line in ran if f"'{backup}/maild.db'" in line]
        held.set()
        await desk.settle()
        for n in range(7, 9):                                # after the backup: not in it
            await desk.send_smtp(customer_mail(n), sender=f"c{n}@customer.example")
        await desk.settle()
        assert len(desk.tickets()) == 9

    # a new machine: the configuration from the backup, its paths pointed at the new folder
    restored.mkdir()
    for name in ("maild.yaml", "rules.yaml"):
        text = (backup / "etc" / name).read_text()
        (restored / name).write_text(text.replace(str(live), str(restored)))
    (restored / "maild.db-wal").write_text("a stale WAL of another database")    # removed first
    ran = await asyncio.to_thread(run_documented, "restore", {
        "/var/lib/maild": restored, "/etc/maild": restored, "/var/backups/maild": backup})
    assert [line.split()[-1] for line in ran if "-m maild.cli" in line] == ["check", "init"]

    async with daemon_from(restored / "maild.yaml") as desk:
        await desk.settle()
        tickets = desk.tickets()
        assert sorted(t["subject"] for t in tickets) == sorted(f"Order {n} is late" for n in range(7))
        assert all(t["messages"] == 2 for t in tickets)      # the customer's mail, one ack
        outbox = desk.outbox()
        assert len(outbox) == 7 and {r["status"] for r in outbox} == {"sent"}
        assert desk.daemon.runtime.spool.depth() == {"incoming": 0, "processing": 0, "quarantined": 0}
    from store.models import Delivery, Message

    assert Delivery.select().count() == 7
    assert sorted(m.message_id for m in Message.select().where(Message.direction == "in")) == sorted(
        f"order{n}@customer.example" for n in range(7))
    # acknowledgements: the three of before the backup were not sent again from the restore
    acks = list((restored / "out" / "new").iterdir())
    assert len(acks) == 4
