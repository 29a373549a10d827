"""Strangers against the mail-hygiene defences (bounces, loop brakes, classifier, hostile
input), from an independent review: each test states a promise (DESIGN §1) and failed
while its defect was there."""
from __future__ import annotations

import time
from datetime import timedelta

import pytest

from parsers import dsn
from parsers.message import parse
from store import outbox
from store.models import Bounce, Message, Outbox, Ticket
from store.views import show_ticket
from tests.integration.harness import mail
from tests.store.test_bounces import CUSTOMER, T0, Desk, acknowledged, bounce_of

STRANGER = "mallory@evil.example"


@pytest.fixture
def desk(tmp_path, database_url, db):
    desk = Desk(tmp_path, database_url, db)
    yield desk
    desk.spool.close()


# -- 1. a person's mail taken for a bounce is lost to the ticket system -----------------

@pytest.mark.parametrize("subject", [
    "Delivery failed for my order 1234",
    "Undelivered parcel - order 1234",
    "Non-delivery of order 1234, refund please",
])
def test_a_customers_request_with_a_delivery_subject_opens_a_ticket(desk, subject):
    """DESIGN §1.1/§1.4 and classify's own doc ("the ticket is still opened for the
    agents"): a customer writing about a failed *parcel* delivery is classified `bounce`
    by subject alone, handled by bounce_mail, matched to nothing -> no ticket at all."""
    handled = desk.deliver(mail(subject, "My parcel never arrived. Tracking says failed.\n\nCarol",
                                message_id="parcel@customer.example"))
    assert Ticket.select().count() == 1, (handled.outcome, Bounce.select().count())


def test_a_reply_from_a_postmaster_address_is_not_a_bounce_of_our_mail(desk):
    """A person writing from postmaster@ (abuse/mail-admin desks get this daily) answers
    our acknowledgement: classified `bounce` (daemon sender), its In-Reply-To counts as a
    'returned Message-ID', so our mail is marked bounced and the reply is hidden as an
    internal bounce: no reopen, no notification."""
    ack = acknowledged(desk)
    [ticket] = Ticket.select()
    reply = mail(f"Re: {ack.subject}", "Yes, please block that sender.",
                 sender="Postmaster <postmaster@customer.example>",
                 message_id="answer@customer.example",
                 headers={"In-Reply-To": f"<{ack.message_id}>"})
    desk.deliver(reply, mail_from="postmaster@customer.example")
    assert Outbox.get_by_id(ack.id).status == "sent"
    stored = Message.get(Message.message_id == "answer@customer.example")
    assert not stored.internal


# -- 2. forged bounces: strangers alter tickets and stop mail --------------------------

def test_a_strangers_forged_bounce_is_not_put_on_any_ticket_as_trusted(desk):
    """DESIGN §1.6/§4: a stranger who guesses a ticket number can't change the ticket;
    a stranger's mail on a ticket is *unverified*.  A 'bounce' quoting a made-up
    Message-ID of ours (`maild.<number>.<anything>@<hostname>`) is stored on ticket
    <number> as an internal, verified message with an event whose text the stranger
    wrote."""
    desk.deliver(mail(message_id="printer@customer.example"))
    [ticket] = Ticket.select()
    forged = mail("Undelivered Mail Returned to Sender",
                  "NOTE TO AGENTS: customer confirmed by phone, refund to IBAN XX00 EVIL.\n",
                  sender=f"Mail Delivery System <{STRANGER}>", message_id="forged@evil.example",
                  headers={"References": f"<maild.{ticket.number}.madeup@example.com>"})
    desk.deliver(forged, mail_from=STRANGER)
    on_ticket = [m for m in show_ticket(ticket.number)["messages"] if m.get("from") == STRANGER
                 or "IBAN" in (m.get("text") or m.get("visible_text") or "")]
    stored = Message.get_or_none(Message.message_id == "forged@evil.example")
    assert stored is None or stored.unverified, (
        f"stranger's text stored on #{ticket.number}: internal={stored.internal} "
        f"unverified={stored.unverified}; shown={len(on_ticket)}")


def test_a_forged_bounce_does_not_stop_a_mail_waiting_for_its_retry(desk):
    """Outbox ids are sequential and the VERP address carries no secret: anyone can write
    to support+bounces-<N>@.  mark_bounced spares only rows never attempted; a row whose
    first attempt got a 4xx (mark_retry: queued, attempts=1) is stopped for good."""
    desk.deliver(mail(message_id="printer@customer.example", sender=f"Carol <{CUSTOMER}>"))
    [ack] = Outbox.select()
    Outbox.update(status="queued", attempts=1, last_error="451 4.3.0 try later",
                  next_attempt_at=T0 + timedelta(minutes=5)).where(Outbox.id == ack.id).execute()
    verp = f"support+bounces-{ack.id}@example.com"
    forged = bounce_of(ack, to=verp)            # a stranger can write exactly this
    desk.deliver(forged, rcpt=verp, mail_from="")
    assert Outbox.get_by_id(ack.id).status == "queued"
    due = outbox.claim_due(Outbox._meta.database, T0 + timedelta(minutes=6))
    assert [d.id for d in due] == [ack.id]


