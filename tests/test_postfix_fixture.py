"""The Postfix fixture does what the mail-hygiene tests count on: real delivery, real DSNs
at once, routes that change at run time, and Dovecot's LMTP + Sieve vacation behind it."""
from __future__ import annotations

import email
import email.policy

import pytest

from tests.conftest import CUSTOMER
from tests.postfix import SubmitRefused, wait_until

SENDER = "bob@sink.test"


def mail(subject="Printer on fire", *, to="ok@sink.test", message_id="m1@client.test",
         headers=(), body="Help, the printer is on fire.") -> bytes:
    lines = [f"From: Bob <{SENDER}>", f"To: {to}", f"Subject: {subject}",
             f"Message-ID: <{message_id}>", "Date: Sat, 21 Nov 2026 10:00:00 +0000",
             "MIME-Version: 1.0",
             "Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: 8bit",
             *headers]
    return ("\r\n".join(lines) + "\r\n\r\n" + body + "\r\n").encode()


def report(dsn_mail) -> dict[str, str]:
    """The per-recipient fields of a DSN's message/delivery-status part."""
    message = dsn_mail.message
    assert message.get_content_type() == "multipart/report"
    [status] = [part for part in message.walk() if part.get_content_type() == "message/delivery-status"]
    fields = {}
    for block in status.get_payload():      # per-message block, then one per recipient
        fields.update({k.lower(): str(v) for k, v in block.items()})
    return fields


def test_mail_to_the_sink_domain_is_delivered_and_logged_as_sent(postfix_server, postfix_sink):
    raw = mail()
    queue_id = postfix_server.submit(raw, SENDER, ["ok@sink.test"])
    delivery = postfix_server.wait_for_delivery(to="ok@sink.test", status="sent")
    assert delivery.queue_id == queue_id and delivery.dsn == "2.0.0"
    [got] = postfix_sink.to("ok@sink.test")
    assert got.mail_from == SENDER
    # Postfix adds its Received: line on top; the message itself arrives byte for byte
    assert got.raw.startswith(b"Received: from client.lab.test")
    assert got.raw.endswith(raw)


def test_a_utf8_message_and_address_go_through(postfix_server, postfix_sink):
    raw = mail("Grüße aus Köln", to="jürgen@sink.test", message_id="utf8@client.test",
               body="Der Drucker brennt. Grüße, Jürgen")
    postfix_server.submit(raw, SENDER, ["jürgen@sink.test"], mail_options=["SMTPUTF8"])
    postfix_server.wait_for_delivery(to="jürgen@sink.test", status="sent")
    [got] = postfix_sink.to("jürgen@sink.test")
    assert got.raw.endswith(raw)
    assert got.message["Subject"] == "Grüße aus Köln"


def test_a_rejected_recipient_comes_back_at_once_as_a_dsn_to_the_envelope_sender(
        postfix_server, postfix_sink):
    postfix_server.submit(mail(to="nosuchuser@sink.test", message_id="lost@client.test"),
                          "bounces-7@sink.test", ["nosuchuser@sink.test"])
    bounced = postfix_server.wait_for_delivery(to="nosuchuser@sink.test")
    assert (bounced.status, bounced.dsn) == ("bounced", "5.1.1")
    postfix_server.wait_queue_empty()
    [dsn] = postfix_sink.to("bounces-7@sink.test")
    assert dsn.mail_from == ""                                 # the null sender <>
    assert dsn.message["From"].addresses[0].addr_spec == "MAILER-DAEMON@mx.lab.test"
    assert dsn.message["Auto-Submitted"] == "auto-replied"
    fields = report(dsn)
    assert fields["status"] == "5.1.1" and fields["action"] == "failed"
    assert fields["final-recipient"] == "rfc822; nosuchuser@sink.test"
    assert "User unknown" in fields["diagnostic-code"]
    assert b"Message-ID: <lost@client.test>" in dsn.raw      # the returned message


