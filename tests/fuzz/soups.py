"""Random header soups: messages made of arbitrary header fields and random bodies.

    @given(soup_messages())
    def test_...(raw): ...

A soup message is up to `MAX_FIELDS` header fields, one line-end style (or none), and a
body.  Names are the headers maild reads (From, Message-ID, Content-Type, Auto-Submitted,
List-Id, ...) or arbitrary tokens, sometimes with spaces, 8-bit bytes or no name at all.
Values are one of:
- RFC 2047 encoded words: random charsets (`mutations.CHARSETS` and arbitrary names, with
  RFC 2231 `*lang`), B/Q/unknown encodings, valid or broken base64 (bad padding, junk,
  cut), Q with random `=XX`, adjacent words with and without spaces;
- address lists: quoted names with commas, comments (nested), groups, `undisclosed-
  recipients:;`, route addresses, unterminated quotes and brackets, encoded names;
- Message-ID lists with junk: bare ids, `<>`, `<<a@b>>`, prose, comments, cut brackets;
- Content-Type / Content-Disposition with RFC 2231 parameters (continuations,
  charset'lang'%XX with bad escapes), boundaries, report types;
- dates that are almost dates, raw 8-bit bytes, arbitrary text, folded anywhere.
Bodies are random bytes, random text, or a MIME tree (multipart with soup part headers,
nested message/rfc822) whose boundaries match or not.
"""
from __future__ import annotations

import base64

from hypothesis import strategies as st

from tests.fuzz.mutations import CHARSETS, ENCODINGS, SPECIAL_BYTES

MAX_FIELDS = 24

KNOWN_NAMES = (
    "From", "To", "Cc", "Bcc", "Reply-To", "Sender", "Subject", "Date", "Message-ID",
    "In-Reply-To", "References", "Content-Type", "Content-Transfer-Encoding",
    "Content-Disposition", "MIME-Version", "Auto-Submitted", "Precedence", "List-Id",
    "List-Unsubscribe", "Return-Path", "X-Maild-Loop", "X-Failed-Recipients", "X-Autoreply",
    "X-Autorespond", "Authentication-Results", "DKIM-Signature", "Received", "X-Spam-Flag",
    "X-Priority", "Delivered-To", "Mailing-List", "X-Auto-Response-Suppress",
)

_ATEXT = st.text(st.sampled_from("abcxyzABC019._-+=!#$%&'*/?^`{|}~"), min_size=1, max_size=12)
_DOMAIN = st.sampled_from(["example.com", "example.org", "EXAMPLE.NET", "x", "[192.0.2.1]",
                           "bigcorp.com", "b..c", "", "ünï.example", "a-.b"])


