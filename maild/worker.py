"""The worker: take spooled messages, process them, commit many in one transaction.

    worker = Worker(spool, db, context_source, clock=utcnow)
    worker.process_available()      # on the single store thread; returns how many were handled

Runner loop in the style of Mailman's `_one_iteration`: claim a batch from the spool →
prepare each message (parse, classify, thread keys, route: no database) → record all of
them in ONE database transaction, each inside its own savepoint → delete them from the
spool only after that commit.  A message whose preparation or savepoint fails goes to the
quarantine with the exception text; the others commit.  If the database itself is
unreachable, the batch goes back to the spool untouched and `StoreUnavailable` is raised
so the caller can back off: mail is never acknowledged and then lost.

Counted (`maild.metrics.Metrics`, when given): each message committed, by outcome, with
its time from spool accept to commit (the worker's `clock`) and its kind when automatic;
each quarantined, by reason class: ``parse`` (unreadable), ``refused`` (over a parse
limit: `parsers.limits.MessageRefused`), ``store`` (its savepoint failed).  Log lines
carry the Message-ID and ticket number in the text and as `maild.logs.about` fields.
"""
from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

import peewee

from maild import agent_mail, bounce_mail, customer_mail, logs, pipeline
from maild.intake import message_id_of
from maild.metrics import Metrics
from parsers.classify import BOUNCE
from parsers.limits import MessageRefused
from maild.spool import Spool, SpoolItem
from store.db import utcnow

log = logging.getLogger(__name__)

BATCH = 64
INFRASTRUCTURE_ERRORS = (peewee.OperationalError, peewee.InterfaceError)


class StoreUnavailable(Exception):
    """The ticket database could not take the batch; it stays in the spool."""


@dataclass(frozen=True)
class Handled:
    spool_id: int
    outcome: str              # created | appended | duplicate | bounce | quarantined
    ticket_number: int | None
    message_id: str | None
    acknowledged: bool = False
    reason: str = ""
    kind: str = ""            # the inbound classification (parsers.classify)
    returned: bool = False    # a bounce that marked one of our mails bounced


def _reason(exc: BaseException) -> str:
    last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" at {last[0].filename.rsplit('/', 2)[-1]}:{last[0].lineno}" if last else ""
    return f"{type(exc).__name__}: {exc}{where}"[:2000]


