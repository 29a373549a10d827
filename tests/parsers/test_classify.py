"""classify(): nothing automatic gets an automatic answer, and customers are not ignored."""
from __future__ import annotations

import pytest

from parsers.classify import (AUTO_REPLY, AUTOMATIC, BOUNCE, CHECKS, LIST, LOOP, NORMAL,
                              REPORT, Classification, classify)
from parsers.message import parse

CUSTOMER = "From: Alice <alice@example.com>\nTo: support@help.example.org\nSubject: Printer broken"


def mail(headers: str, body: str = "Hello") -> object:
    return parse((headers.strip("\n") + "\n\n" + body).replace("\n", "\r\n").encode("utf-8"))


def kind(headers: str, envelope_sender: str | None = None, **options) -> Classification:
    return classify(mail(headers), envelope_sender=envelope_sender, **options)


def test_a_customer_mail_is_normal():
    result = kind(CUSTOMER, envelope_sender="alice@example.com")
    assert result == Classification(NORMAL, "no automatic signal")
    assert NORMAL not in AUTOMATIC


def test_our_own_loop_header_is_a_loop():
    headers = CUSTOMER + "\nX-Maild-Loop: help.example.org"
    assert kind(headers) == Classification(LOOP, "X-Maild-Loop: help.example.org")
    assert kind(headers, loop_value="HELP.example.org").kind == LOOP
    assert kind(headers, loop_value="other.example.org").kind == NORMAL
    assert kind(CUSTOMER + "\nX-Ticket-Loop: x", loop_header="X-Ticket-Loop").kind == LOOP


def test_mail_from_our_own_address_is_a_loop():
    result = kind(CUSTOMER, own_addresses=frozenset({"Alice@Example.com"}))
    assert result.kind == LOOP and "alice@example.com" in result.evidence


def test_delivery_status_report_is_a_bounce_even_with_auto_submitted():
    headers = ("From: Mail Delivery System <MAILER-DAEMON@mx.example.org>\n"
               "Auto-Submitted: auto-replied\n"
               'Content-Type: multipart/report; report-type="delivery-status"; boundary="b"')
    assert kind(headers) == Classification(
        BOUNCE, "Content-Type: multipart/report; report-type=delivery-status")


@pytest.mark.parametrize("report_type", ["feedback-report", "disposition-notification"])
def test_abuse_reports_and_read_receipts_are_reports(report_type):
    headers = f"From: staff@isp.example\nContent-Type: multipart/report; report-type={report_type}; boundary=b"
    assert kind(headers).kind == REPORT


@pytest.mark.parametrize("headers, evidence", [
    ("From: MAILER-DAEMON@mx.example.org\nSubject: hello", "From: mailer-daemon@mx.example.org"),
    ("From: Mail Delivery Subsystem <daemon@mx.example.org>", "From: Mail Delivery Subsystem <daemon@mx.example.org>"),
    ("From: postmaster@example.org\nSubject: Notice", "From: postmaster@example.org"),
    ("From: <>\nSubject: Delivery report", "From: <>"),
    ("From: x@example.org\nX-Failed-Recipients: bob@example.com", "X-Failed-Recipients: bob@example.com"),
    ("From: x@example.org\nSubject: Undelivered Mail Returned to Sender", "Subject: Undelivered Mail Returned to Sender"),
    ("From: x@example.org\nSubject: Delivery Status Notification (Failure)", "Subject: Delivery Status Notification (Failure)"),
    ("From: x@example.org\nSubject: Mail delivery failed: returning message to sender", "Subject: Mail delivery failed: returning message to sender"),
    ("From: x@example.org\nSubject: Undeliverable: Printer broken", "Subject: Undeliverable: Printer broken"),
    ("From: x@example.org\nSubject: failure notice", "Subject: failure notice"),
    ("From: x@example.org\nSubject: Returned mail: see transcript for details", "Subject: Returned mail: see transcript for details"),
    ("From: x@example.org\nSubject: Unzustellbar: Drucker", "Subject: Unzustellbar: Drucker"),
    ("From: x@example.org\nSubject: Non remis : Imprimante", "Subject: Non remis : Imprimante"),
])
def test_bounces_are_recognised_with_their_evidence(headers, evidence):
    assert kind(headers) == Classification(BOUNCE, evidence)


