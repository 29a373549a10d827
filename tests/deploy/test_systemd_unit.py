"""deploy/systemd/: the unit, sysusers and tmpfiles files, checked by systemd's own tools,
and maild run under the unit's two riskiest restrictions.

No systemd needs to run: Debian's `systemd` package brings systemd-analyze,
systemd-sysusers and systemd-tmpfiles (scripts/test-services installs it, and strace).
Where a tool is missing the test is skipped with the reason; under CI (CI=true) it fails.

- `systemd-analyze security --offline=yes` rates the unit 2.0 or lower ("OK");
- `systemd-analyze verify` has nothing to say about it (in a scratch root holding the
  distribution's units and stand-ins for the unit's programs);
- `systemd-sysusers` and `systemd-tmpfiles --create` accept the files, in a scratch root;
- every system call a whole `maild serve` story makes (check, start, mail in, mail out,
  reload, drain) is in the unit's SystemCallFilter, and every socket it opens is of a
  family in RestrictAddressFamilies (strace);
- the same story runs with W^X enforced the way MemoryDenyWriteExecute= does it (the
  kernel's PR_SET_MDWE, Linux 6.3+): CPython, libffi, libpq, lxml and nh3 need no memory
  that is both writable and executable.
"""
from __future__ import annotations

import ctypes
import os
import re
import shutil
import signal
import smtplib
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.integration.harness import SUPPORT, mail, write_config
from tests.integration.test_crash import children_of, free_port, wait_listening

UNIT = REPO / "deploy" / "systemd" / "maild.service"
SYSUSERS = REPO / "deploy" / "systemd" / "maild.sysusers"
TMPFILES = REPO / "deploy" / "systemd" / "maild.tmpfiles"
MAX_EXPOSURE = 2.0


def unavailable(reason: str):
    if os.environ.get("CI"):
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        unavailable(f"{name} not found; scripts/test-services installs Debian's systemd and strace")
    return path


def run(*argv, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, **kwargs)


def unit_values(key: str) -> list[str]:
    """Every value of `key=` in the unit, in order."""
    return [line.split("=", 1)[1].strip() for line in UNIT.read_text().splitlines()
            if line.startswith(key + "=")]


# --- systemd's own tools ----------------------------------------------------------------

def test_systemd_analyze_security_rates_the_unit_ok():
    done = run(tool("systemd-analyze"), "security", "--no-pager", "--offline=yes", str(UNIT))
    found = re.search(r"Overall exposure level for maild\.service: (\d+\.\d+) (\w+)", done.stdout)
    assert found, done.stdout + done.stderr
    exposed = "\n".join(line for line in done.stdout.splitlines() if line.startswith("✗"))
    assert float(found[1]) <= MAX_EXPOSURE and found[2] == "OK", f"{found[0]}\n{exposed}"


def scratch_root(tmp_path: Path, unit_text: str) -> Path:
    """A root with the distribution's units, our unit, and an executable stand-in at the
    path of every program the unit runs (verify checks that they exist)."""
    root = tmp_path / "root"
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    (root / "etc/systemd/system").mkdir(parents=True)
    (root / "etc/systemd/system/maild.service").write_text(unit_text)
    for key in ("ExecStartPre", "ExecStart", "ExecReload", "ExecStop", "ExecStartPost"):
        for command in unit_values(key):
            program = root / command.lstrip("-@+!:").split()[0].lstrip("/")
            program.parent.mkdir(parents=True, exist_ok=True)
            program.write_text("#!/bin/sh\n")
            program.chmod(0o755)
    return root


def test_systemd_analyze_verify_has_nothing_to_say_about_the_unit(tmp_path):
    analyze = tool("systemd-analyze")
    if not Path("/usr/lib/systemd/system/multi-user.target").exists():
        unavailable("no systemd units in /usr/lib/systemd/system (Debian's systemd package)")
    root = scratch_root(tmp_path / "ours", UNIT.read_text())
    done = run(analyze, "verify", "--man=no", f"--root={root}", "maild.service")
    assert (done.returncode, done.stdout + done.stderr) == (0, "")
    # ... and it would: the same check of a unit with a misspelt setting
    typo = scratch_root(tmp_path / "typo", UNIT.read_text().replace("ProtectClock=", "ProtectClok="))
    done = run(analyze, "verify", "--man=no", f"--root={typo}", "maild.service")
    assert "Unknown key 'ProtectClok'" in done.stderr


