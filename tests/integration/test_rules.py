"""The admin's rules at work in a running maild: routing, assignment, discard, reload."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import aiosmtplib

from store.models import Event
from tests.integration.harness import SUPPORT, mail, running_helpdesk, write_config
from tests.integration.test_crash import free_port, start_daemon, wait_listening

RULES = """\
version: 1
agents:
  - {address: alice@example.com, name: Alice Agent}
  - {address: bob@example.com, name: Bob Builder}
  - {address: carol@example.com, name: Carol Clerk}
teams:
  l1: {members: [alice@example.com, bob@example.com, carol@example.com], assign: round_robin}
  finance: {members: [carol@example.com]}
queues:
  general: {address: support@example.com, team: l1}
  billing: {address: billing@example.com, team: finance}
contacts:
  - {address: ceo@bigcorp.com, org: BigCorp, tier: gold}
rules:
  - name: Spam
    when: {header: {X-Spam-Flag: 'YES'}}
    then: {discard: true, tags: [spam]}
    stop: true
  - name: Invoices
    when: {subject: {matches: '(?i)\\binvoice\\b'}}
    then: {queue: billing, tags: [billing], assign: carol@example.com, auto_reply: ack_billing}
  - name: Gold
    when: {customer_tier: gold}
    then: {priority: high, tags: [vip]}
  - name: Outage
    when: {body: {contains: 'is down'}}
    then: {priority: urgent, tags: [outage]}
    on: reply
"""

ACK_BILLING = ("Hello {{ customer.address }}, billing received ticket #{{ ticket.number }} "
               "({{ ticket.queue }}). Invoices are answered within two days.\n")


def site_templates(folder):
    (folder / "templates").mkdir(parents=True, exist_ok=True)
    (folder / "templates" / "ack_billing.txt.j2").write_text(ACK_BILLING)


def text(message) -> str:
    return message.get_body(("plain",)).get_content()


def inbound(ticket: dict) -> list[dict]:
    return [m for m in ticket["messages"] if m["direction"] == "in"]


def to(desk, address):
    return [m for m in desk.relay_messages if m["To"] and address in m["To"]]


async def test_rules_route_assign_tag_and_answer_with_the_chosen_template(tmp_path, database_url):
    site_templates(tmp_path)
    async with running_helpdesk(tmp_path, database_url, rules=RULES) as desk:
        await desk.send_smtp(mail("Invoice 42 is wrong", message_id="inv@customer.example",
                                  sender="ceo@bigcorp.com"), sender="ceo@bigcorp.com")
        await desk.send_smtp(mail("Printer", message_id="p@customer.example"))
        await desk.wait_for(lambda: len(desk.tickets()) == 2)
        await desk.settle()
        invoice, printer = desk.ticket(1), desk.ticket(2)
        assert (invoice["queue"], invoice["priority"], invoice["assignee"], invoice["tags"]) == \
            ("billing", "high", "carol@example.com", ["billing", "vip"])
        assert (printer["queue"], printer["priority"], printer["assignee"], printer["tags"]) == \
            ("general", "normal", "alice@example.com", [])
        assert ("rules", "rules", "matched: Invoices; Gold") in \
            [(e["actor"], e["kind"], e["detail"]) for e in invoice["events"]]
        assert ("rules", "no rule matched") in [(e["kind"], e["detail"]) for e in printer["events"]]
        [ack] = to(desk, "ceo@bigcorp.com")
        assert "Invoices are answered within two days" in text(ack)
        assert "billing received ticket #1 (billing)" in text(ack)
        [ack] = to(desk, "carol@customer.example")
        assert "opened ticket #2" in text(ack)                 # the packaged `ack`
        # the assignee alone hears of the new ticket
        assert [m["Subject"] for m in to(desk, "carol@example.com")] == \
            ["[Acme #1] Invoice 42 is wrong"]


async def test_round_robin_assigns_thirty_tickets_ten_each(tmp_path, database_url):
    async with running_helpdesk(tmp_path, database_url, rules=RULES.replace(
            "auto_reply: ack_billing", "auto_reply: false")) as desk:
        await asyncio.gather(*(desk.send_smtp(mail(f"Question {n}", message_id=f"q{n}@customer.example",
                                                   sender=f"c{n}@customer.example"),
                                              sender=f"c{n}@customer.example")
                               for n in range(30)))
        await desk.wait_for(lambda: len(desk.tickets()) == 30, timeout=30)
        assert Counter(t["assignee"] for t in desk.tickets()) == \
            {"alice@example.com": 10, "bob@example.com": 10, "carol@example.com": 10}


async def test_spam_is_kept_closed_and_answered_never(tmp_path, database_url):
    async with running_helpdesk(tmp_path, database_url, rules=RULES.replace(
            "auto_reply: ack_billing", "auto_reply: false")) as desk:
        await desk.send_smtp(mail("Cheap invoice software", message_id="spam@x.example",
                                  headers={"X-Spam-Flag": "YES"}))
        await desk.wait_for(lambda: desk.tickets())
        await desk.settle()
        ticket = desk.ticket(1)
        assert (ticket["status"], ticket["queue"], ticket["tags"], ticket["assignee"]) == \
            ("closed", "general", ["spam"], None)       # `stop`: the invoice rule never ran
        assert [e["detail"] for e in ticket["events"] if e["kind"] == "discarded"] == ["matched: Spam"]
        assert ticket["messages"][0]["text"].startswith("Help, the printer")   # stored
        assert desk.outbox() == [] and desk.relay_messages == []          # nobody hears of it


async def test_an_on_reply_rule_raises_the_priority_of_a_ticket_when_the_customer_replies(tmp_path, database_url):
    async with running_helpdesk(tmp_path, database_url, rules=RULES.replace(
            "auto_reply: ack_billing", "auto_reply: false")) as desk:
        await desk.send_smtp(mail("Shop slow", "Our shop is slow.", message_id="s1@customer.example"))
        await desk.wait_for(lambda: desk.tickets())
        await desk.send_smtp(mail("Re: [Acme #1] Invoice and shop", "Any news about the invoice?",
                                  message_id="s2@customer.example"))
        await desk.send_smtp(mail("Re: [Acme #1] Shop slow", "Now the shop is down completely.",
                                  message_id="s3@customer.example"))
        await desk.wait_for(lambda: len(inbound(desk.ticket(1))) == 3)
        ticket = desk.ticket(1)
        assert len(desk.tickets()) == 1
        # the invoice rule is not `on: reply`: the reply stays in general, untagged billing
        assert (ticket["priority"], ticket["queue"], ticket["tags"]) == ("urgent", "general", ["outage"])
        rules_events = [e["detail"] for e in ticket["events"] if e["kind"] == "rules"]
        assert rules_events == ["no rule matched", "matched: Outage"]


async def test_a_rule_can_discard_a_reply_without_reopening_or_tagging_the_ticket(tmp_path, database_url):
    rules = RULES + """\
  - name: Thanks only
    when: {body: {matches: '(?i)^\\s*thanks?( you)?[.!]*\\s*$'}}
    then: {discard: true, tags: [thanks]}
    on: reply
