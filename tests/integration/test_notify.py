"""`maild serve` under a service manager: what systemd hears on NOTIFY_SOCKET.

The test plays systemd: it binds a real unix datagram socket, starts a real `maild serve`
with NOTIFY_SOCKET (and WATCHDOG_USEC) pointing at it, and reads what arrives.
"""
from __future__ import annotations

import os
import re
import signal
import smtplib
import socket
import subprocess
import sys
import time
import uuid

import pytest

from tests.integration.harness import SUPPORT, mail, write_config
from tests.integration.test_crash import children_of, free_port

pytestmark = pytest.mark.slow

STATUS = re.compile(r"spool (\d+) incoming, (\d+) processing, (\d+) quarantined; outbox (\d+) queued")


class FakeSystemd:
    """The service manager's end of NOTIFY_SOCKET; keeps every message, parsed."""

    def __init__(self):
        self.address = f"@maild-test-{uuid.uuid4().hex}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(b"\0" + self.address[1:].encode())
        self.messages: list[dict[str, str]] = []

    def environment(self, *, watchdog_usec: int | None = None) -> dict[str, str]:
        env = dict(os.environ, NOTIFY_SOCKET=self.address)
        if watchdog_usec:
            env["WATCHDOG_USEC"] = str(watchdog_usec)
        return env

    def _read(self, timeout: float) -> dict[str, str] | None:
        self.sock.settimeout(max(timeout, 0.001))
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return None
        message = dict(line.split("=", 1) for line in data.decode().split("\n"))
        self.messages.append(message)
        return message

    def wait_for(self, predicate, timeout: float = 30.0) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            message = self._read(left)
            if message is not None and predicate(message):
                return message
        raise AssertionError(f"not heard within {timeout}s; last: {self.messages[-5:]}")

    def listen(self, seconds: float) -> list[dict[str, str]]:
        """Everything heard in the next `seconds`."""
        heard, deadline = [], time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            message = self._read(left)
            if message is not None:
                heard.append(message)
        return heard

    def close(self):
        self.sock.close()


@pytest.fixture
def systemd():
    fake = FakeSystemd()
    yield fake
    fake.close()


def ready(m):
    return m.get("READY") == "1"


def pinged(m):
    return m.get("WATCHDOG") == "1"


def configure(tmp_path, database_url, *, relay=None, lmtp_port=0):
    config = write_config(tmp_path, database_url, relay or f"maildir:{tmp_path / 'out'}")
    config.write_text(config.read_text().replace('lmtp: "127.0.0.1:0"', f'lmtp: "127.0.0.1:{lmtp_port}"'))
    return config


def serve(config, env) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "maild.cli", "-c", str(config), "serve"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def stop(daemon) -> int:
    if daemon.poll() is None:
        daemon.send_signal(signal.SIGTERM)
    try:
        return daemon.wait(30)
    finally:
        if daemon.poll() is None:
            daemon.kill()


def test_ready_comes_once_the_lmtp_port_answers_and_stopping_when_sigterm_drains(tmp_path, systemd):
    lmtp = free_port()
    config = configure(tmp_path, f"sqlite:///{tmp_path}/maild.db", lmtp_port=lmtp)
    daemon = serve(config, systemd.environment())
    try:
        systemd.wait_for(ready)
        with socket.create_connection(("127.0.0.1", lmtp), timeout=5) as client:   # no retry
            assert client.recv(512).startswith(b"220 ")
        assert [m for m in systemd.messages if ready(m)] == [{"READY": "1"}]
        daemon.send_signal(signal.SIGTERM)
        assert systemd.wait_for(lambda m: "STOPPING" in m) == {"STOPPING": "1", "STATUS": "draining"}
    finally:
        assert stop(daemon) == 0
    assert not any(pinged(m) for m in systemd.messages)          # no WatchdogSec, no pings


