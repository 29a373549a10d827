"""rules.yaml -> `Ruleset`, or `ConfigError` listing every problem with file:line:column.

The file, version 1::

    version: 1                     # required; this maild reads version 1
    agents:                        # optional; who may act on tickets by mail
      - {address: alice@example.com, name: Alice Agent, aliases: [alice@corp.example.com]}
      - {address: bob@example.com, name: Bob Builder}
    teams:                         # optional; groups of agents that work queues
      l1: {members: [alice@example.com, bob@example.com]}
    queues:                        # required, at least one; the first is the default queue
      general: {address: support@example.com, team: l1}
      billing: {address: billing@example.com}

``agents`` (optional; a list, in the order maild shows them)
    ``address`` (required): the agent's primary address, a bare ``local@domain``.
    ``name`` (required): how tickets show the agent, one line.
    ``aliases`` (optional): other addresses the agent writes from; mail from any of them
    is the same agent. No address (primary or alias) may belong to two agents or be a
    queue's address (compared case-insensitively). Whether a mail from an agent address
    really comes from the agent is maild.yaml's ``trust`` policy (DESIGN §5).
    ``#assign TEXT`` at the top of an agent's mail names the assignee by address or alias,
    else by full name, else by the local part of the address (``alice``), else by the
    first word of the name (``Alice``); it must name exactly one agent.
``teams`` (optional; a mapping of team name to team)
    ``members`` (required, at least one): agents, by address (an alias stands for its
    agent), each once.
``queues`` (required, at least one; a mapping of queue name to queue)
    ``address`` (required): the support address that feeds the queue; each address
    belongs to one queue only. ``team`` (optional): the team that works the queue; a
    queue without a team is worked by every agent.

Queue and team names are lower-case identifiers (letters, digits, '-', '_'; starting with
a letter or digit). Addresses are compared case-insensitively. Unknown keys are refused
at every level.

Loading runs in three steps: parse with positions (`rules.source.load_yaml`), check the
shape of each section (the pydantic models below, all errors at once), then the checks
that span sections (`CHECKS`, each yields (key path, message)). To add a section: a field
on `_RulesFile`, a model for its entries, its checks in `CHECKS`, and its frozen form in
`rules/model.py` built by `_build`.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator

from rules.calendar import parse_calendar
from rules.facts import Contact
from rules.model import Agent, Queue, Ruleset, Team
from rules.routing import Names, compile_rules
from rules.sla_policy import parse_policy
from rules.source import (Address, ConfigError, KeyPath, StrictModel, did_you_mean, load_yaml,
                          problem_at, validate)

log = logging.getLogger(__name__)

SUPPORTED_VERSION = 1


def _version(value: int) -> int:
    if value != SUPPORTED_VERSION:
        raise ValueError(f"unsupported version {value}; this maild reads version "
                         f"{SUPPORTED_VERSION}")
    return value


def _identifier(kind: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        if not value or not (value[0].isascii() and value[0].isalnum()) \
                or value.lower() != value \
                or not all(c.isascii() and (c.isalnum() or c in "-_") for c in value):
            raise ValueError(f"a {kind} name is lower-case letters, digits, '-' and '_', "
                             f"starting with a letter or digit; got {value!r}")
        return value
    return check


def _some_queues(value: dict) -> dict:
    if not value:
        raise ValueError("define at least one queue, e.g. general: {address: support@example.com}")
    return value


def _some_members(value: list) -> list:
    if not value:
        raise ValueError("a team needs at least one member, e.g. members: [alice@example.com]")
    return value


def _one_line(value: str) -> str:
    if not value.strip() or any(c in value for c in "\r\n"):
        raise ValueError("expected a one-line, non-empty name")
    return value.strip()


QueueName = Annotated[str, AfterValidator(_identifier("queue"))]
TeamName = Annotated[str, AfterValidator(_identifier("team"))]


class _Agent(StrictModel):
    address: Address
    name: Annotated[str, AfterValidator(_one_line)]
    aliases: list[Address] = []
    available: bool = True


class _Team(StrictModel):
    members: Annotated[list[Address], AfterValidator(_some_members)]
    assign: Literal["round_robin", "least_open"] | None = None


class _Queue(StrictModel):
    address: Address
    team: TeamName | None = None
    sla: str | None = None


class _Contact(StrictModel):
    address: Address
    name: str = ""
    org: str = ""
    tier: str = ""


class _RulesFile(StrictModel):
    version: Annotated[int, AfterValidator(_version)]
    agents: list[_Agent] | None = None          # an empty `agents:` means none
    teams: dict[TeamName, _Team] | None = None
    queues: Annotated[dict[QueueName, _Queue], AfterValidator(_some_queues)]
    contacts: list[_Contact] | None = None
    calendars: dict[str, Any] | None = None     # each checked by rules.calendar
    sla: dict[str, Any] | None = None           # each checked by rules.sla_policy
    rules: list[Any] | None = None              # each checked by rules.routing


# --- checks across entries: each yields (key path, message) -----------------------------

def _unique_addresses(doc: _RulesFile) -> Iterator[tuple[KeyPath, str]]:
    owner: dict[str, str] = {}
    for name, queue in doc.queues.items():
        key = queue.address.lower()
        if key in owner:
            yield (("queues", name, "address"),
                   f"address {queue.address} already belongs to queue {owner[key]!r}")
        else:
            owner[key] = name


def _agent_addresses(doc: _RulesFile) -> Iterator[tuple[KeyPath, str]]:
    """Each agent address or alias belongs to one agent and is no queue's address."""
    queues = {q.address.lower(): name for name, q in doc.queues.items()}
    owner: dict[str, int] = {}
    for i, agent in enumerate(doc.agents or ()):
        written = [(("agents", i, "address"), agent.address)]
        written += [(("agents", i, "aliases", j), a) for j, a in enumerate(agent.aliases)]
        for path, address in written:
            key = address.lower()
            if key in queues:
                yield path, (f"{address} is the address of queue {queues[key]!r}; an agent "
                             "needs an address of their own")
            elif key in owner:
                first = doc.agents[owner[key]]
                whose = ("this agent" if owner[key] == i
                         else f"agent {first.name!r} (agents[{owner[key]}])")
                yield path, f"address {address} already belongs to {whose}"
            else:
                owner[key] = i


