r"""A private Dovecot IMAP server for tests: real IMAP on a free loopback port, in a temp folder.

    server = Dovecot()                       # a temp folder; see also Dovecot.unavailable()
    server.start()                           # dovecot -F -c <folder>/dovecot.conf, waits for "* OK"
    account = server.add_user("ada@helpdesk.test", "s3cret")   # logs in at once, no restart
    uid = account.append(raw, flags=("\\Seen",))
    account.uids() == [uid]; account.flags(uid) == {"\\Seen"}; account.message(uid) == raw
    server.kill(); server.start()            # "the server dropped": same host and port, mail kept
    server.close()                           # kill, then remove the folder

    server = Dovecot(lmtp=True, submission_host="127.0.0.1:2525")   # IMAP, LMTP and Sieve
    server.start()                           # server.lmtp_port: where an MTA delivers
    carol = server.add_user("carol@customer.test", "s3cret", sieve=VACATION)
    server.remove_user("carol@customer.test")    # her sessions kicked, her mail and state gone

In the test suite use the fixtures in tests/conftest.py: `dovecot_server` (one instance for
the session), `imap_account` (a fresh user on it for each test) and `private_dovecot` (an
instance of the test's own, for tests that stop, kill or restart the server); for mail
delivered by Postfix, `dovecot_lmtp` (an LMTP instance for the session, sending through
`postfix_server`) and `customer_mailbox` (carol@customer.test on it, fresh, with her
out-of-office Sieve script, routed by Postfix to Dovecot's LMTP).

The server
    IMAP only, on 127.0.0.1, at a port picked free at the first start() and kept across
    stop()/kill()/start()/restart(), so a client reconnects to the same address.  `ssl = no`;
    LOGIN and AUTHENTICATE PLAIN in plaintext.  Each user has a passwd-file of its own,
    <folder>/users/<address>, with a {PLAIN} password: Dovecot reads a new file at the first
    login, so add_user() needs no restart.  (One shared passwd-file would not do: Dovecot
    looks at a changed file at most once a second, so a user added right after another
    login fails to log in for up to a second.)  Mail is Maildir, INBOX in
    <folder>/mail/<address>/Maildir and other folders in .Name.Sub beside it; the hierarchy
    separator is "/" ("Archive/2024"); folder names are plain ASCII without ".".
    Tuned for tests: no fsync (mail_fsync = never); a refused login is answered after half
    a second (auth_failure_delay = 0) and does not slow down later logins from 127.0.0.1
    (Dovecot's auth penalty, otherwise 2 s and more for every user, is off); up to 100
    connections per user and IP; IDLE looks at the Maildir every second where inotify is
    missing; auth_verbose in the log.  Everything Dovecot writes (base_dir, state_dir,
    log_path) is in the folder and every instance has an instance_name of its own, so any
    number of instances run side by side.

    As root, the master runs as root, the mail processes (imap) as the `vmail` system user —
    Dovecot refuses to run them as root — and logins as Dovecot's `dovenull`; the folder is
    world-traversable and <folder>/mail belongs to vmail.  scripts/test-services installs
    dovecot-imapd and creates vmail.  As any other user, all of Dovecot runs as that user
    (Dovecot's rootless mode).

LMTP and Sieve (Dovecot(lmtp=True, submission_host=...))
    Also LMTP on 127.0.0.1 at `lmtp_port` (picked free at the first start() like `port`),
    the Sieve plugin (dovecot-sieve) in the LMTP delivery, and Sieve's outgoing mail
    (vacation replies, redirects) sent by SMTP to `submission_host` ("host:port", the
    test's Postfix); without it Dovecot would run /usr/sbin/sendmail, which has no
    configuration on the test machines.  postmaster_address is postmaster@lab.test (LMTP
    refuses to start without one).  A user's Sieve script, add_user(..., sieve=TEXT), is
    <home>/.dovecot.sieve (home = <folder>/mail/<address>, the Maildir's parent), compiled
    at the first delivery.  As in any Pigeonhole setup, a vacation reply goes to the
    envelope sender (for maild: its VERP address support+bounces-<id>@...) from the null
    sender <>, with Auto-Submitted: auto-replied and In-Reply-To/References of the mail it
    answers, once per sender per :days; it never answers mail that carries Auto-Submitted
    (other than "no"), a list header or Precedence bulk/junk/list, nor mail whose
    To/Cc/Bcc do not name the user.  Its memory of whom it answered lives in the home
    (.dovecot.lda-dupes), so remove_user() + add_user() gives a user who answered no one.
    scripts/test-services installs dovecot-lmtpd and dovecot-sieve.

Lifecycle
    start()    the master in the foreground, in a process group of its own; returns once the
               port greets.  DovecotError (with Dovecot's log) if it does not.
    stop()     SIGTERM to the pid in base_dir/master.pid; waits until the master has exited
               and the port is closed.  Logged-in sessions get "* BYE Server shutting
               down."; login processes holding a client that has not logged in (they would
               linger for 30 s) get SIGKILL after a second.  Takes about two seconds.
    kill()     SIGKILL to the master and all its children at once (the process group): the
               server dropped.  Connections break without a BYE; appended mail stays.
    pids()     the instance's live processes (its process group, from /proc).
    restart()  stop(), then start().
    close()    kill(), then remove the folder.  Instances not closed are closed at exit.
    log_text() Dovecot's log so far.

Accounts
    add_user(address, password, sieve=None) -> Account, a frozen value (address, password, host, port,
    maildir, config).  Its helpers use stdlib imaplib, synchronously, each on a connection of
    its own, and raise ImapError when the server answers NO or BAD:
      append(raw, folder="INBOX", flags=())  -> UID, from the APPENDUID answer (UIDPLUS)
      append_many(raws, folder="INBOX")       -> [UID], on one connection, pipelined with
                                                 LITERAL+: 2,000 messages in under 2 s here
      uids(folder)              -> [UID], ascending
      flags(uid, folder)        -> {"\\Seen", ...} (the per-session \Recent left out)
      set_flags(uid, flags, folder)   replaces the message's flags
      create(folder)            uidvalidity(folder) -> int          expunge_all(folder)
      message(uid, folder)      -> the raw bytes, by BODY.PEEK[] (leaves \Seen alone)
      renew_uidvalidity(folder) -> the folder's new UIDVALIDITY, see below
      set_uidvalidity(value, folder)  gives the folder that UIDVALIDITY, UIDs kept (doveadm
                                mailbox update): two mailboxes alike, as on servers with
                                small constant UIDVALIDITYs
      kick()                    disconnects all of the user's sessions (doveadm kick)
      imap()                    a logged-in imaplib.IMAP4 for a `with` block, for the rest

    renew_uidvalidity() does what happens when a server loses a folder's index: it kicks
    the user's sessions (they get "* BYE Server shutting down."), then deletes the folder's
    dovecot-uidlist and dovecot.index* files.  Dovecot gives the folder a new, higher
    UIDVALIDITY (it counts per user, so never an earlier one) and numbers the same messages
    again from UID 1; flags survive (Maildir keeps them in the file names).  It works for
    INBOX, which IMAP cannot DELETE, and it is the case that catches a client ignoring
    UIDVALIDITY: old UIDs now name other messages and new mail arrives below the last UID
    it saw.  (Chosen over DELETE + CREATE, which cannot touch INBOX, and over doveadm
    mailbox update --uid-validity, which keeps the old UIDs.)
"""
from __future__ import annotations

