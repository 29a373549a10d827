"""The new text of a reply: quoted history and signature removed.

    visible_text("Works now, thanks!\\n\\nOn Mon, 4 Mar 2024, Bob <b@x.org> wrote:\\n> Try again")
    # -> 'Works now, thanks!'

What is removed, in this order:
1. Quoted history after a *quote header*: "On ... wrote:", "Am ... schrieb ...:",
   "Le ... a écrit :", "Il ... ha scritto:", "Op ... schreef:", "Den ... skrev:",
   Outlook's "-----Original Message-----" and "From:/Sent:/To:" blocks in each language,
   and so on (mail-parser-reply's patterns for `languages`; English always included).
   A header followed by unquoted text (Outlook style) ends the new text: all below it is
   history.  A header followed by '>' lines opens a quote, and unquoted lines after it
   are the sender's inline or bottom-posted answers, so they stay.
2. Lines quoted with '>', and an attribution line ending in ':' (with a date, a time, an
   address or a "wrote" verb in it) directly above quoted lines -- this catches
   "Em ... escreveu:", "... написал(а):", "Bob wrote:" and the like, which
   mail-parser-reply has no pattern for.  A quote header that the sender's client
   wrapped over two or three lines (Gmail does with long names: "Am ... schrieb Name
   von\nSchönfeld <\nname@example.com>:") goes with it when the joined lines match
   mail-parser-reply's patterns.
3. The signature: from a "-- " delimiter line (RFC 3676; also "--"), and a last line
   such as "Sent from my iPhone" / "Von meinem iPhone gesendet".
4. A mailing-list footer (a line of 30+ underscores near the end), trailing separator
   lines (underscores, dashes) and blank lines.

Only mail-parser-reply's quote-header patterns are used: its signature heuristics cut at
any line starting "Thanks," or "- " (lists!), too eager for support mail, and its text
normalisation strips indentation (pasted configs and logs).  We keep the sender's lines
as they were.  If nothing is left, the whole text (stripped) is returned, so a message
never looks empty because of a misjudged quote.

Polish ('pl') is supported but not a default: its Outlook-header pattern needs just one
line such as "Data: ..." or "Do: ..." and would cut ordinary text there.

Bounded work (this runs on the daemon's single store thread, so hostile mail must not
stall it): the new text of a reply is at the top, so only the first `MAX_CHARS`
(256,000) characters and at most `MAX_LINES` (10,000) lines, cut at a line end, are
examined; everything below is treated as history and left out.  If nothing is left of
that prefix, the whole text (stripped) is returned as above.  Every step is linear in
the prefix; in the worst case the whole call takes a few tenths of a second.
mail-parser-reply's quote-header patterns cost up to ~60 ns x (line length)^2 per line
(nested lazy quantifiers), so they only see candidate lines and their neighbours, each
stripped and cut to 300 characters, at most 200 candidates, and at most `_HEADER_COST`
(sum of squared line lengths, ~0.25 s at worst; ordinary mail needs under half of it):
quote headers beyond that are not looked for.  Wrapped quote headers (step 2) are
matched at most `_MAX_WRAPPED_MATCHES` (10) times, each on at most 300 characters.
"""
from __future__ import annotations

import bisect
import functools
import itertools
import re
from collections.abc import Iterable, Iterator

from mailparser_reply.constants import MAIL_LANGUAGES
from mailparser_reply.parser import EmailMessage

SUPPORTED_LANGUAGES = tuple(lang for lang in MAIL_LANGUAGES if lang != "david")
DEFAULT_LANGUAGES = tuple(lang for lang in SUPPORTED_LANGUAGES if lang != "pl")

_QUOTED = re.compile(r"^\s*>")
_SIG_DELIMITER = re.compile(r"^--[ \t]?$")
_SEPARATOR = re.compile(r"^\s*[-_=*]{5,}\s*$")
_LIST_FOOTER = re.compile(r"^\s*_{30,}\s*$")        # Mailman's footer rule
_ATTRIBUTION = re.compile(
    r"^(?=.*(?:@|\d{4}|\d{1,2}:\d{2}|\b(?:wrote|writes|schrieb|a écrit|escribió|escreveu"
    r"|ha scritto|schreef|skrev|napisał|написал|написала|пишет)\b)).*[:：]\s*$", re.I)
_SENT_FROM = re.compile(
    r"^\s*(?:sent from my|sent from (?:mail|outlook|yahoo mail) for|get outlook for"
    r"|sent from (?:my )?(?:iphone|ipad|android|blackberry|samsung|huawei|mobile)"
    r"|von meinem|gesendet von meinem|envoy[ée] de mon|envoy[ée] depuis mon"
    r"|enviado desde mi|enviado do meu|inviato da(?:l mio)?|verzonden (?:met|vanaf) mijn"
    r"|sendt fra min|skickat från min|wysłano z mojego|отправлено с)"
    r"[\w .'()-]{0,40}$",
    re.I,
)
# Lines that can be part of a quote header: lines starting with one of the Outlook field
# names of mail-parser-reply's languages ("From:", "Von:", "De :" ...), lines ending in
# ':' ("... wrote:"), and "-----Original Message-----".  Only these and their neighbours
# are matched against mail-parser-reply's patterns, which cost ~10 µs per line and up to
# ~60 ns x length^2 more: a bounce full of "Reporting-MTA: ..." lines should not pay that.
_FIELD_NAMES = "|".join(group for lang in SUPPORTED_LANGUAGES for group in re.findall(
    r"\(\?:([^()]*)\):", MAIL_LANGUAGES[lang].get("from_header", "")))
