"""IMAP intake against a real Dovecot: never miss, never duplicate, survive server restarts.

A customer's mail lands in the mailbox the site gave maild (appended by a test through
stdlib imaplib, like any other client or the MTA's delivery agent would); maild, running
whole in the test's loop (tests/integration/harness.py), reads it by UID and makes the
tickets. The Dovecot helpers block, so they run in a thread (`call`) while maild runs.
"""
from __future__ import annotations

import asyncio
import email
import logging
import os
import pwd
import secrets
import sqlite3
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from aioimaplib.aioimaplib import quoted

import maild.daemon
from maild.imap import ImapAccount
from maild.imap_client import ImapSession
from maild.spool import Spool, SpoolError
from tests.integration.harness import SUPPORT, mail, running_helpdesk
from tests.maild.test_imap import settings

NAME = "support"
SQLITE = "sqlite:///{}/maild.db"


def account_config(account, folder: Path, *, name: str = NAME, after: str = "keep",
                   **tuning) -> dict:
    """One `imap:` item for `account` (a tests.dovecot.Account), password in a file."""
    secret = folder / f"{name}.secret"
    secret.parent.mkdir(parents=True, exist_ok=True)
    secret.write_text(account.password + "\n")
    return {"name": name, "recipient": SUPPORT, "after": after, "password_file": str(secret),
            "url": f"imap://{quote(account.address, safe='')}@{account.host}:{account.port}/INBOX",
            **tuning}


async def call(fn, *args, **kwargs):
    """A blocking Dovecot helper, off the loop maild runs on."""
    return await asyncio.to_thread(fn, *args, **kwargs)


def inbound_message_ids() -> list[str]:
    from store.models import Message
    return sorted(m.message_id or "" for m in Message.select().where(Message.direction == "in"))


def ticket_count() -> int:
    from store.models import Ticket
    return Ticket.select().count()


def progress(desk, name: str = NAME) -> tuple[int, int, int] | None:
    """(uidvalidity, last_uid, acted_uid) as stored in the spool; None before the first."""
    try:
        rows = desk.daemon.runtime.spool.read(
            "SELECT uidvalidity, last_uid, acted_uid FROM imap_progress WHERE account = ?", (name,))
    except SpoolError:          # no imap_progress table yet
        return None
    return rows[0] if rows else None


def stored_progress(folder: Path, name: str = NAME) -> tuple[int, int, int]:
    """The same, read from the spool file while no maild runs."""
    with sqlite3.connect(folder / "spool" / "spool.db") as conn:
        return conn.execute("SELECT uidvalidity, last_uid, acted_uid FROM imap_progress"
                            " WHERE account = ?", (name,)).fetchone()


def message_ids_in(account, folder: str = "INBOX") -> list[str]:
    return sorted(email.message_from_bytes(account.message(uid, folder))["Message-ID"]
                  for uid in account.uids(folder))


async def state(desk, wanted: str, name: str = NAME, timeout: float = 15.0) -> None:
    await desk.wait_for(lambda: desk.daemon.imap_states().get(name) == wanted, timeout)


