"""SLA escalations with an injected clock: each step mailed once, across sweeps, restarts
and downtime; nothing after an agent's reply; notifications that wait for office hours."""
from __future__ import annotations

from datetime import timedelta

import pytest

from maild import escalations
from store import sla
from maild.config import load_settings
from maild.runtime import build_context, load_policy
from store.changes import Change
from store.db import open_database
from store.migrations import migrate
from store.models import Outbox, SlaClock, SlaEscalation
from tests.integration.harness import write_config
from tests.store.test_sla import agent_replies, berlin, change, open_ticket, row

MANAGER = "manager@example.com"
RULES = """\
version: 1
agents:
  - {address: alice@example.com, name: Alice Agent}
  - {address: bob@example.com, name: Bob Builder}
teams:
  l1: {members: [alice@example.com, bob@example.com]}
queues:
  general: {address: support@example.com, team: l1, sla: standard}
calendars:
  office: {timezone: Europe/Berlin, hours: {mon-fri: "09:00-17:00"},
           holidays: [2026-12-24, 2026-12-25], country: DE}
  always: {timezone: UTC, hours: {mon-sun: "00:00-24:00"}}
sla:
  standard:
    calendar: office
    targets:
      urgent: {first_response: 1h, resolution: 2d}
      normal: {first_response: 8h, next_response: 8h, resolution: 5d}
    escalations:
      - {at: 80%, notify: [assignee], template: sla_warning}
      - {at: breach, notify: [assignee, team], template: sla_breach}
      - {at: breach+2h, notify: [manager@example.com], template: sla_breach}
  around_the_clock:
    calendar: always
    notify_calendar: office
    targets: {urgent: {first_response: 1h}}
    escalations:
      - {at: breach, notify: [assignee], template: sla_breach}
      - {at: breach, notify: [manager@example.com], template: sla_breach,
         only_in_business_hours: true}
"""


def assigned_ticket(db, context, at, *, priority="urgent", n=1, policy=None):
    ticket = open_ticket(db, context.ruleset, at, priority=priority, n=n)
    wanted = [Change("assign", "alice@example.com")] + ([Change("sla", policy)] if policy else [])
    change(db, context.ruleset, ticket, at, *wanted)
    return ticket


def sla_mails(ticket=None) -> list[tuple[str, str]]:
    """(template, recipient) of each escalation mail queued, oldest first."""
    query = Outbox.select().where(Outbox.template.startswith("sla_")).order_by(Outbox.id)
    if ticket is not None:
        query = query.where(Outbox.ticket == ticket)
    return [(o.template, o.to_address) for o in query]


def ledger(ticket) -> list[tuple[str, str, str]]:
    return [(e.clock, e.step, e.recipients) for e in
            SlaEscalation.select().where(SlaEscalation.ticket == ticket).order_by(SlaEscalation.id)]


def test_warning_breach_and_breach_plus_2h_are_each_mailed_once_across_100_sweeps_and_a_restart(
        db, context, database_url):
    ticket = assigned_ticket(db, context, berlin(2026, 11, 23, 9, 0))     # Monday, 1h target
    sent_at = {}
    for i in range(100):                                  # every two minutes, 09:00-12:18
        now = berlin(2026, 11, 23, 9, 0) + timedelta(minutes=2 * i)
        if i == 50:                                       # the daemon restarts
            db.close()
            db = open_database(database_url)
            migrate(db)
        for step in escalations.sweep(db, context, now).sent:
            sent_at[step.step] = (now, step.recipients)
    assert sent_at == {
        "80%": (berlin(2026, 11, 23, 9, 48), ("alice@example.com",)),
        "breach": (berlin(2026, 11, 23, 10, 0), ("alice@example.com", "bob@example.com")),
        "breach+2h": (berlin(2026, 11, 23, 12, 0), (MANAGER,)),
    }
    assert sla_mails(ticket) == [("sla_warning", "alice@example.com"),
                                 ("sla_breach", "alice@example.com"),
                                 ("sla_breach", "bob@example.com"), ("sla_breach", MANAGER)]
    assert [step for _, step, _ in ledger(ticket)] == ["80%", "breach", "breach+2h"]
    assert row(ticket, "first_response").next_step_at is None            # nothing left to wait for
    db.close()