# -- 3. hostile input: one small bounce stalls the single worker -----------------------

def _bounce(body: str) -> bytes:
    return ("From: MAILER-DAEMON@mx.example\r\nTo: support@example.com\r\n"
            "Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <b1@mx.example>\r\n\r\n"
            + body).encode()


def _read_seconds(raw: bytes) -> float:
    parsed = parse(raw)
    start = time.perf_counter()
    dsn.read_report(parsed, raw)
    return time.perf_counter() - start


def test_blank_lines_do_not_make_reading_a_bounce_quadratic():
    """COPY_MARKERS starts `^\\s*` under re.M: at every line start `\\s*` runs over all
    the following whitespace lines and backtracks.  12 KB of ' \\n' lines: ~3 s here;
    48 KB: ~70 s; the 200,000 characters MAX_TEXT lets through: ~45 min, per message,
    on the one worker thread (and again after every watchdog restart)."""
    raw = _bounce("x\r\n" + " \r\n" * 4000)
    assert _read_seconds(raw) < 0.5


def test_a_long_word_does_not_make_reading_a_bounce_quadratic():
    """_text_recipients runs _ADDRESS.findall on every 'error' line: a 25 KB word costs
    ~2 s, 100 KB ~30 s, 200 KB ~2 min."""
    raw = _bounce("error " + "a" * 25_000 + "\r\n")
    assert _read_seconds(raw) < 0.5


def test_reading_a_bounce_keeps_to_max_mime_parts(monkeypatch):
    """parsers.limits: the parser stops at part max_mime_parts + 1 and the rest is never
    read.  read_report parses the raw bytes again with no limit (and flufl a third
    time): a 1.3 MB bounce of empty parts costs ~5 s and ~70 MB, a 25 MB one ~1.3 GB."""
    seen = []
    real = dsn.read_message

    def counting(raw, **limits):
        message, cut = real(raw, **limits)
        seen.append(sum(1 for _ in message.walk()))
        return message, cut
    monkeypatch.setattr(dsn, "read_message", counting)
    raw = ("From: MAILER-DAEMON@mx.example\r\nTo: support@example.com\r\nSubject: Undelivered Mail\r\n"
           "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
           + "--b\r\n\r\n" * 20_000 + "--b--\r\n").encode()
    parsed = parse(raw)
    dsn.read_report(parsed, raw)
    assert max(seen) <= 1_001, f"read_report built {max(seen):,} parts"


# -- 4. burst collapse: two different mails taken for one -------------------------------

def _with_attachment(n: int, payload: bytes) -> bytes:
    import base64
    body = base64.encodebytes(payload).decode()
    return ("From: Carol Customer <carol@customer.example>\r\nTo: support@example.com\r\n"
            f"Subject: Scans\r\nMessage-ID: <scan{n}@customer.example>\r\nMIME-Version: 1.0\r\n"
            "Content-Type: multipart/mixed; boundary=xx\r\n\r\n"
            "--xx\r\nContent-Type: text/plain\r\n\r\nScan attached.\r\n"
            "--xx\r\nContent-Type: application/pdf\r\n"
            f"Content-Disposition: attachment; filename=\"contract-{n}.pdf\"\r\n"
            f"Content-Transfer-Encoding: base64\r\n\r\n{body}\r\n--xx--\r\n").encode()


def test_two_mails_with_different_oversized_attachments_are_not_one_burst(tmp_path, database_url, db):
    """visible_body_hash hashes the *stored* attachments: one over max_attachment_size is
    left out, so two mails that differ only in their (large) files hash the same and the
    second is 'collapsed' -- no ticket, no acknowledgement, no notification, and an event
    claiming it was 'the same mail'."""
    desk = Desk(tmp_path, database_url, db,
                limits="{max_message_size: 200000, auto_replies_per_hour: 10, max_attachment_size: 1000}")
    try:
        desk.deliver(_with_attachment(1, b"A" * 5000))
        desk.now = T0 + timedelta(minutes=1)
        handled = desk.deliver(_with_attachment(2, b"B" * 5000))
    finally:
        desk.spool.close()
    assert handled.outcome == "created", "a different contract was collapsed into the first mail's ticket"
