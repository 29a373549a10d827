"""The validated ruleset: frozen values built by `rules/load.py`, read by the engine.

Version 1 holds the queues. Teams, agents, rules, SLA policies and calendars join as new
frozen fields here and new sections in the loader.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Queue:
    name: str        # identifier from rules.yaml: [a-z0-9][a-z0-9_-]*
    address: str     # the support address that feeds this queue, as written in the file


@dataclass(frozen=True)
class Ruleset:
    version: int
    queues: tuple[Queue, ...]          # in file order; the first one is the default queue
    _by_address: dict[str, Queue] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.queues:
            raise ValueError("a ruleset needs at least one queue")
        object.__setattr__(self, "_by_address",
                           {q.address.lower(): q for q in reversed(self.queues)})

    def queue_for_address(self, address: str) -> Queue | None:
        """The queue that receives mail sent to `address` (case-insensitive), or None."""
        return self._by_address.get(address.strip().lower())

    @property
    def addresses(self) -> frozenset[str]:
        """Every queue address, lower-cased: the recipients maild accepts mail for."""
        return frozenset(self._by_address)

    @property
    def default_queue(self) -> Queue:
        """The first queue of the file: where mail goes that no rule and no address routes."""
        return self.queues[0]
