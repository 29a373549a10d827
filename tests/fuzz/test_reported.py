"""Bugs the fuzzers found outside the parsers this folder may change (parsers/message.py,
parsers/feed.py): each a minimal reproducer, now fixed there (the invented attachment
name; the cost of empty parts, bounded by max_mime_parts)."""
from __future__ import annotations


from parsers.message import parse
from tests.fuzz.checks import parse_peak
from tests.fuzz.test_memory import C, K_REAL

UNNAMED_ATTACHMENT = (b"From: a@example.org\nSubject: x\n"
                      b"Content-Type: multipart/mixed; boundary=b\n\n"
                      b"--b\nContent-Disposition: attachment\n\ndata\n--b--\n")


def test_an_unnamed_attachment_gets_the_same_name_on_every_parse():
    first, second = parse(UNNAMED_ATTACHMENT), parse(UNNAMED_ATTACHMENT)
    assert first.attachments[0].data == b"data"
    assert first.attachments[0].filename == second.attachments[0].filename == ""


EMPTY_PARTS = (b"From: a@example.org\nSubject: x\nContent-Type: multipart/mixed; boundary=b\n\n"
               + b"--b\n\n" * 3_000 + b"--b--\n")


def test_a_message_of_empty_mime_parts_costs_no_more_memory_than_real_mail():
    assert parse_peak(EMPTY_PARTS) <= K_REAL * len(EMPTY_PARTS) + C
