"""Every outbound mail as an `OutgoingDraft`: rendered, addressed and threaded, not sent.

    ack = acknowledgement(recorded, inbound, context)           # to the customer, new ticket
    notes = notifications(snap, context, event=..., ...)        # to agents
    reply = public_reply(snap, context, agent=agent, text=...)  # an agent's answer, relayed
    error = command_error(snap_or_none, context, agent=..., ...)# to the agent, nothing applied
    warn = escalation(snap, context, recipient=..., sla=..., last_message=...)  # SLA step

Who may receive what (DESIGN §1.6 and issue 3's "no path may leak a note"):
- customers get only the acknowledgement (their own text back) and public replies (the
  agent's new text and name, never the agent's address unless
  `helpdesk.expose_agent_address`, never the ticket's history, notes or commands);
- notifications and command errors go to agent addresses only (`notifications` drops any
  other address) and their copies on the ticket are `internal`;
- SLA warnings and breaches go to whom the policy names (agents, or addresses the admin
  wrote in rules.yaml, such as a manager's) and are `internal` too.

Headers: our own Message-ID (it carries the ticket number, so any answer threads),
the subject token, In-Reply-To/References of the thread.  Public replies answer the
customer's last message, so the customer's client threads them under it.  Notifications
set Reply-To to the queue's address — a plain "Reply" in any client is a public reply —
except for notes, whose notification answers go to the comment address and stay internal.
Automatic mail carries Auto-Submitted (`auto-replied` answers a mail, `auto-generated`
is a notification); a public reply is a person's mail and carries none.
"""
from __future__ import annotations

import logging
import uuid

from maild.compose import sendable_message_id
from parsers import threading as threads
from rules.model import Agent
from store.outbox import OutgoingDraft
from store.snapshot import TicketSnapshot

log = logging.getLogger(__name__)

ACK, REPLY, NOTIFY, COMMAND_ERROR = "ack", "reply", "notify_agent", "command_error"
SLA_WARNING, SLA_BREACH = "sla_warning", "sla_breach"
AUTO_REPLIED, AUTO_GENERATED = "auto-replied", "auto-generated"
MAX_REFERENCES = 20

# notification events
NEW_TICKET, CUSTOMER_REPLY, UNVERIFIED, NOTE = "new_ticket", "customer_reply", "unverified", "note"


def _message_id(number: int, context) -> str:
    return threads.make_message_id(number, context.hostname, uuid.uuid4().hex[:20])


def _thread(message_id: str | None, references: tuple[str, ...]) -> tuple[str | None, tuple[str, ...]]:
    """(In-Reply-To, References) answering `message_id`; unsendable ids left out."""
    chain = [i for i in (*references, message_id) if i and sendable_message_id(i)]
    refs = tuple(dict.fromkeys(chain))[-MAX_REFERENCES:]
    return (message_id if message_id and sendable_message_id(message_id) else None), refs


def _subject(subject: str, context, number: int, *, reply: bool = False) -> str:
    tokened = threads.add_token(subject or "(no subject)", context.token_prefix, number)
    if reply and not tokened.lower().startswith(("re:", "aw:", "sv:")):
        tokened = "Re: " + tokened
    return tokened


def _helpdesk(context) -> dict:
    return {"name": context.helpdesk_name, "address": context.helpdesk_address,
            "comment_address": context.comment_address or ""}


def _ticket(snap: TicketSnapshot, context) -> dict:
    return {"number": snap.number, "subject": snap.subject, "status": snap.status,
            "priority": snap.priority, "queue": snap.queue, "assignee": snap.assignee or "",
            "tags": list(snap.tags), "token": f"[{context.token_prefix} #{snap.number}]",
            "requester": {"name": snap.requester.name, "address": snap.requester.address},
            "participants": [{"name": p.name, "address": p.address} for p in snap.participants]}


def queue_address(queue: str, context) -> str:
    """The address customers of `queue` write to (the helpdesk address as a fallback)."""
    found = context.ruleset.queue(queue)
    return found.address.lower() if found else context.helpdesk_address


def acknowledgement(recorded, inbound, context, *, template: str = ACK) -> OutgoingDraft:
    """The automatic answer to a new ticket, to the customer who opened it; `template`
    is the rules' choice (`auto_reply: NAME`), rendered with the same values as `ack`."""
    rendered = context.render(template, {
        "helpdesk": _helpdesk(context),
        "ticket": {"number": recorded.ticket_number, "subject": inbound.subject,
                   "token": f"[{context.token_prefix} #{recorded.ticket_number}]",
                   "status": "new", "priority": inbound.priority, "queue": inbound.queue},
        "customer": {"name": inbound.from_name, "address": inbound.from_address},
        "message": {"subject": inbound.subject, "text": inbound.visible_text},
    })
    in_reply_to, references = _thread(inbound.message_id, inbound.references)
    return OutgoingDraft(
        ticket_id=recorded.ticket_id, template=template, automatic=True,
        from_name=context.helpdesk_name, from_address=context.helpdesk_address,
        to_address=inbound.from_address,
        subject=threads.add_token(inbound.subject or "(no subject)", context.token_prefix,
                                  recorded.ticket_number),
        message_id=_message_id(recorded.ticket_number, context),
        in_reply_to=in_reply_to, references=references,
        text=rendered.text, html=rendered.html, kind="ack", auto_submitted=AUTO_REPLIED)