def test_a_temporary_failure_expires_at_once_with_a_4xx_dsn(postfix_server, postfix_sink):
    postfix_server.submit(mail(to="tempfail@sink.test"), "bounces-8@sink.test",
                          ["tempfail@sink.test"])
    deferred = postfix_server.wait_for_delivery(to="tempfail@sink.test")
    assert (deferred.status, deferred.dsn) == ("deferred", "4.2.2")
    postfix_server.wait_queue_empty()
    [dsn] = postfix_sink.to("bounces-8@sink.test")
    fields = report(dsn)
    assert fields["status"] == "4.2.2" and fields["action"] == "failed"
    assert "Mailbox full" in fields["diagnostic-code"]
    assert "status=expired, returned to sender" in postfix_server.maillog()
    assert [d.status for d in postfix_server.deliveries(to="tempfail@sink.test")] == ["deferred"]


def test_routes_change_at_run_time(postfix_server, postfix_sink):
    postfix_server.route({"moving.test": "error:5.1.1 mailbox moved away"})
    try:
        with pytest.raises(SubmitRefused, match="550 5.1.1 .*mailbox moved away"):
            postfix_server.submit(mail(to="x@moving.test"), SENDER, ["x@moving.test"])
        postfix_server.route({"moving.test": postfix_sink.nexthop})
        postfix_server.submit(mail(to="x@moving.test", message_id="m2@client.test"), SENDER,
                              ["x@moving.test"])
        postfix_server.wait_for_delivery(to="x@moving.test", status="sent")
        assert len(postfix_sink.to("x@moving.test")) == 1
    finally:
        postfix_server.route({"moving.test": None})


def test_a_domain_without_a_route_is_refused_instead_of_leaving_the_machine(postfix_server):
    # the error transport is known at RCPT time, so smtpd refuses there and then
    with pytest.raises(SubmitRefused, match="550 5.1.2 .*no route to this domain"):
        postfix_server.submit(mail(to="someone@unrouted.example"), SENDER,
                              ["someone@unrouted.example"])


def test_customer_mail_reaches_the_imap_mailbox_and_the_vacation_answers_people_only(
        postfix_server, postfix_sink, customer_mailbox, dovecot_lmtp):
    person = mail("Lunch?", to=f"Carol <{CUSTOMER}>", message_id="person@sink.test")
    robot = mail("Your order", to=f"Carol <{CUSTOMER}>", message_id="robot@sink.test",
                 headers=["Auto-Submitted: auto-generated"])
    postfix_server.submit(person, "bounces-1@sink.test", [CUSTOMER])
    postfix_server.submit(robot, "bounces-2@sink.test", [CUSTOMER])
    for _ in range(2):
        postfix_server.wait_for_delivery(to=CUSTOMER, status="sent")
    postfix_server.wait_queue_empty()
    postfix_server.wait_for_delivery(to="bounces-1@sink.test", status="sent")

    stored = [email.message_from_bytes(customer_mailbox.message(uid), policy=email.policy.default)
              for uid in customer_mailbox.uids()]
    assert sorted(m["Message-ID"] for m in stored) == ["<person@sink.test>", "<robot@sink.test>"]
    [vacation] = postfix_sink.to("bounces-1@sink.test")      # to the envelope sender
    assert vacation.mail_from == ""
    assert vacation.message["Subject"] == "Out of office"
    assert vacation.message["In-Reply-To"] == "<person@sink.test>"
    assert vacation.message["Auto-Submitted"].startswith("auto-replied")
    assert postfix_sink.to("bounces-2@sink.test") == []
    wait_until(lambda: "discarding vacation response to auto-submitted message from "
                       "<bounces-2@sink.test>" in dovecot_lmtp.log_text(), 10, "Dovecot's log line")


@pytest.mark.parametrize("key, nexthop", [("bad key", "smtp:[127.0.0.1]:25"),
                                          ("bad.test", "smtp:[127.0.0.1]:25\nevil.test smtp:x"),
                                          ("bad.test", " ")])
def test_a_malformed_route_is_refused_before_postfix_sees_it(postfix_server, key, nexthop):
    with pytest.raises(ValueError):
        postfix_server.route({key: nexthop})
    assert key not in postfix_server.routes
