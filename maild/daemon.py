"""`maild serve`: listeners, the worker pump and the outbound sender.

Roles: `maild serve` runs the *intake* (LMTP/SMTP listeners and the spool's group commit)
and starts two child processes (`maild process --role worker|sender`, see maild/child.py):
the *worker* (spool -> tickets and outbox) and the *sender* (outbox -> relay), so each
has a core of its own as far as the machine has them.  `processing` runs worker and sender
in one process (`maild process` alone); `both` runs everything in one process (tests,
small sites).  Threads in a processing role: the event loop runs the outbound relay
client; one store thread does all database work (the worker's batches, the sender's
outbox updates), so a process has a single database writer; the spool has its own writer
thread.  No event loop ever waits on the database or on fsync.

Start-up: migrate the schema (the sender role waits for it instead), bind the listeners,
then process whatever the spool and the outbox still hold.  SIGHUP reloads rules and
templates (keeping the last good ones).  SIGTERM drains: listeners answer 421 and close,
the batch in hand is finished and committed, the deliveries in progress complete, then
each process exits 0.  A second SIGTERM exits at once; everything acknowledged is in the
spool and is processed on the next start.
"""
from __future__ import annotations

import asyncio
import logging
import os
import signal
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from maild.aio import wait_first
from maild.child import ProcessingChild
from maild.envelope import Envelope
from maild.intake import IntakeHandler
from maild.listen import start_listener
from maild.outbound import Sender
from maild.relay import relay_from_url
from maild.runtime import Runtime
from maild.spool import SpoolBusy
from maild.worker import StoreUnavailable, Worker
from store.db import DatabaseUnavailable
from store.migrations import LATEST, current_version

log = logging.getLogger(__name__)

RESCAN_SECONDS = 5.0        # pick up released batches and mail spooled by `maild ingest`
STORE_RETRY_SECONDS = 5.0   # back-off while the ticket database is unreachable (or unmigrated)


class SchemaNotReady(Exception):
    """Sender role: the database has no schema yet, or an older one (the worker migrates)."""


BOTH, INTAKE, PROCESSING, WORKER, SENDER = "both", "intake", "processing", "worker", "sender"
CHILD_ROLES = (WORKER, SENDER)          # what `maild serve` starts


