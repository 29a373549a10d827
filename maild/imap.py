"""IMAP intake: one task per `imap:` account reads its folder into the spool.

For sites that give maild a mailbox instead of pointing their MTA at it. Help desks that
poll and trust \\Seen miss mail another client read; maild goes by UID instead:

1. Connect, log in, select the folder (states ``connecting``). Its UIDVALIDITY, and the
   mailbox (host, port, user), are compared with those stored in the spool
   (maild/imap_progress.py): another UIDVALIDITY means the server renumbered the folder,
   another mailbox that the account was repointed (UIDVALIDITY alone can't tell: it is
   unique per server and folder only); either way a WARNING, progress back to 0 and the
   whole folder imported again; processing de-duplicates by Message-ID (or the sha256 of
   the bytes), DESIGN §1.2, so no ticket is made twice.
2. Finish what a crash interrupted: ``after`` for UIDs spooled but not yet acted on. The
   same at the end of every pass (step 3), new mail or not: an ``after`` the server
   refused is retried, and a move target deleted while maild runs is created again.
3. Import (``fetching``): UIDs above the highest spooled, ``batch`` at a time (and at most
   FETCH_MAX_BYTES, 4 MiB by RFC822.SIZE, per FETCH, a bigger message alone), with
   BODY.PEEK[] so fetching marks nothing read.
   Each message goes through `Daemon.submit` like LMTP mail, with its progress update in
   the same spool transaction, so "spooled" and "progress advanced" can never disagree
   and a kill between spooling and flagging duplicates nothing (the progress lives in
   the spool, not the ticket database, which may be down while intake runs). Only then
   is ``after`` applied to the batch (flag \\Seen, move, delete) and recorded. Progress
   is logged every batch ("imported 500 of 2000").
4. Wait for mail: IDLE where the server has it (``idle``), ended by an EXISTS/RECENT push
   or after min(poll_seconds, idle_seconds), then back to 3; else NOOP and search every
   poll_seconds (``polling``). An EXISTS the server sent during step 3 (which aioimaplib
   drops, and the server won't repeat in IDLE) sends us back to 3 at once.

Servers without MOVE or UIDPLUS (RFC 6851, RFC 4315). Without MOVE, ``move`` is UID COPY,
then \\Deleted, then UID EXPUNGE; a crash after the COPY and before ``acted_uid`` is
recorded copies those messages again on restart, so the target folder may hold a message
twice (the tickets never do: processing de-duplicates). Without UIDPLUS nothing is
expunged: ``delete`` (and ``move`` without MOVE) leave the messages flagged \\Deleted,
with a WARNING at start, because a plain EXPUNGE also removes what another client flagged
\\Deleted, perhaps before maild imported it.

Every network wait is bounded (maild/imap_client.py): by the server's silence, not by
the length of the answer, so a slow but steady link imports a backlog at its own pace
while a stalled one is noticed after ``timeout_seconds``. A dropped connection or a timeout
closes the session (``reconnecting``) and retries after min(300 s, 1 s * 2**n), times a
random 0.5-1.5; n counts failures since the last good session: one that completed an
import and a wait (IDLE or poll), or stayed up STABLE_SECONDS. (A session that always
fails right after its import, say at IDLE, backs off like one that fails to connect.) A
server that advertises IDLE but refuses it (NO, e.g. a limit on IDLE sessions) is polled
for the rest of the session, with a WARNING. A refused login (``failed_auth``) or a
folder that cannot be selected or created (``failed``) is logged as an error and retried
every AUTH_RETRY_SECONDS. A stop (drain) ends IDLE, finishes the
batch in hand and logs out: every message is either durably spooled or not acted on.
"""
from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable

from maild.aio import wait_first
from maild.config import ImapAccount as ImapSettings
from maild.envelope import Envelope
from maild.imap_client import (
    CommandRefused,
    IdleRefused,
    ImapFailure,
    ImapSession,
    LoginRefused,
    MailboxRefused,
    Stopping,
    describe,
    guard_credentials,
    scrub,
    uid_set,
)
from maild.imap_progress import ImapProgress, Mailbox, Progress
from maild.spool import Spool, SpoolError

