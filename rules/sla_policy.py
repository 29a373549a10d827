"""The `sla:` section of rules.yaml → `SlaPolicy` values, or every problem with its key path.

    policy, problems = parse_policy("standard", data, ("sla", "standard"),
                                    calendars={"office"}, templates={"sla_warning", ...})

Each policy::

    standard:
      calendar: office               # optional: a calendar of `calendars:`; none = 24/7 UTC
      targets:                       # required: per priority, at least one clock each
        urgent: {first_response: 1h, resolution: 4h}
        normal: {first_response: 8h, next_response: 8h, resolution: 5d}
      escalations:                   # optional, any order
        - {at: 80%, notify: [assignee], template: sla_warning}
        - {at: breach, notify: [assignee, team], template: sla_breach}
        - {at: breach+2h, notify: [manager@example.com], template: sla_breach,
           clocks: [resolution], only_in_business_hours: true}
      only_in_business_hours: false  # optional default for every escalation
      notify_calendar: office        # optional: whose hours only_in_business_hours means
                                     # (default: the policy's calendar)

Clocks: ``first_response`` (until the first public agent reply), ``next_response`` (from
each customer reply to the agents' answer), ``resolution``.  Durations are
`rules.durations` (``8h`` business hours, ``5d`` business days).  A priority without
targets has no SLA clocks.  ``at``: ``N%`` of a target consumed (1-99), ``breach``, or
``breach+DURATION`` after it.  ``notify``: ``assignee``, ``team`` (the queue's team), or
addresses.  ``only_in_business_hours``: a step that falls due while ``notify_calendar``
(default: ``calendar``) is closed waits for its next opening; useful above all for a
policy counted around the clock whose mails should wait for the office.  Which tickets use a policy: a queue's ``sla:`` or a rule's ``sla:`` action.
The clocks themselves are kept by the SLA engine.
"""
from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from rules.durations import Duration, parse_duration
from rules.model import PRIORITIES
from rules.source import KeyPath, check_address, describe, did_you_mean, not_one_of

Problem = tuple[KeyPath, str]

CLOCKS = ("first_response", "next_response", "resolution")
ROLES = ("assignee", "team")
POLICY_KEYS = ("calendar", "targets", "escalations", "only_in_business_hours", "notify_calendar")
ESCALATION_KEYS = ("at", "notify", "template", "clocks", "only_in_business_hours")
_PERCENT = re.compile(r"(\d{1,2})\s*%")
_AFTER_BREACH = re.compile(r"breach\s*(?:\+\s*(.+))?")


@dataclass(frozen=True)
class Escalation:
    percent: int | None                  # at N% consumed; None: at breach (+ after)
    after: Duration | None               # after the breach (None: at it, or a percent)
    notify: tuple[str, ...]              # 'assignee', 'team' or lower-cased addresses
    template: str
    clocks: tuple[str, ...] = CLOCKS
    only_in_business_hours: bool = False

    def __str__(self) -> str:
        if self.percent is not None:
            return f"{self.percent}%"
        return f"breach+{self.after}" if self.after else "breach"


@dataclass(frozen=True)
class SlaPolicy:
    name: str
    calendar: str | None                                  # None: around the clock, UTC
    targets: tuple[tuple[str, tuple[tuple[str, Duration], ...]], ...]   # priority -> clock -> target
    escalations: tuple[Escalation, ...] = ()
    notify_calendar: str | None = None      # hours of only_in_business_hours (None: calendar)

    def target(self, priority: str, clock: str) -> Duration | None:
        for name, clocks in self.targets:
            if name == priority:
                return dict(clocks).get(clock)
        return None


def parse_policy(name: str, data: Any, path: KeyPath, *, calendars: Collection[str],
                 templates: Collection[str] | None = None) -> tuple[SlaPolicy | None, list[Problem]]:
    problems: list[Problem] = []
    if not isinstance(data, dict):
        return None, [(path, f"expected a policy (calendar, targets, escalations), got {describe(data)}")]
    for key in data:
        if key not in POLICY_KEYS:
            problems.append(((*path, key), not_one_of(key, POLICY_KEYS, "key")))
    calendar = data.get("calendar")
    if calendar is not None and (not isinstance(calendar, str) or calendar not in calendars):
        problems.append(((*path, "calendar"), _missing("calendar", calendar, calendars, "calendars:")))
    notify_calendar = data.get("notify_calendar")
    if notify_calendar is not None and (not isinstance(notify_calendar, str)
                                        or notify_calendar not in calendars):
        problems.append(((*path, "notify_calendar"),
                         _missing("calendar", notify_calendar, calendars, "calendars:")))
    default_bh = data.get("only_in_business_hours", False)
    if not isinstance(default_bh, bool):
        problems.append(((*path, "only_in_business_hours"), f"expected true or false, got {describe(default_bh)}"))
        default_bh = False
    targets = _targets(data.get("targets"), (*path, "targets"), problems)
    escalations = []
    raw = data.get("escalations", [])
    if not isinstance(raw, list):
        problems.append(((*path, "escalations"), f"expected a list of escalations, got {describe(raw)}"))
        raw = []
    for i, entry in enumerate(raw):
        step = _escalation(entry, (*path, "escalations", i), default_bh, templates, problems)
        if step is not None:
            escalations.append(step)
    if problems:
        return None, problems
    return SlaPolicy(name, calendar, targets, tuple(escalations), notify_calendar), []


