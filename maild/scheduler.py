"""The periodic jobs of the processing role, timed by the `schedule` library.

    scheduler = Scheduler(settings.scheduler, db=db, context=runtime.context,
                          run_in_store=daemon.in_store, on_queued=sender.wakeup.set)
    await scheduler.run(stop)          # a task on the daemon's loop, until stop is set

Jobs (intervals from maild.yaml ``scheduler:``):

SLA sweep (every ``sla_sweep_seconds``, default 30 s)
    mails the escalation steps that fell due (`maild.escalations.sweep`).  The first
    sweep runs at start, so steps that fell due while maild was down go out at once,
    each once.  Before the first sweep, and after every rules reload, the clocks'
    next step times are recomputed from the rules as they are now (`store.sla.reschedule`).
housekeeping (every ``housekeeping_minutes``, default 60)
    closes tickets resolved more than ``close_resolved_after_days`` ago
    (`store.housekeeping`).

Outbox retries need no job here: the sender claims rows by their `next_attempt_at`
(`maild.outbound`), and a sweep that queued mail wakes it (`on_queued`).

Threads: `schedule` only keeps time; each job runs on the store thread (`run_in_store`),
between the worker's batches, so the event loop never waits on the database and SQLite
keeps its single writer.  A job that fails (database unreachable) is logged and tried
again at its next turn; it never stops the scheduler.  `clock` (default: now, naive UTC)
is the time the jobs act as of: tests inject theirs.
"""
from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import Awaitable, Callable

import schedule

from maild import escalations
from maild.aio import wait_first
from maild.config import Scheduler as SchedulerSettings
from store import housekeeping, sla
from store.db import utcnow

log = logging.getLogger(__name__)

MAX_NAP = 1.0         # seconds: how long the loop task sleeps between looks at the jobs


class Scheduler:
    def __init__(self, settings: SchedulerSettings, *, db, context: Callable,
                 run_in_store: Callable[..., Awaitable], on_queued: Callable[[], None] = lambda: None,
                 clock: Callable[[], datetime] = utcnow, metrics=None):
        self.settings, self.db, self.context = settings, db, context
        self.metrics = metrics                 # maild.metrics.Metrics: SLA steps sent
        self.run_in_store, self.on_queued, self.clock = run_in_store, on_queued, clock
        self.jobs = schedule.Scheduler()
        self.jobs.every(settings.sla_sweep_seconds).seconds.do(self.sweep)
        self.jobs.every(settings.housekeeping_minutes).minutes.do(self.housekeep)
        self.queued = 0                      # mails queued since the last look (store thread)
        self.last_sweep: escalations.SweepResult | None = None
        self._rules_seen = None

    async def run(self, stop: asyncio.Event) -> None:
        await self._turn(self.jobs.run_all)            # at start: catch up at once
        while not stop.is_set():
            self._unstick()
            nap = self.jobs.idle_seconds
            await wait_first(stop, timeout=min(MAX_NAP, max(0.0, nap if nap is not None else MAX_NAP)))
            if not stop.is_set():
                await self._turn(self.jobs.run_pending)

    def _unstick(self) -> None:
        """`schedule` times jobs by the local wall clock: when it steps back (the autumn
        DST change, an NTP correction) a job's next run lies more than one interval
        ahead; run it now rather than an hour late."""
        now = datetime.now()
        for job in self.jobs.jobs:
            period = timedelta(**{job.unit: job.interval})
            if job.next_run is not None and job.next_run - now > period:
                job.next_run = now

    async def _turn(self, run: Callable[[], None]) -> None:
        await self.run_in_store(run)
        if self.queued:
            self.queued = 0
            self.on_queued()

    # --- the jobs (store thread) ----------------------------------------------------------

    def sweep(self) -> escalations.SweepResult | None:
        """One SLA sweep as of `clock()`; None when it failed (logged, retried next turn)."""
        try:
            context = self.context()
            if context.ruleset is not self._rules_seen:
                changed = sla.reschedule(context.ruleset, self.clock())   # a transaction per batch
                self._rules_seen = context.ruleset
                log.info("SLA escalations rescheduled from the current rules (%d clocks changed)",
                         changed)
            result = escalations.sweep(self.db, context, self.clock())
        except Exception:  # noqa: BLE001 - a failed sweep is tried again at its next turn
            log.exception("SLA sweep failed; trying again in %ss", self.settings.sla_sweep_seconds)
            return None
        self.last_sweep = result
        if self.metrics is not None:
            for step in result.sent:
                self.metrics.escalated(step.breached)
        self.queued += sum(len(step.recipients) for step in result.sent)
        return result

    def housekeep(self) -> list[int] | None:
        """Close tickets resolved long enough ago; the numbers closed (None: it failed)."""
        days = self.settings.close_resolved_after_days
        if not days:
            return []
        closed: list[int] = []
        try:
            ruleset = self.context().ruleset
            while True:
                with self.db.atomic():
                    if not sla.sweep_lock(self.db):      # another instance does it now
                        break
                    batch = housekeeping.close_resolved(ruleset, self.clock(), after=timedelta(days=days))
                closed += batch
                if len(batch) < housekeeping.BATCH:
                    break
        except Exception:  # noqa: BLE001 - tried again at the next turn
            log.exception("housekeeping failed; trying again in %s min", self.settings.housekeeping_minutes)
            return None
        if closed:
            log.info("closed %d tickets resolved more than %d days ago: %s", len(closed), days,
                     ", ".join(f"#{n}" for n in closed[:20]) + (" …" if len(closed) > 20 else ""))
        return closed
