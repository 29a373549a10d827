"""Mutated real messages: every corpus mail, damaged at byte and at structure level.

    @given(mutated_messages())
    def test_...(raw): ...

A mutated message is one corpus file (all of ../shared/corpus, read in place) with one
to `MAX_MUTATIONS` mutations applied in turn, each drawn from `MUTATIONS`:

- bytes: flip, insert (random bytes or `SPECIAL_BYTES`: NUL, lone CR/LF, a UTF-8-encoded
  lone surrogate, ESC sequences, ...), delete a range, duplicate a range, truncate anywhere;
- header fields: duplicate, drop, fold (at a space or anywhere, also inside an encoded
  word), unfold, inject special bytes into one, make one huge (repeated text, encoded
  words, addresses, comment parentheses) or empty;
- line ends: all LF, all CRLF, all CR, or mixed;
- MIME: charsets replaced by bogus or exotic names (`CHARSETS`, also inside encoded
  words), Content-Transfer-Encoding swapped (`ENCODINGS`), boundaries broken (closing
  delimiter dropped, a delimiter duplicated, the parameter changed, emptied or removed,
  a multipart header with an absent boundary added);
- nesting: the message wrapped as message/rfc822 or inside a multipart, a few levels or
  hundreds; and the header of one corpus mail spliced onto the body of another.
"""
from __future__ import annotations

import base64
import re

from hypothesis import strategies as st

from tests.parsers.corpus import corpus_files

MAX_MUTATIONS = 6
MAX_HUGE = 300_000        # bytes of a huge header value

SAMPLES: tuple[bytes, ...] = tuple(path.read_bytes() for path in corpus_files())
# Strategies are made once: hypothesis labels a strategy by the repr of what it closes
# over, and the corpus is 16 MB of repr.
_SAMPLES = st.sampled_from(SAMPLES)

SPECIAL_BYTES = (
    b"\x00", b"\r", b"\n", b"\r\n", b"\n\n", b"\r\r", b"\xed\xa0\x80", b"\xed\xbf\xbf",
    b"\xff", b"\xfe\xff", b"\xef\xbb\xbf", b"\xc3", b"\x1b$B", b"\x1b(B", b"\x1b", b"\x85",
    b"\xe2\x80\xa8", b"\x0b\x0c", b"=?", b"?=", b"=?utf-8?b?", b"--", b"\t", b" ", b":",
    b";", b"\"", b"\\", b"<", b">", b"(", b")", b"@", b",", b"%", b"=", b"=\r\n", b"begin 644 x\n",
)

CHARSETS = (
    "utf-8", "us-ascii", "iso-8859-1", "windows-1252", "utf-7", "utf-16", "utf-16-le",
    "utf-32", "utf-8-sig", "unicode-escape", "raw-unicode-escape", "undefined", "rot13",
    "rot_13", "base64", "hex", "zlib", "bz2", "uu", "quopri", "idna", "punycode", "mbcs",
    "cp037", "cp500", "ebcdic-cp-be", "iso-2022-jp", "iso-2022-jp-2", "iso-2022-jp-ext",
    "iso-2022-kr", "hz", "gb2312", "gb18030", "big5", "big5hkscs", "johab", "euc-jp",
    "shift_jis", "koi8-r", "koi8-u", "x-mac-cyrillic", "mac-roman", "tis-620", "viscii",
    "iso-8859-8-i", "ks_c_5601-1987", "x-user-defined", "x-unknown", "unknown-8bit",
    "8859-1", "latin_1 with space", "utf8\x00", "", "\"\"", "'utf-8'", "utf-8*en", "*",
    "x-" * 40 + "utf-8", "\u00e9", "utf-8\xff", "=?utf-8?q?x?=",
)

ENCODINGS = ("base64", "quoted-printable", "7bit", "8bit", "binary", "x-uuencode",
             "uuencode", "x-uue", "BASE64", " base64 ", "quoted-printable; x=y", "bogus", "")

