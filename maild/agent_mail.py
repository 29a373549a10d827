"""An authenticated agent's mail: a public reply, an internal note, commands — or nothing.

    outcome = handle(inbound, routing, context, now=now)    # inside the batch transaction

Only mail that `maild.pipeline.prepare` proved to come from an agent (`inbound.author`,
DESIGN §5) gets here.  It must answer a ticket (subject token, In-Reply-To/References);
an agent's mail that answers none opens a ticket like anyone's (its command lines are
not executed: there is no ticket to act on, and an event says so).

It must answer that ticket in a way only the agent can: the subject token, or a
Message-ID of a mail we sent to this agent (a notification, an error).  A mail that
threads only through other headers (a customer's Message-ID, a made-up
`maild.<n>.x@` id) could be a genuine signed mail of the agent's, written to someone
else and replayed to us with a References header the signature doesn't cover: it is
handled as a customer's mail, flagged, and acts on nothing.

On a ticket, in one transaction:
1. The command lines at the top (`parsers.commands`) are checked in full first: syntax,
   then agents (`#assign`) and queues (`#queue`) against the rules.  If anything is wrong,
   NOTHING of the mail is applied — no command, no reply, no note; the mail is kept on the
   ticket as `refused` (internal) and the agent gets a short error mail.  When the mail
   was a note, a Reply to that error goes to the comment address: sent again, it is
   still a note.
2. Mail to the comment address (among any of its recipients), or with `#note`, is an
   internal note: stored `internal`,
   sent to the other agents on the ticket (assignee and the queue's team), never to a
   customer.
3. Otherwise, new text left after the command lines is a public reply (unless it is only
   the agent's signature: a sign-off, their name and a few lines), relayed to the
   requester and participants from the queue's address ("Alice Agent via Acme Support"),
   threaded under the customer's last message; the first response time is set and a new
   ticket becomes open.  A reply that contains the text of an internal note of the ticket
   (a forwarded or pasted notification) is refused like a bad command: a note never
   reaches a customer.
4. The commands are applied after the reply, so `#status pending` on a reply leaves the
   ticket pending, each with an audit event naming the agent.  Command lines never reach
   the customer.
"""
from __future__ import annotations

import dataclasses
import logging
import re
from datetime import datetime

from maild import customer_mail, drafts
from maild.customer_mail import Outcome
from maild.pipeline import Context
from parsers.commands import CommandBlock
from rules.engine import Routing
from rules.model import Agent
from store import changes, outbox, sla, tickets
from store.snapshot import TicketSnapshot, snapshot
from store.tickets import APPENDED, InboundMessage, Recorded

log = logging.getLogger(__name__)

AGENT_REPLY, NOTE, COMMAND, REFUSED = "agent_reply", "note", "command", "refused"
LEAK_PROBE = 40          # characters of a note's normalized text that must not reappear


class CommandsRefused(Exception):
    """Something in the agent's mail is wrong; nothing of it is applied."""

    def __init__(self, errors: tuple[str, ...]):
        super().__init__("; ".join(errors))
        self.errors = errors


def handle(inbound: InboundMessage, routing: Routing, context: Context, *, now: datetime) -> Outcome:
    known = tickets.known_delivery(inbound, now)
    if known is not None:
        return Outcome(known)
    ticket, threaded_by = tickets.find_ticket(inbound)
    block: CommandBlock = inbound.commands
    if ticket is None:
        outcome = customer_mail.handle(inbound, routing, context, now=now)
        if block.commands or block.errors:
            tickets.add_event(outcome.recorded.ticket_id, now, inbound.author, "commands_ignored",
                              "the mail answers no ticket; its command lines were not executed")
        return outcome
    agent = context.ruleset.agent_for(inbound.author)
    if threaded_by != tickets.BY_TOKEN and not outbox.sent_to(ticket.id, inbound.reply_candidates,
                                                              agent.addresses):
        why = ("an agent's mail that answers no mail we sent this agent and carries no ticket "
               "token: not acted on (a signed mail of theirs may have been replayed)")
        log.warning("ticket=#%s mail from %s: %s", ticket.number, agent.address, why)
        return customer_mail.handle(dataclasses.replace(inbound, author="", auth=why, commands=None),
                                    routing, context, now=now)
    snap = snapshot(ticket.id)
    internal = block.note or _to_comment_address(inbound, context)
    try:
        wanted = _resolve(block, context)
        if not internal and block.text.strip() and _quotes_a_note(block.text, snap.notes):
            raise CommandsRefused(("the reply contains the text of an internal note of this "
                                   "ticket; remove it and send again",))
    except CommandsRefused as refused:
        return _refuse(ticket.id, ticket.number, threaded_by, inbound, agent, snap, refused.errors,
                       context, now, internal=internal)
    text = block.text.strip("\n")
    kind = NOTE if internal else (AGENT_REPLY if text.strip() and not _only_signature(text, agent)
                                  else COMMAND)
    message_pk = tickets.store_agent_message(ticket.id, inbound, kind=kind, text=text,
                                             internal=kind != AGENT_REPLY, now=now)
    queued = 0
    if kind == AGENT_REPLY:
        changes.record_reply(ticket.id, actor=agent.address, now=now)
    elif kind == NOTE:
        tickets.add_event(ticket.id, now, agent.address, "note", "")
    applied = changes.apply(ticket.id, wanted, actor=agent.address, now=now)
    sla.sync(ticket.id, context.ruleset, now, agent_replied=kind == AGENT_REPLY)
    after = snapshot(ticket.id)
    if kind == AGENT_REPLY:
        outbox.enqueue(drafts.public_reply(after, context, agent=agent, text=text), now=now)
        queued = 1
    elif kind == NOTE:
        queued = _notify_note(after, inbound, agent, text, context, now)
    log.info("ticket=#%s %s by %s: %d command(s) applied", ticket.number, kind, agent.address,
             len(applied))
    return Outcome(Recorded(APPENDED, ticket.number, ticket.id, message_pk, threaded_by),
                   notified=queued, summary=f"{kind}, {len(applied)} change(s)")


