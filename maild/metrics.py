"""Prometheus metrics: what maild counts, and the `/metrics` endpoint that shows it.

    metrics = Metrics()                      # one per process; handed to the parts that count
    metrics.accepted("lmtp")                 # maild/daemon.py, for every spooled message
    server = MetricsServer.start(settings.metrics.address, registry_for(...))
    server.port; server.stop()

maild.yaml ``metrics: {listen: "127.0.0.1:9101"}`` turns the endpoint on (no ``metrics:``,
no listener, nothing bound); counting goes on regardless, it costs next to nothing.
The HTTP server is prometheus-client's own (a daemon thread, each scrape in a thread of
its own): a scrape never runs on, or waits for, the event loop.

Two processes, one endpoint.  `maild serve` is the intake process (listeners, IMAP,
spool) with the processing child `maild process` (worker, sender, scheduler) beside it,
and both count.  The intake process serves ``/metrics``; the counters of both reach it
through prometheus-client's multiprocess mode: when metrics are on, `maild serve` sets
PROMETHEUS_MULTIPROC_DIR to ``<spool>/metrics`` (emptied at every start) before
prometheus-client is imported, the child inherits it, and every counter and histogram
is kept in a small memory-mapped file per process there, which the scrape adds up.  The
spool folder is writable under systemd's ProtectSystem=strict already (ReadWritePaths=
/var/lib/maild), so no new path is needed.  A restarted child's counts are not lost: the
files of the dead one still count.  Gauges are not kept there: they are read when
scraped (below).  `maild serve --single-process` and the tests' in-process daemon keep
the counters in memory (no files).  `maild ingest` counts nothing (a short process of
its own, usually the MTA's user); what it spools and the daemon processes is counted as
processed.

Counters and the histogram (labels are short fixed words, never a message's text):

- ``maild_messages_accepted_total{transport}``: lmtp | smtp | imap, made durable in the
  spool (the 250 / IMAP flag came after);
- ``maild_messages_processed_total{outcome}``: created | appended | duplicate | bounce,
  committed to the ticket database;
- ``maild_messages_quarantined_total{reason}``: parse (unreadable), refused (over a
  parse limit, docs/hygiene.md), store (its transaction failed).  A message that crashed
  the processor ``max_attempts`` times is quarantined by the spool itself and shows in
  ``maild_spool_messages{state="quarantined"}`` and the log only;
- ``maild_automatic_mail_total{kind}``: bounce | auto_reply | list | loop | report,
  inbound automatic mail processed (a replayed duplicate is not counted again);
- ``maild_processing_seconds``: histogram, spool accept to ticket commit, per message
  processed (so its ``_count`` is the sum of ``maild_messages_processed_total``);
- ``maild_outbound_sent_total{template}``: mail the relay accepted, by template (ack,
  reply, notify_agent, sla_warning, ...);
- ``maild_outbound_failures_total{kind}``: retry (a 4xx or network error, tried again
  later) | failed (5xx or the last attempt) | bounced (a bounce came back for it);
- ``maild_sla_warnings_total``, ``maild_sla_breaches_total``: escalation steps sent (a
  warning that went out after its deadline counts as a breach, as the ticket's event).

Read at scrape time, by the serving process (`StateCollector`):

- ``maild_up`` (1) and ``maild_build_info{version}``;
- ``maild_spool_messages{state}``: incoming | processing | quarantined, and
  ``maild_spool_oldest_incoming_age_seconds``: how long the oldest waiting message has
  waited (0 when none);
- ``maild_outbox_messages{status}``: queued | sending | failed | bounced (not sent: those
  only grow, and counting them would read the whole table each scrape; the rate of
  sending is ``maild_outbound_sent_total``);
- ``maild_database_up``: 1 when the scrape could read the ticket database (0: the outbox
  gauge is left out);
- ``maild_imap_account_state{account, state}``: 1 for each account's current state
  (maild/imap.py STATES), 0 for the others.

Cheap reads, off the loop: the spool through a read-only SQLite connection of the
scrape's own (the spool's writer and readers are never touched); the database through a
connection of its own opened per scrape (SQLite read-only; PostgreSQL with a 2 s
connect and statement timeout), never the store thread's peewee connection.  Each outbox
status is one range of its (status, next_attempt_at) index, the spool's states one scan of
its (state, id) index: a scrape costs the backlog, not the history (measured on SQLite:
1.2 ms a scrape with 10,000 outbox rows, 4 ms with 1,000,000 of which 20,000 queued; a
GROUP BY over every status took 324 ms there).  Counting costs about 15 us a message in
memory, 25 us in multiprocess mode (processed, latency and accepted together), against
about a millisecond to process one.
"""
from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import threading
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Callable, Iterable

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
MULTIPROC_FOLDER = "metrics"            # inside the spool folder
SCRAPE_TIMEOUT_SECONDS = 2
TRANSPORTS = ("lmtp", "smtp", "imap")
OUTCOMES = ("created", "appended", "duplicate", "bounce")
QUARANTINE_REASONS = ("parse", "refused", "store")
AUTOMATIC_KINDS = ("bounce", "auto_reply", "list", "loop", "report")
FAILURE_KINDS = ("retry", "failed", "bounced")
SPOOL_STATES = ("incoming", "processing", "quarantined")
OUTBOX_STATUSES = ("queued", "sending", "sent", "failed", "bounced")
OUTBOX_GAUGED = ("queued", "sending", "failed", "bounced")     # not sent: see the docstring
TICKET_STATUSES = ("new", "open", "pending", "resolved", "closed")
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)


