"""The ticket database may go away; accepted mail may not (DESIGN §2: the spool is local
so mail is still accepted while PostgreSQL is down)."""
from __future__ import annotations

import asyncio
import uuid

import aiosmtplib
import psycopg
import pytest

from maild.config import load_settings
from maild.daemon import Daemon
from maild.runtime import Runtime
from maild.spool import Spool
from tests.conftest import PG_URL
from tests.integration.harness import mail, running_helpdesk, write_config

pytestmark = pytest.mark.postgres
UNREACHABLE = "postgresql://postgres@127.0.0.1:9/test?connect_timeout=1"


async def test_mail_is_accepted_while_the_database_is_down_and_processed_once_it_is_back(tmp_path, postgres_url):
    config = write_config(tmp_path, UNREACHABLE, "maildir:out")
    daemon = Daemon(Runtime.open(load_settings(config)), install_signals=False)
    task = asyncio.create_task(daemon.run())
    await asyncio.wait_for(daemon.ready.wait(), 10)
    smtp_port = daemon.servers[1].sockets[0].getsockname()[1]
    await aiosmtplib.send(mail(message_id="down@customer.example"), sender="carol@customer.example",
                          recipients=["support@example.com"], hostname="127.0.0.1", port=smtp_port)
    assert not daemon.store_ready.is_set()
    daemon.stop.set()
    await asyncio.wait_for(task, 10)                       # stops although the DB never came
    with Spool(load_settings(config).spool_dir) as spool:
        assert spool.depth().get("incoming") == 1
    async with running_helpdesk(tmp_path, postgres_url) as desk:   # same folder, same spool
        await desk.settle()
        [ticket] = desk.tickets()
        assert ticket["subject"] == "Printer on fire"


async def test_processing_resumes_after_the_server_drops_our_connection(tmp_path, postgres_url):
    tag = f"maild_outage_{uuid.uuid4().hex[:8]}"              # only our own connections are cut
    async with running_helpdesk(tmp_path, f"{postgres_url}&application_name={tag}") as desk:
        await desk.send_smtp(mail(message_id="before@customer.example"))
        await desk.settle()
        with psycopg.connect(PG_URL, autocommit=True) as admin:
            killed = admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                   "WHERE application_name = %s", [tag]).fetchall()
        assert killed, "no maild connection was found to cut"
        desk.daemon.db.close()                              # the test thread's own connection
        await desk.send_smtp(mail("After the restart", message_id="after@customer.example",
                                  sender="Dan <dan@customer.example>"))
        await desk.wait_for(lambda: len(desk.tickets()) == 2, timeout=20)
        await desk.settle()
        assert len(desk.relay_messages) == 2
