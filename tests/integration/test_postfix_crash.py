"""Durability behind a real Postfix (issue 8): maild killed with SIGKILL, again and again,
while Postfix delivers 2,000 messages to it; nothing Postfix delivered is lost or doubled.

    customers --SMTP x8--> Postfix --LMTP--> maild serve (killed 3-5 times, restarted)
                                               |--> ticket, acknowledgement
                           Postfix <--SMTP-----'    (the relay is the same Postfix)
                              '--SMTP--> sink (customers.test)

A Postfix of its own (tests/postfix.py, `retrying=True`): it keeps deferred mail and tries
again every second for an hour, where the session's instance returns it at the first
failure (for the DSN tests).  It is set up as docs/postfix.md says (main.cf, transport and
recipient table, read from the page by tests/integration/test_postfix.py), plus
`enable_long_queue_ids` so that no queue id is used twice in its log.

maild is a real `maild serve` subprocess (and its `maild process` child, in a session of
its own) on a fixed LMTP port.  A killer thread SIGKILLs both at random moments while the
customers write (chosen by progress: after a random number of submitted messages, plus a
random delay), and starts maild again after a random pause; Postfix meanwhile defers and
retries.  When Postfix's queue is empty and maild's spool and outbox are idle, maild is
stopped with SIGTERM and the test reads Postfix's log and maild's database:

- every message Postfix logged `status=sent` to maild (its queue id from the "queued as"
  answer of the submission, so log line and Message-ID are joined by queue id, never by
  guesswork) is exactly one inbound `Message` with one `Delivery`, on a ticket of its
  own; none is missing, none twice, none that was not sent, nothing quarantined;
- Postfix delivered every message (none bounced, none expired);
- acknowledgements: one outbox row per ticket.  Outbound mail is at-least-once: a SIGKILL
  after the relay's 250 and before the row is marked sent leaves the row leased
  (`sending`); after the lease (store.outbox.LEASE, 10 minutes) it is sent again.  The test
  plays those 10 minutes with a `Sender` whose clock is LEASE ahead, then checks that every
  customer has at least one acknowledgement, and that every extra one belongs to a row
  that was leased more than once.

The figures (messages, kills, deferrals, spool depth, duration, extra acknowledgements) go
to stdout (`pytest -s`) and to the test's report section.  MAILD_CRASH_MESSAGES (default
2000) and MAILD_CRASH_SEED (default: random, printed) reproduce a run;
MAILD_CRASH_POSTGRES=1 also runs it on PostgreSQL (long runs; the SQLite run is the CI one);
MAILD_CRASH_KILLS=MIN,MAX changes how many kills (0,0 measures the same run undisturbed).
"""
from __future__ import annotations

import asyncio
import os
import random
import signal
import smtplib
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import _unavailable
from tests.integration.harness import SUPPORT, mail, write_config
from tests.integration.test_crash import free_port, wait_listening
from tests.postfix import QUEUED_AS, Postfix, PostfixError, Sink, wait_until

MESSAGES = int(os.environ.get("MAILD_CRASH_MESSAGES", "2000"))
SEED = int(os.environ.get("MAILD_CRASH_SEED", str(random.randrange(1 << 32))))
# how many times maild is killed, at least and at most ("0,0": a baseline without kills)
KILLS = tuple(int(n) for n in os.environ.get("MAILD_CRASH_KILLS", "3,5").split(","))
PAUSE = (0.2, 2.0)               # seconds maild stays dead
CONNECTIONS = 8                  # customers' SMTP connections to Postfix at once
PER_CONNECTION = 50              # messages per SMTP session before QUIT
CUSTOMERS = "customers.test"
SETTLE_TIMEOUT = 240.0
FLUSH_TIMEOUT = 60.0

DATABASES = ["sqlite", pytest.param("postgresql", marks=[
    pytest.mark.postgres,
    pytest.mark.skipif(not os.environ.get("MAILD_CRASH_POSTGRES"),
                       reason="long run: set MAILD_CRASH_POSTGRES=1")])]