_CANDIDATE = re.compile(rf"^[>* ]*(?:{_FIELD_NAMES})[ *]*:|[:：]\s*$"
                        r"|original message|oprindelig meddelelse", re.I)
_MAX_LINE = 300          # longer lines are not quote headers


_PHRASES = ("original message", "oprindelig meddelelse")


def _may_be_header(line: str) -> bool:
    """Cheap exact pre-filter for `_CANDIDATE`: each alternative needs a colon or one of
    the two phrases, and `in` is far cheaper than the large alternation on every line."""
    if ":" in line or "：" in line:
        return True
    lowered = line.lower()
    return any(phrase in lowered for phrase in _PHRASES)


def _has_colon(line: str) -> bool:
    return ":" in line or "：" in line


def _candidate_lines(stripped: list[str]) -> Iterator[int]:
    """Numbers of the lines `_CANDIDATE` finds.  Most mail holds neither phrase at all:
    then only lines with a colon need the pattern (one `lower()` for the whole text
    instead of one per line)."""
    lowered = "\n".join(stripped).lower()
    maybe = _may_be_header if any(phrase in lowered for phrase in _PHRASES) else _has_colon
    return (i for i, line in enumerate(stripped) if maybe(line) and _CANDIDATE.search(line))
_MAX_CANDIDATES = 200    # bound the work on hostile input ...
_MAX_WRAPPED_MATCHES = 10  # ... the wrapped attributions matched (_wrapped_candidates) ...
_WRAPPED = 60             # ... and how long a line is that a client wrapped
_HEADER_COST = 4_000_000  # ... and the sum of squared line lengths the patterns see

MAX_CHARS = 256_000      # only this much of the text is examined (see module doc)
MAX_LINES = 10_000


def visible_text(text: str, languages: Iterable[str] = DEFAULT_LANGUAGES) -> str:
    """The new text of a reply; the whole text (stripped) when nothing would be left."""
    text = (text or "").replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        return ""
    lines = _first_lines(text)
    header = _header_regex(_codes(languages))
    fresh = _new_lines(lines, _header_spans(lines, header))
    result = "\n".join(_strip_trailer(_unquote(fresh, header))).strip("\n")
    return result if result.strip() else text.strip()


def _first_lines(text: str) -> list[str]:
    """The lines of the text's first MAX_CHARS characters, at most MAX_LINES of them; a
    line cut by the character limit is left out (unless it is the only one)."""
    head = text[:MAX_CHARS]
    lines = head.split("\n", MAX_LINES)
    if len(lines) > MAX_LINES:
        del lines[MAX_LINES:]            # the unsplit remainder
    elif len(text) > MAX_CHARS and len(lines) > 1:
        lines.pop()                      # cut mid-line (or '' after a final '\n')
    return lines


def _codes(languages: Iterable[str]) -> tuple[str, ...]:
    codes = {str(lang).lower().strip() for lang in languages} | {"en"}
    return tuple(sorted(codes & set(SUPPORTED_LANGUAGES)))


@functools.lru_cache(maxsize=32)
def _header_regex(codes: tuple[str, ...]) -> re.Pattern[str]:
    """mail-parser-reply's compiled quote-header pattern for these languages."""
    return EmailMessage(text="", languages=list(codes)).HEADER_REGEX


def _header_spans(lines: list[str], header: re.Pattern[str]) -> list[tuple[int, int]]:
    """(first line, first line after) of each quote header, in order."""
    # The patterns cost up to ~60 ns x length^2 per line, so they only see the lines
    # around candidates, whitespace-stripped as mail-parser-reply does, with an empty
    # line where lines were left out.  `origin` maps back to line numbers.
    stripped = [line.strip()[:_MAX_LINE] for line in lines]
    candidates = itertools.islice(_candidate_lines(stripped), _MAX_CANDIDATES)
    keep: set[int] = set()
    cost = 0
    for i in candidates:
        window = [j for j in range(max(0, i - 2), min(len(lines), i + 2)) if j not in keep]
        cost += sum(len(stripped[j]) ** 2 for j in window)
        if cost > _HEADER_COST:
            break
        keep.update(window)
    shown: list[str] = []
    origin: list[int | None] = []
    for i in sorted(keep):
        if origin and origin[-1] != i - 1:
            shown.append("")
            origin.append(None)
        shown.append(stripped[i])
        origin.append(i)
    haystack = "\n".join(shown)
    starts = list(itertools.accumulate((len(line) + 1 for line in shown[:-1]), initial=0))
    spans: list[tuple[int, int]] = []
    for match in _line_start_matches(header, haystack):
        found = match.group()
        begin = match.start() + len(found) - len(found.lstrip())
        end = match.start() + len(found.rstrip()) - 1
        first = origin[bisect.bisect_right(starts, begin) - 1]
        last = origin[bisect.bisect_right(starts, end) - 1]
        if first is not None and last is not None and (not spans or first >= spans[-1][1]):
            spans.append((first, last + 1))
    return spans


