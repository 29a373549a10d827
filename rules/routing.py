"""The `rules:` section of rules.yaml → `Rule`s, or every problem with its key path.

    rules, problems = compile_rules(data, names, where=locator.where)

Each entry::

    - name: Invoices go to billing          # required, unique, one line
      when: {subject: {matches: '(?i)\\binvoice\\b'}}   # optional: no `when` = every message
      then: {queue: billing, tags: [billing]}          # required, at least one action
      stop: true                            # optional: later rules are not looked at
      on: reply                             # optional: new (default) | reply

`when:` is compiled by `rules.conditions`.  `then:` takes these actions:

``queue: NAME``         a queue of this file
``priority: P``         low | normal | high | urgent
``assign: AGENT``       an agent's address or alias; or ``{round_robin: TEAM}`` /
                        ``{least_open: TEAM}``: the team's next available member
``tags: [T, ...]``      added to the ticket (a single tag may be written bare)
``sla: POLICY``         an SLA policy of the ``sla:`` section
``auto_reply: NAME``    acknowledge with template NAME instead of ``ack``; ``false``:
                        no acknowledgement; ``true``: the default one again
``discard: true``       spam: stored and closed, never answered, nobody notified
``stop: true``          as the rule-level ``stop``

`names` says what exists in the rest of the file (taken from the raw data, so the rules
are checked even when another section has errors of its own).  Problems are
(key path, message) pairs; every message starts with ``rule 'NAME':`` so an admin sees
which rule is at fault next to the file:line:column the loader adds.
"""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from rules.conditions import ALWAYS, compile_condition
from rules.model import AGENT, PRIORITIES, TEAM_POLICIES, Actions, Assign, Rule
from rules.source import KeyPath, describe, did_you_mean, not_one_of

Problem = tuple[KeyPath, str]

RULE_KEYS = ("name", "when", "then", "stop", "on")
ACTIONS = ("queue", "priority", "assign", "tags", "sla", "auto_reply", "discard", "stop")
ON_VALUES = ("new", "reply")
MAX_TAG = 64
_TAG = re.compile(rf"(?:[^\W_]|[-_.:/]){{1,{MAX_TAG}}}")


@dataclass(frozen=True)
class Names:
    """What a rule may refer to. `templates` None: template names are not checked."""
    queues: frozenset[str] = frozenset()
    teams: frozenset[str] = frozenset()
    agents: Mapping[str, str] = None          # any agent address or alias -> primary address
    policies: frozenset[str] = frozenset()
    templates: frozenset[str] | None = None
    calendars: Mapping[str, Any] = None       # name -> rules.calendar.Calendar


def compile_rules(data: Any, names: Names, *,
                  where: Callable[[KeyPath], tuple[int, int]] = lambda path: (0, 0),
                  ) -> tuple[tuple[Rule, ...], list[Problem]]:
    """Compile the `rules:` list; a non-list is left to the file's schema to report."""
    if not isinstance(data, list):
        return (), []
    rules, problems, seen = [], [], {}
    for i, entry in enumerate(data):
        path: KeyPath = ("rules", i)
        rule, found = _rule(entry, path, names, where)
        if rule is not None and rule.name in seen:
            found.append(((*path, "name"), f"rule {rule.name!r}: the name is already used by "
                                          f"rules[{seen[rule.name]}]; each rule needs its own"))
        elif rule is not None:
            seen[rule.name] = i
        problems.extend(found)
        if rule is not None and not found:
            rules.append(rule)
    return tuple(rules), problems


def _rule(entry: Any, path: KeyPath, names: Names, where) -> tuple[Rule | None, list[Problem]]:
    if not isinstance(entry, dict):
        return None, [(path, "expected a rule (a mapping with name, when, then), "
                             f"got {describe(entry)}")]
    name = entry.get("name")
    label = f"rule {name!r}" if isinstance(name, str) and name.strip() else f"rules[{path[1]}]"
    problems: list[Problem] = []

    def problem(sub: KeyPath, message: str) -> None:
        problems.append(((*path, *sub), f"{label}: {message}"))

    for key in entry:
        if key not in RULE_KEYS:
            problem((key,), not_one_of(key, RULE_KEYS, "key"))
    if name is None:
        problem((), "the key 'name' is missing; every rule needs a name (it is what the audit "
                    "log and `maild rules test` show)")
    elif not isinstance(name, str) or not name.strip() or any(c in name for c in "\r\n"):
        problem(("name",), f"expected a one-line name, got {describe(name)}")
    condition = ALWAYS
    if "when" in entry:
        compiled, found = compile_condition(entry["when"], (*path, "when"),
                                            calendars=names.calendars or {})
        for sub, message in found:
            problems.append((sub, f"{label}: {message}"))
        condition = compiled
    on = entry.get("on", "new")
    if on not in ON_VALUES:
        problem(("on",), f"expected one of {', '.join(ON_VALUES)}, got {describe(on)}")
    stop = entry.get("stop", False)
    if not isinstance(stop, bool):
        problem(("stop",), f"expected true or false, got {describe(stop)}")
    actions = None
    if "then" not in entry:
        problem((), "the key 'then' is missing; say what the rule does, e.g. then: {queue: billing}")
    else:
        actions = _actions(entry["then"], names, problem)
    if problems or actions is None:
        return (Rule(name, ALWAYS, Actions()) if isinstance(name, str) else None), problems
    if stop:
        actions = dataclasses.replace(actions, stop=True)
    return Rule(name=name.strip(), when=condition, then=actions, on_reply=on == "reply",
                line=where(path)[0]), problems


