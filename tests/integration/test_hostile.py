"""Hostile mail against a running maild: each is quarantined with its reason (`maild
quarantine list`) or becomes a ticket whose trimmed parts are named (`maild show`), and
a normal mail sent right after it still becomes a ticket.  No timed assertions: a hang
fails through the pytest timeout."""
from __future__ import annotations

import email
import email.policy
import hashlib
import json

import pytest

from maild import cli
from store.models import Attachment, Message
from tests.integration.harness import running_helpdesk
from tests.parsers import hostile

pytestmark = pytest.mark.timeout(300)

# 80 MiB: the 50 MB attachment is 72 MB on the wire.
LIMITS = "{max_message_size: 80M, auto_replies_per_hour: 3}"

QUARANTINED = {
    "huge_header": (lambda: hostile.huge_header(1_000_000),
                    "header section over max_header_bytes 256 KiB"),
    "many_headers": (lambda: hostile.many_headers(20_000, 1_000_000),
                     "more than max_headers 1,000 header fields"),
}
TRIMMED = {
    "many_parts": (lambda: hostile.many_parts(10_000),
                   "MIME parts after the first 1,000 not read (max_mime_parts 1,000)"),
    "deep": (lambda: hostile.deep(1_000),
             "1 MIME container(s) nested deeper than max_mime_depth 100 not opened"),
    "many_attachments": (lambda: hostile.many_attachments(10_000),
                         "498 attachment(s) after the first 500 not stored (max_attachments 500)"),
}


def maild(desk, capsys, *argv) -> str:
    capsys.readouterr()
    assert cli.main(["-c", str(desk.config), *argv]) == 0
    return capsys.readouterr().out


async def send_then_normal(desk, raw: bytes, tag: str) -> dict:
    """Send `raw`, then a normal mail; return the normal mail's ticket once it exists."""
    await desk.send_smtp(raw, sender="eve@evil.example")
    await desk.send_smtp(hostile.normal(f"after-{tag}", subject=f"Printer on fire ({tag})"))
    await desk.wait_for(lambda: any(t["subject"] == f"Printer on fire ({tag})"
                                    for t in desk.tickets()), timeout=240)
    await desk.settle()
    return next(t for t in desk.tickets() if t["subject"] == f"Printer on fire ({tag})")


@pytest.mark.parametrize("case", QUARANTINED)
async def test_a_message_with_a_hostile_header_is_quarantined_with_its_reason(tmp_path, capsys, case):
    build, reason = QUARANTINED[case]
    raw = build()
    async with running_helpdesk(tmp_path, f"sqlite:///{tmp_path}/maild.db", limits=LIMITS) as desk:
        await send_then_normal(desk, raw, case)
        [item] = json.loads(maild(desk, capsys, "quarantine", "list", "--json"))
        assert reason in item["reason"] and "MessageRefused" in item["reason"]
        assert item["size"] >= len(raw)                 # kept whole for a replay
        assert "max_header" in maild(desk, capsys, "quarantine", "list")
        assert [t["subject"] for t in desk.tickets()] == [f"Printer on fire ({case})"]


async def trimmed_ticket(desk, capsys, raw: bytes, case: str) -> tuple[dict, str]:
    """(the hostile message's ticket, `maild show` of it) after sending it and a normal one."""
    await send_then_normal(desk, raw, case)
    assert json.loads(maild(desk, capsys, "quarantine", "list", "--json")) == []
    [ticket] = [t for t in desk.tickets() if t["subject"] == "hostile"]
    return ticket, maild(desk, capsys, "show", str(ticket["number"]))


def raw_of(ticket: dict) -> bytes:
    message = Message.get(Message.message_id == ticket["messages"][0]["message_id"])
    return bytes(message.raw)


