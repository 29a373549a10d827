"""The shipped example rules file routes realistic mail where an admin expects it to go."""
from __future__ import annotations

from datetime import datetime, timezone
from email.message import EmailMessage
from pathlib import Path

import pytest

import templates
from parsers.message import parse
from rules.engine import evaluate, route
from rules.facts import Facts
from rules.load import load_rules

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "etc" / "rules.yaml"
MONDAY_MORNING = datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)    # 10:00 in Berlin
SATURDAY = datetime(2026, 11, 21, 10, 0, tzinfo=timezone.utc)
CHRISTMAS_EVE = datetime(2026, 12, 24, 9, 0, tzinfo=timezone.utc)     # a Thursday, closed


@pytest.fixture(scope="module")
def ruleset():
    return load_rules(EXAMPLE, templates=frozenset(templates.default_environment().names()))


def message(subject="Question about my account", body="Hello, how do I reset my password?", *,
            sender="Nina Novak <nina@customer.example>", to="support@example.com",
            headers=None, attachments=()) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, subject
    msg["Message-ID"] = "<m1@customer.example>"
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body)
    for filename, maintype, subtype, data in attachments:
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return msg.as_bytes()


def decide(ruleset, raw: bytes, *, at=MONDAY_MORNING, recipient=None, reply=False, automatic=False):
    mail = parse(raw)
    facts = Facts.of(mail, recipient=recipient or mail.to[0], is_reply=reply, received_at=at,
                     contact=ruleset.contact(mail.from_address), automatic=automatic)
    return evaluate(ruleset, facts)


PDF = ("invoice-0042.pdf", "application", "pdf", b"%PDF-1.4 fake")
LOG = ("crash.log", "text", "x-log", b"Traceback (most recent call last):")

# (what, message, keyword args, queue, priority, assign, tags, sla, acknowledgement)
TABLE = [
    ("a plain question on a Monday morning", message(), {},
     "general", "normal", "round_robin over team l1", (), "standard", "ack"),
    ("an invoice in German", message("Rechnung 2026-11 fehlt"), {},
     "billing", "normal", "least_open over team finance", ("billing",), "standard", "ack"),
    ("a PDF that the body calls an invoice",
     message("Question", "Please see the attached invoice.", attachments=[PDF]), {},
     "billing", "normal", "least_open over team finance", ("billing",), "standard", "ack"),
    ("a PDF alone is not an invoice", message("Photos", "Here you go.", attachments=[PDF]), {},
     "general", "normal", "round_robin over team l1", (), "standard", "ack"),
    ("a gold customer from the contacts list",
     message(sender="Grace Hopper <CEO@BigCorp.com>"), {},
     "general", "high", "round_robin over team l1", ("vip",), "gold", "ack"),
    ("anyone at the gold customer's other domain", message(sender="x@BIGCORP.DE"), {},
     "general", "high", "round_robin over team l1", ("vip",), "gold", "ack"),
    ("an outage", message("Our shop is down!!"), {},
     "general", "urgent", "round_robin over team l1", (), "standard", "ack"),
    ("spam flagged by the MTA, even about an invoice",
     message("Invoice overdue", headers={"X-Spam-Flag": "YES"}), {},
     "general", "normal", "None", ("spam",), None, None),
    ("a crash report with its log", message("App crash on start", "See log.", attachments=[LOG]), {},
     "bugs", "normal", "round_robin over team dev", ("crash",), None, "ack"),
    ("a crash report without a log is a plain question", message("App crash on start"), {},
     "general", "normal", "round_robin over team l1", (), "standard", "ack"),
    ("a Saturday mail", message(), {"at": SATURDAY},
     "general", "normal", "round_robin over team l1", ("after-hours",), "standard", "ack_after_hours"),
    ("a mail on a holiday of the calendar", message(), {"at": CHRISTMAS_EVE},
     "general", "normal", "round_robin over team l1", ("after-hours",), "standard", "ack_after_hours"),
    ("a billing dispute goes to Carol by name",
     message("Dispute about a charge", to="billing@example.com"), {},
     "billing", "normal", "carol@example.com", (), "standard", "ack"),
    ("a +detail address is its queue's address",
     message("Question", to="Billing+VIP@example.com"), {},
     "billing", "normal", "least_open over team finance", (), "standard", "ack"),
    ("a dispute sent to the general address stays general",
     message("Dispute about a charge"), {},
     "general", "normal", "round_robin over team l1", (), "standard", "ack"),
    ("an out-of-office reply gets no acknowledgement", message("Automatic reply: Question"),
     {"automatic": True},
     "general", "normal", "round_robin over team l1", (), "standard", None),
]


