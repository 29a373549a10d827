"""Bytes of unknown or doubtful charset to text, never raising.

    text, note = decode_bytes(data, "iso-2022-jp")    # note says what fallback was used ('' if none)

The declared charset first; when that fails (unknown name, mislabelled bytes) its
relatives (ISO-2022-JP -> EUC-JP/CP932, GB2312 -> GB18030, EUC-KR -> CP949, Latin-1 ->
CP1252, ...), then UTF-8, then a guess by plausibility (Russian letter frequency for
KOI8-R vs CP1251, a small scoring for CJK).  The result never carries NUL characters or
lone surrogates (PostgreSQL refuses both).
"""
from __future__ import annotations

import codecs

_CHARSET_ALIASES = {
    "iso-8859-8-i": "iso8859-8", "windows-874": "cp874", "x-sjis": "cp932",
    "ks_c_5601-1987": "cp949", "x-gbk": "gbk", "x-user-defined": "cp1252",
}
_JIS_AS_CP932 = "iso-2022-jp with windows extensions"
_UNSAFE_CODECS = {"unicode-escape", "raw-unicode-escape", "undefined"}
# Declared charset -> codecs to try next (supersets, and what such mail usually is).
_RELATIVES = {
    "ascii": ("utf-8", "cp1252"),
    "cp1252": ("iso8859-1",),                      # the 5 bytes CP1252 leaves undefined
    "iso2022_jp": ("iso2022_jp_2", "iso2022_jp_ext", _JIS_AS_CP932, "utf-8", "euc_jp", "cp932"),
    "shift_jis": ("cp932", "euc_jp"),
    "euc_jp": ("cp932",),
    "gb2312": ("gb18030",),
    "gbk": ("gb18030",),
    "euc_kr": ("cp949",),
    "big5": ("big5hkscs", "cp950"),
    "koi8-r": ("koi8-u", "cp1251"),
    "cp1251": ("koi8-r",),
    "tis-620": ("cp874",),
}
# Labels that are so often wrong that valid UTF-8 with non-ASCII bytes beats them.
_OFTEN_MISLABELLED = {"ascii", "cp1252", "iso8859-15"}
# As browsers do (WHATWG Encoding): a Latin-1 label means Windows-1252.
_READ_AS = {"iso8859-1": "cp1252"}
# Most frequent Russian letters first; the weight falls with the rank.
_RUSSIAN_BY_FREQUENCY = "оеаинтсрвлкмдпуяыьгзбчйхжшюцщэфъё"
_RU_WEIGHT = {ch: max(0.1, 3.3 - 0.15 * rank) for rank, ch in enumerate(_RUSSIAN_BY_FREQUENCY)}
_GUESSES = ("koi8_r", "cp1251", "gb18030", "euc_jp", "cp932")


def decode_bytes(data: bytes, charset: str | None = None) -> tuple[str, str]:
    """(text, note): `data` decoded as the declared charset or, failing that, its
    relatives, UTF-8, or a guess; `note` says which fallback was used ('' if none).
    The text is `clean`: UTF-7 and UTF-16 can encode lone surrogates, any charset NUL."""
    text, note = _decode(data, charset)
    return clean(text), note


def _decode(data: bytes, charset: str | None) -> tuple[str, str]:
    codec = _codec(charset)
    order = [codec] if codec else []
    if codec in _OFTEN_MISLABELLED or not codec:
        order.insert(0, "utf-8")
    if not codec and (b"\x1b$" in data or b"\x1b(" in data):
        order[:0] = ["iso2022_jp_2", _JIS_AS_CP932]  # unlabelled JIS, common in old headers
    order += [c for c in _RELATIVES.get(codec, ()) if c not in order]
    if "utf-8" not in order:
        order.append("utf-8")
    for name in order:
        try:
            text = _jis_as_cp932(data) if name == _JIS_AS_CP932 else data.decode(name)
        except (UnicodeError, LookupError, ValueError):
            continue
        if name == codec or (charset is None and name in ("utf-8", "iso2022_jp_2")) or (
                data.isascii() and "\x1b" not in text):
            return text, ""
        return text, f"charset {charset!r} did not fit, decoded as {name}"
    text, name = _guess(data)
    return text, f"charset {charset!r} did not fit, guessed {name}"