import atexit
import contextlib
import grp
import imaplib
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Self

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
DOVEADM = shutil.which("doveadm") or "/usr/bin/doveadm"
LMTP_PROGRAM = "/usr/lib/dovecot/lmtp"                          # dovecot-lmtpd
SIEVE_PLUGIN = "/usr/lib/dovecot/modules/lib90_sieve_plugin.so"  # dovecot-sieve
POSTMASTER = "postmaster@lab.test"
HOST = "127.0.0.1"
MAIL_USER = "vmail"           # what the mail processes run as when we are root
START_TIMEOUT = 15.0
STOP_TIMEOUT = 15.0
STRAGGLER_GRACE = 1.0         # after stop(), processes still serving a pre-login client get SIGKILL
IMAP_TIMEOUT = 30.0
SEPARATOR = "/"

APPENDUID = re.compile(rb"\[APPENDUID (\d+) (\d+)\]")
UIDVALIDITY = re.compile(rb"UIDVALIDITY (\d+)")
FLAGS = re.compile(rb"FLAGS \(([^)]*)\)")


class DovecotError(RuntimeError):
    """The server could not be started or stopped; the message carries its log."""


class ImapError(imaplib.IMAP4.error):
    """An Account helper's command was answered NO or BAD."""


def _running_as_root() -> bool:
    return os.geteuid() == 0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((HOST, port)) == 0