class Worker:
    def __init__(self, spool: Spool, db: peewee.Database,
                 context: Callable[[], pipeline.Context], *,
                 clock: Callable[[], datetime] = utcnow, batch: int = BATCH,
                 metrics: Metrics | None = None):
        self.spool, self.db, self.context, self.clock = spool, db, context, clock
        self.batch = batch
        self.metrics = metrics

    def process_available(self) -> int:
        """Process one batch of waiting messages; return how many were handled."""
        items = self.spool.claim(self.batch)
        if items:
            self.process(items)
        return len(items)

    def process(self, items: list[SpoolItem]) -> list[Handled]:
        """Handle claimed `items`; whatever is not finished or quarantined when an
        unexpected error escapes goes back to the spool, so nothing stays claimed."""
        settled: set[int] = set()
        try:
            return self._process(items, settled)
        except BaseException:
            unsettled = [item.id for item in items if item.id not in settled]
            if unsettled:
                self.spool.release(unsettled)
            raise

    def _process(self, items: list[SpoolItem], settled: set[int]) -> list[Handled]:
        context = self.context()
        prepared, results = [], []
        for item in items:
            try:
                prepared.append((item, *pipeline.prepare(item.raw, item.envelope, context,
                                                         received_at=item.received_at)))
            except Exception as exc:  # noqa: BLE001 - any failure is a quarantine reason
                results.append(self._quarantine(item, "parse: " + _reason(exc),
                                                "refused" if isinstance(exc, MessageRefused) else "parse"))
                settled.add(item.id)
        recorded, failed = self._store(prepared, context)
        self._committed(recorded, {item.id: item for item, _, _ in prepared})
        self.spool.finish([h.spool_id for h in recorded])
        settled.update(h.spool_id for h in recorded)
        results.extend(recorded)
        for item, reason in failed:
            results.append(self._quarantine(item, reason, "store"))
            settled.add(item.id)
        return results

    def _committed(self, recorded: list[Handled], items: dict[int, SpoolItem]) -> None:
        if self.metrics is None or not recorded:
            return
        now = self.clock()
        now = now if now.tzinfo else now.replace(tzinfo=timezone.utc)
        for handled in recorded:
            waited = (now - items[handled.spool_id].received_at).total_seconds()
            self.metrics.processed(handled.outcome, handled.kind, waited)
            if handled.returned:
                self.metrics.delivery_failed("bounced")

    def _store(self, prepared, context) -> tuple[list[Handled], list[tuple[SpoolItem, str]]]:
        """One transaction for the batch, one savepoint per message."""
        recorded: list[Handled] = []
        failed: list[tuple[SpoolItem, str]] = []
        try:
            with self.db.atomic():
                for item, inbound, routing in prepared:
                    try:
                        recorded.append(self._savepoint(item, inbound, routing, context))
                    except INFRASTRUCTURE_ERRORS:
                        raise
                    except Exception as exc:  # noqa: BLE001
                        failed.append((item, "store: " + _reason(exc)))
        except INFRASTRUCTURE_ERRORS as exc:
            self._reconnect_later()
            raise StoreUnavailable(str(exc)) from exc
        return recorded, failed

    def _savepoint(self, item, inbound, routing, context) -> Handled:
        """Record one message; a unique-key race with another instance (the same message
        or a new contact committed meanwhile) is retried once and then finds the row."""
        try:
            with self.db.atomic():
                return self._record(item, inbound, routing, context)
        except peewee.IntegrityError:
            with self.db.atomic():
                return self._record(item, inbound, routing, context)

    def _reconnect_later(self) -> None:
        """Drop a broken connection; peewee opens a new one on the next query."""
        try:
            self.db.close()
        except Exception:  # noqa: BLE001 - it is broken already
            log.debug("closing the broken database connection failed", exc_info=True)

    def _record(self, item: SpoolItem, inbound, routing, context) -> Handled:
        handler = handler_for(inbound)
        if handler is bounce_mail:
            bounced = bounce_mail.handle(inbound, context, now=self.clock())
            log.info("message-id=<%s> ticket=#%s bounce: %s%s", inbound.message_id,
                     bounced.ticket_number, bounced.summary,
                     f" (matched by {bounced.matched_by})" if bounced.matched_by else "",
                     extra=logs.about(inbound.message_id, bounced.ticket_number, spool_id=item.id))
            return Handled(item.id, bounced.outcome, bounced.ticket_number, inbound.message_id,
                           kind=inbound.kind, returned=bounced.marked)
        outcome = handler.handle(inbound, routing, context, now=self.clock())
        recorded = outcome.recorded
        log.info("message-id=<%s> ticket=#%s %s by %s kind=%s%s%s%s", inbound.message_id,
                 recorded.ticket_number, recorded.outcome, recorded.threaded_by, inbound.kind,
                 f" agent={inbound.author} {outcome.summary}" if inbound.author else "",
                 " ack queued" if outcome.acknowledged else "",
                 f" {outcome.notified} mail(s) to agents" if outcome.notified and not inbound.author else "",
                 extra=logs.about(inbound.message_id, recorded.ticket_number, spool_id=item.id))
        return Handled(item.id, recorded.outcome, recorded.ticket_number, inbound.message_id,
                       acknowledged=outcome.acknowledged, kind=inbound.kind)

    def _quarantine(self, item: SpoolItem, reason: str, why: str) -> Handled:
        """`why`: the reason's class for the metrics (parse | refused | store)."""
        message_id = message_id_of(item.raw)
        log.warning("spool item %d message-id=%s quarantined: %s", item.id, message_id, reason,
                    extra=logs.about(message_id, spool_id=item.id))
        self.spool.quarantine(item.id, reason)
        if self.metrics is not None:
            self.metrics.quarantined(why)
        return Handled(item.id, "quarantined", None, None, reason=reason)


def handler_for(inbound):
    """The module whose `handle` records `inbound`: bounce_mail, agent_mail or customer_mail."""
    if inbound.kind == BOUNCE and inbound.report is not None:
        return bounce_mail
    return agent_mail if inbound.author else customer_mail
