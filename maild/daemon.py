"""`maild serve`: listeners, the worker pump and the outbound sender.

Roles: `maild serve` runs the *intake* (LMTP/SMTP listeners and the spool's group commit)
and starts the *processing* role as a child process (`maild process`, see maild/child.py)
so each has a core of its own; `both` runs everything in one process (tests, small
sites).  Threads in processing: the event loop runs the outbound relay client and the
scheduler's timing (maild/scheduler.py); one store thread does all database work (the
worker's batches, the sender's outbox updates, the SLA sweep and housekeeping), so
SQLite has a single writer; the spool has its own writer thread.  No event loop ever
waits on the database or on fsync.

Metrics (maild.yaml `metrics:`): one `maild.metrics.Metrics` per process, handed to the
parts that count; the intake role (or `both`) serves `/metrics` for both processes
(maild/metrics.py says how the child's counters get there).

IMAP mailboxes (maild.yaml `imap:`) are intake too: one task per account (maild/imap.py)
runs beside the listeners in the intake role (`both` or `intake`), started after them and
stopped on drain, when each finishes the batch in hand.

Start-up: migrate the schema (outbox rows interrupted mid-send need nothing: their lease
runs out and they are claimed again, see store/outbox.py), bind the listeners, then process whatever the spool still holds.  SIGHUP reloads rules and
templates (keeping the last good ones).  SIGTERM drains: listeners answer 421 and close,
the batch in hand is finished and committed, the delivery in progress completes, then
the process exits 0.  A second SIGTERM exits at once; everything acknowledged is in the
spool and is processed on the next start.

systemd (`Type=notify`, maild/notify.py; a no-op without NOTIFY_SOCKET): READY=1 once the
listeners are bound; STATUS= every STATUS_SECONDS with the spool's depths, the outbox
and the IMAP accounts (counted on the store thread, maild/status.py); WATCHDOG=1 from the
event loop at half of WatchdogSec, in `serve` only while the processing child's loop
beats too (maild/child.py), so either loop hanging gets maild restarted; RELOADING=1 and
READY=1 around a SIGHUP reload; STOPPING=1 when the drain begins.  The watchdog watches
the event loops, not the store thread: a hung database call is its driver's timeout's
business, and mail keeps being accepted meanwhile.
"""
from __future__ import annotations

import asyncio
import logging
import os
import signal
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from maild import notify, status
from maild.aio import wait_first
from maild.child import ProcessingChild
from maild.envelope import Envelope
from maild.imap import ImapAccount
from maild.intake import IntakeHandler
from maild.listen import start_listener
from maild.metrics import Metrics, MetricsServer, StateCollector, multiprocess_folder, registry_for
from maild.outbound import Sender
from maild.pidfile import remove_pid_file, write_pid_file
from maild.relay import relay_from_url
from maild.runtime import Runtime
from maild.scheduler import Scheduler
from maild.spool import SpoolBusy
from maild.worker import StoreUnavailable, Worker
from store.db import DatabaseUnavailable

log = logging.getLogger(__name__)

RESCAN_SECONDS = 5.0        # pick up released batches and mail spooled by `maild ingest`
STORE_RETRY_SECONDS = 5.0   # back-off while the ticket database is unreachable
LISTENER_DRAIN_SECONDS = 5.0   # a client finishing the message it is sending, at most
IMAP_DRAIN_SECONDS = 20.0   # an IMAP account finishing its batch on drain, at most (systemd
                            # waits 30 s; cancelling later is safe: see maild/imap_progress.py)
STATUS_SECONDS = 5.0        # STATUS= for `systemctl status`, at most this stale
BEAT_SECONDS = 1.0          # processing child -> serve: "my event loop runs"
CHILD_SILENCE_SECONDS = 15.0   # a processing child silent this long is stuck (without a
                               # watchdog; with one: half its interval, at least 3 beats)


BOTH, INTAKE, PROCESSING = "both", "intake", "processing"


