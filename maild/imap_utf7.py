"""Modified UTF-7 (RFC 3501 §5.1.3): how IMAP4rev1 spells mailbox names outside ASCII.

    encode("Geschäft") == "Gesch&AOQ-ft"        decode("Gesch&AOQ-ft") == "Geschäft"
    encode("Bad&Name") == "Bad&-Name"           decode("&U,BTFw-") == "台北"

Printable US-ASCII (0x20-0x7e) stands for itself, except '&', written "&-". Every run of
other characters is written as its UTF-16BE bytes in base64, with ',' for '/' and no '='
padding, between '&' and '-'. maild/imap_client.py encodes every folder name it sends
(SELECT, CREATE, STATUS, LIST, MOVE, COPY); maild.yaml and the logs use the names as people
write them (UTF-8). `decode` raises ValueError on text that is not modified UTF-7;
`readable` decodes what it can in a server's reply, for a log line.

Written here rather than taken from PyPI: the maintained codecs live inside whole IMAP
clients (imapclient, imap-tools), and the stand-alone packages are unmaintained.
"""
from __future__ import annotations

import base64
import binascii
import re

_SHIFTED = re.compile(r"&([^-]*)-")
_TOKEN = re.compile(r"&[A-Za-z0-9+,]*-")


def encode(name: str) -> str:
    """`name` in modified UTF-7."""
    out, run = [], []

    def shift() -> None:
        if run:
            data = base64.b64encode("".join(run).encode("utf-16-be")).rstrip(b"=")
            out.append("&" + data.decode("ascii").replace("/", ",") + "-")
            run.clear()
    for char in name:
        if " " <= char <= "~":
            shift()
            out.append("&-" if char == "&" else char)
        else:
            run.append(char)
    shift()
    return "".join(out)


def decode(text: str) -> str:
    """`text` (modified UTF-7) as a str; ValueError if it is not modified UTF-7."""
    if any(not " " <= char <= "~" for char in text):
        raise ValueError(f"not modified UTF-7 (a character outside printable ASCII): {text!r}")
    out, at = [], 0
    for found in _SHIFTED.finditer(text):
        out += [text[at:found.start()], _unshift(found[1], text)]
        at = found.end()
    if "&" in text[at:]:
        raise ValueError(f"not modified UTF-7 (an '&' without its '-'): {text!r}")
    return "".join(out) + text[at:]


def _unshift(data: str, text: str) -> str:
    if not data:
        return "&"
    try:
        raw = base64.b64decode(data.replace(",", "/") + "=" * (-len(data) % 4), validate=True)
        return raw.decode("utf-16-be")
    except (binascii.Error, UnicodeDecodeError):
        raise ValueError(f"not modified UTF-7 (bad base64 or UTF-16 after '&'): {text!r}") from None


def readable(text: str) -> str:
    """`text` (say a server's NO) with each valid modified UTF-7 run decoded, for logs."""
    def one(found: re.Match) -> str:
        try:
            return decode(found[0])
        except ValueError:
            return found[0]
    return _TOKEN.sub(one, text)
