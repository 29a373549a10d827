"""Replies as real mail clients send them: raw RFC 5322 bytes quoting the mail they answer.

    raw = reply("outlook", Original(from_name="Ada Doe", from_address="ada@example.com",
                                    to="Support <support@example.org>", subject="Printer",
                                    message_id="t1042.1@maild.example.org",
                                    date=datetime(2026, 11, 20, 10, 0, tzinfo=UTC),
                                    text="Your ticket #1042 ..."),
                from_name="Alice Agent", from_address="alice@example.org",
                to="Ada Doe <ada@example.com>", text="#status pending\\nWe are on it.")

For integration tests of the story "an agent replies from <client> with the quoted
notification below, the customer receives only the new text".  Each client writes the
headers, MIME structure, transfer encoding, quote header and quoting of its current
version in its default settings (`language="de"` for a German installation):

outlook      Outlook on the web / new Outlook via Exchange Online.  `RE:` (`AW:`), Thread-
             Topic/Thread-Index, no X-Mailer, Message-ID `<...@...prod.outlook.com>`, Date
             in UTC.  multipart/alternative, both parts base64 UTF-8 (quoted-printable
             us-ascii when there is nothing else).  HTML: one `elementToProof` div per
             line, `<div id="Signature">`, `<hr>` and `<div id="divRplyFwdMsg">` with
             From/Sent/To/Subject, the original in `<div class="PlainText">`.  Text: the
             same with a `____` line, the original unquoted.  Signature: no delimiter.
gmail        No X-Mailer, `<CA...@mail.gmail.com>`, multipart/alternative with a
             `000000000000...` boundary, quoted-printable only when needed.  Text:
             `On Thu, Nov 20, 2026 at 10:00 AM Name <addr> wrote:` (wrapped at 78
             columns, so long ones break after `<`), `> ` quoting.  HTML: `gmail_quote`
             div with `gmail_attr` and `blockquote class="gmail_quote"`.  Signature as
             Gmail does by default: `-- ` then the signature, *below* the quoted text.
thunderbird  text/plain; format=flowed (72 columns, soft breaks with a trailing space,
             space-stuffing), 8bit UTF-8, `User-Agent: Mozilla Thunderbird`,
             `<uuid@sender-domain>`.  Default layout: reply *below* the quote
             (`On 11/20/26 10:00, Name wrote:` + `> `), then `-- ` and the signature;
             with `top_posting=True` the reply goes above the quote and the signature
             stays below it (Thunderbird's default signature placement).
apple_mail   Apple Mail on macOS: `Apple-Mail=_UUID` boundary, `Mime-Version: 1.0 (Mac
             OS X Mail 16.0 ...)`, `X-Mailer: Apple Mail (2.3826...)`, `<UUID@domain>`,
             quoted-printable UTF-8 (7bit us-ascii when possible).  Text: the signature
             after the reply without delimiter, then the quote header *inside* the
             quote: `> On 20 Nov 2026, at 10:00, Name <addr> wrote:`.  HTML:
             `<blockquote type="cite">`.

`top_posting` overrides the client's default layout where the client lets users write
below the quote (not Outlook).  Message-IDs, boundaries and Thread-Index derive from the
inputs, so the same call gives the same bytes.  Line ends are CRLF throughout.
"""
from __future__ import annotations

import base64
import email.quoprimime
import email.utils
import hashlib
import html
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

CLIENTS = ("outlook", "gmail", "thunderbird", "apple_mail")
LANGUAGES = ("en", "de")
REPLY_DELAY = timedelta(minutes=7)       # the reply's Date: the original's plus this


@dataclass(frozen=True)
class Original:           # the message being answered
    from_name: str
    from_address: str
    to: str
    subject: str
    message_id: str       # without <>
    date: datetime
    text: str
    references: tuple[str, ...] = ()