def notifications(snap: TicketSnapshot, context, *, event: str, recipients: tuple[str, ...],
                  author_name: str, author_address: str, text: str,
                  answers: tuple[str | None, tuple[str, ...]], warning: str = "") -> list[OutgoingDraft]:
    """One notification per agent in `recipients` (others are dropped: agents only).

    `answers` is (Message-ID, References) of the mail that caused it, so the agent's
    client threads notifications of one ticket together."""
    agents = [context.ruleset.agent_for(a) for a in dict.fromkeys(recipients)]
    agents = [a for a in agents if a is not None]
    if not agents:
        return []
    public = queue_address(snap.queue, context)
    internal_reply = context.comment_address if event == NOTE and context.comment_address else None
    in_reply_to, references = _thread(*answers)
    drafts = []
    for agent in agents:
        rendered = context.render(NOTIFY, {
            "helpdesk": _helpdesk(context), "ticket": _ticket(snap, context), "event": event,
            "agent": {"name": agent.name, "address": agent.address},
            "message": {"from_name": author_name, "from_address": author_address,
                        "text": text, "warning": warning},
            "reply": {"public": public, "internal": context.comment_address or ""},
        })
        drafts.append(OutgoingDraft(
            ticket_id=snap.id, template=NOTIFY, automatic=True,
            from_name=f"{author_name or author_address} via {context.helpdesk_name}",
            from_address=public, to_address=agent.address,
            subject=_subject(snap.subject, context, snap.number),
            message_id=_message_id(snap.number, context), in_reply_to=in_reply_to,
            references=references, text=rendered.text, html=rendered.html, kind="notify",
            reply_to=internal_reply or public, auto_submitted=AUTO_GENERATED, internal=True))
    return drafts


def public_reply(snap: TicketSnapshot, context, *, agent: Agent, text: str) -> OutgoingDraft:
    """The agent's new text, relayed from the queue's address to the requester (To) and
    the participants (Cc), answering the customer's last message."""
    rendered = context.render(REPLY, {
        "helpdesk": _helpdesk(context), "ticket": _ticket(snap, context),
        "agent": {"name": agent.name,
                  "address": agent.address if context.expose_agent_address else ""},
        "reply": {"text": text},
    })
    last = snap.last_customer_message
    in_reply_to, references = _thread(last.message_id, last.references) if last else (None, ())
    cc = tuple(p.address for p in snap.participants
               if p.address != snap.requester.address and context.ruleset.agent_for(p.address) is None
               and not context.is_ours(p.address))
    return OutgoingDraft(
        ticket_id=snap.id, template=REPLY, automatic=False,
        from_name=f"{agent.name or agent.address.split('@')[0]} via {context.helpdesk_name}",
        from_address=queue_address(snap.queue, context), to_address=snap.requester.address,
        cc=cc, subject=_subject(snap.subject, context, snap.number, reply=True),
        message_id=_message_id(snap.number, context), in_reply_to=in_reply_to,
        references=references, text=rendered.text, html=rendered.html, kind="reply")


def command_error(snap: TicketSnapshot, context, *, agent: Agent, subject: str,
                  errors: tuple[str, ...], answers: tuple[str | None, tuple[str, ...]],
                  internal: bool = False) -> OutgoingDraft:
    """Tell the agent why nothing of their mail was applied.  The agent is asked to send
    it again, most likely by replying: for a refused note (`internal`) that Reply goes to
    the comment address, so the corrected note stays a note."""
    rendered = context.render(COMMAND_ERROR, {
        "helpdesk": _helpdesk(context), "ticket": _ticket(snap, context),
        "agent": {"name": agent.name, "address": agent.address},
        "errors": list(errors), "subject": subject,
    })
    in_reply_to, references = _thread(*answers)
    return OutgoingDraft(
        ticket_id=snap.id, template=COMMAND_ERROR, automatic=True,
        from_name=context.helpdesk_name, from_address=queue_address(snap.queue, context),
        to_address=agent.address, subject=_subject(f"Not applied: {subject or snap.subject}",
                                                   context, snap.number),
        message_id=_message_id(snap.number, context), in_reply_to=in_reply_to,
        references=references, text=rendered.text, html=rendered.html, kind="command_error",
        reply_to=context.comment_address if internal and context.comment_address else None,
        auto_submitted=AUTO_REPLIED, internal=True)


def escalation(snap: TicketSnapshot, context, *, template: str, recipient: tuple[str, str],
               sla: dict, last_message: dict | None) -> OutgoingDraft:
    """An SLA step's mail to one recipient, (name, address).  `template` is the step's
    (sla_warning, sla_breach or the site's own); `sla` and `last_message` are the values
    `maild.escalations` computed.  As with notifications, a plain Reply goes to the queue's
    address: an agent's answer reaches the customer (and stops a response clock)."""
    name, address = recipient
    rendered = context.render(template, {
        "helpdesk": _helpdesk(context), "ticket": _ticket(snap, context),
        "recipient": {"name": name, "address": address}, "sla": sla,
        "last_message": last_message,
    })
    label = "SLA breach" if sla["breached"] else "SLA warning"
    last = snap.last_customer_message
    in_reply_to, references = _thread(last.message_id, last.references) if last else (None, ())
    public = queue_address(snap.queue, context)
    return OutgoingDraft(
        ticket_id=snap.id, template=template, automatic=True,
        from_name=context.helpdesk_name, from_address=public, to_address=address,
        subject=_subject(f"{label} ({sla['clock_label']}, {sla['step']}): {snap.subject}",
                         context, snap.number),
        message_id=_message_id(snap.number, context), in_reply_to=in_reply_to,
        references=references, text=rendered.text, html=rendered.html,
        kind=SLA_BREACH if sla["breached"] else SLA_WARNING,
        reply_to=public, auto_submitted=AUTO_GENERATED, internal=True)