"""
    async with running_helpdesk(tmp_path, database_url, rules=rules.replace(
            "auto_reply: ack_billing", "auto_reply: false")) as desk:
        await desk.send_smtp(mail("Printer", message_id="t1@customer.example"))
        await desk.wait_for(lambda: desk.tickets())
        with desk.daemon.db.atomic():
            from store.models import Ticket
            Ticket.update(status="resolved").execute()
        await desk.settle()
        sent = len(desk.relay_messages)
        await desk.send_smtp(mail("Re: [Acme #1] Printer", "Thanks!", message_id="t2@customer.example"))
        await desk.wait_for(lambda: len(inbound(desk.ticket(1))) == 2)
        await desk.settle()
        ticket = desk.ticket(1)
        assert ticket["status"] == "resolved"                 # not reopened by a thank-you
        assert ticket["tags"] == []                           # nor tagged: it changes nothing
        assert [m["kind"] for m in inbound(ticket)] == ["normal", "discarded"]   # marked
        assert len(desk.relay_messages) == sent                # and nobody was notified
        assert Event.select().where(Event.kind == "discarded").count() == 1


async def test_strangers_and_robots_naming_a_ticket_do_not_trigger_reply_rules(tmp_path, database_url):
    async with running_helpdesk(tmp_path, database_url, rules=RULES.replace(
            "auto_reply: ack_billing", "auto_reply: false")) as desk:
        await desk.send_smtp(mail("Shop slow", "Our shop is slow.", message_id="o1@customer.example"))
        await desk.wait_for(lambda: desk.tickets())
        await desk.send_smtp(mail("Re: [Acme #1] Shop slow", "The site is down!!!",
                                  sender="mallory@evil.example", message_id="o2@evil.example"),
                             sender="mallory@evil.example")
        await desk.send_smtp(mail("Automatic reply: [Acme #1] Shop slow", "I am out; the site is down?",
                                  message_id="o3@customer.example",
                                  headers={"Auto-Submitted": "auto-replied"}))
        await desk.wait_for(lambda: len(inbound(desk.ticket(1))) == 3)
        ticket = desk.ticket(1)
        assert (ticket["priority"], ticket["tags"], ticket["assignee"]) == \
            ("normal", [], "alice@example.com")
        assert [e["detail"] for e in ticket["events"] if e["kind"] == "rules_not_applied"] == [
            "matched: Outage; not applied: the sender is not on the ticket",
            "matched: Outage; not applied: automatic mail"]


# --- reload: a real daemon process, real signals --------------------------------------------

def _serve(tmp_path, database_url, rules: str):
    smtp_port = free_port()
    config = write_config(tmp_path, database_url, f"maildir:{tmp_path / 'outbound'}", rules=rules)
    text = config.read_text().replace('smtp: "127.0.0.1:0"', f'smtp: "127.0.0.1:{smtp_port}"')
    config.write_text(text.replace('lmtp: "127.0.0.1:0", ', ""))
    subprocess.run([sys.executable, "-m", "maild.cli", "-c", str(config), "init"], check=True,
                   capture_output=True)
    return config, smtp_port


def _queues(config):
    done = subprocess.run([sys.executable, "-m", "maild.cli", "-c", str(config), "tickets", "--json"],
                          capture_output=True, text=True, check=True)
    import json
    return [(t["subject"], t["queue"]) for t in json.loads(done.stdout)]


def _wait(predicate, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out; last {value!r}")


SIMPLE = """\
version: 1
queues:
  general: {address: support@example.com}
  billing: {address: billing@example.com}