_LINE = re.compile(rb"[^\r\n]*(?:\r\n|\r|\n|$)")
_CHARSET = re.compile(rb"(?i)(charset\s*=\s*)(\"?)([^\s;\"]*)(\"?)")
_WORD_CHARSET = re.compile(rb"=\?([^?\s]*)\?")
_CTE = re.compile(rb"(?im)^(content-transfer-encoding[ \t]*:)[^\r\n]*")
_BOUNDARY = re.compile(rb"(?i)(boundary\s*=\s*)(\"?)([^\";\r\n]*)(\"?)")


# -- helpers ------------------------------------------------------------------------

def split_message(raw: bytes) -> tuple[list[bytes], bytes]:
    """(header fields, each with its folded continuation lines and line ends; the rest,
    from the blank line on)."""
    fields: list[bytes] = []
    pos = 0
    for match in _LINE.finditer(raw):
        line = match.group()
        if not line:
            break
        if not line.strip(b"\r\n"):
            break
        if fields and line[:1] in (b" ", b"\t"):
            fields[-1] += line
        else:
            fields.append(line)
        pos = match.end()
    return fields, raw[pos:]


def _newline(raw: bytes) -> bytes:
    return b"\r\n" if b"\r\n" in raw[:4096] else b"\n"


def _position(draw, raw: bytes) -> int:
    return draw(st.integers(0, len(raw)))


def _field_index(draw, fields: list[bytes]) -> int:
    return draw(st.integers(0, len(fields) - 1))


# -- byte level ---------------------------------------------------------------------

def flip_bytes(draw, raw: bytes) -> bytes:
    if not raw:
        return raw
    data = bytearray(raw)
    for _ in range(draw(st.integers(1, 8))):
        where = draw(st.integers(0, len(data) - 1))
        data[where] ^= draw(st.integers(1, 255))
    return bytes(data)


def insert_bytes(draw, raw: bytes) -> bytes:
    where = _position(draw, raw)
    payload = draw(st.sampled_from(SPECIAL_BYTES) | st.binary(min_size=1, max_size=40))
    return raw[:where] + payload * draw(st.integers(1, 3)) + raw[where:]


def delete_range(draw, raw: bytes) -> bytes:
    start = _position(draw, raw)
    return raw[:start] + raw[start + draw(st.integers(1, 512)):]


def duplicate_range(draw, raw: bytes) -> bytes:
    start = _position(draw, raw)
    chunk = raw[start:start + draw(st.integers(1, 4096))]
    where = _position(draw, raw)
    return raw[:where] + chunk + raw[where:]


def truncate(draw, raw: bytes) -> bytes:
    return raw[:_position(draw, raw)]


# -- header fields ------------------------------------------------------------------

def _with_fields(change):
    """A mutation of the list of header fields (a no-op on a message without any)."""
    def mutation(draw, raw: bytes) -> bytes:
        fields, rest = split_message(raw)
        if not fields:
            return raw
        return b"".join(change(draw, fields, _newline(raw))) + rest
    mutation.__name__ = change.__name__
    return mutation


@_with_fields
def duplicate_field(draw, fields, newline):
    field = fields[_field_index(draw, fields)]
    fields.insert(draw(st.integers(0, len(fields))), field)
    return fields


@_with_fields
def drop_field(draw, fields, newline):
    del fields[_field_index(draw, fields)]
    return fields


@_with_fields
def fold_field(draw, fields, newline):
    i = _field_index(draw, fields)
    field = fields[i]
    spaces = [m.start() for m in re.finditer(rb" ", field)]
    where = draw(st.sampled_from(spaces)) if spaces and draw(st.booleans()) else \
        draw(st.integers(0, len(field)))
    fold = draw(st.sampled_from([newline + b" ", newline + b"\t", b"\n ", b"\r\n\t", newline]))
    fields[i] = field[:where] + fold + field[where:]
    return fields


