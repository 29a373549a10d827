"""Mail hygiene with real daemons on loopback (SQLite and PostgreSQL): bounces come back
and are matched to the mail they return; two help desks that acknowledge each other over
a relay that hides every loop signal stop at the rate limit; a burst is one ticket."""
from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import json
import re
import socket
import subprocess
import sys
import time

import aiosmtplib
import pytest
from aiosmtpd.smtp import SMTP

from maild import cli
from tests.bounces import postfix_dsn
from tests.integration.harness import SUPPORT, lmtp_send, mail, running_helpdesk, write_config
from tests.integration.test_crash import free_port

CUSTOMER = "carol@customer.example"
QUIET = 4.0          # seconds without a new mail between the two desks: the exchange stopped


async def _acknowledged(desk, n: int):
    """A customer's mail, and the acknowledgement the relay sink saw: (MAIL FROM, bytes)."""
    await desk.send_smtp(mail(f"Printer {n} on fire", f"Printer number {n} is burning.",
                              message_id=f"printer{n}@customer.example"), sender=CUSTOMER)
    await desk.wait_for(lambda: len(desk.sink.received) >= n)
    await desk.settle()
    mail_from, rcpts, raw = desk.sink.received[n - 1]
    assert rcpts == [CUSTOMER]
    return mail_from, raw


def _row(desk, message_id: str) -> dict:
    [row] = [r for r in desk.outbox() if r["message_id"] == message_id]
    return row


async def test_bounces_mark_the_mail_they_return_and_open_nothing(tmp_path, database_url, capsys):
    async with running_helpdesk(tmp_path, database_url) as desk:
        # 1. an acknowledgement goes out with a VERP envelope sender; its bounce comes back there
        verp, ack = await _acknowledged(desk, 1)
        ack_id = email.message_from_bytes(ack, policy=email.policy.default)["Message-ID"].strip("<>")
        assert re.fullmatch(r"support\+bounces-\d+@example\.com", verp)
        replies = await lmtp_send("127.0.0.1", desk.lmtp_port, "", [verp],
                                  postfix_dsn(ack, recipient=CUSTOMER, to=verp))
        assert [code for code, _ in replies["data"]] == [250]
        await desk.settle()
        row = _row(desk, ack_id)
        assert row["status"] == "bounced"
        assert row["last_error"] == (f"5.1.1 <{CUSTOMER}>: Recipient address rejected: "
                                     "User unknown in virtual mailbox table")
        [ticket] = desk.tickets()
        shown = desk.ticket(ticket["number"])
        [failed] = [e for e in shown["events"] if e["kind"] == "delivery_failed"]
        assert CUSTOMER in failed["detail"] and "5.1.1" in failed["detail"]
        assert "ack to carol@customer.example (matched by VERP address)" in failed["detail"]
        assert [(m["kind"], m["internal"]) for m in shown["messages"]] == [
            ("normal", False), ("ack", False), ("bounce", True)]
        assert shown["status"] == "new" and len(desk.sink.received) == 1    # no mail to anyone

        # 2. a bounce that lost the VERP address: matched by the returned Message-ID
        _, ack2 = await _acknowledged(desk, 2)
        ack2_id = email.message_from_bytes(ack2, policy=email.policy.default)["Message-ID"].strip("<>")
        await lmtp_send("127.0.0.1", desk.lmtp_port, "", [SUPPORT],
                        postfix_dsn(ack2, recipient=CUSTOMER, to=SUPPORT,
                                    message_id="<second-dsn@mx.customer.example>"))
        await desk.settle()
        assert _row(desk, ack2_id)["status"] == "bounced"
        second = desk.ticket(desk.tickets()[1]["number"])
        assert any("(matched by returned Message-ID)" in e["detail"] for e in second["events"])

        # 3. a bounce of nobody's mail of ours: no ticket
        await lmtp_send("127.0.0.1", desk.lmtp_port, "", [SUPPORT], postfix_dsn(
            b"From: mallory@else.example\r\nMessage-ID: <spoof@else.example>\r\n\r\n",
            recipient="nobody@else.example", to=SUPPORT, message_id="<third@mx.else.example>"))
        await desk.settle()
        assert len(desk.tickets()) == 2 and len(desk.sink.received) == 2

    capsys.readouterr()
    assert cli.main(["-c", str(desk.config), "bounces", "--unmatched", "--json"]) == 0
    [unmatched] = json.loads(capsys.readouterr().out)
    assert (unmatched["recipient"], unmatched["status"], unmatched["ticket"], unmatched["matched_by"]) == (
        "nobody@else.example", "5.1.1", None, None)
    assert cli.main(["-c", str(desk.config), "bounces", "--json"]) == 0
    assert [b["matched_by"] for b in json.loads(capsys.readouterr().out)] == [None, "message-id", "verp"]


