"""Bugs the fuzzers found outside the parsers this folder may change (parsers/message.py,
parsers/feed.py, parsers/html.py, maild/): each a minimal reproducer, expected to fail
until it is fixed there (strict: the lead sees it flip)."""
from __future__ import annotations

import pytest

from parsers.message import parse
from tests.fuzz.checks import parse_peak
from tests.fuzz.test_memory import C, K_REAL

UNNAMED_ATTACHMENT = (b"From: a@example.org\nSubject: x\n"
                      b"Content-Type: multipart/mixed; boundary=b\n\n"
                      b"--b\nContent-Disposition: attachment\n\ndata\n--b--\n")


@pytest.mark.xfail(strict=True, reason="parsers/message.py keeps mail-parser's random name "
                   "('<10 random letters>.txt') for an attachment without a filename, so "
                   "parsing the same bytes twice differs (replays, rules on attachment names)")
def test_an_unnamed_attachment_gets_the_same_name_on_every_parse():
    first, second = parse(UNNAMED_ATTACHMENT), parse(UNNAMED_ATTACHMENT)
    assert first.attachments[0].data == b"data"
    assert first.attachments[0].filename == second.attachments[0].filename


EMPTY_PARTS = (b"From: a@example.org\nSubject: x\nContent-Type: multipart/mixed; boundary=b\n\n"
               + b"--b\n\n" * 3_000 + b"--b--\n")


@pytest.mark.xfail(strict=True, reason="parsers/message.py + feed.py: each MIME part costs "
                   "~330 bytes and ~30 us however small it is; 5-byte empty parts make ~67x "
                   "the message size in memory and ~5 s of CPU per MB (the shipped 25 MB "
                   "limit: ~1.7 GB, minutes of the store thread); real mail stays <= 10x")
def test_a_message_of_empty_mime_parts_costs_no_more_memory_than_real_mail():
    assert parse_peak(EMPTY_PARTS) <= K_REAL * len(EMPTY_PARTS) + C
