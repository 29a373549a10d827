"""Pick the agent for a new ticket: a named agent, a team's round robin, or its least busy.

    with db.atomic():
        agent, why = pick(Assign(ROUND_ROBIN, "l1"), ruleset)   # inside the ticket's transaction

Both team policies choose among the team's *available* members (`available: false` in
rules.yaml marks an agent away), in the team's order, and keep their state in the
database, so a restart or a second instance continues where the last one stopped:

round robin
    Each team has a turn counter (`counter` row `round_robin:<team>`), incremented with
    one row-locking UPDATE ... RETURNING: two transactions never get the same turn, and
    the turn is the counter modulo the number of available members.  N·k tickets over N
    members give each exactly k.
least open
    The member with the fewest tickets in new/open/pending.  The team's `least_open:<team>`
    counter row is updated first, which locks it until the transaction commits, so two
    instances (PostgreSQL) decide one after the other and each sees the other's ticket.
    Ties go to the member whose turn it is (the counter rotates the order), so a quiet
    team still shares evenly.

A named agent is assigned even when away (the rule says so); an agent no longer in the
rules, or a team with nobody available, assigns nobody, and `why` says so.
"""
from __future__ import annotations

import logging

from rules.model import AGENT, LEAST_OPEN, ROUND_ROBIN, Assign, Ruleset
from store.fastsql import fetch
from store.models import Counter, Ticket

log = logging.getLogger(__name__)

OPEN_STATUSES = ("new", "open", "pending")


def pick(assign: Assign, ruleset: Ruleset) -> tuple[str | None, str]:
    """(the agent's primary address or None, why) for a new ticket."""
    if assign.kind == AGENT:
        agent = ruleset.agent_for(assign.target)
        if agent is None:
            return None, f"{assign.target} is no agent any more"
        return agent.address, "named by the rules"
    members = ruleset.available_members(assign.target)
    if not members:
        return None, f"team {assign.target} has no available member"
    turn = next_turn(f"{assign.kind}:{assign.target}")
    start = (turn - 1) % len(members)
    rotated = members[start:] + members[:start]
    if assign.kind == ROUND_ROBIN:
        return rotated[0].address, f"round robin over team {assign.target} (turn {turn})"
    if assign.kind == LEAST_OPEN:
        counts = open_counts(tuple(a.address for a in members))
        chosen = min(rotated, key=lambda a: counts.get(a.address, 0))
        return chosen.address, (f"least open in team {assign.target} "
                                f"({counts.get(chosen.address, 0)} open)")
    raise ValueError(f"unknown assignment kind {assign.kind!r}")


def next_turn(name: str) -> int:
    """Increment counter `name` (created at 0 on first use) and return its new value;
    the row stays locked until the caller's transaction ends.

    The `ticket` counter row is locked first, always: a batch that opens a ticket locks
    it before any assignment counter (`store.tickets.next_ticket_number`), so a batch
    that assigns on a reply must take the same order, or two instances deadlock
    (PostgreSQL).  It costs nothing more: such batches were serialized by it anyway."""
    db = Counter._meta.database
    table = Counter._meta.table_name
    db.execute_sql(f'UPDATE "{table}" SET "value" = "value" WHERE "name" = {db.param}', ("ticket",))
    Counter.insert(name=name, value=0).on_conflict_ignore().execute()
    cursor = db.execute_sql(f'UPDATE "{table}" SET "value" = "value" + 1 WHERE "name" = {db.param} '
                            'RETURNING "value"', (name,))
    return int(cursor.fetchone()[0])


def open_counts(addresses: tuple[str, ...]) -> dict[str, int]:
    """How many tickets in new/open/pending each of `addresses` has."""
    db = Ticket._meta.database
    marks = ", ".join("?" * len(addresses))
    states = ", ".join("?" * len(OPEN_STATUSES))
    rows = fetch(db, f'SELECT "assignee", COUNT(*) FROM "ticket" WHERE "assignee" IN ({marks}) '
                     f'AND "status" IN ({states}) GROUP BY "assignee"', (*addresses, *OPEN_STATUSES))
    return {assignee: int(count) for assignee, count in rows}
