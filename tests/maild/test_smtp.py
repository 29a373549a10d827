"""SMTP intake on a real aiosmtpd server (loopback, port 0), sent with aiosmtplib."""
from __future__ import annotations

import aiosmtplib
import pytest

from maild.intake import (ERR_SHUTDOWN, ERR_TEMP, ERR_TOO_BIG, ERR_TOO_BIG_DECLARED,
                          IntakeHandler)
from maild.listen import start_listener
from tests.maild.lmtpclient import LMTPClient

OURS = {"support@example.com", "billing@example.com"}
LIMIT = 4096
RAW = ("From: Kunde <kunde@example.org>\r\n"
       "To: support@example.com\r\n"
       "Subject: =?utf-8?q?Dr=C3=BCcker?=\r\n"
       "Message-ID: <1@example.org>\r\n"
       "Content-Type: text/plain; charset=utf-8\r\n"
       "Content-Transfer-Encoding: 8bit\r\n"
       "\r\n"
       "Der Drucker druckt nur noch Müll. Grüße\r\n"
       ".leading dot\r\n"
       "..two dots\r\n").encode("utf-8")


class Spool:
    """Records what was submitted; the recording-handler pattern from aiosmtplib's tests."""

    def __init__(self) -> None:
        self.items: list = []

    async def put(self, raw, envelope) -> int:
        self.items.append((raw, envelope))
        return len(self.items)


async def broken_spool(raw, envelope) -> int:
    raise OSError("disk full")


@pytest.fixture
def spool() -> Spool:
    return Spool()


@pytest.fixture
async def serve():
    servers = []

    async def start(submit, accepts=OURS.__contains__) -> tuple[IntakeHandler, int]:
        handler = IntakeHandler(submit=submit, accepts=accepts, protocol="smtp")
        server = await start_listener("127.0.0.1:0", handler, "smtp", data_size_limit=LIMIT,
                                      hostname="maild.test")
        servers.append(server)
        return handler, server.sockets[0].getsockname()[1]

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


async def test_customer_mail_is_queued_byte_for_byte(serve, spool):
    _, port = await serve(spool.put)
    errors, reply = await aiosmtplib.send(RAW, sender="kunde@example.org", port=port,
                                          recipients=["Support@Example.COM"], hostname="127.0.0.1")
    assert (errors, reply) == ({}, "2.0.0 Ok: queued as 1")
    [(raw, envelope)] = spool.items
    assert raw == RAW
    assert envelope.rcpt_tos == ("support@example.com",)
    assert (envelope.mail_from, envelope.received_via) == ("kunde@example.org", "smtp")
    assert envelope.peer.startswith("127.0.0.1:")


async def test_bounce_with_null_sender_is_queued(serve, spool):
    _, port = await serve(spool.put)
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port) as client:
        await client.sendmail("", ["support@example.com"], RAW)     # MAIL FROM:<>
    assert spool.items[0][1].mail_from == ""


async def test_mail_to_unknown_address_is_refused_550(serve, spool):
    _, port = await serve(spool.put)
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as refused:
        await aiosmtplib.send(RAW, sender="kunde@example.org", recipients=["nobody@example.com"],
                              hostname="127.0.0.1", port=port)
    [error] = refused.value.recipients
    assert error.code == 550 and error.message.startswith("5.1.1 <nobody@example.com>")
    assert spool.items == []


async def test_oversize_mail_declared_with_size_is_refused_552_at_mail_from(serve, spool):
    # aiosmtplib declares SIZE= (as Postfix does); aiosmtpd refuses at MAIL FROM.
    _, port = await serve(spool.put)
    with pytest.raises(aiosmtplib.SMTPSenderRefused) as refused:
        await aiosmtplib.send(RAW * 100, sender="kunde@example.org", port=port,
                              recipients=["support@example.com"], hostname="127.0.0.1")
    assert f"{refused.value.code} {refused.value.message}" == ERR_TOO_BIG_DECLARED
    assert spool.items == []


async def test_oversize_mail_without_size_is_refused_552_after_data(serve, spool):
    # aiosmtpd's own text, without an enhanced status code: '552 Error: Too much mail data'.
    _, port = await serve(spool.put)
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port) as client:
        await client.mail("kunde@example.org")
        await client.rcpt("support@example.com")
        with pytest.raises(aiosmtplib.SMTPDataError) as refused:
            await client.data(RAW * 100)
    assert f"{refused.value.code} {refused.value.message}" == ERR_TOO_BIG
    assert spool.items == []


async def test_spool_failure_answers_451_so_the_mta_retries(serve):
    _, port = await serve(broken_spool)
    with pytest.raises(aiosmtplib.SMTPDataError) as refused:
        await aiosmtplib.send(RAW, sender="kunde@example.org", recipients=["support@example.com"],
                              hostname="127.0.0.1", port=port)
    assert refused.value.code == 451 and refused.value.message.startswith("4.3.0")


async def test_failing_recipient_lookup_answers_451_not_a_bounce(serve, spool):
    def accepts(address):
        raise LookupError("rules not loaded")

    _, port = await serve(spool.put, accepts)
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as refused:
        await aiosmtplib.send(RAW, sender="kunde@example.org", recipients=["support@example.com"],
                              hostname="127.0.0.1", port=port)
    assert [(e.code, e.message) for e in refused.value.recipients] == [(451, ERR_TEMP[4:])]


async def test_draining_server_greets_new_clients_with_421(serve, spool):
    handler, port = await serve(spool.put)
    handler.draining = True
    with pytest.raises(aiosmtplib.SMTPConnectResponseError) as refused:
        await aiosmtplib.send(RAW, sender="kunde@example.org", recipients=["support@example.com"],
                              hostname="127.0.0.1", port=port)
    assert f"{refused.value.code} {refused.value.message}" == ERR_SHUTDOWN


async def test_draining_server_answers_the_next_command_421_and_hangs_up(serve, spool):
    handler, port = await serve(spool.put)
    client = await LMTPClient.connect(port=port)
    assert (await client.command("EHLO mta.example.org")).code == 250
    handler.draining = True
    assert await client.command("MAIL FROM:<kunde@example.org>") == (421, "4.3.2 maild shutting down")
    assert await client.closed()
    await client.close()
