"""The store's story on SQLite and PostgreSQL: mail becomes tickets, exactly once."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from store import outbox, tickets
from store.migrations import LATEST, migrate
from store.models import Delivery, Message, Ticket
from store.views import list_outbox, list_tickets, show_ticket

NOW = datetime(2026, 11, 21, 10, 0, 0)
SUPPORT = "support@example.com"


def inbound(**overrides) -> tickets.InboundMessage:
    raw = overrides.pop("raw", b"Subject: Printer\r\n\r\nIt is broken \xff\x00 raw.\r\n")
    mid = overrides.pop("message_id", "abc@customer.example")
    base = tickets.InboundMessage(
        raw=raw, message_key=tickets.message_key(mid, raw), message_id=mid, recipient=SUPPORT,
        via="lmtp", kind="normal", evidence="", from_address="carol@customer.example",
        from_name="Carol", to=(SUPPORT,), cc=(), subject="Printer broken", in_reply_to=(),
        references=(), text="It is broken", visible_text="It is broken", html="",
        attachments=(), token_ticket=None, reply_candidates=(), our_ticket_refs=(),
        queue="general", priority="normal", own_addresses=frozenset({SUPPORT}))
    return replace(base, **overrides)


def record(db, msg, now=NOW):
    with db.atomic():
        return tickets.record_inbound(msg, now=now)


def test_a_new_mail_opens_a_numbered_ticket_and_keeps_the_raw_bytes(db):
    first = record(db, inbound())
    second = record(db, inbound(message_id="other@customer.example", subject="VPN"))
    assert (first.outcome, second.outcome) == ("created", "created")
    assert second.ticket_number == first.ticket_number + 1
    stored = Message.get_by_id(first.message_pk)
    assert bytes(stored.raw) == inbound().raw
    assert [t["subject"] for t in list_tickets()] == ["Printer broken", "VPN"]


def test_a_reply_with_the_token_joins_the_ticket(db):
    first = record(db, inbound())
    reply = record(db, inbound(message_id="r1@customer.example", token_ticket=first.ticket_number,
                               subject=f"Re: [Acme #{first.ticket_number}] Printer broken"))
    assert reply.outcome == "appended" and reply.threaded_by == tickets.BY_TOKEN
    assert reply.ticket_number == first.ticket_number
    assert show_ticket(first.ticket_number)["messages"][1]["message_id"] == "r1@customer.example"


def test_a_reply_with_only_in_reply_to_joins_the_ticket(db):
    first = record(db, inbound())
    reply = record(db, inbound(message_id="r2@customer.example", subject="Re: Printer",
                               in_reply_to=("abc@customer.example",),
                               reply_candidates=("abc@customer.example",)))
    assert (reply.outcome, reply.ticket_number) == ("appended", first.ticket_number)
    assert reply.threaded_by == tickets.BY_HEADERS


def test_a_token_naming_no_ticket_falls_back_to_headers_then_new(db):
    assert record(db, inbound(token_ticket=999)).outcome == "created"


def test_the_same_message_delivered_twice_is_stored_once(db):
    first = record(db, inbound())
    again = record(db, inbound(via="smtp"))
    assert again.outcome == "duplicate" and again.ticket_number == first.ticket_number
    assert Message.select().count() == 1


def test_the_same_message_to_two_support_addresses_is_one_ticket(db):
    record(db, inbound())
    other = record(db, inbound(recipient="billing@example.com"))
    assert other.outcome == "duplicate"
    assert Ticket.select().count() == 1 and Message.select().count() == 1
    assert {d.recipient for d in Delivery.select()} == {SUPPORT, "billing@example.com"}


def test_mail_without_message_id_is_deduplicated_by_content(db):
    a = record(db, inbound(message_id=None))
    b = record(db, inbound(message_id=None))
    c = record(db, inbound(message_id=None, raw=b"Subject: other\r\n\r\nx\r\n"))
    assert (a.outcome, b.outcome, c.outcome) == ("created", "duplicate", "created")


def test_a_stranger_guessing_the_number_is_stored_unverified(db):
    first = record(db, inbound(cc=("dave@customer.example",)))
    stranger = record(db, inbound(message_id="s@evil.example", from_address="mallory@evil.example",
                                  token_ticket=first.ticket_number))
    cc_reply = record(db, inbound(message_id="d@customer.example", from_address="dave@customer.example",
                                  token_ticket=first.ticket_number))
    assert stranger.unverified and not cc_reply.unverified
    shown = show_ticket(first.ticket_number)
    assert "mallory@evil.example" not in {p["address"] for p in shown["participants"]}
    assert [m["unverified"] for m in shown["messages"]] == [False, True, False]


def test_a_reply_reopens_a_resolved_ticket_but_not_a_closed_one(db):
    first = record(db, inbound())
    Ticket.update(status="resolved").where(Ticket.number == first.ticket_number).execute()
    again = record(db, inbound(message_id="x1@c", token_ticket=first.ticket_number))
    assert again.reopened and Ticket.get(Ticket.number == first.ticket_number).status == "open"
    Ticket.update(status="closed").where(Ticket.number == first.ticket_number).execute()
    late = record(db, inbound(message_id="x2@c", token_ticket=first.ticket_number))
    assert late.outcome == "created" and late.linked_to == first.ticket_number


def test_a_failed_transaction_leaves_nothing_behind(db):
    try:
        with db.atomic():
            tickets.record_inbound(inbound(), now=NOW)
            raise RuntimeError("crash after the ticket, before the outbox")
    except RuntimeError:
        pass
    assert Ticket.select().count() == 0 and Message.select().count() == 0
    assert record(db, inbound()).outcome == "created"


def draft(ticket_id, **kw):
    base = dict(ticket_id=ticket_id, template="ack", automatic=True, from_name="Acme Support",
                from_address=SUPPORT, to_address="carol@customer.example",
                subject="[Acme #1] Printer", message_id="maild.1.x@example.com",
                in_reply_to="abc@customer.example", references=("abc@customer.example",),
                text="We got it", html="<p>We got it</p>")
    base.update(kw)
    return outbox.OutgoingDraft(**base)


def test_outbox_rows_are_claimed_once_and_record_their_outcome(db):
    first = record(db, inbound())
    with db.atomic():
        outbox.enqueue(draft(first.ticket_id), now=NOW)
        outbox.enqueue(draft(first.ticket_id, message_id="maild.1.y@example.com"), now=NOW + timedelta(hours=2))
    due = outbox.claim_due(db, NOW + timedelta(seconds=1))
    assert [d.draft.message_id for d in due] == ["maild.1.x@example.com"]
    assert outbox.claim_due(db, NOW + timedelta(seconds=1)) == []
    outbox.mark_retry(due[0], now=NOW, next_attempt_at=NOW + timedelta(minutes=1), error="451 busy")
    again = outbox.claim_due(db, NOW + timedelta(minutes=2))
    assert [(d.id, d.attempts) for d in again] == [(due[0].id, 2)]
    outbox.mark_failed(again[0], now=NOW, error="550 no such user")
    rows = {r["message_id"]: r for r in list_outbox()}
    assert rows["maild.1.x@example.com"]["status"] == "failed"
    assert rows["maild.1.x@example.com"]["attempts"] == 2
    assert "mail_failed" in [e["kind"] for e in show_ticket(first.ticket_number)["events"]]


def test_a_reply_to_our_acknowledgement_threads_by_its_message_id(db):
    first = record(db, inbound())
    with db.atomic():
        outbox.enqueue(draft(first.ticket_id, message_id="maild.1.ack@example.com"), now=NOW)
    reply = record(db, inbound(message_id="r@c", reply_candidates=("maild.1.ack@example.com",)))
    assert reply.ticket_number == first.ticket_number


def test_a_send_interrupted_by_a_crash_is_claimed_again_when_its_lease_runs_out(db):
    first = record(db, inbound())
    with db.atomic():
        outbox.enqueue(draft(first.ticket_id), now=NOW)
    assert len(outbox.claim_due(db, NOW)) == 1           # ... and the sender dies
    assert outbox.claim_due(db, NOW + outbox.LEASE / 2) == []
    assert len(outbox.claim_due(db, NOW + outbox.LEASE + timedelta(seconds=1))) == 1


def test_migrate_is_idempotent(db):
    assert migrate(db) == (LATEST, LATEST)


def test_hostile_header_lengths_are_stored_on_every_database(db):
    long_name, long_address = "N" * 5000, "x" * 400 + "@customer.example"
    long_id = "i" * 990 + "@customer.example"
    result = record(db, inbound(from_name=long_name, from_address=long_address, message_id=long_id,
                                subject="S" * 10000))
    shown = show_ticket(result.ticket_number)
    assert shown["requester"] == long_address
    assert shown["messages"][0]["from_name"] == long_name
    assert shown["messages"][0]["message_id"] == long_id


def test_a_sender_that_outlived_its_lease_cannot_overwrite_the_next_holder(db):
    first = record(db, inbound())
    with db.atomic():
        outbox.enqueue(draft(first.ticket_id), now=NOW)
    [stale] = outbox.claim_due(db, NOW)
    [fresh] = outbox.claim_due(db, NOW + outbox.LEASE + timedelta(seconds=1))
    assert outbox.mark_sent(fresh, now=NOW) is True
    assert outbox.mark_retry(stale, now=NOW, next_attempt_at=NOW, error="451 late") is False
    assert list_outbox()[0]["status"] == "sent"


def test_a_mail_whose_outcome_is_never_recorded_fails_after_max_attempts(db):
    first = record(db, inbound())
    with db.atomic():
        outbox.enqueue(draft(first.ticket_id), now=NOW)
    at = NOW
    for _ in range(3):                                  # the sender dies mid-delivery, thrice
        assert len(outbox.claim_due(db, at, max_attempts=3)) == 1
        at += outbox.LEASE + timedelta(seconds=1)
    assert outbox.claim_due(db, at, max_attempts=3) == []
    [row] = list_outbox()
    assert row["status"] == "failed" and "no outcome after 3 attempts" in row["last_error"]
