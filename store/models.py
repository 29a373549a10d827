"""The ticket database schema as peewee models (the only place it is declared).

Tickets carry a human number from the `Counter` table; messages keep every fact the
parser found plus the raw bytes as received (`Message.raw`); attachments are
stored once by content hash; `Delivery` is the idempotence key (message key, receiving
address); `Event` is the audit log; `Outbox` holds every outbound mail until the relay
took it (transactional outbox); `Bounce` is every bounce received, matched to the
outbound mail it reports on or not.  All datetimes are naive UTC.  Columns that hold text
taken from mail are TEXT, never a bounded VARCHAR: a hostile 2,000-character display
name must not fail on PostgreSQL what SQLite accepts.
"""
from __future__ import annotations

import peewee as pw

STATUSES = ("new", "open", "pending", "resolved", "closed")
PRIORITIES = ("low", "normal", "high", "urgent")


class BaseModel(pw.Model):
    class Meta:
        legacy_table_names = False


class SchemaVersion(BaseModel):
    version = pw.IntegerField()
    applied_at = pw.DateTimeField()


class Counter(BaseModel):
    name = pw.CharField(primary_key=True, max_length=64)
    value = pw.BigIntegerField(default=0)


class Contact(BaseModel):
    address = pw.TextField(unique=True)
    name = pw.TextField(default="")
    created_at = pw.DateTimeField()


class Ticket(BaseModel):
    number = pw.BigIntegerField(unique=True)
    subject = pw.TextField(default="")
    status = pw.CharField(default="new", index=True, max_length=16)
    priority = pw.CharField(default="normal", max_length=16)
    queue = pw.CharField(default="general", index=True, max_length=64)
    requester = pw.ForeignKeyField(Contact, backref="tickets")
    assignee = pw.TextField(null=True)
    sla_policy = pw.TextField(null=True)     # the rules' SLA policy name (None: no SLA)
    linked_to = pw.BigIntegerField(null=True)
    created_at = pw.DateTimeField(index=True)
    updated_at = pw.DateTimeField()
    first_response_at = pw.DateTimeField(null=True)
    resolved_at = pw.DateTimeField(null=True)
    closed_at = pw.DateTimeField(null=True)

    class Meta:
        # least-open assignment counts each member's open tickets
        indexes = ((("assignee", "status"), False),)


class TicketTag(BaseModel):
    ticket = pw.ForeignKeyField(Ticket, backref="tag_rows", on_delete="CASCADE")
    tag = pw.CharField(max_length=64)

    class Meta:
        indexes = ((("ticket", "tag"), True),)


class Participant(BaseModel):
    ticket = pw.ForeignKeyField(Ticket, backref="participant_rows", on_delete="CASCADE")
    contact = pw.ForeignKeyField(Contact)
    role = pw.CharField(max_length=16)  # requester | cc

    class Meta:
        indexes = ((("ticket", "contact"), True),)


class Message(BaseModel):
    ticket = pw.ForeignKeyField(Ticket, backref="message_rows", on_delete="CASCADE")
    direction = pw.CharField(max_length=3)  # in | out
    # in: normal | auto_reply | bounce | list | report | loop (classification of customer mail)
    #     agent_reply | note | command | refused (an authenticated agent's mail)
    # out: ack | reply | notify | command_error
    kind = pw.CharField(max_length=16)
    message_key = pw.TextField(index=True)
    message_id = pw.TextField(null=True, index=True)
    in_reply_to = pw.TextField(default="")
    references = pw.TextField(default="")
    from_address = pw.TextField(default="")
    from_name = pw.TextField(default="")
    to = pw.TextField(default="")
    cc = pw.TextField(default="")
    subject = pw.TextField(default="")
    visible_text = pw.TextField(default="")
    text = pw.TextField(default="")
    html = pw.TextField(default="")
    unverified = pw.BooleanField(default=False)
    evidence = pw.TextField(default="")
    author = pw.TextField(default="")      # the authenticated agent who wrote it ('' otherwise)
    internal = pw.BooleanField(default=False)   # agents only: notes, notifications, command mail
    auth = pw.TextField(default="")        # sender-authentication verdict for agent addresses
    raw = pw.BlobField(null=True)          # inbound: the bytes as received (DESIGN §1.7)
    created_at = pw.DateTimeField()
    # inbound: sha256 of the visible text, whitespace normalised (None: no text); a burst of
    # the same text from one sender joins the first one's ticket (maild.customer_mail)
    body_hash = pw.CharField(null=True, index=True, max_length=64)


class Delivery(BaseModel):
    """One row per (message key, receiving address): the idempotence key of DESIGN §1.2."""
    message_key = pw.TextField()
    recipient = pw.TextField()
    message = pw.ForeignKeyField(Message, backref="deliveries", on_delete="CASCADE")
    received_at = pw.DateTimeField()
    via = pw.CharField(max_length=16, default="")

    class Meta:
        indexes = ((("message_key", "recipient"), True),)


class Attachment(BaseModel):
    sha256 = pw.CharField(unique=True, max_length=64)
    content_type = pw.TextField()
    size = pw.IntegerField()
    data = pw.BlobField()