def reply(client: str, original: Original, *, from_name: str, from_address: str, to: str,
          text: str, signature: str = "", message_id: str | None = None,
          extra_headers: tuple[tuple[str, str], ...] = (), cc: tuple[str, ...] = (),
          language: str = "en", top_posting: bool | None = None) -> bytes:
    """The raw bytes `client` sends when `from_name <from_address>` answers `original`."""
    if client not in _BUILDERS:
        raise ValueError(f"unknown client {client!r}, known: {', '.join(CLIENTS)}")
    if language not in LANGUAGES:
        raise ValueError(f"unknown language {language!r}, known: {', '.join(LANGUAGES)}")
    if client == "outlook" and top_posting is False:
        raise ValueError("Outlook quotes without '>': there is nothing to answer below")
    seed = hashlib.sha256(repr((client, original.message_id, from_address, text, signature,
                                message_id)).encode("utf-8")).digest()
    context = _Context(
        client=client, original=original, from_name=from_name, from_address=from_address,
        to=to, cc=cc, text=_lines(text), signature=_lines(signature), language=language,
        top_posting=top_posting, seed=seed, message_id=message_id,
        date=_aware(original.date) + REPLY_DELAY)
    headers, body = _BUILDERS[client](context)
    lines = [f"{name}: {value}" for name, value in extra_headers] + headers
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body


# -- shared pieces ------------------------------------------------------------------------

@dataclass(frozen=True)
class _Context:
    client: str
    original: Original
    from_name: str
    from_address: str
    to: str
    cc: tuple[str, ...]
    text: list[str]
    signature: list[str]
    language: str
    top_posting: bool | None
    seed: bytes
    message_id: str | None
    date: datetime

    @property
    def de(self) -> bool:
        return self.language == "de"

    @property
    def domain(self) -> str:
        return self.from_address.rpartition("@")[2] or "localhost"

    def hexdigits(self, n: int, salt: str = "") -> str:
        return hashlib.sha256(self.seed + salt.encode()).hexdigest()[:n]

    def uuid(self, salt: str = "") -> str:
        return str(uuid.UUID(self.hexdigits(32, salt), version=4))

    def references(self) -> str:
        ids = [*self.original.references, self.original.message_id]
        return "\r\n ".join(f"<{mid}>" for mid in dict.fromkeys(ids))

    def subject(self, prefix: str) -> str:
        subject = self.original.subject
        if re.match(r"(?i)(?:re|aw)\s*:", subject):
            return subject if prefix == "Re:" else f"{prefix} {subject.split(':', 1)[1].strip()}"
        return f"{prefix} {subject}"


def _lines(text: str) -> list[str]:
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip("\n")
    return text.split("\n") if text else []


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _crlf(lines: list[str]) -> str:
    return "".join(f"{line}\r\n" for line in lines)


def _qp(text: str) -> bytes:
    """Quoted-printable of UTF-8 text with CRLF lines (trailing blanks become =20)."""
    latin = text.encode("utf-8").decode("latin-1")
    return email.quoprimime.body_encode(latin, maxlinelen=76, eol="\r\n").encode("ascii")


def _base64(text: str) -> bytes:
    return base64.encodebytes(text.encode("utf-8")).replace(b"\n", b"\r\n")


def _encoded_words(value: str, charset: str, encoding: str) -> list[str]:
    """RFC 2047 words of at most 75 characters, never splitting a character."""
    words, chunk = [], ""
    budget = 75 - len(f"=?{charset}?{encoding}??=")

    def encode(piece: str) -> str:
        data = piece.encode("utf-8")
        if encoding == "B":
            return base64.b64encode(data).decode("ascii")
        return "".join(chr(b) if chr(b).isalnum() and b < 128 else "_" if b == 32 else f"={b:02X}"
                       for b in data)

    for char in value:
        if chunk and len(encode(chunk + char)) > budget:
            words.append(f"=?{charset}?{encoding}?{encode(chunk)}?=")
            chunk = ""
        chunk += char
    if chunk:
        words.append(f"=?{charset}?{encoding}?{encode(chunk)}?=")
    return words


