"""`maild status`: how the help desk is doing, for a person (or, with --json, a tool).

    maild status [--json] [--now T]

What is durable, read whether the daemon runs or not (reads only, nothing changes):

- the spool (its SQLite file, read-only): messages incoming, processing and
  quarantined, and how long the oldest incoming one has waited;
- the ticket database: tickets by status, outbound mail by status, and the SLA warnings
  and breaches sent in the 24 hours before `--now` (their ticket events).

What lives only in the running daemon's memory (IMAP account states, the counters since
it started: accepted, processed, quarantined, latency, outbound) is read from its
`/metrics` endpoint (maild/metrics.py) when maild.yaml has ``metrics:``, with a 2 s
timeout, and shown under "daemon"; without ``metrics:`` the CLI cannot see it and says
so.  Whether the daemon runs at all comes from its pid file (`maild.pidfile`).

With --json one object: ``spool`` {incoming, processing, quarantined,
oldest_incoming_age_seconds}, ``quarantined``, ``tickets`` {status: n}, ``outbox``
{status: n}, ``sla_last_24h`` {warnings, breaches}, ``database`` ("ok" or why not),
``daemon`` {running, pid, metrics (the URL or null), scraped, error, imap {account:
state}, counters {accepted {transport: n}, processed {outcome: n}, quarantined {reason:
n}, automatic {kind: n}, outbound_sent, outbound_failures {kind: n}, sla_warnings,
sla_breaches, processing_seconds {count, sum}}}.  Exit 0, or 1 when the database could
not be read (the rest is still shown).
"""
from __future__ import annotations

import urllib.request
from datetime import datetime, timedelta, timezone

from maild.cli import EX_FAILED, EX_OK, EX_USAGE, print_json
from maild.metrics import (OUTBOX_STATUSES, SCRAPE_TIMEOUT_SECONDS, TICKET_STATUSES, count_by,
                           spool_depth)

SLA_WINDOW = timedelta(hours=24)
_COUNTERS = {          # metric family -> (key in "counters", its label)
    "maild_messages_accepted": ("accepted", "transport"),
    "maild_messages_processed": ("processed", "outcome"),
    "maild_messages_quarantined": ("quarantined", "reason"),
    "maild_automatic_mail": ("automatic", "kind"),
    "maild_outbound_failures": ("outbound_failures", "kind"),
}
_TOTALS = {"maild_outbound_sent": "outbound_sent", "maild_sla_warnings": "sla_warnings",
           "maild_sla_breaches": "sla_breaches"}


def cmd_status(args) -> int:
    from maild.commands import _settings
    from maild.rules_commands import parse_when

    settings = _settings(args)
    try:
        now = parse_when(args.now)
    except ValueError:
        print(f"maild: --now {args.now!r}: expected an ISO 8601 time like 2026-11-23T09:00:00+01:00")
        return EX_USAGE
    status = gather(settings, now)
    if args.json:
        print_json(status)
    else:
        print(render(status))
    return EX_OK if status["database"] == "ok" else EX_FAILED


def gather(settings, now: datetime) -> dict:
    depth, age = spool_depth(settings.spool_dir, now)
    status = {"spool": {**depth, "oldest_incoming_age_seconds": round(age, 3)},
              "quarantined": depth["quarantined"],
              "tickets": {}, "outbox": {}, "sla_last_24h": {}, "database": "ok"}
    try:
        status.update(database_numbers(settings, now))
    except Exception as exc:  # noqa: BLE001 - unreachable, no schema: say so, show the rest
        status["database"] = f"unreadable: {exc}"
    status["daemon"] = daemon_numbers(settings)
    return status


def database_numbers(settings, now: datetime) -> dict:
    from peewee import fn

    from maild.commands import _read_database
    from store.models import Event

    db = _read_database(settings)
    try:
        since = (now - SLA_WINDOW).astimezone(timezone.utc).replace(tzinfo=None)   # stored naive UTC
        sla = dict(Event.select(Event.kind, fn.COUNT(Event.id))
                   .where(Event.kind.in_(("sla_warning", "sla_breach")), Event.at >= since)
                   .group_by(Event.kind).tuples())
        return {"tickets": count_by(db, "ticket", "status", TICKET_STATUSES),
                "outbox": count_by(db, "outbox", "status", OUTBOX_STATUSES),
                "sla_last_24h": {"warnings": sla.get("sla_warning", 0),
                                 "breaches": sla.get("sla_breach", 0)}}
    finally:
        db.close()            # no statement left open: the daemon may be writing


