"""The text helpers on hostile input: charsets, header words, Message-IDs, quotes and
command lines never raise, and keep their promises (storable text, one line, idempotent
ids, nothing invented, never an empty reply)."""
from __future__ import annotations

import re

from hypothesis import example, given
from hypothesis import strategies as st

from parsers.charsets import decode_bytes
from parsers.commands import COMMANDS, MAX_ERROR_LINE, split_commands
from parsers.headers import addresses, decode_header
from parsers.msgid import normalize_message_id, parse_message_ids
from parsers.quotes import visible_text
from tests.fuzz.budget import fuzz_settings
from tests.fuzz.checks import single_line, storable
from tests.fuzz.mutations import CHARSETS, SPECIAL_BYTES
from tests.fuzz.soups import address_lists, encoded_phrases, message_id_lists, values

CHARSET_NAMES = st.none() | st.sampled_from(CHARSETS) | st.text(max_size=12)
BYTES = (st.binary(max_size=200)
         | st.lists(st.sampled_from(SPECIAL_BYTES) | st.binary(max_size=8), max_size=30).map(b"".join)
         | st.text(max_size=100).map(lambda s: s.encode("utf-8", "surrogatepass")))


@fuzz_settings(300)
@given(BYTES, CHARSET_NAMES)
@example(b"+2AA-", "utf-7")                 # UTF-7 decodes to a lone surrogate
@example(b"a\x00b", None)
def test_any_bytes_in_any_charset_decode_to_storable_text(data, charset):
    text, note = decode_bytes(data, charset)
    assert storable(text) and isinstance(note, str)


@fuzz_settings(200)
@given(values | st.text(max_size=100).map(lambda s: s.encode("utf-8", "surrogatepass")))
def test_header_values_decode_to_one_storable_line(value):
    raw = value.decode("ascii", "surrogateescape")          # as the stdlib hands them over
    text = decode_header(raw)
    assert storable(text) and single_line(text)
    for name, address in addresses(raw) + addresses(raw, require_at=False):
        assert storable(name) and single_line(name)
        assert storable(address) and address and not any(ch.isspace() for ch in address)


@fuzz_settings(150)
@given(message_id_lists() | address_lists | encoded_phrases() | st.binary(max_size=80))
def test_message_ids_found_are_normalized_and_stable(value):
    text = value.decode("utf-8", "replace")
    found = parse_message_ids(text)
    assert len(set(found)) == len(found)
    for mid in found:
        assert mid and storable(mid) and normalize_message_id(mid) == mid
        assert parse_message_ids(f"<{mid}>") == (mid,)
    single = normalize_message_id(text)
    assert single is None or normalize_message_id(single) == single


QUOTE_LINES = st.sampled_from([
    "> quoted line", ">> deeper", ">", " > indented quote", "On Mon, 4 Mar 2024, Bob <b@x.org> wrote:",
    "On Mon, 4 Mar 2024 at 10:15, Bob Builder <", "b@x.org> wrote:",
    "Am 04.03.2024 um 10:15 schrieb Bob:", "Le lun. 4 mars 2024 à 10:15, Bob a écrit :",
    "-----Original Message-----", "From: Bob", "Sent: Monday", "To: support@example.com",
    "Subject: Re: help", "Von: Bob", "Gesendet: Montag", "-- ", "--", "Sent from my iPhone",
    "_" * 40, "-" * 20, "", " ", "\t", "#status pending", "#tag vip", "#note", "\u200b#close",
    "Thanks,", "Bob", "2024-03-04 10:15 GMT+01:00 Bob <b@x.org>:", "Bob wrote:", ":",
    "x" * 400 + ":", "From:" * 50,
]) | st.text(max_size=60)


@fuzz_settings(300)
@given(st.lists(QUOTE_LINES, max_size=40), st.sampled_from(["\n", "\r\n", "\r"]))
def test_visible_text_only_removes_lines_and_never_leaves_a_reply_empty(lines, newline):
    text = newline.join(lines)
    shown = visible_text(text)
    normalized = text.replace("\r\n", "\n").replace("\r", "\n")
    assert isinstance(shown, str)
    assert bool(shown.strip()) == bool(normalized.strip())
    for line in shown.split("\n"):
        assert line in normalized


@fuzz_settings(200)
@given(st.lists(QUOTE_LINES, max_size=20), st.sampled_from(["\n", "\r\n", "\r"]))
def test_command_lines_come_off_the_top_and_the_rest_is_kept_as_written(lines, newline):
    text = newline.join(lines)
    block = split_commands(text)
    assert text.endswith(block.text)
    assert all(command.name in COMMANDS for command in block.commands)
    for error in block.errors:
        assert single_line(error) and len(error) <= MAX_ERROR_LINE + 80
    removed = text[:len(text) - len(block.text)]
    assert not re.search(r"\S", removed) or block.commands or block.errors
