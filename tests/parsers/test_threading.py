"""Threading keys: a reply finds its ticket by subject token or by Message-ID."""
from __future__ import annotations

import pytest

from parsers.message import parse
from parsers.threading import (add_token, find_token, make_message_id, reply_candidates,
                               ticket_from_message_id)


@pytest.mark.parametrize("subject", [
    "[Acme #1042] Printer broken",
    "Re: [Acme #1042] Printer broken",
    "AW: SV: Fwd: [Acme #1042] Printer broken",
    "Printer broken [Acme #1042]",
    "Re: Printer broken ([acme #1042])",
    "[Acme#1042] Printer broken",
    "[ acme  #  1042 ] Printer broken",
    "[Other #7] Re: [Acme #1042] Printer broken",
])
def test_our_token_is_found_anywhere_in_the_subject(subject):
    assert find_token(subject, "Acme") == 1042


@pytest.mark.parametrize("subject", [
    "Printer broken",
    "[Other #1042] Printer broken",
    "[AcmeCorp #1042] Printer broken",
    "[Acme 1042] Printer broken",
    "[Acme #] Printer broken",
    "[Acme #12a] Printer broken",
    "Acme #1042 Printer broken",
    "",
])
def test_no_token_or_someone_elses_token_is_not_ours(subject):
    assert find_token(subject, "Acme") is None


def test_prefixes_with_spaces_and_regex_characters_are_literal():
    assert find_token("Re: [Acme  Support #5] x", "Acme Support") == 5
    assert find_token("[C++ #5] x", "C++") == 5
    assert find_token("[CCC #5] x", "C++") is None
    assert find_token("[Acme #99999999999999999999999] x", "Acme") is None   # absurd numbers


def test_adding_a_token_puts_it_in_front_and_never_twice():
    assert add_token("Printer broken", "Acme", 1042) == "[Acme #1042] Printer broken"
    assert add_token("Re: [acme #1042] Printer broken", "Acme", 1042) == "Re: [Acme #1042] Printer broken"
    assert add_token("[Other #7] Printer broken", "Acme", 1042) == "[Acme #1042] [Other #7] Printer broken"
    assert add_token("", "Acme", 1042) == "[Acme #1042]"
    merged = add_token("Re: [Acme #12] Printer broken", "Acme", 1042)
    assert merged == "Re: [Acme #1042] Printer broken"
    assert find_token(add_token("Anything at all", "Acme", 7), "Acme") == 7


def test_our_message_ids_carry_the_ticket_and_only_for_our_host():
    message_id = make_message_id(1042, "Help.Example.COM", "3f9a1c")
    assert message_id == "maild.1042.3f9a1c@help.example.com"
    assert ticket_from_message_id(message_id, "help.example.com") == 1042
    assert ticket_from_message_id(f"<{message_id}>", "HELP.example.com") == 1042
    assert ticket_from_message_id(message_id, "other.example.com") is None
    assert ticket_from_message_id("maild.x.3f9a1c@help.example.com", "help.example.com") is None
    assert ticket_from_message_id("CAF=abc@mail.gmail.com", "help.example.com") is None
    assert ticket_from_message_id("", "help.example.com") is None


def test_message_id_parts_must_be_usable():
    with pytest.raises(ValueError):
        make_message_id(1, "help.example.com", "has space")
    with pytest.raises(ValueError):
        make_message_id(1, "", "abc")


def test_reply_candidates_are_in_reply_to_then_references_newest_first():
    mail = parse(b"In-Reply-To: <c@x.org>\r\n"
                 b"References: <a@x.org> <b@x.org>\r\n <c@x.org>\r\n\r\nbody")
    assert reply_candidates(mail) == ("c@x.org", "b@x.org", "a@x.org")
    assert reply_candidates(parse(b"Subject: new\r\n\r\nbody")) == ()
