"""The spool keeps every accepted message until the worker is done with it.

Real SQLite files in tmp_path; crashes are real processes killed with SIGKILL.
"""
from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tracemalloc
from datetime import datetime, timezone
from pathlib import Path

import pytest

from maild.envelope import Envelope
from maild.spool import CLAIM_MAX_BYTES, Spool, SpoolBusy, SpoolError, UnknownSpoolItem

REPO = Path(__file__).resolve().parents[2]
ENVELOPE = Envelope(mail_from="customer@example.org", rcpt_tos=("support@example.com",),
                    received_via="lmtp", peer="127.0.0.1:52000")
# NUL bytes, bare CR, invalid UTF-8 and Latin-1: kept byte for byte.
ODD_RAW = (b"From: =?iso-8859-1?q?J=F6rg?= <j@example.org>\r\nSubject: caf\xe9\r\n\r\n"
           b"body \x00 with NUL,\r bare CR, \xff\xfe invalid UTF-8 \xc3\x28\r\n")


@pytest.fixture
def spool(tmp_path):
    with Spool(tmp_path / "spool") as spool:
        yield spool


def crash(spool: Spool, directory: Path, **kwargs) -> Spool:
    """The claimer goes away without finishing (close() leaves states alone)."""
    spool.close()
    return Spool(directory, **kwargs)


def run_child(code: str, *args: str, **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)},
                            stdout=subprocess.PIPE, text=True, **popen)


def test_claimed_message_is_the_received_message_byte_for_byte(spool):
    bounce = Envelope(mail_from="", rcpt_tos=("støtte@example.com", "b@example.com"),
                      received_via="smtp", peer="[::1]:25")
    first = spool.put(ODD_RAW, bounce)
    second = spool.put(b"\x00" * 3, ENVELOPE)

    items = spool.claim()

    assert [(i.id, i.raw, i.envelope) for i in items] == [(first, ODD_RAW, bounce),
                                                          (second, b"\x00" * 3, ENVELOPE)]
    assert {(i.state, i.attempts) for i in items} == {("processing", 1)}
    assert spool.get(first).raw == ODD_RAW


def test_received_at_comes_from_the_clock(tmp_path):
    at = datetime(2024, 3, 1, 9, 30, tzinfo=timezone.utc)
    with Spool(tmp_path, clock=lambda: at) as spool:
        assert spool.get(spool.put(b"x", ENVELOPE)).received_at == at


async def test_concurrent_arrivals_share_commits(spool):
    before = spool.commits

    ids = await asyncio.gather(*(spool.put_async(b"m%d" % n, ENVELOPE) for n in range(200)))

    assert len(set(ids)) == 200
    assert spool.commits - before < 20, f"{spool.commits - before} commits for 200 messages"
    claimed = {item.id: item.raw for item in spool.claim(500)}
    assert claimed == {id_: b"m%d" % n for n, id_ in enumerate(ids)}


def test_claim_takes_the_oldest_first_and_at_most_limit(spool):
    ids = [spool.put(b"%d" % n, ENVELOPE) for n in range(5)]
    assert [i.id for i in spool.claim(3)] == ids[:3]
    assert [i.id for i in spool.claim(3)] == ids[3:]
    assert spool.claim(3) == []
    assert spool.depth() == {"incoming": 0, "processing": 5, "quarantined": 0}


def test_finish_deletes(spool):
    done, other = spool.put(b"done", ENVELOPE), spool.put(b"other", ENVELOPE)
    spool.claim()
    spool.finish([done])
    with pytest.raises(UnknownSpoolItem):
        spool.get(done)
    assert spool.depth() == {"incoming": 0, "processing": 1, "quarantined": 0}
    assert spool.get(other).state == "processing"


def test_release_hands_back_without_counting_the_attempt(spool):
    id_ = spool.put(b"x", ENVELOPE)
    for _ in range(10):                     # the ticket database is down, again and again
        spool.release([i.id for i in spool.claim()])
    item = spool.get(id_)
    assert (item.state, item.attempts, item.last_error) == ("incoming", 0, None)