def _greets(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=2.0) as sock:
            greeted = sock.recv(4).startswith(b"* OK")
            with contextlib.suppress(OSError):
                sock.sendall(b"probe LOGOUT\r\n")
                sock.recv(1024)
            return greeted
    except OSError:
        return False


@dataclass(frozen=True)
class Account:
    """A mailbox user on a Dovecot instance, with imaplib helpers (see the module docstring)."""

    address: str
    password: str
    host: str
    port: int
    maildir: Path        # <folder>/mail/<address>/Maildir, INBOX; other folders are .Name.Sub
    config: Path         # the instance's dovecot.conf, for doveadm -c

    @contextlib.contextmanager
    def imap(self) -> Iterator[imaplib.IMAP4]:
        """A logged-in imaplib connection, logged out at the end of the `with` block."""
        conn = imaplib.IMAP4(self.host, self.port, timeout=IMAP_TIMEOUT)
        try:
            _check(conn.login(self.address, self.password), "LOGIN", self.address)
            yield conn
        finally:
            with contextlib.suppress(OSError, imaplib.IMAP4.error):
                conn.logout()

    def append(self, raw: bytes, folder: str = "INBOX", flags: Iterable[str] = ()) -> int:
        """APPEND one message; returns its UID (from the APPENDUID answer)."""
        flag_list = " ".join(flags)
        with self.imap() as conn:
            data = _check(conn.append(_quoted(folder), f"({flag_list})" if flag_list else None,
                                      None, raw), "APPEND", folder)
        return _appenduid(data[0])

    def append_many(self, raws: Iterable[bytes], folder: str = "INBOX") -> list[int]:
        """APPEND many messages on one connection, pipelined; returns their UIDs in order."""
        raws = list(raws)
        with self.imap() as conn:
            return _pipelined_append(conn, folder, raws)

    def uids(self, folder: str = "INBOX") -> list[int]:
        """The UIDs in `folder`, ascending."""
        with self._selected(folder) as conn:
            data = _check(conn.uid("SEARCH", "ALL"), "UID SEARCH", folder)
        return sorted(int(uid) for uid in data[0].split())

    def flags(self, uid: int, folder: str = "INBOX") -> set[str]:
        """The flags of message `uid`, e.g. {"\\Seen", "\\Answered"}, without \\Recent."""
        with self._selected(folder) as conn:
            data = _check(conn.uid("FETCH", str(uid), "(FLAGS)"), "UID FETCH FLAGS", folder)
        for item in data:
            line = item[0] if isinstance(item, tuple) else item
            if line and (found := FLAGS.search(line)):
                return set(found.group(1).decode().split()) - {"\\Recent"}
        raise ImapError(f"UID FETCH {uid} FLAGS in {folder}: no such message")

    def set_flags(self, uid: int, flags: Iterable[str], folder: str = "INBOX") -> None:
        """Replace the flags of message `uid` with `flags`."""
        with self._selected(folder, readonly=False) as conn:
            _check(conn.uid("STORE", str(uid), "FLAGS.SILENT", f"({' '.join(flags)})"),
                   "UID STORE", folder)

    def create(self, folder: str) -> None:
        with self.imap() as conn:
            _check(conn.create(_quoted(folder)), "CREATE", folder)

    def uidvalidity(self, folder: str = "INBOX") -> int:
        with self.imap() as conn:
            data = _check(conn.status(_quoted(folder), "(UIDVALIDITY)"), "STATUS", folder)
        return int(UIDVALIDITY.search(data[0]).group(1))

    def expunge_all(self, folder: str = "INBOX") -> None:
        """Mark every message in `folder` \\Deleted and EXPUNGE."""
        with self._selected(folder, readonly=False) as conn:
            _check(conn.store("1:*", "+FLAGS.SILENT", r"(\Deleted)"), "STORE", folder)
            _check(conn.expunge(), "EXPUNGE", folder)

    def message(self, uid: int, folder: str = "INBOX") -> bytes:
        """The raw message `uid`, by BODY.PEEK[] (leaves \\Seen alone)."""
        with self._selected(folder) as conn:
            data = _check(conn.uid("FETCH", str(uid), "(BODY.PEEK[])"), "UID FETCH BODY", folder)
        for item in data:
            if isinstance(item, tuple):
                return item[1]
        raise ImapError(f"UID FETCH {uid} BODY.PEEK[] in {folder}: no such message")

    def renew_uidvalidity(self, folder: str = "INBOX") -> int:
        """Make Dovecot lose `folder`'s index: a new UIDVALIDITY, messages renumbered from 1."""
        before = self.uidvalidity(folder)
        self.kick()
        path = self.maildir
        if folder.upper() != "INBOX":
            path = path / ("." + folder.replace(SEPARATOR, "."))
        for name in os.listdir(path):
            if name == "dovecot-uidlist" or name.startswith("dovecot.index"):
                os.unlink(path / name)
        after = self.uidvalidity(folder)
        if after == before:
            raise ImapError(f"UIDVALIDITY of {folder} did not change ({before})")
        return after

    def set_uidvalidity(self, value: int, folder: str = "INBOX") -> None:
        _doveadm(self.config, "mailbox", "update", "-u", self.address, "--uid-validity",
                 str(value), folder)
        if self.uidvalidity(folder) != value:
            raise ImapError(f"UIDVALIDITY of {folder} is not {value}")

    def kick(self) -> None:
        """Disconnect all of this user's sessions (doveadm kick); returns once they are gone."""
        _doveadm(self.config, "kick", self.address)
        deadline = time.monotonic() + STOP_TIMEOUT
        while _doveadm(self.config, "who", "-1", self.address).splitlines()[1:]:   # [0]: header
            if time.monotonic() > deadline:
                raise DovecotError(f"sessions of {self.address} still there after doveadm kick")
            time.sleep(0.02)

    @contextlib.contextmanager
    def _selected(self, folder: str, readonly: bool = True) -> Iterator[imaplib.IMAP4]:
        with self.imap() as conn:
            _check(conn.select(_quoted(folder), readonly=readonly), "SELECT", folder)
            yield conn


