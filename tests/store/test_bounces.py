"""Bounces through the worker (real spool, real database, injected clock): they mark the
mail they return, tell its ticket, and never open a ticket or answer anyone; schema 6."""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from maild.config import load_settings
from maild.envelope import Envelope
from maild.runtime import build_context, load_policy
from maild.spool import Spool
from maild.worker import Worker
from store import bounces
from store.migrations import LATEST, current_version, migrate
from store.models import Bounce, Message, Outbox, SchemaVersion, Ticket
from store.views import show_ticket
from tests.bounces import postfix_dsn
from tests.integration.harness import mail, write_config

T0 = datetime(2026, 11, 23, 9, 0)
CUSTOMER = "carol@customer.example"


class Desk:
    """A worker over a spool and the test's database, at a time the test sets."""

    def __init__(self, tmp_path, database_url, db, **extra):
        settings = load_settings(write_config(tmp_path, database_url, "maildir:outbox", **extra))
        self.context = build_context(settings, *load_policy(settings))
        self.spool = Spool(settings.spool_dir)
        self.now = T0
        self.worker = Worker(self.spool, db, lambda: self.context, clock=lambda: self.now)

    def deliver(self, raw: bytes, *, rcpt="support@example.com", mail_from="carol@customer.example"):
        self.spool.put(raw, Envelope(mail_from=mail_from, rcpt_tos=(rcpt,), received_via="lmtp"))
        [handled] = self.worker.process(self.spool.claim(10))
        assert handled.outcome != "quarantined", handled.reason
        return handled


@pytest.fixture
def desk(tmp_path, database_url, db):
    desk = Desk(tmp_path, database_url, db)
    yield desk
    desk.spool.close()


def acknowledged(desk) -> Outbox:
    desk.deliver(mail(message_id="printer@customer.example", sender=f"Carol <{CUSTOMER}>"))
    [ack] = Outbox.select()
    assert ack.template == "ack" and ack.to_address == CUSTOMER
    ack.status = "sent"
    ack.save()
    return ack


def returned(ack: Outbox) -> bytes:
    return (f"From: Acme Support <support@example.com>\r\nTo: {ack.to_address}\r\n"
            f"Subject: {ack.subject}\r\nMessage-ID: <{ack.message_id}>\r\n\r\n{ack.text}").encode()


def bounce_of(ack: Outbox, *, to: str, **kw) -> bytes:
    return postfix_dsn(returned(ack), recipient=ack.to_address, to=to, **kw)


def events(number: int, kind: str) -> list[str]:
    return [e["detail"] for e in show_ticket(number)["events"] if e["kind"] == kind]


def test_a_bounce_to_the_verp_address_marks_the_mail_bounced_and_tells_its_ticket(desk):
    ack = acknowledged(desk)
    verp = f"support+bounces-{ack.id}@example.com"
    handled = desk.deliver(bounce_of(ack, to=verp), rcpt=verp, mail_from="")
    row = Outbox.get_by_id(ack.id)
    assert (handled.outcome, row.status) == ("bounce", "bounced")
    assert row.last_error == ("5.1.1 <carol@customer.example>: Recipient address rejected: "
                              "User unknown in virtual mailbox table")
    [ticket] = Ticket.select()
    assert (ticket.number, ticket.status) == (handled.ticket_number, "new")
    [detail] = events(ticket.number, "delivery_failed")
    assert "carol@customer.example, 5.1.1, <carol@customer.example>: Recipient" in detail
    assert "ack to carol@customer.example (matched by VERP address)" in detail
    kept = show_ticket(ticket.number)["messages"][-1]
    assert (kept["kind"], kept["internal"], kept["direction"]) == ("bounce", True, "in")
    assert Outbox.select().count() == 1                    # nobody was told anything
    [b] = bounces.listing()
    assert (b["matched_by"], b["ticket"], b["outbox"], b["status"], b["template"]) == (
        "verp", ticket.number, ack.id, "5.1.1", "ack")
    assert b["size"] is None          # its bytes are on the ticket


def test_a_bounce_for_a_mail_not_yet_sent_leaves_it_queued(desk):
    # nothing handed the mail to a relay yet, so nothing can have bounced it: a forged or
    # confused "bounce" must not stop the acknowledgement from going out
    desk.deliver(mail(message_id="printer@customer.example", sender=f"Carol <{CUSTOMER}>"))
    [ack] = Outbox.select()
    verp = f"support+bounces-{ack.id}@example.com"
    handled = desk.deliver(bounce_of(ack, to=verp), rcpt=verp, mail_from="")
    row = Outbox.get_by_id(ack.id)
    assert (row.status, row.last_error) == ("queued", None)
    [detail] = events(handled.ticket_number, "delivery_failed")
    assert "not marked sent" in detail and "status stays" in detail


def test_a_bounce_without_verp_is_matched_by_the_returned_message_id(desk):
    ack = acknowledged(desk)
    handled = desk.deliver(bounce_of(ack, to="support@example.com"), mail_from="")
    assert Outbox.get_by_id(ack.id).status == "bounced"
    assert "(matched by returned Message-ID)" in events(handled.ticket_number, "delivery_failed")[0]
    assert Ticket.select().count() == 1


