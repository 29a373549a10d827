"""The SLA report as an admin reads it: one week of tickets on an office calendar, with an
injected clock, then the times, the compliance per queue and priority, and the breaches."""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from rules.load import load_rules
from store import changes, report, sla, tickets
from store.changes import Change
from store.report import Breach, Compliance, Times
from tests.store.test_tickets import inbound

RULES = """\
version: 1
queues:
  general: {address: support@example.com, sla: standard}
  billing: {address: billing@example.com, sla: standard}
calendars:
  office: {timezone: UTC, hours: {mon-fri: "09:00-17:00"}}
sla:
  standard:
    calendar: office
    targets:
      urgent: {first_response: 1h, resolution: 4h}
      normal: {first_response: 8h, resolution: 5d}
"""
NOW = datetime(2026, 11, 27, 12, 0)          # Friday noon; the week began Monday the 23rd
H = timedelta(hours=1)


@pytest.fixture
def ruleset(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    return load_rules(path)


def opens(db, ruleset, at, queue, priority, n) -> int:
    with db.atomic():
        recorded = tickets.record_inbound(
            inbound(message_id=f"m{n}@customer.example", queue=queue, priority=priority), now=at)
        changes.apply(recorded.ticket_id, (Change("sla", "standard"),), actor="rules", now=at)
        sla.sync(recorded.ticket_id, ruleset, at)
    return recorded.ticket_id


def agent_replies(db, ruleset, ticket, at):
    with db.atomic():
        changes.record_reply(ticket, actor="alice@example.com", now=at)
        sla.sync(ticket, ruleset, at, agent_replied=True)


def status(db, ruleset, ticket, at, value):
    with db.atomic():
        changes.apply(ticket, (Change("status", value),), actor="alice@example.com", now=at)
        sla.sync(ticket, ruleset, at)


def a_week_of_tickets(db, ruleset) -> dict[str, int]:
    """Six tickets, Monday to Thursday (business hours 09-17 UTC); their numbers by name."""
    t1 = opens(db, ruleset, datetime(2026, 11, 23, 9), "general", "urgent", 1)
    agent_replies(db, ruleset, t1, datetime(2026, 11, 23, 9, 30))    # 30m: met
    status(db, ruleset, t1, datetime(2026, 11, 23, 11), "resolved")   # 2h: met
    t2 = opens(db, ruleset, datetime(2026, 11, 23, 10), "general", "urgent", 2)
    agent_replies(db, ruleset, t2, datetime(2026, 11, 23, 12))        # 2h of 1h: 1h late
    status(db, ruleset, t2, datetime(2026, 11, 23, 16), "resolved")   # 6h of 4h: 2h late
    t3 = opens(db, ruleset, datetime(2026, 11, 23, 16), "general", "normal", 3)
    agent_replies(db, ruleset, t3, datetime(2026, 11, 24, 10))        # 18h wall, 2h business
    t4 = opens(db, ruleset, datetime(2026, 11, 24, 9), "billing", "urgent", 4)   # nobody answers
    t5 = opens(db, ruleset, datetime(2026, 11, 24, 9), "billing", "normal", 5)
    status(db, ruleset, t5, datetime(2026, 11, 24, 10), "pending")    # waits on the customer
    t6 = opens(db, ruleset, datetime(2026, 11, 25, 9), "general", "normal", 6)
    agent_replies(db, ruleset, t6, datetime(2026, 11, 25, 13))        # 4h
    status(db, ruleset, t6, datetime(2026, 11, 26, 9), "closed")      # closed, never "resolved"
    ids = {"t1": t1, "t2": t2, "t3": t3, "t4": t4, "t5": t5, "t6": t6}
    return {name: tickets.Ticket.get_by_id(i).number for name, i in ids.items()}


def test_first_response_and_resolution_times_have_exact_medians_and_p90(db, ruleset):
    a_week_of_tickets(db, ruleset)
    r = report.build(NOW, ruleset=ruleset)
    assert r.tickets == 6
    # answered: 30m, 2h, 4h, 18h (wall); 30m, 2h, 2h, 4h (business: t3 waited overnight)
    assert r.first_response.wall == Times(4, 3 * H, 18 * H)     # mean of 2h and 4h; rank 4 of 4
    assert r.first_response.business == Times(4, 2 * H, 4 * H)
    # done: 2h, 6h, 24h (t6 by its close) wall; 2h, 6h, 8h business
    assert r.resolution.wall == Times(3, 6 * H, 24 * H)
    assert r.resolution.business == Times(3, 6 * H, 8 * H)


def test_p90_is_the_nearest_rank():
    ten = [timedelta(minutes=m) for m in range(10, 0, -1)]
    assert report.times(ten) == Times(10, timedelta(minutes=5.5), timedelta(minutes=9))
    assert report.times(ten + [timedelta(hours=5)]).p90 == timedelta(minutes=10)   # rank 10 of 11
    assert report.times([]) == Times(0, None, None)


def test_compliance_per_queue_priority_and_clock(db, ruleset):
    a_week_of_tickets(db, ruleset)
    r = report.build(NOW, ruleset=ruleset)
    assert r.compliance == (
        Compliance("billing", "urgent", "first_response", 0, 1, 0, 0.0),     # t4, never answered
        Compliance("billing", "urgent", "resolution", 0, 1, 0, 0.0),
        Compliance("billing", "normal", "first_response", 0, 0, 1, None),    # t5 paused in time
        Compliance("billing", "normal", "resolution", 0, 0, 1, None),
        Compliance("general", "urgent", "first_response", 1, 1, 0, 50.0),    # t1 met, t2 late
        Compliance("general", "urgent", "resolution", 1, 1, 0, 50.0),
        Compliance("general", "normal", "first_response", 2, 0, 0, 100.0),   # t3, t6
        Compliance("general", "normal", "resolution", 1, 0, 1, 100.0),       # t6 met, t3 open
    )
    assert r.overall == Compliance(None, None, None, 5, 4, 3, 55.6)


def test_breaches_newest_first_with_how_far_over_budget(db, ruleset):
    n = a_week_of_tickets(db, ruleset)
    r = report.build(NOW, ruleset=ruleset)
    assert r.breaches_total == 4
    assert r.breaches == (
        # t4 unanswered since Tuesday 09:00: 27 business hours used by Friday noon
        Breach(n["t4"], "billing", "urgent", "resolution", 1, "running",
               datetime(2026, 11, 24, 13), 23 * H),
        Breach(n["t4"], "billing", "urgent", "first_response", 1, "running",
               datetime(2026, 11, 24, 10), 26 * H),
        Breach(n["t2"], "general", "urgent", "resolution", 1, "stopped", None, 2 * H),
        Breach(n["t2"], "general", "urgent", "first_response", 1, "stopped", None, 1 * H),
    )
    limited = report.build(NOW, ruleset=ruleset, breaches_limit=1)
    assert [b.clock for b in limited.breaches] == ["resolution"] and limited.breaches_total == 4


def test_without_the_rules_a_running_breach_is_overdue_in_wall_time(db, ruleset):
    n = a_week_of_tickets(db, ruleset)
    first = report.build(NOW).breaches[1]
    assert (first.ticket, first.clock) == (n["t4"], "first_response")
    assert first.overdue == NOW - datetime(2026, 11, 24, 10)      # 3 days 2 hours


def test_since_leaves_older_tickets_out(db, ruleset):
    a_week_of_tickets(db, ruleset)
    old = opens(db, ruleset, datetime(2026, 10, 1, 9), "general", "urgent", 7)   # a Thursday
    agent_replies(db, ruleset, old, datetime(2026, 10, 1, 15))                     # 5h late
    status(db, ruleset, old, datetime(2026, 10, 1, 16), "resolved")                # 3h late
    default = report.build(NOW, ruleset=ruleset)                   # the last 30 days
    assert (default.since, default.tickets, default.breaches_total) == (NOW - timedelta(days=30), 6, 4)
    everything = report.build(NOW, datetime(2026, 9, 1), ruleset=ruleset)
    assert (everything.tickets, everything.first_response.wall.count) == (7, 5)
    assert everything.compliance[4] == Compliance("general", "urgent", "first_response", 1, 2, 0, 33.3)
    assert everything.breaches_total == 6
    assert [(b.clock, b.overdue) for b in everything.breaches[-2:]] == [
        ("resolution", 3 * H), ("first_response", 5 * H)]
    this_week = report.build(NOW, datetime(2026, 11, 24), ruleset=ruleset)     # from Tuesday
    assert (this_week.tickets, this_week.first_response.wall) == (3, Times(1, 4 * H, 4 * H))


def test_an_empty_period_reports_nothing_without_failing(db, ruleset):
    r = report.build(NOW, ruleset=ruleset)
    assert (r.tickets, r.first_response.wall, r.resolution.business) == (0, Times(0, None, None),
                                                                         Times(0, None, None))
    assert (r.compliance, r.overall, r.breaches) == ((), Compliance(None, None, None, 0, 0, 0, None), ())