class Daemon:
    def __init__(self, runtime: Runtime, *, install_signals: bool = True, role: str = BOTH,
                 wake_fd: int | None = None):
        self.runtime = runtime
        self.install_signals = install_signals
        self.role = role
        self.wake_fd = wake_fd               # processing: one byte per accepted message, EOF = parent gone
        self.child: ProcessingChild | None = None
        self.stop_signals = 0
        self.failed = False                  # a background task died: exit non-zero
        self.settings = runtime.settings
        self.store = ThreadPoolExecutor(max_workers=1, thread_name_prefix="maild-store")
        self.stop = asyncio.Event()
        self.work = asyncio.Event()
        self.servers: list[asyncio.AbstractServer] = []
        self.handlers: list[IntakeHandler] = []
        self.imap_accounts: list[ImapAccount] = []
        self.imap_tasks: list[asyncio.Task] = []
        self.db = None
        self.worker: Worker | None = None
        self.sender: Sender | None = None
        self.scheduler: Scheduler | None = None
        self.metrics = Metrics()
        self.metrics_server: MetricsServer | None = None
        self.ready = asyncio.Event()          # listeners bound: mail is accepted
        self.store_ready = asyncio.Event()    # database open: mail is processed
        self.notifier = notify.Notifier.from_environment()
        self.outbox_counter = status.OutboxCounter(self.settings.database_url, own=role == INTAKE)
        self.reload_refused = False

    async def in_store(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self.store, partial(fn, *args))

    async def submit(self, raw: bytes, envelope: Envelope, *, also=None) -> int:
        """Make `raw` durable in the spool (with `also(conn)` in the same transaction, see
        maild/spool.py) and wake processing; the spool id."""
        spool_id = await self.runtime.spool.put_async(raw, envelope, also=also)
        self.metrics.accepted(envelope.received_via)
        if self.child is not None:
            self.child.wake()
        self.work.set()
        return spool_id

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        await self.in_store(self.runtime.spool.depth)      # a broken spool stops us here
        if self.role != PROCESSING:
            self._serve_metrics()
            await self._listen()                           # accept mail even while the DB is down
            self._start_imap()
        if self.install_signals:
            for sig, handler in ((signal.SIGTERM, self._on_term), (signal.SIGINT, self._on_term),
                                 (signal.SIGHUP, self._on_hup)):
                loop.add_signal_handler(sig, handler)
        if self.role != PROCESSING:
            write_pid_file(self.settings.spool_dir)          # for `maild reload`
        self.ready.set()
        log.info("maild %s ready: %s", self.role, ", ".join(self.bound()) or "no listeners")
        if self.wake_fd is not None:
            self._watch_parent()                 # before the store: a dead parent stops us even then
        self.notifier.ready()
        notifying = asyncio.create_task(self._notify_loop(), name="notify")
        notifying.add_done_callback(self._task_ended)
        if self.role == INTAKE:
            await self._run_intake()
        elif await self._open_store():
            self.store_ready.set()
            self.worker = Worker(self.runtime.spool, self.db, self.runtime.context,
                                 metrics=self.metrics)
            self.sender = Sender(relay_from_url(self.settings.outbound.relay), self.in_store,
                                 db=self.db, max_attempts=self.settings.outbound.max_attempts,
                                 loop_value=self.settings.helpdesk.hostname,
                                 envelope_from=self.settings.outbound.mail_from,
                                 metrics=self.metrics)
            self.scheduler = Scheduler(self.settings.scheduler, db=self.db,
                                       context=self.runtime.context, run_in_store=self.in_store,
                                       on_queued=self.sender.wakeup.set, metrics=self.metrics)
            self.work.set()
            tasks = [asyncio.create_task(self._pump(), name="pump"),
                     asyncio.create_task(self.sender.run(self.stop), name="sender"),
                     asyncio.create_task(self.scheduler.run(self.stop), name="scheduler")]
            for task in tasks:
                task.add_done_callback(self._task_ended)
            await self.stop.wait()
            log.info("draining: closing listeners")
            await self._close_listeners()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.in_store(self.db.close)
        else:
            await self._close_listeners()
        notifying.cancel()
        self.store.submit(self.outbox_counter.close)
        self.store.shutdown(wait=True)
        if self.metrics_server is not None:
            self.metrics_server.stop()
        self.runtime.spool.close()
        if self.role != PROCESSING:
            remove_pid_file(self.settings.spool_dir)
        log.info("maild stopped")

    async def _run_intake(self) -> None:
        self.child = ProcessingChild(self.settings.config_path)
        self.child.start()
        supervisor = asyncio.create_task(self.child.supervise(self.stop), name="supervisor")
        supervisor.add_done_callback(self._task_ended)
        await self.stop.wait()
        log.info("draining: stopping the processing child, closing listeners")
        self.child.terminate()                   # it finishes its batch while listeners close
        await self._close_listeners()
        await asyncio.gather(supervisor, return_exceptions=True)
        await self.child.stop()

    def _watch_parent(self) -> None:
        """Processing role: a byte on the wake socket means new mail; EOF, the parent is gone."""
        def readable() -> None:
            try:
                data = os.read(self.wake_fd, 4096)
            except BlockingIOError:
                return
            if data:
                self.work.set()
                return
            asyncio.get_running_loop().remove_reader(self.wake_fd)
            if not self.stop.is_set():
                log.warning("the intake process is gone; finishing the batch in hand and stopping")
                self.stop.set()
        os.set_blocking(self.wake_fd, False)
        asyncio.get_running_loop().add_reader(self.wake_fd, readable)

    async def _open_store(self) -> bool:
        """Open (and migrate) the database, retrying while it is unreachable; False if
        asked to stop first.  Mail is accepted into the spool all the while."""
        while not self.stop.is_set():
            try:
                self.db = await self.in_store(self.runtime.open_database)
                return True
            except DatabaseUnavailable as exc:
                log.error("ticket database unavailable, mail waits in the spool: %s", exc)
            await wait_first(self.stop, timeout=STORE_RETRY_SECONDS)
        return False

    def _task_ended(self, task: asyncio.Task) -> None:
        if task.cancelled() or self.stop.is_set():
            return
        log.critical("%s task died (%r); stopping (systemd restarts maild)",
                     task.get_name(), task.exception())
        self.failed = True
        self.stop.set()

    def bound(self) -> list[str]:
        out = []
        for server in self.servers:
            for sock in server.sockets:
                name = sock.getsockname()
                out.append(name if isinstance(name, str) else f"{name[0]}:{name[1]}")
        return out

    async def _listen(self) -> None:
        listen, limit = self.settings.listen, self.settings.limits.max_message_size
        for protocol, spec in (("lmtp", listen.lmtp), ("smtp", listen.smtp)):
            if not spec:
                continue
            handler = IntakeHandler(submit=self.submit, accepts=self.runtime.accepts,
                                    protocol=protocol)
            server = await start_listener(spec, handler, protocol, data_size_limit=limit,
                                          hostname=self.settings.helpdesk.hostname)
            self.handlers.append(handler)
            self.servers.append(server)

    def _serve_metrics(self) -> None:
        """`/metrics` on maild.yaml `metrics.listen`, if set (intake and `both` roles)."""
        if self.settings.metrics is None:
            return
        collector = StateCollector(self.settings.spool_dir, self.settings.database_url,
                                   self.imap_states)
        registry = registry_for(self.metrics, collector, multiprocess_folder())
        try:
            self.metrics_server = MetricsServer.start(self.settings.metrics.address, registry)
        except OSError as exc:
            log.critical("metrics.listen %s: cannot listen: %s", self.settings.metrics.listen, exc)
            raise

    def _start_imap(self) -> None:
        for settings in self.settings.imap:
            account = ImapAccount(settings, submit=self.submit, spool=self.runtime.spool,
                                  accepts=self.runtime.accepts)
            task = asyncio.create_task(account.run(self.stop), name=f"imap {settings.name}")
            task.add_done_callback(self._task_ended)
            self.imap_accounts.append(account)
            self.imap_tasks.append(task)

    def imap_states(self) -> dict[str, str]:
        """{account name: state} of the IMAP accounts (see maild/imap.py STATES)."""
        return {account.name: account.state for account in self.imap_accounts}

    async def _close_listeners(self) -> None:
        """Drain the intake: listeners answer 421 and close, a client sending a message
        finishes it (at most LISTENER_DRAIN_SECONDS); IMAP accounts finish the batch in
        hand (at most IMAP_DRAIN_SECONDS; a cancelled one acknowledged nothing more)."""
        for handler in self.handlers:
            handler.drain()
        for server in self.servers:
            server.close()
        closed = await asyncio.gather(*(handler.sessions_closed(LISTENER_DRAIN_SECONDS)
                                        for handler in self.handlers))   # 3.11's wait_closed() won't
        if not all(closed):
            log.warning("a client connection outlived the drain window; its message was "
                        "not acknowledged, the client sends it again")
        for server in self.servers:
            try:
                await asyncio.wait_for(server.wait_closed(), timeout=LISTENER_DRAIN_SECONDS)
            except asyncio.TimeoutError:
                log.warning("a client connection outlived the drain window")
        if self.imap_tasks:
            _, pending = await asyncio.wait(self.imap_tasks, timeout=IMAP_DRAIN_SECONDS)
            for task in pending:
                log.warning("%s did not finish within %.0fs; cancelled", task.get_name(),
                            IMAP_DRAIN_SECONDS)
                task.cancel()
            await asyncio.gather(*self.imap_tasks, return_exceptions=True)
            self.imap_tasks = []

    async def _pump(self) -> None:
        """Process the spool batch by batch until stopped; a stop finishes the batch in
        hand only (the rest is durable in the spool and processed on the next start)."""
        while not self.stop.is_set():
            self.work.clear()            # before the pass: a submit during it is not missed
            try:
                while not self.stop.is_set() and await self.in_store(self.worker.process_available):
                    self.sender.wakeup.set()
            except (StoreUnavailable, SpoolBusy) as exc:
                log.error("processing paused for %ss, mail stays in the spool: %s",
                          STORE_RETRY_SECONDS, exc)
                await wait_first(self.stop, timeout=STORE_RETRY_SECONDS)   # new mail can't shorten it
                continue
            except Exception:  # noqa: BLE001 - the pump must outlive any bad batch
                log.exception("worker pass failed")
            await self._pause(RESCAN_SECONDS)

    async def _pause(self, seconds: float) -> None:
        await wait_first(self.work, self.stop, timeout=seconds)

    def _on_term(self) -> None:
        self.stop_signals += 1
        if self.stop_signals > 1:
            log.warning("second stop signal: exiting now; acknowledged mail stays in the spool")
            os._exit(0)
        self.stop.set()

    def _on_hup(self) -> None:
        self.notifier.reloading()
        reload = asyncio.get_running_loop().run_in_executor(None, self.runtime.reload)
        reload.add_done_callback(self._reloaded)
        if self.child is not None:
            self.child.forward(signal.SIGHUP)

    def _reloaded(self, reload: asyncio.Future) -> None:
        self.reload_refused = not reload.result()       # Runtime.reload never raises
        self.notifier.ready()

    async def _notify_loop(self) -> None:
        """Tell systemd how we are (see the module docstring); the processing child beats
        to its parent instead.  Counting (only under systemd) never delays a ping: it runs
        on the store thread while the pings go on."""
        if self.wake_fd is not None:
            return await self._beat_to_parent()
        interval = self.notifier.watchdog_seconds
        tick = min(STATUS_SECONDS, interval / 2) if interval else STATUS_SECONDS
        silence = max(interval / 2, 3 * BEAT_SECONDS) if interval else CHILD_SILENCE_SECONDS
        loop, counting, next_status = asyncio.get_running_loop(), None, 0.0
        stopping = stuck = False
        while True:
            stuck = self._child_stuck(silence, was=stuck, watchdog=bool(interval))
            if self.stop.is_set() and not stopping:
                self.notifier.stopping("draining")
                stopping = True
            if interval and not stuck:
                self.notifier.watchdog()
            if self.notifier.enabled and loop.time() >= next_status and (counting is None or counting.done()):
                note = ("draining" if stopping else "processing child not responding" if stuck
                        else "last reload refused, running the previous rules" if self.reload_refused
                        else "")
                counting = asyncio.ensure_future(self._send_status(note))
                next_status = loop.time() + STATUS_SECONDS
            await (asyncio.sleep(tick) if stopping else wait_first(self.stop, timeout=tick))

    def _child_stuck(self, silence: float, *, was: bool, watchdog: bool) -> bool:
        stuck = self.child is not None and not self.child.responsive(silence)
        if stuck and not was:
            log.error("the processing child's event loop is stuck (silent %gs)%s", silence,
                      "; no more WATCHDOG=1: systemd restarts maild" if watchdog else "")
        elif was and not stuck:
            log.warning("the processing child beats again")
        return stuck

    async def _send_status(self, note: str) -> None:
        db = None if self.stop.is_set() else self.db     # the drain closes it on the store thread
        snapshot = await self.in_store(status.collect, self.runtime.spool, self.outbox_counter,
                                       db, self.imap_states(), note)
        self.notifier.status(snapshot.line())

    async def _beat_to_parent(self) -> None:
        while True:
            try:
                os.write(self.wake_fd, b"\1")
            except OSError:             # parent busy (socket full) or gone (_watch_parent stops us)
                pass
            await asyncio.sleep(BEAT_SECONDS)


async def serve(runtime: Runtime, *, role: str = INTAKE, wake_fd: int | None = None) -> bool:
    """Run until stopped; False if it stopped because a part of it failed."""
    daemon = Daemon(runtime, role=role, wake_fd=wake_fd)
    await daemon.run()
    return not daemon.failed