async def test_a_burst_of_the_same_mail_is_one_ticket_with_one_acknowledgement(tmp_path, database_url):
    async with running_helpdesk(tmp_path, database_url) as desk:
        for n in range(5):
            await desk.send_smtp(mail("Printer on fire", "Help, the printer is on fire!",
                                      message_id=f"again{n}@customer.example"), sender=CUSTOMER)
        await desk.settle()
        [ticket] = desk.tickets()
        shown = desk.ticket(ticket["number"])
        assert ticket["messages"] == 6                     # five mails and the acknowledgement
        assert len(desk.sink.received) == 1
        assert sum(e["kind"] == "collapsed" for e in shown["events"]) == 4


# -- two help desks that acknowledge each other ------------------------------------------

B_RULES = "version: 1\nqueues:\n  general: {address: support@b.example}\n"
A_RULES = "version: 1\nqueues:\n  general: {address: support@a.example}\n"
HIDDEN = ("Auto-Submitted", "X-Maild-Loop", "Precedence", "In-Reply-To", "References")
TOKEN = re.compile(r"\[[A-Za-z]+ #\d+\]\s*")


class Forwarder:
    """The relay between the two desks: what A sends goes to B's SMTP listener and back.
    `broken`: it hides every loop signal -- the RFC 3834 headers, our loop header, the
    thread headers, and the subject tokens (with a token the reply threads into the
    ticket it names, and the exchange ends there; here nothing but the rate limit may
    stop it)."""

    def __init__(self, broken: bool):
        self.broken = broken
        self.ports: dict[str, int] = {}          # domain -> SMTP port of its desk
        self.seen: list[tuple[str, str, float]] = []   # (envelope sender, recipient, when)

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.compat32)
        if self.broken:
            for name in HIDDEN:
                del message[name]
            subject = str(message["Subject"])
            del message["Subject"]
            message["Subject"] = TOKEN.sub("", subject)
        for rcpt in envelope.rcpt_tos:
            self.seen.append((envelope.mail_from, rcpt, time.monotonic()))
            await aiosmtplib.send(message.as_bytes(), sender=envelope.mail_from, recipients=[rcpt],
                                  hostname="127.0.0.1", port=self.ports[rcpt.rpartition("@")[2]],
                                  timeout=10)
        return "250 2.0.0 Ok"

    def to(self, address: str) -> int:
        return sum(rcpt == address for _, rcpt, _ in self.seen)

    async def quiet(self, timeout: float = 90.0) -> None:
        """Wait until QUIET seconds pass without a mail between the desks."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            last = self.seen[-1][2] if self.seen else 0.0
            if self.seen and time.monotonic() - last >= QUIET:
                return
            await asyncio.sleep(0.2)
        raise AssertionError(f"the exchange did not stop: {len(self.seen)} mails")


@pytest.fixture
def b_database_url(database_url, tmp_path):
    """Desk B's own database, of the same kind as A's."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path}/b.db"
        return
    from tests.conftest import _drop_schema, _pg_schema_url
    url, schema = _pg_schema_url()
    yield url
    _drop_schema(schema)