async def quiet_wait(predicate, timeout: float) -> float:
    """Poll a heavier predicate twice a second; the seconds it took."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout}s")
        await asyncio.sleep(0.5)
    return time.monotonic() - start


# --- a message appended while maild IDLEs --------------------------------------------------

async def test_a_message_appended_while_maild_idles_becomes_a_ticket_within_seconds(
        tmp_path, database_url, imap_account):
    async with running_helpdesk(tmp_path, database_url,
                                imap=[account_config(imap_account, tmp_path)]) as desk:
        await state(desk, "idle")
        start = time.monotonic()
        uid = await call(imap_account.append, mail("Printer on fire", message_id="idle1@customer.example"))
        await desk.wait_for(lambda: desk.tickets(), timeout=10)
        print(f"\nIMAP append -> ticket: {time.monotonic() - start:.2f}s")
        [ticket] = desk.tickets()
        assert ticket["subject"] == "Printer on fire" and ticket["queue"] == "general"
        assert desk.ticket(ticket["number"])["messages"][0]["message_id"] == "idle1@customer.example"
        await state(desk, "idle")
        assert progress(desk)[1:] == (uid, uid)
    assert "\\Seen" not in await call(imap_account.flags, uid)     # after: keep, BODY.PEEK


async def test_mail_another_client_already_read_is_imported_and_flagged_seen(
        tmp_path, database_url, imap_account):
    read = [mail(f"Read elsewhere {n}", message_id=f"read{n}@customer.example") for n in range(2)]
    for raw in read:
        await call(imap_account.append, raw, flags=("\\Seen",))
    unread = await call(imap_account.append, mail("Not read yet", message_id="unread@customer.example"))
    async with running_helpdesk(tmp_path, database_url,
                                imap=[account_config(imap_account, tmp_path, after="seen")]) as desk:
        await desk.wait_for(lambda: len(desk.tickets()) == 3)
        await desk.wait_for(lambda: progress(desk)[2] == unread)
    assert inbound_message_ids() == ["read0@customer.example", "read1@customer.example",
                                     "unread@customer.example"]
    for uid in await call(imap_account.uids):
        assert "\\Seen" in await call(imap_account.flags, uid)


async def test_a_server_without_idle_is_polled(tmp_path, database_url, imap_account, monkeypatch):
    has = ImapSession.has
    monkeypatch.setattr(ImapSession, "has", lambda self, cap: cap != "IDLE" and has(self, cap))
    config = account_config(imap_account, tmp_path, after="seen", poll_seconds=1)
    async with running_helpdesk(tmp_path, database_url, imap=[config]) as desk:
        await state(desk, "polling")
        await call(imap_account.append, mail("Polled", message_id="polled@customer.example"))
        await desk.wait_for(lambda: desk.tickets(), timeout=10)
    assert inbound_message_ids() == ["polled@customer.example"]


# --- the server goes away -----------------------------------------------------------------

def _deliver_to_maildir(account, raw: bytes) -> None:
    """What an MTA's delivery agent does while the IMAP server is down: a file in new/."""
    new = account.maildir / "new"
    path = new / f"{time.time_ns()}.{secrets.token_hex(4)}.test"
    path.write_bytes(raw)
    if os.geteuid() == 0:
        owner = pwd.getpwnam("vmail")
        os.chown(path, owner.pw_uid, owner.pw_gid)


async def test_dovecot_stopped_or_killed_mid_idle_maild_reconnects_and_misses_nothing(
        tmp_path, database_url, private_dovecot):
    account = private_dovecot.add_user("desk@helpdesk.test", secrets.token_urlsafe(12))
    config = account_config(account, tmp_path, after="seen")
    expected = []

    async def arrives(subject: str, message_id: str, *, maildir: bool = False) -> None:
        raw = mail(subject, message_id=message_id)
        expected.append(message_id)
        if maildir:
            await call(_deliver_to_maildir, account, raw)
        else:
            await call(account.append, raw)

    async with running_helpdesk(tmp_path, database_url, imap=[config]) as desk:
        await state(desk, "idle")
        await arrives("Before the outage", "before@customer.example")
        await desk.wait_for(lambda: len(desk.tickets()) == 1)
        await state(desk, "idle")

        await call(private_dovecot.stop)                  # a clean shutdown: BYE mid-IDLE
        await state(desk, "reconnecting")
        await arrives("Delivered while IMAP was down", "down@customer.example", maildir=True)
        await call(private_dovecot.start)
        await arrives("Right after the restart", "restart@customer.example")
        await desk.wait_for(lambda: len(desk.tickets()) == 3, timeout=30)
        await state(desk, "idle", timeout=30)

        await call(private_dovecot.kill)                  # dropped: no BYE, no FIN handshake
        await state(desk, "reconnecting")
        await arrives("While killed", "killed@customer.example", maildir=True)
        await call(private_dovecot.start)
        await arrives("After the kill", "afterkill@customer.example")
        await desk.wait_for(lambda: len(desk.tickets()) == 5, timeout=30)
        await state(desk, "idle", timeout=30)
        await desk.wait_for(lambda: progress(desk)[1] == progress(desk)[2] == 5)
        await desk.settle()
    assert inbound_message_ids() == sorted(expected)        # nothing missed, nothing twice
    assert ticket_count() == 5
    for uid in await call(account.uids):
        assert "\\Seen" in await call(account.flags, uid)


