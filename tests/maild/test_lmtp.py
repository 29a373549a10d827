"""LMTP intake on a real aiosmtpd server, the way Postfix or Exim delivers into it.

A raw client (tests/maild/lmtpclient.py) reads one reply per recipient after DATA
(RFC 2033 §4.2); stdlib smtplib.LMTP would read only the first.
"""
from __future__ import annotations

import asyncio
import os
import socket
import stat

import pytest

from maild.intake import ERR_SHUTDOWN, ERR_TOO_BIG, IntakeHandler
from maild.listen import ListenAddress, start_listener
from tests.maild.lmtpclient import LMTPClient, Reply

OURS = {"support@example.com", "billing@example.com"}
LIMIT = 4096
RAW = (b"From: customer@example.org\r\nTo: support@example.com, billing@example.com\r\n"
       b"Subject: Invoice 42 is wrong\r\nMessage-ID: <42@example.org>\r\n\r\n"
       b"Hello,\r\n.leading dot\r\n\xe2\x82\xac 8-bit\r\n")
THREE = ["support@example.com", "stranger@example.com", "Billing@Example.com"]


class Spool:
    """Records what was submitted; `hold()` keeps the next write in progress until released."""

    def __init__(self) -> None:
        self.items: list = []
        self.writing = asyncio.Event()
        self.release: asyncio.Event | None = None

    def hold(self) -> asyncio.Event:
        self.release = asyncio.Event()
        return self.release

    async def put(self, raw, envelope) -> int:
        self.writing.set()
        if self.release:
            await self.release.wait()
        self.items.append((raw, envelope))
        return len(self.items)


async def broken_spool(raw, envelope) -> int:
    raise OSError("database is locked")


@pytest.fixture
def spool() -> Spool:
    return Spool()


@pytest.fixture
async def serve():
    servers, clients = [], []

    async def start(submit, spec="127.0.0.1:0") -> tuple[IntakeHandler, LMTPClient]:
        handler = IntakeHandler(submit=submit, accepts=OURS.__contains__, protocol="lmtp")
        server = await start_listener(spec, handler, "lmtp", data_size_limit=LIMIT,
                                      hostname="maild.test")
        servers.append(server)
        address = server.sockets[0].getsockname()
        if spec.startswith("unix:"):
            client = await LMTPClient.connect(path=address)
        else:
            client = await LMTPClient.connect(address[0], address[1])
        clients.append(client)
        return handler, client

    yield start
    for client in clients:
        await client.close()
    for server in servers:
        server.close()
        await server.wait_closed()


async def lhlo(client: LMTPClient) -> LMTPClient:
    assert (await client.command("LHLO mta.example.org")).code == 250
    return client


async def test_mta_delivers_to_two_support_addresses_and_gets_one_reply_each(serve, spool):
    _, client = await serve(spool.put)
    rcpt, final = await (await lhlo(client)).send("customer@example.org", THREE, RAW)
    assert [r.code for r in rcpt] == [250, 550, 250]
    assert rcpt[1].text.startswith("5.1.1 <stranger@example.com>")
    assert final == [Reply(250, "2.0.0 Ok: queued as 1")] * 2
    assert await client.command("NOOP") == (250, "OK")    # no stray reply left behind
    [(raw, envelope)] = spool.items
    assert raw == RAW
    assert envelope.rcpt_tos == ("support@example.com", "billing@example.com")
    assert envelope.received_via == "lmtp"


async def test_spool_failure_answers_451_for_each_recipient(serve):
    _, client = await serve(broken_spool)
    _, final = await (await lhlo(client)).send("customer@example.org", THREE, RAW)
    assert [r.code for r in final] == [451, 451]
    assert all(r.text.startswith("4.3.0") for r in final)


async def test_oversize_mail_gets_552_for_each_recipient(serve, spool):
    # aiosmtpd sends one '552 Error: Too much mail data'; maild repeats it per recipient.
    _, client = await serve(spool.put)
    _, final = await (await lhlo(client)).send("customer@example.org", THREE, RAW * 100)
    assert [f"{r.code} {r.text}" for r in final] == [ERR_TOO_BIG] * 2
    assert await client.command("NOOP") == (250, "OK")
    assert spool.items == []