def test_watchdog_pings_at_half_the_interval_and_stop_while_the_processing_child_hangs(tmp_path, systemd):
    config = configure(tmp_path, f"sqlite:///{tmp_path}/maild.db")
    daemon = serve(config, systemd.environment(watchdog_usec=2_000_000))    # WatchdogSec=2s
    try:
        systemd.wait_for(ready)
        pings = sum(pinged(m) for m in systemd.listen(6.0))
        assert 3 <= pings <= 9, f"{pings} pings in 6 s, expected about 6 (every 1 s)"
        [child] = children_of(daemon.pid)
        os.kill(child, signal.SIGSTOP)                         # its event loop stops beating
        try:
            systemd.wait_for(lambda m: "processing child not responding" in m.get("STATUS", ""))
            assert not any(pinged(m) for m in systemd.listen(3.0))    # systemd would restart us
        finally:
            os.kill(child, signal.SIGCONT)
        systemd.wait_for(pinged, timeout=10)                   # it beats again: pings resume
    finally:
        assert stop(daemon) == 0
    log = daemon.stderr.read().decode()
    assert "processing child's event loop is stuck" in log and "beats again" in log


def test_status_shows_what_waits_in_the_spool_and_the_outbox(tmp_path, database_url, systemd):
    relay_port = free_port()                                   # nothing listens: the ack waits
    smtp = free_port()
    config = configure(tmp_path, database_url, relay=f"smtp://127.0.0.1:{relay_port}")
    config.write_text(config.read_text().replace('smtp: "127.0.0.1:0"', f'smtp: "127.0.0.1:{smtp}"'))
    subprocess.run([sys.executable, "-m", "maild.cli", "-c", str(config), "init"], check=True,
                   capture_output=True)
    daemon = serve(config, systemd.environment())
    try:
        systemd.wait_for(ready)
        with smtplib.SMTP("127.0.0.1", smtp, timeout=10) as client:
            client.sendmail("carol@customer.example", [SUPPORT], mail(message_id="status@customer.example"))
        status = systemd.wait_for(lambda m: (s := STATUS.search(m.get("STATUS", ""))) and s[4] == "1")
        assert STATUS.search(status["STATUS"]).groups() == ("0", "0", "0", "1")
    finally:
        assert stop(daemon) == 0


BROKEN_RULES = "version: 1\nqueues:\n  general: {adress: support@example.com}\n"


def test_a_refused_reload_is_shown_in_the_status_and_the_pings_go_on(tmp_path, systemd):
    config = configure(tmp_path, f"sqlite:///{tmp_path}/maild.db")
    good = (tmp_path / "rules.yaml").read_text()
    daemon = serve(config, systemd.environment(watchdog_usec=2_000_000))
    try:
        # the outbox counted: the processing child has migrated the database, so it runs
        # (a child starting while rules.yaml is broken would refuse to start)
        systemd.wait_for(lambda m: STATUS.search(m.get("STATUS", "")))
        (tmp_path / "rules.yaml").write_text(BROKEN_RULES)
        daemon.send_signal(signal.SIGHUP)
        reloading = systemd.wait_for(lambda m: "RELOADING" in m)
        assert int(reloading["MONOTONIC_USEC"]) > 0
        systemd.wait_for(ready)                                # reload over (refused)
        systemd.wait_for(lambda m: "last reload refused" in m.get("STATUS", ""), timeout=15)
        assert sum(pinged(m) for m in systemd.listen(3.0)) >= 2
        (tmp_path / "rules.yaml").write_text(good)
        daemon.send_signal(signal.SIGHUP)
        systemd.wait_for(lambda m: "RELOADING" in m)
        systemd.wait_for(ready)
        status = systemd.wait_for(lambda m: "STATUS" in m, timeout=15)
        assert "refused" not in status["STATUS"] and STATUS.search(status["STATUS"])
    finally:
        assert stop(daemon) == 0
    assert "rules.yaml:3:" in daemon.stderr.read().decode()
