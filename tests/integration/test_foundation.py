"""The foundation's story, end to end: real SMTP/LMTP clients, a real relay sink, a real
database (SQLite and PostgreSQL), the daemon running in the test's loop."""
from __future__ import annotations

import asyncio

import aiosmtplib
import pytest

from tests.integration.harness import BILLING, SUPPORT, lmtp_send, mail, running_helpdesk


async def test_a_customer_mail_becomes_a_ticket_and_an_acknowledgement_with_the_token(tmp_path, database_url):
    async with running_helpdesk(tmp_path, database_url) as desk:
        await desk.send_smtp(mail(message_id="first@customer.example"))
        await desk.settle()
        [ticket] = desk.tickets()
        assert (ticket["subject"], ticket["status"], ticket["requester"]) == \
            ("Printer on fire", "new", "carol@customer.example")
        [ack] = desk.relay_messages
        assert ack["To"] == "carol@customer.example"
        assert ack["Subject"] == f"[Acme #{ticket['number']}] Printer on fire"
        assert ack["Auto-Submitted"] == "auto-replied"
        assert ack["In-Reply-To"] == "<first@customer.example>"
        body = ack.get_body(("plain",)).get_content()
        assert f"#{ticket['number']}" in body and "Help, the printer is on fire." in body
        assert ack.get_body(("html",)) is not None
        assert desk.outbox()[0]["status"] == "sent"


async def test_replies_by_token_and_by_in_reply_to_join_the_same_ticket(tmp_path, database_url):
    async with running_helpdesk(tmp_path, database_url) as desk:
        await desk.send_smtp(mail(message_id="q1@customer.example"))
        await desk.settle()
        [ticket] = desk.tickets()
        number = ticket["number"]
        ack_id = desk.relay_messages[0]["Message-ID"]
        await desk.send_smtp(mail(f"Re: [Acme #{number}] Printer on fire", "It smokes now.",
                                  message_id="q2@customer.example"))
        await desk.send_smtp(mail("Re: Printer on fire", "Now it is out.", message_id="q3@customer.example",
                                  headers={"In-Reply-To": ack_id}))
        await desk.settle()
        assert [t["number"] for t in desk.tickets()] == [number]
        texts = [m["text"] for m in desk.ticket(number)["messages"] if m["direction"] == "in"]
        assert texts == ["Help, the printer is on fire.", "It smokes now.", "Now it is out."]
        assert len(desk.relay_messages) == 1, "replies get no second acknowledgement"


async def test_the_same_message_delivered_twice_is_one_ticket_message(tmp_path, database_url):
    async with running_helpdesk(tmp_path, database_url) as desk:
        raw = mail(message_id="twice@customer.example")
        await desk.send_smtp(raw)
        await lmtp_send("127.0.0.1", desk.lmtp_port, "carol@customer.example", [SUPPORT, BILLING], raw)
        await desk.settle()
        [ticket] = desk.tickets()
        assert ticket["messages"] == 2          # the customer's message and our acknowledgement
        assert len(desk.relay_messages) == 1


@pytest.mark.parametrize("headers", [
    {"Auto-Submitted": "auto-replied"},
    {"Precedence": "bulk"},
    {"Precedence": "list", "List-Id": "<users.lists.example>"},
    {"X-Maild-Loop": "example.com"},               # our own acknowledgement, sent back to us
])
async def test_automatic_mail_gets_no_acknowledgement(tmp_path, database_url, headers):
    async with running_helpdesk(tmp_path, database_url) as desk:
        await desk.send_smtp(mail("Out of office", "I am away.", message_id="auto@customer.example",
                                  headers=headers))
        await desk.settle()
        [ticket] = desk.tickets()
        assert desk.relay_messages == []
        events = [e["kind"] for e in desk.ticket(ticket["number"])["events"]]
        assert "no_acknowledgement" in events


async def test_a_bounce_from_the_null_sender_gets_no_acknowledgement(tmp_path, database_url):
    async with running_helpdesk(tmp_path, database_url) as desk:
        replies = await lmtp_send("127.0.0.1", desk.lmtp_port, "", [SUPPORT],
                                  mail("Delivery failure", "could not deliver",
                                       sender="Mail Delivery System <mailer-daemon@mx.example>",
                                       message_id="b@mx.example"))
        assert [code for code, _ in replies["data"]] == [250]
        await desk.settle()
        assert desk.relay_messages == []


async def test_an_autoresponder_without_headers_is_braked_after_three_mails_an_hour(tmp_path, database_url):
    async with running_helpdesk(tmp_path, database_url) as desk:
        for n in range(5):
            # texts differ: the same text again would collapse as a burst (test_hygiene)
            await desk.send_smtp(mail(f"Thanks for your mail {n}", f"We got it (#{n}).",
                                      message_id=f"robot{n}@robot.example", sender="robot@robot.example"),
                                 sender="robot@robot.example")
        await desk.settle()
        assert len(desk.tickets()) == 5
        assert len(desk.relay_messages) == 3