def daemon_numbers(settings) -> dict:
    from maild.pidfile import DaemonNotRunning, running_pid

    daemon = {"running": False, "pid": None, "metrics": None, "scraped": False, "error": None,
              "imap": {}, "counters": {}}
    try:
        daemon["pid"] = running_pid(settings.spool_dir)
        daemon["running"] = True
    except DaemonNotRunning:
        pass
    if settings.metrics is None:
        daemon["error"] = "metrics are off (maild.yaml metrics:): live numbers not available"
        return daemon
    host, port = settings.metrics.address
    if port == 0:
        daemon["error"] = "metrics.listen has port 0: the daemon's port is not known here"
        return daemon
    host = "127.0.0.1" if host in ("", "0.0.0.0") else ("::1" if host == "::" else host)
    daemon["metrics"] = url = f"http://{f'[{host}]' if ':' in host else host}:{port}/metrics"
    try:
        with urllib.request.urlopen(url, timeout=SCRAPE_TIMEOUT_SECONDS) as answer:
            text = answer.read().decode("utf-8")
    except (OSError, ValueError) as exc:
        daemon["error"] = f"{url}: {getattr(exc, 'reason', exc)}"
        return daemon
    daemon["scraped"] = True
    daemon["imap"], daemon["counters"] = read_exposition(text)
    return daemon


def read_exposition(text: str) -> tuple[dict[str, str], dict]:
    """({account: state}, counters) from a /metrics page."""
    from prometheus_client.parser import text_string_to_metric_families

    imap: dict[str, str] = {}
    counters: dict = {key: {} for key, _ in _COUNTERS.values()}
    counters.update({key: 0 for key in _TOTALS.values()})
    counters["processing_seconds"] = {"count": 0, "sum": 0.0}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if family.name == "maild_imap_account_state" and sample.value == 1:
                imap[sample.labels["account"]] = sample.labels["state"]
            elif family.name in _COUNTERS and sample.name.endswith("_total"):
                key, label = _COUNTERS[family.name]
                counters[key][sample.labels[label]] = int(sample.value)
            elif family.name in _TOTALS and sample.name.endswith("_total"):
                counters[_TOTALS[family.name]] += int(sample.value)     # sent: every template
            elif family.name == "maild_processing_seconds" and sample.name.endswith(("_count", "_sum")):
                counters["processing_seconds"][sample.name.rsplit("_", 1)[1]] = sample.value
    return imap, counters


def _counts(values: dict) -> str:
    return ", ".join(f"{name} {count}" for name, count in values.items()) or "-"


def render(status: dict) -> str:
    spool, daemon = status["spool"], status["daemon"]
    lines = [f"spool:       incoming {spool['incoming']}, processing {spool['processing']}, "
             f"quarantined {spool['quarantined']}"
             + (f"; oldest waiting {spool['oldest_incoming_age_seconds']:.0f} s"
                if spool["incoming"] else "")]
    if status["database"] == "ok":
        sla = status["sla_last_24h"]
        lines += [f"tickets:     {_counts(status['tickets'])}",
                  f"outbox:      {_counts(status['outbox'])}",
                  f"SLA (24 h):  warnings {sla['warnings']}, breaches {sla['breaches']}"]
    else:
        lines.append(f"database:    {status['database']}")
    running = f"running, pid {daemon['pid']}" if daemon["running"] else "not running"
    lines.append(f"daemon:      {running}")
    if daemon["scraped"]:
        c = daemon["counters"]
        latency = c["processing_seconds"]
        mean = latency["sum"] / latency["count"] if latency["count"] else 0.0
        lines += [f"  since its start ({daemon['metrics']}):",
                  f"  accepted:    {_counts(c['accepted'])}",
                  f"  processed:   {_counts(c['processed'])} (mean {mean:.3f} s from spool to ticket)",
                  f"  quarantined: {_counts(c['quarantined'])}",
                  f"  automatic:   {_counts(c['automatic'])}",
                  f"  outbound:    sent {c['outbound_sent']}; failures: {_counts(c['outbound_failures'])}",
                  f"  SLA:         warnings {c['sla_warnings']}, breaches {c['sla_breaches']}"]
        lines += [f"  imap {account}: {state}" for account, state in sorted(daemon["imap"].items())]
    elif daemon["error"]:
        lines.append(f"  live numbers: {daemon['error']}")
    return "\n".join(lines)
