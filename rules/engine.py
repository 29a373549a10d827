"""Evaluate the routing rules for one message: a `Decision`, and on demand why (pure; no I/O).

    routing = route(ruleset, facts)                 # the pipeline: new ticket and reply
    decision = evaluate(ruleset, facts)             # one case (facts.is_reply says which)
    decision, trace = explain(ruleset, facts)       # `maild rules test`: every rule, and why

How a decision is made (DESIGN §6, docs/rules.md):

1. Rules run in file order.  For mail that opens a ticket every rule runs; for mail that
   answers a ticket (`facts.is_reply`) only the rules marked `on: reply`.
2. A matching rule's actions are merged into what earlier rules set: a later rule's
   queue, priority, assignee, SLA policy and auto-reply replace earlier ones, tags add
   up, `discard` stays once set.  `stop: true` on a matching rule ends the evaluation.
3. What no rule set comes from the defaults of a new ticket: the queue whose address the
   mail arrived for (else the first queue), priority normal, the queue's SLA policy, the
   queue's team's `assign:` policy, and the `ack` acknowledgement — none for automatic
   mail.  Discarded mail gets no acknowledgement and no assignee.

`Decision.changes` is the merge of step 2 alone: on a reply, that is all that is applied
(a reply keeps its ticket's queue unless a rule moves it).  `explain` gives the same
decision plus a `RuleTrace` per rule: matched or not, the condition that decided, or why
it was not looked at.  `evaluate` takes the fast path (no explanation strings).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from rules.facts import Facts
from rules.model import Actions, Assign, Ruleset

DEFAULT_TEMPLATE = "ack"
MATCHED, MISSED, SKIPPED = "matched", "not matched", "skipped"


@dataclass(frozen=True)
class Decision:
    queue: str
    priority: str = "normal"
    auto_reply: bool = True
    template: str = DEFAULT_TEMPLATE          # the acknowledgement's template
    assign: Assign | None = None
    tags: tuple[str, ...] = ()
    sla: str | None = None
    discard: bool = False
    matched: tuple[str, ...] = ()             # names of the rules that matched, in order
    explanation: tuple[str, ...] = ()         # why each field has its value
    changes: Actions = field(default_factory=Actions)   # what the matched rules set


@dataclass(frozen=True)
class RuleTrace:
    name: str
    line: int
    outcome: str              # MATCHED | MISSED | SKIPPED
    reason: str               # the deciding condition, or why the rule was skipped


@dataclass(frozen=True)
class Routing:
    """The decision for each way the mail may be threaded; the store knows which applies."""
    new: Decision                       # it opens a ticket
    reply: Decision | None = None       # it answers a ticket (None: it can't, no references)


def route(ruleset: Ruleset, facts: Facts, *, may_be_reply: bool) -> Routing:
    """Both decisions: as a new ticket and, when the mail refers to anything, as a reply."""
    new = evaluate(ruleset, replace(facts, is_reply=False))
    reply = evaluate(ruleset, replace(facts, is_reply=True)) if may_be_reply else None
    return Routing(new, reply)


def evaluate(ruleset: Ruleset, facts: Facts) -> Decision:
    matched, changes = [], Actions()
    for rule in ruleset.rules:
        if facts.is_reply and not rule.on_reply:
            continue
        if rule.when.test(facts):
            matched.append(rule.name)
            changes = _merge(changes, rule.then)
            if rule.stop:
                break
    return _decide(ruleset, facts, tuple(matched), changes, explain=False)


def explain(ruleset: Ruleset, facts: Facts) -> tuple[Decision, tuple[RuleTrace, ...]]:
    matched, changes, trace, stopped_by = [], Actions(), [], None
    for rule in ruleset.rules:
        if stopped_by is not None:
            trace.append(RuleTrace(rule.name, rule.line, SKIPPED, f"rule {stopped_by!r} stopped the evaluation"))
            continue
        if facts.is_reply and not rule.on_reply:
            trace.append(RuleTrace(rule.name, rule.line, SKIPPED,
                                   "the mail answers a ticket and the rule is not `on: reply`"))
            continue
        hit, reason = rule.when.explain(facts)
        trace.append(RuleTrace(rule.name, rule.line, MATCHED if hit else MISSED, reason))
        if hit:
            matched.append(rule.name)
            changes = _merge(changes, rule.then)
            if rule.stop:
                stopped_by = rule.name
    return _decide(ruleset, facts, tuple(matched), changes, explain=True), tuple(trace)


def _merge(done: Actions, then: Actions) -> Actions:
    tags = done.tags + tuple(t for t in then.tags if t not in done.tags)
    return Actions(
        queue=then.queue if then.queue is not None else done.queue,
        priority=then.priority if then.priority is not None else done.priority,
        assign=then.assign if then.assign is not None else done.assign,
        tags=tags,
        sla=then.sla if then.sla is not None else done.sla,
        auto_reply=then.auto_reply if then.auto_reply is not None else done.auto_reply,
        discard=done.discard or then.discard,
        stop=then.stop,
    )


def _decide(ruleset: Ruleset, facts: Facts, matched: tuple[str, ...], changes: Actions, *,
            explain: bool) -> Decision:
    # Who set what is found again by name only when explaining (the fast path skips it).
    def by_rule(name: str) -> str:
        def sets(then) -> bool:
            value = getattr(then, name)
            return value is True if name == "discard" else value not in (None, ())
        setter = next((r.name for r in reversed(ruleset.rules) if r.name in matched and sets(r.then)), "")
        return f"rule {setter!r}"

    if facts.is_reply and changes.discard:
        changes = Actions(discard=True, stop=changes.stop)   # a discarded reply changes nothing
    why: list[str] = []
    by_address = None
    if changes.queue is not None:
        queue = changes.queue
    elif facts.is_reply:
        queue = ""
    else:
        by_address = ruleset.queue_for_address(facts.recipient)
        queue = (by_address or ruleset.default_queue).name
    if explain:
        if changes.queue is not None:
            why.append(f"queue {queue}: {by_rule('queue')}")
        elif facts.is_reply:
            why.append("queue: unchanged (a reply stays in its ticket's queue)")
        elif by_address is not None:
            why.append(f"queue {queue}: arrived for {by_address.address}")
        else:
            why.append(f"queue {queue}: the first queue (no queue has {facts.recipient or 'the address'})")
    the_queue = ruleset.queue(queue)
    priority = changes.priority or "normal"
    if explain:
        why.append(f"priority {priority}: {by_rule('priority')}" if changes.priority
                   else ("priority: unchanged" if facts.is_reply else "priority normal: default"))
    assign, source = changes.assign, ""
    if assign is None and not facts.is_reply and the_queue is not None and the_queue.team:
        team = ruleset.team(the_queue.team)
        if team is not None and team.assign:
            assign, source = Assign(team.assign, team.name), f"team {team.name}'s assign policy (queue {queue})"
    if changes.discard:
        assign = None                     # nobody is to see it
    if explain:
        if assign is not None:
            why.append(f"assign {assign}: {source or by_rule('assign')}")
        else:
            why.append("assign: nobody (discarded)" if changes.discard
                       else "assign: unchanged" if facts.is_reply else "assign: nobody")
    sla = changes.sla or (the_queue.sla if the_queue is not None and not facts.is_reply else None)
    if changes.discard:
        sla = None                        # no clock runs on a discarded ticket
    if explain:
        if sla:
            why.append(f"sla {sla}: {by_rule('sla') if changes.sla else f'queue {queue}'}")
        else:
            why.append("sla: none (discarded)" if changes.discard
                       else "sla: unchanged" if facts.is_reply else "sla: none")
    template = changes.auto_reply if isinstance(changes.auto_reply, str) else DEFAULT_TEMPLATE
    auto_reply = not (changes.discard or changes.auto_reply is False or facts.automatic
                      or facts.is_reply)
    if explain:
        if changes.discard:
            reason = f"no acknowledgement: discarded by {by_rule('discard')}"
        elif changes.auto_reply is False:
            reason = f"no acknowledgement: {by_rule('auto_reply')}"
        elif facts.automatic:
            reason = "no acknowledgement: automatic mail"
        elif facts.is_reply:
            reason = "no acknowledgement: replies are not acknowledged"
        else:
            reason = f"acknowledgement: template {template}" + (
                f" ({by_rule('auto_reply')})" if isinstance(changes.auto_reply, str) else "")
    if explain:
        why.append(reason)
        if changes.tags:
            why.append(f"tags {', '.join(changes.tags)}")
        if changes.discard:
            why.append(f"discard: {by_rule('discard')}")
    return Decision(queue=queue, priority=priority, auto_reply=auto_reply, template=template,
                    assign=assign, tags=changes.tags, sla=sla, discard=changes.discard,
                    matched=matched, explanation=tuple(why), changes=changes)