def use_multiprocess(spool_dir: Path) -> Path:
    """Before prometheus-client is imported: keep counters in ``<spool>/metrics`` (emptied
    now), for this process and the children it starts.  The folder."""
    folder = Path(spool_dir) / MULTIPROC_FOLDER
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    os.environ[MULTIPROC_ENV] = str(folder)
    return folder


def multiprocess_folder() -> Path | None:
    """The folder this process counts into, when multiprocess mode is on."""
    from prometheus_client import values

    folder = os.environ.get(MULTIPROC_ENV)
    if folder and values.ValueClass is values.MutexValue:
        log.error("%s is set but prometheus-client was imported before it: this process's "
                  "counters are not shared", MULTIPROC_ENV)
    return Path(folder) if folder else None


class Metrics:
    """The counters and the histogram of one process (see the module docstring)."""

    def __init__(self, registry=None):
        from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics

        disable_created_metrics()      # no *_created series (multiprocess mode has none either)
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.accepted_total = Counter("maild_messages_accepted", "Messages made durable in the spool",
                                      ["transport"], registry=r)
        self.processed_total = Counter("maild_messages_processed", "Messages committed to the ticket database",
                                       ["outcome"], registry=r)
        self.quarantined_total = Counter("maild_messages_quarantined", "Messages moved to the quarantine",
                                         ["reason"], registry=r)
        self.automatic_total = Counter("maild_automatic_mail", "Inbound automatic mail processed, by kind",
                                       ["kind"], registry=r)
        self.processing_seconds = Histogram("maild_processing_seconds",
                                            "Spool accept to ticket commit, per message processed",
                                            buckets=LATENCY_BUCKETS, registry=r)
        self.sent_total = Counter("maild_outbound_sent", "Outbound mail the relay accepted, by template",
                                  ["template"], registry=r)
        self.failures_total = Counter("maild_outbound_failures",
                                      "Outbound delivery failures: retry, failed, bounced", ["kind"], registry=r)
        self.sla_warnings_total = Counter("maild_sla_warnings", "SLA warning steps sent", registry=r)
        self.sla_breaches_total = Counter("maild_sla_breaches", "SLA breach steps sent", registry=r)
        for values, counter in ((TRANSPORTS, self.accepted_total), (OUTCOMES, self.processed_total),
                                (QUARANTINE_REASONS, self.quarantined_total),
                                (AUTOMATIC_KINDS, self.automatic_total),
                                (FAILURE_KINDS, self.failures_total)):
            for value in values:
                counter.labels(value)          # every series present from the start, at 0
        self._children: dict[tuple[int, str], object] = {}

    def _child(self, counter, value: str):
        """counter.labels(value), remembered (labels() checks its arguments every call)."""
        key = (id(counter), value)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = counter.labels(value)
        return child

    def accepted(self, transport: str) -> None:
        self._child(self.accepted_total, transport).inc()

    def processed(self, outcome: str, kind: str, seconds: float) -> None:
        self._child(self.processed_total, outcome).inc()
        self.processing_seconds.observe(max(seconds, 0.0))
        if kind in AUTOMATIC_KINDS and outcome != "duplicate":
            self._child(self.automatic_total, kind).inc()

    def quarantined(self, reason: str) -> None:
        self._child(self.quarantined_total, reason).inc()

    def delivered(self, template: str) -> None:
        self._child(self.sent_total, template or "unknown").inc()

    def delivery_failed(self, kind: str) -> None:
        self._child(self.failures_total, kind).inc()

    def escalated(self, breached: bool) -> None:
        (self.sla_breaches_total if breached else self.sla_warnings_total).inc()


# --- read at scrape time -------------------------------------------------------------------

def spool_depth(spool_dir: Path, now: datetime | None = None) -> tuple[dict[str, int], float]:
    """({state: count}, age in seconds of the oldest incoming message) from the spool's
    SQLite file, read-only; zeros when there is no spool yet."""
    depth = dict.fromkeys(SPOOL_STATES, 0)
    path = Path(spool_dir) / "spool.db"
    if not path.exists():
        return depth, 0.0
    uri = path.absolute().as_uri() + "?mode=ro"
    with closing(sqlite3.connect(uri, uri=True, timeout=SCRAPE_TIMEOUT_SECONDS)) as conn:
        depth.update(conn.execute("SELECT state, count(*) FROM spool GROUP BY state").fetchall())
        oldest = conn.execute("SELECT min(received_at) FROM spool WHERE state = 'incoming'").fetchone()[0]
    if oldest is None:
        return depth, 0.0
    now = now or datetime.now(timezone.utc)
    return depth, max((now - datetime.fromisoformat(oldest)).total_seconds(), 0.0)


