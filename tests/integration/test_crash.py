"""Accept means durable: a crash anywhere after the 250 loses nothing and duplicates nothing."""
from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time

import aiosmtplib

from maild.config import load_settings
from maild.runtime import Runtime
from maild.spool import Spool
from maild.worker import Worker
from store.db import open_database
from store.migrations import migrate
from store.models import Delivery, Message
from store.views import list_tickets
from tests.integration.harness import SUPPORT, mail, running_helpdesk, write_config


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_daemon(config) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "maild.cli", "-c", str(config), "serve"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_listening(port: int, proc: subprocess.Popen, timeout=20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"maild exited: {proc.stderr.read().decode()[-2000:]}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError("maild did not start listening")


async def test_mail_acknowledged_before_sigkill_is_processed_after_restart_exactly_once(tmp_path, database_url):
    smtp_port, sink_port = free_port(), free_port()
    config = write_config(tmp_path, database_url, f"smtp://127.0.0.1:{sink_port}")
    text = config.read_text().replace('smtp: "127.0.0.1:0"', f'smtp: "127.0.0.1:{smtp_port}"')
    config.write_text(text.replace('lmtp: "127.0.0.1:0", ', ""))
    subprocess.run([sys.executable, "-m", "maild.cli", "-c", str(config), "init"], check=True,
                   capture_output=True)
    daemon = start_daemon(config)
    try:
        wait_listening(smtp_port, daemon)

        async def send(n):
            raw = mail(f"Crash test {n}", f"message {n}", message_id=f"crash{n}@customer.example",
                       sender=f"c{n}@customer.example")
            await aiosmtplib.send(raw, sender=f"c{n}@customer.example", recipients=[SUPPORT],
                                  hostname="127.0.0.1", port=smtp_port, timeout=10)

        await asyncio.gather(*(send(n) for n in range(40)))
        os.kill(daemon.pid, signal.SIGKILL)      # every message above got its 250
        daemon.wait(10)
    finally:
        if daemon.poll() is None:
            daemon.kill()
    settings = load_settings(config)
    db = open_database(settings.database_url)
    migrate(db)
    before = len(list_tickets())
    daemon = start_daemon(config)
    try:
        wait_listening(smtp_port, daemon)
        deadline = time.monotonic() + 30
        while len(list_tickets()) < 40 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(20) == 0
    subjects = sorted(t["subject"] for t in list_tickets())
    assert subjects == sorted(f"Crash test {n}" for n in range(40)), f"{before} processed before the kill"
    assert Message.select().where(Message.direction == "in").count() == 40
    db.close()


async def test_a_crash_after_the_ticket_commit_but_before_spool_cleanup_replays_without_duplicates(tmp_path, database_url):
    async with running_helpdesk(tmp_path, database_url) as desk:
        config = desk.config
    settings = load_settings(config)
    db = open_database(settings.database_url)
    migrate(db)

    class Crash(Exception):
        pass

    class SpoolThatDiesOnFinish(Spool):
        def finish(self, ids):
            raise Crash("killed between the store commit and the spool cleanup")

    spool = SpoolThatDiesOnFinish(settings.spool_dir)
    runtime = Runtime.open(settings, spool=spool)
    spool.put(mail(message_id="once@customer.example"), _envelope())
    try:
        Worker(spool, db, runtime.context).process_available()
    except Crash:
        pass
    spool.close()
    assert len(list_tickets()) == 1
    # restart: the spool hands the message out again, the store recognises it
    async with running_helpdesk(tmp_path, database_url) as desk:
        await desk.settle()
        [ticket] = desk.tickets()
        assert ticket["messages"] == 2                       # the mail and one acknowledgement
        assert Delivery.select().count() == 1
        assert [r["template"] for r in desk.outbox()] == ["ack"]
        assert desk.daemon.runtime.spool.depth().get("incoming", 0) == 0
    db.close()


def _envelope():
    from maild.envelope import Envelope
    return Envelope(mail_from="carol@customer.example", rcpt_tos=(SUPPORT,), received_via="smtp")


async def test_sigterm_finishes_the_batch_in_hand_and_leaves_the_backlog_in_the_spool(tmp_path, database_url):
    from maild.envelope import Envelope
    from maild.worker import BATCH

    async with running_helpdesk(tmp_path, database_url) as desk:
        spool = desk.daemon.runtime.spool
        envelope = Envelope(mail_from="c@customer.example", rcpt_tos=(SUPPORT,), received_via="smtp")
        await asyncio.gather(*(desk.daemon.submit(mail(f"Backlog {n}", message_id=f"b{n}@customer.example",
                                                       sender=f"c{n}@customer.example"), envelope)
                               for n in range(4 * BATCH)))
        desk.daemon.stop.set()                               # the harness then awaits the stop
    with Spool(load_settings(desk.config).spool_dir) as spool:
        left = spool.depth().get("incoming", 0)
    assert left >= 2 * BATCH, "the drain processed the backlog instead of stopping"
    async with running_helpdesk(tmp_path, database_url) as desk:       # ... and the next start does
        await desk.settle()
        assert len(desk.tickets()) == 4 * BATCH


def children_of(pid: int) -> list[int]:
    path = f"/proc/{pid}/task/{pid}/children"
    with open(path) as f:
        return [int(c) for c in f.read().split()]


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def serve_with_child(tmp_path, database_url, *, init=True):
    smtp_port = free_port()
    config = write_config(tmp_path, database_url, "maildir:out")
    config.write_text(config.read_text().replace('smtp: "127.0.0.1:0"', f'smtp: "127.0.0.1:{smtp_port}"')
                      .replace('lmtp: "127.0.0.1:0", ', ""))
    if init:
        subprocess.run([sys.executable, "-m", "maild.cli", "-c", str(config), "init"], check=True,
                       capture_output=True)
    daemon = start_daemon(config)
    wait_listening(smtp_port, daemon)
    deadline = time.monotonic() + 10
    while not children_of(daemon.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    [child] = children_of(daemon.pid)
    return config, smtp_port, daemon, child


def assert_child_follows_a_killed_parent(daemon, child) -> None:
    os.kill(daemon.pid, signal.SIGKILL)
    daemon.wait(10)
    deadline = time.monotonic() + 10
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child)


async def test_a_killed_serve_leaves_no_processing_child_behind(tmp_path, database_url):
    _, _, daemon, child = serve_with_child(tmp_path, database_url)
    assert_child_follows_a_killed_parent(daemon, child)


async def test_a_dead_processing_child_is_restarted_and_mail_still_becomes_tickets(tmp_path, database_url):
    config, smtp_port, daemon, child = serve_with_child(tmp_path, database_url)
    try:
        os.kill(child, signal.SIGKILL)
        await aiosmtplib.send(mail(message_id="restart@customer.example"), sender="carol@customer.example",
                              recipients=[SUPPORT], hostname="127.0.0.1", port=smtp_port, timeout=10)
        db = open_database(load_settings(config).database_url)
        deadline = time.monotonic() + 20
        while not list_tickets() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [t["subject"] for t in list_tickets()] == ["Printer on fire"]
        assert children_of(daemon.pid) and children_of(daemon.pid) != [child]
        db.close()
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(30) == 0


async def test_ctrl_c_to_the_process_group_stops_both_processes_gracefully(tmp_path, database_url):
    smtp_port = free_port()
    config = write_config(tmp_path, database_url, "maildir:out")
    config.write_text(config.read_text().replace('smtp: "127.0.0.1:0"', f'smtp: "127.0.0.1:{smtp_port}"')
                      .replace('lmtp: "127.0.0.1:0", ', ""))
    subprocess.run([sys.executable, "-m", "maild.cli", "-c", str(config), "init"], check=True,
                   capture_output=True)
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log_file:
        daemon = subprocess.Popen([sys.executable, "-m", "maild.cli", "-c", str(config), "serve"],
                                  stdout=subprocess.DEVNULL, stderr=log_file, start_new_session=True)
    wait_listening(smtp_port, daemon)
    deadline = time.monotonic() + 20
    while "processing ready" not in log_path.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(daemon.pid, signal.SIGINT)                   # what a terminal's Ctrl-C does
    assert daemon.wait(30) == 0
    log = log_path.read_text()
    assert log.count("maild stopped") == 2 and "second stop signal" not in log


async def test_the_child_follows_a_killed_parent_even_while_the_database_is_down(tmp_path):
    _, _, daemon, child = serve_with_child(
        tmp_path, "postgresql://postgres@127.0.0.1:9/test?connect_timeout=1", init=False)
    assert_child_follows_a_killed_parent(daemon, child)


async def test_a_child_that_dies_at_every_start_makes_serve_exit_nonzero(tmp_path, database_url):
    config, _, daemon, child = serve_with_child(tmp_path, database_url)
    try:
        config.write_text(config.read_text() + "typo_key: 1\n")     # the child can't start again
        os.kill(child, signal.SIGKILL)
        assert daemon.wait(60) == 1
    finally:
        if daemon.poll() is None:
            daemon.kill()