async def test_maild_killed_between_spool_and_flag_makes_no_duplicate_on_restart(
        tmp_path, database_url, imap_account, monkeypatch):
    """The process dies after the messages are durable in the spool and before \\Seen is
    set: the next maild (same spool and database) flags them and fetches none again."""
    ids = [f"crash{n}@customer.example" for n in range(3)]
    uids = await call(imap_account.append_many, [mail(f"Crash {n}", message_id=i)
                                                 for n, i in enumerate(ids)])
    config = account_config(imap_account, tmp_path, after="seen")
    died = asyncio.Event()
    act = ImapAccount._act

    async def dies_before_acting(self, session):
        if self._mark.last_uid > self._mark.acted_uid:
            died.set()
            await asyncio.Event().wait()        # frozen here until the drain gives up on it
        await act(self, session)

    with monkeypatch.context() as patch:
        patch.setattr(ImapAccount, "_act", dies_before_acting)
        patch.setattr(maild.daemon, "IMAP_DRAIN_SECONDS", 0.5)
        async with running_helpdesk(tmp_path, database_url, imap=[config]) as desk:
            await asyncio.wait_for(died.wait(), 15)
            assert progress(desk)[1:] == (uids[-1], 0)     # spooled, not acted on
    for uid in uids:
        assert "\\Seen" not in await call(imap_account.flags, uid)

    async with running_helpdesk(tmp_path, database_url, imap=[config]) as desk:
        await desk.wait_for(lambda: progress(desk)[2] == uids[-1])
        await state(desk, "idle")
        await desk.settle()
        assert ticket_count() == 3
    assert inbound_message_ids() == sorted(ids)
    for uid in uids:
        assert "\\Seen" in await call(imap_account.flags, uid)


# --- after: move ----------------------------------------------------------------------------

async def test_after_move_moves_exactly_the_processed_messages(tmp_path, database_url, imap_account):
    await call(imap_account.append_many, [mail("First", message_id="first@customer.example"),
                                          mail("Second", message_id="second@customer.example")])
    await call(imap_account.create, "Archive")
    await call(imap_account.append, mail("Archived", message_id="archived@customer.example"),
               "Archive")
    config = account_config(imap_account, tmp_path, after="move:Processed")
    async with running_helpdesk(tmp_path, database_url, imap=[config]) as desk:
        await desk.wait_for(lambda: len(desk.tickets()) == 2)
        await state(desk, "idle")
        assert await call(message_ids_in, imap_account, "Processed") == [
            "<first@customer.example>", "<second@customer.example>"]
        assert await call(imap_account.uids) == []
        await asyncio.sleep(1.0)                            # a pause; then more mail
        await call(imap_account.append, mail("Later", message_id="later@customer.example"))
        await desk.wait_for(lambda: len(desk.tickets()) == 3)
        await desk.wait_for(lambda: progress(desk)[2] == progress(desk)[1] == 3)
    assert await call(message_ids_in, imap_account, "Processed") == [
        "<first@customer.example>", "<later@customer.example>", "<second@customer.example>"]
    assert await call(imap_account.uids) == []
    assert await call(message_ids_in, imap_account, "Archive") == ["<archived@customer.example>"]
    assert inbound_message_ids() == ["first@customer.example", "later@customer.example",
                                     "second@customer.example"]


async def test_folders_named_outside_ascii_are_read_and_moved_to(tmp_path, imap_account, caplog):
    """IMAP spells folder names in modified UTF-7 (RFC 3501 §5.1.3): a German site's
    Eingänge and Erledigt/Geschäft are written in maild.yaml as people write them."""
    caplog.set_level(logging.INFO)
    await call(imap_account.create, "Eing&AOQ-nge")
    await call(imap_account.append, mail("Umlaut", message_id="umlaut@customer.example"),
               "Eing&AOQ-nge")
    config = account_config(imap_account, tmp_path, after="move:Erledigt/Geschäft")
    config["url"] = config["url"].replace("/INBOX", "/Eing%C3%A4nge")
    async with running_helpdesk(tmp_path, SQLITE.format(tmp_path), imap=[config]) as desk:
        await desk.wait_for(lambda: len(desk.tickets()) == 1)
        await desk.wait_for(lambda: progress(desk)[1:] == (1, 1))
        await state(desk, "idle")
    assert await call(message_ids_in, imap_account, "Erledigt/Gesch&AOQ-ft") == [
        "<umlaut@customer.example>"]
    assert await call(imap_account.uids, "Eing&AOQ-nge") == []
    assert inbound_message_ids() == ["umlaut@customer.example"]
    assert "imap support: created folder Erledigt/Geschäft for after: move" in caplog.text


