"""`maild sla show N` and `maild sla sweep`: a ticket's SLA clocks; one escalation sweep.

    maild sla show N [--json] [--now ISO-TIME]
    maild sla sweep [--now ISO-TIME] [--dry-run] [--json]

For each clock (first response, next response, resolution): its state (running, paused
while the ticket waits on the customer, stopped), the target and the business time it
allows, the business time used and left (negative: overdue), and when it is due, in the
calendar's time zone and in UTC.  `--now` asks as of another time (default: now).
Reads only; the clocks are kept by `store.sla` as the ticket changes.

`sla sweep` runs one SLA sweep as the daemon's scheduler does (`maild.escalations`), as
of `--now`, after recomputing every running clock's next step from rules.yaml as it is
on disk, and prints each step sent: ticket, clock, step, when it fell due, to whom.
Steps already sent are never sent again, whoever sent them.  `--dry-run` prints what
would be sent and changes nothing (the whole sweep is rolled back).
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
    runtime = _runtime(settings, spool=NoSpool())
    try:
        now = parse_when(args.now)
    except ValueError as exc:
        print(f"maild sla: {exc}".replace("--at", "--now"), file=sys.stderr)
        return EX_USAGE
    if args.action == "sweep":
        _read_database(settings).close()          # a database without a schema is named
        db = runtime.open_database()              # the sweep writes: schema brought up to date
    else:
        db = _read_database(settings)
    try:
        if args.action == "sweep":
            return _sweep(args, runtime, db, now)
        return _show(args, runtime.ruleset, now)
    finally:
        db.close()            # no statement left open: the daemon may be writing


def _sweep(args, runtime, db, now: datetime) -> int:
    from maild import escalations
    from store import sla

    context = runtime.context()
    with db.atomic() as outer:
        sla.reschedule(context.ruleset, now)
        result = escalations.sweep(db, context, now, dry_run=args.dry_run)
        if args.dry_run:
            outer.rollback()
    steps = [{"ticket": s.ticket_number, "clock": s.clock, "cycle": s.cycle, "step": s.step,
              "breach": s.breached, "due_at": s.due_at.astimezone(timezone.utc).isoformat(),
              "recipients": list(s.recipients)} for s in result.sent]
    if args.json:
        print_json({"now": now.isoformat(), "dry_run": args.dry_run, "locked_out": result.locked_out,
                    "sent": steps})
        return EX_OK
    verb = "would send" if args.dry_run else "sent"
    if result.locked_out:
        print("another maild instance is sweeping now; nothing done")
    for s in steps:
        print(f"#{s['ticket']} {s['clock']} {s['step']}"
              + (f" (cycle {s['cycle']})" if s["cycle"] > 1 else "")
              + f", due {s['due_at'][:16].replace('T', ' ')} UTC: {verb} to "
              + (", ".join(s["recipients"]) or "nobody (no assignee, team or address to notify)"))
    print(f"SLA sweep as of {now:%Y-%m-%d %H:%M} UTC: {len(steps)} step(s) {verb}"
          + (" (dry run: nothing changed)" if args.dry_run else ""))
    return EX_OK


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
