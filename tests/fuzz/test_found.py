"""Bugs the fuzzers found in the parsers and that are fixed: one readable test each (the
fuzz targets also keep the failing input as an explicit @example)."""
from __future__ import annotations

import pytest

from parsers.charsets import decode_bytes
from parsers.message import parse
from parsers.threading import make_message_id, ticket_from_message_id


@pytest.mark.parametrize("separator", ["\x1c", "\x1d", "\x1e"])
def test_a_file_group_or_record_separator_in_a_header_is_no_line_break(separator):
    # str.splitlines() breaks at these, and the stdlib refuses them in a header it writes.
    mail = parse(f"From: a@example.org\nSubject: one{separator}Bcc: x@evil.example\n\nhi\n".encode())
    assert mail.subject == "one Bcc: x@evil.example"
    assert mail.subject.splitlines() == [mail.subject]


@pytest.mark.parametrize("data, charset", [(b"+2AA-", "utf-7"), (b"a\x00b", "utf-8"),
                                           (b"a\x00b", None)])
def test_decoded_text_never_carries_a_lone_surrogate_or_nul(data, charset):
    # UTF-7 decodes '+2AA-' to the lone surrogate U+D800, which UTF-8 storage refuses.
    text, _ = decode_bytes(data, charset)
    text.encode("utf-8")
    assert "\x00" not in text


@pytest.mark.parametrize("ticket", [-1, 10**18, 2**63])
def test_a_ticket_number_our_message_ids_cannot_carry_is_refused(ticket):
    # 'maild.-1.x@host' was made, and read back as None: the reply lost its ticket.
    with pytest.raises(ValueError):
        make_message_id(ticket, "help.example.com", "x")
    top = 10**18 - 1
    assert ticket_from_message_id(make_message_id(top, "help.example.com", "x"),
                                  "help.example.com") == top
