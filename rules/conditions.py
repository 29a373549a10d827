"""The `when:` of a rule: compile the condition tree once, test it on every message.

    condition, problems = compile_condition(data, ("rules", 2, "when"), calendars=calendars)
    condition.test(facts)       # -> bool, fast, short-circuits
    condition.explain(facts)    # -> (same bool, "subject 'Invoice 42' matches '(?i)invoice'")

`data` is the plain Python value of the `when:` node (dict, list, str, int, float, bool,
None, as `rules.source.load_yaml` gives it) and `path` its key path.  The result is a
condition, or None and *every* problem found, each a (key path, message) at the deepest
key at fault, e.g. (..., "when", "any", 0, "subject", "matches"); the loader turns paths
into file:line:column.  A rule without `when:` uses `ALWAYS`.

The language (the admin's manual is docs/rules.md)::

    when:
      from_domain: [example.com, example.org]        # bare list: in
      subject: {matches: '(?i)\\binvoice\\b'}         # a mapping of operators
      any:
        - header: {X-Priority: {in: ['1', '2']}}
        - customer_tier: gold                        # bare value: equals
      not: {business_hours: office}

A condition node is a mapping; several keys mean all of them hold, tested in the order
written.  `{}` is refused (leave out `when:` to match every message).  Keys:

* `all: [node, ...]`, `any: [node, ...]` (non-empty lists), `not: node`.
* a text field, `FIELD: TEST`, for FIELD in `rules.facts.TEXT_FIELDS` (from, from_domain,
  to, cc, recipient, subject, body, attachment, customer_tier, from_org).
* `header: {Name: TEST, ...}`: names case-insensitive; several names must all hold.
* `is_reply: true|false`, `is_new: true|false` (YAML booleans only).
* `business_hours: NAME`: `calendars[NAME].is_open(facts.received_at)`.

TEST is a scalar (`equals` it; numbers and booleans refused: YAML changed their spelling
— 007 is 7 — or a word was meant, so they must be quoted), a list of scalars (`in` it), or a mapping of one or more
operators, all of which must hold:

* `equals: text`, `contains: text`, `in: [text, ...]`: case-insensitive (str.casefold);
  operands are folded here, values by `Facts.folded` (once per message and field; header
  values are folded by the test).
* `matches: pattern`: RE2 (`rules.patterns`) on the values as written; case-sensitive
  unless the pattern says `(?i)`.
* `exists: true|false`: whether the field has any value.

A field has several values (`Facts.values`: each To address, each attachment's name and
content type, each instance of a header); a test holds when it holds for *any* value,
and with no value only `exists: false` holds.  Empty strings are not values, so
`equals: ''` and `contains: ''` are refused (write `exists:`).

Each compiled node is a small frozen dataclass with `test` (no string building) and
`explain`, which returns the same result and the deciding reason, one line: for `all`
every reason when true and the first failing one when false, for `any` the first true
one or all of them.  The operators and their words are `rules.operators`.  To add a
field: extend `rules.facts`; to add an operator: a class in `rules.operators`, an entry
in its `OPERATORS` and in `_Compiler.operator` here.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from rules.facts import BOOL_FIELDS, CALENDAR_FIELD, FIELDS, HEADER_FIELD, TEXT_FIELDS, Facts
from rules.operators import (OPERATORS, Contains, Equals, Exists, In, Matches, Operator, Words,
                             explain_tests, quote)
from rules.patterns import PatternRefused, compile_pattern
from rules.source import KeyPath, did_you_mean

__all__ = ["ALWAYS", "AllOf", "AnyOf", "BusinessHours", "Calendar", "Condition", "FieldTest",
           "Flag", "HeaderTest", "Not", "Problem", "compile_condition"]

Problem = tuple[KeyPath, str]


class Condition(Protocol):
    def test(self, facts: Facts) -> bool: ...
    def explain(self, facts: Facts) -> tuple[bool, str]: ...


class Calendar(Protocol):
    def is_open(self, at: datetime) -> bool: ...


# --- conditions --------------------------------------------------------------------------

@dataclass(frozen=True)
class _Always:
    def test(self, facts: Facts) -> bool:
        return True

    def explain(self, facts: Facts) -> tuple[bool, str]:
        return True, "no condition: every message"


ALWAYS: Condition = _Always()


@dataclass(frozen=True)
class AllOf:
    children: tuple[Condition, ...]

    def test(self, facts: Facts) -> bool:
        for child in self.children:
            if not child.test(facts):
                return False
        return True

    def explain(self, facts: Facts) -> tuple[bool, str]:
        reasons = []
        for child in self.children:
            ok, why = child.explain(facts)
            if not ok:
                return False, why
            reasons.append(why)
        return True, "all of: " + "; ".join(reasons)


@dataclass(frozen=True)
class AnyOf:
    children: tuple[Condition, ...]

    def test(self, facts: Facts) -> bool:
        for child in self.children:
            if child.test(facts):
                return True
        return False

    def explain(self, facts: Facts) -> tuple[bool, str]:
        reasons = []
        for child in self.children:
            ok, why = child.explain(facts)
            if ok:
                return True, why
            reasons.append(why)
        return False, "none of: " + "; ".join(reasons)


@dataclass(frozen=True)
class Not:
    child: Condition

    def test(self, facts: Facts) -> bool:
        return not self.child.test(facts)

    def explain(self, facts: Facts) -> tuple[bool, str]:
        # The child's reason states the fact that decided ("is outside calendar 'office'"),
        # which decides the negation too; "not (...)" around it would read as a double negative.
        ok, why = self.child.explain(facts)
        return not ok, why


_NOUNS = {"to": "to address", "cc": "cc address", "attachment": "attachment name or type"}


@dataclass(frozen=True)
class FieldTest:
    """A text field of `rules.facts.TEXT_FIELDS` against operators that must all hold."""
    field: str
    operators: tuple[Operator, ...]

    def test(self, facts: Facts) -> bool:
        for op in self.operators:
            if not op.holds(facts.folded(self.field) if op.folds else facts.values(self.field)):
                return False
        return True

    def explain(self, facts: Facts) -> tuple[bool, str]:
        empty = f"{self.field} is empty"
        if facts.contact is None and self.field in ("customer_tier", "from_org"):
            empty += " (the sender is not in contacts:)"
        words = Words(self.field, _NOUNS.get(self.field, self.field), empty,
                       f"{self.field} is not empty")
        return explain_tests(self.operators, facts.values(self.field), facts.folded(self.field),
                        words)


@dataclass(frozen=True)
class HeaderTest:
    """Every value of header `name` (case-insensitive) against operators that must all hold."""
    name: str
    operators: tuple[Operator, ...]

    def test(self, facts: Facts) -> bool:
        values = facts.header_values(self.name)
        folded = None
        for op in self.operators:
            if op.folds:
                if folded is None:
                    folded = tuple(v.casefold() for v in values)
                if not op.holds(folded):
                    return False
            elif not op.holds(values):
                return False
        return True

    def explain(self, facts: Facts) -> tuple[bool, str]:
        values = facts.header_values(self.name)
        words = Words(f"header {self.name}", f"{self.name} header",
                       f"there is no {self.name} header", f"header {self.name} is present")
        return explain_tests(self.operators, values, tuple(v.casefold() for v in values), words)


@dataclass(frozen=True)
class Flag:
    """`is_reply` or `is_new` (the attribute of Facts) equals `wanted`."""
    name: str
    wanted: bool

    def test(self, facts: Facts) -> bool:
        return getattr(facts, self.name) == self.wanted

    def explain(self, facts: Facts) -> tuple[bool, str]:
        why = "the mail answers a ticket" if facts.is_reply else "the mail opens a new ticket"
        return self.test(facts), why


@dataclass(frozen=True)
class BusinessHours:
    name: str
    calendar: Calendar = field(compare=False)

    def test(self, facts: Facts) -> bool:
        return facts.remember(("business_hours", self.name),
                              lambda: self.calendar.is_open(facts.received_at))

    def explain(self, facts: Facts) -> tuple[bool, str]:
        at = facts.received_at
        zone = at.tzname()
        when = at.strftime("%Y-%m-%d %H:%M") + (f" {zone}" if zone else "")
        if self.test(facts):
            return True, f"received {when} is within calendar '{self.name}'"
        return False, f"received {when} is outside calendar '{self.name}'"


# --- compiling ---------------------------------------------------------------------------

_EMPTY = "empty condition; write at least one field"
_KEYS = (*FIELDS, "all", "any", "not")
_QUOTE_IT = " (quote it, as in 'true', if you mean the word)"


def compile_condition(data: Any, path: KeyPath, *, calendars: Mapping[str, Calendar],
                      ) -> tuple[Condition | None, list[Problem]]:
    """Compile a `when:` node; returns (condition, []) or (None, every problem found, each
    with the key path of the node at fault)."""
    compiler = _Compiler(calendars)
    condition = compiler.node(data, path, "expected a condition (a mapping of fields to tests)",
                              empty=_EMPTY + ", or leave out `when:` to match every message")
    if compiler.problems or condition is None:
        return None, compiler.problems
    return condition, []


class _Compiler:
    """Walks a `when:` tree. Each method returns its compiled part, or None after recording
    the problems, and the walk always goes on, so that every problem is found."""

    def __init__(self, calendars: Mapping[str, Calendar]):
        self.calendars = calendars
        self.problems: list[Problem] = []

    def report(self, path: KeyPath, message: str) -> None:
        self.problems.append((path, message))

    def node(self, data: Any, path: KeyPath, expected: str, *, empty: str = _EMPTY,
             ) -> Condition | None:
        if data is None or data == {}:
            return self.report(path, empty)
        if not isinstance(data, dict):
            return self.report(path, f"{expected}, got {_describe(data)}")
        parts = [self.key(key, value, (*path, key)) for key, value in data.items()]
        if any(part is None for part in parts):
            return None
        return parts[0] if len(parts) == 1 else AllOf(tuple(parts))

    def key(self, key: Any, value: Any, path: KeyPath) -> Condition | None:
        if key in ("all", "any"):
            return self.group(key, value, path)
        if key == "not":
            if isinstance(value, list):
                return self.report(path, "expected a condition (a mapping) for 'not', got a "
                                         "list; to negate several, write not: {any: [...]}")
            child = self.node(value, path, "expected a condition (a mapping) for 'not'")
            return None if child is None else Not(child)
        if key in TEXT_FIELDS:
            operators = self.test(key, value, path)
            return None if operators is None else FieldTest(key, operators)
        if key == HEADER_FIELD:
            return self.headers(value, path)
        if key in BOOL_FIELDS:
            if not isinstance(value, bool):
                return self.report(path, f"{key} takes true or false, got {_describe(value)}")
            return Flag(key, value)
        if key == CALENDAR_FIELD:
            return self.business_hours(value, path)
        return self.report(path, _unknown("field", key, _KEYS))

    def group(self, key: str, value: Any, path: KeyPath) -> Condition | None:
        if not isinstance(value, list):
            return self.report(path, f"expected a list of conditions for '{key}', "
                                     f"got {_describe(value)}")
        if not value:
            return self.report(path, f"expected at least one condition in the list for '{key}'")
        children = [self.node(item, (*path, i), f"expected a condition (a mapping) in '{key}'")
                    for i, item in enumerate(value)]
        if any(child is None for child in children):
            return None
        if len(children) == 1:
            return children[0]
        return (AllOf if key == "all" else AnyOf)(tuple(children))

    def headers(self, value: Any, path: KeyPath) -> Condition | None:
        if not isinstance(value, dict) or not value:
            return self.report(path, "expected a mapping of header names to tests for "
                                     f"'header', got {_describe(value)}")
        tests = []
        for name, test in value.items():
            where = (*path, name)
            if not isinstance(name, str) or not name \
                    or not all(33 <= ord(c) <= 126 and c != ":" for c in name):
                tests.append(self.report(where, f"not a header name: {_describe_name(name)} "
                                                "(write it as in the mail, e.g. X-Priority)"))
                continue
            operators = self.test(name, test, where)
            tests.append(None if operators is None else HeaderTest(name, operators))
        if any(test is None for test in tests):
            return None
        return tests[0] if len(tests) == 1 else AllOf(tuple(tests))

    def business_hours(self, value: Any, path: KeyPath) -> Condition | None:
        if not isinstance(value, str):
            hint = "; for outside hours write not: {business_hours: NAME}" \
                if isinstance(value, bool) else ""
            return self.report(path, "business_hours takes a calendar name, "
                                     f"got {_describe(value)}{hint}")
        if value not in self.calendars:
            return self.report(path, _unknown("calendar", value, tuple(self.calendars),
                                              lead="no calendar"))
        return BusinessHours(value, self.calendars[value])

    def test(self, label: str, value: Any, path: KeyPath) -> tuple[Operator, ...] | None:
        """The operators of a TEST for field or header `label`; problems under `path`."""
        if isinstance(value, dict):
            if not value:
                return self.report(path, f"expected at least one operator for '{label}' "
                                         f"(operators: {', '.join(OPERATORS)})")
            operators = [self.operator(op, operand, (*path, op)) for op, operand in value.items()]
        elif isinstance(value, list):
            if not value:
                return self.report(path, f"empty list for '{label}'; list at least one value")
            operators = [self.operator("in", value, path)]
        elif isinstance(value, bool) or value is None:
            return self.report(path, f"expected text, a list or a mapping of operators for "
                                     f"'{label}', got {_describe(value)}"
                                     + (_QUOTE_IT if isinstance(value, bool) else ""))
        else:
            operators = [self.operator("equals", value, path)]
        if any(op is None for op in operators):
            return None
        return tuple(operators)

    def operator(self, op: Any, operand: Any, path: KeyPath) -> Operator | None:
        if op == "exists":
            if not isinstance(operand, bool):
                return self.report(path, f"exists takes true or false, got {_describe(operand)}")
            return Exists(operand)
        if op == "in":
            if not isinstance(operand, list) or not operand:
                return self.report(path, "expected a non-empty list of texts for 'in', "
                                         f"got {_describe(operand)}")
            items = [self.text("in", item, (*path, i)) for i, item in enumerate(operand)]
            if any(item is None for item in items):
                return None
            return In(tuple(items), frozenset(item.casefold() for item in items))
        if op not in ("equals", "contains", "matches"):
            return self.report(path, _unknown("operator", op, OPERATORS))
        text = self.text(op, operand, path)
        if text is None:
            return None
        if op == "matches":
            try:
                return Matches(compile_pattern(text))
            except PatternRefused as exc:
                return self.report(path, str(exc))
        return (Equals if op == "equals" else Contains)(text, text.casefold())

    def text(self, op: str, value: Any, path: KeyPath) -> str | None:
        """A text operand: a string ('' only for matches).  Numbers are refused: YAML has
        already changed how they were written (007 is 7, 2.10 is 2.1), so quote them."""
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return self.report(path, f"expected text, got {_describe(value)}; quote it "
                                     "('...'): YAML reads an unquoted number as a number, "
                                     "so 007 would be 7 and 2.10 would be 2.1")
        if isinstance(value, bool) or not isinstance(value, str):
            hint = _QUOTE_IT if isinstance(value, bool) else \
                "; to accept any of several values write in: [...]" \
                if isinstance(value, list) and op != "in" else ""
            where = "in the list" if op == "in" else f"for '{op}'"
            return self.report(path, f"expected text {where}, got {_describe(value)}{hint}")
        text = str(value)
        if text or op == "matches":
            return text
        if op == "contains":
            return self.report(path, "contains needs at least one character; "
                                     "to test that there is a value write exists: true")
        return self.report(path, "empty text never matches (an empty value counts as "
                                 "missing); to test that there is none write exists: false")


def _unknown(kind: str, name: Any, known: tuple[str, ...], *, lead: str = "") -> str:
    """"unknown field 'subjet'; did you mean 'subject'? (fields: from, ...)"."""
    hint = did_you_mean(name, known)
    listed = f"({kind}s: {', '.join(known)})" if known else f"(no {kind}s are defined)"
    return f"{lead or 'unknown ' + kind} {_describe_name(name)}{hint} {listed}"


def _describe_name(name: Any) -> str:
    return f"'{name}'" if isinstance(name, str) else _describe(name)


def _describe(value: Any) -> str:
    """How a problem names a value: "string 'yes'", "a list", "boolean true"."""
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, dict):
        return "a mapping" if value else "an empty mapping"
    if isinstance(value, list):
        return "a list" if value else "an empty list"
    if isinstance(value, str):
        return f"string {quote(value)}" if value else "an empty string"
    kind = {int: "integer", float: "number"}.get(type(value), type(value).__name__)
    return f"{kind} {value}"
