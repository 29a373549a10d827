"""maild behind a real Postfix (issue 7, mail hygiene): the whole path through an MTA.

Customers write through the session's Postfix (tests/postfix.py), which delivers
`example.com` to this test's maild over LMTP; maild's relay is the same Postfix, which
delivers `sink.test` to a recording SMTP sink and carol@customer.test to Dovecot over LMTP
(with her Sieve vacation).  So acknowledgements, agent replies, real DSNs and real
out-of-office replies all travel the way they do in production:

    customer --SMTP--> Postfix --LMTP--> maild --SMTP--> Postfix --SMTP--> sink.test
                                                                --LMTP--> Dovecot (carol)
    DSN / vacation reply --> Postfix --LMTP--> maild (support+bounces-<outbox id>@example.com)

The Postfix helpers block, so they run in a thread (`asyncio.to_thread`): the daemon runs
on the test's event loop and must keep answering Postfix meanwhile.
"""
from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import pytest

from maild.outbound import bounce_address
from tests.clients import reply
from tests.conftest import CUSTOMER, REPO, SINK_DOMAIN, _unavailable
from tests.postfix import Postfix, PostfixError, Sink, SubmitRefused, wait_until
from tests.integration.harness import SUPPORT, mail, running_helpdesk, write_config
from tests.integration.test_agents import PASS, TRUST, original

AGENT = "alice@example.com"
SWAKS = shutil.which("swaks")
RULES = f"""\
version: 1
agents:
  - {{address: {AGENT}, name: Alice Agent}}
teams:
  l1: {{members: [{AGENT}]}}
queues:
  general: {{address: {SUPPORT}, team: l1}}
"""


@contextlib.asynccontextmanager
async def helpdesk_behind(postfix, tmp_path, database_url, **extra):
    """maild relaying through `postfix`, which delivers example.com to its LMTP listener."""
    async with running_helpdesk(tmp_path, database_url, relay=postfix.relay_url, **extra) as desk:
        await asyncio.to_thread(postfix.route,
                                {"example.com": f"lmtp:inet:127.0.0.1:{desk.lmtp_port}"})
        yield desk


async def submit(postfix, raw: bytes, sender: str, rcpts: list[str]) -> str:
    return await asyncio.to_thread(postfix.submit, raw, sender, rcpts)


async def delivered(postfix, to: str, status: str | None = None):
    """Postfix's log line for `to` (postlogd may write it a moment after the queue empties)."""
    return await asyncio.to_thread(postfix.wait_for_delivery, to=to, status=status)


async def settle(desk, postfix) -> None:
    """Until neither maild nor Postfix has mail in hand: maild's spool and outbox idle,
    then Postfix's queue empty, then maild still idle and the queue still empty."""
    while True:
        await desk.settle()
        await asyncio.to_thread(postfix.wait_queue_empty)
        await desk.settle()
        if not await asyncio.to_thread(postfix.queue):
            return


def outbox_rows() -> list:
    """Outbox rows with their ids (desk.outbox() has no id, and the VERP address needs it)."""
    from store.models import Outbox
    return list(Outbox.select().order_by(Outbox.id))


def stored(kind: str | None = None) -> list:
    """Inbound messages maild stored, with the address they were delivered to."""
    from store.models import Delivery, Message
    query = (Message.select(Message, Delivery).join(Delivery)
             .where(Message.direction == "in").order_by(Message.id))
    return [m for m in query if kind is None or m.kind == kind]


def parsed(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)