def _fold(name: str, tokens: list[str], separator: str = " ") -> str:
    """`Name: tok tok ...` folded before a token where a line would pass 78 columns."""
    line = f"{name}:"
    out = []
    for i, token in enumerate(tokens):
        piece = (" " if i == 0 else separator) + token
        if i and len(line) + len(piece) > 78:
            out.append(line + separator.rstrip())
            line = " " + token
        else:
            line += piece
    return "\r\n".join([*out, line])


def _header(name: str, value: str, charset: str = "utf-8", encoding: str = "Q") -> str:
    """A free-text header (Subject), RFC 2047-encoded when not ASCII."""
    if value.isascii():
        return _fold(name, value.split(" "))
    prefix = ""
    match = re.match(r"(?i)(re|aw|fwd?|wg):\s", value)
    if match:
        prefix, value = match.group(0).strip(), value[match.end():]
    return _fold(name, ([prefix] if prefix else []) + _encoded_words(value, charset, encoding))


def _mailbox(name: str, address: str, charset: str = "utf-8", encoding: str = "Q") -> str:
    if not name:
        return address
    if name.isascii():
        return email.utils.formataddr((name, address))
    return " ".join(_encoded_words(name, charset, encoding)) + f" <{address}>"


def _address_header(name: str, values: tuple[str, ...] | str, charset: str = "utf-8",
                    encoding: str = "Q") -> str:
    items = [values] if isinstance(values, str) else list(values)
    pairs = email.utils.getaddresses(items)
    return _fold(name, [_mailbox(n, a, charset, encoding) for n, a in pairs if a], ", ")


def _who(name: str, address: str) -> str:
    """'Name <addr>' as clients show it in a quote header (not RFC 2047 encoded)."""
    return f"{name} <{address}>" if name else address


def _who_header(name: str, address: str) -> str:
    """An address-list item getaddresses() splits back into (name, address)."""
    if name.isascii():
        return email.utils.formataddr((name, address))
    quoted = name.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{quoted}" <{address}>'


def _escape(line: str) -> str:
    """A text line as HTML: entities escaped, leading and repeated spaces kept."""
    escaped = html.escape(line, quote=False)
    escaped = re.sub(r"^ +", lambda m: "&nbsp;" * len(m.group()), escaped)
    return escaped.replace("  ", " &nbsp;")


def _html_lines(lines: list[str]) -> str:
    return "<br>\r\n".join(_escape(line) for line in lines)


def _part(content_type: str, encoding: str | None, payload: bytes) -> bytes:
    head = f"Content-Type: {content_type}\r\n"
    if encoding:
        head += f"Content-Transfer-Encoding: {encoding}\r\n"
    return head.encode("ascii") + b"\r\n" + payload


def _multipart(boundary: str, parts: list[bytes]) -> bytes:
    out = b""
    for part in parts:
        out += f"--{boundary}\r\n".encode("ascii") + part
        if not part.endswith(b"\r\n"):
            out += b"\r\n"
    return out + f"--{boundary}--\r\n".encode("ascii")


_DAYS = {"en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
         "de": ("Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag", "Sonntag")}
_MONTHS = {"en": ("January", "February", "March", "April", "May", "June", "July", "August",
                  "September", "October", "November", "December"),
           "de": ("Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August",
                  "September", "Oktober", "November", "Dezember")}
_GMAIL_DAYS_DE = ("Mo.", "Di.", "Mi.", "Do.", "Fr.", "Sa.", "So.")
_GMAIL_MONTHS_DE = ("Jan.", "Feb.", "März", "Apr.", "Mai", "Juni", "Juli", "Aug.", "Sept.",
                    "Okt.", "Nov.", "Dez.")


def _clock12(moment: datetime) -> str:
    return f"{moment.hour % 12 or 12}:{moment:%M} {'AM' if moment.hour < 12 else 'PM'}"


# -- Outlook (Exchange Online) --------------------------------------------------------------

_OUTLOOK_FONT = ("font-family: Aptos, Aptos_EmbeddedFont, Aptos_MSFontService, Calibri, "
                 "Helvetica, sans-serif; font-size: 12pt; color: rgb(0, 0, 0);")


