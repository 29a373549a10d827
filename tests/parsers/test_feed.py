"""parsers.feed: the stdlib's parse, without compiling a regex per boundary, gives the
stdlib's Message on every corpus mail."""
from __future__ import annotations

import email

import pytest

from parsers.feed import message_from_bytes
from tests.parsers.corpus import corpus_files


def shape(message) -> list:
    """Everything the parse decides, part by part."""
    out = []
    for part in message.walk():
        payload = part.get_payload()
        out.append((list(part.raw_items()), part.get_content_type(), part.preamble, part.epilogue,
                    [type(d).__name__ for d in part.defects],
                    None if isinstance(payload, list) else payload))
    return out


def test_every_corpus_mail_parses_as_the_stdlib_parses_it():
    compared = 0
    for path in corpus_files():
        raw = path.read_bytes()
        try:
            expected = shape(email.message_from_bytes(raw))
        except RecursionError:
            with pytest.raises(RecursionError):
                message_from_bytes(raw)
            continue
        assert shape(message_from_bytes(raw)) == expected, path
        compared += 1
    assert compared > 500


@pytest.mark.parametrize("boundary", ["simple", "with.dots+plus(paren)?", "a b", "=_x*y[1]^$",
                                      "trailing--", "ünï"])
def test_boundaries_with_regex_characters_still_separate_the_parts(boundary):
    raw = (f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n\r\npreamble\r\n'
           f"--{boundary}\r\nContent-Type: text/plain\r\n\r\none\r\n"
           f"--{boundary}  \r\n\r\ntwo\r\n--{boundary}x\r\nstill two\r\n"
           f"--{boundary}--\r\nepilogue\r\n").encode("utf-8")
    assert shape(message_from_bytes(raw)) == shape(email.message_from_bytes(raw))
    if boundary.isascii():
        assert len(message_from_bytes(raw).get_payload()) == 2