@contextlib.asynccontextmanager
async def two_desks(tmp_path, database_url, b_database_url, *, broken: bool):
    forwarder = Forwarder(broken)
    server = await asyncio.get_running_loop().create_server(
        lambda: SMTP(forwarder, hostname="relay.test"), "127.0.0.1", 0)
    relay = f"smtp://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    b_port = free_port()
    config = write_config(tmp_path / "b", b_database_url, relay, rules=B_RULES,
                          address="support@b.example", hostname="b.example", token_prefix="Bee")
    config.write_text(config.read_text().replace('lmtp: "127.0.0.1:0", smtp: "127.0.0.1:0"',
                                                 f'smtp: "127.0.0.1:{b_port}"'))
    subprocess.run([sys.executable, "-m", "maild.cli", "-c", str(config), "init"], check=True,
                   capture_output=True)
    log = open(tmp_path / "b.log", "wb")           # B's log: a pipe could fill and stall it
    b = subprocess.Popen([sys.executable, "-m", "maild.cli", "-c", str(config), "serve"],
                         stdout=subprocess.DEVNULL, stderr=log)
    try:
        await asyncio.to_thread(_wait_listening, b_port, b, tmp_path / "b.log")
        async with running_helpdesk(tmp_path / "a", database_url, relay=relay, rules=A_RULES,
                                    address="support@a.example", hostname="a.example",
                                    token_prefix="Ay") as a:
            forwarder.ports = {"a.example": a.smtp_port, "b.example": b_port}
            yield a, config, forwarder
    finally:
        b.terminate()
        b.wait(15)
        log.close()
        server.close()


def _wait_listening(port: int, proc: subprocess.Popen, log, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"desk B exited: {log.read_text(errors='replace')[-2000:]}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError("desk B did not start listening")


def _b(config, *command: str):
    done = subprocess.run([sys.executable, "-m", "maild.cli", "-c", str(config), *command, "--json"],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


async def test_two_desks_that_acknowledge_each_other_stop_at_the_rate_limit(
        tmp_path, database_url, b_database_url):
    async with two_desks(tmp_path, database_url, b_database_url, broken=True) as (a, b_config, fwd):
        await a.send_smtp(mail("Hello from B", "Hello, this is desk B.", sender="support@b.example",
                               to="support@a.example", message_id="start@b.example"),
                          sender="support@b.example", rcpt="support@a.example")
        await fwd.quiet()
        await a.settle()
        a_tickets, a_outbox = a.tickets(), a.outbox()
    b_tickets, b_outbox = _b(b_config, "tickets"), _b(b_config, "outbox")
    limit = 3                                  # limits.auto_replies_per_hour of both desks
    assert fwd.to("support@b.example") == limit and fwd.to("support@a.example") == limit
    assert [r["to"] for r in a_outbox] == ["support@b.example"] * limit
    assert [r["to"] for r in b_outbox] == ["support@a.example"] * limit
    # B's first mail and each of B's acknowledgements opened a ticket on A; A's acks one on B
    assert (len(a_tickets), len(b_tickets)) == (limit + 1, limit)
    refused = a.ticket(a_tickets[-1]["number"])["events"]
    assert any(e["kind"] == "no_acknowledgement" and "loop brake" in e["detail"] for e in refused)


async def test_two_desks_over_a_well_behaved_relay_stop_after_one_acknowledgement(
        tmp_path, database_url, b_database_url):
    async with two_desks(tmp_path, database_url, b_database_url, broken=False) as (a, b_config, fwd):
        await a.send_smtp(mail("Hello from B", "Hello, this is desk B.", sender="support@b.example",
                               to="support@a.example", message_id="start@b.example"),
                          sender="support@b.example", rcpt="support@a.example")
        await fwd.quiet()
        await a.settle()
        assert len(a.tickets()) == 1
    b_tickets = _b(b_config, "tickets")
    assert [(rcpt) for _, rcpt, _ in fwd.seen] == ["support@b.example"]     # A's one acknowledgement
    assert _b(b_config, "outbox") == [] and len(b_tickets) == 1
    shown = _b(b_config, "show", str(b_tickets[0]["number"]))
    assert [m["kind"] for m in shown["messages"]] == ["auto_reply"]
    assert any(e["kind"] == "no_acknowledgement" and "Auto-Submitted" in e["detail"]
               for e in shown["events"])
