"""The IMAP account runner's parts, and a scripted IMAP server that misbehaves on purpose:
a greeting that never comes, an IDLE never acknowledged (aioimaplib would wait for ever),
a connection dropped mid-IDLE, a refused login. Dovecot plays the well-behaved server in
tests/integration/test_imap.py."""
from __future__ import annotations

import asyncio
import logging

import pytest

from maild import imap_utf7
from maild.config import ImapAccount as ImapSettings
from maild.envelope import Envelope
from maild.imap import STABLE_SECONDS, ImapAccount, _by_size, envelope_for
from maild.imap_client import SecretFilter, guard_credentials, scrub, uid_set
from maild.imap_progress import ImapProgress, Mailbox, Progress
from maild.spool import Spool, SpoolError

PASSWORD = "pw-Fake-Secret"


# --- values ---------------------------------------------------------------------------------

@pytest.mark.parametrize("uids, text", [
    ([1], "1"), ([1, 2, 3], "1:3"), ([1, 2, 3, 7, 9, 10], "1:3,7,9:10"), ([], ""),
])
def test_uid_sets(uids, text):
    assert uid_set(uids) == text


def test_fetches_are_split_by_size_with_a_big_message_alone(monkeypatch):
    monkeypatch.setattr("maild.imap.FETCH_MAX_BYTES", 100)
    sizes = {1: 40, 2: 40, 3: 40, 4: 500, 5: 10}
    assert _by_size([1, 2, 3, 4, 5], sizes) == [[1, 2], [3], [4], [5]]


