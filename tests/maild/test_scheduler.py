"""The scheduler's jobs on a store thread: catch-up at start, housekeeping, failures survived."""
from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from functools import partial

from maild.config import Scheduler as SchedulerSettings
from maild.scheduler import Scheduler
from store.changes import Change
from store.models import Event, Ticket
from tests.maild.test_escalations import assigned_ticket, sla_mails
from tests.store.test_sla import berlin, change


def scheduler(db, context, now, **settings) -> tuple[Scheduler, ThreadPoolExecutor]:
    store = ThreadPoolExecutor(max_workers=1)

    async def in_store(fn, *args):
        return await asyncio.get_running_loop().run_in_executor(store, partial(fn, *args))

    woken = []
    made = Scheduler(replace(SchedulerSettings(), **settings), db=db, context=lambda: context,
                     run_in_store=in_store, on_queued=lambda: woken.append(1), clock=lambda: now)
    made.woken = woken
    return made, store


async def test_the_first_sweep_runs_at_start_and_wakes_the_sender(db, context):
    ticket = assigned_ticket(db, context, berlin(2026, 11, 23, 9, 0))
    jobs, store = scheduler(db, context, berlin(2026, 11, 23, 10, 0), sla_sweep_seconds=3600)
    stop = asyncio.Event()
    task = asyncio.create_task(jobs.run(stop))
    for _ in range(100):
        if jobs.woken:
            break
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, 5)
    store.shutdown()
    assert jobs.woken == [1]                         # once, for the whole sweep
    assert [s.step for s in jobs.last_sweep.sent] == ["80%", "breach"]
    assert len(sla_mails(ticket)) == 3               # alice; alice and bob


def test_housekeeping_closes_tickets_resolved_long_enough_ago(db, context):
    old, recent = (assigned_ticket(db, context, berlin(2026, 11, 2, 9, 0), n=n) for n in (1, 2))
    change(db, context.ruleset, old, berlin(2026, 11, 10, 9, 0), Change("status", "resolved"))
    change(db, context.ruleset, recent, berlin(2026, 11, 20, 9, 0), Change("status", "resolved"))
    jobs, store = scheduler(db, context, berlin(2026, 11, 23, 9, 0), close_resolved_after_days=7)
    assert jobs.housekeep() == [Ticket.get_by_id(old).number]
    assert [Ticket.get_by_id(t).status for t in (old, recent)] == ["closed", "resolved"]
    assert Event.get(Event.ticket == old, Event.kind == "status", Event.detail == "closed").actor == "system"
    assert jobs.housekeep() == []                     # nothing left to do
    never, _ = scheduler(db, context, berlin(2026, 12, 30, 9, 0), close_resolved_after_days=0)
    assert never.housekeep() == [] and Ticket.get_by_id(recent).status == "resolved"
    store.shutdown()


def test_a_failing_sweep_is_logged_and_tried_again(db, context, caplog):
    jobs, store = scheduler(db, context, berlin(2026, 11, 23, 9, 0))
    jobs.context = lambda: (_ for _ in ()).throw(RuntimeError("rules vanished"))
    assert jobs.sweep() is None and "SLA sweep failed" in caplog.text
    jobs.context = lambda: context
    assert jobs.sweep() is not None
    store.shutdown()


def test_a_reload_reschedules_the_running_clocks(db, context, tmp_path):
    from maild.config import load_settings
    from maild.runtime import build_context, load_policy
    from tests.store.test_sla import row

    ticket = assigned_ticket(db, context, berlin(2026, 11, 23, 9, 0))
    jobs, store = scheduler(db, context, berlin(2026, 11, 23, 9, 0))
    jobs.sweep()
    assert row(ticket, "first_response").next_step_at == berlin(2026, 11, 23, 9, 48)
    rules = tmp_path / "rules.yaml"
    rules.write_text(rules.read_text().replace("{at: 80%, notify", "{at: 50%, notify"))
    settings = load_settings(tmp_path / "maild.yaml")
    reloaded = build_context(settings, *load_policy(settings))
    jobs.context = lambda: reloaded
    jobs.sweep()
    assert row(ticket, "first_response").next_step_at == berlin(2026, 11, 23, 9, 30)
    store.shutdown()


def test_a_wall_clock_stepping_back_does_not_delay_the_sweep(db, context):
    from datetime import datetime, timedelta

    jobs, store = scheduler(db, context, berlin(2026, 11, 23, 9, 0), sla_sweep_seconds=30)
    sweep_job = next(j for j in jobs.jobs.jobs if j.unit == "seconds")
    sweep_job.next_run = datetime.now() + timedelta(hours=1)     # as after the autumn DST change
    jobs._unstick()
    assert sweep_job.next_run <= datetime.now()
    store.shutdown()


def test_steps_held_for_office_hours_wait_after_downtime_too(db, context):
    """Down from 15:30 to 18:00 on a Monday: the 24/7 breach goes to the assignee at once,
    the office-hours one to the manager on Tuesday at 09:00, not at 18:00."""
    from maild import escalations
    from tests.maild.test_escalations import MANAGER
    from tests.store.test_sla import row

    ticket = assigned_ticket(db, context, berlin(2026, 11, 23, 15, 0), policy="around_the_clock")
    late = escalations.sweep(db, context, berlin(2026, 11, 23, 18, 0))
    assert [(s.step, s.recipients) for s in late.sent] == [("breach", ("alice@example.com",))]
    assert row(ticket, "first_response").next_step_at == berlin(2026, 11, 24, 9, 0)
    assert escalations.sweep(db, context, berlin(2026, 11, 23, 23, 0)).sent == ()
    morning = escalations.sweep(db, context, berlin(2026, 11, 24, 9, 0))
    assert [(s.step, s.recipients) for s in morning.sent] == [("breach#2", (MANAGER,))]


def test_a_ticket_resolved_while_the_rules_had_no_sla_never_escalates(db, context, tmp_path):
    from maild import escalations
    from maild.config import load_settings
    from maild.runtime import build_context, load_policy
    from tests.store.test_sla import agent_replies, row

    ticket = assigned_ticket(db, context, berlin(2026, 11, 23, 9, 0))
    rules = tmp_path / "rules.yaml"
    with_sla = rules.read_text()
    rules.write_text(with_sla.split("calendars:")[0].replace(", sla: standard", ""))
    settings = load_settings(tmp_path / "maild.yaml")
    without = build_context(settings, *load_policy(settings))
    agent_replies(db, without.ruleset, ticket, berlin(2026, 11, 23, 9, 30))
    change(db, without.ruleset, ticket, berlin(2026, 11, 23, 9, 40), Change("status", "resolved"))
    assert row(ticket, "resolution").running_since is not None       # nothing kept the clocks
    # the SLA section is back
    assert escalations.sweep(db, context, berlin(2026, 11, 25, 9, 0)).sent == ()
    assert sla_mails(ticket) == []
    assert row(ticket, "first_response").stopped_at is not None
    assert row(ticket, "resolution").next_step_at is None