def test_crash_puts_processing_items_back_with_attempts_counted(tmp_path):
    spool = Spool(tmp_path)
    id_ = spool.put(b"x", ENVELOPE)
    spool.claim()

    spool = crash(spool, tmp_path)

    assert spool.get(id_).state == "incoming"
    assert spool.wait_for_work(0)
    [item] = spool.claim()
    assert (item.id, item.attempts) == (id_, 2)
    spool.close()


def test_a_message_that_keeps_crashing_is_quarantined(tmp_path):
    spool = Spool(tmp_path, max_attempts=3)
    poison, fine = spool.put(b"poison", ENVELOPE), spool.put(b"fine", ENVELOPE)
    for _ in range(3):
        assert [i.id for i in spool.claim(1)] == [poison]
        spool = crash(spool, tmp_path, max_attempts=3)

    assert [i.id for i in spool.claim(1)] == [fine]    # the limit is still filled
    [bad] = spool.quarantined()
    assert (bad.id, bad.raw, bad.last_error) == (poison, b"poison", "processing crashed 3 times")
    spool.close()


CRASHER = """
import json, os, signal, sys
from pathlib import Path
from maild.spool import Spool
spool = Spool(Path(sys.argv[1]))
ids = [item.id for item in spool.claim()]
print(json.dumps(ids), flush=True)
if int(sys.argv[2]) in ids:
    os.kill(os.getpid(), signal.SIGKILL)        # processing it kills the process
spool.finish(ids)
spool.close()
"""


def test_a_poison_message_takes_only_itself_to_quarantine(tmp_path):
    with Spool(tmp_path) as spool:
        ids = [spool.put(b"message %d" % n, ENVELOPE) for n in range(5)]
    poison, innocent = ids[2], ids[:2] + ids[3:]
    claims, crashes = [], 0
    for _ in range(20):                 # each cycle is a daemon (re)start, as systemd does
        child = run_child(CRASHER, str(tmp_path), str(poison))
        out, _ = child.communicate(timeout=60)
        claimed = json.loads(out)
        if child.returncode == -signal.SIGKILL:
            crashes += 1
        else:
            assert child.returncode == 0
        if not claimed:
            break
        claims.append(claimed)

    # The batch crashes once; then every suspect gets a try alone, the poison until it is
    # out of attempts, and whoever comes after it gets its turn.
    assert claims == [ids, [ids[0]], [ids[1]]] + [[poison]] * 4 + [[ids[3]], [ids[4]]]
    assert crashes == 5
    with Spool(tmp_path) as spool:
        [bad] = spool.quarantined()
        assert (bad.id, bad.raw, bad.last_error) == (poison, b"message 2",
                                                     "processing crashed 5 times")
        assert spool.depth() == {"incoming": 0, "processing": 0, "quarantined": 1}
        for id_ in innocent:            # finished: deleted
            with pytest.raises(UnknownSpoolItem):
                spool.get(id_)


def test_rows_released_while_the_database_is_down_are_not_suspects(spool):
    ids = [spool.put(b"%d" % n, ENVELOPE) for n in range(3)]
    for _ in range(3):
        claimed = spool.claim()
        assert [i.id for i in claimed] == ids           # still one batch
        spool.release(ids)
    assert {(i.id, i.attempts) for i in spool.claim()} == {(id_, 1) for id_ in ids}


def test_suspects_are_claimed_alone_before_new_mail(tmp_path):
    spool = Spool(tmp_path)
    first, second = spool.put(b"first", ENVELOPE), spool.put(b"second", ENVELOPE)
    spool.claim()
    spool = crash(spool, tmp_path)
    fresh = [spool.put(b"fresh %d" % n, ENVELOPE) for n in range(2)]

    [item] = spool.claim()
    assert (item.id, item.attempts) == (first, 2)
    spool.release([first])              # the database is down: does not count, still suspect
    [item] = spool.claim()
    assert (item.id, item.attempts) == (first, 2)
    spool.finish([first])
    assert [(i.id, i.attempts) for i in spool.claim()] == [(second, 2)]
    assert [(i.id, i.attempts) for i in spool.claim()] == [(id_, 1) for id_ in fresh]
    spool.close()


