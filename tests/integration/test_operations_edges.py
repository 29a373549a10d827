"""Operations edges an independent review found (each test failed on the defect it names; fixed):

1. docs/operations.md's restore, run as written (as root), leaves a root-owned
   spool/claim.lock on a fresh host: the service user can no longer use the spool.
2. SIGTERM while PostgreSQL accepts TCP but does not answer: the intake's STATUS counter
   connects without a timeout on the store thread and Daemon.run() blocks the event loop
   in `store.shutdown(wait=True)`: `maild serve` never exits (systemd SIGKILLs).  Now the connect gives up after CONNECT_TIMEOUT_SECONDS.
3. The drain's own timeouts add up past TimeoutStopSec=30 (now 60).
"""
from __future__ import annotations

from store.db import CONNECT_TIMEOUT_SECONDS

import asyncio
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.integration.harness import write_config

SERVICE_UID = 65534            # stands in for the `maild` system user


# --- 1. the documented restore, run as root, breaks the spool for the service user -------

def _documented(block: str, doc: Path) -> list[str]:
    text = doc.read_text()
    marker = f"<!-- tested: {block} -->\n```"
    start = text.index("\n", text.index(marker) + len(marker)) + 1
    return [line for line in text[start:text.index("```", start)].splitlines() if line.strip()]