def _line_start_matches(header: re.Pattern[str], haystack: str) -> Iterator[re.Match[str]]:
    """`header.finditer(haystack)`, trying only the positions where one of its matches
    can begin.  Every alternative of mail-parser-reply's quote-header patterns starts
    with '^' (multi-line) or '\\n', so a match begins at the start of the text, at a
    '\\n' or just after one; `finditer` tries every character and costs ~20x more.
    Like `finditer`, the next match is looked for from the end of the previous one."""
    end, newline = 0, -1
    while True:
        for pos in (newline, newline + 1):
            if pos >= end:
                match = header.match(haystack, pos)
                if match:
                    yield match
                    end = match.end()
        newline = haystack.find("\n", max(newline + 1, end - 1))
        if newline < 0:
            return


def _new_lines(lines: list[str], spans: list[tuple[int, int]]) -> list[str | None]:
    """The lines before the first quote header, plus the part after each header that
    opens a '>' quote (inline or bottom posting); stop at a header followed by unquoted
    history (Outlook style), which runs to the end.  Each header left out is marked by
    a None, so that `_unquote` does not take the line above it for an attribution."""
    if not spans:
        return list(lines)
    fresh: list[str | None] = list(lines[:spans[0][0]])
    for (_, begin), end in zip(spans, [first for first, _ in spans[1:]] + [len(lines)]):
        opening = next((lines[i] for i in range(begin, end) if lines[i].strip()), None)
        if opening is None:
            continue
        if not _QUOTED.match(opening):
            break
        fresh.append(None)
        fresh.extend(lines[begin:end])
    return fresh


def _unquote(lines: list[str | None], header: re.Pattern[str]) -> list[str]:
    """Drop '>' lines, and attribution lines ("... 2024 ... wrote:") right above them,
    with the lines of the same attribution that the sender's client wrapped above, and
    the None marks of `_new_lines`."""
    # One pass from the bottom: `quote_below` says whether the next non-blank line
    # below is quoted.
    keep = [True] * len(lines)
    quote_below = False
    matches_left = _MAX_WRAPPED_MATCHES
    for i in range(len(lines) - 1, -1, -1):
        line = lines[i]
        if line is None:                    # a quote header already found and left out
            keep[i] = quote_below = False
            continue
        if not keep[i]:
            continue
        if _QUOTED.match(line):
            keep[i] = False
            quote_below = True
            continue
        if quote_below and line.rstrip().endswith((":", "：")) and _ATTRIBUTION.match(line.strip()):
            keep[i] = False
            for first, joined in _wrapped_candidates(lines, i):
                if matches_left <= 0:
                    break
                matches_left -= 1
                if header.fullmatch(joined):
                    keep[first:i] = [False] * (i - first)
                    break
        if line.strip():
            quote_below = False
    return [line for line, kept in zip(lines, keep) if kept]


def _wrapped_candidates(lines: list[str | None], last: int) -> Iterator[tuple[int, str]]:
    """(first line, the lines joined) of a quote header that may end at line `last`
    after being wrapped over up to three lines, longest first.  Gmail's text part wraps
    long names and addresses so:

        Am Fr., 20. Nov. 2026 um 15:04 Uhr schrieb Maximiliane Katharina von
        Hohenberg-Schönfeld <
        maximiliane@example.com>:

    mail-parser-reply's patterns allow at most one line break inside the name, so the
    caller matches the joined lines whole.  Only lines that were visibly wrapped (each,
    with the next word, longer than `_WRAPPED`) and that stand after a blank line or a
    quote are offered: a short line of new text directly above an attribution ("On
    Monday I'll call.") is never taken."""
    for first in (last - 2, last - 1):
        if first < 0:
            continue
        if any(line is None for line in lines[first:last + 1]):
            continue
        block = [line.strip() for line in lines[first:last + 1]]
        above = lines[first - 1] if first else None
        if (all(block) and not any(_QUOTED.match(line) for line in lines[first:last])
                and (above is None or not above.strip() or _QUOTED.match(above))
                and all(len(block[j]) + 1 + len(block[j + 1].split()[0]) >= _WRAPPED
                        for j in range(len(block) - 1))):
            joined = " ".join(block)
            if len(joined) <= _MAX_LINE:
                yield first, joined


def _strip_trailer(lines: list[str]) -> list[str]:
    """Cut the signature, a list footer, a closing 'Sent from my ...' line, and
    trailing separators and blank lines."""
    end = len(lines)
    for i in range(1, len(lines)):
        if _SIG_DELIMITER.match(lines[i]) or (len(lines) - i <= 8 and _LIST_FOOTER.match(lines[i])):
            end = i
            break
    while end and (not lines[end - 1].strip() or _SEPARATOR.match(lines[end - 1])
                   or _SENT_FROM.match(lines[end - 1])):
        end -= 1
    return lines[:end]
