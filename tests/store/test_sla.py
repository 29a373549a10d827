"""SLA clocks kept with the ticket, on a Berlin office calendar, with an injected clock."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from rules.load import load_rules
from store import changes, sla, tickets
from store.changes import Change
from store.models import SlaClock
from tests.store.test_tickets import inbound

BERLIN = ZoneInfo("Europe/Berlin")
RULES = """\
version: 1
queues:
  general: {address: support@example.com, sla: standard}
calendars:
  office: {timezone: Europe/Berlin, hours: {mon-fri: "09:00-17:00"},
           holidays: [2026-12-24, 2026-12-25], country: DE}
sla:
  standard:
    calendar: office
    targets:
      urgent: {first_response: 1h, resolution: 4h}
      normal: {first_response: 8h, next_response: 8h, resolution: 5d}
"""


@pytest.fixture
def ruleset(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    return load_rules(path)


def berlin(*args) -> datetime:
    """A Berlin wall-clock time as naive UTC, as the store keeps it."""
    return datetime(*args, tzinfo=BERLIN).astimezone(timezone.utc).replace(tzinfo=None)


def open_ticket(db, ruleset, at, priority="urgent", n=1):
    with db.atomic():
        recorded = tickets.record_inbound(
            inbound(message_id=f"m{n}@customer.example", priority=priority), now=at)
        changes.apply(recorded.ticket_id, (Change("sla", "standard"),), actor="rules", now=at)
        sla.sync(recorded.ticket_id, ruleset, at)
    return recorded.ticket_id


def customer_replies(db, ruleset, ticket, at, n=2):
    with db.atomic():
        number = tickets.Ticket.get_by_id(ticket).number
        tickets.record_inbound(inbound(message_id=f"r{n}@customer.example", token_ticket=number),
                               now=at)
        sla.sync(ticket, ruleset, at, customer_replied=True)


def agent_replies(db, ruleset, ticket, at):
    with db.atomic():
        changes.record_reply(ticket, actor="alice@example.com", now=at)
        sla.sync(ticket, ruleset, at, agent_replied=True)


def change(db, ruleset, ticket, at, *wanted):
    with db.atomic():
        changes.apply(ticket, wanted, actor="alice@example.com", now=at)
        sla.sync(ticket, ruleset, at)


def row(ticket, clock) -> SlaClock:
    return SlaClock.get(SlaClock.ticket == ticket, SlaClock.clock == clock)


def test_a_ticket_of_friday_1630_with_one_hour_is_due_monday_0930(db, ruleset):
    ticket = open_ticket(db, ruleset, berlin(2026, 11, 27, 16, 30))
    assert row(ticket, "first_response").due_at == berlin(2026, 11, 30, 9, 30)
    assert row(ticket, "resolution").due_at == berlin(2026, 11, 30, 12, 30)     # 4h: 0.5 + 3.5


def test_a_ticket_of_christmas_eve_is_due_on_the_next_working_day(db, ruleset):
    # 24th and 25th listed, 26th a public holiday in Germany, 27th a Sunday
    ticket = open_ticket(db, ruleset, berlin(2026, 12, 24, 10, 0))
    assert row(ticket, "first_response").due_at == berlin(2026, 12, 28, 10, 0)


def test_two_days_pending_move_the_deadline_by_exactly_the_paused_business_time(db, ruleset):
    ticket = open_ticket(db, ruleset, berlin(2026, 11, 23, 9, 0), priority="normal")
    before = row(ticket, "first_response").due_at
    assert before == berlin(2026, 11, 23, 17, 0)
    change(db, ruleset, ticket, berlin(2026, 11, 23, 10, 0), Change("status", "pending"))
    paused = row(ticket, "first_response")
    assert (paused.due_at, paused.running_since, paused.used_s) == (None, None, 3600)
    customer_replies(db, ruleset, ticket, berlin(2026, 11, 25, 10, 0))      # Wednesday
    after = row(ticket, "first_response").due_at
    assert after == berlin(2026, 11, 25, 17, 0)
    office = ruleset.calendar("office")
    paused_for = office.between(berlin(2026, 11, 23, 10, 0), berlin(2026, 11, 25, 10, 0))
    assert paused_for == timedelta(hours=16)
    assert office.between(before, after) == paused_for                     # no drift
    assert tickets.Ticket.get_by_id(ticket).status == "open"


def test_an_agent_reply_stops_the_first_response_clock_and_a_customer_reply_starts_the_next(db, ruleset):
    ticket = open_ticket(db, ruleset, berlin(2026, 11, 23, 9, 0), priority="normal")
    agent_replies(db, ruleset, ticket, berlin(2026, 11, 23, 11, 0))
    first = row(ticket, "first_response")
    assert (first.due_at, first.used_s, first.stopped_at) == (None, 2 * 3600, berlin(2026, 11, 23, 11, 0))
    assert not SlaClock.select().where(SlaClock.clock == "next_response").exists()
    customer_replies(db, ruleset, ticket, berlin(2026, 11, 23, 16, 0))
    nxt = row(ticket, "next_response")
    assert (nxt.cycle, nxt.due_at) == (1, berlin(2026, 11, 24, 16, 0))
    # "any news?" before the agents answered moves no deadline
    customer_replies(db, ruleset, ticket, berlin(2026, 11, 24, 9, 0), n=3)
    assert (row(ticket, "next_response").cycle, row(ticket, "next_response").due_at) == \
        (1, berlin(2026, 11, 24, 16, 0))
    agent_replies(db, ruleset, ticket, berlin(2026, 11, 24, 10, 0))
    assert row(ticket, "next_response").due_at is None
    customer_replies(db, ruleset, ticket, berlin(2026, 11, 24, 11, 0), n=4)   # a new question
    assert (row(ticket, "next_response").cycle, row(ticket, "next_response").due_at) == \
        (2, berlin(2026, 11, 25, 11, 0))
    agent_replies(db, ruleset, ticket, berlin(2026, 11, 24, 12, 0))
    assert row(ticket, "resolution").due_at == berlin(2026, 11, 27, 17, 0)   # 5 business days of 8h


def test_a_priority_change_recomputes_from_the_business_time_used(db, ruleset):
    ticket = open_ticket(db, ruleset, berlin(2026, 11, 23, 9, 0), priority="urgent")
    change(db, ruleset, ticket, berlin(2026, 11, 23, 9, 30), Change("priority", "normal"))
    first = row(ticket, "first_response")
    assert (first.budget_s, first.due_at, first.priority) == (8 * 3600, berlin(2026, 11, 23, 17, 0), "normal")
    change(db, ruleset, ticket, berlin(2026, 11, 23, 12, 0), Change("priority", "urgent"))
    assert row(ticket, "first_response").due_at == berlin(2026, 11, 23, 10, 0)   # overdue: 3h used of 1h


def test_resolving_stops_the_clocks_and_a_reopen_resumes_resolution(db, ruleset):
    ticket = open_ticket(db, ruleset, berlin(2026, 11, 23, 9, 0))
    change(db, ruleset, ticket, berlin(2026, 11, 23, 10, 0), Change("status", "resolved"))
    assert [r.due_at for r in SlaClock.select()] == [None, None]
    customer_replies(db, ruleset, ticket, berlin(2026, 11, 23, 11, 0))        # reopens it
    resolution = row(ticket, "resolution")
    assert (resolution.used_s, resolution.due_at) == (3600, berlin(2026, 11, 23, 14, 0))
    assert row(ticket, "first_response").due_at == berlin(2026, 11, 23, 11, 0)   # 1h used of 1h: due now


def test_a_ticket_without_a_policy_or_a_priority_without_targets_has_no_clocks(db, ruleset):
    with db.atomic():
        recorded = tickets.record_inbound(inbound(message_id="x@customer.example"), now=berlin(2026, 11, 23, 9, 0))
        sla.sync(recorded.ticket_id, ruleset, berlin(2026, 11, 23, 9, 0))
    assert SlaClock.select().count() == 0
    open_ticket(db, ruleset, berlin(2026, 11, 23, 9, 0), priority="low", n=2)
    assert SlaClock.select().count() == 0
    no_policies = replace(ruleset, sla_policies=())
    sla.sync(recorded.ticket_id, no_policies, berlin(2026, 11, 23, 10, 0))       # returns at once


def test_naive_times_stay_utc_whatever_the_hosts_time_zone(monkeypatch):
    """The store keeps naive UTC; a host set to Berlin must not shift it by an hour."""
    import time

    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    try:
        assert sla.naive(datetime(2026, 11, 23, 9, 0)) == datetime(2026, 11, 23, 9, 0)
        assert sla.naive(datetime(2026, 11, 23, 9, 0, tzinfo=BERLIN)) == datetime(2026, 11, 23, 8, 0)
    finally:
        monkeypatch.undo()
        time.tzset()