async def test_unknown_recipient_is_refused_with_550(tmp_path, database_url):
    async with running_helpdesk(tmp_path, database_url) as desk:
        with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as refused:
            await desk.send_smtp(mail(), rcpt="nobody@example.com")
        assert refused.value.recipients[0].code == 550
        assert desk.tickets() == []


async def test_an_oversize_message_is_refused_with_552(tmp_path, database_url):
    async with running_helpdesk(tmp_path, database_url) as desk:
        big = mail(body="x" * 80 + ("\r\n" + "y" * 998) * 250)
        with pytest.raises(aiosmtplib.SMTPResponseException) as refused:
            await desk.send_smtp(big)
        assert refused.value.code == 552
        assert desk.tickets() == []


async def test_lmtp_answers_each_recipient_after_data(tmp_path, database_url):
    async with running_helpdesk(tmp_path, database_url) as desk:
        replies = await lmtp_send("127.0.0.1", desk.lmtp_port, "carol@customer.example",
                                  [SUPPORT, "nobody@example.com", BILLING],
                                  mail(message_id="lmtp@customer.example"))
        assert [r[0] for r in replies["rcpt"]] == [250, 550, 250]
        assert [r[0] for r in replies["data"]] == [250, 250]
        await desk.settle()
        assert len(desk.tickets()) == 1


async def test_a_relay_that_says_451_gets_the_acknowledgement_again_later(tmp_path, database_url):
    async with running_helpdesk(tmp_path, database_url) as desk:
        desk.sink.reply = "451 4.3.0 Try again later"
        await desk.send_smtp(mail(message_id="retry@customer.example"))
        # attempts is counted when the row is claimed, so wait for the recorded outcome
        [row] = await desk.wait_for(lambda: [r for r in desk.outbox() if r["last_error"]])
        assert row["status"] == "queued" and row["attempts"] == 1 and "451" in row["last_error"]
        assert row["sent_at"] is None and row["next_attempt_at"] > desk.tickets()[0]["created_at"]
        assert desk.relay_messages == []


async def test_a_relay_that_says_550_marks_the_acknowledgement_failed_on_the_ticket(tmp_path, database_url):
    async with running_helpdesk(tmp_path, database_url) as desk:
        desk.sink.reply = "550 5.1.1 No such user"
        await desk.send_smtp(mail(message_id="fail@customer.example"))
        [row] = await desk.wait_for(lambda: [r for r in desk.outbox() if r["status"] == "failed"])
        assert row["last_error"].startswith("550") and "550 550" not in row["last_error"]
        [ticket] = desk.tickets()
        events = desk.ticket(ticket["number"])["events"]
        assert any(e["kind"] == "mail_failed" and "No such user" in e["detail"] for e in events)


async def test_a_reload_with_broken_rules_keeps_the_last_good_ones_and_a_good_one_applies(tmp_path, database_url):
    async with running_helpdesk(tmp_path, database_url) as desk:
        rules = tmp_path / "rules.yaml"
        rules.write_text("version: 1\nqueues:\n  general: {address: support@example.com\n")   # broken
        assert desk.daemon.runtime.reload() is False
        await desk.send_smtp(mail(message_id="still@customer.example"))        # still accepted
        with pytest.raises(aiosmtplib.SMTPRecipientsRefused):
            await desk.send_smtp(mail(message_id="new1@customer.example"), rcpt="sales@example.com")
        rules.write_text("version: 1\nqueues:\n  general: {address: support@example.com}\n"
                         "  sales: {address: sales@example.com}\n")
        assert desk.daemon.runtime.reload() is True
        await desk.send_smtp(mail("Quote please", message_id="new2@customer.example"), rcpt="sales@example.com")
        await desk.settle()
        assert sorted(t["queue"] for t in desk.tickets()) == ["general", "sales"]


async def test_a_relay_hanging_on_one_mail_does_not_hold_back_the_others(tmp_path, database_url):
    async with running_helpdesk(tmp_path, database_url) as desk:
        release = asyncio.Event()
        desk.sink.stall["slow@customer.example"] = release
        for name in ("slow", "quick1", "quick2"):
            await desk.send_smtp(mail(f"From {name}", message_id=f"{name}@customer.example",
                                      sender=f"{name.title()} <{name}@customer.example>"))
        sent = await desk.wait_for(lambda: sorted(r["to"] for r in desk.outbox() if r["status"] == "sent")
                                   if len([r for r in desk.outbox() if r["status"] == "sent"]) == 2 else None)
        assert sent == ["quick1@customer.example", "quick2@customer.example"]
        assert [r["status"] for r in desk.outbox() if r["to"] == "slow@customer.example"] == ["sending"]
        release.set()
        await desk.settle()
        assert {r["status"] for r in desk.outbox()} == {"sent"}


async def test_mail_from_our_own_address_is_never_answered(tmp_path, database_url):
    async with running_helpdesk(tmp_path, database_url) as desk:
        await desk.send_smtp(mail("Re: [Acme #9] Printer", "forwarded back", message_id="self@example.com",
                                  sender="Acme Support <support@example.com>"), sender="support@example.com")
        await desk.settle()
        assert len(desk.tickets()) == 1 and desk.relay_messages == []