rules:
  - name: Invoices
    when: {subject: {contains: invoice}}
    then: {queue: billing}
"""


async def test_sighup_with_a_broken_file_keeps_the_last_good_rules_and_mail_flowing(tmp_path, database_url):
    config, port = _serve(tmp_path, database_url, SIMPLE)
    daemon = start_daemon(config)
    try:
        wait_listening(port, daemon)

        async def send(subject, n):
            await aiosmtplib.send(mail(subject, message_id=f"r{n}@customer.example"),
                                  sender="carol@customer.example", recipients=[SUPPORT],
                                  hostname="127.0.0.1", port=port, timeout=10)

        await send("invoice 1", 1)
        _wait(lambda: _queues(config) == [("invoice 1", "billing")])
        (tmp_path / "rules.yaml").write_text(SIMPLE.replace("{contains: invoice}", "{contians: x}")
                                             .replace("queue: billing", "queue: biling"))
        os.kill(daemon.pid, signal.SIGHUP)
        await asyncio.sleep(1.0)
        await send("invoice 2", 2)                        # accepted, routed by the old rules
        _wait(lambda: ("invoice 2", "billing") in _queues(config))
        assert daemon.poll() is None
        # `maild reload` refuses the broken file itself, naming each problem
        done = subprocess.run([sys.executable, "-m", "maild.cli", "-c", str(config), "reload"],
                              capture_output=True, text=True)
        assert done.returncode == 1
        assert "rules.yaml:8:" in done.stderr and "contians" in done.stderr and "biling" in done.stderr
        assert "not reloaded" in done.stderr
        # a good edit applies after `maild reload`
        (tmp_path / "rules.yaml").write_text(SIMPLE.replace("contains: invoice", "contains: refund"))
        done = subprocess.run([sys.executable, "-m", "maild.cli", "-c", str(config), "reload"],
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        await asyncio.sleep(1.0)
        await send("invoice 3", 3)
        await send("refund 4", 4)
        _wait(lambda: len(_queues(config)) == 4)
        assert _queues(config)[2:] == [("invoice 3", "general"), ("refund 4", "billing")]
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(15)
        finally:
            if daemon.poll() is None:
                daemon.kill()
    log = daemon.stderr.read().decode()
    assert "reload refused, keeping the last good rules" in log
    assert "rules.yaml:8:" in log
    assert not (tmp_path / "spool" / "maild.pid").exists()       # removed at a clean stop


def test_maild_reload_without_a_running_daemon_says_so(tmp_path, database_url):
    config, _ = _serve(tmp_path, database_url, SIMPLE)
    done = subprocess.run([sys.executable, "-m", "maild.cli", "-c", str(config), "reload"],
                          capture_output=True, text=True)
    assert done.returncode == 1
    assert "maild is not running (no pid file at" in done.stderr




def test_maild_reload_never_signals_a_process_that_reused_a_stale_pid(tmp_path, database_url):
    config, _ = _serve(tmp_path, database_url, SIMPLE)
    stranger = subprocess.Popen(["sleep", "30"])
    try:
        (tmp_path / "spool" / "maild.pid").write_text(f"{stranger.pid}\n")
        done = subprocess.run([sys.executable, "-m", "maild.cli", "-c", str(config), "reload"],
                              capture_output=True, text=True)
        assert done.returncode == 1
        assert f"process {stranger.pid} is not maild serve" in done.stderr
        assert stranger.poll() is None                       # still alive: no SIGHUP sent
    finally:
        stranger.kill()
        stranger.wait()


def ignores_sighup(pid: int, timeout: float = 30.0) -> None:
    """Wait until process `pid` ignores SIGHUP (its SigIgn mask in /proc): before that,
    Python itself is still starting and SIGHUP's default action ends any program."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = Path(f"/proc/{pid}/status").read_text()
        mask = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigIgn:")), 16)
        if mask & (1 << (signal.SIGHUP - 1)):
            return
        time.sleep(0.005)
    raise AssertionError(f"process {pid} never ignored SIGHUP")