def _b(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


header_names = (st.sampled_from(KNOWN_NAMES)
                | st.text(st.characters(min_codepoint=33, max_codepoint=126, exclude_characters=":"),
                          min_size=1, max_size=24)
                | st.sampled_from(["", " From", "From ", "Sub ject", "X-\u00e9", "from", "FROM",
                                   "Content-type", "message-id", "\x00", ">From"])).map(_b)


@st.composite
def encoded_words(draw) -> bytes:
    charset = draw(st.sampled_from(CHARSETS) | st.text(max_size=8))
    if draw(st.integers(0, 5)) == 0:
        charset += "*" + draw(st.sampled_from(["en", "", "de-CH", "*"]))
    kind = draw(st.sampled_from("BbQqXx"))
    data = draw(st.binary(max_size=40) | st.text(max_size=20).map(_b))
    if kind in "Bb":
        payload = base64.b64encode(data)
        damage = draw(st.sampled_from(["", "unpad", "junk", "cut", "overpad"]))
        if damage == "unpad":
            payload = payload.rstrip(b"=")
        elif damage == "junk":
            payload = payload[:len(payload) // 2] + draw(st.sampled_from([b"!", b" ", b"*", b"="]))\
                + payload[len(payload) // 2:]
        elif damage == "cut":
            payload = payload[:draw(st.integers(0, len(payload)))]
        elif damage == "overpad":
            payload += b"===="
    else:
        payload = b"".join(bytes([b]) if 33 <= b < 127 and b not in b"?=_ " else
                           (b"_" if b == 32 else b"=%02X" % b) for b in data)
        payload += draw(st.sampled_from([b"", b"=", b"=Z", b"=4", b"_"]))
    return b"=?" + _b(charset) + b"?" + kind.encode() + b"?" + payload + b"?="


@st.composite
def encoded_phrases(draw) -> bytes:
    """Encoded words among plain words, joined by spaces, nothing, or folds."""
    parts = draw(st.lists(encoded_words() | _ATEXT.map(_b), min_size=1, max_size=6))
    out = b""
    for part in parts:
        out += part + draw(st.sampled_from([b" ", b"", b"\r\n ", b"  ", b"\t"]))
    return out


@st.composite
def addresses(draw) -> bytes:
    local, domain = draw(_ATEXT), draw(_DOMAIN)
    addr = _b(f"{local}@{domain}" if domain else local)
    name = draw(st.sampled_from([b"", b"Doe, John", b"\"Doe, John\"", b"Jo (the boss)",
                                 b"\"unterminated", b"J\xc3\xb6rg", b"\"a\\\"b\"", b"<x@y>"])
                | encoded_phrases())
    form = draw(st.sampled_from(["bare", "angle", "comment", "route", "cut", "group", "empty-group"]))
    if form == "bare":
        return addr
    if form == "angle":
        return name + b" <" + addr + b">"
    if form == "comment":
        return addr + b" (" + draw(st.sampled_from([b"c", b"(nested (deep))", b"unterminated",
                                                    b"a@b.c"])) + b")"
    if form == "route":
        return b"<@relay.example,@other.example:" + addr + b">"
    if form == "cut":
        return name + b" <" + addr
    if form == "empty-group":
        return b"undisclosed-recipients:;"
    return b"Group: " + addr + b", \"x\" <" + addr + b">;"


address_lists = st.lists(addresses(), min_size=1, max_size=6).flatmap(
    lambda items: st.sampled_from([b", ", b",", b" ", b";", b",\r\n "]).map(lambda sep: sep.join(items)))


@st.composite
def message_id_lists(draw) -> bytes:
    def one():
        return draw(st.sampled_from([
            lambda: b"<" + _b(draw(_ATEXT)) + b"@" + _b(draw(_DOMAIN)) + b">",
            lambda: _b(draw(_ATEXT)) + b"@" + _b(draw(_DOMAIN)),
            lambda: b"<>", lambda: b"<<a@b.example>>", lambda: b"<a@b.example",
            lambda: b"a@b.example>", lambda: b"(comment <c@d.example>)",
            lambda: b"Your message of Mon, 4 Mar 2024", lambda: b"<@>", lambda: b"<a@>",
            lambda: b"<maild.1042.abc@example.com>", lambda: b"<maild.99999999999999999999.x@example.com>",
            lambda: b"<a b@c.example>", lambda: b"<\x00@x>", lambda: b"<\xc3\xa9@x.example>",
        ]))()
    items = [one() for _ in range(draw(st.integers(1, 8)))]
    return draw(st.sampled_from([b" ", b"", b"\r\n ", b", ", b" junk "])).join(items)


@st.composite
def rfc2231_params(draw) -> bytes:
    name = draw(st.sampled_from([b"filename", b"name", b"boundary", b"charset", b"report-type"]))
    style = draw(st.sampled_from(["plain", "quoted", "extended", "continued", "broken"]))
    value = draw(st.binary(max_size=20))
    escaped = b"".join(b"%%%02X" % b for b in value)
    if style == "plain":
        return b"; " + name + b"=" + _b(draw(_ATEXT))
    if style == "quoted":
        return b"; " + name + b"=\"" + value.replace(b"\"", b"") + b"\""
    if style == "extended":
        return b"; " + name + b"*=" + _b(draw(st.sampled_from(CHARSETS))) + b"'en'" + escaped
    if style == "continued":
        cut = len(escaped) // 2
        return (b"; " + name + b"*0*=utf-8''" + escaped[:cut] + b"; " + name + b"*2*="
                + escaped[cut:] + b"; " + name + b"*1=\"x\"")
    return b"; " + name + draw(st.sampled_from([b"*=''%ZZ%", b"*=utf-8'", b"*0*=%", b"=\"", b"*99=x"]))


content_types = st.tuples(
    st.sampled_from([b"text/plain", b"text/html", b"multipart/mixed", b"multipart/alternative",
                     b"multipart/report", b"message/rfc822", b"message/delivery-status",
                     b"application/octet-stream", b"text", b"/", b"", b"multipart/",
                     b"TEXT/PLAIN", b"image/png", b"text/x-log"]),
    st.lists(rfc2231_params() | st.sampled_from([
        b"; boundary=b", b"; boundary=\"\"", b"; report-type=delivery-status",
        b"; report-type=feedback-report", b"; charset=utf-8", b"; charset=\"x-unknown\"",
        b"; ;;", b";", b"; a=\"unterminated"]), max_size=4),
).map(lambda t: t[0] + b"".join(t[1]))

dates = st.sampled_from([
    b"Mon, 4 Mar 2024 10:15:00 +0100", b"Mon, 99 Foo 99999 99:99:99 +9999", b"4 Mar 24 10:15",
    b"Thu, 1 Jan 1970 00:00:00 -0000", b"Fri, 31 Dec 9999 23:59:59 +2400", b"0", b"",
    b"Mon, 4 Mar 2024 10:15:00 GMT+25", b"Sat, 29 Feb 2023 25:61:61 +0000",
    b"Mon, 4 Mar -2024 10:15:00 +0100", b"Mon, 4 Mar 10000000000 10:15:00 +0100",
]) | st.binary(max_size=40)

values = st.one_of(
    encoded_phrases(), address_lists, message_id_lists(), content_types, dates,
    st.sampled_from(ENCODINGS).map(str.encode),
    st.sampled_from([b"auto-replied", b"no", b"bulk", b"list", b"<>", b"", b" ", b"yes",
                     b"mx.example.com; dmarc=pass header.from=example.com"]),
    st.binary(max_size=60),
    st.text(max_size=60).map(_b),
    st.lists(st.sampled_from(SPECIAL_BYTES) | st.binary(max_size=4), max_size=10).map(b"".join),
)


@st.composite
def header_fields(draw, newline: bytes) -> bytes:
    name, value = draw(header_names), draw(values)
    separator = draw(st.sampled_from([b": ", b":", b" : ", b":\t", b"::", b""]))
    return name + separator + value + newline


@st.composite
def mime_bodies(draw, newline: bytes, depth: int = 0) -> bytes:
    """A multipart body of soup parts under `boundary` (or not quite), nested a little."""
    boundary = draw(st.sampled_from([b"b", b"b1", b"=_x", b""]))
    parts = []
    for _ in range(draw(st.integers(0, 4))):
        fields = b"".join(draw(st.lists(header_fields(newline), max_size=4)))
        if depth < 2 and draw(st.integers(0, 3)) == 0:
            inner = draw(soup_messages(depth + 1))
            fields += b"Content-Type: message/rfc822" + newline
        else:
            inner = draw(st.binary(max_size=200) | st.text(max_size=200).map(_b))
        parts.append(b"--" + boundary + draw(st.sampled_from([b"", b"  ", b"--"])) + newline
                     + fields + newline + inner + newline)
    closing = draw(st.sampled_from([b"--" + boundary + b"--" + newline, b"", b"--" + boundary]))
    head = (b"Content-Type: multipart/" + draw(st.sampled_from([b"mixed", b"alternative", b"report"]))
            + b"; boundary=\"" + draw(st.sampled_from([boundary, boundary + b"x"])) + b"\"" + newline)
    return head + newline + draw(st.binary(max_size=30)) + newline + b"".join(parts) + closing


@st.composite
def soup_messages(draw, depth: int = 0) -> bytes:
    """Random header fields and a random body (see the module doc)."""
    newline = draw(st.sampled_from([b"\r\n", b"\n", b"\r"]))
    fields = b"".join(draw(st.lists(header_fields(newline), max_size=MAX_FIELDS)))
    if depth < 2 and draw(st.integers(0, 2)) == 0:
        return fields + draw(mime_bodies(newline, depth))       # its own Content-Type line first
    body = draw(st.binary(max_size=300) | st.text(max_size=300).map(_b))
    return fields + draw(st.sampled_from([newline, b"", newline * 2])) + body