def message_id(n: int) -> str:
    return f"crash-{SEED}-{n}@{CUSTOMERS}"


def customer(n: int) -> str:
    return f"c{n}@{CUSTOMERS}"


@dataclass
class Figures:
    """What the run measured; printed at the end."""
    messages: int = 0
    kills: list[str] = field(default_factory=list)
    max_spool_depth: int = 0
    max_postfix_queue: int = 0
    started: float = field(default_factory=time.monotonic)
    submitted_at: float = 0.0
    settled_at: float = 0.0

    def report(self, **more) -> str:
        lines = [f"seed {SEED}: {self.messages} messages, {len(self.kills)} SIGKILLs "
                 f"({'; '.join(self.kills)})",
                 f"submitted in {self.submitted_at - self.started:.1f}s, all delivered and "
                 f"processed after {self.settled_at - self.started:.1f}s",
                 f"max spool depth {self.max_spool_depth}, max Postfix queue "
                 f"{self.max_postfix_queue}"]
        lines += [f"{key.replace('_', ' ')}: {value}" for key, value in more.items()]
        return "\n".join(lines)


class Maild:
    """A `maild serve` subprocess in a session of its own, killed and started again."""

    def __init__(self, config: Path, port: int, log_path: Path):
        self.config, self.port, self.log_path = config, port, log_path
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "maild.cli", "-c", str(self.config), "serve"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
                start_new_session=True)
        wait_listening(self.port, self.proc, timeout=30)

    def kill(self, rng: random.Random) -> str:
        """SIGKILL serve's process group and the processing child (a session of its own),
        in random order; returns once both are gone."""
        serve = self.proc.pid
        child = _children(serve)
        victims = [("serve", lambda: os.killpg(serve, signal.SIGKILL))]
        victims += [(f"child {pid}", lambda pid=pid: os.kill(pid, signal.SIGKILL)) for pid in child]
        rng.shuffle(victims)
        for _, kill in victims:
            try:
                kill()
            except ProcessLookupError:
                pass
        self.proc.wait(10)
        wait_until(lambda: not any(_alive(pid) for pid in child), 10, "the child to die")
        return " then ".join(name.split()[0] for name, _ in victims)

    def stop(self) -> int:
        """SIGTERM, as systemd stops it; the exit code."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)

    def ensure_dead(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            for pid in _children(self.proc.pid):
                os.kill(pid, signal.SIGKILL)
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def spool_depth(spool_db: Path) -> int:
    """Messages in maild's spool not yet in a ticket (read-only; never takes its locks)."""
    if not spool_db.exists():
        return 0
    conn = sqlite3.connect(f"file:{spool_db}?mode=ro", uri=True, timeout=10)
    try:
        [(n,)] = conn.execute("SELECT count(*) FROM spool WHERE state IN ('incoming', 'processing')")
        return n
    finally:
        conn.close()


@pytest.fixture
def crash_postfix():
    """A Postfix of this test's own that keeps retrying, set up as docs/postfix.md says
    (its LMTP next hop a free port, the one maild will listen on), and a sink for the
    customers' domain; (postfix, sink, port)."""
    from tests.integration.test_postfix import documented_routes, use_documented_setup

    reason = Postfix.unavailable()
    if reason is not None:
        _unavailable(reason)
    port = free_port()
    sink = Sink()
    sink.start()
    server = Postfix(retrying=True, settings={"enable_long_queue_ids": "yes"})
    try:
        use_documented_setup(server)
        server.route({CUSTOMERS: sink.nexthop, **documented_routes(f"lmtp:inet:127.0.0.1:{port}")})
        server.start()
    except PostfixError as exc:
        server.close()
        sink.stop()
        _unavailable(f"Postfix did not start: {exc}")
    yield server, sink, port
    server.close()
    sink.stop()


