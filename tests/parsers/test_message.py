"""parse(): a customer's raw mail becomes the facts the help desk works with."""
from __future__ import annotations

import base64
from datetime import datetime, timedelta, timezone

import pytest

from parsers.message import (Attachment, ParsedMail, UnparseableMessage, decode_bytes,
                             normalize_message_id, parse, parse_message_ids)


def mail(headers: str, body: str | bytes = "Hello", *, crlf: bool = True) -> bytes:
    """Raw bytes of a message; `headers` one per line, body appended after a blank line."""
    head = headers.strip("\n").encode("utf-8")
    body = body.encode("utf-8") if isinstance(body, str) else body
    raw = head + b"\n\n" + body
    return raw.replace(b"\n", b"\r\n") if crlf else raw


def test_customer_mail_gives_sender_recipients_subject_and_text():
    parsed = parse(mail("""
From: Alice Example <Alice@Example.COM>
To: Support <support@help.example.org>, bob@example.org
Cc: carol@example.org
Reply-To: alice.private@example.net
Subject: Printer broken
Date: Mon, 4 Mar 2024 10:15:00 +0100
Message-ID: <abc.123@Mail.Example.COM>
""", "The printer on floor 2 is broken.\n"))
    assert isinstance(parsed, ParsedMail)
    assert parsed.from_address == "alice@example.com"
    assert parsed.from_name == "Alice Example"
    assert parsed.to == ("support@help.example.org", "bob@example.org")
    assert parsed.cc == ("carol@example.org",)
    assert parsed.reply_to == ("alice.private@example.net",)
    assert parsed.subject == "Printer broken"
    assert parsed.message_id == "abc.123@mail.example.com"
    assert parsed.text == "The printer on floor 2 is broken."
    assert parsed.visible_text == "The printer on floor 2 is broken."
    assert parsed.html == "" and parsed.attachments == ()


def test_encoded_subject_and_sender_name_are_decoded():
    parsed = parse(mail("""
From: =?iso-8859-1?Q?J=F6rg_M=FCller?= <joerg@example.de>
Subject: =?utf-8?B?R3LDvMOfZSBhdXMg?=
 =?utf-8?Q?M=C3=BCnchen?= und Bern
"""))
    assert parsed.from_name == "Jörg Müller"
    assert parsed.subject == "Grüße aus München und Bern"


def test_a_character_split_across_two_encoded_words_survives():
    # "日本" in UTF-8 is e6 97 a5 e6 9c ac; split in the middle of the first character.
    parsed = parse(mail("Subject: =?utf-8?B?5pc=?= =?utf-8?B?peacrA==?="))
    assert parsed.subject == "日本"


def test_bad_base64_padding_in_encoded_word_is_tolerated():
    assert parse(mail("Subject: =?gb18030?B?suLK1A===?=")).subject == "测试"


def test_comma_in_an_encoded_display_name_does_not_split_the_address():
    parsed = parse(mail('To: =?utf-8?Q?Doe,_John?= <John.Doe@Example.org>, x@example.org'))
    assert parsed.to == ("john.doe@example.org", "x@example.org")


def test_raw_8bit_header_is_read_as_utf8_or_latin1():
    utf8 = parse(b"From: J\xc3\xb6rg <j@example.de>\r\nSubject: Caf\xc3\xa9\r\n\r\nx")
    latin = parse(b"From: J\xf6rg <j@example.de>\r\nSubject: Caf\xe9 cr\xe8me\r\n\r\nx")
    assert (utf8.from_name, utf8.subject) == ("Jörg", "Café")
    assert (latin.from_name, latin.subject) == ("Jörg", "Café crème")


def test_date_is_aware_and_missing_or_garbage_dates_are_none():
    assert parse(mail("Date: Mon, 4 Mar 2024 10:15:00 +0100")).date == datetime(
        2024, 3, 4, 10, 15, tzinfo=timezone(timedelta(hours=1)))
    assert parse(mail("Date: Mon, 4 Mar 2024 10:15:00 -0000")).date.tzinfo is not None
    assert parse(mail("Subject: no date")).date is None
    assert parse(mail("Date: the day after tomorrow")).date is None


def test_headers_are_kept_in_order_decoded_and_unfolded():
    parsed = parse(mail("""
Received: from a by b;
\tMon, 4 Mar 2024 10:15:00 +0100
X-Custom: first
Subject: =?utf-8?Q?Caf=C3=A9?=
X-Custom: second
"""))
    assert parsed.headers == (
        ("Received", "from a by b;\tMon, 4 Mar 2024 10:15:00 +0100"),
        ("X-Custom", "first"),
        ("Subject", "Café"),
        ("X-Custom", "second"),
    )
    assert parsed.header("x-custom") == "first"
    assert parsed.header_all("X-CUSTOM") == ("first", "second")