class Daemon:
    def __init__(self, runtime: Runtime, *, install_signals: bool = True, role: str = BOTH,
                 wake_fd: int | None = None, outbox_fd: int | None = None):
        self.runtime = runtime
        self.install_signals = install_signals
        self.role = role
        self.wake_fd = wake_fd               # a child: one byte per accepted message, EOF = parent gone
        self.outbox_fd = outbox_fd           # worker: write a byte when mail is queued; sender: read it
        self.child: ProcessingChild | None = None       # intake: the worker child (woken per message)
        self.children: list[ProcessingChild] = []
        self.stop_signals = 0
        self.failed = False                  # a background task died: exit non-zero
        self.settings = runtime.settings
        self.store = ThreadPoolExecutor(max_workers=1, thread_name_prefix="maild-store")
        self.stop = asyncio.Event()
        self.work = asyncio.Event()
        self.servers: list[asyncio.AbstractServer] = []
        self.handlers: list[IntakeHandler] = []
        self.db = None
        self.worker: Worker | None = None
        self.sender: Sender | None = None
        self.ready = asyncio.Event()          # listeners bound: mail is accepted
        self.store_ready = asyncio.Event()    # database open: mail is processed

    async def in_store(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self.store, partial(fn, *args))

    async def submit(self, raw: bytes, envelope: Envelope) -> int:
        spool_id = await self.runtime.spool.put_async(raw, envelope)
        if self.child is not None:
            self.child.wake()
        self.work.set()
        return spool_id

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        await self.in_store(self.runtime.spool.depth)      # a broken spool stops us here
        if self.role in (BOTH, INTAKE):
            await self._listen()                           # accept mail even while the DB is down
        if self.install_signals:
            for sig, handler in ((signal.SIGTERM, self._on_term), (signal.SIGINT, self._on_term),
                                 (signal.SIGHUP, self._on_hup)):
                loop.add_signal_handler(sig, handler)
        self.ready.set()
        log.info("maild %s ready: %s", self.role, ", ".join(self.bound()) or "no listeners")
        if self.wake_fd is not None:
            self._watch_parent()                 # before the store: a dead parent stops us even then
        if self.role == INTAKE:
            await self._run_intake()
        elif await self._open_store():
            self.store_ready.set()
            tasks = []
            if self.role != SENDER:
                self.worker = Worker(self.runtime.spool, self.db, self.runtime.context)
                if self.outbox_fd is not None:
                    os.set_blocking(self.outbox_fd, False)   # a full pipe: a wake-up is pending
                tasks.append(asyncio.create_task(self._pump(), name="pump"))
            if self.role != WORKER:
                self.sender = Sender(relay_from_url(self.settings.outbound.relay), self.in_store,
                                     db=self.db, max_attempts=self.settings.outbound.max_attempts,
                                     loop_value=self.settings.helpdesk.hostname,
                                     envelope_from=self.settings.outbound.mail_from)
                if self.outbox_fd is not None:
                    self._watch_outbox()
                tasks.append(asyncio.create_task(self.sender.run(self.stop), name="sender"))
            self.work.set()
            for task in tasks:
                task.add_done_callback(self._task_ended)
            await self.stop.wait()
            log.info("draining: closing listeners")
            await self._close_listeners()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.in_store(self.db.close)
        else:
            await self._close_listeners()
        self.store.shutdown(wait=True)
        self.runtime.spool.close()
        log.info("maild stopped")

    async def _run_intake(self) -> None:
        outbox_r, outbox_w = os.pipe()           # held open here for the children's lifetimes
        try:
            self.children = [
                ProcessingChild(self.settings.config_path, role=WORKER, outbox_fd=outbox_w),
                ProcessingChild(self.settings.config_path, role=SENDER, outbox_fd=outbox_r)]
            self.child = self.children[0]
            supervisors = []
            for child in self.children:
                child.start()
                supervisor = asyncio.create_task(child.supervise(self.stop),
                                                 name=f"{child.role} supervisor")
                supervisor.add_done_callback(self._task_ended)
                supervisors.append(supervisor)
            await self.stop.wait()
            log.info("draining: stopping the worker and sender children, closing listeners")
            for child in self.children:
                child.terminate()                # they finish their work while listeners close
            await self._close_listeners()
            await asyncio.gather(*supervisors, return_exceptions=True)
            await asyncio.gather(*(child.stop() for child in self.children))
        finally:
            os.close(outbox_r)
            os.close(outbox_w)

    def _watch_parent(self) -> None:
        """Processing role: a byte on the wake pipe means new mail; EOF, the parent is gone."""
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

    def _watch_outbox(self) -> None:
        """Sender role: a byte on the outbox pipe means a worker batch queued mail."""
        def readable() -> None:
            try:
                if os.read(self.outbox_fd, 4096):
                    self.sender.wakeup.set()
            except BlockingIOError:
                pass
        os.set_blocking(self.outbox_fd, False)
        asyncio.get_running_loop().add_reader(self.outbox_fd, readable)

    def _mail_queued(self) -> None:
        """After a worker batch: wake the sender, in this process or the sender child."""
        if self.sender is not None:
            self.sender.wakeup.set()
        elif self.outbox_fd is not None:
            try:
                os.write(self.outbox_fd, b"\0")
            except BlockingIOError:
                pass                     # the pipe is full: a wake-up is pending anyway
            except OSError as exc:
                log.debug("outbox wake-up not delivered: %s", exc)

    async def _open_store(self) -> bool:
        """Open (and migrate) the database, retrying while it is unreachable; False if
        asked to stop first.  Mail is accepted into the spool all the while."""
        while not self.stop.is_set():
            try:
                self.db = await self.in_store(self._database)
                return True
            except DatabaseUnavailable as exc:
                log.error("ticket database unavailable, mail waits in the spool: %s", exc)
            except SchemaNotReady as exc:
                log.warning("%s; waiting for the worker to migrate it", exc)
            await wait_first(self.stop, timeout=STORE_RETRY_SECONDS)
        return False

    def _database(self):
        """The sender role never migrates (the worker does, so two processes never race
        on it); it waits until the schema is the one this maild knows."""
        if self.role != SENDER:
            return self.runtime.open_database()
        db = self.runtime.open_database(upgrade=False)
        version = current_version(db)
        if version != LATEST:
            db.close()
            raise SchemaNotReady(f"database schema is {version}, not {LATEST}")
        return db

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

    async def _close_listeners(self) -> None:
        for handler in self.handlers:
            handler.draining = True
        for server in self.servers:
            server.close()
        for server in self.servers:
            try:
                await asyncio.wait_for(server.wait_closed(), timeout=5)
            except asyncio.TimeoutError:
                log.warning("a client connection outlived the drain window")

    async def _pump(self) -> None:
        """Process the spool batch by batch until stopped; a stop finishes the batch in
        hand only (the rest is durable in the spool and processed on the next start)."""
        while not self.stop.is_set():
            self.work.clear()            # before the pass: a submit during it is not missed
            try:
                while not self.stop.is_set() and await self.in_store(self.worker.process_available):
                    self._mail_queued()
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
        asyncio.get_running_loop().run_in_executor(None, self.runtime.reload)
        for child in self.children:
            child.forward(signal.SIGHUP)


async def serve(runtime: Runtime, *, role: str = INTAKE, wake_fd: int | None = None,
                outbox_fd: int | None = None) -> bool:
    """Run until stopped; False if it stopped because a part of it failed."""
    daemon = Daemon(runtime, role=role, wake_fd=wake_fd, outbox_fd=outbox_fd)
    await daemon.run()
    return not daemon.failed