def _outlook(c: _Context) -> tuple[list[str], bytes]:
    o, sent = c.original, _aware(c.original.date)
    digits = str(int(c.hexdigits(12, "server"), 16))
    server = f"AM{digits[0]}PR0{digits[1]}MB{digits[2:6]}"          # e.g. AM9PR07MB7204
    host = f"{server}.eurprd0{digits[1]}.prod.outlook.com"
    local = server + c.hexdigits(32, "id").upper()
    message_id = c.message_id or f"{local}@{host}"
    boundary = f"_000_{local}{host.replace('.', '')}_"
    if c.de:
        labels = ("Von", "Gesendet", "An", "Betreff")
        when = f"{_DAYS['de'][sent.weekday()]}, {sent.day}. {_MONTHS['de'][sent.month - 1]} " \
               f"{sent.year} {sent:%H:%M}"
        prefix, language = "AW:", "de-DE"
    else:
        labels = ("From", "Sent", "To", "Subject")
        when = f"{_DAYS['en'][sent.weekday()]}, {_MONTHS['en'][sent.month - 1]} {sent.day}, " \
               f"{sent.year} {_clock12(sent)}"
        prefix, language = "RE:", "en-US"
    values = (_who(o.from_name, o.from_address), when, o.to, o.subject)

    text = [*c.text, *([""] + c.signature if c.signature else []), "",
            "_" * 32, *(f"{label}: {value}" for label, value in zip(labels, values)), "",
            *_lines(o.text)]
    div = f'<div class="elementToProof" style="{_OUTLOOK_FONT}">\r\n'
    new = "".join(f"{div}{_escape(line) or '<br>'}</div>\r\n" for line in c.text)
    signature = ""
    if c.signature:
        signature = (f"{div}<br>\r\n</div>\r\n"
                     f'<div id="Signature" class="elementToProof">\r\n'
                     + "".join(f'<div style="{_OUTLOOK_FONT}">{_escape(line) or "<br>"}</div>\r\n'
                               for line in c.signature) + "</div>\r\n")
    block = "<br>\r\n".join(f"<b>{label}:</b> {html.escape(value, quote=False)}"
                            for label, value in zip(labels, values))
    page = ('<html>\r\n<head>\r\n'
            '<meta http-equiv="Content-Type" content="text/html; charset=utf-8">\r\n'
            '<style type="text/css" style="display:none;"> P {margin-top:0;margin-bottom:0;} '
            '</style>\r\n</head>\r\n<body dir="ltr">\r\n'
            f'{new}{signature}'
            '<div id="appendonsend"></div>\r\n'
            '<hr style="display:inline-block;width:98%" tabindex="-1">\r\n'
            '<div id="divRplyFwdMsg" dir="ltr"><font face="Calibri, sans-serif" '
            f'style="font-size:11pt" color="#000000">{block}</font>\r\n'
            '<div>&nbsp;</div>\r\n</div>\r\n'
            '<div class="BodyFragment"><font size="2"><span style="font-size:11pt;">\r\n'
            f'<div class="PlainText">{_html_lines(_lines(o.text))}</div>\r\n'
            '</span></font></div>\r\n</body>\r\n</html>\r\n')

    def encoded(subtype: str, body: str) -> bytes:
        if body.isascii():
            return _part(f'text/{subtype}; charset="us-ascii"', "quoted-printable", _qp(body))
        return _part(f'text/{subtype}; charset="utf-8"', "base64", _base64(body))

    thread_index = base64.b64encode(bytes.fromhex(c.hexdigits(44, "ti"))).decode("ascii")
    headers = [
        _address_header("From", (_who_header(c.from_name, c.from_address),), encoding="B"),
        _address_header("To", c.to, encoding="B"),
        *([_address_header("CC", c.cc, encoding="B")] if c.cc else []),
        _header("Subject", c.subject(prefix), encoding="B"),
        _header("Thread-Topic", re.sub(r"(?i)^(?:re|aw)\s*:\s*", "", o.subject), encoding="B"),
        f"Thread-Index: {thread_index}",
        f"Date: {email.utils.format_datetime(c.date.astimezone(timezone.utc))}",
        f"Message-ID: <{message_id}>",
        f"References: {c.references()}",
        f"In-Reply-To: <{o.message_id}>",
        f"Accept-Language: {language}, en-US" if c.de else "Accept-Language: en-US",
        f"Content-Language: {language}",
        "X-MS-Has-Attach:",
        "X-MS-TNEF-Correlator:",
        f'Content-Type: multipart/alternative;\r\n\tboundary="{boundary}"',
        "MIME-Version: 1.0",
    ]
    body = _multipart(boundary, [encoded("plain", _crlf(text)), encoded("html", page)])
    return headers, body