def test_a_reload_asked_for_while_maild_starts_does_not_stop_it(tmp_path, database_url):
    config, port = _serve(tmp_path, database_url, SIMPLE)
    daemon = start_daemon(config)
    try:
        ignores_sighup(daemon.pid)            # from maild.cli.main on; listeners not bound yet
        daemon.send_signal(signal.SIGHUP)
        wait_listening(port, daemon)
        assert daemon.poll() is None
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(15)


async def test_a_reload_rereads_the_templates_and_a_broken_one_keeps_the_last_good(tmp_path, database_url):
    site_templates(tmp_path)
    async with running_helpdesk(tmp_path, database_url, rules=RULES) as desk:
        template = tmp_path / "templates" / "ack_billing.txt.j2"
        template.write_text("Billing has ticket #{{ ticket.number }} now.\n")
        assert desk.daemon.runtime.reload() is True
        await desk.send_smtp(mail("Invoice 1", message_id="i1@customer.example"))
        await desk.wait_for(lambda: to(desk, "carol@customer.example"))
        template.write_text("Billing has {{ ticket.number ")                    # broken
        assert desk.daemon.runtime.reload() is False
        await desk.send_smtp(mail("Invoice 2", message_id="i2@customer.example",
                                  sender="dan@customer.example"), sender="dan@customer.example")
        await desk.wait_for(lambda: to(desk, "dan@customer.example"))
        assert [text(m).strip() for m in to(desk, "carol@customer.example") + to(desk, "dan@customer.example")] \
            == ["Billing has ticket #1 now.", "Billing has ticket #2 now."]


async def test_a_rule_on_kind_gives_mailing_list_mail_its_own_queue_and_no_answer(tmp_path, database_url):
    rules = RULES.replace("auto_reply: ack_billing", "auto_reply: false").replace(
        "queues:\n", "queues:\n  robots: {address: robots@example.com}\n").replace(
        "rules:\n", "rules:\n  - name: Lists\n    when: {kind: [list, report]}\n"
                    "    then: {queue: robots, tags: [automatic]}\n    stop: true\n")
    async with running_helpdesk(tmp_path, database_url, rules=rules) as desk:
        await desk.send_smtp(mail("Weekly digest", message_id="digest@lists.example",
                                  headers={"List-Id": "<news.lists.example>"}))
        await desk.send_smtp(mail("Printer on fire", message_id="person@customer.example"))
        await desk.wait_for(lambda: len(desk.tickets()) == 2)
        await desk.settle()
        by_subject = {t["subject"]: desk.ticket(t["number"]) for t in desk.tickets()}
        digest, person = by_subject["Weekly digest"], by_subject["Printer on fire"]
        assert (digest["queue"], digest["tags"]) == ("robots", ["automatic"])
        assert digest["messages"][0]["kind"] == "list"
        assert person["queue"] == "general"
        answered = [m["To"] for m in desk.relay_messages if "Weekly digest" in m["Subject"]]
        assert answered == []                       # the list mail got no acknowledgement
        assert any("Printer on fire" in m["Subject"] for m in desk.relay_messages)