@pytest.fixture
def fresh_top():
    """A folder the service user can traverse (pytest's tmp_path is 0700 root)."""
    top = Path(tempfile.mkdtemp(prefix="maild-review-"))
    top.chmod(0o755)
    yield top
    shutil.rmtree(top, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run the restore as the doc says")
def test_documented_restore_on_a_fresh_host_leaves_the_spool_usable_by_the_service_user(fresh_top):
    top = fresh_top
    backup, state = top / "backup", top / "state"
    # a backup: a database and a spool made by maild (as the service would have)
    source = top / "source"
    cfg = write_config(source, f"sqlite:///{source}/maild.db", "smtp://127.0.0.1:1")
    subprocess.run([sys.executable, "-m", "maild.cli", "-c", str(cfg), "init"], check=True,
                   capture_output=True, cwd=REPO)
    backup.mkdir()
    for name, src in (("maild.db", source / "maild.db"), ("spool.db", source / "spool" / "spool.db")):
        subprocess.run([sys.executable, "-c", f"import sqlite3; sqlite3.connect('{src}')"
                        f".backup(sqlite3.connect('{backup / name}'))"], check=True)
    # a fresh host: /etc/maild (config) exists, /var/lib/maild does not yet
    state.mkdir()
    (state / "maild.yaml").write_text(cfg.read_text().replace(str(source), str(state))
                                      .replace("spool: spool", f"spool: {state}/spool"))
    (state / "rules.yaml").write_text((source / "rules.yaml").read_text())
    for line in _documented("restore", REPO / "docs" / "operations.md"):
        if line.startswith("systemctl "):
            continue
        line = (line.replace("/var/lib/maild", str(state)).replace("/etc/maild", str(state))
                .replace("/var/backups/maild", str(backup))
                .replace("-o maild -g maild", f"-o {SERVICE_UID} -g {SERVICE_UID}"))
        line = re.sub(r"^maild ", f"{shlex.quote(sys.executable)} -m maild.cli ", line)
        done = subprocess.run(["sh", "-c", line], capture_output=True, text=True, cwd=REPO)
        assert done.returncode == 0, f"{line}: {done.stdout}{done.stderr}"
    # the service (User=maild) now accepts a message: `maild ingest` as that user
    foreign = [p for p in state.rglob("*") if p.stat().st_uid != SERVICE_UID
               and p.name not in ("maild.yaml", "rules.yaml")]
    error = _spool_as(SERVICE_UID, state / "spool")
    assert not foreign and error is None, (
        f"files the service user does not own after the documented restore: "
        f"{[(str(p.relative_to(state)), oct(p.stat().st_mode), p.stat().st_uid) for p in foreign]}; "
        f"the spool, used as that user: {error}")


def _spool_as(uid: int, directory: Path) -> str | None:
    """Spool one message as `uid` (what `maild serve` running as User=maild does first);
    None if it worked, else the error."""
    from maild.envelope import Envelope
    from maild.spool import Spool

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:                                   # the child: become the service user
        os.close(read)
        try:
            os.setgroups([]); os.setgid(uid); os.setuid(uid)
            spool = Spool(directory)
            spool.put(b"Subject: hi\r\nMessage-ID: <r1@customer.test>\r\n\r\nhello\r\n",
                      Envelope(mail_from="a@customer.test", rcpt_tos=("support@example.com",),
                               received_via="ingest"))
            spool.close()
            os._exit(0)
        except BaseException as exc:               # noqa: BLE001
            os.write(write, repr(exc).encode()[:2000])
            os._exit(1)
    os.close(write)
    message = os.read(read, 4096).decode()
    os.close(read)
    _, status = os.waitpid(pid, 0)
    return None if os.waitstatus_to_exitcode(status) == 0 else message or f"status {status}"


# --- 2. SIGTERM while PostgreSQL hangs: the intake never exits -------------------------------

class _StubChild:
    """No real `maild process` child: the defect is in the intake process alone."""
    def __init__(self, config_path): pass
    def start(self): pass
    def wake(self): pass
    def responsive(self, silence): return True
    def terminate(self): pass
    def forward(self, signum): pass
    async def stop(self): pass
    async def supervise(self, stop): await stop.wait()


def test_sigterm_while_postgresql_does_not_answer_still_stops_the_intake(tmp_path, monkeypatch):
    from maild import daemon as daemon_module
    from maild.config import load_settings
    from maild.runtime import Runtime

    hung_pg = socket.socket()                  # accepts TCP (the kernel's backlog), never answers
    hung_pg.bind(("127.0.0.1", 0))
    hung_pg.listen(16)
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)   # systemd's NOTIFY_SOCKET
    notify.bind(str(tmp_path / "notify"))
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify"))
    monkeypatch.setattr(daemon_module, "ProcessingChild", _StubChild)
    cfg = write_config(tmp_path / "cfg", f"postgresql://maild@127.0.0.1:{hung_pg.getsockname()[1]}/maild",
                       "smtp://127.0.0.1:1")
    daemon = daemon_module.Daemon(Runtime.open(load_settings(cfg)), install_signals=False,
                                  role=daemon_module.INTAKE)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(daemon.run(),), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not (daemon.ready.is_set() and hung_pg_has_a_client(hung_pg)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert daemon.ready.is_set()
        started = time.monotonic()
        loop.call_soon_threadsafe(daemon.stop.set)          # SIGTERM
        # nothing to drain (no session, no child): the connect gives up after its timeout
        thread.join(timeout=CONNECT_TIMEOUT_SECONDS + 5)
        assert not thread.is_alive(), (
            f"maild serve still running {time.monotonic() - started:.0f}s after SIGTERM: "
            "blocked in store.shutdown(wait=True) behind the STATUS outbox count's "
            "PostgreSQL connect")
    finally:
        hung_pg.close()                                      # RST: the connect fails, run() ends
        thread.join(timeout=30)
        notify.close()


def hung_pg_has_a_client(server: socket.socket) -> bool:
    """True once a connection waits in the listener's backlog (the status counter's)."""
    out = subprocess.run(["ss", "-Htn", "state", "established", f"dport = :{server.getsockname()[1]}"],
                         capture_output=True, text=True)
    return bool(out.stdout.strip()) if out.returncode == 0 else True


# --- 3. the drain's worst case against TimeoutStopSec --------------------------------------

def test_the_drain_budget_fits_in_timeout_stop_sec():
    from maild import child, daemon

    unit = (REPO / "deploy" / "systemd" / "maild.service").read_text()
    timeout_stop = int(re.search(r"^TimeoutStopSec=(\d+)", unit, re.M)[1])
    # daemon._close_listeners: sessions_closed (<= 5 s), then wait_closed (<= 5 s more when a
    # session outlived the first), then the IMAP tasks (<= 20 s); only then does
    # _run_intake call child.stop(), which waits up to STOP_SECONDS more.
    worst = (2 * daemon.LISTENER_DRAIN_SECONDS + daemon.IMAP_DRAIN_SECONDS + child.STOP_SECONDS)
    assert worst < timeout_stop, f"worst-case drain {worst:.0f}s > TimeoutStopSec={timeout_stop}"
