r"""A private Postfix for tests: a real MTA on a free loopback port, in a temp folder.

    server = Postfix()                        # a temp folder; see also Postfix.unavailable()
    server.start()                            # postfix -c <folder>/etc start; waits for "220"
    server.route({"sink.test": f"smtp:[127.0.0.1]:{sink.port}",
                  "example.com": f"lmtp:inet:127.0.0.1:{maild_lmtp_port}"})
    queue_id = server.submit(raw, "carol@sink.test", ["support@example.com"])
    server.wait_queue_empty()                 # postqueue -c <folder>/etc -j says nothing is queued
    server.wait_for_delivery(to="support@example.com", status="sent")   # -> Delivery, from the log
    server.deliveries()                       # every to=<...> status=... line of the log so far
    server.close()                            # postfix stop, then remove the folder

In the test suite use the fixtures in tests/conftest.py: `postfix_server` (one instance for
the session, with a `Sink` routed as `sink.test`) and `postfix_sink` (that sink, emptied for
the test).

The instance
    config_directory <folder>/etc (main.cf, master.cf, transport), queue_directory
    <folder>/queue, data_directory <folder>/data, the log in <folder>/maillog.  SMTP on
    127.0.0.1 at a port picked free at the first start() and kept across restarts; a
    closed relay except for loopback clients (mynetworks = 127.0.0.0/8).  Nothing is
    delivered locally (mydestination is empty): a recipient goes where `route()` says, and
    one without a route is refused at RCPT TO with 550 5.1.2 (default_transport = error:
    smtpd knows the error transport there and then, so nothing leaves the machine and no
    DSN is made).  myhostname is mx.lab.test, so DSNs come from
    "Mail Delivery System <MAILER-DAEMON@mx.lab.test>", envelope sender <>.

    Tuned for tests, so that a DSN comes at once instead of days later:
    maximal_queue_lifetime = 0 and bounce_queue_lifetime = 0 ("try once": a 4xx answer, or
    a next hop that is down, returns the mail to its sender at the first failure, with the
    4.x.x status of that failure), delay_warning_time = 0 (no "delayed" notices),
    queue_run_delay and minimal/maximal_backoff_time 1s, in_flow_delay and
    smtpd_error_sleep_time 0, no connection cache (a cached connection to the maild of an
    earlier test would be tried first), no DNS (next hops are [ip]:port), IPv4 only,
    smtputf8_enable = yes, compatibility_level = 3.6.

    Postfix(retrying=True) keeps deferred mail instead (maximal_queue_lifetime and
    bounce_queue_lifetime 1h; with the 1s backoff and queue_run_delay it is tried again
    every second or so): for tests where maild goes away and comes back, and Postfix must
    keep the mail meanwhile.  Postfix(settings={"name": "value"}) adds or replaces main.cf
    parameters (e.g. the ones docs/postfix.md recommends), after everything above.

Routing
    route(mapping) adds or changes entries of the transport_maps table ({address or
    domain: next hop}, e.g. "lmtp:inet:127.0.0.1:2424", "smtp:[127.0.0.1]:2525",
    "error:5.1.1 gone"; None removes the entry); `routes` is the whole table.  It writes
    <folder>/etc/transport, runs postmap and, when the instance is running, `postfix
    reload`, and returns once every Postfix process started before the reload has exited,
    so the next mail is routed by the new table.  (A changed hash table alone is noticed
    late: trivial-rewrite, whose clients keep their connections open, looks for changes
    only every 10 seconds or so.  After a reload the master closes the old processes'
    status pipes and they exit at their next event-loop turn.)  A route() takes ~0.1 s
    here; 20 route changes in a row, each followed at once by a mail, all went the new
    way.  An address key wins over its domain's key (transport(5) lookup order).
    write_map(name, text) writes and postmaps another table (<folder>/etc/<name>) and
    returns "hash:<path>", for a parameter in `settings` (relay_recipient_maps, say);
    Postfix(services=[...]) adds master.cf lines (a pipe transport, say).

Submitting and watching
    submit(raw, sender, rcpts) speaks SMTP (stdlib smtplib) to the instance and returns the
    queue id from the "250 2.0.0 Ok: queued as ..." answer; SubmitRefused if the message
    or every recipient is refused.  queue() is `postqueue -j` (one dict per queued
    message), wait_queue_empty() waits until it is empty.  maillog() is the log since
    the last mark() (the `postfix_sink` fixture marks it for each test); deliveries() parses
    its delivery lines (`<service>[pid]: <queue id>: to=<...>, relay=..., dsn=5.1.1,
    status=bounced (...)`) into Delivery values; wait_for_delivery() waits for the first
    that matches.  The log is Postfix's own file (maillog_file, written
    by the postlogd service since Postfix 3.4), not syslog, so a test can read it.

Sink
    Sink() is an aiosmtpd SMTP server in a thread of its own (so it outlives each test's
    event loop) that records every message as a SinkMail (envelope sender, recipients, raw
    bytes).  Like the mail lab's sink it refuses recipients whose local part starts with
    `nosuchuser` (550 5.1.1 ... User unknown) or `tempfail` (452 4.2.2 Mailbox full): with
    the queue lifetime 0 above, Postfix turns either into a real DSN at once.

Gotchas learned here
    - Without a tty `postfix check` and `postfix start` print nothing to stderr: their
      complaints go to the log (here <folder>/maillog), so a failed start is reported with
      the log's tail.  `postfix check` also creates the queue folders, owned by postfix.
    - maillog_file must start with one of maillog_file_prefixes (default /var,
      /dev/stdout): the folder is added; master.cf needs the `postlog unix-dgram` service.
    - As root the daemons run as `postfix` (mail_owner): the data_directory must belong to
      it and the folders above the queue must be traversable (the temp folder is 0755).
      Every service runs with chroot = n (a chroot would need copies of /etc/services,
      resolv.conf and the libraries in the queue folder).
    - `postfix stop` signals the master by the pid file in <queue>/pid/master.pid and waits
      up to 5 s for it; stop() then waits for the master's own pid (never by name).
    - There is no /etc/postfix/main.cf on the test machines ("No configuration" install),
      so every command gets `-c <folder>/etc`.  postqueue accepts that as root only: as
      another user it reads /etc/postfix/main.cf to check the folder against
      alternate_config_directories, and fails.
    - A configuration file changed within the last second makes every Postfix command
      reread it until it is older (0.3 s at a time): a freshly written main.cf cost ~2 s
      per command.  main.cf and master.cf are therefore dated 10 s back.
    - smtpd refuses a recipient routed to the error transport at RCPT TO already, so a
      test of "unroutable" sees SubmitRefused, not a DSN.
    - Mail from loopback counts as local (local_header_rewrite_clients), so Postfix adds
      Date: and Message-ID: where they are missing, besides its Received: line on top.
    - The log line of a delivery is written by postlogd, a moment after the delivery
      agent reported to qmgr: the queue may be empty before the line is in the file, so
      tests use wait_for_delivery() rather than deliveries() right after
      wait_queue_empty() (and count deliveries() only once the last line is there).
    - A 4xx with maximal_queue_lifetime = 0 is logged `status=deferred` for the recipient,
      then `status=expired, returned to sender` for the message; the DSN says
      `Action: failed` with the 4.x.x status and the server's text as Diagnostic-Code.
    - A DSN carries the whole returned message (message/rfc822) and Auto-Submitted:
      auto-replied; its envelope sender is <>.  A Sieve vacation reply (tests/dovecot.py)
      goes to the envelope sender too, so for maild both arrive at the VERP address
      support+bounces-<outbox id>@...; only the report (multipart/report) tells them apart.
"""
from __future__ import annotations

