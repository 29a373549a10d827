"""Observability of a running maild: what Prometheus scrapes at /metrics, what `maild
status` prints, and JSON log lines, against real daemons on loopback (an in-process one,
and `maild serve` with its processing child as systemd runs it)."""
from __future__ import annotations

import asyncio
import collections
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from maild import cli
from tests.bounces import postfix_dsn
from tests.integration.harness import SUPPORT, lmtp_send, mail, running_helpdesk, write_config
from tests.integration.test_crash import free_port, wait_listening
from tests.parsers import hostile

pytestmark = pytest.mark.timeout(180)

METRICS = '{listen: "127.0.0.1:0"}'


def scrape(port: int) -> dict[tuple, float]:
    """{(sample name, (label, value)...): value} of one GET /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    return {(s.name, *sorted(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: dict, name: str, **labels) -> float:
    return samples[(name, *sorted(labels.items()))]


def total(samples: dict, name: str) -> float:
    return sum(v for (n, *_), v in samples.items() if n == name)


async def scraped(port: int) -> dict:
    return await asyncio.to_thread(scrape, port)


def status_json(desk, capsys) -> dict:
    capsys.readouterr()
    assert cli.main(["-c", str(desk.config), "status", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


async def test_the_counters_and_gauges_say_what_a_running_maild_did(tmp_path, database_url, capsys):
    limits = "{max_message_size: 200000, auto_replies_per_hour: 3, max_header_bytes: 16k}"
    port = free_port()          # a fixed port: `maild status` reads it from maild.yaml
    async with running_helpdesk(tmp_path, database_url, metrics=f'{{listen: "127.0.0.1:{port}"}}',
                                limits=limits) as desk:
        assert desk.daemon.metrics_server.port == port
        before = await scraped(port)
        assert value(before, "maild_up") == 1
        assert value(before, "maild_messages_accepted_total", transport="smtp") == 0
        # four customers over SMTP, one over LMTP: five tickets, five acknowledgements
        for n in range(4):
            await desk.send_smtp(mail(f"Printer {n} on fire", message_id=f"p{n}@customer.example",
                                      sender=f"c{n}@customer.example"), sender=f"c{n}@customer.example")
        await lmtp_send("127.0.0.1", desk.lmtp_port, "c4@customer.example", [SUPPORT],
                        mail("Printer 4 on fire", message_id="p4@customer.example",
                             sender="c4@customer.example"))
        await desk.wait_for(lambda: len(desk.sink.received) == 5)
        await desk.settle()
        # a header over max_header_bytes: quarantined, not a ticket
        await desk.send_smtp(hostile.huge_header(100_000), sender="eve@evil.example")
        # the first acknowledgement bounces back to its VERP address
        verp, _, ack = desk.sink.received[0]
        await lmtp_send("127.0.0.1", desk.lmtp_port, "", [verp],
                        postfix_dsn(ack, recipient="c0@customer.example", to=verp))
        # the relay refuses the next acknowledgement for good
        desk.sink.reply = "550 5.1.1 <c5@customer.example>: no such user"
        await desk.send_smtp(mail("Printer 5 on fire", message_id="p5@customer.example",
                                  sender="c5@customer.example"), sender="c5@customer.example")
        await desk.wait_for(lambda: any(r["status"] == "failed" for r in desk.outbox()))
        await desk.settle()
        await desk.wait_for(lambda: desk.daemon.runtime.spool.depth()["quarantined"] == 1)

        after = await scraped(port)
        assert value(after, "maild_messages_accepted_total", transport="smtp") == 6
        assert value(after, "maild_messages_accepted_total", transport="lmtp") == 2
        assert value(after, "maild_messages_processed_total", outcome="created") == 6
        assert value(after, "maild_messages_processed_total", outcome="bounce") == 1
        assert value(after, "maild_messages_processed_total", outcome="duplicate") == 0
        assert value(after, "maild_messages_quarantined_total", reason="refused") == 1
        assert value(after, "maild_messages_quarantined_total", reason="parse") == 0
        assert value(after, "maild_automatic_mail_total", kind="bounce") == 1
        assert value(after, "maild_processing_seconds_count") == total(after, "maild_messages_processed_total") == 7
        assert value(after, "maild_processing_seconds_bucket", le="+Inf") == 7
        assert value(after, "maild_outbound_sent_total", template="ack") == 5
        assert value(after, "maild_outbound_failures_total", kind="failed") == 1
        assert value(after, "maild_outbound_failures_total", kind="bounced") == 1
        assert value(after, "maild_spool_messages", state="quarantined") == 1
        assert value(after, "maild_spool_messages", state="incoming") == 0
        assert value(after, "maild_database_up") == 1
        outbox = collections.Counter(r["status"] for r in desk.outbox())
        assert outbox == {"sent": 4, "bounced": 1, "failed": 1}
        for status in ("queued", "sending", "failed", "bounced"):
            assert value(after, "maild_outbox_messages", status=status) == outbox.get(status, 0)
        assert ("maild_outbox_messages", ("status", "sent")) not in after      # only grows: not gauged
        tickets = collections.Counter(t["status"] for t in desk.tickets())

        status = status_json(desk, capsys)
        assert status["quarantined"] == status["spool"]["quarantined"] == 1
        assert status["outbox"] == {s: outbox.get(s, 0) for s in ("queued", "sending", "sent", "failed", "bounced")}
        assert {s: n for s, n in status["tickets"].items() if n} == dict(tickets)
        assert sum(status["tickets"].values()) == 6
        assert status["sla_last_24h"] == {"warnings": 0, "breaches": 0}
        daemon = status["daemon"]
        assert daemon["scraped"] and daemon["error"] is None
        assert daemon["counters"]["accepted"] == {"lmtp": 2, "smtp": 6, "imap": 0}
        assert daemon["counters"]["processed"]["created"] == 6
        assert daemon["counters"]["quarantined"]["refused"] == 1
        assert daemon["counters"]["outbound_failures"] == {"retry": 0, "failed": 1, "bounced": 1}
        assert daemon["counters"]["processing_seconds"]["count"] == 7
        assert daemon["counters"]["outbound_sent"] == 5


async def test_without_metrics_nothing_listens_and_status_says_so(tmp_path, capsys):
    port = free_port()
    async with running_helpdesk(tmp_path, f"sqlite:///{tmp_path}/maild.db") as desk:
        assert desk.daemon.metrics_server is None
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0
        await desk.send_smtp(mail(message_id="plain@customer.example"))
        await desk.wait_for(desk.tickets)
        await desk.settle()
        status = status_json(desk, capsys)
    assert sum(status["tickets"].values()) == 1
    assert status["daemon"]["metrics"] is None and not status["daemon"]["scraped"]
    assert "metrics are off" in status["daemon"]["error"]
    capsys.readouterr()
    assert cli.main(["-c", str(desk.config), "status"]) == 0
    out = capsys.readouterr().out
    assert "tickets:     new 1" in out and "live numbers: metrics are off" in out


async def test_an_imap_account_shows_its_state_and_what_it_imported(tmp_path, imap_account):
    from tests.integration.test_imap import NAME, account_config, call, state

    async with running_helpdesk(tmp_path, f"sqlite:///{tmp_path}/maild.db", metrics=METRICS,
                                imap=[account_config(imap_account, tmp_path)]) as desk:
        await state(desk, "idle")
        port = desk.daemon.metrics_server.port
        samples = await scraped(port)
        assert value(samples, "maild_imap_account_state", account=NAME, state="idle") == 1
        assert value(samples, "maild_imap_account_state", account=NAME, state="failed_auth") == 0
        await call(imap_account.append, mail("Via IMAP", message_id="imap1@customer.example"))
        await desk.wait_for(desk.tickets, timeout=30)
        await desk.settle()
        samples = await scraped(port)
        assert value(samples, "maild_messages_accepted_total", transport="imap") == 1
        assert value(samples, "maild_messages_processed_total", outcome="created") == 1


# --- `maild serve` as systemd runs it: intake process + processing child -------------------

def _serve(config, stderr) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "maild.cli", "-c", str(config), "serve",
                             "--log-format", "json"], stdout=subprocess.DEVNULL, stderr=stderr)


async def _until(predicate, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while not (found := await asyncio.to_thread(predicate)):
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.1)
    return found


def _processed(port: int) -> float:
    try:
        return total(scrape(port), "maild_messages_processed_total")
    except (urllib.error.URLError, OSError):
        return 0


async def test_maild_serve_shows_both_processes_counts_at_one_endpoint_and_logs_json(tmp_path):
    import aiosmtplib
    from aiosmtpd.smtp import SMTP

    from tests.integration.harness import RecordingSink

    sink = RecordingSink()
    relay = await asyncio.get_running_loop().create_server(lambda: SMTP(sink), "127.0.0.1", 0)
    smtp_port, metrics_port = free_port(), free_port()
    config = write_config(tmp_path, f"sqlite:///{tmp_path}/maild.db",
                          f"smtp://127.0.0.1:{relay.sockets[0].getsockname()[1]}",
                          metrics=f'{{listen: "127.0.0.1:{metrics_port}"}}')
    text = config.read_text().replace('smtp: "127.0.0.1:0"', f'smtp: "127.0.0.1:{smtp_port}"')
    config.write_text(text.replace('lmtp: "127.0.0.1:0", ', ""))
    log_path = tmp_path / "maild.log"

    async def send(n):
        await aiosmtplib.send(mail(f"Serve {n}", message_id=f"serve{n}@customer.example",
                                   sender=f"s{n}@customer.example"),
                              sender=f"s{n}@customer.example", recipients=[SUPPORT],
                              hostname="127.0.0.1", port=smtp_port, timeout=10)

    with open(log_path, "wb") as log_file:
        daemon = _serve(config, log_file)
        try:
            await asyncio.to_thread(wait_listening, smtp_port, daemon)
            for n in range(3):
                await send(n)
            await _until(lambda: _processed(metrics_port) == 3)
            samples = await scraped(metrics_port)
            assert value(samples, "maild_messages_accepted_total", transport="smtp") == 3   # intake
            assert value(samples, "maild_messages_processed_total", outcome="created") == 3  # child
            assert value(samples, "maild_processing_seconds_count") == 3
            await _until(lambda: total(scrape(metrics_port), "maild_outbound_sent_total") == 3)
            # the child dies: its counts stay, the new child's add to them
            [child] = [json.loads(line)["msg"].rsplit(" ", 1)[1] for line in log_path.read_text().splitlines()
                       if "processing child started" in line]
            os.kill(int(child), signal.SIGKILL)
            await _until(lambda: log_path.read_text().count("processing child started") == 2)
            await send(3)
            await _until(lambda: _processed(metrics_port) == 4)
            samples = await scraped(metrics_port)
            assert value(samples, "maild_messages_accepted_total", transport="smtp") == 4
            assert value(samples, "maild_messages_processed_total", outcome="created") == 4
        finally:
            daemon.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(daemon.wait, 30) == 0
            relay.close()
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", metrics_port)) != 0        # stopped with maild
    entries = [json.loads(line) for line in log_path.read_text().splitlines()]   # every line JSON
    processed = {e["message_id"]: e for e in entries
                 if e["logger"] == "maild.worker" and " created " in e["msg"]}
    assert set(processed) == {f"serve{n}@customer.example" for n in range(4)}
    assert sorted(e["ticket"] for e in processed.values()) == [1, 2, 3, 4]
    accepted = [e for e in entries if e["logger"] == "maild.intake"]
    assert {e["message_id"] for e in accepted} == set(processed)
    sent = [e for e in entries if e["logger"] == "maild.outbound"]
    assert len(sent) == 4 and all(e["ticket"] in (1, 2, 3, 4) and e["message_id"] for e in sent)
