"""The fast MAIL FROM / RCPT TO path parser agrees with aiosmtpd's on every input."""
from __future__ import annotations

from aiosmtpd.smtp import SMTP
from hypothesis import given, settings, strategies as st

from maild.intake import IntakeHandler, IntakeProtocol


class _Server(IntakeProtocol, SMTP):
    pass


SERVER = _Server(IntakeHandler(submit=None, accepts=lambda address: True, protocol="smtp"))

PATHS = [
    "<carol@customer.example>", "<carol@customer.example> SIZE=12000 BODY=8BITMIME",
    " <x.y+tag@ex-ample.com>  ", "<a@b.c>\tSIZE=1", "<a@b.c> SMTPUTF8", "<>", "<> SIZE=10",
    "a@b.c", '<"x y"@b.c>', "<@relay.example:a@b.c>", "<a@[192.0.2.1]>", "<a..b@c.d>",
    "<.a@b.c>", "<a.@b.c>", "<a@b..c>", "<a@b.c.>", "<a@-b.c>", "<Üñí@b.c>", "<a b@c.d>",
    "<a@b.c", "<a@b.c>x", "<" + "x" * 70 + "@b.c>", "<a@b.c>  SIZE=1  ", "",
]


def outcome(parse, path: str):
    """What a parser returns, or the exception it raises (aiosmtpd's raises IndexError on
    some input, e.g. '<'; the fast path must leave that to it unchanged)."""
    try:
        return parse(path)
    except Exception as exc:  # noqa: BLE001 - compared, not hidden
        return type(exc).__name__


def both(path: str):
    return outcome(SERVER._getaddr, path), outcome(lambda p: SMTP._getaddr(SERVER, p), path)


def test_real_and_odd_paths_parse_as_aiosmtpd_parses_them():
    for path in PATHS:
        fast, reference = both(path)
        assert fast == reference, path


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="ab.-+_@<> \t\"[]:=SIZE01éZ", max_size=30))
def test_random_paths_parse_as_aiosmtpd_parses_them(path):
    fast, reference = both(path)
    assert fast == reference