def test_six_hours_down_gives_one_catch_up_mail_per_ticket_and_step(db, context):
    opened = berlin(2026, 11, 23, 9, 0)
    tickets = [assigned_ticket(db, context, opened, n=n) for n in range(3)]
    assert escalations.sweep(db, context, opened).sent == ()
    back = opened + timedelta(hours=6, minutes=30)        # down from 09:00 to 15:30
    first = escalations.sweep(db, context, back)
    for minute in range(1, 20):
        assert escalations.sweep(db, context, back + timedelta(minutes=minute)).sent == ()
    assert sorted((s.ticket_number, s.step) for s in first.sent) == sorted(
        (number, step) for number in {s.ticket_number for s in first.sent}
        for step in ("80%", "breach", "breach+2h"))
    assert len({s.ticket_number for s in first.sent}) == 3
    for ticket in tickets:
        assert sla_mails(ticket) == [("sla_warning", "alice@example.com"),
                                     ("sla_breach", "alice@example.com"),
                                     ("sla_breach", "bob@example.com"), ("sla_breach", MANAGER)]
    # the late warning says how things stand now, not what it would have said at 09:48
    warning = Outbox.get(Outbox.ticket == tickets[0], Outbox.template == "sla_warning")
    assert "5h30m" in warning.text                        # overdue since 10:00


def test_an_agent_reply_before_the_deadline_stops_the_clock_and_nothing_is_sent(db, context):
    ticket = assigned_ticket(db, context, berlin(2026, 11, 23, 9, 0))
    escalations.sweep(db, context, berlin(2026, 11, 23, 9, 20))
    agent_replies(db, context.ruleset, ticket, berlin(2026, 11, 23, 9, 30))
    assert row(ticket, "first_response").next_step_at is None
    for minutes in range(0, 8 * 60, 5):                   # the rest of the working day
        escalations.sweep(db, context, berlin(2026, 11, 23, 9, 30) + timedelta(minutes=minutes))
    assert sla_mails(ticket) == [] and ledger(ticket) == []


def test_a_pending_ticket_escalates_only_after_the_customer_answered(db, context):
    ticket = assigned_ticket(db, context, berlin(2026, 11, 23, 9, 0))
    change(db, context.ruleset, ticket, berlin(2026, 11, 23, 9, 30), Change("status", "pending"))
    assert row(ticket, "first_response").next_step_at is None
    assert escalations.sweep(db, context, berlin(2026, 11, 25, 9, 0)).sent == ()
    change(db, context.ruleset, ticket, berlin(2026, 11, 25, 9, 0), Change("status", "open"))
    # 30 minutes were used before the pause: 80% (48 min) is 18 minutes after resuming
    assert row(ticket, "first_response").next_step_at == berlin(2026, 11, 25, 9, 18)
    assert [s.step for s in escalations.sweep(db, context, berlin(2026, 11, 25, 9, 18)).sent] == ["80%"]


def test_steps_wait_for_office_hours_only_where_the_policy_says(db, context):
    # Saturday 10:00, counted around the clock: the breach is at 11:00 on Saturday
    ticket = assigned_ticket(db, context, berlin(2026, 11, 28, 10, 0), policy="around_the_clock")
    saturday = escalations.sweep(db, context, berlin(2026, 11, 28, 11, 0))
    assert [(s.step, s.recipients) for s in saturday.sent] == [("breach", ("alice@example.com",))]
    assert row(ticket, "first_response").next_step_at == berlin(2026, 11, 30, 9, 0)
    assert escalations.sweep(db, context, berlin(2026, 11, 30, 8, 59)).sent == ()
    monday = escalations.sweep(db, context, berlin(2026, 11, 30, 9, 0))
    assert [(s.step, s.recipients) for s in monday.sent] == [("breach#2", (MANAGER,))]


def test_a_dry_run_shows_what_is_due_and_changes_nothing(db, context):
    ticket = assigned_ticket(db, context, berlin(2026, 11, 23, 9, 0))
    dry = escalations.sweep(db, context, berlin(2026, 11, 23, 10, 0), dry_run=True)
    assert [s.step for s in dry.sent] == ["80%", "breach"]
    assert sla_mails() == [] and ledger(ticket) == []
    assert row(ticket, "first_response").steps_sent == ""
    real = escalations.sweep(db, context, berlin(2026, 11, 23, 10, 0))
    assert [s.step for s in real.sent] == ["80%", "breach"]


def test_a_new_next_response_cycle_escalates_again(db, context):
    from tests.store.test_sla import customer_replies

    ticket = assigned_ticket(db, context, berlin(2026, 11, 23, 9, 0), priority="normal")
    agent_replies(db, context.ruleset, ticket, berlin(2026, 11, 23, 9, 30))
    customer_replies(db, context.ruleset, ticket, berlin(2026, 11, 23, 10, 0))
    escalations.sweep(db, context, berlin(2026, 11, 24, 10, 0))          # 8h later: breached
    customer_replies(db, context.ruleset, ticket, berlin(2026, 11, 24, 10, 10), n=3)  # "any news?"
    assert row(ticket, "next_response").cycle == 1
    agent_replies(db, context.ruleset, ticket, berlin(2026, 11, 24, 10, 30))
    customer_replies(db, context.ruleset, ticket, berlin(2026, 11, 24, 11, 0), n=4)
    assert row(ticket, "next_response").steps_sent == ""                   # cycle 2 starts clean
    escalations.sweep(db, context, berlin(2026, 11, 25, 11, 0))
    cycles = [(e.cycle, e.step) for e in SlaEscalation.select().where(
        SlaEscalation.ticket == ticket, SlaEscalation.clock == "next_response").order_by(SlaEscalation.id)]
    assert cycles == [(1, "80%"), (1, "breach"), (2, "80%"), (2, "breach")]


