"""The outbound sender: deliver due outbox rows to the relay, record each outcome.

    sender = Sender(relay, run_in_store, db=db, max_attempts=10, loop_value="example.com")
    await sender.run(stop_event)       # on the daemon's loop, until stop_event is set
    await sender.send_due()            # one pass and its outcomes (`maild ingest`, tests)

Database work runs on the store thread (`run_in_store`), delivery on the event loop.  The
sender leases due rows continuously (at most `CLAIM_AHEAD` at once, claiming again when
`CLAIM_BATCH` leases are free: a claim is a transaction and a disk flush) and delivers at
most `CONCURRENCY` at a time, so a relay that hangs on one mail holds back only that mail.
Outcomes are group-committed as deliveries finish: 250 marks the row sent; 4xx and
network errors schedule a retry with exponential backoff; 5xx, or the last allowed
attempt, marks it failed and leaves an event on the ticket.  After a stop, leases not
yet started are handed back.  The envelope sender is a VERP-style bounce address
`<local>+bounces-<outbox id>@<domain>` (from `outbound.mail_from`) so a later bounce names
the mail it answers.

Counted (`maild.metrics.Metrics`, when given) once each outcome is recorded: mail sent,
by template; failures by kind, ``retry`` or ``failed``.
"""
from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Awaitable, Callable

import peewee

from maild.aio import wait_first
from maild import logs
from maild.compose import OutboundMail, envelope_recipients, to_bytes
from maild.relay import FAILED, RETRY, SENT, DeliveryResult, Relay, backoff
from store import outbox
from store.db import utcnow

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0
CONCURRENCY = 4            # deliveries at once
CLAIM_AHEAD = 32           # leased at once (waiting for a delivery slot included)
CLAIM_BATCH = 16           # claim again once this many leases are free (not per delivery)


def bounce_address(from_address: str, outbox_id: int) -> str:
    local, _, domain = from_address.partition("@")
    return f"{local.split('+', 1)[0]}+bounces-{outbox_id}@{domain}"