import atexit
import contextlib
import email
import email.policy
import json
import os
import pwd
import re
import shutil
import smtplib
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Self

POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"
POSTMAP = shutil.which("postmap") or "/usr/sbin/postmap"
POSTQUEUE = shutil.which("postqueue") or "/usr/sbin/postqueue"
HOST = "127.0.0.1"
MAIL_OWNER = "postfix"        # what the daemons run as when we are root
MYHOSTNAME = "mx.lab.test"
START_TIMEOUT = 15.0
STOP_TIMEOUT = 15.0
RELOAD_TIMEOUT = 15.0
WAIT_TIMEOUT = 30.0
SMTP_TIMEOUT = 30.0
POLL = 0.05
# Postfix(retrying=True): deferred mail is kept and tried again every second for an hour
# instead of being returned at the first failure (maild restarting, not a DSN test).
RETRYING = {"maximal_queue_lifetime": "1h", "bounce_queue_lifetime": "1h"}

QUEUED_AS = re.compile(r"queued as ([0-9A-Za-z]+)")
DELIVERY = re.compile(
    r"postfix/(?P<service>[\w/-]+)\[\d+\]: (?P<queue_id>[0-9A-Za-z]+): to=<(?P<to>[^>]*)>,"
    r"(?: orig_to=<[^>]*>,)? relay=(?P<relay>[^,]*),.*? dsn=(?P<dsn>[\d.]+),"
    r" status=(?P<status>\w+) \((?P<text>.*)\)$")

