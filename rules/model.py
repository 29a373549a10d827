"""The validated ruleset: frozen values built by `rules/load.py`, read by the engine.

A `Ruleset` holds the queues, the agents and teams, the contacts, the business calendars,
the names of the SLA policies, and the routing `Rule`s in file order (each a compiled
condition from `rules.conditions` and its `Actions`).

Addresses of agents and team members are lower-cased on construction, so every lookup
here compares case-insensitively. A `Ruleset` refuses (ValueError) what the loader would
refuse across sections, so a hand-built one in a test is consistent too: a queue's team
must be defined, a team's members must be agents, no address may belong to two agents.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rules.facts import Contact

# assignment kinds: `assign: alice@example.com`, `{round_robin: TEAM}`, `{least_open: TEAM}`
AGENT, ROUND_ROBIN, LEAST_OPEN = "agent", "round_robin", "least_open"
TEAM_POLICIES = (ROUND_ROBIN, LEAST_OPEN)
PRIORITIES = ("low", "normal", "high", "urgent")      # as store.models.PRIORITIES


@dataclass(frozen=True)
class Agent:
    address: str                       # primary address, lower-cased
    name: str                          # display name, as written ("Alice Agent")
    aliases: tuple[str, ...] = ()      # other addresses that are the same agent, lower-cased
    available: bool = True             # False: away; round robin and least-open skip them

    def __post_init__(self) -> None:
        object.__setattr__(self, "address", _norm(self.address))
        object.__setattr__(self, "aliases", tuple(_norm(a) for a in self.aliases))

    @property
    def addresses(self) -> tuple[str, ...]:
        """The primary address, then the aliases."""
        return (self.address, *self.aliases)

    @property
    def local_part(self) -> str:
        """'alice' for alice@example.com."""
        return self.address.rpartition("@")[0]


@dataclass(frozen=True)
class Team:
    name: str                          # identifier from rules.yaml, like a queue name
    members: tuple[str, ...]           # agents' primary addresses, lower-cased, file order
    assign: str | None = None          # ROUND_ROBIN | LEAST_OPEN: new tickets of its queues

    def __post_init__(self) -> None:
        object.__setattr__(self, "members", tuple(_norm(m) for m in self.members))


@dataclass(frozen=True)
class Queue:
    name: str            # identifier from rules.yaml: [a-z0-9][a-z0-9_-]*
    address: str         # the support address that feeds this queue, as written in the file
    team: str | None = None   # the team that works this queue; None: every agent
    sla: str | None = None    # the SLA policy of its tickets, unless a rule chose one


@dataclass(frozen=True)
class Assign:
    """Who gets a new ticket: one agent, or a team's turn (round robin, fewest open)."""
    kind: str            # AGENT | ROUND_ROBIN | LEAST_OPEN
    target: str          # the agent's primary address, or the team's name

    def __str__(self) -> str:
        return self.target if self.kind == AGENT else f"{self.kind} over team {self.target}"


@dataclass(frozen=True)
class Actions:
    """What a rule's `then:` sets; None (or empty) leaves the field to later rules/defaults."""
    queue: str | None = None
    priority: str | None = None
    assign: Assign | None = None
    tags: tuple[str, ...] = ()
    sla: str | None = None
    auto_reply: str | bool | None = None    # a template name, False: none, None: unchanged
    discard: bool = False
    stop: bool = False


@dataclass(frozen=True)
class Rule:
    name: str
    when: Any                  # a compiled rules.conditions.Condition
    then: Actions
    on_reply: bool = False     # `on: reply`: also applies to mail that answers a ticket
    line: int = 0              # where the rule starts in the file (for explanations)

    @property
    def stop(self) -> bool:
        return self.then.stop


