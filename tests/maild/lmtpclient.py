"""A raw LMTP/SMTP client for tests.

stdlib `smtplib.LMTP` reads one reply after DATA; RFC 2033 §4.2 sends one per accepted
recipient, so multi-recipient tests need to read them one by one. Works for SMTP too.
"""
from __future__ import annotations

import asyncio
from typing import NamedTuple


class Reply(NamedTuple):
    code: int
    text: str          # all lines of a multi-line reply, joined with '\n', codes removed


class LMTPClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.greeting: Reply | None = None

    @classmethod
    async def connect(cls, host: str = "127.0.0.1", port: int | None = None, *,
                      path: str | None = None) -> "LMTPClient":
        if path is not None:
            reader, writer = await asyncio.open_unix_connection(path)
        else:
            reader, writer = await asyncio.open_connection(host, port)
        client = cls(reader, writer)
        client.greeting = await client.reply()
        return client

    async def reply(self) -> Reply:
        lines = []
        while True:
            line = (await asyncio.wait_for(self.reader.readline(), 5)).decode()
            if not line:
                raise ConnectionError(f"connection closed after {lines!r}")
            lines.append(line[4:].rstrip("\r\n"))
            if line[3:4] != "-":
                return Reply(int(line[:3]), "\n".join(lines))

    async def command(self, line: str) -> Reply:
        self.writer.write(line.encode() + b"\r\n")
        await self.writer.drain()
        return await self.reply()

    async def send(self, mail_from: str, rcpt_tos: list[str], raw: bytes) -> tuple[list[Reply], list[Reply]]:
        """MAIL, RCPT each, DATA; return (RCPT replies, the replies after the final dot)."""
        await self.command(f"MAIL FROM:<{mail_from}>")
        rcpt_replies = [await self.command(f"RCPT TO:<{rcpt}>") for rcpt in rcpt_tos]
        accepted = sum(r.code // 100 == 2 for r in rcpt_replies)
        if not accepted:
            return rcpt_replies, []
        reply = await self.command("DATA")
        assert reply.code == 354, reply
        self.writer.write(dot_stuff(raw) + b".\r\n")
        await self.writer.drain()
        return rcpt_replies, [await self.reply() for _ in range(accepted)]

    async def closed(self) -> bool:
        """True when the server has closed the connection."""
        return await asyncio.wait_for(self.reader.read(1), 5) == b""

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except ConnectionError:
            pass


def dot_stuff(raw: bytes) -> bytes:
    """RFC 5321 §4.5.2 transparency; `raw` must end with CRLF."""
    assert raw.endswith(b"\r\n")
    lines = raw.split(b"\r\n")[:-1]
    return b"".join((b"." + line if line.startswith(b".") else line) + b"\r\n" for line in lines)