def _jis_as_cp932(data: bytes) -> str:
    """ISO-2022-JP with the Windows extensions (NEC row 13: ①, №, ㈱ ...; what
    Microsoft calls CP50221), which Python's iso2022 codecs reject: map each JIS X 0208
    pair to Shift_JIS and decode as CP932."""
    out, mode, i = bytearray(), "ascii", 0
    while i < len(data):
        if data[i] == 0x1B:
            seq = data[i + 1:i + 3]
            mode = {b"$B": "jis", b"$@": "jis", b"(I": "kana"}.get(seq, "ascii")
            i += 3
            continue
        j1, j2 = data[i], (data[i + 1] if i + 1 < len(data) else 0)
        if mode == "jis" and 0x21 <= j1 <= 0x7E and 0x21 <= j2 <= 0x7E:
            s1 = ((j1 + 1) >> 1) + (0x70 if j1 <= 0x5E else 0xB0)
            s2 = j2 + (0x1F + (j2 >= 0x60) if j1 & 1 else 0x7E)
            out += bytes((s1, s2))
            i += 2
            continue
        out.append(j1 | 0x80 if mode == "kana" and 0x21 <= j1 <= 0x5F else j1)
        i += 1
    return out.decode("cp932")


def _codec(charset: str | None) -> str | None:
    if not charset:
        return None
    name = str(charset).strip().strip("\"'").lower().split("*", 1)[0]
    name = _CHARSET_ALIASES.get(name, name)
    for candidate in (name, name[2:] if name.startswith("x-") else ""):
        try:
            found = codecs.lookup(candidate).name if candidate else None
        except (LookupError, ValueError):
            continue
        if found and found not in _UNSAFE_CODECS:
            return _READ_AS.get(found, found)
    return None


def _guess(data: bytes) -> tuple[str, str]:
    """Bytes that are not UTF-8 and carry no (usable) label: mostly-UTF-8 with a few bad
    bytes stays UTF-8; sparse high bytes in Latin text are CP1252; dense ones are scored
    as Cyrillic (by letter frequency) or CJK.  A heuristic, tuned on the corpus."""
    lenient = data.decode("utf-8", "replace")
    bad = lenient.count("\ufffd")
    if sum(1 for ch in lenient if ord(ch) > 127) - bad > 2 * bad:
        return lenient, "utf-8 with replacement characters"
    high = sum(1 for byte in data if byte > 127)
    latin = sum(1 for byte in data if 65 <= byte <= 90 or 97 <= byte <= 122)
    if high >= 4 and high * 2 > latin:                 # too few bytes to tell otherwise
        scored = []
        for name in _GUESSES:
            try:
                scored.append((_plausibility(data.decode(name)), name))
            except UnicodeError:
                continue
        best = max(scored, key=lambda item: item[0], default=None)  # first of equals
        if best and best[0] > 0:
            return data.decode(best[1]), best[1]
    try:
        return data.decode("cp1252"), "cp1252"
    except UnicodeError:
        return data.decode("latin-1"), "latin-1"


def _plausibility(text: str) -> float:
    score = 0.0
    for ch in text:
        code = ord(ch)
        if code < 128:
            continue
        if 0x400 <= code <= 0x4FF:
            score += _RU_WEIGHT.get(ch.lower(), 0.1)
        elif 0xFF61 <= code <= 0xFF9F:                 # half-width katakana: mojibake
            score -= 2.0
        elif 0x3040 <= code <= 0x30FF or 0x4E00 <= code <= 0x9FFF or 0xAC00 <= code <= 0xD7A3:
            score += 3.0
        elif ch.isalpha():
            score += 0.5
        else:
            score -= 2.0
    return score


def clean(text: str) -> str:
    """No NULs and no lone surrogates: both break UTF-8 storage."""
    text = text.replace("\x00", "")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text
