"""The admin's questions, answered by the `maild` command (people and --json)."""
from __future__ import annotations

import io
import json
import sys

from maild import cli
from tests.integration.harness import SUPPORT, mail, write_config


def run(config, capsys, *argv, stdin: bytes | None = None, monkeypatch=None) -> tuple[int, str, str]:
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
    code = cli.main(["-c", str(config), *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_tickets_show_and_outbox_as_json(tmp_path, database_url, capsys, monkeypatch):
    config = write_config(tmp_path, database_url, f"maildir:{tmp_path}/out")
    assert run(config, capsys, "init")[0] == 0
    assert run(config, capsys, "ingest", "--recipient", SUPPORT, "--sender", "carol@customer.example",
               stdin=mail(message_id="cli@customer.example"), monkeypatch=monkeypatch)[0] == 0
    code, out, _ = run(config, capsys, "tickets", "--json")
    [ticket] = json.loads(out)
    assert {k: ticket[k] for k in ("subject", "status", "priority", "queue", "requester", "assignee",
                                    "tags", "messages")} == {
        "subject": "Printer on fire", "status": "new", "priority": "normal", "queue": "general",
        "requester": "carol@customer.example", "assignee": None, "tags": [], "messages": 2}
    code, out, _ = run(config, capsys, "show", str(ticket["number"]), "--json")
    shown = json.loads(out)
    assert [(m["direction"], m["kind"]) for m in shown["messages"]] == [("in", "normal"), ("out", "ack")]
    first = shown["messages"][0]
    assert (first["from"], first["message_id"], first["text"]) == \
        ("carol@customer.example", "cli@customer.example", "Help, the printer is on fire.")
    code, out, _ = run(config, capsys, "outbox", "--json")
    [row] = json.loads(out)
    assert (row["ticket"], row["to"], row["template"], row["status"], row["attempts"]) == \
        (ticket["number"], "carol@customer.example", "ack", "sent", 1)
    assert row["subject"] == f"[Acme #{ticket['number']}] Printer on fire"
    assert len(list((tmp_path / "out" / "new").iterdir())) == 1
    code, out, _ = run(config, capsys, "tickets", "--status", "closed", "--json")
    assert json.loads(out) == []


def test_questions_before_init_say_to_run_init_and_change_nothing(tmp_path, capsys):
    config = write_config(tmp_path, f"sqlite:///{tmp_path}/m.db", f"maildir:{tmp_path}/out")
    code, _, err = run(config, capsys, "tickets")
    assert code == 1 and "maild -c" in err and "init" in err
    from store.db import open_database
    from store.migrations import current_version
    assert current_version(open_database(f"sqlite:///{tmp_path}/m.db")) is None


def test_show_of_a_missing_ticket_says_so(tmp_path, capsys):
    config = write_config(tmp_path, f"sqlite:///{tmp_path}/m.db", f"maildir:{tmp_path}/out")
    assert run(config, capsys, "init")[0] == 0
    code, _, err = run(config, capsys, "show", "42")
    assert code == 1 and "no ticket #42" in err


def test_a_broken_template_quarantines_the_mail_and_replay_after_the_fix_makes_the_ticket(
        tmp_path, capsys, monkeypatch):
    config = write_config(tmp_path, f"sqlite:///{tmp_path}/m.db", f"maildir:{tmp_path}/out")
    overrides = tmp_path / "templates"
    overrides.mkdir()
    (overrides / "ack.txt.j2").write_text("Hello {{ customer.nmae }}\n")     # the admin's typo
    run(config, capsys, "ingest", "--recipient", SUPPORT, stdin=mail(message_id="q@customer.example"),
        monkeypatch=monkeypatch)
    code, out, _ = run(config, capsys, "quarantine", "list", "--json")
    [item] = json.loads(out)
    assert "nmae" in item["reason"]
    assert json.loads(run(config, capsys, "tickets", "--json")[1]) == []
    (overrides / "ack.txt.j2").write_text("Hello {{ customer.name }}\n")     # fixed
    code, out, _ = run(config, capsys, "quarantine", "replay", str(item["id"]))
    assert code == 0
    [ticket] = json.loads(run(config, capsys, "tickets", "--json")[1])
    assert ticket["subject"] == "Printer on fire"
    assert json.loads(run(config, capsys, "quarantine", "list", "--json")[1]) == []


def test_check_names_the_file_and_line_of_a_config_mistake(tmp_path, capsys):
    config = write_config(tmp_path, f"sqlite:///{tmp_path}/m.db", f"maildir:{tmp_path}/out")
    assert run(config, capsys, "check")[0] == 0
    config.write_text(config.read_text().replace("spool: spool", "spool: spool\nspoool: typo"))
    code, _, err = run(config, capsys, "check")
    assert code == 78 and f"{config}:3:1" in err and "spoool" in err


def test_check_names_the_rules_file_line(tmp_path, capsys):
    config = write_config(tmp_path, f"sqlite:///{tmp_path}/m.db", f"maildir:{tmp_path}/out")
    (tmp_path / "rules.yaml").write_text("version: 1\nqueues:\n  general: {adress: support@example.com}\n")
    code, _, err = run(config, capsys, "check")
    assert code == 1 and f"{tmp_path / 'rules.yaml'}:3:" in err and "adress" in err


def test_check_renders_every_template_and_names_the_line_of_each_broken_one(tmp_path, capsys):
    config = write_config(tmp_path, f"sqlite:///{tmp_path}/m.db", f"maildir:{tmp_path}/out")
    site = tmp_path / "templates"
    site.mkdir()
    (site / "ack.txt.j2").write_text("Hello {{ customer.name }},\n\nticket {{ ticket.numbr }}\n")
    (site / "sla_warning.html.j2").write_text("<p>\n{{ sla.lefts }}</p>\n")
    (tmp_path / "rules.yaml").write_text("version: 1\nqueues:\n  general: {adress: support@example.com}\n")
    code, out, err = run(config, capsys, "check")
    assert code == 1 and out == ""
    assert f"{site / 'ack.txt.j2'}:3: 'dict object' has no attribute 'numbr'" in err     # rendered
    assert f"{site / 'sla_warning.html.j2'}:2: 'dict object' has no attribute 'lefts'" in err
    assert f"{tmp_path / 'rules.yaml'}:3:" in err                                          # and the rules
    assert err.endswith("maild check: failed (3 problem(s) above)\n")
    (site / "reply.txt.j2").write_text("Hi\n{% if %}\n")                                   # doesn't compile
    code, _, err = run(config, capsys, "check")
    assert code == 1 and f"{site / 'reply.txt.j2'}:2:" in err and f"{tmp_path / 'rules.yaml'}:3:" in err


def test_check_renders_a_rule_s_own_template_as_an_acknowledgement(tmp_path, capsys):
    rules = ("version: 1\nqueues:\n  general: {address: support@example.com}\nrules:\n"
             "  - name: Everyone\n    when: {from_domain: [customer.example]}\n"
             "    then: {auto_reply: ack_custom}\n")
    config = write_config(tmp_path, f"sqlite:///{tmp_path}/m.db", f"maildir:{tmp_path}/out", rules=rules)
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "ack_custom.txt.j2").write_text("Dear {{ customer.name }}\n{{ agent.name }}\n")
    code, _, err = run(config, capsys, "check")
    assert code == 1 and f"{tmp_path / 'rules.yaml'}:5:" in err
    assert f"{tmp_path / 'templates' / 'ack_custom.txt.j2'}:2:" in err and "agent" in err
    (tmp_path / "templates" / "ack_custom.txt.j2").write_text("Dear {{ customer.name }}\n")
    code, out, err = run(config, capsys, "check")
    assert code == 0 and "ack_custom" in out and err == ""


def test_check_warns_about_a_site_template_that_nothing_sends(tmp_path, capsys):
    config = write_config(tmp_path, f"sqlite:///{tmp_path}/m.db", f"maildir:{tmp_path}/out")
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "ack_biling.txt.j2").write_text("Billing has your mail.\n")   # misspelt
    code, out, err = run(config, capsys, "check")
    assert code == 0 and "templates: ok" in out
    assert err == f"{tmp_path / 'templates' / 'ack_biling.txt.j2'}: warning: named by no rule or escalation, never sent\n"


def test_ingest_with_the_null_sender_sends_no_acknowledgement(tmp_path, capsys, monkeypatch):
    config = write_config(tmp_path, f"sqlite:///{tmp_path}/m.db", f"maildir:{tmp_path}/out")
    for n, sender in enumerate(("", None)):
        extra = ["--sender", sender] if sender is not None else []
        raw = mail(f"Mail {n}", sender=f"Person {n} <p{n}@customer.example>", message_id=f"n{n}@customer.example")
        assert run(config, capsys, "ingest", "--recipient", SUPPORT, *extra, stdin=raw,
                   monkeypatch=monkeypatch)[0] == 0
    outbox = json.loads(run(config, capsys, "outbox", "--json")[1])
    assert [row["to"] for row in outbox] == ["p1@customer.example"]
