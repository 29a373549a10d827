"""A whole maild on loopback for integration tests: the daemon in the test's loop.

    async with running_helpdesk(tmp_path, database_url) as desk:
        await desk.send_smtp(raw)                 # a customer's mail over SMTP
        await desk.wait_for(lambda: desk.tickets())
        desk.relay_messages                       # what reached the relay (an aiosmtpd sink)

Listeners on port 0, the outbound relay an aiosmtpd sink that records every message,
the database the fixture's (SQLite or PostgreSQL), the spool in tmp_path.
`running_helpdesk(..., relay="smtp://127.0.0.1:<port>")` sends through a real relay
instead (a Postfix of tests/postfix.py); then no sink is started and `desk.sink` stays
empty.
"""
from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiosmtplib
from aiosmtpd.smtp import SMTP

from maild.config import load_settings
from maild.daemon import Daemon
from maild.runtime import Runtime

SUPPORT = "support@example.com"
BILLING = "billing@example.com"


DEFAULT_RULES = ("version: 1\nqueues:\n  general: {address: support@example.com}\n"
                 "  billing: {address: billing@example.com}\n")


def write_config(folder: Path, database_url: str, relay: str, **extra) -> Path:
    """maild.yaml and rules.yaml in `folder`.  `extra` may give `limits`, `helpdesk` (more
    keys inside helpdesk: '{...}', e.g. 'comment_address: x@y'), `trust` and `scheduler`
    (the mappings), `imap` (the list of accounts: YAML text, or a list of dicts),
    `rules` (the whole rules.yaml), `metrics` (the mapping, e.g. '{listen: "127.0.0.1:0"}'), and `address`, `hostname`, `token_prefix` for a help
    desk other than support@example.com (a second instance)."""
    folder.mkdir(parents=True, exist_ok=True)
    limits = extra.get("limits", "{max_message_size: 200000, auto_replies_per_hour: 3}")
    more = f", {extra['helpdesk']}" if extra.get("helpdesk") else ""
    (folder / "maild.yaml").write_text(
        f"database: \"{database_url}\"\n"
        "spool: spool\n"
        'listen: {lmtp: "127.0.0.1:0", smtp: "127.0.0.1:0"}\n'
        f'outbound: {{relay: "{relay}", max_attempts: 3}}\n'
        f"helpdesk: {{name: {extra.get('token_prefix', 'Acme')} Support, "
        f"address: {extra.get('address', SUPPORT)}, token_prefix: {extra.get('token_prefix', 'Acme')}, "
        f"hostname: {extra.get('hostname', 'example.com')}{more}}}\n"
        "rules: rules.yaml\n"
        + (f"trust: {extra['trust']}\n" if extra.get("trust") else "")
        + (f"scheduler: {extra['scheduler']}\n" if extra.get("scheduler") else "")
        + (f"imap: {_yaml(extra['imap'])}\n" if extra.get("imap") else "")
        + (f"metrics: {extra['metrics']}\n" if extra.get("metrics") else "")
        + f"limits: {limits}\n")
    (folder / "rules.yaml").write_text(extra.get("rules", DEFAULT_RULES))
    return folder / "maild.yaml"


def _yaml(value) -> str:
    """YAML text as given; anything else as JSON (which YAML reads)."""
    return value if isinstance(value, str) else json.dumps(value)


class RecordingSink:
    """aiosmtpd handler: the outbound relay; keeps (envelope sender, recipients, bytes)."""

    def __init__(self):
        self.received: list[tuple[str, list[str], bytes]] = []
        self.reply = "250 2.0.0 Ok"      # a test may make the relay refuse ...
        self.stall: dict[str, asyncio.Event] = {}   # ... or hang on a recipient until set

    async def handle_DATA(self, server, session, envelope):
        for rcpt in envelope.rcpt_tos:
            if rcpt in self.stall:
                await self.stall[rcpt].wait()
        if not self.reply.startswith("250"):
            return self.reply
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        return self.reply


