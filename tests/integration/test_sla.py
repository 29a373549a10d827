"""SLA clocks in a running maild: a customer's mail starts them, an agent's reply stops one,
and the daemon's scheduler mails each escalation step once, across a restart."""
from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta

from store import sla
from store.models import Ticket

from tests.integration.test_agents import AGENTS_RULES, agent_says, body, customer_opens, desk_for, to
from tests.integration.test_cli import run

SLA_RULES = AGENTS_RULES.replace(
    "  general: {address: support@example.com, team: l1}",
    "  general: {address: support@example.com, team: l1, sla: standard}") + """\
calendars:
  always: {timezone: UTC, hours: {mon-sun: "00:00-24:00"}}
sla:
  standard:
    calendar: always
    targets: {normal: {first_response: 2h, next_response: 4h, resolution: 2d}}
"""


async def test_clocks_start_with_the_ticket_and_the_agents_reply_stops_the_first_response(
        tmp_path, database_url, capsys):
    async with desk_for(tmp_path, database_url, rules=SLA_RULES) as desk:
        ticket = await customer_opens(desk)
        running = [(row.clock, clock.state) for row, clock, _, _ in
                   sla.clocks(Ticket.get(Ticket.number == ticket["number"]).id,
                              desk.daemon.runtime.ruleset)]
        assert running == [("first_response", "running"), ("resolution", "running")]
        [notification] = to(desk, "alice@example.com")
        await agent_says(desk, "outlook", notification, "We are on it.")
        # the CLI last: it binds the models to its own connection in this process
        code, out, _ = run(desk.config, capsys, "sla", "show", str(ticket["number"]), "--json")
        shown = json.loads(out)
        assert code == 0 and shown["policy"] == "standard"
        assert [(c["clock"], c["state"], c["target"], c["budget"]) for c in shown["clocks"]] == [
            ("first_response", "stopped", "2h", "2h"), ("resolution", "running", "2d", "48h")]
        assert shown["clocks"][0]["due_at"] is None and shown["clocks"][1]["due_at"]
        code, out, _ = run(desk.config, capsys, "sla", "show", str(ticket["number"]))
        assert "first_response  stopped" in out and "not due" in out
        assert "resolution      running  target 2d (48h business time)" in out


ESCALATING = SLA_RULES + """\
    escalations:
      - {at: 80%, notify: [assignee], template: sla_warning}
      - {at: breach, notify: [assignee, manager@example.com], template: sla_breach}
"""


def set_clock(desk, now: datetime) -> None:
    """The daemon's scheduler and sender act as of `now` from here on."""
    desk.daemon.scheduler.clock = desk.daemon.sender.clock = lambda: now


def sla_mail(desk, address):
    return [m for m in to(desk, address) if "SLA" in str(m["Subject"])]


async def test_the_scheduler_mails_the_warning_then_the_breach_once_across_a_restart(
        tmp_path, database_url, capsys):
    options = dict(rules=ESCALATING, scheduler="{sla_sweep_seconds: 1}")
    async with desk_for(tmp_path, database_url, **options) as desk:
        ticket = await customer_opens(desk)
        created = Ticket.get(Ticket.number == ticket["number"]).created_at
        # nobody is assigned: the assignee's steps go to the queue's team
        set_clock(desk, created + timedelta(minutes=97))              # 80% of 2h: 96 min
        await desk.wait_for(lambda: len(sla_mail(desk, "bob@example.com")) == 1)
        [warning] = sla_mail(desk, "alice@example.com")
        assert "SLA warning" in warning["Subject"] and "[Acme #1]" in warning["Subject"]
        assert warning["Auto-Submitted"] == "auto-generated"
        assert "first response" in body(warning) and "23m of business time left" in body(warning)
        assert "on floor 3 is on fire" in body(warning)              # the customer's words
        assert sla_mail(desk, "manager@example.com") == []
    # the daemon restarts, an hour after the breach
    async with desk_for(tmp_path, database_url, **options) as desk:
        set_clock(desk, created + timedelta(hours=3))
        await desk.wait_for(lambda: sla_mail(desk, "manager@example.com"))
        for _ in range(3):                                             # three more sweeps
            await asyncio.sleep(1.1)
        await desk.settle()
        [breach] = sla_mail(desk, "manager@example.com")
        assert "SLA breach" in breach["Subject"] and "overdue by 1h" in body(breach)
        assert len(sla_mail(desk, "alice@example.com")) == len(sla_mail(desk, "bob@example.com")) == 1
        # the CLI last: it binds the models to its own connection in this process
        later = (created + timedelta(days=1)).isoformat() + "+00:00"
        code, out, _ = run(desk.config, capsys, "sla", "sweep", "--now", later, "--dry-run")
        assert code == 0 and "0 step(s) would send (dry run: nothing changed)" in out
        code, out, _ = run(desk.config, capsys, "sla", "sweep", "--now", later, "--json")
        assert code == 0 and json.loads(out)["sent"] == []