def submit_all(postfix: Postfix, numbers: list[int], queued: dict[str, int],
               progress: list[int], lock: threading.Lock) -> None:
    """One customer connection: send `numbers` in SMTP sessions of PER_CONNECTION."""
    for start in range(0, len(numbers), PER_CONNECTION):
        with smtplib.SMTP(postfix.host, postfix.port, local_hostname="client.lab.test",
                          timeout=60) as smtp:
            for n in numbers[start:start + PER_CONNECTION]:
                raw = mail(f"Crash run order {n}", f"Message {n} of the crash run.",
                           sender=f"Customer {n} <{customer(n)}>", message_id=message_id(n))
                code, _ = smtp.mail(customer(n))
                assert code == 250, code
                code, _ = smtp.rcpt(SUPPORT)
                assert code == 250, code
                code, text = smtp.data(raw)
                assert code == 250, (code, text)
                with lock:
                    queued[QUEUED_AS.search(text.decode()).group(1)] = n
                    progress[0] += 1


def accepted(spool_db: Path) -> int:
    """How many messages maild's spool ever accepted (its AUTOINCREMENT counter: every
    LMTP 250, a redelivered message counted again)."""
    if not spool_db.exists():
        return 0
    conn = sqlite3.connect(f"file:{spool_db}?mode=ro", uri=True, timeout=10)
    try:
        row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'spool'").fetchone()
        return row[0] if row else 0
    except sqlite3.OperationalError:        # not created yet
        return 0
    finally:
        conn.close()


