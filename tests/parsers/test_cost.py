"""parse() does bounded, linear work on hostile mail: it runs on the daemon's single store
thread, so one slow mail stalls all the others.

No wall-clock limits here (timed tests are flaky).  Either a test times the same kind of
input at size N and 4N and checks the growth (linear gives ~4, quadratic ~16; the limit
is 8), or it checks a deterministic proxy for the work: how much text reaches a step.
"""
from __future__ import annotations

import gc
import time
from collections.abc import Callable

import pytest

from parsers import html as html_module
from parsers import message, quotes
from parsers.message import MAX_HTML_CHARS, parse
from parsers.quotes import MAX_CHARS, MAX_LINES, visible_text

LINEAR_GROWTH_LIMIT = 8     # N -> 4N: linear ~4, quadratic ~16


def raw_mail(body: str, subtype: str = "plain") -> bytes:
    return (f"From: alice@example.org\nTo: support@example.org\nSubject: hostile\n"
            f"Message-ID: <cost@example.org>\nMIME-Version: 1.0\n"
            f"Content-Type: text/{subtype}; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n"
            f"{body}").encode("utf-8")


def cpu_time(work: Callable[[], object]) -> float:
    """CPU seconds of this process: other processes on the machine don't count."""
    start = time.process_time()
    work()
    return time.process_time() - start


def growth(run: Callable[[object], object], make: Callable[[int], object], n: int) -> float:
    """How many times longer `run` takes on make(4n) than on make(n) (best of 3 each,
    interleaved)."""
    small, large = make(n), make(4 * n)
    run(small)                                   # warm-up: imports, compiled patterns
    gc.collect()
    best_small = best_large = float("inf")
    for _ in range(3):
        best_small = min(best_small, cpu_time(lambda: run(small)))
        best_large = min(best_large, cpu_time(lambda: run(large)))
    return best_large / best_small


# -- parse() on hostile plain text ----------------------------------------------------

NEW_TEXT = "The export still fails, see below.\n\n"
HOSTILE_LINES = {
    # each trailing separator line used to be removed by copying the list (lines[:-1])
    "separators": lambda n: NEW_TEXT + "-----\n" * n,
    # each "...:" line with a time in it copied the rest of the list (lines[i+1:])
    "times": lambda n: NEW_TEXT + "12:00:\n" * n,
    # '>' quoted history with an unquoted attribution line every 10 lines, same copy
    "quoted": lambda n: NEW_TEXT + ("> quoted history, line after line\n" * 9
                                    + "Bob wrote:\n") * (n // 10),
}


@pytest.mark.parametrize("kind, lines", [("separators", 10_000), ("times", 10_000),
                                         ("quoted", 37_500)])   # 4N 'quoted' is 5 MB
def test_parse_of_hostile_plain_text_grows_linearly(kind, lines):
    make = HOSTILE_LINES[kind]
    ratio = growth(lambda raw: parse(raw), lambda n: raw_mail(make(n)), lines)
    assert ratio < LINEAR_GROWTH_LIMIT, f"{kind}: {lines} -> {4 * lines} lines took {ratio:.1f}x"
    assert parse(raw_mail(make(lines))).visible_text.startswith(NEW_TEXT.strip())


@pytest.mark.parametrize("unit", ["-----\n", "12:00:\n", " \n", "Bob wrote:\n> x\n"])
def test_visible_text_steps_are_linear_even_without_the_size_bound(monkeypatch, unit):
    monkeypatch.setattr(quotes, "MAX_CHARS", 10**9)
    monkeypatch.setattr(quotes, "MAX_LINES", 10**9)
    ratio = growth(visible_text, lambda n: NEW_TEXT + unit * n, 8_000)
    assert ratio < LINEAR_GROWTH_LIMIT, f"{unit!r}: {ratio:.1f}x"


# -- the bounds ------------------------------------------------------------------------

def test_only_the_first_lines_and_characters_are_examined():
    pasted = "".join(f"log line {i}\n" for i in range(MAX_LINES + 5_000))
    visible = visible_text(NEW_TEXT + pasted)
    assert visible.startswith(NEW_TEXT) and len(visible.splitlines()) == MAX_LINES
    # a line cut by the character limit is left out, not shown half
    long_lines = NEW_TEXT + ("x" * 999 + "\n") * (MAX_CHARS // 1000 + 10)
    visible = visible_text(long_lines)
    assert len(visible) < MAX_CHARS and set(visible.splitlines()[2:]) == {"x" * 999}
    # nothing new in the examined part: the whole text, as for any all-quote message
    all_quote = "> old\n" * (MAX_LINES + 10) + "my answer far below"
    assert visible_text(all_quote) == all_quote


def test_header_patterns_see_a_bounded_haystack():
    """mail-parser-reply's patterns cost ~length^2 per line (nested lazy quantifiers):
    the lines shown to them are bounded in sum of squared lengths."""
    seen: list[str] = []

    class Spy:
        def match(self, haystack, pos=0):
            if not seen or seen[-1] is not haystack:
                seen.append(haystack)
            return quotes._header_regex(quotes._codes(quotes.DEFAULT_LANGUAGES)).match(haystack, pos)

    expensive = ("On " + "x wrote " * 40)[:298]
    lines = ["New text", ""] + [expensive, expensive, expensive + "y:", expensive] * 400
    quotes._header_spans(lines, Spy())
    assert sum(len(line) ** 2 for line in seen[0].split("\n")) <= quotes._HEADER_COST
    assert visible_text("\n".join(lines)).startswith("New text\n")


def test_a_huge_deeply_nested_html_mail_converts_a_bounded_prefix(monkeypatch):
    converted: list[int] = []
    real = message.html_to_text
    monkeypatch.setattr(message, "html_to_text",
                        lambda html: converted.append(len(html)) or real(html))
    block = "<div>deep " * 100 + "</div>" * 100
    html = "<html><body><p>Please help</p>" + block * (2_000_000 // len(block)) + "</body></html>"
    mail = parse(raw_mail(html, "html"))
    assert sum(converted) <= MAX_HTML_CHARS
    assert mail.text.startswith("Please help") and mail.visible_text.startswith("Please help")
    assert mail.html == html.strip("\n")                     # the HTML itself stays whole
    assert any("only the first converted" in defect for defect in mail.defects)


def test_html_budget_spans_all_parts_and_never_ends_in_a_partial_tag(monkeypatch):
    converted: list[str] = []
    monkeypatch.setattr(message, "html_to_text", lambda html: converted.append(html) or "t")
    defects: list[str] = []
    first = "<p>" + "a" * (MAX_HTML_CHARS - 100) + "</p>"
    second = "<p>b</p>" * 10 + '<a href="https://example.org/' + "c" * 200 + '">'
    assert message._html_text([first, second, "<p>c</p>"], defects) == "t\n\nt\n\nt"
    assert converted == [first, "<p>b</p>" * 10, ""]       # the budget is spent
    assert len(set(defects)) == 1
    defects.clear()
    assert message._html_text(["<p>small</p>"], defects) == "t" and defects == []


def test_tag_stripping_fallback_grows_linearly():
    # lxml drops the text below ~255 levels of nesting, so html_to_text strips tags itself
    ratio = growth(html_module.html_to_text,
                   lambda n: "<div>" * 300 + "<a" + "b" * n + "<x>" + "</div>" * 300, 3_000)
    assert ratio < LINEAR_GROWTH_LIMIT, f"{ratio:.1f}x"
