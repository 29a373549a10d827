"""SLA clocks in a running maild: a customer's mail starts them, an agent's reply stops one."""
from __future__ import annotations

import json

from store import sla
from store.models import Ticket

from tests.integration.test_agents import AGENTS_RULES, agent_says, customer_opens, desk_for, to
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