def _to_comment_address(inbound: InboundMessage, context: Context) -> bool:
    """Is the comment address among the mail's recipients -- the envelope's, To or Cc, not
    only the one it was filed under?  A mail to both addresses is a note: which one the
    MTA names first must not decide whether a customer reads it."""
    return inbound.to_comment


def _resolve(block: CommandBlock, context: Context) -> tuple[changes.Change, ...]:
    """The commands as validated changes, or CommandsRefused with every error."""
    errors, wanted = list(block.errors), []
    for command in block.commands:
        if command.name == "note":
            continue
        if command.name == "close":
            wanted.append(changes.Change("status", "closed"))
        elif command.name == "assign":
            found = context.ruleset.match_agents(command.argument)
            if len(found) == 1:
                wanted.append(changes.Change("assign", found[0].address))
            elif not found:
                errors.append(f"{command.line}: no agent is called {command.argument!r}")
            else:
                errors.append(f"{command.line}: {command.argument!r} could be "
                              + ", ".join(a.address for a in found) + "; write the address")
        elif command.name == "queue":
            if context.ruleset.queue(command.argument.lower()) is None:
                known = ", ".join(q.name for q in context.ruleset.queues)
                errors.append(f"{command.line}: no queue {command.argument!r} (queues: {known})")
            else:
                wanted.append(changes.Change("queue", command.argument.lower()))
        else:
            wanted.append(changes.Change(command.name, command.argument))
    if errors:
        raise CommandsRefused(tuple(errors))
    return tuple(wanted)


SIGN_OFF = re.compile(r"(?i)^(best|regards|kind regards|best regards|thanks|thank you|cheers|"
                      r"greetings|gruß|grüße|viele grüße|beste grüße|mit freundlichen grüßen|"
                      r"cordialement|bien à vous|saludos|un saludo|met vriendelijke groet)\W*$")
MAX_SIGNATURE_LINES = 8


def _only_signature(text: str, agent: Agent) -> bool:
    """Is `text` nothing but the agent's signature (a sign-off, then their name and a few
    lines)?  Outlook and Apple Mail put no "-- " above it, so a mail of commands would
    otherwise send the signature to the customer as a reply."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines or len(lines) > MAX_SIGNATURE_LINES:
        return False
    if SIGN_OFF.match(lines[0]):
        lines = lines[1:]
    names = {agent.name.lower(), agent.name.split()[0].lower() if agent.name else "",
             agent.address.split("@")[0].lower()} - {""}
    return bool(lines) and lines[0].rstrip(",.").lower() in names


def _normalized(text: str) -> str:
    return re.sub(r"[\W_]+", " ", text.lower()).strip()


def _quotes_a_note(text: str, notes: tuple[str, ...]) -> bool:
    """Does `text` carry an internal note (its first LEAK_PROBE characters, normalized)?"""
    body = _normalized(text)
    for note in notes:
        probe = _normalized(note)[:LEAK_PROBE].strip()
        if len(probe) >= 12 and probe in body:
            return True
    return False


def _refuse(ticket_id: int, number: int, threaded_by: str, inbound: InboundMessage, agent: Agent,
            snap: TicketSnapshot, errors: tuple[str, ...], context: Context, now: datetime,
            *, internal: bool) -> Outcome:
    message_pk = tickets.store_agent_message(ticket_id, inbound, kind=REFUSED,
                                             text=inbound.visible_text, internal=True, now=now)
    tickets.add_event(ticket_id, now, agent.address, "commands_refused", "; ".join(errors))
    outbox.enqueue(drafts.command_error(snap, context, agent=agent, subject=inbound.subject,
                                        errors=errors, internal=internal,
                                        answers=(inbound.message_id, inbound.references)), now=now)
    log.info("ticket=#%s mail from %s refused: %s", number, agent.address, "; ".join(errors))
    return Outcome(Recorded(APPENDED, number, ticket_id, message_pk, threaded_by),
                   notified=1, summary="refused: " + "; ".join(errors))


def _notify_note(snap: TicketSnapshot, inbound: InboundMessage, agent: Agent, text: str,
                 context: Context, now: datetime) -> int:
    team = tuple(a.address for a in context.ruleset.agents_for_queue(snap.queue))
    recipients = tuple(r for r in ((snap.assignee,) if snap.assignee else ()) + team
                       if r and r != agent.address)
    queued = drafts.notifications(snap, context, event=drafts.NOTE, recipients=recipients,
                                  author_name=agent.name, author_address=agent.address, text=text,
                                  answers=(inbound.message_id, inbound.references))
    for draft in queued:
        outbox.enqueue(draft, now=now)
    return len(queued)