@dataclass(frozen=True)
class Ruleset:
    version: int
    queues: tuple[Queue, ...]          # in file order; the first one is the default queue
    agents: tuple[Agent, ...] = ()     # in file order
    teams: tuple[Team, ...] = ()       # in file order
    rules: tuple[Rule, ...] = ()       # in file order
    contacts: tuple[Contact, ...] = ()
    calendars: tuple[Any, ...] = ()    # rules.calendar.Calendar, in file order
    sla_policies: tuple[Any, ...] = () # SLA policies (names are what rules may refer to)
    source: str = ""                   # the file it was loaded from ('' when built in code)
    _by_address: dict[str, Queue] = field(init=False, repr=False, compare=False)
    _agent_by_address: dict[str, Agent] = field(init=False, repr=False, compare=False)
    _queue_by_name: dict[str, Queue] = field(init=False, repr=False, compare=False)
    _team_by_name: dict[str, Team] = field(init=False, repr=False, compare=False)
    _contact_by_address: dict[str, Contact] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.queues:
            raise ValueError("a ruleset needs at least one queue")
        agents: dict[str, Agent] = {}
        for agent in self.agents:
            for address in agent.addresses:
                if address in agents:
                    raise ValueError(f"address {address} belongs to two agents")
                agents[address] = agent
        teams = {t.name: t for t in self.teams}
        for team in self.teams:
            for member in team.members:
                if agents.get(member) is None or agents[member].address != member:
                    raise ValueError(f"team {team.name!r}: {member} is not an agent's address")
        for queue in self.queues:
            if queue.team is not None and queue.team not in teams:
                raise ValueError(f"queue {queue.name!r}: no team {queue.team!r}")
        object.__setattr__(self, "_by_address",
                           {q.address.lower(): q for q in reversed(self.queues)})
        object.__setattr__(self, "_agent_by_address", agents)
        object.__setattr__(self, "_queue_by_name", {q.name: q for q in self.queues})
        object.__setattr__(self, "_team_by_name", teams)
        object.__setattr__(self, "_contact_by_address",
                           {_norm(c.address): c for c in reversed(self.contacts)})

    # --- queues ---------------------------------------------------------------------------

    def queue_for_address(self, address: str) -> Queue | None:
        """The queue that receives mail sent to `address` (case-insensitive; with a
        +detail, billing+vip@example.com is billing@example.com), or None."""
        address = _norm(address)
        found = self._by_address.get(address)
        if found is None and "+" in address.partition("@")[0]:
            local, _, domain = address.partition("@")
            found = self._by_address.get(f"{local.split('+', 1)[0]}@{domain}")
        return found

    @property
    def addresses(self) -> frozenset[str]:
        """Every queue address, lower-cased: the recipients maild accepts mail for."""
        return frozenset(self._by_address)

    @property
    def default_queue(self) -> Queue:
        """The first queue of the file: where mail goes that no rule and no address routes."""
        return self.queues[0]

    def queue(self, name: str) -> Queue | None:
        """The queue called `name`, or None."""
        return self._queue_by_name.get(name)

    def contact(self, address: str) -> Contact | None:
        """The `contacts:` entry for `address` (case-insensitive), or None."""
        return self._contact_by_address.get(_norm(address))

    def calendar(self, name: str):
        """The business calendar called `name`, or None."""
        return next((c for c in self.calendars if c.name == name), None)

    def sla_policy(self, name: str | None):
        """The SLA policy called `name`, or None."""
        return next((p for p in self.sla_policies if p.name == name), None) if name else None

    # --- agents and teams -----------------------------------------------------------------

    def team(self, name: str) -> Team | None:
        """The team called `name`, or None."""
        return self._team_by_name.get(name)

    def agent_for(self, address: str) -> Agent | None:
        """The agent whose address or alias is `address` (case-insensitive), or None.

        This says who an address *claims* to be; whether a mail from it really comes from
        the agent is the trust policy's question (DESIGN §5)."""
        return self._agent_by_address.get(_norm(address))

    @property
    def agent_addresses(self) -> frozenset[str]:
        """Every agent address and alias, lower-cased."""
        return frozenset(self._agent_by_address)

    def agents_for_queue(self, queue_name: str) -> tuple[Agent, ...]:
        """The agents who work `queue_name`: its team's members in the team's order; every
        agent (file order) when the queue has no team, or when no queue has that name any
        more (a ticket's queue removed by a rules reload stays someone's)."""
        queue = self.queue(queue_name)
        if queue is None or queue.team is None:
            return self.agents
        return tuple(self._agent_by_address[m] for m in self._team_by_name[queue.team].members)

    def available_members(self, team_name: str) -> tuple[Agent, ...]:
        """The team's members who are not away (`available: false`), in the team's order."""
        team = self.team(team_name)
        if team is None:
            return ()
        return tuple(a for a in (self._agent_by_address[m] for m in team.members) if a.available)

    def match_agents(self, text: str) -> tuple[Agent, ...]:
        """The agents `text` names, as in `#assign <text>`; file order.

        Tried in turn, the first kind that matches anything wins:
        1. an address or alias, exactly (case-insensitive; <angle brackets> allowed);
        2. the full name, case-insensitive, spaces collapsed ('alice  agent');
        3. the local part of the primary address ('alice' for alice@example.com);
        4. the first word of the name ('Alice').
        The caller acts only on exactly one match: () is "nobody", two or more are
        ambiguous (and name the candidates)."""
        wanted = " ".join(text.strip().strip("<>").split()).casefold()
        if not wanted:
            return ()
        agent = self.agent_for(wanted)
        if agent is not None:
            return (agent,)
        kinds = (
            lambda a: " ".join(a.name.split()).casefold() == wanted,
            lambda a: a.local_part == wanted,
            lambda a: (a.name.split() or [""])[0].casefold() == wanted,
        )
        for matches in kinds:
            found = tuple(a for a in self.agents if matches(a))
            if found:
                return found
        return ()


def _norm(address: str) -> str:
    return address.strip().lower()
