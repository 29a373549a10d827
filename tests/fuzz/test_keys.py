"""classify() and the threading keys on whatever parse() makes of mutated real mail and
header soups: a known kind with evidence, our own mail always a loop, threading keys that
never raise, and our Message-IDs that always lead back to their ticket."""
from __future__ import annotations

from hypothesis import assume, example, given
from hypothesis import strategies as st

from parsers.classify import AUTOMATIC, LOOP, NORMAL, classify
from parsers.threading import (find_token, make_message_id, reply_candidates,
                               ticket_from_message_id)
from tests.fuzz.budget import fuzz_settings
from tests.fuzz.checks import parse_or_refuse, single_line, storable
from tests.fuzz.mutations import mutated_messages
from tests.fuzz.soups import header_names, soup_messages

KINDS = AUTOMATIC | {NORMAL}


MESSAGES = mutated_messages() | soup_messages()


def parsed(raw: bytes):
    """The ParsedMail (parsed in the test, not in a strategy: mail-parser uses `random`)."""
    mail = parse_or_refuse(raw)
    assume(mail is not None)
    return mail
ENVELOPE_SENDERS = st.none() | st.sampled_from(["", "<>", " ", "MAILER-DAEMON", "a@b.example"]) \
    | st.text(max_size=30)
TEXT_NAMES = header_names.map(lambda name: name.decode("utf-8", "replace"))


@fuzz_settings(80)
@given(MESSAGES, ENVELOPE_SENDERS, st.booleans(), st.sampled_from(["X-Maild-Loop"]) | TEXT_NAMES,
       st.none() | st.text(max_size=20))
def test_every_mail_gets_a_known_kind_with_one_line_of_evidence(raw, sender, from_is_ours,
                                                                 loop_header, loop_value):
    mail = parsed(raw)
    own = frozenset(mail.to) | ({mail.from_address} if from_is_ours and mail.from_address else set())
    result = classify(mail, envelope_sender=sender, own_addresses=own,
                      loop_header=loop_header, loop_value=loop_value)
    assert result.kind in KINDS
    assert result.evidence and storable(result.evidence) and single_line(result.evidence)
    if mail.from_address and mail.from_address in own:
        assert result.kind == LOOP, "mail from our own address must never be answered"


@fuzz_settings(80)
@given(MESSAGES, st.sampled_from(["Acme", "acme", "Help Desk", "[", "#", "\\d+", " "])
       | st.text(max_size=12), st.sampled_from(["example.com", "EXAMPLE.com", "b.example"]))
def test_threading_keys_of_any_mail_are_plain_values(raw, prefix, hostname):
    mail = parsed(raw)
    candidates = reply_candidates(mail)
    assert len(set(candidates)) == len(candidates)
    assert set(candidates) == set(mail.in_reply_to) | set(mail.references)
    for candidate in candidates:
        number = ticket_from_message_id(candidate, hostname)
        assert number is None or 0 <= number < 10**18
    token = find_token(mail.subject, prefix)
    assert token is None or 0 <= token < 10**18


HOSTS = st.from_regex(r"[A-Za-z0-9.-]{1,30}", fullmatch=True) | st.sampled_from(
    ["help.example.com", "HELP.Example.COM", " example.com ", "x", "-", ".", "a..b"])
UNIQUES = st.from_regex(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,24}", fullmatch=True)


@fuzz_settings(300)
@given(st.integers(0, 10**18 - 1), HOSTS, UNIQUES)
def test_our_message_id_always_leads_back_to_its_ticket(ticket, hostname, unique):
    message_id = make_message_id(ticket, hostname, unique)
    assert ticket_from_message_id(message_id, hostname) == ticket
    assert ticket_from_message_id(f"<{message_id}>", hostname.upper()) == ticket
    assert ticket_from_message_id(message_id, "other." + hostname.strip()) is None


@fuzz_settings(300)
@given(st.integers() | st.sampled_from([-1, 10**18, 10**19, 2**63]), HOSTS | st.text(max_size=20),
       UNIQUES | st.text(max_size=20))
@example(-1, "help.example.com", "0")       # was made as 'maild.-1.0@...' and read back as None
def test_a_message_id_that_would_not_lead_back_is_refused(ticket, hostname, unique):
    try:
        message_id = make_message_id(ticket, hostname, unique)
    except ValueError:
        return
    assert ticket_from_message_id(message_id, hostname) == ticket
