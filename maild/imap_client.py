"""One IMAP connection for maild/imap.py: aioimaplib, with every wait bounded.

aioimaplib never fails a command whose connection drops: ``idle_start()`` and any other
wait can hang for ever (aioimaplib issue #110). So every call here goes through
`ImapSession.bounded`, which returns the answer, or raises `ConnectionLost` as soon as
the transport reports the drop (``conn_lost_cb``) or the server says BYE, or
`ImapTimeout` once the server has sent nothing for ``timeout_seconds``. That bound is on
silence, not on the whole answer: every byte received (the protocol's ``data_received``)
starts it again, so a FETCH of megabytes over a slow but steady link completes, however
long it takes, while a stalled one is noticed after ``timeout_seconds``. (aioimaplib's
own timers are switched off: they bound most commands as a whole.) Only the wait for
an IDLE push has a total bound. Any failure ends the session: the caller closes it and
reconnects, since a command cut short leaves aioimaplib's state unusable.

Folder names go to the server in modified UTF-7 (RFC 3501 §5.1.3, maild/imap_utf7.py) in
every command that names one (SELECT, CREATE, STATUS, LIST, UID MOVE, UID COPY); the
names in a server's reply are decoded again for the log.

Credentials: aioimaplib logs the LOGIN line at DEBUG (masking only the unquoted
password) and puts a command's arguments in some exception texts, so its loggers are
held at WARNING whatever maild's log_level, every password of a configured account is
scrubbed from the records of the loggers that could carry it (`SecretFilter`), and the
text of every exception raised here is scrubbed too.
"""
from __future__ import annotations

import asyncio
import logging
import re
import ssl
from collections.abc import Awaitable

from aioimaplib import aioimaplib

from maild import imap_utf7
from maild.config import ImapAccount as ImapSettings

log = logging.getLogger(__name__)

STOPPED = object()                       # `bounded` saw the stop event first
NO_TIMER = 10 * 365 * 86400.0            # aioimaplib's own timers: off, `bounded` times all
_SECRETS: set[str] = set()
_NEW_MAIL = re.compile(rb"\d+ (EXISTS|RECENT)\b", re.IGNORECASE)
_EXISTS = re.compile(rb"\* \d+ EXISTS\b", re.IGNORECASE)
_FETCH = re.compile(rb"\d+ FETCH \(", re.IGNORECASE)
_UID = re.compile(rb"\bUID (\d+)", re.IGNORECASE)
_SIZE = re.compile(rb"\bRFC822\.SIZE (\d+)", re.IGNORECASE)
_UIDVALIDITY = re.compile(rb"\[UIDVALIDITY (\d+)\]", re.IGNORECASE)
_LISTED = re.compile(rb'^(?:LIST )?\([^)]*\) (?:NIL|"(?:[^"\\]|\\.)*") (.+)$', re.IGNORECASE)


class ImapFailure(Exception):
    """The session cannot go on: close it, reconnect after a back-off."""


class Stopping(ImapFailure):
    """Asked to stop (a drain) while connecting."""


class ConnectionLost(ImapFailure):
    """The server closed the connection (or said BYE)."""


class ImapTimeout(ImapFailure, TimeoutError):
    """No answer within timeout_seconds."""


class CommandRefused(ImapFailure):
    """The server answered NO or BAD."""


class IdleRefused(CommandRefused):
    """The server advertises IDLE but answered NO to it: poll instead."""


class LoginRefused(CommandRefused):
    """Wrong user or password (or the account is locked): retry slowly, never tight."""


class MailboxRefused(CommandRefused):
    """The folder to read, or the one to move to, cannot be selected or created."""


# --- credentials --------------------------------------------------------------------------