def test_sysusers_creates_the_maild_user_and_tmpfiles_its_directories(tmp_path):
    sysusers, tmpfiles = tool("systemd-sysusers"), tool("systemd-tmpfiles")
    if os.geteuid() != 0:
        unavailable("systemd-tmpfiles --create must run as root to give the directories to maild")
    root = tmp_path / "root"
    for source, folder in ((SYSUSERS, "usr/lib/sysusers.d"), (TMPFILES, "usr/lib/tmpfiles.d")):
        (root / folder).mkdir(parents=True)
        shutil.copy(source, root / folder / "maild.conf")
    (root / "etc").mkdir()
    done = run(sysusers, f"--root={root}")
    assert done.returncode == 0, done.stderr
    [entry] = [line.split(":") for line in (root / "etc/passwd").read_text().splitlines()
               if line.startswith("maild:")]
    uid, gid, home, shell = int(entry[2]), int(entry[3]), entry[5], entry[6]
    assert (home, shell) == ("/var/lib/maild", "/usr/sbin/nologin") and uid < 1000  # a system user
    done = run(tmpfiles, "--create", f"--root={root}")
    assert (done.returncode, done.stderr) == (0, "")

    def owner_mode(path):
        st = (root / path).stat()
        return st.st_uid, st.st_gid, oct(st.st_mode & 0o7777)
    assert owner_mode("var/lib/maild") == (uid, gid, "0o750")
    assert owner_mode("var/lib/maild/spool") == (uid, gid, "0o750")
    assert owner_mode("etc/maild") == (0, gid, "0o750")     # maild reads it; the DB password stays private


# --- maild under the unit's restrictions --------------------------------------------------

PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1


def deny_write_execute() -> None:
    """preexec_fn: what MemoryDenyWriteExecute=yes enforces, from the kernel (inherited)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_MDWE)")


RULES = """\
version: 1
queues:
  general: {address: support@example.com}
  billing: {address: billing@example.com}
rules:
  - name: Invoices
    when: {subject: {matches: '(?i)\\binvoice\\b'}}
    then: {queue: billing}
