"""Delivery: real aiosmtpd servers on loopback port 0, inside the test's event loop."""
import asyncio
import email
import logging
import socket
from datetime import timedelta
from email import policy

import pytest
from aiosmtpd.smtp import SMTP, AuthResult
from aiosmtplib import SMTPStatus

import templates
from maild.compose import OutboundMail, envelope_recipients, to_bytes
from maild.relay import (FAILED, RETRY, SENT, DeliveryResult, MaildirRelay, Relay, backoff,
                         relay_from_url)

SENDER = "bounces+1042@helpdesk.example.com"
CUSTOMER = "joerg@example.org"
MESSAGE = b"From: a@example.com\r\nTo: b@example.org\r\nSubject: hi\r\n\r\n.hello\r\n.\r\n"


class RecordingHandler:
    """Accepts everything and records (mail_from, rcpt_tos, content)."""

    def __init__(self, received, rcpt_replies=None, mail_reply=None, data_reply=None):
        self.received = received
        self.rcpt_replies = rcpt_replies or {}      # address -> reply, e.g. '550 5.1.1 ...'
        self.mail_reply = mail_reply
        self.data_reply = data_reply

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if self.mail_reply:
            return self.mail_reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.rcpt_replies:
            return self.rcpt_replies[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.data_reply:
            return self.data_reply
        self.received.append((envelope.mail_from, tuple(envelope.rcpt_tos), envelope.content))
        return "250 2.0.0 Ok: queued"


@pytest.fixture
def received():
    return []


@pytest.fixture
def smtp_server():
    """start(handler, **smtp_kwargs) -> 'smtp://127.0.0.1:<port>'; closed afterwards."""
    servers = []

    async def start(handler, **kwargs):
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: SMTP(handler, hostname="relay.test", **kwargs), "127.0.0.1", 0)
        servers.append(server)
        return f"smtp://127.0.0.1:{server.sockets[0].getsockname()[1]}"

    yield start
    for server in servers:
        server.close()


@pytest.fixture
async def sink(smtp_server, received):
    return await smtp_server(RecordingHandler(received))


@pytest.fixture
def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def deliver(url, data=MESSAGE, recipients=(CUSTOMER,), **kw) -> DeliveryResult:
    relay = relay_from_url(url + "?helo=helpdesk.test", **kw)
    return await relay.deliver(data, sender=SENDER, recipients=list(recipients))


# -- the story: a customer writes, maild acknowledges -----------------------------------

async def test_acknowledgement_arrives_at_the_relay(sink, received):
    context = {k: dict(v) for k, v in templates.SAMPLE_CONTEXTS["ack"].items()}
    context["ticket"]["subject"] = context["message"]["subject"] = "Drucker kaputt – Grüße"
    rendered = templates.render("ack", context)
    mail = OutboundMail(
        from_name="Acme Süpport", from_address="support@example.com",
        to=(f"Jörg Müller <{CUSTOMER}>",),
        subject=f"{context['ticket']['token']} Drucker kaputt – Grüße",
        message_id="ticket-1042.ack.1@helpdesk.example.com", in_reply_to="CAF00@example.org",
        references=("CAF00@example.org",), text=rendered.text, html=rendered.html,
        auto_submitted="auto-replied", loop_header=("X-Maild-Loop", "helpdesk.example.com"))
    data = to_bytes(mail)

    result = await deliver(sink, data, envelope_recipients(mail))

    assert result.status == SENT and result.code == SMTPStatus.completed
    [(mail_from, rcpt_tos, content)] = received
    assert (mail_from, rcpt_tos) == (SENDER, (CUSTOMER,))
    assert content == data                          # byte for byte, dots unstuffed
    msg = email.message_from_bytes(content, policy=policy.default)
    assert msg["Subject"] == "[Acme #1042] Drucker kaputt – Grüße"
    assert content.isascii()                        # RFC 2047 and QP on the wire
    assert msg["To"].addresses[0].display_name == "Jörg Müller"
    assert msg["From"].addresses[0].display_name == "Acme Süpport"
    assert msg["Message-ID"] == "<ticket-1042.ack.1@helpdesk.example.com>"
    assert msg["In-Reply-To"] == "<CAF00@example.org>"
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["X-Maild-Loop"] == "helpdesk.example.com"
    assert msg.get_content_type() == "multipart/alternative"
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert "[Acme #1042]" in text and "#1042" in html
    assert "Drucker kaputt – Grüße" in text


