"""`maild rules check` and `maild rules test`: the admin asks, maild explains, nothing changes."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.integration.harness import write_config
from tests.integration.test_cli import run
from tests.rules.test_routing_table import LOG, message

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "etc" / "rules.yaml"


def desk(tmp_path, database_url="sqlite:///unused.db"):
    """A maild.yaml whose rules are the shipped example (it names an agent-free address)."""
    config = write_config(tmp_path, database_url, f"maildir:{tmp_path}/out")
    shutil.copy(EXAMPLE, tmp_path / "rules.yaml")
    return config


def test_rules_check_says_ok_for_the_shipped_example(tmp_path, capsys):
    code, out, err = run(desk(tmp_path), capsys, "rules", "check")
    assert code == 0, err
    assert out.startswith(f"{tmp_path / 'rules.yaml'}: ok (4 queues, 3 teams, 4 agents, 7 rules, "
                          "2 calendars, 2 SLA policies)")


def line_of(text: str, needle: str) -> int:
    """The 1-based line of the example file where `needle` first appears."""
    return next(n for n, line in enumerate(text.splitlines(), 1) if needle in line)


def test_rules_check_of_a_file_lists_every_problem_and_fails(tmp_path, capsys):
    config = desk(tmp_path)
    broken = tmp_path / "new-rules.yaml"
    broken.write_text(EXAMPLE.read_text()
                      .replace("then: {queue: billing, tags: [billing]}", "then: {queue: biling, tags: [billing]}")
                      .replace("(invoice|rechnung|facture)", "(?<=re)invoice")
                      .replace("auto_reply: ack_after_hours", "auto_reply: ack_weekend"))
    code, out, err = run(config, capsys, "rules", "check", str(broken))
    assert code == 1 and out == ""
    lines = err.splitlines()
    assert lines[-1] == f"{broken}: 3 problems"
    text = broken.read_text()
    assert [line.split(": ")[0] for line in lines[:3]] == [
        f"{broken}:{line_of(text, '(?<=re)invoice')}:22", f"{broken}:{line_of(text, 'biling')}:12",
        f"{broken}:{line_of(text, 'ack_weekend')}:12"]
    assert "rule 'Invoices go to billing': no queue 'biling'; did you mean 'billing'?" in err
    assert "rule 'Out of hours': no template 'ack_weekend'" in err


def test_rules_check_refuses_an_agent_with_the_help_desks_own_address(tmp_path, capsys):
    config = desk(tmp_path)
    (tmp_path / "rules.yaml").write_text(EXAMPLE.read_text().replace(
        "carol@example.com, name: Carol Clerk", "support@example.com, name: Carol Clerk"))
    code, _, err = run(config, capsys, "rules", "check")
    assert code == 1
    assert "support@example.com is the address of queue 'general'" in err


def test_rules_test_explains_each_rule_and_the_decision(tmp_path, capsys):
    config = desk(tmp_path)
    eml = tmp_path / "crash.eml"
    eml.write_bytes(message("App crash on start", "See the log.", attachments=[LOG]))
    code, out, err = run(config, capsys, "rules", "test", str(eml), "--at", "2026-11-21T10:00:00Z")
    assert code == 0, err
    assert "evaluated as a new ticket: no ticket token and no references" in out
    crash_rule = line_of(EXAMPLE.read_text(), "name: Crash reports to the developers")
    assert f"matched     'Crash reports to the developers' (line {crash_rule})" in out
    assert "all of: subject 'App crash on start' contains 'crash'; attachment 'text/x-log' is one of 'text/x-log', 'application/x-core'" in out
    assert "matched     'Out of hours'" in out and "outside calendar 'office'" in out
    decision = out.split("decision:\n")[1].splitlines()
    assert decision == [
        "  queue bugs: rule 'Crash reports to the developers'",
        "  priority normal: default",
        "  assign round_robin over team dev: rule 'Crash reports to the developers'",
        "  sla: none",
        "  acknowledgement: template ack_after_hours (rule 'Out of hours')",
        "  tags crash, after-hours",
    ]


def test_rules_test_as_json_for_a_reply_changes_nothing(tmp_path, database_url, capsys):
    config = desk(tmp_path, database_url)
    assert run(config, capsys, "init")[0] == 0
    eml = tmp_path / "reply.eml"
    eml.write_bytes(message("Re: [Acme #7] Rechnung - the shop is down"))
    code, out, _ = run(config, capsys, "rules", "test", str(eml), "--json",
                       "--at", "2026-11-23T09:00:00+00:00")
    result = json.loads(out)
    assert result["evaluated_as"] == {"case": "reply", "why": "its subject carries ticket #7"}
    assert [(r["name"], r["outcome"]) for r in result["rules"]] == [
        ("Spam flagged by the MTA", "skipped"), ("Invoices go to billing", "skipped"),
        ("Gold customers", "skipped"), ("Outages are urgent", "matched"),
        ("Crash reports to the developers", "skipped"), ("Out of hours", "skipped"),
        ("Billing disputes to Carol", "skipped")]
    assert result["decision"]["priority"] == "urgent" and result["decision"]["queue"] is None
    assert "assign: unchanged" in result["explanation"]
    code, out, _ = run(config, capsys, "rules", "test", str(eml), "--json", "--new",
                       "--at", "2026-11-23T09:00:00+00:00")
    assert json.loads(out)["decision"]["queue"] == "billing"
    assert run(config, capsys, "tickets", "--json")[1].strip() == "[]"       # nothing stored