async def test_a_move_target_deleted_while_maild_runs_is_created_again(tmp_path, imap_account,
                                                                        caplog):
    """Someone deletes Processed while maild IDLEs; the next message's MOVE is refused.
    The move is retried on the next pass, though no more mail comes, with Processed
    created again: nothing stays behind in INBOX."""
    await call(imap_account.append, mail("First", message_id="first@customer.example"))
    config = account_config(imap_account, tmp_path, after="move:Processed", poll_seconds=1)
    async with running_helpdesk(tmp_path, SQLITE.format(tmp_path), imap=[config]) as desk:
        await desk.wait_for(lambda: (progress(desk) or (0, 0, 0))[2] == 1)
        await state(desk, "idle")

        def delete_processed():
            with imap_account.imap() as conn:
                assert conn.delete('"Processed"')[0] == "OK"
        await call(delete_processed)
        uid = await call(imap_account.append, mail("Second", message_id="second@customer.example"))
        await desk.wait_for(lambda: progress(desk)[1:] == (uid, uid), timeout=15)
    assert await call(imap_account.uids) == []
    assert await call(message_ids_in, imap_account, "Processed") == ["<second@customer.example>"]
    [refused] = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert "after: move on UIDs 2:2 failed, retried on the next pass" in refused


# --- UIDVALIDITY -------------------------------------------------------------------------

async def test_a_uidvalidity_change_reimports_the_folder_without_duplicate_tickets(
        tmp_path, database_url, imap_account, caplog):
    raws = [mail("With an id", message_id="v1@customer.example"),
            mail("Another", message_id="v2@customer.example"),
            mail("No Message-ID at all", "recognised by its bytes")]
    await call(imap_account.append_many, raws)
    config = account_config(imap_account, tmp_path, after="seen")
    async with running_helpdesk(tmp_path, database_url, imap=[config]) as desk:
        await desk.wait_for(lambda: len(desk.tickets()) == 3)
        await desk.wait_for(lambda: progress(desk)[2] == 3)
        await state(desk, "idle")
        before = progress(desk)[0]
        renewed = await call(imap_account.renew_uidvalidity)     # kicks maild's session too
        assert renewed != before
        await call(imap_account.append, mail("After the renumbering", message_id="v4@customer.example"))
        await desk.wait_for(lambda: progress(desk) == (renewed, 4, 4), timeout=30)
        await desk.wait_for(lambda: len(desk.tickets()) == 4)
        await desk.settle()
        assert ticket_count() == 4
    assert inbound_message_ids() == ["", "v1@customer.example", "v2@customer.example",
                                     "v4@customer.example"]
    warnings = [r.getMessage() for r in caplog.records
                if r.levelno == logging.WARNING and "UIDVALIDITY changed" in r.getMessage()]
    assert warnings and f"imap {NAME} INBOX" in warnings[0]


async def test_an_account_pointed_at_another_mailbox_imports_all_of_its_mail(
        tmp_path, dovecot_server, caplog):
    """A migration: account `support` now reads another user's INBOX, whose UIDVALIDITY
    happens to be the old one's (servers with small constant UIDVALIDITYs; Dovecot's is the
    creation second). Its UIDs 1-3 are below the old mailbox's last_uid, imported all the
    same, and the old mail is not made into tickets again."""
    old = dovecot_server.add_user(f"old{secrets.token_hex(4)}@helpdesk.test", "pw-old-1234")
    new = dovecot_server.add_user(f"new{secrets.token_hex(4)}@helpdesk.test", "pw-new-1234")
    await call(old.append_many, [mail(f"Old {n}", message_id=f"old{n}@customer.example")
                                 for n in range(4)])
    await call(new.append_many, [mail(f"New {n}", message_id=f"new{n}@customer.example")
                                 for n in range(3)])
    await call(new.set_uidvalidity, await call(old.uidvalidity))
    async with running_helpdesk(tmp_path, SQLITE.format(tmp_path),
                                imap=[account_config(old, tmp_path)]) as desk:
        await desk.wait_for(lambda: ticket_count() == 4)
        await desk.wait_for(lambda: progress(desk)[1] == 4)
    async with running_helpdesk(tmp_path, SQLITE.format(tmp_path),
                                imap=[account_config(new, tmp_path)]) as desk:
        await desk.wait_for(lambda: ticket_count() == 7)
        await desk.wait_for(lambda: progress(desk)[1] == 3)
        await desk.settle()
        assert ticket_count() == 7
    assert len(inbound_message_ids()) == 7
    assert any(f"the account now reads {new.address} at 127.0.0.1:{new.port}" in r.getMessage()
               for r in caplog.records if r.levelno == logging.WARNING)