def test_max_attempts_below_two_is_refused(tmp_path):
    with pytest.raises(ValueError, match="max_attempts"):
        Spool(tmp_path, max_attempts=1)


def test_claim_stops_at_max_bytes_but_takes_at_least_one(spool):
    sizes = [400_000, 400_000, 400_000, 2_000_000, 10, 10]
    ids = [spool.put(bytes([n]) * size, ENVELOPE) for n, size in enumerate(sizes)]

    assert [i.id for i in spool.claim(max_bytes=1_000_000)] == ids[:2]
    assert [i.id for i in spool.claim(max_bytes=1_000_000)] == ids[2:3]   # +2 MB: too much
    assert [i.id for i in spool.claim(max_bytes=1_000_000)] == ids[3:4]   # alone, too big
    assert [i.id for i in spool.claim(1, max_bytes=1_000_000)] == ids[4:5]
    assert [i.id for i in spool.claim(5)] == ids[5:]


def test_claim_bounds_memory_by_default(spool):
    big = CLAIM_MAX_BYTES // 3 + 1
    ids = [spool.put(bytes([n]) * big, ENVELOPE) for n in range(4)]
    assert [i.id for i in spool.claim()] == ids[:2]
    assert [i.id for i in spool.claim()] == ids[2:]


def test_claim_loads_only_the_rows_it_returns(spool):
    size = 4 * 1024 * 1024
    ids = [spool.put(bytes([n]) * size, ENVELOPE) for n in range(8)]
    tracemalloc.start()
    try:
        claimed = spool.claim(max_bytes=size)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [(i.id, i.size) for i in claimed] == [(ids[0], size)]
    assert peak < 2 * size, f"claiming one {size} byte row peaked at {peak} bytes"


def test_quarantine_and_replay_round_trip(spool):
    id_ = spool.put(ODD_RAW, ENVELOPE)
    spool.claim()
    spool.quarantine(id_, "parse: ValueError: bad charset")
    assert spool.claim() == []
    [item] = spool.quarantined()
    assert (item.id, item.raw, item.last_error, item.size) == (
        id_, ODD_RAW, "parse: ValueError: bad charset", len(ODD_RAW))

    spool.wait_for_work(0)
    spool.replay(id_)

    assert spool.wait_for_work(0)
    assert spool.quarantined() == []
    [again] = spool.claim()
    assert (again.id, again.raw, again.envelope, again.attempts) == (id_, ODD_RAW, ENVELOPE, 1)


def test_replay_and_quarantine_of_unknown_items_raise(spool):
    id_ = spool.put(b"x", ENVELOPE)
    with pytest.raises(UnknownSpoolItem):
        spool.replay(id_)                   # not quarantined
    with pytest.raises(UnknownSpoolItem):
        spool.quarantine(id_ + 1, "why")
    with pytest.raises(KeyError):
        spool.get(id_ + 1)
    assert spool.get(id_).state == "incoming"


def test_wait_for_work_wakes_on_new_mail_only(spool):
    assert not spool.wait_for_work(0.01)
    spool.put(b"x", ENVELOPE)
    assert spool.wait_for_work(0.01)
    assert not spool.wait_for_work(0.01)
    spool.release([i.id for i in spool.claim()])
    assert not spool.wait_for_work(0.01)


def test_a_second_process_may_put_but_not_take_the_claimers_rows(tmp_path):
    with Spool(tmp_path) as daemon:
        claimed = daemon.put(b"in hand", ENVELOPE)
        daemon.claim()
        with Spool(tmp_path) as ingest:     # `maild ingest` while `maild serve` runs
            assert ingest.get(claimed).state == "processing"
            ingested = ingest.put(b"piped", ENVELOPE)
            with pytest.raises(SpoolBusy):
                ingest.claim()
        assert [i.id for i in daemon.claim()] == [ingested]
        daemon.finish([claimed, ingested])
        assert daemon.depth() == {"incoming": 0, "processing": 0, "quarantined": 0}