def test_an_unmatched_bounce_opens_no_ticket_and_is_listed(desk):
    raw = postfix_dsn(b"From: someone@else.example\r\nMessage-ID: <x@else.example>\r\n\r\nhi",
                      recipient="gone@customer.example", to="support@example.com")
    handled = desk.deliver(raw, mail_from="")
    assert (handled.outcome, handled.ticket_number) == ("bounce", None)
    assert Ticket.select().count() == 0 and Message.select().count() == 0
    [b] = bounces.listing(unmatched=True)
    assert (b["matched_by"], b["ticket"], b["recipient"], b["status"]) == (None, None, "gone@customer.example", "5.1.1")
    assert bytes(Bounce.get_by_id(b["id"]).raw) == raw


def test_a_bounce_a_customer_forwards_is_their_question_not_a_bounce(desk):
    ack = acknowledged(desk)
    raw = mail("Fwd: Undelivered Mail Returned to Sender", "Why did this come back?\n\n"
               f"<{CUSTOMER}>: 550 5.1.1 User unknown", message_id="why@customer.example")
    handled = desk.deliver(raw + returned(ack))
    assert handled.outcome == "created" and Outbox.get_by_id(ack.id).status == "sent"
    assert Outbox.select().count() == 1 and Bounce.select().count() == 0   # not acknowledged
    assert Message.get(Message.message_id == "why@customer.example").kind == "bounce"


def test_replaying_a_bounce_changes_nothing(desk):
    ack = acknowledged(desk)
    verp = f"support+bounces-{ack.id}@example.com"
    raw = bounce_of(ack, to=verp)
    first = desk.deliver(raw, rcpt=verp, mail_from="")
    desk.now += timedelta(minutes=5)
    again = desk.deliver(raw, rcpt=verp, mail_from="")
    assert (first.outcome, again.outcome) == ("bounce", "duplicate")
    assert Bounce.select().count() == 1
    assert len(events(first.ticket_number, "delivery_failed")) == 1
    assert [m["kind"] for m in show_ticket(first.ticket_number)["messages"]] == ["normal", "ack", "bounce"]


def test_a_delay_notice_records_an_event_and_keeps_the_status(desk):
    ack = acknowledged(desk)
    verp = f"support+bounces-{ack.id}@example.com"
    handled = desk.deliver(bounce_of(ack, to=verp, action="delayed", status="4.4.1",
                                     diagnostic="smtp; 421 4.4.1 connection timed out"),
                           rcpt=verp, mail_from="")
    assert Outbox.get_by_id(ack.id).status == "sent"
    assert events(handled.ticket_number, "delivery_failed") == []
    [detail] = events(handled.ticket_number, "delivery_delayed")
    assert "4.4.1" in detail


def test_a_qmail_bounce_quoting_our_message_id_is_matched(desk):
    """Non-standard bounces inline the returned mail: its Message-ID line is enough."""
    ack = acknowledged(desk)
    raw = ("From: MAILER-DAEMON@mx.customer.example\r\nTo: support@example.com\r\n"
           "Subject: failure notice\r\n\r\n"
           "Hi. This is the qmail-send program at mx.customer.example.\r\n"
           "I'm afraid I wasn't able to deliver your message to the following addresses.\r\n"
           "This is a permanent error; I've given up. Sorry it didn't work out.\r\n\r\n"
           f"<{CUSTOMER}>:\r\nRemote host said: 550 5.1.1 <{CUSTOMER}>... User Unknown\r\n\r\n"
           "--- Below this line is a copy of the message.\r\n\r\n").encode() + returned(ack)
    desk.deliver(raw, mail_from="")
    row = Outbox.get_by_id(ack.id)
    assert row.status == "bounced" and row.last_error.startswith("5.1.1 Remote host said: 550 5.1.1")


def test_the_verp_address_is_ours_also_with_another_envelope_sender(tmp_path, desk):
    assert desk.context.is_ours("support+bounces-42@example.com")
    assert not desk.context.is_ours("bounces+bounces-42@example.com")
    config = write_config(tmp_path / "other", f"sqlite:///{tmp_path}/other.db", "maildir:outbox")
    config.write_text(config.read_text().replace("max_attempts: 3}", "max_attempts: 3, mail_from: bounces@example.com}"))
    settings = load_settings(config)
    assert build_context(settings, *load_policy(settings)).is_ours("bounces+bounces-42@example.com")


def test_a_version_5_database_is_upgraded_to_6(db, desk):
    ack = acknowledged(desk)
    # make it a version-5 database: no bounce table, no body hashes
    db.execute_sql('DROP TABLE "bounce"')
    db.execute_sql('DROP INDEX "message_body_hash"')
    db.execute_sql('ALTER TABLE "message" DROP COLUMN "body_hash"')
    SchemaVersion.delete().execute()
    SchemaVersion.create(version=5, applied_at=T0)

    assert migrate(db) == (5, LATEST) and current_version(db) == LATEST == 6
    assert "body_hash" in {c.name for c in db.get_columns("message")}
    assert "message_body_hash" in {i.name for i in db.get_indexes("message")}
    assert Message.select().where(Message.body_hash.is_null(False)).count() == 0   # old mail: no hash
    verp = f"support+bounces-{ack.id}@example.com"
    desk.deliver(bounce_of(ack, to=verp), rcpt=verp, mail_from="")
    assert Outbox.get_by_id(ack.id).status == "bounced" and Bounce.select().count() == 1

