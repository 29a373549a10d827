"""What a user checks, whatever else a message holds: a mail that says it is automatic is
never answered, and a reply that carries our subject token or answers one of our
Message-IDs finds its ticket.  Each property adds one header to a mutated corpus mail or
a header soup (on top, so it is the first of its name) and runs `pipeline.prepare` (with
conftest.py's `context`)."""
from __future__ import annotations

from datetime import datetime, timezone

from hypothesis import given
from hypothesis import strategies as st

from maild.envelope import Envelope
from maild.pipeline import may_auto_reply, prepare
from parsers.classify import AUTOMATIC
from parsers.threading import make_message_id
from tests.fuzz.budget import fuzz_settings
from tests.fuzz.checks import ALLOWED
from tests.fuzz.mutations import mutated_messages
from tests.fuzz.soups import soup_messages

MESSAGES = mutated_messages() | soup_messages()
CUSTOMER = Envelope(mail_from="carol@customer.example", rcpt_tos=("support@example.com",),
                    received_via="lmtp")
AUTOMATIC_SIGNALS = st.sampled_from([
    b"Auto-Submitted: auto-replied", b"Auto-Submitted: auto-generated",
    b"Auto-Submitted: auto-notified; owner-email=x@y.example", b"Precedence: bulk",
    b"Precedence: junk", b"List-Id: <support.lists.example.com>",
    b"List-Unsubscribe: <mailto:leave@lists.example.com>", b"X-Autoreply: yes",
    b"X-Failed-Recipients: carol@customer.example", b"X-Maild-Loop: example.com",
    b"Subject: Out of Office: back on Monday", b"Subject: Undelivered Mail Returned to Sender",
    b"From: MAILER-DAEMON@mx.customer.example", b"From: no-reply@shop.example",
])
MONDAY = datetime(2026, 11, 23, 10, 0, tzinfo=timezone.utc)
NEWLINES = st.sampled_from([b"\r\n", b"\n"])


def prepared(raw, context):
    try:
        return prepare(raw, CUSTOMER, context, received_at=MONDAY)
    except ALLOWED:
        return None, None


@fuzz_settings(30)
@given(MESSAGES, AUTOMATIC_SIGNALS, NEWLINES)
def test_a_mail_that_says_it_is_automatic_is_never_answered(context, raw, signal, newline):
    inbound, routing = prepared(signal + newline + raw, context)
    if inbound is not None:
        assert inbound.kind in AUTOMATIC, (signal, inbound.kind, inbound.evidence)
        assert may_auto_reply(inbound, routing, context) is not None


TICKETS = st.integers(1, 10**18 - 1)
SUBJECT_TOKENS = st.sampled_from([b"[Acme #%d]", b"Re: [Acme #%d]", b"AW: RE: [acme#%d]",
                                  b"=?utf-8?q?Re=3A_=5BAcme_=23%d=5D?=", b"Fwd: [ Acme # %d ]"])


@fuzz_settings(30)
@given(MESSAGES, TICKETS, SUBJECT_TOKENS, NEWLINES)
def test_a_reply_with_our_subject_token_finds_its_ticket(context, raw, ticket, token, newline):
    subject = b"Subject: " + (token % ticket) + b" Printer"
    inbound, _ = prepared(subject + newline + raw, context)
    if inbound is not None:
        assert inbound.token_ticket == ticket, inbound.subject


@fuzz_settings(30)
@given(MESSAGES, TICKETS, st.sampled_from(["In-Reply-To", "References"]), NEWLINES)
def test_a_reply_to_our_message_id_finds_its_ticket(context, raw, ticket, header, newline):
    message_id = make_message_id(ticket, context.hostname, "3f9a1c2b")
    line = f"{header}: <{message_id}>".encode()
    inbound, _ = prepared(line + newline + raw, context)
    if inbound is not None:
        assert ticket in inbound.our_ticket_refs, (inbound.in_reply_to, inbound.references)