@pytest.mark.parametrize("case", TRIMMED)
async def test_a_message_with_too_many_parts_becomes_a_ticket_that_names_what_was_left_out(
        tmp_path, capsys, case):
    build, reason = TRIMMED[case]
    raw = build()
    async with running_helpdesk(tmp_path, f"sqlite:///{tmp_path}/maild.db", limits=LIMITS) as desk:
        ticket, shown = await trimmed_ticket(desk, capsys, raw, case)
        trims = [e["detail"] for e in desk.ticket(ticket["number"])["events"] if e["kind"] == "trimmed"]
        assert any(reason in t for t in trims), trims
        assert "trimmed" in shown and reason in shown     # what the agent reads
        assert raw_of(desk.ticket(ticket["number"])) == raw     # the raw keeps everything


@pytest.mark.postgres
async def test_10000_attachments_on_postgresql(tmp_path, capsys, postgres_url):
    raw = hostile.many_attachments(10_000)
    async with running_helpdesk(tmp_path, postgres_url, limits=LIMITS) as desk:
        ticket, shown = await trimmed_ticket(desk, capsys, raw, "postgres")
        assert "after the first 500 not stored (max_attachments 500)" in shown
        message = Message.get(Message.message_id == "many-attachments@evil.example")
        assert message.attachment_rows.count() == 500
        assert bytes(message.raw) == raw


@pytest.mark.slow
async def test_a_50mb_attachment_over_the_limit_is_not_stored_and_the_ticket_says_so(tmp_path, capsys):
    raw = hostile.big_attachment(50 * 1024 * 1024)
    async with running_helpdesk(tmp_path, f"sqlite:///{tmp_path}/maild.db", limits=LIMITS) as desk:
        ticket, shown = await trimmed_ticket(desk, capsys, raw, "big")
        assert ("attachment 'big.bin' (52,428,800 bytes) over max_attachment_size 10 MiB: "
                "not stored") in shown
        assert Attachment.select().where(Attachment.size > 10 * 1024 * 1024).count() == 0
        stored = raw_of(desk.ticket(ticket["number"]))
        assert hashlib.sha256(stored).digest() == hashlib.sha256(raw).digest()


async def test_a_zip_bomb_is_stored_as_the_bytes_that_were_sent(tmp_path, capsys):
    raw = hostile.zip_bomb()
    bomb, _ = hostile.zip_bomb_data()
    async with running_helpdesk(tmp_path, f"sqlite:///{tmp_path}/maild.db", limits=LIMITS) as desk:
        ticket, shown = await trimmed_ticket(desk, capsys, raw, "zip")
        assert "trimmed" not in shown
        sizes = {a.sha256: a.size for a in Attachment.select()}
        assert sizes[hashlib.sha256(bomb).hexdigest()] == len(bomb)
        assert max(sizes.values()) < len(raw)               # nothing was inflated


async def test_customer_html_is_stored_sanitised_and_the_raw_byte_for_byte(tmp_path, capsys):
    html = ('<p onclick="steal()">Our printer:</p><script>steal()</script>'
            '<img src="cid:photo@customer.example"><img src="https://tracker.example/p.gif">'
            '<a href="javascript:steal()">here</a>')
    message = email.message.EmailMessage(policy=email.policy.SMTP)
    message["From"], message["To"] = "carol@customer.example", "support@example.com"
    message["Subject"], message["Message-ID"] = "hostile", "<html@customer.example>"
    message.set_content("Our printer: see the photo")
    message.add_alternative(html, subtype="html")
    raw = message.as_bytes()
    async with running_helpdesk(tmp_path, f"sqlite:///{tmp_path}/maild.db", limits=LIMITS) as desk:
        await trimmed_ticket(desk, capsys, raw, "html")
        stored = Message.get(Message.message_id == "html@customer.example")
        assert '<img src="cid:photo@customer.example">' in stored.html
        for gone in ("onclick", "<script", "steal", "tracker.example", "javascript"):
            assert gone not in stored.html
        assert bytes(stored.raw) == raw