# -- what the relay answers -------------------------------------------------------------

@pytest.mark.parametrize("reply, status, code", [
    ("451 4.3.0 Try again later", RETRY, 451),
    ("452 4.3.1 Insufficient system storage", RETRY, 452),
    ("550 5.7.1 Message rejected as spam", FAILED, 550),
    ("554 5.6.0 Message content rejected", FAILED, 554),
])
async def test_reply_to_data(smtp_server, received, reply, status, code):
    url = await smtp_server(RecordingHandler(received, data_reply=reply))
    result = await deliver(url)
    assert (result.status, result.code) == (status, code)
    assert reply.split(" ", 1)[1] in result.detail
    assert received == []


async def test_sender_refused_is_failed(smtp_server, received):
    url = await smtp_server(RecordingHandler(received, mail_reply="553 5.7.1 Sender not owned"))
    result = await deliver(url)
    assert (result.status, result.code) == (FAILED, 553)


async def test_some_recipients_refused_is_sent_with_the_refusals(smtp_server, received):
    url = await smtp_server(RecordingHandler(
        received, rcpt_replies={"gone@example.org": "550 5.1.1 No such user"}))
    result = await deliver(url, recipients=("gone@example.org", CUSTOMER))
    assert result.status == SENT
    assert result.refused == (("gone@example.org", 550, "5.1.1 No such user"),)
    assert "gone@example.org: 550 5.1.1 No such user" in result.detail
    assert [rcpts for _, rcpts, _ in received] == [(CUSTOMER,)]


@pytest.mark.parametrize("replies, status, code", [
    (("550 5.1.1 No such user", "553 5.1.3 Bad address"), FAILED, 550),
    (("550 5.1.1 No such user", "451 4.7.1 Greylisted"), RETRY, 451),
    (("450 4.2.0 Mailbox busy", "450 4.2.0 Mailbox busy"), RETRY, 450),
])
async def test_all_recipients_refused(smtp_server, received, replies, status, code):
    rcpts = ("a@example.org", "b@example.org")
    url = await smtp_server(RecordingHandler(received, rcpt_replies=dict(zip(rcpts, replies))))
    result = await deliver(url, recipients=rcpts)
    assert (result.status, result.code) == (status, code)
    assert "a@example.org" in result.detail and "b@example.org" in result.detail


async def test_connection_refused_is_retry(closed_port):
    result = await deliver(f"smtp://127.0.0.1:{closed_port}")
    assert (result.status, result.code) == (RETRY, None)
    assert f"127.0.0.1:{closed_port}" in result.detail