@pytest.mark.parametrize("headers, evidence", [
    ("From: a@example.com\nAuto-Submitted: auto-replied (vacation)", "Auto-Submitted: auto-replied (vacation)"),
    ("From: a@example.com\nAuto-Submitted: auto-generated", "Auto-Submitted: auto-generated"),
    ("From: a@example.com\nX-Autoreply: yes", "X-Autoreply: yes"),
    ("From: a@example.com\nX-Autorespond: vacation", "X-Autorespond: vacation"),
    ("From: a@example.com\nPrecedence: bulk", "Precedence: bulk"),
    ("From: a@example.com\nPrecedence: junk", "Precedence: junk"),
    ("From: a@example.com\nSubject: Out of Office: Printer broken", "Subject: Out of Office: Printer broken"),
    ("From: a@example.com\nSubject: Automatic reply: Printer broken", "Subject: Automatic reply: Printer broken"),
    ("From: a@example.com\nSubject: Abwesenheitsnotiz: Drucker", "Subject: Abwesenheitsnotiz: Drucker"),
    ("From: a@example.com\nSubject: Automatische Antwort: Drucker", "Subject: Automatische Antwort: Drucker"),
    ("From: a@example.com\nSubject: =?utf-8?Q?R=C3=A9ponse_automatique_:_Imprimante?=", "Subject: Réponse automatique : Imprimante"),
    ("From: a@example.com\nSubject: Absence : Imprimante", "Subject: Absence : Imprimante"),
    ("From: a@example.com\nSubject: =?utf-8?Q?Respuesta_autom=C3=A1tica:_Impresora?=", "Subject: Respuesta automática: Impresora"),
    ("From: a@example.com\nSubject: Automatisch antwoord: Printer", "Subject: Automatisch antwoord: Printer"),
    ("From: no-reply@notifications.example.com\nSubject: Your invoice", "From: no-reply@notifications.example.com (no-reply address)"),
])
def test_auto_replies_are_recognised_with_their_evidence(headers, evidence):
    assert kind(headers) == Classification(AUTO_REPLY, evidence)


def test_auto_submitted_no_is_a_person():
    assert kind(CUSTOMER + "\nAuto-Submitted: no").kind == NORMAL


def test_x_auto_response_suppress_alone_is_not_automatic():
    # Ticket systems and CRMs set it on mail written by people; it asks *us* not to
    # auto-respond, it does not say the mail itself is automatic.
    assert kind(CUSTOMER + "\nX-Auto-Response-Suppress: All").kind == NORMAL


@pytest.mark.parametrize("header", ["List-Id: <users.lists.example.org>",
                                    "List-Unsubscribe: <mailto:leave@lists.example.org>",
                                    "Precedence: list"])
def test_mailing_list_mail_is_list(header):
    result = kind(CUSTOMER + "\n" + header)
    assert result.kind == LIST and result.evidence.split(":")[0] == header.split(":")[0]


def test_null_sender_is_a_bounce_unless_it_says_it_is_an_auto_reply():
    assert kind(CUSTOMER, envelope_sender="") == Classification(BOUNCE, "envelope sender <>")
    assert kind(CUSTOMER, envelope_sender="<>").kind == BOUNCE
    # RFC 3834 asks auto-replies to use the null sender too
    auto = kind("From: a@example.com\nSubject: Automatic reply: Printer", envelope_sender="")
    assert auto.kind == AUTO_REPLY


def test_return_path_stands_in_for_an_unknown_envelope():
    assert kind(CUSTOMER + "\nReturn-Path: <>") == Classification(BOUNCE, "Return-Path: <>")
    assert kind(CUSTOMER + "\nReturn-Path: <>", envelope_sender="alice@example.com").kind == NORMAL


def test_a_forwarded_bounce_counts_as_a_bounce_but_a_reply_about_one_does_not():
    forwarded = kind("From: alice@example.com\nSubject: Fwd: Returned mail: see transcript for details")
    assert forwarded == Classification(BOUNCE, "Subject: Fwd: Returned mail: see transcript for details")
    assert kind("From: alice@example.com\nSubject: Re: Undelivered Mail Returned to Sender").kind == NORMAL


def test_customers_who_write_about_bounces_or_absences_are_still_customers():
    for subject in ("Re: Out of Office setup",
                    "Why do I get a failure notice?", "Absence of invoice for March",
                    "My automatic reply is broken"):
        assert kind(f"From: alice@example.com\nSubject: {subject}").kind == NORMAL, subject


def test_checks_are_data_and_a_custom_pipeline_can_be_passed():
    assert all(kind_ in AUTOMATIC for kind_, _ in CHECKS)
    only_lists = tuple(check for check in CHECKS if check[0] == LIST)
    result = classify(mail("From: MAILER-DAEMON@x.org\nList-Id: <l.x.org>"),
                      envelope_sender=None, checks=only_lists)
    assert result.kind == LIST


@pytest.mark.parametrize("kind_in_json, expected", [
    ('"notificationType":"Bounce"', BOUNCE), ('\\"notificationType\\":\\"Complaint\\"', REPORT),
    ('"eventType": "Delivery"', REPORT)])
def test_amazon_ses_notifications_are_bounces_or_reports(kind_in_json, expected):
    headers = ("From: SES <no-reply@sns.amazonaws.com>\nSubject: AWS Notification Message\n"
               "x-amz-sns-message-id: ad6bdf42")
    result = classify(mail(headers, "{" + kind_in_json + ', "mail": {}}'), envelope_sender=None)
    assert result.kind == expected and "x-amz-sns-message-id" in result.evidence


def test_a_customer_quoting_ses_json_is_not_a_bounce():
    body = 'My webhook got {"notificationType":"Bounce"} - why?'
    assert classify(mail(CUSTOMER, body), envelope_sender="alice@example.com").kind == NORMAL