# -- Gmail ----------------------------------------------------------------------------------

def _gmail_wrap(line: str, width: int = 78) -> list[str]:
    """Gmail's plain-text part breaks long lines at spaces and after the '<' it puts
    before a linked address."""
    tokens = re.split(r"(?<=[ <])", line)
    out, current = [], ""
    for token in tokens:
        if current and len((current + token).rstrip()) > width:
            out.append(current.rstrip(" "))
            current = token
        else:
            current += token
    return [*out, current]


def _gmail(c: _Context) -> tuple[list[str], bytes]:
    o, sent = c.original, _aware(c.original.date)
    who = _who(o.from_name, o.from_address)
    if c.de:
        attribution = (f"Am {_GMAIL_DAYS_DE[sent.weekday()]}, {sent.day}. "
                       f"{_GMAIL_MONTHS_DE[sent.month - 1]} {sent.year} um {sent:%H:%M} Uhr "
                       f"schrieb {who}:")
    else:
        attribution = (f"On {_DAYS['en'][sent.weekday()][:3]}, {_MONTHS['en'][sent.month - 1][:3]}"
                       f" {sent.day}, {sent.year} at {_clock12(sent)} {who} wrote:")
    quoted = [f"> {line}" if line else ">" for line in _lines(o.text)]
    top = c.top_posting is not False
    signature = ["", "-- ", *c.signature] if c.signature else []
    quote = [*_gmail_wrap(attribution), "", *quoted]
    text = ([*c.text, "", *quote, *signature, ""] if top
            else [*quote, "", *c.text, *signature, ""])

    link = (f'{html.escape(o.from_name)} &lt;<a href="mailto:{o.from_address}">'
            f'{o.from_address}</a>&gt;' if o.from_name else
            f'&lt;<a href="mailto:{o.from_address}">{o.from_address}</a>&gt;')
    html_attribution = html.escape(attribution.rsplit(who, 1)[0], quote=False) + link + \
        html.escape(attribution.rsplit(who, 1)[1], quote=False)
    first, *rest = c.text or [""]
    new = (f'<div dir="ltr">{_escape(first) or "<br>"}'
           + "".join(f"<div>{_escape(line) or '<br>'}</div>" for line in rest) + "</div>")
    gmail_quote = ('<div class="gmail_quote gmail_quote_container">'
                   f'<div dir="ltr" class="gmail_attr">{html_attribution}<br></div>'
                   '<blockquote class="gmail_quote" style="margin:0px 0px 0px 0.8ex;'
                   'border-left:1px solid rgb(204,204,204);padding-left:1ex">'
                   f'{_html_lines(_lines(o.text))}<br></blockquote></div>')
    html_signature = ""
    if c.signature:
        html_signature = ('<br clear="all"><div><br></div><span class="gmail_signature_prefix">'
                          '-- </span><br><div dir="ltr" class="gmail_signature" '
                          f'data-smartmail="gmail_signature"><div dir="ltr">'
                          f'{_html_lines(c.signature)}</div></div>')
    page = (f"{new}<br>{gmail_quote}{html_signature}\r\n" if top
            else f"{gmail_quote}<br>{new}{html_signature}\r\n")

    def encoded(subtype: str, body: str) -> bytes:
        if body.isascii() and all(len(line) <= 998 for line in body.split("\r\n")):
            return _part(f'text/{subtype}; charset="UTF-8"', None, body.encode("ascii"))
        return _part(f'text/{subtype}; charset="UTF-8"', "quoted-printable", _qp(body))

    boundary = "000000000000" + c.hexdigits(16, "b")
    local = "CA" + base64.b64encode(bytes.fromhex(c.hexdigits(60, "id"))).decode("ascii") \
        .replace("/", "_").rstrip("=")
    headers = [
        "MIME-Version: 1.0",
        f"References: {c.references()}",
        f"In-Reply-To: <{o.message_id}>",
        _address_header("From", (_who_header(c.from_name, c.from_address),), "UTF-8"),
        f"Date: {email.utils.format_datetime(c.date)}",
        f"Message-ID: <{c.message_id or local + '@mail.gmail.com'}>",
        _header("Subject", c.subject("Re:"), "UTF-8"),
        _address_header("To", c.to, "UTF-8"),
        *([_address_header("Cc", c.cc, "UTF-8")] if c.cc else []),
        f'Content-Type: multipart/alternative; boundary="{boundary}"',
    ]
    body = _multipart(boundary, [encoded("plain", _crlf(text)), encoded("html", page)])
    return headers, body