async def test_silent_server_times_out_and_is_retry():
    async def never_greet(reader, writer):
        await asyncio.sleep(10)
    server = await asyncio.start_server(never_greet, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        result = await asyncio.wait_for(deliver(f"smtp://127.0.0.1:{port}", timeout=0.3), 5)
    finally:
        server.close()
    assert result.status == RETRY and "Timeout" in result.detail


async def test_relay_refusing_the_session_is_retry_not_failed():
    """554 in the greeting is about our relay, not this message: retry, don't give up."""
    async def refuse(reader, writer):
        writer.write(b"554 5.7.1 No SMTP service here\r\n")
        await writer.drain()
        await reader.read(100)
        writer.close()
    server = await asyncio.start_server(refuse, "127.0.0.1", 0)
    try:
        result = await deliver(f"smtp://127.0.0.1:{server.sockets[0].getsockname()[1]}")
    finally:
        server.close()
    assert (result.status, result.code) == (RETRY, 554)


async def test_disconnect_during_data_is_retry():
    async def hang_up_at_data(reader, writer):
        writer.write(b"220 relay.test ESMTP\r\n")
        while line := await reader.readline():
            if line.upper().startswith(b"DATA"):
                break
            writer.write(b"250 OK\r\n")
            await writer.drain()
        writer.close()
    server = await asyncio.start_server(hang_up_at_data, "127.0.0.1", 0)
    try:
        result = await deliver(f"smtp://127.0.0.1:{server.sockets[0].getsockname()[1]}")
    finally:
        server.close()
    assert result.status == RETRY


# -- credentials ------------------------------------------------------------------------

def authenticator(logins):
    def check(server, session, envelope, mechanism, auth_data):
        logins.append((auth_data.login, auth_data.password))
        return AuthResult(success=auth_data.password == b"p@ss:word/1", handled=False)
    return check


async def test_credentials_from_url_are_decoded_and_never_shown(smtp_server, received, caplog):
    logins = []
    url = await smtp_server(RecordingHandler(received), authenticator=authenticator(logins),
                            auth_require_tls=False)
    good = url.replace("smtp://", "smtp://agent%40acme:p%40ss%3Aword%2F1@")
    relay = relay_from_url(good)
    caplog.set_level(logging.DEBUG)
    result = await relay.deliver(MESSAGE, sender=SENDER, recipients=[CUSTOMER])
    assert result.status == SENT
    assert logins == [(b"agent@acme", b"p@ss:word/1")]
    for shown in (repr(relay), str(relay), caplog.text):
        assert "word" not in shown

    bad = await relay_from_url(good.replace("word", "wrong")).deliver(
        MESSAGE, sender=SENDER, recipients=[CUSTOMER])
    assert (bad.status, bad.code) == (RETRY, 535)       # our configuration: retry once fixed
    assert "wrong" not in bad.detail


def test_bad_urls_are_refused_without_the_password():
    for url in ("ftp://u:sekrit@host", "smtp://u:sekrit@host:notaport", "smtp:///nohost",
                "smtp://host?tls=maybe", "maildir://host/path", "smtp://useronly@host"):
        with pytest.raises(ValueError) as info:
            relay_from_url(url)
        assert "sekrit" not in str(info.value)


def test_url_schemes():
    assert repr(relay_from_url("smtp://localhost")) == "SmtpRelay(smtp://localhost:25)"
    relay = relay_from_url("smtps://u:p@mail.example.com?verify=no")
    assert (relay.port, relay.tls, relay.verify) == (465, "implicit", False)
    assert relay_from_url("smtp+starttls://mail.example.com").port == 587
    assert isinstance(relay_from_url("maildir:/var/mail/x"), MaildirRelay)
    assert isinstance(relay_from_url("smtp://localhost"), Relay)


# -- Maildir ----------------------------------------------------------------------------

async def test_maildir_delivery_writes_one_file_in_new(tmp_path):
    relay = relay_from_url(f"maildir:{tmp_path}/Maildir")
    result = await relay.deliver(MESSAGE, sender=SENDER, recipients=[CUSTOMER])
    assert result.status == SENT
    maildir = tmp_path / "Maildir"
    [delivered] = (maildir / "new").iterdir()
    assert delivered.read_bytes() == MESSAGE
    assert ":" not in delivered.name and str(delivered) in result.detail
    assert list((maildir / "tmp").iterdir()) == [] and (maildir / "cur").is_dir()

    await relay.deliver(MESSAGE, sender=SENDER, recipients=[CUSTOMER])
    assert len(list((maildir / "new").iterdir())) == 2          # unique names


async def test_unwritable_maildir_is_retry(tmp_path):
    (tmp_path / "file").write_text("not a directory")
    result = await MaildirRelay(tmp_path / "file" / "Maildir").deliver(
        MESSAGE, sender=SENDER, recipients=[CUSTOMER])
    assert result.status == RETRY


# -- backoff ----------------------------------------------------------------------------

def test_backoff_grows_and_caps():
    no_jitter = [backoff(n, rand=lambda: 0.0) for n in range(1, 10)]
    assert no_jitter[:4] == [timedelta(seconds=s) for s in (60, 120, 240, 480)]
    assert no_jitter[-1] == timedelta(hours=1)
    assert no_jitter == sorted(no_jitter)
    assert backoff(10_000, rand=lambda: 0.0) == timedelta(hours=1)


def test_backoff_jitter_stays_below_the_delay():
    assert backoff(1, rand=lambda: 1.0) == timedelta(seconds=45)
    assert backoff(50, rand=lambda: 1.0) == timedelta(seconds=2700)
    assert timedelta(seconds=45) <= backoff(1) <= timedelta(seconds=60)