async def test_customer_mail_through_postfix_becomes_a_ticket_and_the_acknowledgement_goes_back(
        tmp_path, database_url, postfix_server, postfix_sink):
    customer = "dave@sink.test"
    async with helpdesk_behind(postfix_server, tmp_path, database_url) as desk:
        raw = mail("Printer on fire", sender=f"Dave Customer <{customer}>",
                   message_id="e2e@sink.test")
        await submit(postfix_server, raw, customer, [SUPPORT])
        await settle(desk, postfix_server)

        [ticket] = desk.tickets()
        assert (ticket["requester"], ticket["subject"]) == (customer, "Printer on fire")
        [message] = stored()
        assert (message.kind, message.deliveries.get().via) == ("normal", "lmtp")
        assert message.raw.endswith(raw)       # Postfix's Received: line on top, then the bytes
        [ack] = postfix_sink.to(customer)
        assert f"[Acme #{ticket['number']}]" in ack.message["Subject"]
        [row] = outbox_rows()
        assert ack.mail_from == bounce_address(SUPPORT, row.id) == f"support+bounces-{row.id}@example.com"
        assert row.status == "sent"

        inbound = await delivered(postfix_server, SUPPORT)
        assert (inbound.service, inbound.status) == ("lmtp", "sent")
        assert inbound.relay.endswith(f":{desk.lmtp_port}")
        outbound = await delivered(postfix_server, customer)
        assert (outbound.service, outbound.status) == ("smtp", "sent")
        assert outbound.relay.endswith(f":{postfix_sink.port}")
        assert len(postfix_server.deliveries()) == 2


@pytest.mark.parametrize("customer, status, words, postfix_outcome", [
    ("nosuchuser@sink.test", "5.1.1", "User unknown", "bounced"),   # refused: 550
    ("tempfail@sink.test", "4.2.2", "Mailbox full", "deferred"),    # expired: 452, lifetime 0
], ids=["rejected", "expired"])
async def test_a_real_dsn_for_the_acknowledgement_comes_back_to_its_verp_address(
        tmp_path, database_url, postfix_server, postfix_sink, customer, status, words,
        postfix_outcome):
    async with helpdesk_behind(postfix_server, tmp_path, database_url) as desk:
        await submit(postfix_server, mail("Where is my parcel?", sender=f"Customer <{customer}>",
                                          message_id=f"dsn-{status}@sink.test"), customer, [SUPPORT])
        await settle(desk, postfix_server)

        # the acknowledgement left maild, and the sink refused it
        [ticket] = [t for t in desk.tickets() if t["requester"] == customer]
        [ack_row] = outbox_rows()
        verp = bounce_address(SUPPORT, ack_row.id)
        refused = await delivered(postfix_server, customer)
        assert (refused.status, refused.dsn) == (postfix_outcome, status)
        # Postfix's DSN went to the VERP address, over LMTP to maild, which took it
        returned = await delivered(postfix_server, verp)
        assert (returned.service, returned.status) == ("lmtp", "sent")
        # Postfix writes the DSN after the original left its queue, so the queue can look
        # empty before it exists: wait for maild to have stored it
        await desk.wait_for(lambda: stored("bounce"), timeout=30)
        await settle(desk, postfix_server)
        [bounce] = stored("bounce")
        delivery = bounce.deliveries.get()
        assert (delivery.recipient, delivery.via) == (verp, "lmtp")
        dsn = parsed(bytes(bounce.raw))
        assert dsn.get_content_type() == "multipart/report"
        assert f"Status: {status}".encode() in bytes(bounce.raw) and words.encode() in bytes(bounce.raw)
        # and nothing answered the DSN: the sink got nothing, Postfix delivered nothing more
        assert postfix_sink.received == []
        assert len(postfix_server.deliveries()) == 3     # customer -> maild, ack, DSN -> maild

        # maild read it: the acknowledgement is marked bounced, on the ticket, no new ticket
        [row] = desk.outbox()
        assert row["status"] == "bounced"
        assert status in row["last_error"] and words in row["last_error"]
        events = desk.ticket(ticket["number"])["events"]
        assert any(e["kind"] == "delivery_failed" for e in events), events
        assert len(desk.tickets()) == 1           # the DSN opened no ticket of its own


