"""Round robin and least-open assignment: fair, concurrent, and remembered across restarts."""
from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import replace

from rules.model import AGENT, LEAST_OPEN, ROUND_ROBIN, Agent, Assign, Queue, Ruleset, Team
from store import assignment, changes, tickets
from store.changes import Change
from store.db import open_database
from store.models import Ticket
from tests.store.test_tickets import NOW, inbound

AGENTS = (Agent("alice@example.com", "Alice"), Agent("bob@example.com", "Bob"),
          Agent("carol@example.com", "Carol"))
RULESET = Ruleset(version=1, queues=(Queue("general", "support@example.com", "l1"),),
                  agents=AGENTS,
                  teams=(Team("l1", tuple(a.address for a in AGENTS), ROUND_ROBIN),))


def new_ticket(db, n: int, how: Assign, ruleset=RULESET) -> str | None:
    """Open ticket n and assign it as the daemon does: one transaction."""
    with db.atomic():
        ticket = tickets.record_inbound(
            inbound(message_id=f"m{n}@customer.example", from_address=f"c{n}@customer.example"),
            now=NOW)
        agent, _ = assignment.pick(how, ruleset)
        if agent:
            changes.apply(ticket.ticket_id, (Change("assign", agent),), actor="rules", now=NOW)
    return agent


def test_round_robin_over_three_agents_gives_each_ten_of_thirty(db):
    got = [new_ticket(db, n, Assign(ROUND_ROBIN, "l1")) for n in range(30)]
    assert Counter(got) == {a.address: 10 for a in AGENTS}
    assert got[:4] == ["alice@example.com", "bob@example.com", "carol@example.com",
                       "alice@example.com"]


def test_round_robin_continues_after_a_restart(db, database_url):
    assert [new_ticket(db, n, Assign(ROUND_ROBIN, "l1")) for n in range(2)] == \
        ["alice@example.com", "bob@example.com"]
    db.close()
    again = open_database(database_url)                   # a new process, as far as the DB knows
    assert new_ticket(again, 2, Assign(ROUND_ROBIN, "l1")) == "carol@example.com"
    again.close()


def at_once(db, how: Assign) -> Counter:
    """Three workers (threads, each with its own connection) open 10 tickets each at once."""
    got: list[str] = []
    lock, errors = threading.Lock(), []

    def worker(k: int) -> None:
        try:
            for n in range(10):
                agent = new_ticket(db, k * 100 + n, how)
                with lock:
                    got.append(agent)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            db.close()

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    return Counter(got)


def test_round_robin_is_fair_under_concurrency(db):
    assert at_once(db, Assign(ROUND_ROBIN, "l1")) == {a.address: 10 for a in AGENTS}


def test_an_agent_away_is_skipped_and_a_team_with_nobody_available_assigns_nobody(db):
    away = replace(RULESET, agents=(AGENTS[0], replace(AGENTS[1], available=False), AGENTS[2]))
    got = [new_ticket(db, n, Assign(ROUND_ROBIN, "l1"), away) for n in range(4)]
    assert Counter(got) == {"alice@example.com": 2, "carol@example.com": 2}
    nobody = replace(RULESET, agents=tuple(replace(a, available=False) for a in AGENTS))
    assert assignment.pick(Assign(ROUND_ROBIN, "l1"), nobody) == \
        (None, "team l1 has no available member")


def test_least_open_picks_the_member_with_fewest_open_tickets(db):
    for n, agent in enumerate(["alice@example.com"] * 3 + ["bob@example.com"]):
        new_ticket(db, n, Assign(AGENT, agent))
    # alice 3 open, bob 1, carol 0: carol, then bob or carol in turn, ...
    got = [new_ticket(db, 10 + n, Assign(LEAST_OPEN, "l1")) for n in range(5)]
    assert Counter(got) == {"carol@example.com": 3, "bob@example.com": 2}
    counts = assignment.open_counts(tuple(a.address for a in AGENTS))
    assert counts == {"alice@example.com": 3, "bob@example.com": 3, "carol@example.com": 3}


def test_least_open_does_not_count_resolved_tickets(db):
    for n in range(3):
        new_ticket(db, n, Assign(AGENT, "alice@example.com"))
    Ticket.update(status="resolved").where(Ticket.assignee == "alice@example.com").execute()
    got = [new_ticket(db, 10 + n, Assign(LEAST_OPEN, "l1")) for n in range(3)]
    assert sorted(got) == sorted(a.address for a in AGENTS)


def test_least_open_is_fair_under_concurrency(db):
    assert at_once(db, Assign(LEAST_OPEN, "l1")) == {a.address: 10 for a in AGENTS}


def test_a_named_agent_is_assigned_even_when_away_but_not_when_gone(db):
    away = replace(RULESET, agents=(replace(AGENTS[0], available=False), *AGENTS[1:]))
    assert assignment.pick(Assign(AGENT, "alice@example.com"), away)[0] == "alice@example.com"
    gone = replace(RULESET, agents=AGENTS[1:], teams=(Team("l1", ("bob@example.com",)),))
    assert assignment.pick(Assign(AGENT, "alice@example.com"), gone) == \
        (None, "alice@example.com is no agent any more")


def test_a_reply_assigning_while_another_batch_opens_a_ticket_does_not_deadlock(db):
    """Batch A opens a ticket (locks the ticket counter), then assigns by round robin;
    batch B, meanwhile, assigns on a reply, then opens a ticket.  Both finish: assignment
    takes the ticket counter first, so the two lock in the same order."""
    a_has_ticket, errors = threading.Event(), []

    def batch_a() -> None:
        try:
            with db.atomic():
                tickets.next_ticket_number()
                a_has_ticket.set()
                time.sleep(0.5)                       # B is waiting for a lock now
                assignment.pick(Assign(ROUND_ROBIN, "l1"), RULESET)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            db.close()

    def batch_b() -> None:
        a_has_ticket.wait(10)
        try:
            with db.atomic():
                assignment.pick(Assign(ROUND_ROBIN, "l1"), RULESET)
                tickets.next_ticket_number()
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            db.close()

    threads = [threading.Thread(target=batch_a), threading.Thread(target=batch_b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert tickets.next_ticket_number() == 3
