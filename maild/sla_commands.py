"""`maild sla show N`: a ticket's SLA clocks, for a person or as JSON.

    maild sla show N [--json] [--now ISO-TIME]

For each clock (first response, next response, resolution): its state (running, paused
while the ticket waits on the customer, stopped), the target and the business time it
allows, the business time used and left (negative: overdue), and when it is due, in the
calendar's time zone and in UTC.  `--now` asks as of another time (default: now).
Reads only; the clocks are kept by `store.sla` as the ticket changes.
"""
from __future__ import annotations

import sys
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from maild.cli import EX_FAILED, EX_OK, EX_USAGE, print_json
from rules.durations import format_duration


def cmd_sla(args) -> int:
    from maild.commands import _read_database, _runtime, _settings
    from maild.rules_commands import NoSpool, parse_when

    settings = _settings(args)
    ruleset = _runtime(settings, spool=NoSpool()).ruleset
    try:
        now = parse_when(args.now)
    except ValueError as exc:
        print(f"maild sla: {exc}", file=sys.stderr)
        return EX_USAGE
    db = _read_database(settings)
    try:
        return _show(args, ruleset, now)
    finally:
        db.close()            # no statement left open: the daemon may be writing


def _show(args, ruleset, now: datetime) -> int:
    from store import sla
    from store.models import Ticket

    ticket = Ticket.get_or_none(Ticket.number == args.number)
    if ticket is None:
        print(f"maild: no ticket #{args.number}", file=sys.stderr)
        return EX_FAILED
    shown = [_clock(row, clock, calendar, target, now) for row, clock, calendar, target
             in sla.clocks(ticket.id, ruleset)]
    if args.json:
        print_json({"ticket": ticket.number, "policy": ticket.sla_policy,
                    "priority": ticket.priority, "now": now.isoformat(), "clocks": shown})
        return EX_OK
    print(f"Ticket #{ticket.number}: SLA policy {ticket.sla_policy or '-'}, priority "
          f"{ticket.priority}, as of {now:%Y-%m-%d %H:%M} UTC")
    if not shown:
        print("  no clocks" + ("" if ticket.sla_policy else " (the ticket has no SLA policy)"))
    for c in shown:
        due = (f"due {c['due_local']} ({c['due_at']} UTC)" if c["due_at"] else "not due")
        print(f"  {c['clock']:<15} {c['state']:<8} target {c['target'] or '-'} "
              f"({c['budget']} business time), used {c['used']}, left {c['remaining']}, {due}"
              + (f", cycle {c['cycle']}" if c["cycle"] > 1 else ""))
    return EX_OK


def _clock(row, clock, calendar, target, now: datetime) -> dict:
    due = clock.due_at(calendar)
    local = due.astimezone(ZoneInfo(calendar.timezone)) if due else None
    return {"clock": clock.name, "state": clock.state, "cycle": clock.cycle,
            "target": str(target) if target else None, "budget": format_duration(clock.budget),
            "used": format_duration(clock.used(calendar, now)),
            "remaining": format_duration(clock.remaining(calendar, now)),
            "due_at": due.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M") if due else None,
            "due_local": local.strftime("%Y-%m-%d %H:%M %Z") if local else None,
            "calendar": calendar.name, "started_at": clock.started_at.isoformat()}