class MessageAttachment(BaseModel):
    message = pw.ForeignKeyField(Message, backref="attachment_rows", on_delete="CASCADE")
    attachment = pw.ForeignKeyField(Attachment)
    filename = pw.TextField(default="")


class Event(BaseModel):
    ticket = pw.ForeignKeyField(Ticket, backref="events", on_delete="CASCADE")
    at = pw.DateTimeField()
    actor = pw.TextField(default="system")
    kind = pw.CharField(max_length=32)
    detail = pw.TextField(default="")


class Outbox(BaseModel):
    ticket = pw.ForeignKeyField(Ticket, backref="outbox_rows", on_delete="CASCADE")
    ticket_message = pw.ForeignKeyField(Message)   # the copy shown on the ticket
    template = pw.CharField(max_length=64)
    automatic = pw.BooleanField(default=False)
    from_name = pw.TextField(default="")
    from_address = pw.TextField()
    to_address = pw.TextField(index=True)
    cc = pw.TextField(default="")                  # more recipients, ', '-separated
    reply_to = pw.TextField(null=True)
    auto_submitted = pw.TextField(null=True)       # RFC 3834 value; None for mail a person wrote
    subject = pw.TextField()
    message_id = pw.TextField()
    in_reply_to = pw.TextField(null=True)
    references = pw.TextField(default="")
    text = pw.TextField()
    html = pw.TextField(null=True)
    status = pw.CharField(default="queued", max_length=16)  # queued | sending | sent | failed | bounced
    attempts = pw.IntegerField(default=0)
    next_attempt_at = pw.DateTimeField()
    last_error = pw.TextField(null=True)
    created_at = pw.DateTimeField(index=True)
    sent_at = pw.DateTimeField(null=True)

    class Meta:
        indexes = ((("status", "next_attempt_at"), False),)


class SlaClock(BaseModel):
    """One SLA clock of a ticket (`rules.sla_clock.Clock`, kept by `store.sla`).  Business
    time in whole seconds; `due_at` (indexed) is set only while the clock runs, so the
    sweep finds what is due without reading the rest."""
    ticket = pw.ForeignKeyField(Ticket, backref="sla_clocks", on_delete="CASCADE")
    clock = pw.CharField(max_length=32)          # first_response | next_response | resolution
    cycle = pw.IntegerField(default=1)
    policy = pw.TextField()
    priority = pw.CharField(max_length=16)
    budget_s = pw.BigIntegerField()
    used_s = pw.BigIntegerField(default=0)       # used before running_since
    started_at = pw.DateTimeField()
    running_since = pw.DateTimeField(null=True)
    stopped_at = pw.DateTimeField(null=True)
    due_at = pw.DateTimeField(null=True, index=True)
    # the escalation steps of this cycle already sent ("80%,breach"), and when the next
    # unsent one is due (indexed: the sweep reads only rows with next_step_at <= now)
    steps_sent = pw.TextField(default="")
    next_step_at = pw.DateTimeField(null=True, index=True)

    class Meta:
        indexes = ((("ticket", "clock"), True),)


class SlaEscalation(BaseModel):
    """The ledger of escalation steps sent: one row per (ticket, clock, cycle, step),
    written in the transaction that queues its mails, so a step is sent exactly once."""
    ticket = pw.ForeignKeyField(Ticket, backref="sla_escalations", on_delete="CASCADE")
    clock = pw.CharField(max_length=32)
    cycle = pw.IntegerField()
    step = pw.CharField(max_length=64)            # '80%', 'breach', 'breach+2h'
    due_at = pw.DateTimeField()                   # when the step was due
    sent_at = pw.DateTimeField(index=True)        # when the sweep queued it
    recipients = pw.TextField(default="")         # ', '-separated; '' = nobody to tell

    class Meta:
        indexes = ((("ticket", "clock", "cycle", "step"), True),)


class Bounce(BaseModel):
    """One row per bounce received (`store.bounces`), matched or not; `message_key` (as
    `Delivery`'s) makes a replay find it.  A matched bounce is also a message on its
    ticket (`ticket_message`), which keeps the raw bytes; an unmatched one keeps them here."""
    received_at = pw.DateTimeField(index=True)
    message_key = pw.TextField(unique=True)
    message_id = pw.TextField(null=True)
    from_address = pw.TextField(default="")
    subject = pw.TextField(default="")
    outbox = pw.ForeignKeyField(Outbox, null=True, on_delete="SET NULL")
    ticket = pw.ForeignKeyField(Ticket, null=True, on_delete="SET NULL")
    ticket_message = pw.ForeignKeyField(Message, null=True, on_delete="SET NULL")  # its copy there
    matched_by = pw.CharField(max_length=16, default="")   # verp | message-id | ''
    recipient = pw.TextField(default="")
    action = pw.CharField(max_length=16, default="")       # failed | delayed | delivered | ...
    status = pw.CharField(max_length=16, default="")       # '5.1.1'; '' unknown
    diagnostic = pw.TextField(default="")
    reporting_mta = pw.TextField(default="")
    raw = pw.BlobField(null=True)                          # unmatched bounces only


ALL_MODELS = (SchemaVersion, Counter, Contact, Ticket, TicketTag, Participant,
              Message, Delivery, Attachment, MessageAttachment, Event, Outbox, SlaClock,
              SlaEscalation, Bounce)