@pytest.mark.parametrize("name, wire", [
    ("INBOX", "INBOX"), ("Support Mail", "Support Mail"), ("Bad&Name", "Bad&-Name"),
    ("Geschäft", "Gesch&AOQ-ft"), ("Entwürfe/Ä", "Entw&APw-rfe/&AMQ-"), ("😀 x", "&2D3eAA- x"),
    ("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),      # RFC 3501 §5.1.3
])
def test_folder_names_go_to_the_server_in_modified_utf7(name, wire):
    assert imap_utf7.encode(name) == wire
    assert imap_utf7.decode(wire) == name


@pytest.mark.parametrize("text", ["a&b", "&AOQ", "Geschäft", "&Jjo!", "&A-", "&2D0-"])
def test_text_that_is_not_modified_utf7_is_refused(text):
    with pytest.raises(ValueError, match="not modified UTF-7"):
        imap_utf7.decode(text)


def test_folder_names_in_a_server_reply_are_decoded_for_the_log():
    assert imap_utf7.readable("NO Mailbox doesn't exist: Gesch&AOQ-ft (a&b, &x-)") == (
        "NO Mailbox doesn't exist: Geschäft (a&b, &x-)")


@pytest.mark.parametrize("header, mail_from", [
    (b"Return-Path: <carol@customer.example>\r\n", "carol@customer.example"),
    (b"return-path:<>\r\n", ""),                           # a bounce: the null sender
    (b"", None),                                            # not known
    (b"X-Other: 1\r\n\r\nReturn-Path: <in@body.example>\r\n", None),   # the body is not a header
])
def test_the_envelope_of_mailbox_mail(header, mail_from):
    raw = b"Subject: hi\r\n" + header + (b"" if b"\r\n\r\n" in header else b"\r\n") + b"body\r\n"
    assert envelope_for(raw, "Support@Example.com", "support") == Envelope(
        mail_from=mail_from, rcpt_tos=("support@example.com",), received_via="imap",
        peer="support")


def test_backoff_doubles_to_five_minutes_with_jitter(tmp_path):
    with Spool(tmp_path / "spool") as spool:
        account = ImapAccount(settings(1), submit=spool.put_async, spool=spool, jitter=lambda: 0.5)
        assert [account._reconnecting("x") for _ in range(11)] == [
            1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]
        account._jitter = lambda: 0.0
        assert account._reconnecting("x") == 150              # * 0.5 .. * 1.5
        assert account._reconnecting("x", STABLE_SECONDS) == 0.5   # it had been up a while


def test_passwords_are_scrubbed_from_any_record(caplog):
    secret = 'pa"ss\\word'
    guard_credentials(secret)
    assert scrub('LOGIN desk "pa\\"ss\\\\word" and pa"ss\\word') == "LOGIN desk \"***\" and ***"
    record = logging.LogRecord("asyncio", logging.ERROR, __file__, 1, "fatal: %s", (secret,), None)
    try:
        raise ValueError("sent " + secret)
    except ValueError as exc:
        record.exc_info = (type(exc), exc, exc.__traceback__)
    SecretFilter().filter(record)
    assert record.getMessage() == "fatal: ***"
    assert "pa\"ss" not in record.exc_text and "***" in record.exc_text
    assert logging.getLogger("aioimaplib.aioimaplib").level == logging.WARNING


# --- the spool hooks and the progress chain ------------------------------------------------------

def test_a_message_and_its_progress_are_committed_together_or_not_at_all(tmp_path):
    async def main():
        with Spool(tmp_path / "spool") as spool:
            progress = ImapProgress(spool, "support", "INBOX", Mailbox("127.0.0.1", 143, "desk"))
            await progress.reset(7)
            envelope = Envelope(None, ("support@example.com",), "imap", "support")
            await spool.put_async(b"one", envelope, also=progress.advance(7, 0, 1))

            def broken(conn):
                progress.advance(7, 1, 2)(conn)
                raise RuntimeError("disk on fire")
            with pytest.raises(SpoolError):
                await spool.put_async(b"two", envelope, also=broken)
            await spool.put_async(b"three", envelope, also=progress.advance(7, 2, 3))  # chain broken
            assert (await progress.load()).last_uid == 1
            assert spool.depth()["incoming"] == 2               # one and three, not two
            await progress.acted(7, 5)                          # beyond last_uid: refused
            await progress.acted(7, 1)
            assert await progress.load() == Progress(7, 1, 1, progress.mailbox)
            assert spool.read("SELECT count(*) FROM imap_progress") == [(1,)]
    asyncio.run(main())


def test_progress_from_an_older_spool_is_kept_and_a_repointed_account_starts_over(
        tmp_path, caplog):
    """UIDVALIDITY is unique per server and folder only: the progress row names the mailbox
    too. A row an older maild wrote (no mailbox) is kept by the account that reads it next;
    the same account pointed at another mailbox imports all of that one's mail."""
    def older_maild(conn):
        conn.execute("CREATE TABLE imap_progress (account TEXT NOT NULL, folder TEXT NOT NULL,"
                     " uidvalidity INTEGER NOT NULL, last_uid INTEGER NOT NULL,"
                     " acted_uid INTEGER NOT NULL, PRIMARY KEY (account, folder))")
        conn.execute("INSERT INTO imap_progress VALUES ('fake', 'INBOX', 7, 5, 5)")

    async def main():
        with Spool(tmp_path / "spool") as spool:
            await asyncio.wrap_future(spool.transaction(older_maild))
            upgraded = ImapAccount(settings(143), submit=spool.put_async, spool=spool)
            assert await upgraded._sync_progress(7) == Progress(7, 5, 5)
            assert await upgraded.progress.load() == Progress(7, 5, 5, upgraded.mailbox)
            assert await upgraded._sync_progress(7) == Progress(7, 5, 5, upgraded.mailbox)
            repointed = ImapAccount(settings(143, host="IMAP.Other.example", user="desk2"),
                                    submit=spool.put_async, spool=spool)
            assert await repointed._sync_progress(7) == Progress(7, 0, 0, repointed.mailbox)
            assert spool.read("SELECT host, port, user, last_uid FROM imap_progress") == [
                ("imap.other.example", 143, "desk2", 0)]
    asyncio.run(main())
    assert warnings(caplog) == [
        "imap fake INBOX: the account now reads desk2 at imap.other.example:143, its progress "
        "was desk at 127.0.0.1:143's: importing the whole folder (messages already imported "
        "are recognised by Message-ID, no ticket is made twice)"]


# --- a scripted server ------------------------------------------------------------------------

def settings(port: int, **tuning) -> ImapSettings:
    values = {"name": "fake", "url": f"imap://desk@127.0.0.1:{port}/INBOX", "tls": False,
              "host": "127.0.0.1", "port": port, "user": "desk", "folder": "INBOX",
              "recipient": "support@example.com", "after": "keep", "move_to": None,
              "password": PASSWORD, "timeout_seconds": 1}
    return ImapSettings(**(values | tuning))


class FakeImap:
    """Just enough IMAP for a session: greets, logs in, selects an empty INBOX, IDLEs."""

    def __init__(self, *, greet=True, login=True, idle="ack", exists_in_search=False):
        self.greet, self.login, self.idle = greet, login, idle
        self.exists_in_search = exists_in_search      # the first SEARCH also says * 1 EXISTS
        self.connections = 0
        self.lines: list[bytes] = []

    async def handle(self, reader, writer):
        self.connections += 1
        try:
            if self.greet:
                writer.write(b"* OK fake IMAP ready\r\n")
            idle_tag = None
            while line := await reader.readline():
                self.lines.append(line)
                tag, _, rest = line.decode().strip().partition(" ")
                command = rest.split(" ")[0].upper()
                if tag == "DONE":
                    writer.write(f"{idle_tag} OK Idle completed\r\n".encode())
                elif command == "CAPABILITY":
                    writer.write(f"* CAPABILITY IMAP4rev1 IDLE\r\n{tag} OK done\r\n".encode())
                elif command == "LOGIN":
                    writer.write(f"{tag} OK Logged in\r\n".encode() if self.login else
                                 f"{tag} NO [AUTHENTICATIONFAILED] Authentication failed.\r\n".encode())
                elif command == "SELECT":
                    writer.write(f"* 0 EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n{tag} OK [READ-WRITE] "
                                 "Select completed\r\n".encode())
                elif command == "UID":
                    exists, self.exists_in_search = self.exists_in_search, False
                    writer.write(f"* SEARCH\r\n{'* 1 EXISTS' + chr(13) + chr(10) if exists else ''}"
                                 f"{tag} OK Search completed\r\n".encode())
                elif command == "IDLE":
                    idle_tag = tag
                    if self.idle == "refuse":
                        writer.write(f"{tag} NO [LIMIT] Too many IDLE sessions\r\n".encode())
                    elif self.idle == "hang":
                        continue                    # never "+ idling"
                    writer.write(b"+ idling\r\n")
                    if self.idle == "drop":
                        await writer.drain()
                        return                      # closed without BYE
                elif command == "LOGOUT":
                    writer.write(f"* BYE bye\r\n{tag} OK Logout completed\r\n".encode())
                    return
                await writer.drain()
        finally:
            writer.close()


async def serving(fake: FakeImap, tmp_path, caplog, until, **tuning) -> ImapAccount:
    """Run an account against `fake` until `until(account)` holds (10 s at most)."""
    caplog.set_level(logging.DEBUG)
    server = await asyncio.start_server(fake.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    with Spool(tmp_path / "spool") as spool:
        account = ImapAccount(settings(port, **tuning), submit=spool.put_async, spool=spool,
                              jitter=lambda: 0.0)
        stop = asyncio.Event()
        task = asyncio.create_task(account.run(stop))
        try:
            for _ in range(200):
                if until(account):
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError(f"still {account.state}; {fake.connections} connection(s)")
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
            server.close()
    assert PASSWORD not in caplog.text
    return account


def warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


async def test_a_greeting_that_never_comes_is_bounded_and_retried(tmp_path, caplog):
    fake = FakeImap(greet=False)
    await serving(fake, tmp_path, caplog, lambda account: fake.connections >= 2)
    assert "imap fake: connect: no answer within 1s; reconnecting in 0.5s" in warnings(caplog)


async def test_an_idle_never_acknowledged_is_bounded_and_retried(tmp_path, caplog):
    fake = FakeImap(idle="hang")
    await serving(fake, tmp_path, caplog, lambda account: fake.connections >= 2)
    assert "imap fake: IDLE: no answer within 1s; reconnecting in 0.5s" in warnings(caplog)


async def test_a_connection_dropped_mid_idle_is_noticed_at_once(tmp_path, caplog):
    fake = FakeImap(idle="drop")
    await serving(fake, tmp_path, caplog, lambda account: fake.connections >= 2,
                  timeout_seconds=60)                       # so not noticed by a timeout
    assert "imap fake: IDLE: the server closed the connection; reconnecting in 0.5s" in warnings(caplog)


async def test_backoff_grows_when_every_session_fails_after_its_import(tmp_path, caplog):
    """A session that imports, then fails at IDLE (a middlebox that drops it, say) was no
    good session: the next one waits twice as long, not 0.5 s for ever."""
    fake = FakeImap(idle="drop")
    await serving(fake, tmp_path, caplog, lambda account: fake.connections >= 4,
                  timeout_seconds=60)
    delays = [w.rpartition("reconnecting in ")[2] for w in warnings(caplog)]
    assert delays[:3] == ["0.5s", "1.0s", "2.0s"]


async def test_a_server_that_refuses_idle_is_polled(tmp_path, caplog):
    """It advertises IDLE but answers NO (a limit on IDLE sessions): poll, don't reconnect."""
    fake = FakeImap(idle="refuse")
    account = await serving(fake, tmp_path, caplog, lambda account: account.state == "polling")
    assert fake.connections == 1 and account.state == "stopped"
    assert warnings(caplog) == ["imap fake: the server refused IDLE: polling every 300s instead"]


async def test_a_refused_login_is_failed_auth_and_retried_slowly(tmp_path, caplog):
    fake = FakeImap(login=False)
    account = await serving(fake, tmp_path, caplog, lambda account: account.state == "failed_auth")
    await asyncio.sleep(0)
    assert account.state == "stopped" and fake.connections == 1
    [error] = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert error.startswith("imap fake: login as desk refused: [AUTHENTICATIONFAILED] "
                            "Authentication failed.; retrying in 150s")
    assert any(PASSWORD.encode() in line for line in fake.lines)     # it was sent, never shown


async def test_mail_announced_outside_idle_is_looked_for_before_idling(tmp_path, caplog):
    """aioimaplib drops an EXISTS that comes with a SEARCH answer; the server counts it as
    told and won't repeat it in IDLE, so maild must search again before it idles."""
    fake = FakeImap(exists_in_search=True)
    await serving(fake, tmp_path, caplog, lambda account: account.state == "idle")
    commands = [line.split()[1:3] for line in fake.lines]
    before_idle = commands[:commands.index([b"IDLE"])]
    assert before_idle.count([b"UID", b"SEARCH"]) == 2
