"""HTML mail bodies to readable plain text, and to HTML that is safe to show.

    text = html_to_text('<p>Hello <b>world</b></p>')     # 'Hello world'
    safe = sanitize('<p onclick="x()">Hi<script>..</script><img src="cid:logo@x"></p>')
    #      '<p>Hi<img src="cid:logo@x"></p>'

Rendered with inscriptis (lxml underneath): block elements become lines, lists get
bullets, tables keep their cells apart, and <head>, <script> and <style> are dropped.
Nothing is executed and nothing is fetched: images and links are not followed, and link
targets are left out (the raw HTML stays on `ParsedMail.html` for anyone who needs them).

lxml's HTML parser reads no DTD, expands no entity an author declared (no "billion
laughs") and opens no network connection; the tests hold it to that.

Broken HTML is the norm in mail, so this never raises: when lxml gives up (or drops text,
as it does below ~255 levels of nesting), the text is recovered by stripping the tags
with a regular expression and unescaping the entities.

`sanitize` is for customer HTML that maild stores for display (`Message.html`): nh3
(the Rust `ammonia` sanitizer) keeps an allow-list of tags and attributes, so <script>,
<style>, <iframe>, <form>, every ``on*`` handler and every ``javascript:`` URL are gone.
Images keep only ``cid:`` sources -- the parts of the same mail -- since a remote image
would tell the sender when an agent opened the ticket; links keep http(s) and mailto
and get ``rel="noopener noreferrer"``.  Inline ``style`` stays, reduced to
`_STYLE_PROPERTIES` (colours, fonts, alignment, spacing; nothing that loads a URL or
moves the box out of its place).  The raw message is untouched.
"""
from __future__ import annotations

import html as _html
import logging
import re

import nh3
from inscriptis import get_text
from inscriptis.css_profiles import CSS_PROFILES
from inscriptis.model.config import ParserConfig

log = logging.getLogger(__name__)

# 'strict' follows browser defaults; 'relaxed' indents every <div>, and mail HTML is
# mostly nested <div>s, which would indent replies for no reason.
_CONFIG = ParserConfig(css=CSS_PROFILES["strict"], display_links=False, display_images=False)

# One token per tag; `[^<>]*` stops at the next '<', so scanning is linear on any input.
_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9]*+)?[^<>]*>")
_HIDDEN = frozenset({"script", "style", "head", "title"})
_BREAKS = frozenset({"br", "p", "div", "li", "tr", "table", "h1", "h2", "h3", "h4", "h5", "h6"})
_BLANK_RUNS = re.compile(r"\n[ \t]*(?:\n[ \t]*){2,}")

_URL_SCHEMES = frozenset({"http", "https", "mailto", "cid"})
_ATTRIBUTES = {tag: set(names) for tag, names in nh3.ALLOWED_ATTRIBUTES.items()}
_ATTRIBUTES["*"] = _ATTRIBUTES.get("*", set()) | {"style"}
_STYLE_PROPERTIES = frozenset({
    "color", "background-color", "font", "font-family", "font-size", "font-style",
    "font-weight", "text-align", "text-decoration", "text-indent", "text-transform",
    "line-height", "letter-spacing", "white-space", "vertical-align", "margin",
    "margin-top", "margin-right", "margin-bottom", "margin-left", "padding",
    "padding-top", "padding-right", "padding-bottom", "padding-left", "border",
    "border-collapse", "border-color", "border-style", "border-width", "width",
    "height", "max-width", "list-style-type", "direction"})


def html_to_text(html: str) -> str:
    """Readable text of an HTML document or fragment; '' for empty input."""
    html = (html or "").replace("\x00", "")
    if not html.strip():
        return ""
    try:
        text = get_text(html, _CONFIG)
    except Exception as exc:  # lxml/inscriptis on hostile input: fall back, never fail
        log.info("html_to_text: inscriptis failed (%s), stripping tags instead", exc)
        text = ""
    if not text.strip():
        text = _strip_tags(html)
    return _tidy(text)


def _strip_tags(html: str) -> str:
    """Last-resort conversion: drop tags and invisible elements, keep the words."""
    out: list[str] = []
    pos, hidden = 0, ""
    for match in _TAG.finditer(html):
        if not hidden:
            out.append(html[pos:match.start()])
        pos = match.end()
        closing, name = match.group(1), (match.group(2) or "").lower()
        if hidden:
            hidden = "" if closing and name == hidden else hidden
        elif not closing and name in _HIDDEN:
            hidden = name
        elif name in _BREAKS:
            out.append("\n")
    if not hidden:
        out.append(html[pos:])
    return _html.unescape("".join(out))


def _tidy(text: str) -> str:
    """Strip trailing blanks on each line and collapse runs of empty lines."""
    text = "\n".join(line.rstrip() for line in text.replace("\r\n", "\n").split("\n"))
    return _BLANK_RUNS.sub("\n\n", text).strip("\n")


def sanitize(html: str) -> str:
    """`html` with nothing left that runs, fetches or moves (see module doc); '' for
    empty input.  Never raises: if nh3 refuses the input, the escaped text in a <pre>."""
    html = (html or "").replace("\x00", "")
    if not html.strip():
        return ""
    try:
        return nh3.clean(html, attributes=_ATTRIBUTES, url_schemes=set(_URL_SCHEMES),
                         attribute_filter=_only_cid_images,
                         filter_style_properties=set(_STYLE_PROPERTIES),
                         link_rel="noopener noreferrer")
    except Exception as exc:  # noqa: BLE001 - e.g. text Rust can't take
        log.info("sanitize: nh3 failed (%s), keeping the escaped text", exc)
        return "<pre>" + _html.escape(html_to_text(html)) + "</pre>"


def _only_cid_images(tag: str, attribute: str, value: str) -> str | None:
    """Images show parts of this mail (``cid:``), never a URL the sender can watch."""
    if tag == "img" and attribute == "src" and not value.strip().lower().startswith("cid:"):
        return None
    return value