def _quoted(folder: str) -> str:
    """A mailbox name as an IMAP quoted string (imaplib passes names through unquoted)."""
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _doveadm(config: Path, *args: str) -> str:
    done = subprocess.run([DOVEADM, "-c", str(config), *args], capture_output=True, text=True,
                          timeout=STOP_TIMEOUT, check=False)
    if done.returncode not in (0, 68):    # 68 (EX_NOUSER): kick found no session
        raise DovecotError(f"doveadm {' '.join(args)}: exit {done.returncode}: {done.stderr}")
    return done.stdout


def _check(answer: tuple[str, list], command: str, what: str) -> list:
    typ, data = answer
    if typ != "OK":
        raise ImapError(f"{command} {what}: {typ} {data!r}")
    return data


def _appenduid(line: bytes) -> int:
    found = APPENDUID.search(line or b"")
    if not found:
        raise ImapError(f"APPEND: no APPENDUID in {line!r}")
    return int(found.group(2))


def _pipelined_append(conn: imaplib.IMAP4, folder: str, raws: list[bytes]) -> list[int]:
    """APPEND with non-synchronizing literals (LITERAL+), all commands sent before reading.

    imaplib cannot pipeline, so this writes the commands on its socket and reads the tagged
    answers from its file; the connection is usable afterwards.
    """
    if "LITERAL+" not in conn.capabilities:
        return [_appenduid(_check(conn.append(_quoted(folder), None, None, raw), "APPEND",
                                  folder)[0]) for raw in raws]
    mailbox = _quoted(folder).encode()
    prefix = f"M{secrets.token_hex(3)}-"
    sender = threading.Thread(target=_send_appends, args=(conn.sock, prefix, mailbox, raws),
                              daemon=True)
    sender.start()
    uids: list[int] = []
    try:
        while len(uids) < len(raws):
            line = conn.readline()
            if not line:
                raise ImapError("APPEND: connection closed")
            if line.startswith(prefix.encode()):
                _tag, status, rest = line.split(b" ", 2)
                if status != b"OK":
                    raise ImapError(f"APPEND {folder}: {line!r}")
                uids.append(_appenduid(rest))
    finally:
        sender.join()
    return uids


def _send_appends(sock: socket.socket, prefix: str, mailbox: bytes, raws: list[bytes]) -> None:
    for number, raw in enumerate(raws):
        sock.sendall(b"%s%d APPEND %s {%d+}\r\n%s\r\n" % (prefix.encode(), number, mailbox,
                                                           len(raw), raw))