log = logging.getLogger(__name__)

STATES = ("connecting", "idle", "polling", "fetching", "reconnecting", "failed_auth",
          "failed", "stopped")
BACKOFF_BASE, BACKOFF_MAX = 1.0, 300.0     # seconds: reconnect after a failure
AUTH_RETRY_SECONDS = 300.0                 # a refused login or folder: retry this slowly
STABLE_SECONDS = 60.0                      # a session up this long was a good one
FETCH_MAX_BYTES = 4 * 1024 * 1024          # mail per FETCH by RFC822.SIZE (one at least)
_RETURN_PATH = re.compile(rb"^return-path:[ \t]*<([^>\r\n]*)>", re.IGNORECASE | re.MULTILINE)
_MESSAGE_ID = re.compile(rb"^message-id:[ \t]*(<[^>\r\n]*>)", re.IGNORECASE | re.MULTILINE)
_FLAG = {"seen": r"\Seen", "delete": r"\Deleted"}

Submit = Callable[..., Awaitable[int]]     # Daemon.submit(raw, envelope, also=...)


def envelope_for(raw: bytes, recipient: str, account: str) -> Envelope:
    """The envelope of a message read from a mailbox: the Return-Path as the sender when
    the header is there (<> for bounces), the account's recipient, the account as peer."""
    found = _RETURN_PATH.search(_header(raw))
    return Envelope(mail_from=found[1].decode("utf-8", "replace").strip() if found else None,
                    rcpt_tos=(recipient.lower(),), received_via="imap", peer=account)


