"""The operators of a field test and the words that explain them (`rules.conditions`).

    op = Contains("Refund", "refund")          # operands folded once, when compiled
    op.holds(facts.folded("subject"))           # does any value pass
    explain_tests((op,), values, folded, words) # (result, "subject 'Re: refund' contains 'Refund'")

One class per operand kind, each with `holds(values)` (does any of a field's values
pass), `find(value)` (where in one value, to quote the right part of a long body) and
`words` (what it says when it holds and when not).  `equals`, `contains` and `in` work
on case-folded values (`folds`), `matches` on the values as written, `exists` on their
number.  `quote` keeps an explanation on one line of about 60 characters.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rules.patterns import Pattern

__all__ = ["Contains", "Equals", "Exists", "In", "Matches", "OPERATORS", "Operator", "Words",
           "explain_one", "explain_tests", "quote", "quote_list"]


@dataclass(frozen=True)
class Equals:
    written: str
    folded: str
    folds: ClassVar[bool] = True

    def holds(self, values: tuple[str, ...]) -> bool:
        return self.folded in values

    def find(self, value: str) -> int | None:
        return 0 if value == self.folded else None

    @property
    def words(self) -> tuple[str, str]:
        return f"equals {quote(self.written)}", f"does not equal {quote(self.written)}"


@dataclass(frozen=True)
class Contains:
    written: str
    folded: str
    folds: ClassVar[bool] = True

    def holds(self, values: tuple[str, ...]) -> bool:
        for value in values:
            if self.folded in value:
                return True
        return False

    def find(self, value: str) -> int | None:
        at = value.find(self.folded)
        return None if at < 0 else at

    @property
    def words(self) -> tuple[str, str]:
        return f"contains {quote(self.written)}", f"does not contain {quote(self.written)}"


@dataclass(frozen=True)
class In:
    written: tuple[str, ...]
    folded: frozenset[str]
    folds: ClassVar[bool] = True

    def holds(self, values: tuple[str, ...]) -> bool:
        return not self.folded.isdisjoint(values)

    def find(self, value: str) -> int | None:
        return 0 if value in self.folded else None

    @property
    def words(self) -> tuple[str, str]:
        listed = quote_list(self.written)
        return f"is one of {listed}", f"is none of {listed}"


@dataclass(frozen=True)
class Matches:
    pattern: Pattern
    folds: ClassVar[bool] = False

    def holds(self, values: tuple[str, ...]) -> bool:
        search = self.pattern.search
        for value in values:
            if search(value):
                return True
        return False

    def find(self, value: str) -> int | None:
        span = self.pattern.span(value)
        return None if span is None else span[0]

    @property
    def words(self) -> tuple[str, str]:
        return f"matches {quote(self.pattern.text)}", f"does not match {quote(self.pattern.text)}"


@dataclass(frozen=True)
class Exists:
    wanted: bool
    folds: ClassVar[bool] = False

    def holds(self, values: tuple[str, ...]) -> bool:
        return bool(values) is self.wanted


Operator = Equals | Contains | In | Matches | Exists
OPERATORS = ("equals", "contains", "matches", "in", "exists")



# --- explanations ------------------------------------------------------------------------

@dataclass(frozen=True)
class Words:
    label: str      # "subject", "header X-Priority"
    noun: str       # "no <noun> equals ...": "to address", "X-Priority header"
    empty: str      # "cc is empty"
    present: str    # "cc is not empty"


def explain_tests(operators: tuple[Operator, ...], values: tuple[str, ...],
             folded: tuple[str, ...], words: Words) -> tuple[bool, str]:
    reasons = []
    for op in operators:
        ok, why = explain_one(op, values, folded, words)
        if not ok:
            return False, why
        reasons.append(why)
    return True, " and ".join(reasons)


def explain_one(op: Operator, values: tuple[str, ...], folded: tuple[str, ...],
                 words: Words) -> tuple[bool, str]:
    if isinstance(op, Exists):
        if not values:
            return not op.wanted, words.empty
        return op.wanted, f"{words.present} ({quote_list(values)})"
    if not values:
        return False, words.empty
    holds, fails = op.words
    for value, seen in zip(values, folded if op.folds else values):
        at = op.find(seen)
        if at is not None:
            at = at if len(seen) == len(value) else 0   # casefold changed the length
            return True, f"{words.label} {quote(value, at)} {holds}"
    if len(values) == 1:
        return False, f"{words.label} {quote(values[0])} {fails}"
    return False, f"no {words.noun} {holds} ({words.label}: {quote_list(values)})"


_WIDTH = 60
_ONE_LINE = str.maketrans("\r\n\t\v\f", "     ")


def quote(text: str, at: int = 0) -> str:
    """'text' on one line, at most ~60 characters, showing position `at`."""
    start = at - 20 if at > _WIDTH - 20 else 0
    piece = text[start:start + _WIDTH].translate(_ONE_LINE)
    head = "…" if start else ""
    tail = "…" if start + _WIDTH < len(text) else ""
    return f"'{head}{piece}{tail}'"


def quote_list(values: tuple[str, ...] | list[str], most: int = 3) -> str:
    shown = ", ".join(quote(v) for v in values[:most])
    return shown if len(values) <= most else f"{shown}, … ({len(values)} in all)"