def scrub(text: str) -> str:
    """`text` with every configured IMAP password (as given and as IMAP-quoted) masked."""
    for secret in sorted(_SECRETS, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


class SecretFilter(logging.Filter):
    """Masks configured passwords in a record's message and traceback; drops nothing."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not _SECRETS:
            return True
        message = record.getMessage()
        if scrub(message) != message:
            record.msg, record.args = scrub(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        return True


_FILTER = SecretFilter()
_GUARDED = ("aioimaplib", "aioimaplib.aioimaplib", "asyncio", "maild.imap", __name__)


def guard_credentials(password: str) -> None:
    """Register `password` for scrubbing; quiet aioimaplib (it logs LOGIN at DEBUG)."""
    if password:
        _SECRETS.update({password, aioimaplib.quoted(password)[1:-1]})
    for name in _GUARDED:
        logger = logging.getLogger(name)
        if name.startswith("aioimaplib") and logger.level < logging.WARNING:   # NOTSET too
            logger.setLevel(logging.WARNING)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


def describe(exc: BaseException) -> str:
    """One scrubbed line about `exc` for logs."""
    text = str(exc) or type(exc).__name__
    return scrub(text if isinstance(exc, ImapFailure) else f"{type(exc).__name__}: {text}")


# --- uid sets -----------------------------------------------------------------------------

def uid_set(uids: list[int]) -> str:
    """[1, 2, 3, 7, 9, 10] -> '1:3,7,9:10' (ascending input)."""
    parts, start, prev = [], None, None
    for uid in uids:
        if start is not None and uid == prev + 1:
            prev = uid
            continue
        if start is not None:
            parts.append(f"{start}:{prev}" if prev != start else str(start))
        start = prev = uid
    if start is not None:
        parts.append(f"{start}:{prev}" if prev != start else str(start))
    return ",".join(parts)


# --- the session --------------------------------------------------------------------------

class ImapSession:
    """One connection: connect, log in, select, then commands until closed."""

    def __init__(self, settings: ImapSettings, stop: asyncio.Event | None = None):
        self.settings = settings
        self.stop = stop                          # ends connecting early (a drain)
        self.timeout = float(settings.timeout_seconds)
        self.lost = asyncio.Event()
        self.client: aioimaplib.IMAP4 | None = None
        self.uidvalidity = 0
        self.news = False                         # an EXISTS came: look before idling
        self.heard = 0.0                          # loop time the server last sent anything

    def has(self, capability: str) -> bool:
        return self.client is not None and self.client.has_capability(capability)

    async def open(self) -> int:
        """Connect, log in and select the folder; its UIDVALIDITY."""
        s = self.settings
        if s.tls:
            context = ssl.create_default_context()
            if not s.tls_verify:
                context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
            client = aioimaplib.IMAP4_SSL(s.host, s.port, timeout=NO_TIMER,
                                          ssl_context=context)
        else:
            client = aioimaplib.IMAP4(s.host, s.port, timeout=NO_TIMER)
        client.protocol.conn_lost_cb = lambda exc: self.lost.set()
        self._watch_data(client.protocol)
        self._watch_exists(client.protocol)
        self.client = client
        await self._opening(client.wait_hello_from_server(), "connect")
        answer = await self._opening(client.login(aioimaplib.quoted(s.user), s.password), "LOGIN")
        if answer.result != "OK":
            raise LoginRefused(f"login as {s.user} refused: {_text(answer)}")
        await self._opening(client.protocol.capability(), "CAPABILITY")
        answer = await self._opening(client.select(mailbox(s.folder)), "SELECT")
        if answer.result != "OK":
            raise MailboxRefused(f"cannot select folder {s.folder!r}: {_text(answer)}")
        found = next((m for line in answer.lines if isinstance(line, bytes)
                      and (m := _UIDVALIDITY.search(line))), None)
        if found is None:
            raise CommandRefused(f"SELECT {s.folder!r} gave no UIDVALIDITY")
        self.uidvalidity = int(found[1])
        return self.uidvalidity

    def _watch_data(self, protocol) -> None:
        """Note when the server last sent anything: `bounded` waits on silence."""
        receive, loop = protocol.data_received, asyncio.get_running_loop()

        def data_received(data: bytes) -> None:
            self.heard = loop.time()
            receive(data)
        protocol.data_received = data_received

    def _watch_exists(self, protocol) -> None:
        """Set `news` on any untagged EXISTS. aioimaplib drops those that come outside
        IDLE (with a FETCH, a SEARCH...): the server counts them as told, and would not
        announce that mail again in the next IDLE."""
        handle = protocol._untagged_response

        def untagged(line: bytes):
            if _EXISTS.match(line):
                self.news = True
            return handle(line)
        protocol._untagged_response = untagged

    async def _opening(self, awaitable: Awaitable, what: str):
        answer = await self.bounded(awaitable, what, stop=self.stop)
        if answer is STOPPED:
            raise Stopping(f"{what}: stopped")
        return answer

    async def bounded(self, awaitable: Awaitable, what: str, *, timeout: float | None = None,
                      stop: asyncio.Event | None = None):
        """`awaitable`'s result; ConnectionLost at once when the connection drops,
        ImapTimeout once the server has sent nothing for timeout_seconds (or, given
        `timeout`, after that many seconds in all); STOPPED if `stop` is set first.
        Every exception raised is an ImapFailure with a scrubbed message."""
        task = asyncio.ensure_future(awaitable)
        watchers = [asyncio.ensure_future(self.lost.wait())]
        if stop is not None:
            watchers.append(asyncio.ensure_future(stop.wait()))
        loop = asyncio.get_running_loop()
        start = loop.time()
        limit = self.timeout if timeout is None else timeout
        try:
            done = set()
            while not done:
                since = start if timeout is not None else max(start, self.heard)
                left = since + limit - loop.time()
                if left <= 0:
                    break
                done, _ = await asyncio.wait({task, *watchers}, timeout=left,
                                             return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            task.cancel()
            raise
        finally:
            for watcher in watchers:
                watcher.cancel()
        if task in done:
            if task.cancelled():                    # not by us: aioimaplib gave up on it
                raise ImapFailure(f"{what}: cancelled")
            try:
                return task.result()
            except ImapFailure:
                raise
            except (TimeoutError, aioimaplib.CommandTimeout):
                raise ImapTimeout(f"{what}: no answer within {limit:g}s") from None
            except (OSError, EOFError) as exc:
                raise ConnectionLost(f"{what}: {describe(exc)}") from None
            except Exception as exc:  # noqa: BLE001 - aioimaplib raises many kinds
                raise ImapFailure(f"{what}: {describe(exc)}") from None
        task.cancel()
        if stop is not None and stop.is_set():
            return STOPPED
        if self.lost.is_set():
            raise ConnectionLost(f"{what}: the server closed the connection")
        if timeout is None and self.heard > start:
            raise ImapTimeout(f"{what}: the answer stalled, nothing for {limit:g}s")
        raise ImapTimeout(f"{what}: no answer within {limit:g}s")

    async def _ok(self, awaitable: Awaitable, what: str):
        answer = await self.bounded(awaitable, what)
        if answer.result != "OK":
            raise CommandRefused(f"{what}: {answer.result} {_text(answer)}")
        return answer

    async def search(self, first: int, last: int | None = None) -> list[int]:
        """The UIDs from `first` to `last` (None: the highest), ascending. ('n:*' also
        matches the highest UID when every UID is below n: filtered out.)"""
        answer = await self._ok(self.client.uid_search(
            "UID", f"{first}:{'*' if last is None else last}", charset=None), "UID SEARCH")
        uids = {int(word) for line in answer.lines[:-1] if isinstance(line, bytes)
                for word in line.split() if word.isdigit()}
        return sorted(uid for uid in uids if uid >= first and (last is None or uid <= last))

    async def sizes(self, uids: list[int]) -> dict[int, int]:
        answer = await self._ok(self.client.uid("fetch", uid_set(uids), "(UID RFC822.SIZE)"),
                                "UID FETCH RFC822.SIZE")
        found = {}
        for line in answer.lines[:-1]:
            if isinstance(line, bytes) and _FETCH.match(line):
                uid, size = _UID.search(line), _SIZE.search(line)
                if uid and size:
                    found[int(uid[1])] = int(size[1])
        return found

    async def fetch(self, uids: list[int]) -> list[tuple[int, bytes]]:
        """(UID, raw bytes) of each message still there, ascending; BODY.PEEK: no \\Seen."""
        answer = await self._ok(self.client.uid("fetch", uid_set(uids), "(UID BODY.PEEK[])"),
                                "UID FETCH BODY.PEEK[]")
        found: dict[int, bytes] = {}
        uid, body = None, None
        for line in [*answer.lines[:-1], b"0 FETCH ("]:     # a sentinel flushes the last one
            if isinstance(line, (bytearray, memoryview)):
                body = bytes(line) if body is None else body
                continue
            if _FETCH.match(line):
                if uid is not None and body is not None:
                    found[uid] = body
                uid, body = None, None
            if uid is None and (m := _UID.search(line)):
                uid = int(m[1])
        return sorted(found.items())

    async def store(self, uids: str, flag: str) -> None:
        await self._ok(self.client.uid("store", uids, "+FLAGS.SILENT", f"({flag})"),
                       f"UID STORE {flag}")

    async def expunge(self, uids: str) -> None:
        """UID EXPUNGE `uids` with UIDPLUS; without it nothing: a plain EXPUNGE removes
        every \\Deleted message of the folder, those another client flagged (and that
        maild may not have imported yet) too. They stay, flagged \\Deleted."""
        if self.has("UIDPLUS"):
            await self._ok(self.client.uid("expunge", uids), "UID EXPUNGE")

    async def move(self, uids: str, folder: str) -> None:
        """UID MOVE where the server has MOVE, else COPY, \\Deleted and `expunge`."""
        if self.has("MOVE"):
            await self._ok(self.client.uid("move", uids, mailbox(folder)), "UID MOVE")
            return
        await self._ok(self.client.uid("copy", uids, mailbox(folder)), "UID COPY")
        await self.store(uids, r"\Deleted")
        await self.expunge(uids)

    async def ensure_folder(self, folder: str) -> bool:
        """Create `folder` unless it exists; True if created. MailboxRefused if neither."""
        answer = await self.bounded(self.client.create(mailbox(folder)), "CREATE")
        if answer.result == "OK":
            return True
        status = await self.bounded(self.client.status(mailbox(folder), "(MESSAGES)"),
                                    "STATUS")
        if status.result != "OK":
            raise MailboxRefused(f"cannot create folder {folder!r}: {_text(answer)}")
        return False

    async def listed(self, folder: str) -> str | None:
        """The name the server LISTs for `folder` (its own spelling: Dovecot answers INBOX
        for inbox), None if there is no such folder. A name holding the LIST wildcards %
        or * is taken as it is."""
        if "%" in folder or "*" in folder:
            return folder
        answer = await self._ok(self.client.list('""', mailbox(folder)), "LIST")
        lines = answer.lines[:-1]
        for i, line in enumerate(lines):
            if not isinstance(line, bytes) or not (found := _LISTED.match(line)):
                continue
            name = found[1]
            if name.endswith(b"}") and i + 1 < len(lines):          # a literal {n}
                name = bytes(lines[i + 1])
            elif name.startswith(b'"'):
                name = re.sub(rb'\\(.)', rb"\1", name[1:-1])
            text = name.decode("ascii", "replace")
            try:
                return imap_utf7.decode(text)
            except ValueError:
                return text
        return None

    async def noop(self) -> None:
        await self._ok(self.client.noop(), "NOOP")

    async def idle(self, seconds: float, stop: asyncio.Event) -> bool:
        """IDLE for up to `seconds` (or until `stop`); True if the server announced mail."""
        client, loop = self.client, asyncio.get_running_loop()
        while not client.protocol.idle_queue.empty():       # left from an earlier IDLE
            client.protocol.idle_queue.get_nowait()
        command = await self.bounded(self._idle_start(), "IDLE")
        deadline, news = loop.time() + seconds, False
        while not news and (left := deadline - loop.time()) > 0:
            push = await self.bounded(self._push(left), "IDLE", timeout=left + self.timeout,
                                      stop=stop)
            if push is None or push is STOPPED:
                break
            lines = [line for line in push if isinstance(line, bytes)]
            if any(line.upper().startswith(b"BYE") for line in lines):
                raise ConnectionLost("the server said BYE: " + scrub(
                    b" ".join(lines).decode("ascii", "replace")))
            news = any(_NEW_MAIL.match(line) for line in lines)
        if client.has_pending_idle():               # else the server ended it already
            client.idle_done()
        await self.bounded(command, "IDLE DONE")
        return news

    async def _idle_start(self):
        try:
            return await self.client.idle_start(timeout=NO_TIMER)
        except aioimaplib.Abort as exc:
            if "returned error to IDLE" not in str(exc):   # aioimaplib's words for NO/BAD
                raise
            raise IdleRefused("the server refused IDLE") from None

    async def _push(self, seconds: float):
        try:
            return await self.client.wait_server_push(timeout=seconds)
        except TimeoutError:
            return None

    async def close(self, *, logout: bool = False) -> None:
        """Log out (if asked and still connected, briefly) and drop the connection."""
        client, self.client = self.client, None
        if client is None:
            return
        if logout and not self.lost.is_set() and client.get_state() in ("AUTH", "SELECTED"):
            try:
                await asyncio.wait_for(client.logout(), min(5.0, self.timeout))
            except Exception as exc:  # noqa: BLE001 - we are leaving anyway
                log.debug("imap %s: LOGOUT: %s", self.settings.name, describe(exc))
        if client.protocol.transport is not None:
            client.protocol.transport.close()
        if client._idle_waiter is not None:
            client._idle_waiter.cancel()
        for task in (client._client_task, *client.tasks, *client.protocol.tasks):
            if task.done():
                if not task.cancelled():
                    task.exception()            # retrieved: no "never retrieved" noise
            else:
                task.cancel()


def mailbox(name: str) -> str:
    """A folder name as a command argument: modified UTF-7 (RFC 3501 §5.1.3), quoted."""
    return aioimaplib.quoted(imap_utf7.encode(name))


def _text(answer) -> str:
    """The server's words in a tagged answer (its last line), scrubbed; folder names in
    modified UTF-7 decoded."""
    last = answer.lines[-1] if answer.lines else b""
    if isinstance(last, (bytes, bytearray)):
        last = bytes(last).decode("utf-8", "replace")
    return imap_utf7.readable(scrub(str(last)))[:200]