async def test_an_out_of_office_customer_gets_one_acknowledgement_and_one_reply_and_no_loop(
        tmp_path, database_url, postfix_server, postfix_sink, customer_mailbox, dovecot_lmtp):
    await asyncio.to_thread(postfix_server.route, {AGENT: postfix_sink.nexthop})
    try:
        log_start = len(dovecot_lmtp.log_text())

        def dovecot_log() -> str:         # this test's lines only: the instance is shared
            return dovecot_lmtp.log_text()[log_start:]

        async with helpdesk_behind(postfix_server, tmp_path, database_url, rules=RULES,
                                   trust=TRUST) as desk:
            # carol writes; the acknowledgement reaches her mailbox, her vacation stays quiet
            await submit(postfix_server, mail("VPN login fails", "It says 'access denied'.",
                                              sender=f"Carol Customer <{CUSTOMER}>",
                                              to=SUPPORT, message_id="vpn@customer.test"),
                         CUSTOMER, [SUPPORT])
            await settle(desk, postfix_server)
            [ticket] = desk.tickets()
            [ack] = [parsed(customer_mailbox.message(uid)) for uid in customer_mailbox.uids()]
            assert ack["Auto-Submitted"] == "auto-replied"
            assert f"[Acme #{ticket['number']}]" in ack["Subject"]
            ack_verp = bounce_address(SUPPORT, outbox_rows()[0].id)
            await desk.wait_for(lambda: "discarding vacation response to auto-submitted message "
                                        f"from <{ack_verp}>" in dovecot_log())

            # the agent answers from her mail client, through the same Postfix
            [notification] = postfix_sink.to(AGENT)
            answer = reply("thunderbird", original(notification.message), from_name="Alice Agent",
                           from_address=AGENT, to=SUPPORT, extra_headers=(PASS,),
                           text="Hello Carol,\n\nplease reset your token, then try again.")
            await submit(postfix_server, answer, AGENT, [SUPPORT])
            await settle(desk, postfix_server)
            before = desk.ticket(ticket["number"])
            rows_before = len(outbox_rows())

            # ... her reply reaches carol, whose vacation answers it, to the VERP address
            kinds = [m["kind"] for m in before["messages"]]
            assert "agent_reply" in kinds
            [vacation] = stored("auto_reply")
            [reply_row] = [r for r in outbox_rows() if r.template == "reply"]
            reply_verp = bounce_address(SUPPORT, reply_row.id)
            assert vacation.deliveries.get().recipient == reply_verp
            returned = await delivered(postfix_server, reply_verp)
            assert (returned.service, returned.status) == ("lmtp", "sent")
            assert vacation.ticket.number == ticket["number"]
            assert vacation.subject == "Out of office" and vacation.from_address == CUSTOMER

            # ... which maild stores and answers with nothing
            assert len(desk.tickets()) == 1
            assert rows_before == len(outbox_rows())
            assert before["status"] == desk.ticket(ticket["number"])["status"]
            assert len(postfix_sink.to(AGENT)) == 1          # no notification about it

            # carol's mailbox: exactly the acknowledgement and the agent's reply
            inbox = [parsed(customer_mailbox.message(uid)) for uid in customer_mailbox.uids()]
            assert [m["Subject"] for m in inbox] == [ack["Subject"], f"Re: {ack['Subject']}"]
            assert "please reset your token" in inbox[1].get_body(("plain",)).get_content()
            assert inbox[1]["Auto-Submitted"] is None
            vacation_lines = [line for line in dovecot_log().splitlines()
                              if "sent vacation response" in line]
            assert len(vacation_lines) == 1
    finally:
        await asyncio.to_thread(postfix_server.route, {AGENT: None})



# --- the documented setup (docs/postfix.md), in a real Postfix -----------------------------
#
# The snippets marked `<!-- tested: NAME -->` in docs/postfix.md are read here as they stand;
# only the machine-specific parts are replaced (the LMTP port, /etc/postfix/ -> the test
# instance's folder, /usr/bin/maild and /etc/maild/maild.yaml -> this checkout, user=maild
# -> nobody).  test_postfix_crash.py runs on the same setup.

DOCS = Path(__file__).resolve().parents[2] / "docs" / "postfix.md"
DOCUMENTED_LMTP = "lmtp:inet:127.0.0.1:2424"