class Dovecot:
    """One private Dovecot instance in a temp folder (see the module docstring)."""

    def __init__(self, *, lmtp: bool = False, submission_host: str | None = None) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="dovecot-"))
        self.name = f"maild-test-{self.directory.name.removeprefix('dovecot-')}"
        self.host = HOST
        self.port: int | None = None
        self.lmtp = lmtp
        self.lmtp_port: int | None = None
        self.submission_host = submission_host
        self._process: subprocess.Popen | None = None
        self._closed = False
        os.chmod(self.directory, 0o755)          # Dovecot's users must reach their files
        (self.directory / "mail").mkdir()
        (self.directory / "users").mkdir(mode=0o755)
        atexit.register(self._at_exit)

    # -- availability ----------------------------------------------------------------------

    @staticmethod
    def unavailable(lmtp: bool = False) -> str | None:
        """Why Dovecot (with LMTP and Sieve, if `lmtp`) cannot run here, or None if it can."""
        if not os.access(DOVECOT, os.X_OK):
            return (f"Dovecot is not installed ({DOVECOT}); scripts/test-services installs "
                    "dovecot-imapd when run as root")
        for path, package in ((LMTP_PROGRAM, "dovecot-lmtpd"), (SIEVE_PLUGIN, "dovecot-sieve")):
            if lmtp and not os.path.exists(path):
                return (f"{package} is not installed ({path}); scripts/test-services installs "
                        "it when run as root")
        if _running_as_root():
            try:
                pwd.getpwnam(MAIL_USER)
            except KeyError:
                return (f"no {MAIL_USER} user for Dovecot's mail processes; "
                        "scripts/test-services creates it when run as root")
        return None

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start the master (same port as before, if any); returns once the port greets."""
        if self._closed:
            raise DovecotError("this instance was closed")
        if self.running:
            return
        if reason := self.unavailable(self.lmtp):
            raise DovecotError(reason)
        if _running_as_root():
            user = pwd.getpwnam(MAIL_USER)
            os.chown(self.directory / "mail", user.pw_uid, user.pw_gid)
        if self.port is None:
            self.port = _free_port()
        if self.lmtp and self.lmtp_port is None:
            self.lmtp_port = _free_port()
        with contextlib.suppress(FileNotFoundError):   # left by kill(); its pid may be reused
            (self.directory / "run" / "master.pid").unlink()
        config = self.directory / "dovecot.conf"
        config.write_text(self._config())
        with open(self.directory / "dovecot.stderr", "ab") as stderr:
            self._process = subprocess.Popen([DOVECOT, "-F", "-c", str(config)],
                                             stdin=subprocess.DEVNULL, stdout=stderr,
                                             stderr=stderr, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT
        while not (_greets(self.port) and (not self.lmtp or _port_open(self.lmtp_port))):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self._kill_group()
                self._process = None
                raise DovecotError(f"Dovecot did not start on {self.host}:{self.port}:\n"
                                   f"{self._stderr_text()}{self.log_text()}")
            time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM to the master (by its pid file); returns once it is gone and the port closed."""
        if not self.running:
            self._process = None
            return
        os.kill(self._master_pid(), signal.SIGTERM)
        try:
            self._process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()
            raise DovecotError(f"Dovecot did not stop within {STOP_TIMEOUT}s; killed:\n"
                               f"{self.log_text()}") from None
        self._wait_gone(grace=STRAGGLER_GRACE)

    def kill(self) -> None:
        """SIGKILL to the master and its children: the server dropped, no BYE."""
        if self._process is None:
            return
        self._kill_group()
        self._wait_gone(grace=0.0)

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        """Kill the instance (its folder goes anyway, so no need to wait) and remove the folder."""
        if self._closed:
            return
        try:
            self.kill()
        finally:
            self._closed = True
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def pids(self) -> list[int]:
        """The live processes of this instance: the master's process group (from /proc)."""
        if self._process is None:
            return []
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = Path("/proc", entry, "stat").read_text()
            except OSError:
                continue
            state, _ppid, pgrp = stat.rpartition(")")[2].split()[:3]
            if int(pgrp) == self._process.pid and state != "Z":
                found.append(int(entry))
        return found

    def log_text(self) -> str:
        try:
            return (self.directory / "dovecot.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # -- users -----------------------------------------------------------------------------

    def add_user(self, address: str, password: str, *, sieve: str | None = None) -> Account:
        """A new user (or a new password); it can log in at once, no restart needed.
        `sieve`: the text of the user's active Sieve script (LMTP deliveries run it)."""
        if not address or any(c in address + password for c in ":/\r\n\0"):
            raise ValueError("address and password must not contain ':', '/' or line breaks")
        if sieve is not None:
            self._write_sieve(address, sieve)
        staged = self.directory / "users" / f".{address}.new"
        staged.write_text(f"{address}:{{PLAIN}}{password}::::::\n")
        staged.chmod(0o644)
        os.replace(staged, self.directory / "users" / address)
        if self.port is None:
            self.port = _free_port()
        return Account(address, password, self.host, self.port,
                       maildir=self.directory / "mail" / address / "Maildir",
                       config=self.directory / "dovecot.conf")

    def remove_user(self, address: str) -> None:
        """Forget a user: sessions kicked (if running), passwd-file and home (mail, Sieve
        script, vacation memory) deleted."""
        if self.running:
            _doveadm(self.directory / "dovecot.conf", "kick", address)
        with contextlib.suppress(FileNotFoundError):
            (self.directory / "users" / address).unlink()
        shutil.rmtree(self.directory / "mail" / address, ignore_errors=True)

    # -- internals -------------------------------------------------------------------------

    def _write_sieve(self, address: str, script: str) -> None:
        home = self.directory / "mail" / address
        home.mkdir(exist_ok=True)
        (home / ".dovecot.sieve").write_text(script)
        if _running_as_root():     # Dovecot compiles it next to the script, as the mail user
            user = pwd.getpwnam(MAIL_USER)
            for path in (home, home / ".dovecot.sieve"):
                os.chown(path, user.pw_uid, user.pw_gid)

    def _lmtp_config(self) -> str:
        if not self.lmtp:
            return ""
        submission = f"submission_host = {self.submission_host}\n" if self.submission_host else ""
        return f"""\
postmaster_address = {POSTMASTER}
{submission}service lmtp {{
  inet_listener lmtp {{
    address = {self.host}
    port = {self.lmtp_port}
  }}
}}
protocol lmtp {{
  mail_plugins = $mail_plugins sieve
}}
plugin {{
  sieve = file:~/sieve;active=~/.dovecot.sieve
}}
"""

    def _config(self) -> str:
        d = self.directory
        if _running_as_root():
            mail = pwd.getpwnam(MAIL_USER)
            group = grp.getgrgid(mail.pw_gid).gr_name
            users = ""
        else:   # rootless: every process, and every socket, belongs to us
            mail = pwd.getpwuid(os.getuid())
            group = grp.getgrgid(mail.pw_gid).gr_name
            users = (f"default_internal_user = {mail.pw_name}\n"
                     f"default_internal_group = {group}\n"
                     f"default_login_user = {mail.pw_name}\n")
        return f"""\
# Written by tests/dovecot.py for one test instance; regenerated at every start.
instance_name = {self.name}
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
{users}protocols = imap{" lmtp" if self.lmtp else ""}
listen = {self.host}
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
auth_verbose = yes
mail_location = maildir:~/Maildir
mail_fsync = never
mail_max_userip_connections = 100
mailbox_idle_check_interval = 1 secs
first_valid_uid = {mail.pw_uid}
first_valid_gid = {mail.pw_gid}
namespace inbox {{
  inbox = yes
  separator = {SEPARATOR}
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/users/%u
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {d}/users/%u
  default_fields = uid={mail.pw_name} gid={group} home={d}/mail/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = {self.host}
    port = {self.port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
""" + self._lmtp_config()

    def _stderr_text(self) -> str:
        try:
            return (self.directory / "dovecot.stderr").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def _kill_group(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, signal.SIGKILL)
        self._process.wait()

    def _wait_gone(self, grace: float) -> None:
        """Wait until the port is closed and no process of the instance is left.

        Login processes keep a pre-login client (one that failed to log in, say) for up to
        30 s after the master ended; after `grace` seconds they get SIGKILL.
        """
        deadline = time.monotonic() + STOP_TIMEOUT
        while _port_open(self.port):
            if time.monotonic() > deadline:
                raise DovecotError(f"port {self.port} still open after Dovecot ended")
            time.sleep(0.02)
        stragglers_at = time.monotonic() + grace
        while self.pids():
            if time.monotonic() > stragglers_at:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self._process.pid, signal.SIGKILL)
            if time.monotonic() > deadline:
                raise DovecotError(f"Dovecot processes {self.pids()} still there")
            time.sleep(0.02)
        self._process = None

    def _master_pid(self) -> int:
        """The pid in base_dir/master.pid, which must be the master we started."""
        try:
            pid = int((self.directory / "run" / "master.pid").read_text())
        except (OSError, ValueError):
            return self._process.pid     # not written yet
        if pid != self._process.pid:
            raise DovecotError(f"master.pid says {pid}, but our master is {self._process.pid}")
        return pid

    def _at_exit(self) -> None:
        with contextlib.suppress(Exception):
            self.close()