@pytest.mark.parametrize("what,raw,kwargs,queue,priority,assign,tags,sla,ack", TABLE,
                         ids=[row[0] for row in TABLE])
def test_the_example_rules_route_realistic_mail(ruleset, what, raw, kwargs, queue, priority,
                                                assign, tags, sla, ack):
    decision = decide(ruleset, raw, **kwargs)
    assert (decision.queue, decision.priority, str(decision.assign), decision.tags, decision.sla) \
        == (queue, priority, assign, tags, sla), decision.explanation
    assert (decision.template if decision.auto_reply else None) == ack


def test_spam_is_discarded_and_stops_the_rules(ruleset):
    decision = decide(ruleset, message("Invoice overdue", headers={"X-Spam-Flag": "YES"}))
    assert decision.discard and not decision.auto_reply
    assert decision.matched == ("Spam flagged by the MTA",)        # billing never looked at


def test_a_reply_only_meets_the_rules_marked_on_reply(ruleset):
    raw = message("Re: [Acme #5] Rechnung: the shop is down again")
    decision = decide(ruleset, raw, reply=True)
    assert decision.matched == ("Outages are urgent",)
    assert decision.changes.priority == "urgent"
    assert decision.changes.queue is None and decision.queue == ""   # stays in its queue
    assert not decision.auto_reply


def test_route_decides_both_cases_and_only_for_mail_that_can_be_a_reply(ruleset):
    mail = parse(message("Server down"))
    facts = Facts.of(mail, recipient="support@example.com", is_reply=False,
                     received_at=MONDAY_MORNING)
    assert route(ruleset, facts, may_be_reply=False).reply is None
    routing = route(ruleset, facts, may_be_reply=True)
    assert routing.new.matched == ("Outages are urgent",)
    assert routing.new.assign is not None and routing.reply.assign is None


def test_later_rules_override_earlier_ones_and_tags_add_up(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text("""
version: 1
agents:
  - {address: alice@example.com, name: Alice}
  - {address: bob@example.com, name: Bob}
queues:
  general: {address: support@example.com}
  billing: {address: billing@example.com}
  vip: {address: vip@example.com}
rules:
  - {name: first, when: {subject: {contains: a}}, then: {queue: billing, priority: high, tags: [one], assign: alice@example.com}}
  - {name: second, when: {subject: {contains: b}}, then: {queue: vip, tags: [two, one]}}
  - {name: third, when: {subject: {contains: c}}, then: {priority: low, assign: bob@example.com}, stop: true}
  - {name: never, when: {subject: {contains: a}}, then: {priority: urgent}}
""")
    ruleset = load_rules(path)
    decision = decide(ruleset, message("abc"))
    assert decision.matched == ("first", "second", "third")
    assert (decision.queue, decision.priority, decision.tags, str(decision.assign)) == \
        ("vip", "low", ("one", "two"), "bob@example.com")
    assert decide(ruleset, message("a")).priority == "urgent"          # no stop: 'never' runs


def test_the_explanation_names_the_rule_that_discarded(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text("""
version: 1
queues:
  general: {address: support@example.com}
rules:
  - {name: Spam, when: {subject: {contains: viagra}}, then: {discard: true}}
  - {name: Tag everything, then: {tags: [seen]}}
""")
    from rules.engine import explain
    mail = parse(message("cheap viagra"))
    decision, _ = explain(load_rules(path), Facts.of(mail, recipient="support@example.com",
                                                     is_reply=False, received_at=MONDAY_MORNING))
    assert "no acknowledgement: discarded by rule 'Spam'" in decision.explanation
    assert "discard: rule 'Spam'" in decision.explanation


def test_the_rules_see_at_most_the_first_256000_characters_of_the_body():
    from rules.facts import MAX_BODY
    mail = parse(message("Long", "> quoted line\n" * 40_000))      # nothing new: all "visible"
    facts = Facts.of(mail, recipient="support@example.com", is_reply=False,
                     received_at=MONDAY_MORNING)
    assert len(mail.visible_text) > MAX_BODY == len(facts.body)
