"""SLA sweep time with 10k, 100k and 1M stored tickets, few of them due: it must stay flat.

    .venv/bin/python bench/sla_sweep.py [--sizes 10000,100000,1000000] [--due 20]
                                         [--rounds 15] [--database URL] [--json]

For each size N, in a fresh database (SQLite in a temporary folder by default, or a
PostgreSQL URL whose tables are dropped first), the bench stores N tickets with two
running SLA clocks each (first response and resolution, their next escalation step
spread over the coming 30 days), then `--due` tickets whose first-response step is due
now.  It times, as medians over `--rounds`:

idle
    `maild.escalations.sweep` with nothing due (the scheduler's 30-second case);
due
    a sweep that finds the `--due` clocks, renders and queues their mails, writes the
    ledger, and is rolled back (`dry_run`) so every round sees the same work.

Reported per size in milliseconds and as a ratio to the smallest size: flat means the
ratios stay near 1.0 while N grows a hundredfold.  Filling the database is not timed.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from maild import escalations  # noqa: E402
from maild.config import load_settings  # noqa: E402
from maild.runtime import build_context, load_policy  # noqa: E402
from store.db import is_sqlite, open_database  # noqa: E402
from store.migrations import migrate  # noqa: E402
from store.models import ALL_MODELS  # noqa: E402

NOW = datetime(2026, 11, 23, 12, 0)
RULES = """\
version: 1
agents:
  - {address: alice@example.com, name: Alice}
teams:
  l1: {members: [alice@example.com]}
queues:
  general: {address: support@bench.example, team: l1, sla: standard}
calendars:
  always: {timezone: UTC, hours: {mon-sun: "00:00-24:00"}}
sla:
  standard:
    calendar: always
    targets: {normal: {first_response: 8h, resolution: 5d}}
    escalations:
      - {at: 80%, notify: [assignee], template: sla_warning}
      - {at: breach, notify: [assignee, team], template: sla_breach}
"""


def config(folder: Path, url: str) -> Path:
    (folder / "rules.yaml").write_text(RULES)
    (folder / "maild.yaml").write_text(
        f'database: "{url}"\nspool: spool\noutbound: {{relay: "maildir:out"}}\n'
        "helpdesk: {name: Bench, address: support@bench.example, token_prefix: Bench}\n"
        "rules: rules.yaml\n")
    return folder / "maild.yaml"


def fill(db, n: int, due: int) -> None:
    """N tickets not due for days, then `due` tickets whose 80% step is due at NOW."""
    rows_per_chunk = 5000
    db.execute_sql('INSERT INTO "contact" ("address", "name", "created_at") VALUES (?, ?, ?)'
                   .replace("?", db.param), ["carol@customer.example", "Carol", NOW])
    [(contact,)] = db.execute_sql('SELECT "id" FROM "contact"').fetchall()
    p = db.param
    ticket_sql = (f'INSERT INTO "ticket" ("id", "number", "subject", "status", "priority", "queue", '
                  f'"requester_id", "assignee", "sla_policy", "created_at", "updated_at") '
                  f'VALUES ({", ".join([p] * 11)})')
    clock_sql = (f'INSERT INTO "sla_clock" ("ticket_id", "clock", "cycle", "policy", "priority", '
                 f'"budget_s", "used_s", "started_at", "running_since", "due_at", "steps_sent", '
                 f'"next_step_at") VALUES ({", ".join([p] * 12)})')
    total = n + due
    for start in range(1, total + 1, rows_per_chunk):
        ids = range(start, min(start + rows_per_chunk, total + 1))
        tickets, clocks = [], []
        for i in ids:
            is_due = i > n
            # not due: started now-ish, steps days ahead; due: started 6h30m ago (80% of 8h = 6h24m)
            started = NOW - (timedelta(hours=6, minutes=30) if is_due else timedelta(minutes=i % 600))
            tickets.append((i, i, f"Ticket {i}", "open", "normal", "general", contact,
                            "alice@example.com", "standard", started, started))
            for name, budget in (("first_response", 8 * 3600), ("resolution", 5 * 86400)):
                step = started + timedelta(seconds=budget * 0.8)
                if not is_due:
                    step = NOW + timedelta(days=1 + i % 30)
                clocks.append((i, name, 1, "standard", "normal", budget, 0, started, started,
                               started + timedelta(seconds=budget), "", step))
        with db.atomic():
            cursor = db.cursor()
            cursor.executemany(ticket_sql, tickets)
            cursor.executemany(clock_sql, clocks)
    if not is_sqlite(db):
        db.execute_sql("SELECT setval(pg_get_serial_sequence('ticket', 'id'), %s)", [total])
        db.execute_sql("ANALYZE")


def timed(fn, rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


def run_size(n: int, args, folder: Path) -> dict:
    url = args.database or f"sqlite:///{folder}/bench-{n}.db"
    db = open_database(url)
    if args.database:
        db.drop_tables(ALL_MODELS, safe=True, cascade=True)
    migrate(db)
    started = time.perf_counter()
    fill(db, n, args.due)
    filled = time.perf_counter() - started
    settings = load_settings(config(folder, url))
    context = build_context(settings, *load_policy(settings))
    dry = escalations.sweep(db, context, NOW, dry_run=True)
    assert len(dry.sent) == args.due, f"expected {args.due} due steps, found {len(dry.sent)}"
    due_ms = timed(lambda: escalations.sweep(db, context, NOW, dry_run=True), args.rounds)
    quiet = NOW - timedelta(hours=2)                  # before anything is due
    idle_ms = timed(lambda: escalations.sweep(db, context, quiet), args.rounds * 4)
    db.close()
    if not args.database:
        Path(f"{folder}/bench-{n}.db").unlink()
    return {"tickets": n, "due": args.due, "fill_s": round(filled, 1),
            "idle_ms": round(idle_ms, 3), "due_ms": round(due_ms, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--due", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--database", help="a PostgreSQL URL (its maild tables are dropped!)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="maild-sla-bench-") as tmp:
        results = []
        for n in sizes:
            results.append(run_size(n, args, Path(tmp)))
            if not args.json:
                print(f"filled {n:>9,} tickets in {results[-1]['fill_s']} s", file=sys.stderr)
    base = results[0]
    for r in results:
        r["idle_ratio"] = round(r["idle_ms"] / base["idle_ms"], 2)
        r["due_ratio"] = round(r["due_ms"] / base["due_ms"], 2)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{'tickets':>10} {'idle sweep':>12} {'ratio':>6} {'sweep, ' + str(args.due) + ' due':>16} {'ratio':>6}")
    for r in results:
        print(f"{r['tickets']:>10,} {r['idle_ms']:>9.3f} ms {r['idle_ratio']:>6.2f} "
              f"{r['due_ms']:>13.2f} ms {r['due_ratio']:>6.2f}")


if __name__ == "__main__":
    main()
