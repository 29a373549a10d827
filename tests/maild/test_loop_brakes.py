"""Loop brakes (DESIGN §1.5) through the worker, with an injected clock: a burst of the same
text collapses into one ticket, a ticket sends at most N automatic mails an hour, and
automatic mail on a ticket changes neither its status nor its SLA clocks."""
from __future__ import annotations

from datetime import timedelta

import pytest

from maild.config import load_settings
from maild.customer_mail import loop_brake
from maild.pipeline import visible_body_hash
from rules.source import ConfigError
from store import changes, outbox, sla
from store.changes import Change
from store.models import Message, Outbox, SlaClock, Ticket
from store.views import show_ticket
from tests.integration.harness import mail, write_config
from tests.store.test_bounces import T0, Desk

SLA_RULES = """\
version: 1
queues:
  general: {address: support@example.com, sla: standard}
calendars:
  always: {timezone: UTC, hours: {mon-sun: "00:00-24:00"}}
sla:
  standard:
    calendar: always
    targets:
      normal: {first_response: 8h, next_response: 8h, resolution: 5d}
"""


@pytest.fixture
def desk(tmp_path, database_url, db):
    desk = Desk(tmp_path, database_url, db)
    yield desk
    desk.spool.close()


def same_mail(n: int, body="The printer on floor 3 is on fire.\n\nCarol") -> bytes:
    return mail("Printer on fire", body, message_id=f"burst{n}@customer.example")


def test_five_identical_mails_within_a_minute_make_one_ticket_one_ack_five_messages(desk):
    for n in range(5):
        desk.now = T0 + timedelta(seconds=12 * n)
        handled = desk.deliver(same_mail(n))
        assert handled.outcome == ("created" if n == 0 else "appended")
    [ticket] = Ticket.select()
    shown = show_ticket(ticket.number)
    assert [m["kind"] for m in shown["messages"] if m["direction"] == "in"] == ["normal"] * 5
    assert [o.template for o in Outbox.select()] == ["ack"]
    collapsed = [e["detail"] for e in shown["events"] if e["kind"] == "collapsed"]
    assert len(collapsed) == 4 and all("<burst0@customer.example>" in d for d in collapsed)
    assert ticket.status == "new"


def test_a_burst_ends_with_its_window_and_other_text_is_a_new_ticket(desk):
    desk.deliver(same_mail(0))
    desk.now = T0 + timedelta(minutes=3)
    desk.deliver(same_mail(1, body="Also, the coffee machine is leaking."))      # other text
    desk.now = T0 + timedelta(minutes=10, seconds=1)
    desk.deliver(same_mail(2))                              # the window (10 min) is over
    assert Ticket.select().count() == 3 and Outbox.select().count() == 3


def test_whitespace_does_not_make_a_mail_new_but_subject_and_attachments_do():
    assert visible_body_hash("Hello\n\n  world ", "Hi") == visible_body_hash("Hello world", "Hi ")
    assert visible_body_hash("Hello world", "Invoice 1") != visible_body_hash("Hello world", "Invoice 2")
    assert visible_body_hash("See attached", "x", ("aa",)) != visible_body_hash("See attached", "x", ("bb",))
    assert visible_body_hash(" \n\t", "x") is None and visible_body_hash("", "") is None
    assert visible_body_hash("", "scan", ("aa",)) is not None


def test_a_burst_window_of_0_turns_collapsing_off(tmp_path, database_url, db):
    desk = Desk(tmp_path, database_url, db,
                limits="{auto_replies_per_hour: 10, burst_window_minutes: 0}")
    for n in range(3):
        desk.deliver(same_mail(n))
    desk.spool.close()
    assert Ticket.select().count() == 3


