"""A broken rules file is refused with every mistake, each at its file:line:column."""
from __future__ import annotations

import textwrap

import pytest

from rules.load import load_rules
from rules.source import ConfigError

HEAD = """\
version: 1
agents:
  - {address: alice@example.com, name: Alice}
teams:
  l1: {members: [alice@example.com]}
queues:
  general: {address: support@example.com, team: l1}
  billing: {address: billing@example.com}
"""


def refused(tmp_path, text: str, **kwargs):
    path = tmp_path / "rules.yaml"
    path.write_text(textwrap.dedent(text))
    with pytest.raises(ConfigError) as caught:
        load_rules(path, **kwargs)
    return path, caught.value.problems


def test_five_different_mistakes_are_all_reported_with_their_lines(tmp_path):
    path, problems = refused(tmp_path, """\
        version: 1
        agents:
          - {address: alice@example.com, name: Alice}
        teams:
          l1: {members: [alice@example.com]}
          nobody: {members: []}
        queues:
          general: {address: support@example.com, team: l1}
        rules:
          - name: Invoices
            when: {subjet: {contains: invoice}}
            then: {queue: billing}
          - name: Quoted replies
            when: {body: {matches: '(?<=> )refund'}}
            then: {tags: [refund]}
          - name: Urgent for Bob
            when: {subject: {contains: urgent}}
            then: {assign: bob@example.com, priority: critical}
        """)
    assert [(p.line, p.column, p.key) for p in problems] == [
        (6, 12, "teams.nobody.members"),
        (11, 12, "rules[0].when.subjet"),
        (12, 12, "rules[0].then.queue"),
        (14, 19, "rules[1].when.body.matches"),
        (18, 12, "rules[2].then.assign"),
        (18, 37, "rules[2].then.priority"),
    ]
    messages = [p.message for p in problems]
    assert messages[0] == "a team needs at least one member, e.g. members: [alice@example.com]"
    assert messages[1].startswith("rule 'Invoices': unknown field 'subjet'; did you mean 'subject'?")
    assert messages[2] == ("rule 'Invoices': no queue 'billing' (queues: general)")
    assert messages[3].startswith("rule 'Quoted replies': RE2 cannot compile '(?<=> )refund'")
    assert "lookaround" in messages[3]
    assert messages[4].startswith("rule 'Urgent for Bob': no agent 'bob@example.com'")
    assert messages[5] == ("rule 'Urgent for Bob': expected one of low, normal, high, urgent, "
                           "got string 'critical'")
    assert str(problems[1]).startswith(f"{path}:11:12: rules[0].when.subjet: rule 'Invoices'")


def test_references_to_teams_policies_templates_and_calendars_are_checked(tmp_path):
    _, problems = refused(tmp_path, HEAD + """\
        calendars:
          office: {timezone: Europe/Berlin, hours: {mon-fri: "09:00-17:00"}}
        sla:
          standard: {calendar: ofice, targets: {normal: {first_response: 8h}}}
        rules:
          - name: One
            when: {business_hours: offce}
            then: {assign: {round_robin: l2}, sla: gold, auto_reply: ack_weekend}
        """.replace("        ", ""), templates=frozenset({"ack", "ack_after_hours"}))
    assert [(p.key, p.message) for p in problems] == [
        ("sla.standard.calendar", "no calendar 'ofice'; did you mean 'office'? (calendars: office)"),
        ("rules[0].when.business_hours",
         "rule 'One': no calendar 'offce'; did you mean 'office'? (calendars: office)"),
        ("rules[0].then.assign.round_robin", "rule 'One': no team 'l2' (teams: l1)"),
        ("rules[0].then.sla", "rule 'One': no SLA policy 'gold' (SLA policies: standard)"),
        ("rules[0].then.auto_reply",
         "rule 'One': no template 'ack_weekend': add ack_weekend.txt.j2 (and "
         "optionally ack_weekend.html.j2) to the templates directory next to maild.yaml"),
    ]