# --- the backlog ----------------------------------------------------------------------------

@pytest.mark.slow
async def test_2000_preexisting_messages_are_imported_exactly_once_without_blocking(
        tmp_path, imap_account, dovecot_server, caplog):
    # SQLite only: the store is not what this measures, and it keeps the suite fast.
    caplog.set_level(logging.INFO)
    backlog = [mail(f"Backlog {n}", f"Message {n} of the backlog.",
                    message_id=f"backlog{n}@customer.example") for n in range(2000)]
    uids = await call(imap_account.append_many, backlog)
    small = dovecot_server.add_user(f"small{secrets.token_hex(4)}@helpdesk.test",
                                    secrets.token_urlsafe(12))
    await call(small.append, mail("Small mailbox", message_id="small@customer.example"))
    accounts = [account_config(imap_account, tmp_path, after="seen"),
                account_config(small, tmp_path, name="billing", after="seen")]
    start = time.monotonic()
    async with running_helpdesk(tmp_path, f"sqlite:///{tmp_path}/maild.db", imap=accounts) as desk:
        await desk.wait_for(lambda: (progress(desk, "billing") or (0, 0))[1] == 1, timeout=60)
        big_then = (progress(desk) or (0, 0))[1]
        await desk.send_smtp(mail("By SMTP meanwhile", message_id="smtp@customer.example"))
        await quiet_wait(lambda: (progress(desk) or (0, 0, 0))[2] == uids[-1], 600)
        spooled = time.monotonic() - start
        await quiet_wait(lambda: ticket_count() == 2002, 600)
        took = time.monotonic() - start
        assert desk.daemon.imap_states() == {NAME: "idle", "billing": "idle"}
    print(f"\n2,000-message backlog: all spooled and flagged after {spooled:.1f}s, "
          f"2,002 tickets after {took:.1f}s; the small account was done when the big one "
          f"had spooled {big_then} of 2000")
    ids = inbound_message_ids()
    assert len(ids) == len(set(ids)) == 2002
    assert ticket_count() == 2002
    lines = [r.getMessage() for r in caplog.records if r.name == "maild.imap"]
    assert f"imap {NAME} INBOX: imported 100 of 2000" in lines
    assert f"imap {NAME} INBOX: imported 2000 of 2000" in lines


@pytest.mark.slow
async def test_a_drain_finishes_the_batch_in_hand_and_the_next_start_goes_on(
        tmp_path, imap_account):
    database = f"sqlite:///{tmp_path}/maild.db"       # the IMAP side is what matters here
    ids = [f"drain{n}@customer.example" for n in range(300)]
    await call(imap_account.append_many, [mail(f"Drain {n}", message_id=i) for n, i in enumerate(ids)])
    config = account_config(imap_account, tmp_path, after="seen", batch=50)
    async with running_helpdesk(tmp_path, database, imap=[config]) as desk:
        await desk.wait_for(lambda: (progress(desk) or (0, 0, 0))[1] >= 50, timeout=30)
    _, last, acted = stored_progress(tmp_path)
    print(f"\ndrained after {last} of 300 messages")
    assert last == acted and last % 50 == 0                # stopped between batches
    flags = [await call(imap_account.flags, uid) for uid in (last, last + 1) if uid <= 300]
    assert "\\Seen" in flags[0] and (last == 300 or flags[1] == set())
    async with running_helpdesk(tmp_path, database, imap=[config]) as desk:
        await quiet_wait(lambda: progress(desk)[2] == 300, 120)
        await quiet_wait(lambda: ticket_count() == 300, 120)
    assert inbound_message_ids() == sorted(ids)


