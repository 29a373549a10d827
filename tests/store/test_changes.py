"""Agents' changes to tickets, and the schema upgrade that brought them (SQLite and PostgreSQL)."""
from __future__ import annotations

from datetime import datetime

from store import changes, outbox
from store.changes import Change
from store.migrations import LATEST, current_version, migrate
from store.models import Event, Outbox, SchemaVersion, Ticket
from store.snapshot import snapshot
from store.views import list_tickets, show_ticket
from tests.store.test_tickets import NOW, inbound, record

LATER = datetime(2026, 11, 21, 11, 0, 0)


def events(ticket_id):
    return [(e.actor, e.kind, e.detail) for e in Event.select().where(Event.ticket == ticket_id)
            .order_by(Event.id) if e.actor == "alice@example.com"]


def test_commands_change_the_ticket_and_each_leaves_an_event_by_the_agent(db):
    ticket = record(db, inbound())
    with db.atomic():
        done = changes.apply(ticket.ticket_id, (
            Change("status", "pending"), Change("priority", "urgent"),
            Change("assign", "alice@example.com"), Change("queue", "billing"),
            Change("tag", "vip"), Change("tag", "printer"), Change("untag", "printer"),
        ), actor="alice@example.com", now=LATER)
    assert len(done) == 7
    shown = show_ticket(ticket.ticket_number)
    assert (shown["status"], shown["priority"], shown["assignee"], shown["queue"], shown["tags"]) == \
        ("pending", "urgent", "alice@example.com", "billing", ["vip"])
    assert events(ticket.ticket_id)[:2] == [("alice@example.com", "status", "pending"),
                                            ("alice@example.com", "priority", "urgent")]
    assert [t["number"] for t in list_tickets(assignee="Alice@example.com", queue="billing")] == \
        [ticket.ticket_number]
    assert list_tickets(queue="general") == []


def test_a_change_that_changes_nothing_leaves_no_event(db):
    ticket = record(db, inbound())
    with db.atomic():
        changes.apply(ticket.ticket_id, (Change("tag", "vip"),), actor="alice@example.com", now=NOW)
        again = changes.apply(ticket.ticket_id, (Change("tag", "vip"), Change("status", "new"),
                                                 Change("untag", "absent")),
                              actor="alice@example.com", now=LATER)
    assert again == () and len(events(ticket.ticket_id)) == 1


def test_resolving_and_closing_stamp_the_time_and_closing_keeps_when_it_was_resolved(db):
    ticket = record(db, inbound())
    with db.atomic():
        changes.apply(ticket.ticket_id, (Change("status", "resolved"),), actor="alice@example.com", now=NOW)
    assert Ticket.get_by_id(ticket.ticket_id).resolved_at == NOW
    with db.atomic():
        changes.apply(ticket.ticket_id, (Change("status", "closed"),), actor="alice@example.com", now=LATER)
    row = Ticket.get_by_id(ticket.ticket_id)
    assert (row.resolved_at, row.closed_at) == (NOW, LATER)
    other = record(db, inbound(message_id="other@customer.example"))
    with db.atomic():                          # closed without being resolved first
        changes.apply(other.ticket_id, (Change("status", "closed"),), actor="alice@example.com", now=LATER)
        changes.apply(other.ticket_id, (Change("status", "open"),), actor="alice@example.com", now=LATER)
    assert Ticket.get_by_id(other.ticket_id).resolved_at is None      # reopening clears it


def test_the_first_reply_sets_the_first_response_time_once_and_opens_a_new_ticket(db):
    ticket = record(db, inbound())
    with db.atomic():
        changes.record_reply(ticket.ticket_id, actor="alice@example.com", now=NOW)
        changes.record_reply(ticket.ticket_id, actor="alice@example.com", now=LATER)
    row = Ticket.get_by_id(ticket.ticket_id)
    assert (row.status, row.first_response_at) == ("open", NOW)


def test_the_snapshot_answers_the_customers_last_verified_message(db):
    first = record(db, inbound(cc=("dave@customer.example",), to=("support@example.com",)))
    record(db, inbound(message_id="r1@customer.example", token_ticket=first.ticket_number,
                       references=("abc@customer.example",)))
    record(db, inbound(message_id="stranger@evil.example", from_address="mallory@evil.example",
                       token_ticket=first.ticket_number))
    snap = snapshot(first.ticket_id)
    assert snap.last_customer_message.message_id == "r1@customer.example"
    assert snap.last_customer_message.references == ("abc@customer.example",)
    assert [p.address for p in snap.participants] == ["dave@customer.example"]
    assert snap.requester.address == "carol@customer.example"


def test_a_version_1_database_is_upgraded_and_keeps_its_mail(db):
    ticket = record(db, inbound())
    with db.atomic():
        outbox.enqueue(outbox.OutgoingDraft(
            ticket_id=ticket.ticket_id, template="ack", automatic=True, from_name="Acme",
            from_address="support@example.com", to_address="carol@customer.example",
            subject="[Acme #1] Printer", message_id="maild.1.x@example.com", in_reply_to=None,
            references=(), text="Thanks", html=None), now=NOW)
    # make it a version-1 database: without what versions 2 and 3 added
    db.execute_sql('DROP INDEX "ticket_assignee_status"')
    db.execute_sql('ALTER TABLE "ticket" DROP COLUMN "sla_policy"')
    for table, column in (("message", "author"), ("message", "internal"), ("message", "auth"),
                          ("outbox", "cc"), ("outbox", "reply_to"), ("outbox", "auto_submitted")):
        db.execute_sql(f'ALTER TABLE "{table}" DROP COLUMN "{column}"')
    SchemaVersion.delete().execute()
    SchemaVersion.create(version=1, applied_at=NOW)

    assert migrate(db) == (1, LATEST) and current_version(db) == LATEST
    [row] = Outbox.select()
    assert (row.cc, row.reply_to, row.auto_submitted) == ("", None, "auto-replied")
    assert show_ticket(ticket.ticket_number)["messages"][0]["internal"] is False
    assert Ticket.get_by_id(ticket.ticket_id).sla_policy is None