def test_the_ledger_refuses_a_step_sent_by_someone_else(db, context):
    """Two sweepers that read the same due clock (a second instance, a crash after the
    commit) queue the step once: the ledger row is the proof it was sent."""
    ticket = assigned_ticket(db, context, berlin(2026, 11, 23, 9, 0))
    stale = SlaClock.get(SlaClock.ticket == ticket, SlaClock.clock == "first_response")
    escalations.sweep(db, context, berlin(2026, 11, 23, 9, 50))
    with db.atomic():                                 # the other sweeper, with its stale row
        again = escalations._escalate(stale, context, berlin(2026, 11, 23, 9, 50))
        assert not sla.claim_step(stale, "80%", berlin(2026, 11, 23, 9, 48),
                                  berlin(2026, 11, 23, 9, 50), ("alice@example.com",))
    assert again == [] and sla_mails(ticket) == [("sla_warning", "alice@example.com")]


def test_a_version_4_database_is_upgraded_and_its_running_clocks_get_their_steps(db, context):
    from store.migrations import LATEST, current_version
    from store.models import SchemaVersion

    ticket = assigned_ticket(db, context, berlin(2026, 11, 23, 9, 0))
    # make it a version-4 database: clocks, but no escalation columns and no ledger
    db.execute_sql('DROP TABLE "sla_escalation"')
    db.execute_sql('DROP INDEX "sla_clock_next_step_at"')
    for column in ("steps_sent", "next_step_at"):
        db.execute_sql(f'ALTER TABLE "sla_clock" DROP COLUMN "{column}"')
    SchemaVersion.delete().execute()
    SchemaVersion.create(version=4, applied_at=berlin(2026, 11, 23, 9, 0))

    assert migrate(db) == (4, LATEST) and current_version(db) == LATEST
    assert row(ticket, "first_response").next_step_at is None      # not known yet
    # the first start after the upgrade, at 10:30: 80% and breach fell due before it
    assert sla.reschedule(context.ruleset, berlin(2026, 11, 23, 10, 30)) == 2   # both clocks
    upgraded = row(ticket, "first_response")
    assert (upgraded.steps_sent, upgraded.next_step_at) == ("80%,breach", berlin(2026, 11, 23, 12, 0))
    assert row(ticket, "resolution").steps_sent == ""
    assert escalations.sweep(db, context, berlin(2026, 11, 23, 11, 0)).sent == ()   # no flood
    assert [s.step for s in escalations.sweep(db, context, berlin(2026, 11, 23, 12, 0)).sent] == ["breach+2h"]


def test_a_ticket_whose_mail_fails_to_render_is_retried_later_and_holds_back_nobody(
        db, context, tmp_path, caplog):
    # a site template that breaks on ticket #1 only (the sample data renders, so it loads)
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "sla_warning.txt.j2").write_text(
        "{% if ticket.number == 1 %}{{ no_such_value.x }}{% endif %}Ticket {{ ticket.number }}\n")
    settings = load_settings(tmp_path / "maild.yaml")
    context = build_context(settings, *load_policy(settings))
    first, second = (assigned_ticket(db, context, berlin(2026, 11, 23, 9, 0), n=n) for n in (1, 2))
    result = escalations.sweep(db, context, berlin(2026, 11, 23, 9, 50))
    assert [(s.ticket_number, s.step) for s in result.sent] == [(2, "80%")]
    assert sla_mails(first) == [] and ledger(first) == []
    assert row(first, "first_response").next_step_at == berlin(2026, 11, 23, 10, 5)
    assert "SLA first_response escalation failed" in caplog.text
    assert sla_mails(second) == [("sla_warning", "alice@example.com")]


def test_an_escalation_template_that_cannot_render_is_refused_at_load(tmp_path, database_url):
    from rules.source import ConfigError

    config = write_config(tmp_path, database_url, "maildir:outbox", rules=RULES)
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "sla_breach.txt.j2").write_text("{{ ticket.owner.name }}\n")
    with pytest.raises(ConfigError) as refused:
        load_policy(load_settings(config))
    text = str(refused.value)
    assert "rules.yaml:" in text and "sla.standard.escalations[1].template" in text
    assert "cannot be an SLA escalation mail" in text
