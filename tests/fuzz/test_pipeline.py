"""`maild.pipeline.prepare` -- everything the worker does before the database -- on mutated
real mail, header soups and would-be agent mail, with the shipped rules.yaml (queues,
teams, contacts, calendars, every kind of condition) and the authentication-results trust
policy: it returns what the store records, with the raw bytes unchanged, or refuses with
one of the parser's own exceptions.  Nothing in a message makes it raise anything else.
(The `context` fixture is in conftest.py.)"""
from __future__ import annotations

from datetime import datetime, timezone

from hypothesis import event, given
from hypothesis import strategies as st

from maild.envelope import Envelope
from maild.pipeline import may_auto_reply, prepare
from parsers.classify import AUTOMATIC, NORMAL
from parsers.commands import COMMANDS, CommandBlock
from rules.model import PRIORITIES
from store.tickets import InboundMessage
from tests.fuzz.budget import fuzz_settings
from tests.fuzz.checks import ALLOWED
from tests.fuzz.mutations import mutated_messages, split_message
from tests.fuzz.soups import soup_messages

AGENTS = ("alice@example.com", "bob@example.com", "alice@corp.example.com", "dave@example.com")
COMMAND_LINES = ("#status pending", "#priority urgent", "#assign bob", "#queue billing",
                 "#tag vip", "#close", "#note", "#stauts x", "#priority asap", "#tag " + "x" * 80)


_BASES = mutated_messages() | soup_messages()


@st.composite
def agent_mails(draw) -> bytes:
    """Mail from an agent's address: proven (dmarc=pass from our MTA) or not, with command
    lines at the top of the body or not, on a mutated or soup message."""
    raw = draw(_BASES)
    fields, rest = split_message(raw)
    if draw(st.integers(0, 4)):             # mostly ours the only From (two: never proven)
        fields = [f for f in fields if not f.lower().startswith(b"from:")]
    newline = b"\r\n" if b"\r\n" in raw[:4096] else b"\n"
    head = [b"From: " + draw(st.sampled_from(AGENTS)).encode() + newline]
    verdict = draw(st.sampled_from(["dmarc=pass", "dmarc=pass", "dkim=pass header.d=example.com",
                                    "dmarc=fail", "none", ""]))
    if verdict:
        authserv = draw(st.sampled_from([b"mx.example.com"] * 3 + [b"evil.example"]))
        head.append(b"Authentication-Results: " + authserv + b"; " + verdict.encode()
                    + b" header.from=example.com" + newline)
    commands = draw(st.lists(st.sampled_from(COMMAND_LINES), max_size=4))
    body = newline.join(c.encode() for c in commands) + (newline if commands else b"")
    if rest.startswith((b"\r\n", b"\n", b"\r")):
        separator = rest[:2] if rest.startswith(b"\r\n") else rest[:1]
        rest = separator + body + rest[len(separator):]
    else:
        rest = newline + body + rest
    return b"".join(head) + b"".join(fields) + rest


ENVELOPES = st.builds(
    Envelope,
    mail_from=st.none() | st.sampled_from(["", "carol@customer.example", "MAILER-DAEMON@x"])
    | st.text(max_size=20),
    rcpt_tos=st.lists(st.sampled_from(["support@example.com", "billing@example.com",
                                       "support+comment@example.com", "bugs@example.com",
                                       "SUPPORT+x@EXAMPLE.COM", "nobody@elsewhere.example"])
                      | st.text(max_size=20), max_size=3).map(tuple),
    received_via=st.sampled_from(["lmtp", "smtp", "ingest", "imap"]),
)
RECEIVED = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                        timezones=st.none() | st.just(timezone.utc))
MESSAGES = mutated_messages() | soup_messages() | agent_mails()


@fuzz_settings(60)
@given(raw=MESSAGES, envelope=ENVELOPES, received_at=RECEIVED)
def test_prepare_records_any_message_unchanged_or_refuses_it_with_a_reason(context, raw, envelope,
                                                                         received_at):
    try:
        inbound, routing = prepare(raw, envelope, context, received_at=received_at)
    except ALLOWED as refusal:
        assert str(refusal).strip()
        event(f"refused: {type(refusal).__name__}")
        return
    event(f"kind: {inbound.kind}")
    event("author: agent" if inbound.author else "author: customer")
    assert isinstance(inbound, InboundMessage)
    assert inbound.raw == raw, "the raw message is kept byte for byte"
    assert inbound.message_key and inbound.kind in AUTOMATIC | {NORMAL} and inbound.evidence
    assert context.is_ours(inbound.recipient) or inbound.recipient == context.helpdesk_address
    assert context.ruleset.queue(inbound.queue) is not None
    assert inbound.priority in PRIORITIES
    assert all(0 <= n < 10**18 for n in inbound.our_ticket_refs)
    if inbound.author:
        assert inbound.author in context.ruleset.agent_addresses and inbound.kind == NORMAL
        assert isinstance(inbound.commands, CommandBlock)
        assert all(c.name in COMMANDS for c in inbound.commands.commands)
    refusal = may_auto_reply(inbound, routing, context)
    assert refusal is None or (isinstance(refusal, str) and refusal)
    if inbound.kind != NORMAL:
        assert refusal is not None, "an automatic mail is never answered"


@fuzz_settings(30)
@given(raw=agent_mails(), envelope=ENVELOPES, received_at=RECEIVED)
def test_agent_mail_is_the_agents_only_when_our_mta_proved_it(context, raw, envelope, received_at):
    try:
        inbound, _ = prepare(raw, envelope, context, received_at=received_at)
    except ALLOWED:
        return
    event("proven agent" if inbound.author else f"not the agent's: {inbound.auth[:40]}")
    if inbound.author:
        results = [value for name, value in _headers(raw) if name == "authentication-results"]
        assert any(value.lower().startswith("mx.example.com") and "pass" in value
                   for value in results), "an agent's mail must be proven by our own MTA"


def _headers(raw: bytes) -> list[tuple[str, str]]:
    fields, _ = split_message(raw)
    found = []
    for field in fields:
        name, _, value = field.partition(b":")
        found.append((name.strip().lower().decode("latin-1"), value.strip().decode("latin-1")))
    return found