def test_a_ticket_sends_at_most_its_share_of_automatic_mail_an_hour(desk):
    desk.deliver(mail(message_id="one@customer.example"))
    [ticket] = Ticket.select()
    [ack] = Outbox.select()
    number = ticket.number
    assert loop_brake(ticket.id, number, "dave@customer.example", desk.context, T0) is None
    for n in range(2):                     # two more automatic mails out of the help desk
        outbox.enqueue(outbox.OutgoingDraft(
            ticket_id=ticket.id, template="ack", automatic=True, from_name="Acme",
            from_address="support@example.com", to_address=f"p{n}@customer.example",
            subject="x", message_id=f"maild.{number}.x{n}@example.com", in_reply_to=None,
            references=(), text="x", html=None), now=T0)
    for n in range(5):                     # agents' notifications do not count
        outbox.enqueue(outbox.OutgoingDraft(
            ticket_id=ticket.id, template="notify", automatic=True, from_name="Acme",
            from_address="support@example.com", to_address="alice@example.com", subject="x",
            message_id=f"maild.{number}.n{n}@example.com", in_reply_to=None, references=(),
            text="x", html=None, kind="notify", internal=True), now=T0)
    assert loop_brake(ticket.id, number, "dave@customer.example", desk.context, T0) == (
        f"loop brake: 3 automatic mails/hour on ticket #{number}")
    assert loop_brake(ticket.id, number, "dave@customer.example", desk.context,
                      T0 + timedelta(hours=1, seconds=1)) is None
    assert ack.to_address == "carol@customer.example"


def test_an_auto_reply_to_a_ticket_changes_neither_status_nor_sla_clocks(tmp_path, database_url, db):
    desk = Desk(tmp_path, database_url, db, rules=SLA_RULES)
    desk.deliver(mail(message_id="start@customer.example"))
    [ticket] = Ticket.select()
    with db.atomic():                       # an agent answered and waits on the customer
        changes.record_reply(ticket.id, actor="alice@example.com", now=T0 + timedelta(minutes=5))
        changes.apply(ticket.id, (Change("status", "pending"),), actor="alice@example.com",
                      now=T0 + timedelta(minutes=5))
        sla.sync(ticket.id, desk.context.ruleset, T0 + timedelta(minutes=5), agent_replied=True)
    clocks = {c.clock: (c.cycle, c.running_since, c.used_s, c.due_at, c.stopped_at)
              for c in SlaClock.select().where(SlaClock.ticket == ticket.id)}
    mails = Outbox.select().count()
    desk.now = T0 + timedelta(hours=2)
    handled = desk.deliver(mail(f"Automatic reply: [Acme #{ticket.number}] Printer on fire",
                                "I am out of the office until Monday.",
                                message_id="ooo@customer.example",
                                headers={"Auto-Submitted": "auto-replied"}))
    assert (handled.outcome, handled.ticket_number) == ("appended", ticket.number)
    assert Ticket.get_by_id(ticket.id).status == "pending"
    assert {c.clock: (c.cycle, c.running_since, c.used_s, c.due_at, c.stopped_at)
            for c in SlaClock.select().where(SlaClock.ticket == ticket.id)} == clocks
    assert Outbox.select().count() == mails                      # nobody answered, nobody told
    assert Message.get(Message.message_id == "ooo@customer.example").kind == "auto_reply"
    desk.spool.close()


@pytest.mark.parametrize("limits, key", [
    ("{auto_replies_per_ticket_per_hour: -1}", "auto_replies_per_ticket_per_hour"),
    ("{burst_window_minutes: -5}", "burst_window_minutes"),
    ("{burst_window_minutes: 2000}", "burst_window_minutes"),
    ("{burst_window_minutes: '10'}", "burst_window_minutes")])
def test_bad_loop_brake_settings_are_refused_naming_the_key(tmp_path, limits, key):
    config = write_config(tmp_path, f"sqlite:///{tmp_path}/m.db", "maildir:outbox", limits=limits)
    with pytest.raises(ConfigError) as refused:
        load_settings(config)
    assert f"limits.{key}" in str(refused.value)


def test_loop_brake_settings_have_defaults_and_reach_the_context(tmp_path, database_url, db):
    limits = load_settings(write_config(tmp_path, database_url, "maildir:outbox", limits="{}")).limits
    assert (limits.auto_replies_per_hour, limits.auto_replies_per_ticket_per_hour,
            limits.burst_window_minutes) == (3, 3, 10)
    desk = Desk(tmp_path / "b", database_url, db,
                limits="{auto_replies_per_ticket_per_hour: 5, burst_window_minutes: 30}")
    assert (desk.context.auto_replies_per_ticket_per_hour, desk.context.burst_window_minutes) == (5, 30)
    desk.spool.close()
