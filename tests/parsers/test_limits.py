"""parsers.limits: hostile mail is refused or trimmed, with a reason, in bounded memory.

Memory is measured with tracemalloc around `parse` alone (after a warm-up parse, so
imports and caches don't count): the peak must stay within K times the message size.
Measured here: the 1 MB headers ~0x (1.4 KB: the scan stops at the limit); 10,000 parts
1.7x; nesting 1,000 deep 9.0x (a 68 KB message: ~6 KB of objects per level read, 100
levels); 10,000 attachments 1.0x; the zip and gzip bombs 4.3x; a 50 MB attachment 2.7x
(72 MB on the wire, 196 MB peak).  K = 12.
No timed assertions: a hang fails through the pytest timeout instead.
"""
from __future__ import annotations

import base64
import hashlib
import io
import tracemalloc
import zipfile

import pytest

from parsers.limits import Limits, MessageRefused, check_header_section
from parsers.message import parse
from tests.parsers import hostile

K = 12
pytestmark = pytest.mark.timeout(120)


def parse_measured(raw: bytes, limits: Limits = Limits()):
    """(parse(raw, limits) or the MessageRefused it raised, peak bytes allocated)."""
    parse(hostile.normal("warm-up"), limits)
    tracemalloc.start()
    try:
        try:
            result = parse(raw, limits)
        except MessageRefused as exc:
            result = exc
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def sha256(data: bytes) -> str:
    """Compare big bytes by digest (a failing == on megabytes makes pytest diff them)."""
    return hashlib.sha256(data).hexdigest()


def assert_bounded(peak: int, raw: bytes) -> None:
    assert peak <= K * len(raw), f"peak {peak:,} bytes is {peak / len(raw):.1f}x the message"


# -- the header section: refused ----------------------------------------------------------

def test_a_1mb_header_field_is_refused_without_reading_the_rest():
    raw = hostile.huge_header(1_000_000)
    refused, peak = parse_measured(raw)
    assert isinstance(refused, MessageRefused)
    assert "max_header_bytes 256 KiB" in refused.reason
    assert peak < 256 * 1024            # not even one copy of the message


def test_20000_small_headers_are_refused():
    raw = hostile.many_headers(20_000, 1_000_000)
    refused, peak = parse_measured(raw)
    assert isinstance(refused, MessageRefused)
    assert "max_headers 1,000" in refused.reason
    assert peak < 256 * 1024


def test_many_small_headers_within_the_byte_limit_but_over_the_count_are_refused():
    raw = hostile.many_headers(5_000, 200_000)
    with pytest.raises(MessageRefused, match="max_headers"):
        parse(raw)
    assert parse(raw, Limits(max_headers=6_000)).header("X-H04999")


def test_a_header_section_at_the_limit_is_read_and_one_byte_more_is_refused():
    raw = hostile.normal("edge")
    size = check_header_section(raw, Limits())
    assert raw[size:size + 2] == b"\r\n"             # stopped at the blank line
    assert parse(raw, Limits(max_header_bytes=size)).subject == "Printer on fire"
    with pytest.raises(MessageRefused):
        parse(raw, Limits(max_header_bytes=size - 1))


def test_a_long_real_header_like_the_corpus_one_is_read():
    """A 205 KiB Subject (flanker/long-header.eml has one) is under the default."""
    words = "\r\n ".join(["=?utf-8?q?Die_hei=C3=9Fe_Zypernsonne?="] * 5_000)
    raw = hostile.head("long", subject=words) + b"\r\nbody\r\n"
    assert 190_000 < len(raw) < 256 * 1024
    assert parse(raw).subject.startswith("Die heiße Zypernsonne")


def test_a_message_without_a_blank_line_is_not_all_header():
    raw = hostile.head("no-blank") + b"Just body text, no colon here\r\n" + b"x" * 400_000
    assert parse(raw).text.startswith("Just body text")


# -- MIME parts and depth: trimmed --------------------------------------------------------

def test_10000_mime_parts_are_trimmed_to_max_mime_parts_and_the_rest_is_not_read():
    raw = hostile.many_parts(10_000)
    mail, peak = parse_measured(raw)
    assert mail.trimmed == ("MIME parts after the first 1,000 not read (max_mime_parts 1,000): "
                            "the rest of the message is only in the raw message",)
    assert "part 997" in mail.text and "part 998" not in mail.text
    assert mail.trimmed[0] == mail.defects[0]
    assert_bounded(peak, raw)


def test_parts_up_to_the_limit_are_all_read():
    raw = hostile.many_parts(3)             # the message, the text part and 3 parts: 5
    assert not parse(raw, Limits(max_mime_parts=5)).trimmed
    assert parse(raw, Limits(max_mime_parts=4)).trimmed