def killer(maild: Maild, spool_db: Path, rng: random.Random, progress: list[int],
           figures: Figures, done: threading.Event, failed: list[BaseException]) -> None:
    """Kill maild when the messages it accepted pass random marks (plus a random delay),
    and start it again after a random pause: kills land while Postfix delivers, maild
    processes and sends, and (a mark passed while it was down) while it starts again."""
    try:
        marks = sorted(rng.sample(range(MESSAGES // 20, MESSAGES * 19 // 20), rng.randint(*KILLS)))
        for mark in marks:
            wait_until(lambda: accepted(spool_db) >= mark, SETTLE_TIMEOUT,
                       f"maild to accept {mark} messages")
            time.sleep(rng.uniform(0, 0.5))
            at = (accepted(spool_db), progress[0])
            order = maild.kill(rng)
            pause = rng.uniform(*PAUSE)
            figures.kills.append(f"at {at[0]} accepted/{at[1]} submitted, {order}, "
                                 f"down {pause:.1f}s")
            time.sleep(pause)
            maild.start()
    except BaseException as exc:  # noqa: BLE001 - reported by the test
        failed.append(exc)
    finally:
        done.set()


def watcher(spool_db: Path, postfix: Postfix, figures: Figures, stop: threading.Event) -> None:
    while not stop.wait(0.5):
        try:
            figures.max_spool_depth = max(figures.max_spool_depth, spool_depth(spool_db))
            figures.max_postfix_queue = max(figures.max_postfix_queue, len(postfix.queue()))
        except (sqlite3.Error, PostfixError):
            pass                               # a sample lost while a file changes


def maild_idle(database_url: str, spool_db: Path) -> bool:
    """No message in maild's spool and no outbound mail waiting to be tried."""
    from store.db import open_database
    from store.models import Outbox

    if spool_depth(spool_db):
        return False
    db = open_database(database_url)
    try:
        return not Outbox.select().where(Outbox.status == "queued").exists()
    finally:
        db.close()


def flush_leased(database_url: str, relay_url: str) -> int:
    """What maild does once the leases of a killed sender run out: a Sender whose clock
    is LEASE (and a minute) ahead delivers the rows still `sending`; how many it sent."""
    from datetime import timedelta

    from maild.outbound import Sender
    from maild.relay import relay_from_url
    from store.db import open_database, utcnow
    from store.outbox import LEASE

    db = open_database(database_url)

    async def inline(fn, *args):
        return fn(*args)

    later = lambda: utcnow() + LEASE + timedelta(minutes=1)  # noqa: E731
    async def flush() -> int:
        sender, sent = Sender(relay_from_url(relay_url), inline, db=db, clock=later), 0
        while n := await sender.send_due(limit=32):
            sent += n
        return sent
    try:
        return asyncio.run(flush())
    finally:
        db.close()


@pytest.mark.parametrize("database_url", DATABASES, indirect=True)
def test_every_message_postfix_delivered_while_maild_was_killed_is_in_exactly_one_ticket(
        tmp_path, database_url, crash_postfix, record_property):
    postfix, sink, port = crash_postfix
    rng = random.Random(SEED)
    config = write_config(tmp_path, database_url, postfix.relay_url)
    config.write_text(config.read_text().replace(
        'listen: {lmtp: "127.0.0.1:0", smtp: "127.0.0.1:0"}', f'listen: {{lmtp: "127.0.0.1:{port}"}}'))
    subprocess.run([sys.executable, "-m", "maild.cli", "-c", str(config), "init"], check=True,
                   capture_output=True)
    postfix.mark()
    spool_db = tmp_path / "spool" / "spool.db"
    maild = Maild(config, port, tmp_path / "maild.log")
    figures = Figures(messages=MESSAGES)
    queued: dict[str, int] = {}                  # Postfix queue id -> message number
    progress, lock = [0], threading.Lock()
    killed, watching, failed = threading.Event(), threading.Event(), []
    maild.start()
    try:
        threads = [threading.Thread(target=killer, args=(maild, spool_db, rng, progress, figures, killed, failed)),
                   threading.Thread(target=watcher, args=(spool_db, postfix, figures, watching))]
        for thread in threads:
            thread.start()
        numbers = list(range(MESSAGES))
        with ThreadPoolExecutor(CONNECTIONS) as pool:
            for done in [pool.submit(submit_all, postfix, numbers[i::CONNECTIONS], queued,
                                     progress, lock) for i in range(CONNECTIONS)]:
                done.result()
        figures.submitted_at = time.monotonic()
        killed.wait()
        assert not failed, failed
        assert len(queued) == MESSAGES

        # Postfix delivers what it deferred; maild processes and acknowledges it
        wait_until(lambda: not postfix.queue() and maild_idle(database_url, spool_db)
                   and not postfix.queue(), SETTLE_TIMEOUT, "Postfix's queue and maild to be idle")
        figures.settled_at = time.monotonic()
        watching.set()
        threads[1].join()
        assert maild.stop() == 0
    finally:
        watching.set()
        maild.ensure_dead()

    # every message's delivery to maild is in the log (postlogd writes a moment later)
    def sent_to_maild() -> dict[str, list]:
        by_id: dict[str, list] = {}
        for d in postfix.deliveries(to=SUPPORT):
            by_id.setdefault(d.queue_id, []).append(d)
        return by_id
    wait_until(lambda: sum(any(d.status == "sent" for d in ds)
                           for ds in sent_to_maild().values()) >= MESSAGES,
               30, "a status=sent line for every message")
    lines = sent_to_maild()
    assert set(lines) == set(queued), "deliveries of queue ids we never submitted"
    outcomes = Counter(d.status for ds in lines.values() for d in ds)
    sent = {qid: [d for d in ds if d.status == "sent"] for qid, ds in lines.items()}
    assert all(len(s) == 1 for s in sent.values()), "a message Postfix delivered twice"
    assert not outcomes.keys() - {"sent", "deferred"}, outcomes        # none bounced, expired
    assert all(d.service == "lmtp" and d.relay.endswith(f":{port}") for s in sent.values() for d in s)
    delivered = {message_id(queued[qid]) for qid in sent}
    assert len(delivered) == MESSAGES

    # ... and each is in exactly one ticket
    from store.db import open_database
    from store.models import Delivery, Message, Outbox, Ticket

    db = open_database(database_url)
    try:
        inbound = Counter(m.message_id for m in Message.select(Message.message_id)
                          .where(Message.direction == "in"))
        doubled = {mid: n for mid, n in inbound.items() if n > 1}
        missing = delivered - set(inbound)
        strangers = set(inbound) - delivered
        assert not missing, f"{len(missing)} delivered by Postfix but in no ticket: {sorted(missing)[:5]}"
        assert not doubled, f"{len(doubled)} stored more than once: {list(doubled.items())[:5]}"
        assert not strangers, f"stored but never sent: {sorted(strangers)[:5]}"
        deliveries = Counter(d.message_key for d in Delivery.select(Delivery.message_key))
        assert len(deliveries) == MESSAGES and set(deliveries.values()) == {1}
        tickets = Counter(m.ticket_id for m in Message.select(Message.ticket)
                          .where(Message.direction == "in"))
        assert Ticket.select().count() == MESSAGES and set(tickets.values()) == {1}
        assert spool_depth(spool_db) == 0
        total_accepted = accepted(spool_db)
        quarantined = sqlite3.connect(f"file:{spool_db}?mode=ro", uri=True).execute(
            "SELECT count(*) FROM spool").fetchone()[0]
        assert quarantined == 0
        acks = list(Outbox.select().where(Outbox.template == "ack"))
        assert len(acks) == MESSAGES and len({a.ticket_id for a in acks}) == MESSAGES
        leased = [a for a in acks if a.status == "sending"]
        assert {a.status for a in acks} <= {"sent", "sending"}
    finally:
        db.close()

    # the leases of the killed senders run out: those acknowledgements go (again)
    flushed = flush_leased(database_url, postfix.relay_url)
    assert flushed == len(leased)
    postfix.wait_queue_empty(timeout=FLUSH_TIMEOUT)
    wait_until(lambda: len({m.rcpt_tos[0] for m in sink.received}) >= MESSAGES, FLUSH_TIMEOUT,
               "an acknowledgement for every customer at the sink")
    per_customer = Counter(m.rcpt_tos[0] for m in sink.received)
    assert set(per_customer) == {customer(n) for n in range(MESSAGES)}
    db = open_database(database_url)
    try:
        acks = {a.to_address: a for a in Outbox.select().where(Outbox.template == "ack")}
        assert {a.status for a in acks.values()} == {"sent"}
        twice = {to: n for to, n in per_customer.items() if n > 1}
        released = {to for to, a in acks.items() if a.attempts > 1}
        assert set(twice) <= released, "an extra acknowledgement from a row leased only once"
        assert all(n == 2 for n in twice.values())
    finally:
        db.close()

    deferred = [d for ds in lines.values() for d in ds if d.status == "deferred"]
    text = figures.report(
        postfix_deferrals=f"{len(deferred)} deferred delivery attempts of "
                          f"{len({d.queue_id for d in deferred})} messages, every one then sent",
        lmtp_deliveries=f"{len(sent)} status=sent, each message once; maild answered 250 "
                        f"{total_accepted} times ({total_accepted - MESSAGES} redeliveries of "
                        "messages whose 250 a kill cut off, stored once each)",
        maild=f"{MESSAGES} tickets, {MESSAGES} inbound messages, none twice, none missing, "
              "nothing quarantined",
        acknowledgements=f"{sum(per_customer.values())} for {MESSAGES} tickets: {len(twice)} "
                         f"sent twice (SIGKILL between the relay's 250 and marking the row "
                         f"sent), {len(leased)} rows left leased by the kills and sent after "
                         "the lease",
        seconds=f"{time.monotonic() - figures.started:.1f} in all")
    print("\n" + text)
    record_property("crash_figures", text)