def test_latin1_body_with_windows_quotes_reads_as_windows_1252():
    body = "\u201eSch\u00f6n\u201c \u2013 gr\u00fc\u00dfe".encode("cp1252")
    parsed = parse(mail("Content-Type: text/plain; charset=iso-8859-1", body))
    assert parsed.text == "\u201eSch\u00f6n\u201c \u2013 gr\u00fc\u00dfe"


def test_body_mislabelled_as_ascii_is_still_readable():
    utf8 = parse(mail("Content-Type: text/plain; charset=us-ascii", "Grüße".encode()))
    latin = parse(mail("Content-Type: text/plain; charset=us-ascii", "Grüße".encode("latin-1")))
    assert utf8.text == latin.text == "Grüße"
    assert any("us-ascii" in defect for defect in latin.defects)


def test_unknown_charset_label_falls_back_without_raising():
    parsed = parse(mail("Content-Type: text/plain; charset=x-no-such-charset", "Grüße".encode()))
    assert parsed.text == "Grüße"


@pytest.mark.parametrize("charset, text", [
    ("iso-2022-jp", "お問い合わせありがとうございます"),
    ("shift_jis", "お問い合わせ"),
    ("euc-jp", "お問い合わせ"),
    ("gb2312", "打印机坏了"),
    ("gb18030", "打印机坏了"),
    ("big5", "印表機壞了"),
    ("euc-kr", "프린터가 고장났어요"),
    ("koi8-r", "Принтер сломан"),
    ("windows-1251", "Принтер сломан"),
    ("iso-8859-7", "Ο εκτυπωτής χάλασε"),
])
def test_declared_body_charsets_decode(charset, text):
    for cte, encode in (("8bit", lambda b: b), ("base64", base64.encodebytes)):
        raw = mail(f"Content-Type: text/plain; charset={charset}\nContent-Transfer-Encoding: {cte}",
                   encode(text.encode(charset)))
        assert parse(raw).text == text, cte


def test_iso_2022_jp_with_windows_extensions_decodes():
    # NEC row 13 ("①", "№") is not in Python's iso2022_jp codecs; Windows mailers send it.
    body = b"\x1b$B-!-b\x1b(B 123"
    assert parse(mail("Content-Type: text/plain; charset=iso-2022-jp", body)).text == "①№ 123"


def test_broken_jis_bytes_in_a_header_do_not_cost_the_message():
    # Found by fuzzing: a JIS pair with an 8-bit second byte crashed the CP50221 path.
    parsed = parse(b"Subject: =?iso-2022-jp?Q?=1B$B!=FF=1B(B?= ok\r\nFrom: a@example.org\r\n\r\nbody")
    assert parsed.subject.endswith("ok") and parsed.from_address == "a@example.org"
    assert parsed.text == "body"


def test_a_header_that_cannot_be_decoded_is_kept_raw(monkeypatch):
    import parsers.headers

    def failing_decoder(value: str) -> str:
        if "trouble" in value:
            raise ValueError("decoder bug")
        return value

    monkeypatch.setattr(parsers.headers, "decode_words", failing_decoder)
    parsed = parse(b"Subject: =?x?Q?trouble?=\r\nFrom: a@example.org\r\n\r\nbody")
    assert parsed.subject == "=?x?Q?trouble?="
    assert (parsed.from_address, parsed.text) == ("a@example.org", "body")


def test_unlabelled_koi8_subject_is_guessed():
    parsed = parse(b"Subject: \xf0\xd2\xc9\xd7\xc5\xd4 \xcd\xc9\xd2\r\n\r\nx")
    assert parsed.subject == "Привет мир"


def test_decode_bytes_never_raises_and_says_what_it_did():
    text, note = decode_bytes(b"\xff\xfe\xfa", "utf-8")
    assert isinstance(text, str) and note
    assert decode_bytes(b"plain", "utf-8") == ("plain", "")
    assert decode_bytes("x".encode(), "unicode_escape")[0] == "x"   # unsafe codec ignored


def test_html_only_mail_is_converted_to_readable_text():
    html = ("<html><head><style>p {color: red}</style><script>alert('x')</script></head>"
            "<body><p>Hello&nbsp;<b>support</b>,</p><p>my invoice is wrong.</p></body></html>")
    parsed = parse(mail("Content-Type: text/html; charset=utf-8", html))
    assert parsed.html == html
    assert "Hello\xa0support," in parsed.text or "Hello support," in parsed.text
    assert "my invoice is wrong." in parsed.text
    assert "<" not in parsed.text and "alert" not in parsed.text and "color" not in parsed.text