def _targets(data: Any, path: KeyPath, problems: list[Problem]):
    if data is None:
        problems.append((path[:-1], "the key 'targets' is missing; e.g. targets: "
                                    "{normal: {first_response: 8h, resolution: 5d}}"))
        return ()
    if not isinstance(data, dict) or not data:
        problems.append((path, f"expected targets per priority ({', '.join(PRIORITIES)}), got {describe(data)}"))
        return ()
    out = []
    for priority, clocks in data.items():
        where = (*path, priority)
        if priority not in PRIORITIES:
            problems.append((where, not_one_of(priority, PRIORITIES, "priority")))
            continue
        if not isinstance(clocks, dict) or not clocks:
            problems.append((where, f"expected at least one of {', '.join(CLOCKS)}, got {describe(clocks)}"))
            continue
        parsed = []
        for clock, value in clocks.items():
            if clock not in CLOCKS:
                problems.append(((*where, clock), not_one_of(clock, CLOCKS, "clock")))
                continue
            try:
                parsed.append((clock, parse_duration(value)))
            except ValueError as exc:
                problems.append(((*where, clock), str(exc)))
        out.append((priority, tuple(parsed)))
    return tuple(out)


def _escalation(entry: Any, path: KeyPath, default_bh: bool, templates, problems) -> Escalation | None:
    if not isinstance(entry, dict):
        problems.append((path, f"expected an escalation {{at, notify, template}}, got {describe(entry)}"))
        return None
    before = len(problems)
    for key in entry:
        if key not in ESCALATION_KEYS:
            problems.append(((*path, key), not_one_of(key, ESCALATION_KEYS, "key")))
    for key in ("at", "notify", "template"):
        if key not in entry:
            problems.append((path, f"the key {key!r} is missing"))
    percent, after = None, None
    at = entry.get("at")
    if at is not None:
        text = str(at).strip() if isinstance(at, str) else None
        percent_match = _PERCENT.fullmatch(text) if text else None
        breach_match = _AFTER_BREACH.fullmatch(text) if text else None
        if percent_match and 1 <= int(percent_match[1]) <= 99:
            percent = int(percent_match[1])
        elif breach_match:
            if breach_match[1]:
                try:
                    after = parse_duration(breach_match[1])
                except ValueError as exc:
                    problems.append(((*path, "at"), str(exc)))
        else:
            problems.append(((*path, "at"), f"expected N% (1-99), breach or breach+DURATION "
                                            f"(like breach+2h), got {describe(at)}"))
    notify = []
    raw = entry.get("notify")
    if raw is not None:
        items = raw if isinstance(raw, list) else [raw]
        if not items:
            problems.append(((*path, "notify"), "say whom to notify: assignee, team or addresses"))
        for j, who in enumerate(items):
            where = (*path, "notify", j) if isinstance(raw, list) else (*path, "notify")
            if who in ROLES:
                notify.append(who)
            elif isinstance(who, str) and _is_address(who):
                notify.append(who.strip().lower())
            else:
                problems.append((where, f"expected assignee, team or an address, got {describe(who)}"))
    template = entry.get("template")
    if template is not None and (not isinstance(template, str)
                                 or (templates is not None and template not in templates)):
        problems.append(((*path, "template"), _missing("template", template, templates or (), "")))
    clocks = entry.get("clocks", list(CLOCKS))
    if not isinstance(clocks, list) or not clocks or any(c not in CLOCKS for c in clocks):
        problems.append(((*path, "clocks"), f"expected a list of {', '.join(CLOCKS)}, got {describe(clocks)}"))
    bh = entry.get("only_in_business_hours", default_bh)
    if not isinstance(bh, bool):
        problems.append(((*path, "only_in_business_hours"), f"expected true or false, got {describe(bh)}"))
    if len(problems) > before:
        return None
    return Escalation(percent, after, tuple(notify), template, tuple(clocks), bh)


def _missing(kind: str, value: Any, known: Collection[str], section: str) -> str:
    if not isinstance(value, str):
        return f"expected a {kind} name, got {describe(value)}"
    hint = did_you_mean(value, known)
    listed = f" ({kind}s: {', '.join(sorted(known))})" if known else (
        f" (no {kind}s are defined under {section})" if section else "")
    return f"no {kind} {value!r}{hint}{listed}"


def _is_address(value: str) -> bool:
    try:
        check_address(value.strip())
    except ValueError:
        return False
    return True
