"""SIGTERM drains `maild serve` (what `systemctl stop` and a restart do): nothing acknowledged
is lost, a client sending a message gets to finish it, idle clients hear 421 at once,
the delivery in progress is recorded, and a second SIGTERM exits at once."""
from __future__ import annotations

import asyncio
import signal
import smtplib
import subprocess
import sys
import time

import pytest

from maild.config import load_settings
from store.db import open_database
from store.migrations import migrate
from store.views import list_tickets
from tests.integration.harness import SUPPORT, mail, running_helpdesk, write_config
from tests.integration.test_crash import free_port, start_daemon, wait_listening
from tests.maild.lmtpclient import LMTPClient

pytestmark = pytest.mark.slow

TIMEOUT_STOP_SEC = 30          # deploy/systemd/maild.service: SIGKILL after this


def configure(tmp_path, database_url):
    lmtp, smtp = free_port(), free_port()
    config = write_config(tmp_path, database_url, f"maildir:{tmp_path / 'out'}")
    config.write_text(config.read_text().replace('lmtp: "127.0.0.1:0"', f'lmtp: "127.0.0.1:{lmtp}"')
                      .replace('smtp: "127.0.0.1:0"', f'smtp: "127.0.0.1:{smtp}"'))
    subprocess.run([sys.executable, "-m", "maild.cli", "-c", str(config), "init"], check=True,
                   capture_output=True)
    return config, lmtp, smtp


async def mid_data(port: int, raw: bytes) -> LMTPClient:
    """An MTA's LMTP session that has sent DATA and half of the message."""
    client = await LMTPClient.connect("127.0.0.1", port)
    await client.command("LHLO mx.example.net")
    await client.command("MAIL FROM:<carol@customer.example>")
    assert (await client.command(f"RCPT TO:<{SUPPORT}>")).code == 250
    assert (await client.command("DATA")).code == 354
    client.writer.write(raw[:len(raw) // 2])
    await client.writer.drain()
    return client


async def draining(port: int) -> bool:
    """The drain has begun: a new LMTP session is refused, or greeted with 421."""
    try:
        client = await LMTPClient.connect("127.0.0.1", port)
    except OSError:                   # ConnectionRefusedError, ConnectionResetError, ...
        return True
    await client.close()
    return client.greeting.code == 421


def tickets_after_restart(config, smtp: int, expected: int) -> list[str]:
    daemon = start_daemon(config)
    try:
        wait_listening(smtp, daemon)
        db = open_database(load_settings(config).database_url)
        migrate(db)
        deadline = time.monotonic() + 30
        while len(list_tickets()) < expected and time.monotonic() < deadline:
            time.sleep(0.1)
        subjects = sorted(t["subject"] for t in list_tickets())
        db.close()
        return subjects
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(TIMEOUT_STOP_SEC) == 0


# The first two are about the intake and the spool, which are SQLite whatever the ticket
# database: they run on SQLite only.

async def test_sigterm_lets_the_mta_finish_the_message_it_is_sending_then_answers_421(tmp_path):
    config, lmtp, smtp = configure(tmp_path, f"sqlite:///{tmp_path}/maild.db")
    daemon = start_daemon(config)
    try:
        wait_listening(lmtp, daemon)
        raw = mail("In hand", message_id="inhand@customer.example")
        sending = await mid_data(lmtp, raw)
        idle = await LMTPClient.connect("127.0.0.1", lmtp)
        assert (await idle.command("LHLO mx2.example.net")).code == 250
        daemon.send_signal(signal.SIGTERM)
        assert (await idle.reply()) == (421, "4.3.2 maild shutting down")    # without asking
        assert await draining(lmtp)
        sending.writer.write(raw[len(raw) // 2:] + b".\r\n")                 # the rest, and the dot
        await sending.writer.drain()
        assert (await sending.reply()).code == 250                             # durable: acknowledged
        assert await sending.command("MAIL FROM:<late@customer.example>") == \
            (421, "4.3.2 maild shutting down")
        assert daemon.wait(TIMEOUT_STOP_SEC) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
    assert "outlived the drain window" not in daemon.stderr.read().decode()
    assert tickets_after_restart(config, smtp, 1) == ["In hand"]


async def test_a_second_sigterm_exits_at_once_and_loses_nothing_acknowledged(tmp_path):
    config, lmtp, smtp = configure(tmp_path, f"sqlite:///{tmp_path}/maild.db")
    daemon = start_daemon(config)
    try:
        wait_listening(smtp, daemon)
        with smtplib.SMTP("127.0.0.1", smtp, timeout=10) as client:
            for n in range(20):
                client.sendmail(f"c{n}@customer.example", [SUPPORT],
                                mail(f"Acknowledged {n:02}", message_id=f"ack{n}@customer.example",
                                     sender=f"c{n}@customer.example"))
        unfinished = await mid_data(lmtp, mail("Never finished", message_id="half@customer.example"))
        daemon.send_signal(signal.SIGTERM)                # the drain waits for `unfinished` ...
        while not await draining(lmtp):
            await asyncio.sleep(0.05)
        daemon.send_signal(signal.SIGTERM)                # ... the second signal does not
        assert daemon.wait(TIMEOUT_STOP_SEC) == 0
        with pytest.raises(ConnectionError):              # cut off before its dot: never acknowledged
            await unfinished.reply()
    finally:
        if daemon.poll() is None:
            daemon.kill()
    log = daemon.stderr.read().decode()
    assert "second stop signal: exiting now" in log and "outlived the drain window" not in log
    assert tickets_after_restart(config, smtp, 20) == [f"Acknowledged {n:02}" for n in range(20)]


async def test_a_stop_waits_for_the_delivery_in_progress_and_records_it(tmp_path, database_url):
    async with running_helpdesk(tmp_path, database_url) as desk:
        release = asyncio.Event()
        desk.sink.stall["slow@customer.example"] = release         # the relay takes its time
        await desk.send_smtp(mail(message_id="slow@customer.example",
                                  sender="Slow <slow@customer.example>"), sender="slow@customer.example")
        await desk.wait_for(lambda: [r["status"] for r in desk.outbox()] == ["sending"])
        desk.daemon.stop.set()                                     # SIGTERM
        await asyncio.sleep(0.5)
        assert not desk.task.done()                                # still waiting for the relay
        release.set()
        await asyncio.wait_for(asyncio.shield(desk.task), 15)
        assert [(r["to"], r["status"]) for r in desk.outbox()] == [("slow@customer.example", "sent")]
        assert [rcpts for _, rcpts, _ in desk.sink.received] == [["slow@customer.example"]]