@pytest.mark.parametrize("breakage", ["directory is a file", "database is garbage"])
async def test_unusable_spool_refuses_with_spool_error(tmp_path, breakage):
    directory = tmp_path / "spool"
    if breakage == "directory is a file":
        directory.write_bytes(b"")
    else:
        directory.mkdir()
        (directory / "spool.db").write_bytes(b"not sqlite " * 1000)
    spool = Spool(directory)

    with pytest.raises(SpoolError):
        spool.put(b"x", ENVELOPE)
    with pytest.raises(SpoolError):
        spool.submit(b"x", ENVELOPE).result(timeout=5)
    with pytest.raises(SpoolError):
        await spool.put_async(b"x", ENVELOPE)
    with pytest.raises(SpoolError):
        spool.depth()
    spool.close()


def test_close_drains_pending_submissions(tmp_path):
    spool = Spool(tmp_path)
    futures = [spool.submit(b"%d" % n, ENVELOPE) for n in range(500)]
    spool.close()

    ids = [f.result(timeout=0) for f in futures]
    with pytest.raises(SpoolError):
        spool.put(b"late", ENVELOPE)
    with Spool(tmp_path) as reopened:
        assert [reopened.get(i).raw for i in ids] == [b"%d" % n for n in range(500)]


PUTTER = """
import sys
from pathlib import Path
from maild.envelope import Envelope
from maild.spool import Spool
spool = Spool(Path(sys.argv[1]))
spool.claim()                                   # holds the claim lock, like the daemon
for n in range(100_000):
    raw = b"message %d \\x00\\xff" % n
    print(spool.put(raw, Envelope("", ("support@example.com",), "ingest")), n, flush=True)
    if n == 3:
        print("claimed", *[i.id for i in spool.claim(2)], flush=True)
"""


def test_killed_process_leaves_every_acknowledged_message(tmp_path):
    child = run_child(PUTTER, str(tmp_path))
    acknowledged, claimed = {}, []
    for line in child.stdout:
        if line.startswith("claimed"):
            claimed = [int(i) for i in line.split()[1:]]
            continue
        id_, n = map(int, line.split())
        acknowledged[id_] = b"message %d \x00\xff" % n
        if len(acknowledged) == 300:
            child.send_signal(signal.SIGKILL)    # right after an acknowledgement
            break
    child.wait()
    child.stdout.close()

    with Spool(tmp_path) as spool:
        assert {i: spool.get(i).raw for i in acknowledged} == acknowledged
        assert {spool.get(i).state for i in acknowledged} == {"incoming"}
        assert [spool.get(i).attempts for i in claimed] == [1, 1]


DISK_FILLER = """
import json, resource, sys
from pathlib import Path
from maild.envelope import Envelope
from maild.spool import Spool, SpoolError
spool = Spool(Path(sys.argv[1]))
envelope = Envelope("a@example.org", ("support@example.com",), "smtp")
ok, failed = [[spool.put(b"before", envelope), -1]], []
limit = (Path(sys.argv[1]) / "spool.db-wal").stat().st_size + 200_000
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))   # writes past it fail: EFBIG
futures = [spool.submit(bytes([n]) * 20_000, envelope) for n in range(60)]
for n, future in enumerate(futures):
    try:
        ok.append([future.result(), n])
    except SpoolError as exc:
        failed.append(str(exc))
try:
    spool.put(b"y" * 300_000, envelope)
    late = "accepted"
except SpoolError as exc:
    late = "SpoolError"
print(json.dumps({"ok": ok, "failed": failed, "late": late}))
"""


def test_full_disk_fails_whole_groups_and_leaves_no_half_group(tmp_path):
    child = run_child(DISK_FILLER, str(tmp_path))
    out, _ = child.communicate(timeout=60)
    assert child.returncode == 0
    report = json.loads(out)

    assert report["failed"] and report["late"] == "SpoolError"
    assert all("spool write failed" in reason for reason in report["failed"])
    with Spool(tmp_path) as spool:
        stored = {item.id: item.raw for item in spool.claim(100)}
        assert stored == {id_: bytes([n]) * 20_000 if n >= 0 else b"before"
                          for id_, n in report["ok"]}
        assert spool.put(b"after", ENVELOPE)    # room again: the spool works again