@dataclass
class Helpdesk:
    config: Path
    daemon: Daemon
    sink: RecordingSink
    task: asyncio.Task
    lmtp_port: int = 0
    smtp_port: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def relay_messages(self) -> list[email.message.EmailMessage]:
        return [email.message_from_bytes(raw, policy=email.policy.default)
                for _, _, raw in self.sink.received]

    async def send_smtp(self, raw: bytes, *, sender="carol@customer.example", rcpt=SUPPORT):
        return await aiosmtplib.send(raw, sender=sender, recipients=[rcpt], hostname="127.0.0.1",
                                     port=self.smtp_port, timeout=10)

    def tickets(self) -> list[dict]:
        from store.views import list_tickets
        return list_tickets()

    def ticket(self, number: int) -> dict:
        from store.views import show_ticket
        return show_ticket(number)

    def outbox(self) -> list[dict]:
        from store.views import list_outbox
        return list_outbox()

    async def wait_for(self, predicate, timeout: float = 10.0):
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting; last value {value!r}")
            await asyncio.sleep(0.05)

    async def settle(self):
        """Wait until the spool is empty and no outbound mail is queued."""
        def idle():
            depth = self.daemon.runtime.spool.depth()
            queued = [r for r in self.outbox() if r["status"] in ("queued", "sending")]
            return not depth.get("incoming") and not depth.get("processing") and not queued
        await self.wait_for(idle)


@contextlib.asynccontextmanager
async def running_helpdesk(folder: Path, database_url: str, *, relay: str | None = None, **extra):
    """`relay`: where outbound mail goes instead of the recording sink (then not started)."""
    loop = asyncio.get_running_loop()
    sink = RecordingSink()
    sink_server = None
    if relay is None:
        sink_server = await loop.create_server(lambda: SMTP(sink, hostname="sink.test"),
                                               "127.0.0.1", 0)
        relay = f"smtp://127.0.0.1:{sink_server.sockets[0].getsockname()[1]}"
    config = write_config(folder, database_url, relay, **extra)
    daemon = Daemon(Runtime.open(load_settings(config)), install_signals=False)
    task = asyncio.create_task(daemon.run())
    await asyncio.wait_for(daemon.store_ready.wait(), 15)
    ports = {s.sockets[0].getsockname()[1]: None for s in daemon.servers}
    lmtp_port, smtp_port = (s.sockets[0].getsockname()[1] for s in daemon.servers)
    desk = Helpdesk(config, daemon, sink, task, lmtp_port, smtp_port, extra)
    try:
        yield desk
    finally:
        daemon.stop.set()
        await asyncio.wait_for(task, 15)
        if sink_server is not None:
            sink_server.close()
        del ports


def mail(subject="Printer on fire", body="Help, the printer is on fire.", *,
         sender="Carol Customer <carol@customer.example>", to=SUPPORT, message_id=None,
         headers: dict | None = None) -> bytes:
    lines = [f"From: {sender}", f"To: {to}", f"Subject: {subject}",
             "Date: Sat, 21 Nov 2026 10:00:00 +0000", "MIME-Version: 1.0",
             "Content-Type: text/plain; charset=utf-8"]
    if message_id:
        lines.append(f"Message-ID: <{message_id}>")
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n" + body + "\r\n").encode()


async def lmtp_send(host: str, port: int, mail_from: str, rcpt_tos: list[str], raw: bytes) -> dict:
    """One LMTP transaction; returns {'rcpt': [(code, text)...], 'data': [(code, text)...]}."""
    from tests.maild.lmtpclient import LMTPClient

    client = await LMTPClient.connect(host, port)
    try:
        await client.command("LHLO client.test")
        rcpt, data = await client.send(mail_from, rcpt_tos, raw)
    finally:
        await client.close()
    return {"rcpt": [tuple(r) for r in rcpt], "data": [tuple(r) for r in data]}