# -- Thunderbird ----------------------------------------------------------------------------

def _flowed(line: str, prefix: str = "", width: int = 72) -> list[str]:
    """One hard line as RFC 3676 format=flowed lines: soft breaks keep a trailing space,
    unquoted lines starting with ' ', '>' or 'From ' are space-stuffed."""
    if line == "-- ":
        return [prefix + line]
    line = line.rstrip(" ")
    lead = prefix + (" " if not prefix and line.startswith((" ", ">", "From ")) else "")
    words = re.split(r"(?<= )", line)
    out, current = [], ""
    for word in words:
        if current and len(lead) + len(current) + len(word.rstrip(" ")) > width:
            out.append(lead + current)             # ends with a space: a soft break
            current = word
            lead = prefix + (" " if not prefix and word.startswith((" ", ">", "From ")) else "")
        else:
            current += word
    return [*out, lead + current]


def _thunderbird(c: _Context) -> tuple[list[str], bytes]:
    o, sent = c.original, _aware(c.original.date)
    who = o.from_name or o.from_address
    if c.de:
        attribution = f"Am {sent:%d.%m.%y} um {sent:%H:%M} schrieb {who}:"
    else:
        attribution = f"On {sent.month}/{sent.day}/{sent:%y} {sent:%H:%M}, {who} wrote:"
    quote = [*_flowed(attribution)]
    for line in _lines(o.text):
        quote += _flowed(line, "> ") if line.strip() else [">"]
    new = [flowed for line in c.text for flowed in _flowed(line)]
    signature = ["-- ", *(flowed for line in c.signature for flowed in _flowed(line))] \
        if c.signature else []
    if c.top_posting:
        text = [*new, "", *quote, *([""] + signature if signature else [])]
    else:
        text = [*quote, "", *new, *([""] + signature if signature else [])]
    headers = [
        f"Message-ID: <{c.message_id or c.uuid('id') + '@' + c.domain}>",
        f"Date: {email.utils.format_datetime(c.date)}",
        "MIME-Version: 1.0",
        "User-Agent: Mozilla Thunderbird",
        _header("Subject", c.subject("Re:"), "UTF-8"),
        f"Content-Language: {'de-DE' if c.de else 'en-US'}",
        _address_header("To", c.to, "UTF-8"),
        *([_address_header("Cc", c.cc, "UTF-8")] if c.cc else []),
        f"References: {c.references()}",
        _address_header("From", (_who_header(c.from_name, c.from_address),), "UTF-8"),
        f"In-Reply-To: <{o.message_id}>",
        "Content-Type: text/plain; charset=UTF-8; format=flowed",
        "Content-Transfer-Encoding: 8bit" if not _crlf(text).isascii()
        else "Content-Transfer-Encoding: 7bit",
    ]
    return headers, _crlf(text).encode("utf-8")


