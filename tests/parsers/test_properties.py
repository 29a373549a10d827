"""Property tests: hostile or damaged input never crashes the parsers."""
from __future__ import annotations

import logging

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from parsers.classify import classify
from parsers.html import html_to_text
from parsers.message import ParsedMail, UnparseableMessage, normalize_message_id, parse
from parsers.quotes import visible_text
from parsers.threading import add_token, find_token
from tests.parsers.corpus import corpus_files

SETTINGS = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# Small corpus mails only, so 200 examples stay within a second or two.
SAMPLES = [p.read_bytes() for p in corpus_files(max_size=24_000)]

HEADER_NAMES = st.sampled_from([
    "From", "To", "Cc", "Reply-To", "Subject", "Date", "Message-ID", "In-Reply-To",
    "References", "Content-Type", "Content-Transfer-Encoding", "Content-Disposition",
    "MIME-Version", "Auto-Submitted", "Precedence", "List-Id", "Return-Path", "X-Maild-Loop",
]) | st.text(st.characters(min_codepoint=33, max_codepoint=126, exclude_characters=":"),
             min_size=1, max_size=20)
HEADER_VALUES = st.one_of(
    st.binary(max_size=80),
    st.text(max_size=80).map(lambda s: s.encode("utf-8", "surrogatepass")),
    st.sampled_from([b"=?utf-8?B?w6k=?=", b"=?x-bogus?Q?=FF=FE?=", b"=?iso-2022-jp?B?GyRC?=",
                     b"multipart/mixed; boundary=b", b"text/plain; charset=unicode_escape",
                     b"text/html; charset=\"\"", b"base64", b"<a@b> <c@d", b"\"unterminated <x@y>",
                     b"Mon, 99 Foo 99999 99:99:99 +9999", b"(((((comment", b"<>"]),
)


def must_parse(raw: bytes) -> ParsedMail | None:
    """parse() returns a ParsedMail; only input without any content may be refused."""
    try:
        mail = parse(raw)
    except UnparseableMessage:
        assert not raw.strip(), "only empty input may be unparseable"
        return None
    assert isinstance(mail, ParsedMail)
    assert isinstance(mail.text, str) and isinstance(mail.visible_text, str)
    assert isinstance(mail.subject, str) and "\n" not in mail.subject
    classify(mail, envelope_sender=None)
    return mail


@pytest.fixture(autouse=True)
def _quiet_mailparser(caplog):
    caplog.set_level(logging.CRITICAL)


@SETTINGS
@given(st.sampled_from(SAMPLES), st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)),
                                          max_size=12), st.floats(0, 1))
def test_damaged_corpus_mail_never_crashes_parse(raw, flips, keep):
    damaged = bytearray(raw[:max(1, int(len(raw) * keep))])
    for where, byte in flips:
        damaged[min(len(damaged) - 1, int(where * len(damaged)))] = byte
    must_parse(bytes(damaged))


@SETTINGS
@given(st.lists(st.tuples(HEADER_NAMES, HEADER_VALUES), max_size=15),
       st.sampled_from([b"\r\n", b"\n", b"\r"]), st.binary(max_size=200))
def test_header_soup_never_crashes_parse(headers, newline, body):
    raw = b"".join(name.encode() + b": " + value + newline for name, value in headers)
    must_parse(raw + newline + body)


@SETTINGS
@given(st.text(max_size=300))
def test_text_helpers_never_crash(text):
    assert isinstance(visible_text(text), str)
    assert isinstance(html_to_text(text), str)
    normalized = normalize_message_id(text)
    assert normalized is None or normalize_message_id(normalized) == normalized


@SETTINGS
@given(st.text(max_size=60), st.from_regex(r"[A-Za-z][A-Za-z0-9 .+-]{0,15}", fullmatch=True),
       st.integers(0, 10**12))
def test_added_token_is_always_found_again(subject, prefix, number):
    assume(prefix.strip())
    assert find_token(add_token(subject, prefix, number), prefix) == number
