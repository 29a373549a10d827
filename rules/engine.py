"""Evaluate the ruleset for one message and return a `Decision` (pure; no I/O).

This first version routes by the receiving address: the queue whose address the mail
arrived for, else the first queue; priority `normal`; an acknowledgement unless the mail
is automatic.  The rules language of DESIGN §6 extends `evaluate` without changing its
signature.
"""
from __future__ import annotations

from dataclasses import dataclass

from rules.model import Ruleset


@dataclass(frozen=True)
class Facts:
    """What the rules may look at, extracted from a parsed message and its envelope."""
    recipient: str
    from_address: str
    subject: str
    is_reply: bool
    automatic: bool


@dataclass(frozen=True)
class Decision:
    queue: str
    priority: str = "normal"
    auto_reply: bool = True
    explanation: tuple[str, ...] = ()


def evaluate(ruleset: Ruleset, facts: Facts) -> Decision:
    queue = ruleset.queue_for_address(facts.recipient)
    why = [f"queue {queue.name}: arrived for {queue.address}"] if queue else []
    if queue is None:
        queue = ruleset.default_queue
        why.append(f"queue {queue.name}: default (no queue has {facts.recipient})")
    auto_reply = not facts.automatic
    if facts.automatic:
        why.append("no acknowledgement: automatic mail")
    return Decision(queue=queue.name, auto_reply=auto_reply, explanation=tuple(why))