def _actions(data: Any, names: Names, problem) -> Actions | None:
    if not isinstance(data, dict) or not data:
        problem(("then",), "expected at least one action (" + ", ".join(ACTIONS) + f"), got {describe(data)}")
        return None
    values: dict[str, Any] = {}
    for key, value in data.items():
        sub = ("then", key)
        if key not in ACTIONS:
            problem(sub, not_one_of(key, ACTIONS, "action"))
        elif key == "queue":
            values["queue"] = _known(value, names.queues, "queue", sub, problem)
        elif key == "priority":
            if value in PRIORITIES:
                values["priority"] = value
            else:
                problem(sub, f"expected one of {', '.join(PRIORITIES)}, got {describe(value)}")
        elif key == "assign":
            values["assign"] = _assign(value, names, sub, problem)
        elif key == "tags":
            values["tags"] = _tags(value, sub, problem)
        elif key == "sla":
            values["sla"] = _known(value, names.policies, "SLA policy", sub, problem,
                                   defined_in="sla:")
        elif key == "auto_reply":
            values["auto_reply"] = _auto_reply(value, names, sub, problem)
        elif key in ("discard", "stop"):
            if isinstance(value, bool):
                values[key] = value
            else:
                problem(sub, f"expected true or false, got {describe(value)}")
    return Actions(**{k: v for k, v in values.items() if v is not None})


def _known(value: Any, known: frozenset[str], kind: str, sub: KeyPath, problem, *,
           defined_in: str = "") -> str | None:
    if not isinstance(value, str):
        problem(sub, f"expected a {kind} name, got {describe(value)}")
        return None
    if value not in known:
        hint = did_you_mean(value, known)
        kinds = kind[:-1] + "ies" if kind.endswith("y") else kind + "s"
        listed = (f" ({kinds}: {', '.join(sorted(known))})" if known
                  else f" (no {kinds} are defined{' under ' + defined_in if defined_in else ''})")
        problem(sub, f"no {kind} {value!r}{hint}{listed}")
        return None
    return value


def _assign(value: Any, names: Names, sub: KeyPath, problem) -> Assign | None:
    agents = names.agents or {}
    if isinstance(value, str):
        primary = agents.get(value.strip().lower())
        if primary is None:
            hint = did_you_mean(value.lower(), agents)
            problem(sub, f"no agent {value!r}{hint}; write an agent's address, or "
                         "{round_robin: TEAM} / {least_open: TEAM}")
            return None
        return Assign(AGENT, primary)
    if isinstance(value, dict) and len(value) == 1:
        (kind, team), = value.items()
        if kind not in TEAM_POLICIES:
            problem((*sub, kind), not_one_of(kind, TEAM_POLICIES, "assignment"))
            return None
        found = _known(team, names.teams, "team", (*sub, kind), problem, defined_in="teams:")
        return Assign(kind, found) if found else None
    problem(sub, "expected an agent's address, {round_robin: TEAM} or {least_open: TEAM}, "
                 f"got {describe(value)}")
    return None


def _tags(value: Any, sub: KeyPath, problem) -> tuple[str, ...] | None:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        problem(sub, f"expected a tag or a list of tags, got {describe(value)}")
        return None
    tags = []
    for j, tag in enumerate(items):
        where = sub if isinstance(value, str) else (*sub, j)
        if not isinstance(tag, str) or not _TAG.fullmatch(tag.lower()):
            problem(where, "a tag is letters, digits and - _ . : / (at most "
                           f"{MAX_TAG}), got {describe(tag)}")
        elif tag.lower() not in tags:
            tags.append(tag.lower())
    return tuple(tags)


def _auto_reply(value: Any, names: Names, sub: KeyPath, problem) -> str | bool | None:
    if value is False:
        return False
    if value is True:
        return True
    if not isinstance(value, str) or not value:
        problem(sub, f"expected a template name or false, got {describe(value)}")
        return None
    if names.templates is not None and value not in names.templates:
        hint = did_you_mean(value, names.templates)
        problem(sub, f"no template {value!r}{hint}: add {value}.txt.j2 (and optionally "
                     f"{value}.html.j2) to the templates directory next to maild.yaml")
        return None
    return value