# The refusals of the Sink (mail lab sink.py): Postfix turns them into DSNs.
SINK_USER_UNKNOWN = "550 5.1.1 <{addr}>: Recipient address rejected: User unknown"
SINK_MAILBOX_FULL = "452 4.2.2 <{addr}>: Mailbox full, try again later"
SINK_OK_RCPT = "250 2.1.5 Ok"
SINK_OK = "250 2.0.0 Ok: queued"


class PostfixError(RuntimeError):
    """The instance could not be started, stopped or reloaded; the message carries its log."""


class SubmitRefused(PostfixError):
    """Postfix refused the submitted message (or all its recipients)."""


def _running_as_root() -> bool:
    return os.geteuid() == 0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _greets(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=2.0) as sock:
            greeted = sock.recv(4).startswith(b"220")
            with contextlib.suppress(OSError):
                sock.sendall(b"QUIT\r\n")
                sock.recv(1024)
            return greeted
    except OSError:
        return False


def _write_settled(path: Path, text: str) -> None:
    """Write a configuration file dated a few seconds back: Postfix rereads a file changed
    within the last second until it is older (0.3 s at a time; up to 2 s per command)."""
    path.write_text(text)
    past = time.time() - 10
    os.utime(path, (past, past))


def _alive(pid: int) -> bool:
    try:
        state = Path("/proc", str(pid), "stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _children(pid: int) -> set[int]:
    """The live processes whose parent is `pid` (from /proc)."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path("/proc", entry, "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.add(int(entry))
    return found


def wait_until(predicate: Callable[[], object], timeout: float, what: str):
    """Poll `predicate` until it returns something true; TimeoutError names `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(POLL)


@dataclass(frozen=True)
class Delivery:
    """One delivery line of Postfix's log: a recipient's outcome (sent, bounced, deferred...)."""

    service: str        # e.g. "smtp", "lmtp", "error"
    queue_id: str
    to: str
    relay: str          # e.g. "127.0.0.1[127.0.0.1]:2424", "none"
    dsn: str            # e.g. "2.0.0", "5.1.1"
    status: str         # sent | bounced | deferred | expired
    text: str           # the reason in parentheses, e.g. "250 2.0.0 Ok: queued as 7"


@dataclass(frozen=True)
class SinkMail:
    """A message the Sink accepted."""

    mail_from: str              # '' for the null sender <> (DSNs)
    rcpt_tos: tuple[str, ...]
    raw: bytes

    @property
    def message(self) -> email.message.EmailMessage:
        return email.message_from_bytes(self.raw, policy=email.policy.default)


class _SinkHandler:
    def __init__(self, sink: Sink) -> None:
        self.sink = sink

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.partition("@")[0].lower()
        if local.startswith("nosuchuser"):
            return SINK_USER_UNKNOWN.format(addr=address)
        if local.startswith("tempfail"):
            return SINK_MAILBOX_FULL.format(addr=address)
        envelope.rcpt_tos.append(address)
        return SINK_OK_RCPT

    async def handle_DATA(self, server, session, envelope):
        mail_from = "" if envelope.mail_from in ("<>", "") else envelope.mail_from
        self.sink._record(SinkMail(mail_from, tuple(envelope.rcpt_tos),
                                   envelope.original_content or envelope.content))
        return SINK_OK


class Sink:
    """A recording SMTP sink on a free loopback port, in a thread (see the module docstring)."""

    def __init__(self) -> None:
        self.port: int | None = None
        self._received: list[SinkMail] = []
        self._lock = threading.Lock()
        self._controller = None

    def start(self) -> None:
        from aiosmtpd.controller import Controller

        self.port = _free_port()
        self._controller = Controller(_SinkHandler(self), hostname=HOST, port=self.port,
                                      server_hostname="sink.lab.test", decode_data=False)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def nexthop(self) -> str:
        """The transport_maps value that routes a domain here."""
        return f"smtp:[{HOST}]:{self.port}"

    def _record(self, mail: SinkMail) -> None:
        with self._lock:
            self._received.append(mail)

    @property
    def received(self) -> list[SinkMail]:
        with self._lock:
            return list(self._received)

    def to(self, address: str) -> list[SinkMail]:
        """What the sink accepted for `address` (case-insensitive), in order."""
        address = address.lower()
        return [m for m in self.received if address in (r.lower() for r in m.rcpt_tos)]

    def clear(self) -> None:
        with self._lock:
            self._received.clear()


class Postfix:
    """One private Postfix instance in a temp folder (see the module docstring)."""

    def __init__(self, *, retrying: bool = False, settings: Mapping[str, str] | None = None,
                 services: Iterable[str] = ()) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="postfix-"))
        self.host = HOST
        self.port: int | None = None
        self.hostname = MYHOSTNAME
        self.routes: dict[str, str] = {}
        self.retrying = retrying
        self.settings = dict(settings or {})
        self.services = list(services)
        self._maps: set[Path] = set()
        for key, value in self.settings.items():
            if not re.fullmatch(r"[a-z0-9_]+", key) or "\n" in value:
                raise ValueError(f"bad main.cf setting {key!r} = {value!r}")
        self._log_start = 0
        self._closed = False
        os.chmod(self.directory, 0o755)      # the postfix user must reach queue and data
        for sub in ("etc", "queue", "data"):
            (self.directory / sub).mkdir()
        atexit.register(self._at_exit)

    # -- availability ----------------------------------------------------------------------

    @staticmethod
    def unavailable() -> str | None:
        """Why Postfix cannot run here, or None if it can."""
        for program in (POSTFIX, POSTMAP, POSTQUEUE):
            if not os.access(program, os.X_OK):
                return (f"Postfix is not installed ({program}); scripts/test-services installs "
                        "it when run as root")
        if not _running_as_root():
            return "a private Postfix instance needs root (its daemons run as the postfix user)"
        try:
            pwd.getpwnam(MAIL_OWNER)
        except KeyError:
            return f"no {MAIL_OWNER} user; the postfix package creates it"
        return None

    # -- paths -----------------------------------------------------------------------------

    @property
    def config_directory(self) -> Path:
        return self.directory / "etc"

    @property
    def log_path(self) -> Path:
        return self.directory / "maillog"

    @property
    def address(self) -> str:
        """host:port of the SMTP listener."""
        return f"{self.host}:{self.port}"

    @property
    def relay_url(self) -> str:
        """maild's `outbound.relay` for this instance."""
        return f"smtp://{self.host}:{self.port}"

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        pid = self._master_pid()
        return pid is not None and _alive(pid)

    def start(self) -> None:
        """Start the master (same port as before, if any); returns once SMTP greets."""
        if self._closed:
            raise PostfixError("this instance was closed")
        if self.running:
            return
        if reason := self.unavailable():
            raise PostfixError(reason)
        if self.port is None:
            self.port = _free_port()
        owner = pwd.getpwnam(MAIL_OWNER)
        os.chown(self.directory / "data", owner.pw_uid, owner.pw_gid)
        _write_settled(self.config_directory / "main.cf", self._main_cf())
        _write_settled(self.config_directory / "master.cf", self._master_cf())
        self._write_transport()
        for table in sorted(self._maps):
            self._run([POSTMAP, "-c", str(self.config_directory), f"hash:{table}"])
        self._postfix("check")
        self._postfix("start")
        deadline = time.monotonic() + START_TIMEOUT
        while not _greets(self.port):
            if time.monotonic() > deadline:
                raise PostfixError(f"Postfix did not start on {self.address}:\n{self.log_tail()}")
            time.sleep(POLL)

    def stop(self) -> None:
        """`postfix stop`; returns once the master (by its pid file) has exited."""
        pid = self._master_pid()
        if pid is None or not _alive(pid):
            return
        self._postfix("stop")
        try:
            wait_until(lambda: not _alive(pid), STOP_TIMEOUT, f"Postfix master {pid} to exit")
        except TimeoutError as exc:
            raise PostfixError(f"{exc}:\n{self.log_tail()}") from None

    def close(self) -> None:
        """Stop the instance and remove its folder."""
        if self._closed:
            return
        try:
            self.stop()
        finally:
            self._closed = True
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- routing ---------------------------------------------------------------------------

    def route(self, routes: Mapping[str, str | None]) -> None:
        """Add or change entries of the transport table ({address or domain: next hop}, None
        to remove one); in effect when this returns."""
        for key, nexthop in routes.items():
            if (not key or any(c.isspace() for c in key)
                    or nexthop is not None and (not nexthop.strip() or "\n" in nexthop)):
                raise ValueError(f"bad route {key!r}: {nexthop!r}")
        for key, nexthop in routes.items():
            if nexthop is None:
                self.routes.pop(key.lower(), None)
            else:
                self.routes[key.lower()] = nexthop
        if self.running:               # else start() writes it
            self._write_transport()
            self._reload()

    def write_map(self, name: str, text: str) -> str:
        """Write a lookup table <folder>/etc/<name> and postmap it; returns "hash:<path>",
        the value for a main.cf parameter (e.g. relay_recipient_maps) in `settings`."""
        if not re.fullmatch(r"[\w.-]+", name) or name in ("main.cf", "master.cf", "transport"):
            raise ValueError(f"bad map name {name!r}")
        table = self.config_directory / name
        table.write_text(text)
        self._maps.add(table)
        if (self.config_directory / "main.cf").exists():    # else start() postmaps it
            self._run([POSTMAP, "-c", str(self.config_directory), f"hash:{table}"])
        return f"hash:{table}"

    def _write_transport(self) -> None:
        table = self.config_directory / "transport"
        table.write_text("".join(f"{key} {nexthop}\n" for key, nexthop in self.routes.items()))
        self._run([POSTMAP, "-c", str(self.config_directory), f"hash:{table}"])

    def _reload(self) -> None:
        master = self._master_pid()
        before = _children(master)
        self._postfix("reload")
        try:
            wait_until(lambda: not (before & _children(master)), RELOAD_TIMEOUT,
                       "the processes started before the reload to exit")
        except TimeoutError as exc:
            raise PostfixError(f"{exc}:\n{self.log_tail()}") from None

    # -- mail ------------------------------------------------------------------------------

    def submit(self, raw: bytes, sender: str, rcpts: Iterable[str], *,
               mail_options: Iterable[str] = ()) -> str:
        """Send `raw` over SMTP to the instance; returns Postfix's queue id."""
        rcpts = list(rcpts)
        with smtplib.SMTP(self.host, self.port, local_hostname="client.lab.test",
                          timeout=SMTP_TIMEOUT) as smtp:
            smtp.ehlo()
            code, text = smtp.mail(sender, list(mail_options))
            if code != 250:
                raise SubmitRefused(f"MAIL FROM:<{sender}>: {code} {text.decode(errors='replace')}")
            accepted = 0
            for rcpt in rcpts:
                code, text = smtp.rcpt(rcpt)
                if code in (250, 251):
                    accepted += 1
            if not accepted:
                raise SubmitRefused(f"every recipient refused, the last: {code} "
                                    f"{text.decode(errors='replace')}")
            code, text = smtp.data(raw)
            if code != 250:
                raise SubmitRefused(f"DATA: {code} {text.decode(errors='replace')}")
        return QUEUED_AS.search(text.decode()).group(1)

    def queue(self) -> list[dict]:
        """The queued messages, one dict per message (`postqueue -j`)."""
        out = self._run([POSTQUEUE, "-c", str(self.config_directory), "-j"]).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def flush(self) -> None:
        """Try every deferred message now (`postqueue -f`), as an admin does after a fix."""
        self._run([POSTQUEUE, "-c", str(self.config_directory), "-f"])

    def wait_queue_empty(self, timeout: float = WAIT_TIMEOUT) -> None:
        try:
            wait_until(lambda: not self.queue(), timeout, "Postfix's queue to be empty")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}; still queued: {self.queue()}") from None

    # -- the log ---------------------------------------------------------------------------

    def mark(self) -> None:
        """From now on maillog(), deliveries() and wait_for_delivery() see only what is
        logged after this call (a shared instance's earlier tests are left out)."""
        with contextlib.suppress(FileNotFoundError):
            self._log_start = self.log_path.stat().st_size

    def maillog(self) -> str:
        """The log since the last mark() (all of it, when never marked)."""
        try:
            with open(self.log_path, "rb") as log:
                log.seek(self._log_start)
                return log.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def deliveries(self, *, to: str | None = None, status: str | None = None) -> list[Delivery]:
        """The delivery lines of the log so far, optionally only those for `to`/`status`."""
        found = []
        for line in self.maillog().splitlines():
            if (match := DELIVERY.search(line)) is None:
                continue
            delivery = Delivery(**match.groupdict())
            if to is not None and delivery.to.lower() != to.lower():
                continue
            if status is not None and delivery.status != status:
                continue
            found.append(delivery)
        return found

    def wait_for_delivery(self, *, to: str, status: str | None = None,
                          timeout: float = WAIT_TIMEOUT) -> Delivery:
        """The first delivery line for `to` (with `status`), waiting for it to be logged."""
        try:
            return wait_until(lambda: next(iter(self.deliveries(to=to, status=status)), None),
                              timeout, f"a delivery to <{to}> with status {status}")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}; log:\n{self.log_tail()}") from None

    # -- internals -------------------------------------------------------------------------

    def _postfix(self, command: str) -> None:
        self._run([POSTFIX, "-c", str(self.config_directory), command])

    def _run(self, argv: list[str]) -> subprocess.CompletedProcess:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=STOP_TIMEOUT + 5)
        if done.returncode != 0:
            raise PostfixError(f"{' '.join(argv)} exited {done.returncode}: "
                               f"{done.stdout}{done.stderr}\n{self.log_tail()}")
        return done

    def _master_pid(self) -> int | None:
        try:
            return int((self.directory / "queue" / "pid" / "master.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def _main_cf(self) -> str:
        """main.cf: the test defaults, then `retrying`, then `settings`; a parameter that
        comes later replaces the earlier line (one line per parameter: no warnings)."""
        lines: dict[str, str] = {}
        for line in self._base_main_cf().splitlines():
            key, sep, _ = line.partition(" = ")
            lines[key if sep else line] = line
        if self.retrying:
            lines.update((key, f"{key} = {value}") for key, value in RETRYING.items())
        lines.update((key, f"{key} = {value}") for key, value in self.settings.items())
        return "\n".join(lines.values()) + "\n"

    def _base_main_cf(self) -> str:
        d = self.directory
        return f"""\
# Written by tests/postfix.py for one test instance; regenerated at every start.
compatibility_level = 3.6
config_directory = {d}/etc
queue_directory = {d}/queue
data_directory = {d}/data
maillog_file = {d}/maillog
maillog_file_prefixes = {d}
myhostname = {self.hostname}
mydomain = lab.test
myorigin = $myhostname
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
inet_interfaces = {self.host}
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
relay_domains =
transport_maps = hash:{d}/etc/transport
default_transport = error:5.1.2 no route to this domain in the test instance
relay_transport = $default_transport
smtputf8_enable = yes
smtp_dns_support_level = disabled
smtp_host_lookup = native
lmtp_host_lookup = native
smtp_connection_cache_on_demand = no
lmtp_connection_cache_on_demand = no
maximal_queue_lifetime = 0
bounce_queue_lifetime = 0
delay_warning_time = 0
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 1s
in_flow_delay = 0
smtpd_error_sleep_time = 0
biff = no
"""

    def _master_cf(self) -> str:
        services = [
            f"{self.host}:{self.port} inet n - n - - smtpd",
            "pickup unix n - n 60 1 pickup", "cleanup unix n - n - 0 cleanup",
            "qmgr unix n - n 300 1 qmgr", "tlsmgr unix - - n 1000? 1 tlsmgr",
            "rewrite unix - - n - - trivial-rewrite", "bounce unix - - n - 0 bounce",
            "defer unix - - n - 0 bounce", "trace unix - - n - 0 bounce",
            "verify unix - - n - 1 verify", "flush unix n - n 1000? 0 flush",
            "proxymap unix - - n - - proxymap", "smtp unix - - n - - smtp",
            "relay unix - - n - - smtp", "showq unix n - n - - showq",
            "error unix - - n - - error", "retry unix - - n - - error",
            "discard unix - - n - - discard", "lmtp unix - - n - - lmtp",
            "anvil unix - - n - 1 anvil", "scache unix - - n - 1 scache",
            "postlog unix-dgram n - n - 1 postlogd",
            *self.services,
        ]
        return ("# Written by tests/postfix.py for one test instance; every service chroot = n.\n"
                + "\n".join(services) + "\n")

    def _at_exit(self) -> None:
        with contextlib.suppress(Exception):
            self.close()