async def test_line_over_1000_octets_gets_aiosmtpd_500_for_each_recipient(serve, spool):
    # RFC 5321 §4.5.3.1.6 limit, enforced by aiosmtpd with a permanent 500 (the MTA bounces).
    _, client = await serve(spool.put)
    long_line = RAW + b"x" * 1001 + b"\r\n"
    _, final = await (await lhlo(client)).send("customer@example.org", THREE, long_line)
    assert [r.code for r in final] == [500, 500]
    assert await client.command("NOOP") == (250, "OK")


async def test_postfix_delivers_over_a_unix_socket(serve, spool, tmp_path):
    _, client = await serve(spool.put, spec=f"unix:{tmp_path}/lmtp.sock")
    _, final = await (await lhlo(client)).send("customer@example.org", THREE[:1], RAW)
    assert final == [Reply(250, "2.0.0 Ok: queued as 1")]
    assert spool.items[0][1].peer == "unix"


async def test_the_unix_socket_lets_maild_s_group_in_whatever_the_umask(serve, spool, tmp_path):
    old = os.umask(0o077)                                  # the unit's UMask=
    try:
        await serve(spool.put, spec=f"unix:{tmp_path}/lmtp.sock")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "lmtp.sock").stat().st_mode) == 0o660


async def test_helo_is_not_lmtp(serve, spool):
    _, client = await serve(spool.put)
    assert (await client.command("HELO mta.example.org")).code == 500


async def test_draining_daemon_greets_new_sessions_with_421(serve, spool):
    handler, first = await serve(spool.put)
    handler.draining = True
    client = await LMTPClient.connect(*first.writer.get_extra_info("peername"))
    assert f"{client.greeting.code} {client.greeting.text}" == ERR_SHUTDOWN
    assert await client.closed()
    await client.close()


async def test_draining_daemon_finishes_the_message_in_hand_then_says_421(serve, spool):
    handler, client = await serve(spool.put)
    release = spool.hold()
    sending = asyncio.create_task((await lhlo(client)).send("customer@example.org", THREE, RAW))
    await asyncio.wait_for(spool.writing.wait(), 5)      # SIGTERM arrives mid-write
    handler.draining = True
    release.set()
    _, final = await sending
    assert [r.code for r in final] == [250, 250]
    assert await client.command("MAIL FROM:<late@example.org>") == (421, "4.3.2 maild shutting down")
    assert await client.closed()


@pytest.mark.parametrize("spec, expected", [
    ("127.0.0.1:2424", ListenAddress(host="127.0.0.1", port=2424)),
    ("localhost:24", ListenAddress(host="localhost", port=24)),
    ("[::1]:2424", ListenAddress(host="::1", port=2424)),
    ("*:2424", ListenAddress(port=2424)),
    ("unix:/run/maild/lmtp.sock", ListenAddress(path="/run/maild/lmtp.sock")),
])
def test_sysadmin_writes_listen_addresses(spec, expected):
    assert ListenAddress.parse(spec) == expected
    assert str(expected) == spec


@pytest.mark.parametrize("spec", ["2424", "::1:2424", "127.0.0.1:http", "127.0.0.1:70000",
                                  "unix:", ":2424", "[::1]"])
def test_bad_listen_address_is_refused_with_a_reason(spec):
    with pytest.raises(ValueError, match="listen address"):
        ListenAddress.parse(spec)


async def test_ipv6_loopback_listener(serve, spool):
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this host")
    try:
        _, client = await serve(spool.put, spec="[::1]:0")
    except OSError as error:
        pytest.skip(f"no IPv6 loopback: {error}")
    _, final = await (await lhlo(client)).send("customer@example.org", THREE[:1], RAW)
    assert final[0].code == 250
    assert spool.items[0][1].peer.startswith("[::1]:")
