"""parsers.html on hostile HTML: converting runs and fetches nothing, and the HTML maild
stores for display keeps nothing that runs (nh3) -- but keeps the mail's own cid: images."""
from __future__ import annotations

import socket

import pytest

from parsers.html import html_to_text, sanitize

pytestmark = pytest.mark.timeout(60)

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE html [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<html xmlns="http://www.w3.org/1999/xhtml"><body><p>Hello &lol9; bye</p></body></html>"""


@pytest.fixture
def listener():
    """A loopback port that records whether anything connected to it."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.setblocking(False)
    port = server.getsockname()[1]

    def connected() -> bool:
        try:
            server.accept()[0].close()
            return True
        except BlockingIOError:
            return False
    yield f"http://127.0.0.1:{port}", connected
    server.close()


def fetching_html(url: str) -> str:
    return (f'<?xml version="1.0"?>\n<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN" '
            f'"{url}/dtd">\n'
            f'<!DOCTYPE x [<!ENTITY ext SYSTEM "{url}/entity">]>'
            f'<html><head><link rel="stylesheet" href="{url}/css"><script src="{url}/js"></script>'
            f'<style>@import url({url}/import); body {{ background: url({url}/bg) }}</style></head>'
            f'<body background="{url}/body"><p>Text &ext; here</p><img src="{url}/img.png">'
            f'<iframe src="{url}/frame"></iframe><object data="{url}/obj"></object>'
            f'<video poster="{url}/poster"></video></body></html>')


def test_the_listener_notices_a_fetch(listener):
    url, connected = listener
    socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), timeout=5).close()
    assert connected()


def test_converting_html_to_text_fetches_nothing(listener):
    url, connected = listener
    text = html_to_text(fetching_html(url))
    assert "Text" in text and "here" in text
    assert not connected()


def test_sanitizing_fetches_nothing_and_leaves_no_url_that_would(listener):
    url, connected = listener
    safe = sanitize(fetching_html(url))
    assert not connected()
    assert "Text" in safe
    assert "127.0.0.1" not in safe         # no stylesheet, script, image, frame, object, poster


def test_billion_laughs_is_not_expanded():
    assert len(BILLION_LAUGHS) < 2_000
    text = html_to_text(BILLION_LAUGHS)
    assert "Hello" in text and len(text) < 2_000
    safe = sanitize(BILLION_LAUGHS)
    assert "Hello" in safe and len(safe) < 2_000


@pytest.mark.parametrize("html", [
    "<p>Hi</p><script>alert(1)</script>",
    "<p onclick=\"alert(1)\">Hi</p>",
    "<body onload=\"alert(1)\"><p>Hi</p></body>",
    "<p>Hi</p><img src=x onerror=\"alert(1)\">",
    "<a href=\"javascript:alert(1)\">Hi</a>",
    "<a href=\"  JaVaScRiPt:alert(1)\">Hi</a>",
    "<p>Hi</p><svg><script>alert(1)</script></svg>",
    "<p>Hi</p><style>*{display:none}</style>",
    "<p>Hi</p><iframe srcdoc=\"<script>alert(1)</script>\"></iframe>",
    "<form action=\"https://evil.example/\"><input name=password></form><p>Hi</p>",
    "<p>Hi</p><meta http-equiv=\"refresh\" content=\"0;url=javascript:alert(1)\">",
])
def test_sanitize_drops_everything_that_runs(html):
    safe = sanitize(html).lower()
    assert "hi" in safe
    for word in ("script", "alert", "onclick", "onload", "onerror", "javascript", "<style",
                 "<iframe", "<form", "<input", "<meta"):
        assert word not in safe, (word, safe)


def test_sanitize_keeps_cid_images_links_and_harmless_style():
    html = ('<div style="color: #b00020; position: fixed; background-image: url(https://t.example/p)">'
            '<p>Our logo:</p><img src="cid:logo@acme.example" alt="logo" width="40">'
            '<img src="https://tracker.example/pixel.gif"><img src="data:image/png;base64,AAAA">'
            '<a href="https://acme.example/faq">FAQ</a> <a href="mailto:help@acme.example">mail</a>'
            '<table><tr><td>cell</td></tr></table></div>')
    safe = sanitize(html)
    assert '<img src="cid:logo@acme.example" alt="logo" width="40">' in safe
    assert "tracker.example" not in safe and "data:image" not in safe
    assert '<a href="https://acme.example/faq" rel="noopener noreferrer">FAQ</a>' in safe
    assert 'href="mailto:help@acme.example"' in safe
    assert 'style="color:#b00020"' in safe
    assert "<td>cell</td>" in safe


def test_sanitize_of_nothing_is_nothing():
    assert sanitize("") == "" and sanitize("   \n") == ""