class ThrottlingProxy:
    """A TCP proxy that passes the server's bytes on at `rate` bytes/s in small steady
    chunks: a slow link, but never silent for more than a tenth of a second."""

    def __init__(self, target_port: int, rate: int):
        self.target_port, self.rate = target_port, rate
        self.tasks: set[asyncio.Task] = set()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _handle(self, c_reader, c_writer):
        s_reader, s_writer = await asyncio.open_connection("127.0.0.1", self.target_port)

        async def pipe(reader, writer, slow):
            try:
                while data := await reader.read(self.rate // 10 if slow else 65536):
                    writer.write(data)
                    await writer.drain()
                    if slow:
                        await asyncio.sleep(0.1)
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                writer.close()
        self.tasks.add(asyncio.current_task())
        await asyncio.gather(pipe(c_reader, s_writer, False), pipe(s_reader, c_writer, True))

    async def close(self):
        self.server.close()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def test_a_slow_but_steady_link_imports_a_backlog(tmp_path, imap_account, caplog):
    """timeout_seconds bounds the server's silence, not a whole answer: 1.2 MB of mail at
    300 KB/s needs 4 s, twice timeout_seconds, and comes in all the same (the default 30 s
    once stood for a whole FETCH of up to 32 MiB: nothing below 1.1 MB/s imported)."""
    body = ("x" * 76 + "\r\n") * 780
    await call(imap_account.append_many, [mail(f"Big {n}", body, message_id=f"big{n}@c.example")
                                          for n in range(20)])
    proxy = ThrottlingProxy(imap_account.port, rate=300_000)
    port = await proxy.start()
    config = account_config(imap_account, tmp_path, timeout_seconds=2)
    config["url"] = config["url"].replace(f":{imap_account.port}/", f":{port}/")
    try:
        async with running_helpdesk(tmp_path, SQLITE.format(tmp_path), imap=[config],
                                    limits="{max_message_size: 1000000, auto_replies_per_hour: 3}"
                                    ) as desk:
            await desk.wait_for(lambda: (progress(desk) or (0, 0, 0))[1] == 20, timeout=60)
            await desk.wait_for(lambda: len(desk.tickets()) == 20, timeout=60)
    finally:
        await proxy.close()
    assert inbound_message_ids() == sorted(f"big{n}@c.example" for n in range(20))
    assert not [r for r in caplog.records if "reconnecting" in r.getMessage()]   # one session


# --- credentials ----------------------------------------------------------------------------

async def test_credentials_never_appear_in_logs_even_at_debug(
        tmp_path, database_url, imap_account, dovecot_server, caplog, monkeypatch):
    caplog.set_level(logging.DEBUG)
    wrong = 'Wr0ng"pa\\ss-' + secrets.token_hex(4)
    locked = dovecot_server.add_user(f"locked{secrets.token_hex(4)}@helpdesk.test",
                                     secrets.token_urlsafe(12))
    monkeypatch.setenv("MAILD_TEST_WRONG_PASSWORD", wrong)
    refused = account_config(locked, tmp_path, name="billing")
    del refused["password_file"]
    refused["password_env"] = "MAILD_TEST_WRONG_PASSWORD"
    accounts = [account_config(imap_account, tmp_path), refused]
    async with running_helpdesk(tmp_path, database_url, imap=accounts) as desk:
        await call(imap_account.append, mail("Secret-free", message_id="s@customer.example"))
        await desk.wait_for(lambda: desk.tickets())
        await state(desk, "failed_auth", name="billing")
        await state(desk, "idle")
        assert "password" not in repr(desk.daemon.settings.imap)
    logged = "\n".join([caplog.text] + [r.exc_text or "" for r in caplog.records]
                       + [str(r.args) for r in caplog.records])
    for password in (imap_account.password, wrong, quoted(wrong)[1:-1]):
        assert password not in logged
    assert not [r for r in caplog.records if r.name.startswith("aioimaplib")
                and r.levelno < logging.WARNING]
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any(f"login as {locked.address} refused" in e for e in errors)
    assert sum("refused" in e for e in errors) == 1     # retried slowly, not in a tight loop


async def test_without_uidplus_after_delete_never_expunges_mail_it_has_not_imported(
        tmp_path, imap_account, monkeypatch, caplog):
    """A plain EXPUNGE removes every \\Deleted message of the folder. Another client has
    flagged the second message \\Deleted; maild, one message a batch, must not expunge it
    with the first before it is imported. Without UIDPLUS maild only flags, and says so."""
    has = ImapSession.has
    monkeypatch.setattr(ImapSession, "has", lambda self, cap: cap != "UIDPLUS" and has(self, cap))
    first = await call(imap_account.append, mail("First", message_id="first@customer.example"))
    second = await call(imap_account.append, mail("Flagged elsewhere",
                                                  message_id="flagged@customer.example"),
                        flags=("\\Deleted",))
    config = account_config(imap_account, tmp_path, after="delete", batch=1)
    async with running_helpdesk(tmp_path, SQLITE.format(tmp_path), imap=[config]) as desk:
        await desk.wait_for(lambda: (progress(desk) or (0, 0, 0))[1:] == (second, second))
        await desk.wait_for(lambda: len(desk.tickets()) == 2)
    assert inbound_message_ids() == ["first@customer.example", "flagged@customer.example"]
    assert await call(imap_account.uids) == [first, second]
    for uid in (first, second):
        assert "\\Deleted" in await call(imap_account.flags, uid)
    assert any("the server has no UIDPLUS: after: delete leaves each message flagged "
               "\\Deleted in INBOX, not expunged" in r.getMessage() for r in caplog.records)


# --- what the server refuses ----------------------------------------------------------------

async def test_a_missing_folder_or_an_impossible_move_target_is_an_error_not_a_loop(
        tmp_path, imap_account, caplog):
    missing = account_config(imap_account, tmp_path, name="missing")
    missing["url"] = missing["url"].replace("/INBOX", "/Nope")
    bad_target = account_config(imap_account, tmp_path, name="badmove", after="move:Bad.Name")
    await call(imap_account.append, mail("Waits in the mailbox", message_id="waits@customer.example"))
    async with running_helpdesk(tmp_path, f"sqlite:///{tmp_path}/maild.db",
                                imap=[missing, bad_target]) as desk:
        await state(desk, "failed", name="missing")
        await state(desk, "failed", name="badmove")
        assert desk.tickets() == []                         # nothing imported, nothing lost
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any(e.startswith("imap missing: cannot select folder 'Nope': ") for e in errors)
    assert any(e.startswith("imap badmove: cannot create folder 'Bad.Name': ") for e in errors)
    assert len(errors) == 2
    assert await call(imap_account.uids) != []


async def test_a_move_target_the_server_takes_for_the_folder_read_is_refused_not_looped(
        tmp_path, imap_account, caplog):
    """maild.yaml refuses move:inbox on INBOX; should a server still resolve the target to
    the folder read (its own aliases, case rules), the account fails with an error instead
    of moving each message back into the folder, importing and moving it again for ever."""
    uid = await call(imap_account.append, mail("Once", message_id="once@customer.example"))
    loops = settings(imap_account.port, name=NAME, user=imap_account.address,
                     password=imap_account.password, after="move", move_to="inbox")
    with Spool(tmp_path / "spool") as spool:
        account = ImapAccount(loops, submit=spool.put_async, spool=spool)
        stop = asyncio.Event()
        task = asyncio.create_task(account.run(stop))
        try:
            await quiet_wait(lambda: account.state == "failed", 15)
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
        assert spool.depth()["incoming"] == 0
    assert await call(imap_account.uids) == [uid]           # left where it was
    [error] = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert error.startswith(f"imap {NAME}: after: move:inbox is the folder read (INBOX) on "
                            "this server")


async def test_after_delete_expunges_exactly_the_imported_messages(tmp_path, imap_account):
    await call(imap_account.append_many, [mail("One", message_id="one@customer.example"),
                                          mail("Two", message_id="two@customer.example")])
    config = account_config(imap_account, tmp_path, after="delete")
    async with running_helpdesk(tmp_path, f"sqlite:///{tmp_path}/maild.db", imap=[config]) as desk:
        await desk.wait_for(lambda: len(desk.tickets()) == 2)
        await desk.wait_for(lambda: progress(desk)[1:] == (2, 2))
        assert await call(imap_account.uids) == []
        await call(imap_account.append, mail("Three", message_id="three@customer.example"))
        await desk.wait_for(lambda: progress(desk)[1:] == (3, 3))
    assert await call(imap_account.uids) == []
    assert inbound_message_ids() == ["one@customer.example", "three@customer.example",
                                     "two@customer.example"]