class Sender:
    def __init__(self, relay: Relay, run_in_store: Callable[..., Awaitable], *,
                 db, max_attempts: int = 10, loop_value: str = "", envelope_from: str = "",
                 clock: Callable[[], datetime] = utcnow, metrics=None):
        self.relay, self.run_in_store, self.db = relay, run_in_store, db
        self.max_attempts, self.loop_value, self.clock = max_attempts, loop_value, clock
        self.envelope_from = envelope_from          # outbound.mail_from; '' = the From address
        self.metrics = metrics                      # maild.metrics.Metrics, or None
        self.wakeup = asyncio.Event()
        self.stop: asyncio.Event | None = None
        self._gate = asyncio.Semaphore(CONCURRENCY)
        self._pending: list[tuple[outbox.DueMail, DeliveryResult | None]] = []
        self._flusher: asyncio.Future | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Claim and deliver continuously, at most `CONCURRENCY` deliveries at once and
        `CLAIM_AHEAD` leased; a hung delivery holds back nothing but itself."""
        self.stop = stop
        inflight: set[asyncio.Task] = set()
        while not stop.is_set():
            self.wakeup.clear()          # before claiming: a wake-up meanwhile is not missed
            room = CLAIM_AHEAD - len(inflight)
            due: list[outbox.DueMail] = []
            if room >= CLAIM_BATCH:      # one transaction per batch, not per finished delivery
                try:
                    due = await self.run_in_store(outbox.claim_due, self.db, self.clock(), room,
                                                  self.max_attempts)
                except (peewee.OperationalError, peewee.InterfaceError) as exc:
                    log.error("outbox unreachable, retrying: %s", exc)
                    await self.run_in_store(self._drop_connection)
                except Exception:  # noqa: BLE001 - the sender must outlive a bad pass
                    log.exception("outbound claim failed; retrying")
            for mail in due:
                task = asyncio.create_task(self._one(mail))
                inflight.add(task)
                task.add_done_callback(inflight.discard)
            if not due:
                await wait_first(self.wakeup, stop, timeout=POLL_SECONDS)
        await asyncio.gather(*inflight, return_exceptions=True)
        await self._flushed()

    async def send_due(self, limit: int = 32) -> int:
        """One pass: lease due rows, deliver them all, record the outcomes (`maild ingest`)."""
        due = await self.run_in_store(outbox.claim_due, self.db, self.clock(), limit,
                                      self.max_attempts)
        await asyncio.gather(*(self._one(m) for m in due))
        await self._flushed()
        return len(due)

    async def _one(self, mail: outbox.DueMail) -> None:
        async with self._gate:
            stopping = self.stop is not None and self.stop.is_set()
            result = None if stopping else await self._deliver(mail)
        self._pending.append((mail, result))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.ensure_future(self._flush())
        self.wakeup.set()                # room for another claim

    async def _flush(self) -> None:
        """Record whatever outcomes are waiting, one transaction at a time (group commit)."""
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await self.run_in_store(self._record, batch)
            except Exception:  # noqa: BLE001 - unrecorded: the lease runs out, they go again
                log.exception("could not record %d delivery outcomes", len(batch))

    async def _flushed(self) -> None:
        if self._flusher is not None:    # at most one runs; it takes every outcome added
            await self._flusher

    def _drop_connection(self) -> None:
        try:
            self.db.close()
        except Exception:  # noqa: BLE001 - it is broken already; peewee reconnects on use
            log.debug("closing the broken connection failed", exc_info=True)

    async def _deliver(self, due: outbox.DueMail) -> DeliveryResult:
        mail = due.draft
        outbound = OutboundMail(
            from_name=mail.from_name, from_address=mail.from_address, to=(mail.to_address,),
            cc=mail.cc, reply_to=mail.reply_to,
            subject=mail.subject, message_id=mail.message_id, in_reply_to=mail.in_reply_to,
            references=mail.references, text=mail.text, html=mail.html,
            auto_submitted=mail.auto_submitted,
            loop_header=("X-Maild-Loop", self.loop_value) if self.loop_value else None)
        try:
            data, recipients = to_bytes(outbound), envelope_recipients(outbound)
        except ValueError as exc:            # unsendable (e.g. a non-ASCII local part)
            return DeliveryResult(FAILED, None, f"cannot compose: {exc}")
        try:
            return await self.relay.deliver(data, sender=bounce_address(self.envelope_from or mail.from_address, due.id),
                                            recipients=recipients)
        except Exception as exc:  # noqa: BLE001 - an unexpected relay error is retried
            return DeliveryResult(RETRY, None, f"{type(exc).__name__}: {exc}")

    def _record(self, outcomes: list[tuple[outbox.DueMail, DeliveryResult | None]]) -> None:
        """One transaction for the outcomes at hand; None means "not tried: stopping"."""
        now = self.clock()
        with self.db.atomic():
            kept = [self._outcome(due, result, now) for due, result in outcomes]
        for (due, result), held in zip(outcomes, kept):
            if result is not None:
                log.info("ticket=#%s message-id=<%s> to=%s %s %s%s", due.ticket_number,
                         due.draft.message_id, due.draft.to_address, result.status, result.detail,
                         "" if held else " (lease lost: another sender holds this mail now)",
                         extra=logs.about(due.draft.message_id, due.ticket_number))
                self._count(due, result)

    def _count(self, due: outbox.DueMail, result: DeliveryResult) -> None:
        if self.metrics is None:
            return
        if result.status == SENT:
            self.metrics.delivered(due.draft.template)
        elif result.status == RETRY and due.attempts < self.max_attempts:
            self.metrics.delivery_failed("retry")
        else:
            self.metrics.delivery_failed("failed")

    def _outcome(self, due: outbox.DueMail, result: DeliveryResult | None, now: datetime) -> bool:
        if result is None:
            return outbox.release(due, now=now)
        if result.status == SENT:
            return outbox.mark_sent(due, now=now)
        if result.status == RETRY and due.attempts < self.max_attempts:
            return outbox.mark_retry(due, now=now, next_attempt_at=now + backoff(due.attempts),
                                     error=result.detail)
        return outbox.mark_failed(due, now=now, error=result.detail)