def count_by(db, table: str, column: str, known: Iterable[str]) -> dict[str, int]:
    """{value: rows} of `table` grouped by `column`, every `known` value present (peewee
    database, any thread's own connection; the names are ours, never the user's)."""
    counts = dict.fromkeys(known, 0)
    counts.update(db.execute_sql(f'SELECT "{column}", count(*) FROM "{table}" GROUP BY "{column}"').fetchall())
    return counts


def count_each(db, table: str, column: str, values: Iterable[str]) -> dict[str, int]:
    """{value: rows}, one indexed count per value (cheap where `column` leads an index)."""
    return {value: db.execute_sql(f'SELECT count(*) FROM "{table}" WHERE "{column}" = {db.param}',
                                  (value,)).fetchone()[0] for value in values}


def reading_database(url: str):
    """A peewee database for one scrape's reads, bound to no model (models stay bound to
    the store's); the caller closes it.  Read-only on SQLite, timeouts on PostgreSQL."""
    import peewee
    from playhouse.db_url import connect

    if url.startswith("sqlite:"):
        path = url.split(":///", 1)[1] if ":///" in url else url.split(":", 1)[1]
        db = peewee.SqliteDatabase(Path(path).absolute().as_uri() + "?mode=ro", uri=True,
                                   timeout=SCRAPE_TIMEOUT_SECONDS)
        db.connect()
        return db
    db = connect(url, connect_timeout=SCRAPE_TIMEOUT_SECONDS)
    db.connect()
    db.execute_sql(f"SET statement_timeout = {SCRAPE_TIMEOUT_SECONDS * 1000}")
    return db


def _version() -> str:
    try:
        return metadata.version("maild")
    except metadata.PackageNotFoundError:
        return "unknown"


class StateCollector:
    """Gauges read when scraped: up, build, spool, outbox, database, IMAP accounts."""

    def __init__(self, spool_dir: Path, database_url: str,
                 imap_states: Callable[[], dict[str, str]] = dict,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)):
        self.spool_dir, self.database_url = Path(spool_dir), database_url
        self.imap_states, self.clock = imap_states, clock
        self.version = _version()

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        yield GaugeMetricFamily("maild_up", "1 while maild serves metrics", value=1)
        build = GaugeMetricFamily("maild_build_info", "maild's version", labels=["version"])
        build.add_metric([self.version], 1)
        yield build
        try:
            depth, age = spool_depth(self.spool_dir, self.clock())
        except sqlite3.Error as exc:
            log.warning("metrics: spool unreadable: %s", exc)
        else:
            spool = GaugeMetricFamily("maild_spool_messages", "Messages in the spool, by state",
                                      labels=["state"])
            for state, count in depth.items():
                spool.add_metric([state], count)
            yield spool
            yield GaugeMetricFamily("maild_spool_oldest_incoming_age_seconds",
                                    "How long the oldest message waiting in the spool has waited",
                                    value=age)
        outbox = self._outbox()
        yield GaugeMetricFamily("maild_database_up", "1 when the scrape could read the ticket database",
                                value=0 if outbox is None else 1)
        if outbox is not None:
            family = GaugeMetricFamily("maild_outbox_messages", "Outbound mail not sent, by status",
                                       labels=["status"])
            for status, count in outbox.items():
                family.add_metric([status], count)
            yield family
        states = self.imap_states()
        if states:
            from maild.imap import STATES

            family = GaugeMetricFamily("maild_imap_account_state",
                                       "1 for the current state of each IMAP account",
                                       labels=["account", "state"])
            for account, current in sorted(states.items()):
                for state in STATES:
                    family.add_metric([account, state], 1 if state == current else 0)
            yield family

    def _outbox(self) -> dict[str, int] | None:
        db = None
        try:
            db = reading_database(self.database_url)
            return count_each(db, "outbox", "status", OUTBOX_GAUGED)
        except Exception as exc:  # noqa: BLE001 - down, no schema yet: the gauge says so
            log.debug("metrics: ticket database unreadable: %s", exc)
            return None
        finally:
            if db is not None:
                db.close()


def registry_for(metrics: Metrics, collector: StateCollector, multiprocess: Path | None = None):
    """What `/metrics` shows: this process's counters (or, in multiprocess mode, every
    process's, from their files) and the gauges read when scraped."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    if multiprocess is None:
        registry = metrics.registry
    else:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(multiprocess))
    registry.register(collector)
    return registry


@dataclass
class MetricsServer:
    """prometheus-client's HTTP server on its own daemon thread."""
    httpd: object
    thread: threading.Thread

    @classmethod
    def start(cls, address: tuple[str, int], registry) -> "MetricsServer":
        """Bind and serve; OSError when the address can't be bound."""
        from prometheus_client import start_http_server

        host, port = address
        httpd, thread = start_http_server(port, addr=host or "0.0.0.0", registry=registry)
        server = cls(httpd, thread)
        log.info("metrics at http://%s/metrics", server.where)
        return server

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    @property
    def where(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
