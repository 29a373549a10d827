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

import difflib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator

from rules.model import Agent, Queue, Ruleset, Team
from rules.source import (Address, ConfigError, KeyPath, Locator, StrictModel, load_yaml,
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


class _Team(StrictModel):
    members: Annotated[list[Address], AfterValidator(_some_members)]


class _Queue(StrictModel):
    address: Address
    team: TeamName | None = None


class _RulesFile(StrictModel):
    version: Annotated[int, AfterValidator(_version)]
    agents: list[_Agent] | None = None          # an empty `agents:` means none
    teams: dict[TeamName, _Team] | None = None
    queues: Annotated[dict[QueueName, _Queue], AfterValidator(_some_queues)]


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
    teams = tuple(doc.teams or ())
    for name, queue in doc.queues.items():
        if queue.team is not None and queue.team not in teams:
            guess = difflib.get_close_matches(queue.team, teams, n=1)
            hint = (f"; did you mean {guess[0]!r}?" if guess else "") + (
                f" (teams: {', '.join(teams)})" if teams else " (no teams are defined)")
            yield ("queues", name, "team"), f"no team {queue.team!r}{hint}"


CHECKS: tuple[Callable[[_RulesFile], Iterator[tuple[KeyPath, str]]], ...] = (
    _agent_addresses,
    _team_members,
    _queue_teams,
    _unique_addresses,
)


def _primary_addresses(doc: _RulesFile) -> dict[str, str]:
    """Every agent address and alias, lower-cased -> the agent's primary address (the first
    agent that claims an address keeps it)."""
    primary: dict[str, str] = {}
    for agent in doc.agents or ():
        for address in (agent.address, *agent.aliases):
            primary.setdefault(address.lower(), agent.address.lower())
    return primary


def load_rules(path: Path) -> Ruleset:
    """Read and validate rules.yaml; raise ConfigError naming every problem found."""
    data, locator = load_yaml(path)
    doc = validate(_RulesFile, data, locator, path)
    _check(doc, locator, path)
    ruleset = _build(doc)
    log.debug("loaded %s: %d queue(s), %d agent(s), %d team(s)", path, len(ruleset.queues),
              len(ruleset.agents), len(ruleset.teams))
    return ruleset


def _check(doc: _RulesFile, locator: Locator, path: Path) -> None:
    problems = [problem_at(path, locator, key, message)
                for check in CHECKS for key, message in check(doc)]
    if problems:
        raise ConfigError(problems)


def _build(doc: _RulesFile) -> Ruleset:
    primary = _primary_addresses(doc)
    return Ruleset(
        version=doc.version,
        queues=tuple(Queue(name, q.address, q.team) for name, q in doc.queues.items()),
        agents=tuple(Agent(a.address, a.name, tuple(a.aliases)) for a in doc.agents or ()),
        teams=tuple(Team(name, tuple(primary[m.lower()] for m in t.members))
                    for name, t in (doc.teams or {}).items()),
    )