def _team_members(doc: _RulesFile) -> Iterator[tuple[KeyPath, str]]:
    """Members are defined agents (an alias stands for its agent), each once per team."""
    primary = _primary_addresses(doc)
    for name, team in (doc.teams or {}).items():
        seen: dict[str, str] = {}
        for j, member in enumerate(team.members):
            path = ("teams", name, "members", j)
            agent = primary.get(member.lower())
            if agent is None:
                yield path, f"{member} is not an agent; add it under agents: first"
            elif agent in seen:
                yield path, f"{member} is already a member ({seen[agent]})"
            else:
                seen[agent] = member


def _queue_teams(doc: _RulesFile) -> Iterator[tuple[KeyPath, str]]:
    return _queue_references(doc, "team", tuple(doc.teams or ()), "team", "teams",
                             "no teams are defined")


def _queue_policies(doc: _RulesFile) -> Iterator[tuple[KeyPath, str]]:
    return _queue_references(doc, "sla", tuple(doc.sla or ()), "SLA policy", "policies",
                             "no sla: policies are defined")


def _queue_references(doc: _RulesFile, key: str, known: tuple[str, ...], kind: str,
                      kinds: str, none: str) -> Iterator[tuple[KeyPath, str]]:
    """A queue's `team:` / `sla:` names something the file defines."""
    for name, queue in doc.queues.items():
        wanted = getattr(queue, key)
        if wanted is not None and wanted not in known:
            hint = did_you_mean(wanted, known) + (
                f" ({kinds}: {', '.join(known)})" if known else f" ({none})")
            yield ("queues", name, key), f"no {kind} {wanted!r}{hint}"


def _unique_contacts(doc: _RulesFile) -> Iterator[tuple[KeyPath, str]]:
    seen: dict[str, int] = {}
    for i, contact in enumerate(doc.contacts or ()):
        key = contact.address.lower()
        if key in seen:
            yield ("contacts", i, "address"), f"{contact.address} is already contacts[{seen[key]}]"
        else:
            seen[key] = i


CHECKS: tuple[Callable[[_RulesFile], Iterator[tuple[KeyPath, str]]], ...] = (
    _agent_addresses,
    _team_members,
    _queue_teams,
    _queue_policies,
    _unique_addresses,
    _unique_contacts,
)