def documented(block: str, doc: Path = DOCS) -> list[str]:
    """The lines of the code block under `<!-- tested: {block} -->` in `doc`."""
    text = doc.read_text()
    marker = f"<!-- tested: {block} -->\n```"
    assert marker in text, f"{doc.name} has no tested block {block!r}"
    start = text.index("\n", text.index(marker) + len(marker)) + 1
    return [line for line in text[start:text.index("```", start)].splitlines() if line.strip()]


def documented_main_cf(postfix: Postfix, block: str = "main.cf") -> dict[str, str]:
    """The main.cf parameters of a tested block, its /etc/postfix/ paths in `postfix`'s folder."""
    settings = {}
    for line in documented(block):
        key, sep, value = line.partition(" = ")
        assert sep, f"not a main.cf line: {line!r}"
        settings[key.strip()] = value.strip().replace("/etc/postfix/", f"{postfix.config_directory}/")
    return settings


def use_documented_setup(postfix: Postfix) -> None:
    """Before start(): docs/postfix.md's main.cf and recipient table (routes: see below)."""
    assert not postfix.running
    postfix.settings.update(documented_main_cf(postfix))
    recipients = postfix.write_map("maild_recipients", "\n".join(documented("maild_recipients")) + "\n")
    assert postfix.settings["relay_recipient_maps"] == recipients
    assert postfix.settings["transport_maps"] == f"hash:{postfix.config_directory}/transport"


def documented_routes(nexthop: str) -> dict[str, str]:
    """docs/postfix.md's transport table, with our maild's LMTP address in place of 2424."""
    routes = {}
    for line in documented("transport"):
        key, value = line.split()
        assert value == DOCUMENTED_LMTP, value
        routes[key] = nexthop
    return routes


@pytest.fixture(scope="module")
def documented_postfix():
    """A Postfix set up as docs/postfix.md says, keeping deferred mail (retrying), with a
    sink of its own for sink.test."""
    reason = Postfix.unavailable()
    if reason is not None:
        _unavailable(reason)
    sink = Sink()
    sink.start()
    server = Postfix(retrying=True)
    try:
        use_documented_setup(server)
        server.route({SINK_DOMAIN: sink.nexthop})
        server.start()
    except PostfixError as exc:
        server.close()
        sink.stop()
        _unavailable(f"Postfix did not start: {exc}")
    yield server, sink
    server.close()
    sink.stop()


@pytest.fixture
def documented_setup(documented_postfix):
    postfix, sink = documented_postfix
    sink.clear()
    postfix.mark()
    yield postfix, sink
    with contextlib.suppress(TimeoutError):
        postfix.wait_queue_empty(timeout=10)


async def route_to(postfix, desk) -> None:
    await asyncio.to_thread(postfix.route, documented_routes(f"lmtp:inet:127.0.0.1:{desk.lmtp_port}"))