@_with_fields
def unfold_field(draw, fields, newline):
    i = _field_index(draw, fields)
    fields[i] = re.sub(rb"(?:\r\n|\r|\n)(?=[ \t])", b"", fields[i])
    return fields


@_with_fields
def inject_into_field(draw, fields, newline):
    i = _field_index(draw, fields)
    field = fields[i]
    where = draw(st.integers(0, len(field)))
    fields[i] = field[:where] + draw(st.sampled_from(SPECIAL_BYTES)) + field[where:]
    return fields


_HUGE_UNITS = (b"x", b"\xc3\xa9", b"=?utf-8?q?=C3=A9?= ", b"=?utf-8?B?w6k=?=", b"a@b.example, ",
               b"\"Doe, J\" <j@d.example>, ", b"<id@x.example> ", b"(", b"((x)", b" ", b",",
               b"=?x-unknown?Q?=FF?=", b"\t\r\n ", b"\x00", b"@")


@_with_fields
def huge_or_empty_field(draw, fields, newline):
    i = _field_index(draw, fields)
    name = fields[i].split(b":", 1)[0] if b":" in fields[i] else b"Subject"
    if draw(st.booleans()):
        value = b""
    else:
        unit = draw(st.sampled_from(_HUGE_UNITS))
        value = unit * (draw(st.integers(1, MAX_HUGE)) // len(unit) + 1)
    fields[i] = name + b":" + (b" " if value else b"") + value + newline
    return fields


# -- line ends ----------------------------------------------------------------------

def line_endings(draw, raw: bytes) -> bytes:
    lines = re.split(rb"\r\n|\r|\n", raw)
    style = draw(st.sampled_from(["lf", "crlf", "cr", "mixed"]))
    if style != "mixed":
        return {"lf": b"\n", "crlf": b"\r\n", "cr": b"\r"}[style].join(lines)
    ends = [draw(st.sampled_from([b"\n", b"\r\n", b"\r"])) for _ in range(min(len(lines), 64))]
    return b"".join(line + ends[i % len(ends)] for i, line in enumerate(lines[:-1])) + lines[-1]


# -- MIME ---------------------------------------------------------------------------

def _charset_bytes(draw) -> bytes:
    name = draw(st.sampled_from(CHARSETS) | st.text(max_size=12))
    return name.encode("utf-8", "surrogatepass")


def replace_charsets(draw, raw: bytes) -> bytes:
    """Charset parameters and encoded-word charsets: one or all of them."""
    pattern = draw(st.sampled_from([_CHARSET, _WORD_CHARSET]))
    matches = list(pattern.finditer(raw))
    if not matches:
        return raw
    everywhere = draw(st.booleans())
    chosen = matches if everywhere else [draw(st.sampled_from(matches))]
    out, pos = [], 0
    for match in chosen:
        new = _charset_bytes(draw)
        if pattern is _CHARSET:
            out += [raw[pos:match.start()], match.group(1), match.group(2), new, match.group(4)]
        else:
            out += [raw[pos:match.start()], b"=?", new, b"?"]
        pos = match.end()
    return b"".join(out) + raw[pos:]


def swap_transfer_encoding(draw, raw: bytes) -> bytes:
    new = draw(st.sampled_from(ENCODINGS)).encode()
    if _CTE.search(raw) and draw(st.integers(0, 3)):
        return _CTE.sub(lambda m: m.group(1) + b" " + new, raw,
                        count=0 if draw(st.booleans()) else 1)
    return b"Content-Transfer-Encoding: " + new + _newline(raw) + raw


def break_boundaries(draw, raw: bytes) -> bytes:
    params = list(_BOUNDARY.finditer(raw))
    newline = _newline(raw)
    if not params:
        name = draw(st.sampled_from([b"b", b"", b"--", b"=_absent_" * 3]))
        return (b"MIME-Version: 1.0" + newline + b"Content-Type: multipart/mixed; boundary=\""
                + name + b"\"" + newline + raw)
    param = draw(st.sampled_from(params))
    boundary = param.group(3)
    how = draw(st.sampled_from(["drop-close", "duplicate", "rename", "empty", "remove",
                                "prefix", "drop-first"]))
    if how == "drop-close" and boundary:
        return raw.replace(b"--" + boundary + b"--", b"")
    if how == "drop-first" and boundary:
        return raw.replace(b"--" + boundary + newline, b"", 1)
    if how == "duplicate" and boundary:
        where = raw.find(b"--" + boundary, param.end())
        if where >= 0:
            line_end = raw.find(b"\n", where)
            line = raw[where:line_end + 1 if line_end >= 0 else len(raw)]
            return raw[:where] + line * draw(st.integers(2, 50)) + raw[where + len(line):]
    if how == "prefix" and len(boundary) > 1:                 # a boundary inside a boundary
        new = boundary[:draw(st.integers(1, len(boundary) - 1))]
    elif how == "empty":
        new = b""
    elif how == "remove":
        return raw[:param.start()] + raw[param.end():]
    else:
        new = draw(st.binary(max_size=30).filter(lambda b: b"\r" not in b and b"\n" not in b))
    return raw[:param.start()] + param.group(1) + b"\"" + new + b"\"" + raw[param.end():]


# -- nesting and splicing -----------------------------------------------------------

def _wrap(inner: bytes, kind: str, newline: bytes, level: int) -> bytes:
    head = (b"From: wrapper@example.org" + newline + b"Subject: level " + str(level).encode()
            + newline + b"MIME-Version: 1.0" + newline)
    if kind == "rfc822":
        return head + b"Content-Type: message/rfc822" + newline + newline + inner
    if kind == "rfc822-base64":
        encoded = base64.encodebytes(inner).replace(b"\n", newline)
        return (head + b"Content-Type: message/rfc822" + newline
                + b"Content-Transfer-Encoding: base64" + newline + newline + encoded)
    boundary = b"nest" + str(level).encode()
    subtype = b"digest" if kind == "digest" else b"mixed"
    part_head = b"" if kind == "digest" else b"Content-Type: message/rfc822" + newline
    return (head + b"Content-Type: multipart/" + subtype + b"; boundary=\"" + boundary + b"\""
            + newline + newline + b"--" + boundary + newline
            + b"Content-Type: text/plain" + newline + newline + b"see attached" + newline
            + b"--" + boundary + newline + part_head + newline + inner + newline
            + b"--" + boundary + b"--" + newline)


def nest(draw, raw: bytes) -> bytes:
    depth = draw(st.integers(1, 4) | st.integers(50, 400))
    kinds = ["rfc822", "rfc822-base64", "mixed", "digest"] if depth < 10 else \
        ["rfc822", "mixed", "digest"]
    newline = _newline(raw)
    for level in range(depth):
        raw = _wrap(raw, draw(st.sampled_from(kinds)), newline, level)
    return raw


def splice(draw, raw: bytes) -> bytes:
    fields, _ = split_message(raw)
    _, rest = split_message(draw(_SAMPLES))
    return b"".join(fields) + rest


MUTATIONS = (flip_bytes, insert_bytes, delete_range, duplicate_range, truncate,
             duplicate_field, drop_field, fold_field, unfold_field, inject_into_field,
             huge_or_empty_field, line_endings, replace_charsets, swap_transfer_encoding,
             break_boundaries, nest, splice)


_MUTATION = st.sampled_from(MUTATIONS)


@st.composite
def mutated_messages(draw) -> bytes:
    """One corpus mail with 1..MAX_MUTATIONS mutations applied in turn."""
    raw = draw(_SAMPLES)
    for _ in range(draw(st.integers(1, MAX_MUTATIONS))):
        raw = draw(_MUTATION)(draw, raw)
    return raw