def _primary_addresses(doc: _RulesFile) -> dict[str, str]:
    """Every agent address and alias, lower-cased -> the agent's primary address (the first
    agent that claims an address keeps it)."""
    primary: dict[str, str] = {}
    for agent in doc.agents or ():
        for address in (agent.address, *agent.aliases):
            primary.setdefault(address.lower(), agent.address.lower())
    return primary


def load_rules(path: Path, *, templates: frozenset[str] | None = None) -> Ruleset:
    """Read and validate rules.yaml; raise ConfigError naming every problem found.

    `templates`: the template names an `auto_reply:` may use (None: not checked).  Every
    section is checked even when another has errors, so one run reports them all."""
    data, locator = load_yaml(path)
    problems = []
    try:
        doc = validate(_RulesFile, data, locator, path)
    except ConfigError as exc:
        doc, problems = None, list(exc.problems)
    raw = data if isinstance(data, dict) else {}
    calendars, found = _sections(raw, "calendars", parse_calendar)
    calendar_names = frozenset(raw["calendars"]) if isinstance(raw.get("calendars"), dict) else ()
    policies, more = _sections(raw, "sla", lambda name, entry, key: parse_policy(
        name, entry, key, calendars=calendar_names, templates=templates))
    rules, most = compile_rules(raw.get("rules"), _names(raw, templates, calendars, policies),
                                where=locator.where)
    problems += [problem_at(path, locator, key, message) for key, message in (*found, *more, *most)]
    if doc is not None:
        problems += [problem_at(path, locator, key, message)
                     for check in CHECKS for key, message in check(doc)]
    if problems:
        raise ConfigError(problems)
    ruleset = _build(doc, rules, calendars, policies, str(path))
    log.debug("loaded %s: %d queue(s), %d agent(s), %d team(s), %d rule(s)", path,
              len(ruleset.queues), len(ruleset.agents), len(ruleset.teams), len(ruleset.rules))
    return ruleset


def _sections(raw: dict, section: str, parse) -> tuple[tuple, list[tuple[KeyPath, str]]]:
    """Parse each entry of a name -> entry section with `parse(name, entry, key path)`."""
    entries = raw.get(section)
    if not isinstance(entries, dict):
        return (), []
    built, problems = [], []
    for name, entry in entries.items():
        value, found = parse(str(name), entry, (section, name))
        problems.extend(found)
        if value is not None and not found:
            built.append(value)
    return tuple(built), problems


def _names(raw: dict, templates, calendars, policies) -> Names:
    """What exists in the file, read from the raw data (robust to errors elsewhere)."""
    def keys(section: str) -> frozenset[str]:
        value = raw.get(section)
        return frozenset(str(k) for k in value) if isinstance(value, dict) else frozenset()

    agents: dict[str, str] = {}
    for agent in raw.get("agents") or ():
        if isinstance(agent, dict) and isinstance(agent.get("address"), str):
            primary = agent["address"].strip().lower()
            aliases = agent.get("aliases") if isinstance(agent.get("aliases"), list) else []
            for address in (primary, *aliases):
                if isinstance(address, str):
                    agents.setdefault(address.strip().lower(), primary)
    # a calendar with problems of its own still exists for the rules that name it (the
    # file is refused anyway; "no calendar 'office'" on top would send the admin astray)
    named = {name: _UNUSABLE for name in keys("calendars")} | {c.name: c for c in calendars}
    return Names(queues=keys("queues"), teams=keys("teams"), agents=agents,
                 policies=keys("sla"), templates=templates, calendars=named)


class _Unusable:
    """Stands for a calendar that failed to load; never evaluated (the load fails)."""

    def is_open(self, at) -> bool:
        raise RuntimeError("a calendar with errors was used")


_UNUSABLE = _Unusable()


def _build(doc: _RulesFile, rules, calendars, policies, source: str) -> Ruleset:
    primary = _primary_addresses(doc)
    return Ruleset(
        version=doc.version,
        queues=tuple(Queue(name, q.address, q.team, q.sla) for name, q in doc.queues.items()),
        agents=tuple(Agent(a.address, a.name, tuple(a.aliases), a.available)
                     for a in doc.agents or ()),
        teams=tuple(Team(name, tuple(primary[m.lower()] for m in t.members), t.assign)
                    for name, t in (doc.teams or {}).items()),
        rules=rules,
        contacts=tuple(Contact(c.address.lower(), c.name, c.org, c.tier) for c in doc.contacts or ()),
        calendars=calendars,
        sla_policies=policies,
        source=source,
    )
