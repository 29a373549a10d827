"""html_to_text(): an HTML-only mail reads like the customer wrote it."""
from __future__ import annotations

from parsers.html import html_to_text


def test_paragraphs_lists_and_entities_become_plain_lines():
    text = html_to_text("<p>Hello &amp; welcome,</p><ul><li>first</li><li>second</li></ul>"
                        "<div>Gr&uuml;&szlig;e<br>Alice</div>")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    assert lines == ["Hello & welcome,", "* first", "* second", "Grüße", "Alice"]


def test_scripts_styles_and_head_are_not_text():
    text = html_to_text("<html><head><title>Mail</title><style>p{color:red}</style></head>"
                        "<body><script>document.write('evil')</script><p>Real text</p></body>")
    assert text == "Real text"


def test_broken_html_still_gives_the_words():
    assert html_to_text("<p>unclosed <b>bold <i>text</p></div></table>&nbsp;end").split() == \
        ["unclosed", "bold", "text", "end"]
    assert html_to_text("a < b and c > d") == "a < b and c > d"
    assert html_to_text("<p>1 &lt; 2</p>") == "1 < 2"


def test_nesting_deeper_than_lxml_keeps_is_recovered_by_stripping_tags():
    assert html_to_text("<div>" * 1000 + "deep text" + "</div>" * 1000) == "deep text"


def test_empty_and_tag_only_documents_give_empty_text():
    assert html_to_text("") == ""
    assert html_to_text("   ") == ""
    assert html_to_text("<html><body></body></html>") == ""
    assert html_to_text("<!-- just a comment -->") == ""


def test_outlook_xml_declaration_and_nul_bytes_are_harmless():
    assert html_to_text('<?xml version="1.0" encoding="utf-8"?><html><body>x\x00y</body></html>') == "xy"
