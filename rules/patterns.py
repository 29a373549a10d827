"""Regular expressions for rules (`matches:`), compiled by RE2: linear time, no surprises.

    pattern = compile_pattern(r"(?i)\\binvoice\\b")     # or PatternRefused(reason)
    pattern.search("Invoice 42 overdue")                 # True

Rules are written by admins and run on mail written by strangers, so a pattern must not
be able to stall the daemon: RE2 matches in time linear in the input, whatever the
pattern (`(a+)+$` on a megabyte of `a` answers at once, where a backtracking engine would
run for ever).  The price is what RE2 leaves out, which `compile_pattern` refuses with
RE2's own reason and a hint: backreferences (`\\1`, `(?P=name)`), lookaround (`(?=`,
`(?!`, `(?<=`, `(?<!`), `\\Z` (RE2 spells end of text `\\z`), repetitions above
`{1000}`, and patterns whose automaton would need more than RE2's default `max_mem`
(8 MiB; e.g. `\\pL{1000}`).

Semantics are RE2's (https://github.com/google/re2/wiki/Syntax):

* `search`, not fullmatch: the pattern may match anywhere; anchor with `^` and `$`.
* Case-sensitive unless the pattern says `(?i)`; flags go inline (`(?i)`, `(?s)`, `(?m)`).
  `(?i)` folds case for every script ('(?i)émile' matches 'ÉMILE'), by simple
  one-to-one folding ('(?i)straße' does not match 'STRASSE').
* `\\w`, `\\b`, `\\d`, `\\s` are ASCII-only: `\\w` does not match 'é'.  For letters of any
  script write `\\p{L}` (`\\p{L}+` matches 'Ωμέγα'); a "word character" of any script is
  `[\\p{L}\\p{N}_]`.

Text is matched as UTF-8; patterns are compiled without capture groups (only whether a
pattern matches, and where, is ever asked), which lets RE2 use its fastest engine.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import re2

__all__ = ["Pattern", "PatternRefused", "compile_pattern"]

_DOCS = "(see docs/rules.md)"
_NO_BACKREFS = "RE2 has no backreferences or lookaround " + _DOCS
# part of RE2's error message -> what to tell the admin
_HINTS = (
    ("invalid escape sequence: \\Z", "RE2 writes end of text as \\z " + _DOCS),
    ("invalid escape sequence: \\", None),   # \1..\9 below; other escapes: the docs
    ("invalid perl operator: (?=", _NO_BACKREFS),
    ("invalid perl operator: (?!", _NO_BACKREFS),
    ("invalid perl operator: (?<", _NO_BACKREFS),
    ("invalid perl operator: (?P", _NO_BACKREFS),
    ("invalid repetition size", "RE2 allows at most {1000} repetitions " + _DOCS),
    ("pattern too large", "it would need too much memory; write a simpler pattern " + _DOCS),
)


class PatternRefused(ValueError):
    """RE2 cannot compile the pattern; str(exc) says why, for an admin."""


@dataclass(frozen=True)
class Pattern:
    """A compiled pattern; `text` as written. Equal when the text is equal."""
    text: str
    _regexp: Any = field(repr=False, compare=False)

    def search(self, s: str) -> bool:
        """Whether the pattern matches anywhere in `s`."""
        return self._regexp.search(s) is not None

    def span(self, s: str) -> tuple[int, int] | None:
        """(start, end) of the leftmost match in `s`, or None; for explanations."""
        found = self._regexp.search(s)
        return None if found is None else found.span()


def _options() -> re2.Options:
    options = re2.Options()
    options.log_errors = False      # else RE2 writes every refused pattern to stderr
    options.never_capture = True    # we ask whether and where, never for groups
    return options


_OPTIONS = _options()


def compile_pattern(text: str) -> Pattern:
    """Compile `text` with RE2, or raise PatternRefused with RE2's reason and a hint."""
    if not isinstance(text, str):
        raise PatternRefused(f"a pattern is text, got {type(text).__name__} {text!r}")
    try:
        regexp = re2.compile(text, _OPTIONS)
    except re2.error as exc:
        raise PatternRefused(_reason(text, exc)) from None
    return Pattern(text, regexp)


def _reason(text: str, exc: re2.error) -> str:
    detail = exc.args[0] if exc.args else "unknown error"
    if isinstance(detail, bytes):
        detail = detail.decode("utf-8", errors="replace")
    hint = _DOCS
    for part, said in _HINTS:
        if part in detail:
            hint = said or (_NO_BACKREFS if detail[-1:].isdigit() else _DOCS)
            break
    return f"RE2 cannot compile '{text}': {detail} — {hint}"