def test_nesting_1000_deep_is_trimmed_at_max_mime_depth():
    raw = hostile.deep(1_000)
    mail, peak = parse_measured(raw)
    assert mail.trimmed == ("1 MIME container(s) nested deeper than max_mime_depth 100 not "
                            "opened: their parts are only in the raw message",)
    assert mail.subject == "hostile" and "the bottom" not in mail.text
    assert_bounded(peak, raw)


def test_nesting_within_the_limit_is_read_to_the_bottom():
    assert parse(hostile.deep(99)).text == "the bottom"
    assert not parse(hostile.deep(99)).trimmed
    assert parse(hostile.deep(100)).trimmed


# -- attachments: trimmed -----------------------------------------------------------------

def test_10000_attachments_keep_the_first_max_attachments():
    raw = hostile.many_attachments(10_000)
    mail, peak = parse_measured(raw)
    assert len(mail.attachments) == 500
    assert [a.filename for a in mail.attachments[:2]] == ["f0.bin", "f1.bin"]
    assert mail.attachments[0].data == b"file 0"
    assert any("max_mime_parts 1,000" in t for t in mail.trimmed)
    assert any(t.startswith("498 attachment(s) after the first 500 not stored "
                            "(max_attachments 500): 'f500.bin', 'f501.bin'") for t in mail.trimmed)
    assert_bounded(peak, raw)


@pytest.mark.slow
def test_a_50mb_attachment_over_max_attachment_size_is_not_stored_but_the_mail_is():
    raw = hostile.big_attachment(50 * 1024 * 1024)
    mail, peak = parse_measured(raw)
    assert mail.trimmed == ("attachment 'big.bin' (52,428,800 bytes) over max_attachment_size "
                            "10 MiB: not stored",)
    assert mail.attachments == () and mail.text == "see attached"
    assert_bounded(peak, raw)


def test_an_attachment_at_the_size_limit_is_kept():
    raw = hostile.multipart("edge", [hostile.attachment("a.bin", b"\xff" * 1000)])
    assert parse(raw, Limits(max_attachment_size=1000)).attachments[0].data == b"\xff" * 1000
    assert parse(raw, Limits(max_attachment_size=999)).attachments == ()


def test_a_quoted_printable_attachment_is_measured_before_it_is_decoded():
    body = b"=00" * 400_000                 # 1.2 MB on the wire, 400 kB decoded
    part = (b'Content-Type: application/octet-stream\r\nContent-Disposition: attachment; '
            b'filename="q.bin"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n'
            + b"=\r\n".join(body[i:i + 72] for i in range(0, len(body), 72)) + b"\r\n")
    raw = hostile.multipart("qp", [part])
    mail, peak = parse_measured(raw)
    assert mail.attachments[0].sha256 == sha256(b"\0" * 400_000)
    assert_bounded(peak, raw)


# -- bombs: never decompressed ------------------------------------------------------------

def test_a_zip_bomb_and_a_gzip_bomb_are_kept_as_the_bytes_that_were_sent():
    raw = hostile.zip_bomb()
    bomb, expanded = hostile.zip_bomb_data()
    gz = hostile.gzip_bomb_data()
    assert expanded > 10 ** 18 and len(bomb) < 100_000     # an exabyte in ~60 KB
    mail, peak = parse_measured(raw)
    by_name = {a.filename: a for a in mail.attachments}
    assert by_name["42.zip"].sha256 == sha256(bomb)         # opaque: not one byte inflated
    assert by_name["zeros.gz"].sha256 == sha256(gz)
    assert zipfile.ZipFile(io.BytesIO(by_name["42.zip"].data)).namelist()[0] == "0.zip"
    assert len(mail.text) < 2 * len(raw)                     # the "gzip" body read as text, as sent
    assert not mail.trimmed
    assert_bounded(peak, raw)


def test_base64_decoding_is_bounded_by_the_part_size():
    data = bytes(range(256)) * 20_000
    raw = hostile.multipart("b64", [hostile.attachment("d.bin", data)])
    mail, peak = parse_measured(raw)
    assert mail.attachments[0].sha256 == sha256(data)
    assert len(base64.encodebytes(data)) < len(raw)
    assert_bounded(peak, raw)


# -- the limits themselves ----------------------------------------------------------------

@pytest.mark.parametrize("field", ["max_header_bytes", "max_headers", "max_mime_parts",
                                   "max_mime_depth", "max_attachments", "max_attachment_size"])
@pytest.mark.parametrize("value", [0, -1, 1.5, True])
def test_a_limit_is_a_whole_number_of_one_or_more(field, value):
    with pytest.raises(ValueError, match=field):
        Limits(**{field: value})
