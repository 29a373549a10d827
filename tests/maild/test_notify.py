"""sd_notify (maild/notify.py) against a real unix datagram socket, and the STATUS= line."""
from __future__ import annotations

import os
import socket
import uuid

import pytest

from maild.notify import Notifier, child_environment, socket_address, watchdog_seconds
from maild.status import OutboxCounter, Snapshot


@pytest.fixture
def receiver():
    """systemd's end: an abstract-namespace datagram socket, as NOTIFY_SOCKET names it."""
    name = f"@maild-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(b"\0" + name[1:].encode())
    sock.settimeout(5)
    yield name, sock
    sock.close()


def test_messages_arrive_as_one_datagram_each(receiver):
    name, sock = receiver
    notifier = Notifier.from_environment({"NOTIFY_SOCKET": name})
    assert notifier.ready(status="listening on 127.0.0.1:2424")
    assert notifier.watchdog() and notifier.status("spool 0 incoming") and notifier.stopping()
    assert [sock.recv(4096) for _ in range(4)] == [
        b"READY=1\nSTATUS=listening on 127.0.0.1:2424", b"WATCHDOG=1",
        b"STATUS=spool 0 incoming", b"STOPPING=1"]


def test_reloading_carries_the_monotonic_time_in_microseconds(receiver):
    name, sock = receiver
    Notifier(socket_address(name), monotonic_ns=lambda: 1_234_567_890).reloading()
    assert sock.recv(4096) == b"RELOADING=1\nMONOTONIC_USEC=1234567"


def test_a_newline_in_a_status_cannot_forge_another_field(receiver):
    name, sock = receiver
    Notifier(socket_address(name)).status("rules.yaml:3: bad\nREADY=1")
    assert sock.recv(4096) == b"STATUS=rules.yaml:3: bad READY=1"


def test_a_socket_path_works_too(tmp_path):
    path = os.path.join("/tmp", f"maild-notify-{uuid.uuid4().hex[:8]}")   # sun_path <= 108 bytes
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        try:
            assert Notifier.from_environment({"NOTIFY_SOCKET": path}).ready()
            assert sock.recv(4096) == b"READY=1"
        finally:
            os.unlink(path)


def test_without_notify_socket_every_call_is_a_quiet_no_op():
    notifier = Notifier.from_environment({"WATCHDOG_USEC": "30000000"})
    assert not notifier.enabled and notifier.watchdog_seconds is None
    assert notifier.ready() is False and notifier.watchdog() is False


def test_a_receiver_that_is_gone_or_full_never_blocks_or_raises(receiver, caplog):
    name, sock = receiver
    notifier = Notifier(socket_address(name))
    sent = [notifier.status("x" * 2000) for _ in range(5000)]      # nobody reads: the queue fills
    assert sent[0] is True and sent[-1] is False
    assert sum("could not notify systemd" in r.getMessage() for r in caplog.records) == 1
    gone = Notifier(socket_address(f"@maild-test-nobody-{uuid.uuid4().hex}"))
    assert gone.ready() is False


@pytest.mark.parametrize("environ, pid, expected", [
    ({"WATCHDOG_USEC": "30000000"}, 42, 30.0),
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "42"}, 42, 30.0),
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "41"}, 42, None),     # meant for another process
    ({"WATCHDOG_USEC": "0"}, 42, None),
    ({"WATCHDOG_USEC": "soon"}, 42, None),
    ({}, 42, None),
])
def test_watchdog_interval_from_the_environment(environ, pid, expected):
    assert watchdog_seconds(environ, pid) == expected


def test_a_relative_notify_socket_is_refused_not_guessed():
    assert socket_address("run/notify") is None
    assert socket_address("@name") == b"\0name" and socket_address("/run/x") == "/run/x"


def test_the_processing_child_gets_no_notify_variables():
    env = child_environment({"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "1", "WATCHDOG_PID": "2",
                             "PATH": "/usr/bin"})
    assert env == {"PATH": "/usr/bin"}


def test_the_status_line_names_every_queue():
    line = Snapshot(spool={"incoming": 3, "processing": 1, "quarantined": 2}, outbox=5,
                    imap={"support": "idle", "sales": "reconnecting"}, note="draining").line()
    assert line == ("draining; spool 3 incoming, 1 processing, 2 quarantined; outbox 5 queued; "
                    "imap support idle, sales reconnecting")
    assert Snapshot(spool=None, outbox=None).line() == \
        "spool unreadable; outbox ? (database unavailable)"


def test_the_outbox_counter_says_unavailable_while_the_database_is_down_and_recovers(tmp_path, db, database_url):
    counter = OutboxCounter(database_url, own=True)
    assert counter() == 0
    counter.close()
    assert OutboxCounter(database_url)() is None                  # not ours to open
    down = OutboxCounter("postgresql://postgres@127.0.0.1:9/test?connect_timeout=1", own=True)
    assert down() is None and down.own is None                    # tried again next time