ALTERNATIVE = """\
From: a@example.org
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="outer"

--outer
Content-Type: multipart/alternative; boundary="alt"

--alt
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

Plain caf=C3=A9
--alt
Content-Type: text/html; charset=utf-8

<p>HTML caf\u00e9</p>
--alt--
--outer
Content-Type: image/png; name="dot.png"
Content-Disposition: attachment; filename="dot.png"
Content-Transfer-Encoding: base64

iVBORw0KGgo=
--outer
Content-Type: text/plain; charset=iso-8859-1
Content-Disposition: attachment; filename*=iso-8859-1''r%E9sum%E9.txt
Content-Transfer-Encoding: quoted-printable

caf=E9
--outer
Content-Type: message/rfc822
Content-Disposition: attachment

From: someone@example.org
Subject: forwarded

Forwarded body text
--outer--
"""


def test_multipart_mail_splits_text_html_and_attachments():
    parsed = parse(ALTERNATIVE.replace("\n", "\r\n").encode("utf-8"))
    assert parsed.text == "Plain café"
    assert parsed.html == "<p>HTML café</p>"
    by_name = {a.filename: a for a in parsed.attachments}
    assert by_name["dot.png"] == Attachment("dot.png", "image/png", b"\x89PNG\r\n\x1a\n")
    assert by_name["résumé.txt"].data == b"caf\xe9"          # bytes as sent, not re-encoded
    assert "Forwarded body text" not in parsed.text           # an attached mail is not body
    assert any(a.content_type == "message/rfc822" for a in parsed.attachments)
    assert len(by_name["dot.png"].sha256) == 64


def test_reply_gets_visible_text_without_quote_and_signature():
    parsed = parse(mail("Subject: Re: Printer", (
        "It works again, thanks!\n\n-- \nAlice\n\n"
        "On Mon, 4 Mar 2024 at 10:15, Support <support@example.org> wrote:\n"
        "> Please restart the printer.\n")))
    assert parsed.visible_text == "It works again, thanks!"
    assert "Please restart" in parsed.text


def test_text_never_contains_nul_or_carriage_returns():
    parsed = parse(b"Subject: a\x00b\r\n\r\nline one\x00\r\nline two\r\n")
    assert parsed.subject == "ab"
    assert parsed.text == "line one\nline two"


def test_message_without_headers_is_parsed_as_body():
    parsed = parse(b"Just a body line\nand another\n")
    assert parsed.subject == "" and parsed.from_address == ""
    assert "and another" in parsed.text


@pytest.mark.parametrize("raw", [b"", b"   \r\n\r\n  "])
def test_empty_input_is_unparseable(raw):
    with pytest.raises(UnparseableMessage):
        parse(raw)


def test_absurdly_nested_mime_still_yields_headers_and_a_defect():
    raw = b"From: a@example.org\r\nSubject: deep\r\n"
    for i in range(1500):
        raw += b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i)
    parsed = parse(raw + b"Content-Type: text/plain\r\n\r\nhello\r\n")
    assert (parsed.subject, parsed.from_address) == ("deep", "a@example.org")
    assert parsed.defects


@pytest.mark.parametrize("value, expected", [
    ("<Abc.123@Example.COM>", "Abc.123@example.com"),
    ("  <abc@example.com>  (added by relay)", "abc@example.com"),
    ("abc@EXAMPLE.com", "abc@example.com"),
    ("(comment) <abc@example.com> <second@example.com>", "abc@example.com"),
    ("<abc@\r\n example.com>", "abc@example.com"),
    ("<12345>", "12345"),
    ("", None),
    ("<>", None),
    ("   ", None),
    ("<@example.com>", None),
    ("not an id at all", None),
])
def test_message_ids_are_normalized(value, expected):
    assert normalize_message_id(value) == expected


def test_reference_lists_are_split_and_normalized():
    assert parse_message_ids("<a@X.org> <b@x.org>\r\n\t<c@X.ORG>") == ("a@x.org", "b@x.org", "c@x.org")
    assert parse_message_ids("<a@x.org><b@x.org>") == ("a@x.org", "b@x.org")
    assert parse_message_ids("a@x.org b@x.org") == ("a@x.org", "b@x.org")
    assert parse_message_ids("<a@x.org> <a@x.org> <b@x.org>") == ("a@x.org", "b@x.org")
    assert parse_message_ids("Your message of Mon, 4 Mar 2024 <a@x.org>") == ("a@x.org",)
    assert parse_message_ids("Your message of Mon, 4 Mar 2024") == ()
    assert parse_message_ids("") == ()


def test_reply_headers_land_on_the_parsed_mail():
    parsed = parse(mail("In-Reply-To: <Two@X.org>\nReferences: <one@x.org>\n <two@x.org>"))
    assert parsed.in_reply_to == ("Two@x.org",)
    assert parsed.references == ("one@x.org", "two@x.org")