def _header(raw: bytes) -> bytes:
    end = min((i for i in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n")) if i >= 0), default=len(raw))
    return raw[:end]


class ImapAccount:
    """Runs one account until stopped; `state` is one of STATES."""

    def __init__(self, settings: ImapSettings, *, submit: Submit, spool: Spool,
                 accepts: Callable[[str], bool] | None = None,
                 jitter: Callable[[], float] = random.random,
                 clock: Callable[[], float] = time.monotonic):
        guard_credentials(settings.password)
        self.settings = settings
        self.name = settings.name
        self.state = "connecting"
        self.mailbox = Mailbox(settings.host.lower(), settings.port, settings.user)
        self.progress = ImapProgress(spool, settings.name, settings.folder, self.mailbox)
        self._submit = submit
        self._accepts = accepts
        self._jitter = jitter
        self._clock = clock
        self._failures = 0
        self._warned = False                # about a server without UIDPLUS
        self._folder_ready = settings.move_to is None
        self._where = f"imap {settings.name} {settings.folder}"
        self._mark = Progress(0)

    def __repr__(self) -> str:
        return f"ImapAccount({self.name!r}, {self.state})"

    async def run(self, stop: asyncio.Event) -> None:
        s = self.settings
        log.info("imap %s: reading %s as %s at %s:%d (%s), for %s, after: %s", self.name,
                 s.folder, s.user, s.host, s.port, "TLS" if s.tls else "no TLS", s.recipient,
                 s.after + (f":{s.move_to}" if s.move_to else ""))
        if self._accepts is not None and not self._accepts(s.recipient):
            log.warning("imap %s: recipient %s is not an address of ours (rules.yaml queues,"
                        " helpdesk.address): its mail goes to the main queue", self.name,
                        s.recipient)
        while not stop.is_set():
            session, delay = ImapSession(s, stop), 0.0
            self._set_state("connecting")
            started = self._clock()
            try:
                await self._session(session, stop)
            except Stopping:
                pass
            except LoginRefused as exc:
                self._set_state("failed_auth")
                delay = AUTH_RETRY_SECONDS * (0.5 + self._jitter())
                log.error("imap %s: %s; retrying in %.0fs", self.name, describe(exc), delay)
            except MailboxRefused as exc:
                self._set_state("failed")
                delay = AUTH_RETRY_SECONDS * (0.5 + self._jitter())
                log.error("imap %s: %s; retrying in %.0fs", self.name, describe(exc), delay)
            except (ImapFailure, SpoolError) as exc:
                delay = self._reconnecting(describe(exc), self._clock() - started)
            except Exception as exc:
                log.exception("imap %s: session failed", self.name)
                delay = self._reconnecting(describe(exc), self._clock() - started)
            finally:
                await session.close(logout=stop.is_set())
            if delay:
                await wait_first(stop, timeout=delay)
        self._set_state("stopped")

    def _reconnecting(self, reason: str, lasted: float = 0.0) -> float:
        """The delay before the next session, after one that failed `lasted` seconds in."""
        self._set_state("reconnecting")
        if lasted >= STABLE_SECONDS:
            self._failures = 0
        delay = min(BACKOFF_MAX, BACKOFF_BASE * 2 ** min(self._failures, 16)) * (0.5 + self._jitter())
        self._failures += 1
        log.warning("imap %s: %s; reconnecting in %.1fs", self.name, reason, delay)
        return delay

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            log.info("imap %s: %s", self.name, state)

    async def _session(self, session: ImapSession, stop: asyncio.Event) -> None:
        s = self.settings
        uidvalidity = await session.open()
        self._warn_without_uidplus(session)
        self._mark = await self._sync_progress(uidvalidity)
        await self._prepare_target(session)
        await self._act(session)                    # what a crash left spooled, not acted on
        idle_refused = False
        while not stop.is_set():
            session.news = False
            await self._import(session, stop)
            await self._act(session)                # what an earlier pass failed to act on
            if stop.is_set():
                return
            if session.news:                        # mail came during the pass: look again
                continue
            if session.has("IDLE") and not idle_refused:
                self._set_state("idle")
                try:
                    await session.idle(min(s.poll_seconds, s.idle_seconds), stop)
                except IdleRefused as exc:
                    idle_refused = True
                    log.warning("imap %s: %s: polling every %ds instead", self.name,
                                describe(exc), s.poll_seconds)
                    continue
            else:
                self._set_state("polling")
                await wait_first(stop, session.lost, timeout=s.poll_seconds)
                if not stop.is_set():
                    await session.noop()
            self._failures = 0              # import and wait done: the back-off starts over

    def _warn_without_uidplus(self, session: ImapSession) -> None:
        s = self.settings
        if self._warned or session.has("UIDPLUS") or not (
                s.after == "delete" or s.after == "move" and not session.has("MOVE")):
            return
        self._warned = True
        log.warning("imap %s: the server has no UIDPLUS: after: %s leaves each message "
                    "flagged \\Deleted in %s, not expunged (a plain EXPUNGE would also remove "
                    "mail other clients flagged \\Deleted, maybe before maild imported it); "
                    "the server's or a client's expunge removes them", self.name, s.after,
                    s.folder)

    async def _prepare_target(self, session: ImapSession) -> None:
        """For after: move, create the target folder if missing, and refuse (MailboxRefused)
        a target the server resolves to the folder read: each message moved there would
        come back under a new UID, be imported again and moved again, for ever."""
        s = self.settings
        if self._folder_ready:
            return
        if await session.ensure_folder(s.move_to):
            log.info("imap %s: created folder %s for after: move", self.name, s.move_to)
        target = await session.listed(s.move_to)
        if target is not None and target == await session.listed(s.folder):
            raise MailboxRefused(f"after: move:{s.move_to} is the folder read ({target}) on "
                                 "this server: the mail would come back, and be imported and "
                                 "moved again, for ever; name another folder")
        self._folder_ready = True

    async def _sync_progress(self, uidvalidity: int) -> Progress:
        stored = await self.progress.load()
        if stored is None:
            log.info("%s: first session (UIDVALIDITY %d): importing what the folder holds",
                     self._where, uidvalidity)
            return await self.progress.reset(uidvalidity)
        if stored.mailbox is None:                  # a spool from before it was stored
            log.info("%s: progress recorded without its mailbox: now %s's", self._where,
                     self.mailbox)
            await self.progress.adopt()
        elif stored.mailbox != self.mailbox:
            log.warning("%s: the account now reads %s, its progress was %s's: importing the "
                        "whole folder (messages already imported are recognised by "
                        "Message-ID, no ticket is made twice)", self._where, self.mailbox,
                        stored.mailbox)
            return await self.progress.reset(uidvalidity)
        if stored.uidvalidity != uidvalidity:
            log.warning("%s: UIDVALIDITY changed from %d to %d: the server renumbered the "
                        "folder; importing all of it again (messages already imported are "
                        "recognised by Message-ID, no ticket is made twice)", self._where,
                        stored.uidvalidity, uidvalidity)
            return await self.progress.reset(uidvalidity)
        return stored

    async def _import(self, session: ImapSession, stop: asyncio.Event) -> None:
        uids = await session.search(self._mark.last_uid + 1)
        if not uids:
            return
        self._set_state("fetching")
        done, total = 0, len(uids)
        for start in range(0, total, self.settings.batch):
            batch = uids[start:start + self.settings.batch]
            sizes = await session.sizes(batch)
            for part in _by_size([uid for uid in batch if uid in sizes], sizes):
                await self._spool(await session.fetch(part))
            await self._act(session)
            done += len(batch)
            log.info("%s: imported %d of %d", self._where, done, total)
            if stop.is_set():
                return

    async def _spool(self, messages: list[tuple[int, bytes]]) -> None:
        """Submit `messages` (ascending UIDs) together, each with its progress step; the
        tasks start in order, so their spool jobs queue (and commit) in UID order."""
        s, mark = self.settings, self._mark
        previous, jobs = mark.last_uid, []
        for uid, raw in messages:
            hook = self.progress.advance(mark.uidvalidity, previous, uid)
            jobs.append(asyncio.ensure_future(
                self._submit(raw, envelope_for(raw, s.recipient, self.name), also=hook)))
            previous = uid
        results = await asyncio.gather(*jobs, return_exceptions=True)
        for (uid, raw), result in zip(messages, results):
            if isinstance(result, BaseException):
                raise SpoolError(f"UID {uid} not spooled: {scrub(str(result))}") from result
            self._mark = Progress(mark.uidvalidity, uid, self._mark.acted_uid)
            found = _MESSAGE_ID.search(_header(raw))
            log.debug("%s: UID %d %s spooled as %s", self._where, uid,
                      found[1].decode("utf-8", "replace") if found else "(no Message-ID)", result)

    async def _act(self, session: ImapSession) -> None:
        """Apply `after` to every UID spooled but not yet acted on (`batch` messages per
        command: aioimaplib's parser takes a stack frame per response line), record it."""
        mark, s = self._mark, self.settings
        if mark.last_uid <= mark.acted_uid:
            return
        await self._prepare_target(session)         # again if a MOVE found it gone
        uids = await session.search(mark.acted_uid + 1, mark.last_uid) if s.after != "keep" else []
        try:
            for start in range(0, len(uids), s.batch):
                part = uid_set(uids[start:start + s.batch])
                if s.after in _FLAG:
                    await session.store(part, _FLAG[s.after])
                if s.after == "delete":
                    await session.expunge(part)
                elif s.after == "move":
                    await session.move(part, s.move_to)
        except CommandRefused as exc:     # the mail is safe in the spool: try again later
            log.error("%s: after: %s on UIDs %d:%d failed, retried on the next pass: %s",
                      self._where, s.after, mark.acted_uid + 1, mark.last_uid, describe(exc))
            self._folder_ready = s.move_to is None      # re-created if it was deleted
            return
        await self.progress.acted(mark.uidvalidity, mark.last_uid)
        self._mark = Progress(mark.uidvalidity, self._mark.last_uid, mark.last_uid)


def _by_size(uids: list[int], sizes: dict[int, int]) -> list[list[int]]:
    """`uids` in runs of at most FETCH_MAX_BYTES of mail (a bigger message alone)."""
    parts, part, total = [], [], 0
    for uid in uids:
        if part and total + sizes[uid] > FETCH_MAX_BYTES:
            parts.append(part)
            part, total = [], 0
        part.append(uid)
        total += sizes[uid]
    return parts + [part] if part else parts
