"""`maild report`: first-response and resolution times, SLA compliance and breaches.

    maild report [--since DATE] [--json] [--now ISO-TIME]

Over the tickets created since DATE (YYYY-MM-DD as UTC midnight, or an ISO 8601 time;
default: 30 days before now): the median and p90 of the first-response and resolution
times, in wall time and in the SLA clocks' business time; per queue, priority and clock
how many SLA clocks were met, breached and are still running, with the compliance
percentage; and the breached clocks, newest first, with how far over the budget they are.
`--now` asks as of another time (default: now).  `store.report` has the exact semantics;
this module only prints.  Reads only.
"""
from __future__ import annotations

import sys
from datetime import datetime, timedelta, timezone

from maild.cli import EX_OK, EX_USAGE, print_json
from rules.durations import format_duration


def parse_since(text: str) -> datetime:
    """'2026-11-01' -> 2026-11-01 00:00 UTC; an ISO time without an offset is UTC."""
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--since {text!r}: expected a date like 2026-11-01 or an ISO 8601 "
                         "time like 2026-11-01T09:00:00+01:00") from None
    return at if at.tzinfo else at.replace(tzinfo=timezone.utc)


def cmd_report(args) -> int:
    from maild.commands import _read_database, _runtime, _settings
    from maild.rules_commands import NoSpool, parse_when
    from store import report

    settings = _settings(args)
    ruleset = _runtime(settings, spool=NoSpool()).ruleset
    try:
        now = parse_when(args.now)
    except ValueError:        # its message names `rules test --at`
        return _usage(f"--now {args.now!r}: expected an ISO 8601 time like 2026-11-23T09:00:00+01:00")
    try:
        since = parse_since(args.since) if args.since else None
    except ValueError as exc:
        return _usage(str(exc))
    db = _read_database(settings)
    try:
        built = report.build(now, since, ruleset=ruleset)
    finally:
        db.close()            # no statement left open: the daemon may be writing
    if args.json:
        print_json(as_json(built))
    else:
        print_text(built)
    return EX_OK


def _usage(message: str) -> int:
    print(f"maild report: {message}", file=sys.stderr)
    return EX_USAGE


# --- JSON ---------------------------------------------------------------------------------

def as_json(r) -> dict:
    return {"now": _iso(r.now), "since": _iso(r.since), "tickets": r.tickets,
            "first_response": _measure(r.first_response), "resolution": _measure(r.resolution),
            "compliance": [_compliance(c) for c in r.compliance],
            "overall": _compliance(r.overall),
            "breaches": [_breach(b) for b in r.breaches], "breaches_total": r.breaches_total}


def _measure(m) -> dict:
    return {"wall": _times(m.wall), "business": _times(m.business)}


def _times(t) -> dict:
    """Seconds (whole, rounded) for programs and the human spelling, None when no data."""
    return {"count": t.count, "median_s": _seconds(t.median), "p90_s": _seconds(t.p90),
            "median": _human(t.median), "p90": _human(t.p90)}


def _compliance(c) -> dict:
    return {"queue": c.queue, "priority": c.priority, "clock": c.clock, "met": c.met,
            "breached": c.breached, "running": c.running, "percent": c.percent}


def _breach(b) -> dict:
    return {"ticket": b.ticket, "queue": b.queue, "priority": b.priority, "clock": b.clock,
            "cycle": b.cycle, "state": b.state, "due_at": _iso(b.due_at),
            "overdue_s": _seconds(b.overdue), "overdue": _human(b.overdue)}


# --- text ---------------------------------------------------------------------------------

def print_text(r) -> None:
    print(f"SLA report: {r.tickets} ticket(s) created since {r.since:%Y-%m-%d %H:%M} UTC, "
          f"as of {r.now:%Y-%m-%d %H:%M} UTC")
    print(f"\n{'':<26}{'count':>6}{'median':>10}{'p90':>10}")
    for label, measure in (("first response", r.first_response), ("resolution", r.resolution)):
        for kind, t in (("wall", measure.wall), ("business", measure.business)):
            print(f"  {label if kind == 'wall' else '':<15} {kind:<8}{t.count:>6}"
                  f"{_human(t.median) or '-':>10}{_human(t.p90) or '-':>10}")
    lines = [*r.compliance, r.overall]
    queue_w = max(len(c.queue or "all") for c in lines)
    print(f"\n  {'SLA compliance':<{queue_w + 26}}{'met':>6}{'breached':>10}{'running':>9}"
          f"{'percent':>9}")
    if not r.compliance:
        print("  no SLA clocks on these tickets")
    for c in lines:
        percent = f"{c.percent:.1f}%" if c.percent is not None else "-"
        print(f"  {c.queue or 'all':<{queue_w}}  {c.priority or '':<8}  {c.clock or '':<14}"
              f"{c.met:>6}{c.breached:>10}{c.running:>9}{percent:>9}")
    print(f"\n  Breaches: {r.breaches_total}" + (" (newest first)" if r.breaches else ""))
    for b in r.breaches:
        due = f"due {b.due_at:%Y-%m-%d %H:%M} UTC" if b.due_at else "due -"
        print(f"  #{b.ticket:<6} {b.queue:<{queue_w}}  {b.priority:<8}  {b.clock:<14}  "
              f"cycle {b.cycle}  {b.state:<7}  {due:<24}  overdue {format_duration(b.overdue)}")
    if r.breaches_total > len(r.breaches):
        print(f"  ... and {r.breaches_total - len(r.breaches)} more")


def _seconds(td: timedelta | None) -> int | None:
    return round(td.total_seconds()) if td is not None else None


def _human(td: timedelta | None) -> str | None:
    return format_duration(td) if td is not None else None


def _iso(at: datetime | None) -> str | None:
    return at.replace(tzinfo=timezone.utc).isoformat() if at is not None else None