"""

HTML_MAIL = (b"From: Dan <c1@customer.example>\r\nTo: support@example.com\r\nSubject: Invoice 7\r\n"
             b"Message-ID: <story1@customer.example>\r\nMIME-Version: 1.0\r\n"
             b"Content-Type: text/html; charset=utf-8\r\n\r\n"
             b"<html><body><p>Where is <b>invoice 7</b>?</p><script>x()</script></body></html>\r\n")


def maild_story(tmp_path, database_url, *, wrap=(), preexec=None) -> str:
    """`maild check`, then `maild serve` (as systemd starts it: NOTIFY_SOCKET, a watchdog),
    a text and an HTML mail in (RE2 rules, HTML sanitised), their acknowledgements out, a
    reload, a stop; the log."""
    smtp = free_port()
    config = write_config(tmp_path, database_url, f"maildir:{tmp_path / 'out'}", rules=RULES)
    config.write_text(config.read_text().replace('smtp: "127.0.0.1:0"', f'smtp: "127.0.0.1:{smtp}"'))
    maild = [*wrap, sys.executable, "-m", "maild.cli", "-c", str(config)]
    done = subprocess.run([*maild, "check"], preexec_fn=preexec, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    log_path = tmp_path / "serve.log"
    env = dict(os.environ, NOTIFY_SOCKET=f"@maild-test-{os.getpid()}-{time.monotonic_ns()}",
               WATCHDOG_USEC="2000000")
    with open(log_path, "wb") as log_file:
        daemon = subprocess.Popen([*maild, "serve"], env=env, preexec_fn=preexec,
                                  stdout=subprocess.DEVNULL, stderr=log_file)
    try:
        wait_listening(smtp, daemon, timeout=60)
        pid = children_of(daemon.pid)[0] if wrap else daemon.pid     # strace runs maild
        with smtplib.SMTP("127.0.0.1", smtp, timeout=30) as client:
            client.sendmail("c0@customer.example", [SUPPORT],
                            mail(message_id="story0@customer.example", sender="c0@customer.example"))
            client.sendmail("c1@customer.example", [SUPPORT], HTML_MAIL)
        outbox = tmp_path / "out" / "new"
        deadline = time.monotonic() + 60
        while not (outbox.is_dir() and len(list(outbox.iterdir())) == 2) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert outbox.is_dir() and len(list(outbox.iterdir())) == 2, log_path.read_text()
        os.kill(pid, signal.SIGHUP)
        while "reloaded" not in log_path.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        os.kill(pid, signal.SIGTERM)
        assert daemon.wait(60) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
    log = log_path.read_text()
    assert "rules and templates reloaded" in log and log.count("maild stopped") == 2
    assert "Traceback" not in log and "ERROR" not in log and "quarantined" not in log, log
    assert len(re.findall(r"ticket=#\d+ created", log)) == 2
    return log


def syscall_set(expression: str, analyze: str) -> set[str]:
    """The system calls of `@group` or a name, groups expanded (systemd-analyze's lists)."""
    if not expression.startswith("@"):
        return {expression}
    listing = run(analyze, "syscall-filter", "--no-pager", expression).stdout.splitlines()[1:]
    names: set[str] = set()
    for line in (entry.strip() for entry in listing):
        if line and not line.startswith("#"):
            names |= syscall_set(line, analyze)
    return names


def unit_syscalls(analyze: str) -> set[str]:
    """What the unit's SystemCallFilter= lines allow, read in order as systemd does."""
    allowed: set[str] = set()
    for value in unit_values("SystemCallFilter"):
        deny = value.startswith("~")
        names = set().union(*(syscall_set(e, analyze) for e in value.lstrip("~").split()))
        allowed = allowed - names if deny else allowed | names
    return allowed


# SQLite gives a new -wal/-shm file to the database file's owner (fchown) only when it
# runs as root; the service runs as maild, so it never calls it there.
AS_ROOT_ONLY = {"fchown"}


def test_every_system_call_and_socket_maild_uses_is_allowed_by_the_unit(tmp_path, database_url):
    strace, analyze = tool("strace"), tool("systemd-analyze")
    trace = tmp_path / "trace"
    maild_story(tmp_path, database_url, wrap=(strace, "-f", "-qq", "-o", str(trace)))
    text = trace.read_text()
    used = set(re.findall(r"^\d+\s+([a-z_][a-z0-9_]*)\(", text, re.MULTILINE))
    assert {"openat", "sendto", "fdatasync", "accept4"} <= used          # the trace is real
    refused = used - unit_syscalls(analyze) - (AS_ROOT_ONLY if os.geteuid() == 0 else set())
    assert not refused, f"system calls the unit's SystemCallFilter refuses: {sorted(refused)}"
    families = set(re.findall(r"\bsocket(?:pair)?\((AF_[A-Z0-9]+)", text))
    assert families and families <= set(unit_values("RestrictAddressFamilies")[0].split()), families


def test_maild_needs_no_writable_executable_memory(tmp_path, database_url):
    probe = ("import mmap\ntry:\n mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)\n"
             " print('allowed')\nexcept PermissionError:\n print('refused')\n")
    try:
        done = subprocess.run([sys.executable, "-c", probe], preexec_fn=deny_write_execute,
                              capture_output=True, text=True)
    except subprocess.SubprocessError as exc:         # the kernel has no PR_SET_MDWE (< 6.3)
        pytest.skip(f"W^X can't be enforced here without systemd: {exc}")
    assert done.stdout.strip() == "refused"                # enforced: the probe proves it
    assert "MemoryDenyWriteExecute=yes" in UNIT.read_text()
    maild_story(tmp_path, database_url, preexec=deny_write_execute)
