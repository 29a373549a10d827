"""HTML mail bodies to readable plain text.

    text = html_to_text('<p>Hello <b>world</b></p>')     # 'Hello world'

Rendered with inscriptis (lxml underneath): block elements become lines, lists get
bullets, tables keep their cells apart, and <head>, <script> and <style> are dropped.
Nothing is executed and nothing is fetched: images and links are not followed, and link
targets are left out (the raw HTML stays on `ParsedMail.html` for anyone who needs them).

Broken HTML is the norm in mail, so this never raises: when lxml gives up (or drops text,
as it does below ~255 levels of nesting), the text is recovered by stripping the tags
with a regular expression and unescaping the entities.
"""
from __future__ import annotations

import html as _html
import logging
import re

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