# -- Apple Mail -----------------------------------------------------------------------------

_APPLE_BUILD = "3826.400.131.1.6"


def _apple_mail(c: _Context) -> tuple[list[str], bytes]:
    o, sent = c.original, _aware(c.original.date)
    who = _who(o.from_name, o.from_address)
    if c.de:
        attribution = f"Am {sent:%d.%m.%Y} um {sent:%H:%M} schrieb {who}:"
    else:
        attribution = f"On {sent.day} {_MONTHS['en'][sent.month - 1][:3]} {sent.year}, " \
                      f"at {sent:%H:%M}, {who} wrote:"
    quote = [f"> {attribution}", "> ", *(f"> {line}" for line in _lines(o.text))]
    signature = ["", *c.signature] if c.signature else []
    top = c.top_posting is not False
    text = [*c.text, *signature, "", *quote, ""] if top else [*quote, "", *c.text, *signature]

    first, *rest = c.text or [""]
    new = _escape(first) + "".join(f"<div>{_escape(line) or '<br>'}</div>" for line in rest)
    html_signature = ("<div><br></div><div>" + _html_lines(c.signature) + "</div>"
                      if c.signature else "")
    blockquote = ('<blockquote type="cite"><div>'
                  f'{html.escape(attribution, quote=False)}</div>'
                  '<br class="Apple-interchange-newline"><div><div>'
                  f'{_html_lines(_lines(o.text))}</div></div></blockquote>')
    page = ('<html aria-label="message body"><head><meta http-equiv="content-type" '
            'content="text/html; charset=utf-8"></head><body style="overflow-wrap: break-word; '
            '-webkit-nbsp-mode: space; line-break: after-white-space;">'
            + (f"{new}{html_signature}<div><br>{blockquote}</div>" if top
               else f"{blockquote}<div><br></div><div>{new}{html_signature}</div>")
            + "<br></body></html>")

    def encoded(subtype: str, body: str) -> bytes:
        charset = "us-ascii" if body.isascii() else "utf-8"
        cte = "7bit" if body.isascii() and all(len(x) <= 998 for x in body.split("\r\n")) \
            else "quoted-printable"
        payload = body.encode("ascii") if cte == "7bit" else _qp(body)
        return (f"Content-Transfer-Encoding: {cte}\r\nContent-Type: text/{subtype};\r\n"
                f"\tcharset={charset}\r\n\r\n").encode("ascii") + payload

    boundary = f"Apple-Mail=_{c.uuid('b').upper()}"
    headers = [
        _address_header("From", (_who_header(c.from_name, c.from_address),)),
        f'Content-Type: multipart/alternative;\r\n\tboundary="{boundary}"',
        f"Mime-Version: 1.0 (Mac OS X Mail 16.0 \\({_APPLE_BUILD}\\))",
        _header("Subject", c.subject("Re:")),
        f"Date: {email.utils.format_datetime(c.date)}",
        f"In-Reply-To: <{o.message_id}>",
        *([_address_header("Cc", c.cc)] if c.cc else []),
        _address_header("To", c.to),
        f"References: {c.references()}",
        f"Message-Id: <{c.message_id or c.uuid('id').upper() + '@' + c.domain}>",
        f"X-Mailer: Apple Mail (2.{_APPLE_BUILD})",
    ]
    body = _multipart(boundary, [encoded("plain", _crlf(text)), encoded("html", page)])
    return headers, b"\r\n" + body


_BUILDERS: dict[str, Callable[[_Context], tuple[list[str], bytes]]] = {
    "outlook": _outlook, "gmail": _gmail, "thunderbird": _thunderbird, "apple_mail": _apple_mail,
}

__all__ = ["CLIENTS", "LANGUAGES", "Original", "reply"]