def test_rule_entries_need_a_unique_name_and_something_to_do(tmp_path):
    _, problems = refused(tmp_path, HEAD + """\
        rules:
          - when: {subject: hello}
            then: {priority: high}
          - {name: Twice, then: {priority: low}}
          - {name: Twice, then: {priority: high}}
          - {name: Idle, when: {subject: x}}
          - {name: Empty, then: {}}
          - {name: Typo, then: {priorty: high}, stop: yes, on: replies}
        """.replace("        ", ""))
    assert [(p.line, p.key, p.message) for p in problems] == [
        (10, "rules[0]", "rules[0]: the key 'name' is missing; every rule needs a name (it is "
                         "what the audit log and `maild rules test` show)"),
        (13, "rules[2].name", "rule 'Twice': the name is already used by rules[1]; each rule "
                              "needs its own"),
        (14, "rules[3]", "rule 'Idle': the key 'then' is missing; say what the rule does, e.g. "
                         "then: {queue: billing}"),
        (15, "rules[4].then", "rule 'Empty': expected at least one action (queue, priority, "
                              "assign, tags, sla, auto_reply, discard, stop), got a mapping"),
        (16, "rules[5].then.priorty", "rule 'Typo': unknown action 'priorty'; did you mean "
                                      "'priority'? (allowed: queue, priority, assign, tags, sla, "
                                      "auto_reply, discard, stop)"),
        (16, "rules[5].stop", "rule 'Typo': expected true or false, got string 'yes'"),
        (16, "rules[5].on", "rule 'Typo': expected one of new, reply, got string 'replies'"),
    ]


def test_a_queue_naming_an_unknown_policy_and_duplicate_contacts_are_refused(tmp_path):
    _, problems = refused(tmp_path, """\
        version: 1
        queues:
          general: {address: support@example.com, sla: standrd}
        contacts:
          - {address: ceo@bigcorp.com, tier: gold}
          - {address: CEO@bigcorp.com, tier: silver}
        sla:
          standard: {targets: {normal: {resolution: 5d}}}
        """)
    assert [(p.line, p.key, p.message) for p in problems] == [
        (3, "queues.general.sla", "no SLA policy 'standrd'; did you mean 'standard'? "
                                  "(policies: standard)"),
        (6, "contacts[1].address", "CEO@bigcorp.com is already contacts[0]"),
    ]


def test_sla_policies_are_checked_entry_by_entry(tmp_path):
    _, problems = refused(tmp_path, """\
        version: 1
        queues:
          general: {address: support@example.com}
        sla:
          standard:
            targets: {normal: {first_respons: 8h, resolution: 5 days}, critical: {resolution: 1h}}
            escalations:
              - {at: 120%, notify: [assignee], template: sla_warning}
              - {at: breach+2h, notify: [boss], template: sla_breach}
        """)
    assert [p.key for p in problems] == [
        "sla.standard.targets.normal.first_respons",
        "sla.standard.targets.normal.resolution",
        "sla.standard.targets.critical",
        "sla.standard.escalations[0].at",
        "sla.standard.escalations[1].notify[0]",
    ]
    assert problems[0].message.startswith("unknown clock 'first_respons'; did you mean 'first_response'?")
    assert problems[3].message.startswith("expected N% (1-99), breach or breach+DURATION")


def test_a_valid_file_with_every_section_loads(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(HEAD + textwrap.dedent("""\
        contacts:
          - {address: CEO@BigCorp.com, name: Grace, org: BigCorp, tier: gold}
        calendars:
          office: {timezone: Europe/Berlin, hours: {mon-fri: "09:00-17:00"}}
        sla:
          standard:
            calendar: office
            targets: {normal: {first_response: 8h, resolution: 5d}}
            escalations: [{at: 80%, notify: [assignee, boss@example.com], template: sla_warning}]
        rules:
          - name: Gold
            when: {customer_tier: gold}
            then: {priority: high, sla: standard, tags: vip}
        """))
    ruleset = load_rules(path)
    assert ruleset.contact("ceo@bigcorp.com").org == "BigCorp"
    assert ruleset.calendar("office").timezone == "Europe/Berlin"
    [policy] = ruleset.sla_policies
    assert str(policy.target("normal", "resolution")) == "5d"
    assert policy.escalations[0].notify == ("assignee", "boss@example.com")
    [rule] = ruleset.rules
    assert (rule.name, rule.line, rule.then.tags) == ("Gold", 19, ("vip",))