def swaks(postfix, raw: bytes, sender: str, rcpt: str, folder: Path) -> str:
    """Send with swaks, as a sysadmin checks a setup; its transcript."""
    message = folder / "swaks.eml"
    message.write_bytes(raw)
    done = subprocess.run([SWAKS, "--server", postfix.host, "--port", str(postfix.port),
                           "--from", sender, "--to", rcpt, "--data", f"@{message}"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


async def test_the_documented_postfix_setup_delivers_to_maild_and_refuses_unknown_addresses(
        tmp_path, database_url, documented_setup):
    postfix, sink = documented_setup
    customer = "erin@sink.test"
    async with running_helpdesk(tmp_path, database_url, relay=postfix.relay_url,
                                helpdesk="comment_address: support+comment@example.com") as desk:
        await route_to(postfix, desk)
        # an address that is not the help desk's: refused by Postfix itself, during SMTP
        with pytest.raises(SubmitRefused, match="User unknown in relay recipient table"):
            await submit(postfix, mail("Hello sales", to="sales@example.com"), customer,
                         ["sales@example.com"])
        # the help desk's address, sent the way a sysadmin tries the setup (swaks if installed)
        raw = mail("Printer on fire", sender=f"Erin <{customer}>", message_id="doc@sink.test")
        if SWAKS:
            transcript = await asyncio.to_thread(swaks, postfix, raw, customer, SUPPORT, tmp_path)
            assert "<-  250 2.0.0 Ok: queued as" in transcript
        else:
            await submit(postfix, raw, customer, [SUPPORT])
        # a bounce for outbound mail 1 at its VERP address, with the null sender: accepted
        # only thanks to recipient_delimiter = +, and delivered with the full address
        verp = bounce_address(SUPPORT, 1)
        await submit(postfix, mail("Undelivered Mail Returned to Sender",
                                   sender="MAILER-DAEMON@mx.elsewhere.test",
                                   message_id="verp@mx.elsewhere.test"), "", [verp])
        await settle(desk, postfix)

        [ticket] = [t for t in desk.tickets() if t["requester"] == customer]
        assert ticket["subject"] == "Printer on fire"
        [ack] = sink.to(customer)
        assert f"[Acme #{ticket['number']}]" in ack.message["Subject"]
        deliveries = {m.message_id: m.deliveries.get() for m in stored()}
        assert (deliveries["doc@sink.test"].recipient, deliveries["doc@sink.test"].via) == (SUPPORT, "lmtp")
        assert deliveries["verp@mx.elsewhere.test"].recipient == verp
        for to in (SUPPORT, verp):
            line = await delivered(postfix, to, "sent")
            assert line.service == "lmtp" and line.relay.endswith(f":{desk.lmtp_port}")
        assert not postfix.deliveries(to="sales@example.com")     # refused: nothing queued


async def test_a_451_from_maild_is_deferred_by_postfix_and_delivered_once_maild_can_spool_again(
        tmp_path, database_url, documented_setup):
    from maild.spool import SpoolError

    postfix, sink = documented_setup
    async with running_helpdesk(tmp_path, database_url, relay=postfix.relay_url) as desk:
        await route_to(postfix, desk)
        [lmtp] = [h for h in desk.daemon.handlers if h.protocol == "lmtp"]
        spool = lmtp._submit

        async def disk_full(raw, envelope):
            raise SpoolError("spool write failed: database or disk is full")
        lmtp._submit = disk_full
        await submit(postfix, mail("Printer on fire", message_id="451@sink.test",
                                   sender="Fay <fay@sink.test>"), "fay@sink.test", [SUPPORT])
        deferred = await delivered(postfix, SUPPORT, "deferred")
        assert deferred.dsn == "4.3.0" and "451 4.3.0 Temporary failure, please retry" in deferred.text
        assert desk.tickets() == [] and postfix.queue()          # Postfix keeps it

        lmtp._submit = spool                                     # the disk has room again
        await settle(desk, postfix)
        [ticket] = desk.tickets()
        assert ticket["requester"] == "fay@sink.test"
        assert (await delivered(postfix, SUPPORT, "sent")).service == "lmtp"
        assert len(sink.to("fay@sink.test")) == 1                # one acknowledgement, no DSN


async def test_a_mail_over_maild_s_size_limit_is_bounced_by_postfix_with_a_dsn(
        tmp_path, database_url, documented_setup):
    postfix, sink = documented_setup
    customer = "gus@sink.test"
    async with running_helpdesk(tmp_path, database_url, relay=postfix.relay_url,
                                limits="{max_message_size: 100000}") as desk:
        await route_to(postfix, desk)
        big = mail("Logs attached", ("y" * 76 + "\r\n") * 2000,
                   sender=f"Gus <{customer}>", message_id="big@sink.test")
        assert 100_000 < len(big) < int(documented_main_cf(postfix)["message_size_limit"])
        await submit(postfix, big, customer, [SUPPORT])
        # maild announces its limit in LHLO (SIZE 100000): Postfix bounces without sending
        bounced = await delivered(postfix, SUPPORT, "bounced")
        assert (bounced.service, bounced.dsn) == ("lmtp", "5.3.4")
        size = re.match(r"message size (\d+) exceeds size limit 100000 of server 127\.0\.0\.1",
                        bounced.text)
        assert size and int(size[1]) > len(big)         # with Postfix's Received: line
        await settle(desk, postfix)
        assert desk.tickets() == []
        [dsn] = await desk.wait_for(lambda: sink.to(customer))
        assert dsn.mail_from == "" and dsn.message.get_content_type() == "multipart/report"


async def test_lmtp_over_a_unix_socket(tmp_path, database_url, documented_setup):
    from maild.config import load_settings
    from maild.daemon import Daemon
    from maild.runtime import Runtime
    from tests.integration.harness import Helpdesk, RecordingSink, write_config

    postfix, sink = documented_setup
    folder = Path(tempfile.mkdtemp(prefix="maild-socket-"))    # tmp_path is 0700: postfix can't reach it
    os.chmod(folder, 0o755)
    socket_path = folder / "lmtp.sock"
    config = write_config(tmp_path, database_url, postfix.relay_url)
    config.write_text(config.read_text().replace('listen: {lmtp: "127.0.0.1:0", smtp: "127.0.0.1:0"}',
                                                 f'listen: {{lmtp: "unix:{socket_path}"}}'))
    daemon = Daemon(Runtime.open(load_settings(config)), install_signals=False)
    task = asyncio.create_task(daemon.run())
    try:
        await asyncio.wait_for(daemon.store_ready.wait(), 15)
        desk = Helpdesk(config, daemon, RecordingSink(), task)
        os.chmod(socket_path, 0o666)     # what maild has no setting for yet (docs/postfix.md)
        await asyncio.to_thread(postfix.route, documented_routes(f"lmtp:unix:{socket_path}"))
        await submit(postfix, mail("VPN down", sender="Hal <hal@sink.test>", message_id="unix@sink.test"),
                     "hal@sink.test", [SUPPORT])
        await settle(desk, postfix)
        [ticket] = desk.tickets()
        assert ticket["subject"] == "VPN down"
        line = await delivered(postfix, SUPPORT, "sent")
        assert (line.service, line.relay) == ("lmtp", f"{postfix.hostname}[{socket_path}]")
        [message] = stored()
        assert message.deliveries.get().via == "lmtp"
        assert len(sink.to("hal@sink.test")) == 1
    finally:
        daemon.stop.set()
        await asyncio.wait_for(task, 15)
        shutil.rmtree(folder, ignore_errors=True)


# --- the pipe: Postfix runs `maild ingest` (docs/postfix.md) --------------------------------

PIPE_USER = "nobody"      # pipe(8) refuses root and Postfix's own user


def python_for(user: str) -> tuple[str, str] | None:
    """An interpreter `user` can run with this checkout and its packages importable, and
    the PYTHONPATH for it: this venv's, or else the system's of the same version (the
    venv may live where `user` cannot go, e.g. under /root)."""
    site = sysconfig.get_paths()["purelib"]
    path = f"{REPO}:{site}"
    for python in (sys.executable, f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"):
        try:
            done = subprocess.run([python, "-c", "import maild.cli, store.db, parsers.message"],
                                  env={"PYTHONPATH": path, "PATH": "/usr/bin:/bin"}, user=user,
                                  capture_output=True, timeout=60)
        except OSError:
            continue
        if done.returncode == 0:
            return python, path
    return None


@pytest.fixture
def pipe_postfix():
    """A Postfix whose `example.com` goes to the documented pipe transport, running this
    checkout's `maild ingest` as nobody, with a folder nobody owns for maild; yields
    (postfix, sink, folder, maild) where `maild(*argv)` runs the CLI as nobody."""
    reason = Postfix.unavailable()
    found = python_for(PIPE_USER) if reason is None else None
    if reason is None and found is None:
        reason = f"no Python that {PIPE_USER} can run with this checkout's packages"
    if reason is not None:
        _unavailable(reason)
    python, path = found
    folder = Path(tempfile.mkdtemp(prefix="maild-pipe-"))
    os.chmod(folder, 0o755)
    command = folder / "maild"
    command.write_text(f'#!/bin/sh\nPYTHONPATH={path} exec {python} -m maild.cli "$@"\n')
    os.chmod(command, 0o755)
    config = folder / "maild.yaml"
    master_cf = "\n".join(documented("master.cf"))
    for documented_text, ours in (("/usr/bin/maild", str(command)), ("/etc/maild/maild.yaml", str(config)),
                                  ("user=maild", f"user={PIPE_USER}")):
        assert documented_text in master_cf
        master_cf = master_cf.replace(documented_text, ours)
    sink = Sink()
    sink.start()
    server = Postfix(retrying=True, services=[master_cf])
    server.settings.update(documented_main_cf(server, "main.cf pipe"))
    user = pwd.getpwnam(PIPE_USER)
    try:
        server.route({"example.com": "maild:", SINK_DOMAIN: sink.nexthop})
        server.start()
        write_config(folder, f"sqlite:///{folder}/maild.db", server.relay_url)
        for item in [folder, *folder.rglob("*")]:
            os.chown(item, user.pw_uid, user.pw_gid)

        def maild(*argv: str) -> subprocess.CompletedProcess:
            return subprocess.run([str(command), "-c", str(config), *argv], user=user.pw_uid,
                                  group=user.pw_gid, extra_groups=[], capture_output=True,
                                  text=True, timeout=120)
        assert maild("init").returncode == 0
        yield server, sink, folder, maild
    except PostfixError as exc:
        _unavailable(f"Postfix did not start: {exc}")
    finally:
        server.close()
        sink.stop()
        shutil.rmtree(folder, ignore_errors=True)


def test_the_documented_pipe_transport_runs_maild_ingest(pipe_postfix):
    postfix, sink, folder, maild = pipe_postfix
    customer = "ida@sink.test"
    # the spool is unusable (a file where its folder should be): ingest exits 75, Postfix defers
    spool = folder / "spool"
    spool.rename(folder / "spool.away")
    spool.write_text("not a folder")
    postfix.submit(mail("Printer on fire", sender=f"Ida <{customer}>", message_id="pipe@sink.test"),
                   customer, [SUPPORT])
    deferred = postfix.wait_for_delivery(to=SUPPORT, status="deferred")
    assert (deferred.service, deferred.dsn) == ("pipe", "4.3.0")
    assert deferred.text.startswith("temporary failure. Command output: ")   # ingest's stderr
    assert "maild ingest: could not spool the message, retry later" in deferred.text
    assert postfix.queue()                                       # kept, to be tried again

    spool.unlink()
    (folder / "spool.away").rename(spool)                        # fixed: the next try goes in
    postfix.flush()           # at once (the backoff alone retried within 60 s, but not always)
    sent = postfix.wait_for_delivery(to=SUPPORT, status="sent", timeout=60)
    assert sent.service == "pipe" and sent.text.startswith("delivered via maild service (")
    assert "message-id=<pipe@sink.test> ticket=#1 created" in sent.text    # ingest's log line
    # a bounce of outbound mail 1, with the null sender: null_sender= passes it on as ''
    verp = bounce_address(SUPPORT, 1)
    postfix.submit(mail("About your mail", sender="Jo Relay <jo@mx.elsewhere.test>",
                        message_id="pipe-bounce@mx.elsewhere.test"), "", [verp])
    postfix.wait_for_delivery(to=verp, status="sent", timeout=60)
    postfix.wait_queue_empty(timeout=60)

    done = maild("export")
    assert done.returncode == 0, done.stderr
    messages = {m["message_id"]: m for line in done.stdout.splitlines()
                for m in json.loads(line)["messages"]}
    ticket_mail = messages["pipe@sink.test"]
    assert ticket_mail["kind"] == "normal" and ticket_mail["from"] == customer
    assert ticket_mail["delivered_to"][0]["recipient"] == SUPPORT
    assert ticket_mail["delivered_to"][0]["via"] == "ingest"
    bounce = messages["pipe-bounce@mx.elsewhere.test"]
    assert bounce["kind"] == "bounce" and bounce["delivered_to"][0]["recipient"] == verp
    [ack] = wait_until(lambda: sink.to(customer), 30, "the acknowledgement")
    assert "[Acme #" in ack.message["Subject"]
    assert not [d for d in postfix.deliveries() if d.status == "bounced"]
