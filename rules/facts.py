"""What the rules may look at: the `Facts` of one message, extracted once, read by every rule.

    facts = Facts.of(mail, recipient=..., is_reply=..., received_at=..., contact=...)

Every field a condition names in rules.yaml maps to a tuple of strings here
(`Facts.values(field)`): `from` is one address, `to` and `cc` are several, `attachment`
is every attachment's name and content type, `header` needs a header name.  A test on a
field holds when it holds for *any* of its values; a field with no values fails every
test but `exists: false`.

Addresses and domains are lower-cased on extraction.  `folded(field)` gives the same
values case-folded (cached per message), so comparing `equals`/`contains`/`in` against a
10 MB body folds it once, not once per rule; `remember(key, fn)` caches any other
per-message answer (a calendar's opening at `received_at`).  A `Facts` built with
`dataclasses.replace` starts with empty caches.

This module is pure: no database, no clock (the caller passes `received_at`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property

# field name in rules.yaml -> what it is, for the manual and for error messages
TEXT_FIELDS = {
    "from": "the sender's address (From header)",
    "from_domain": "the domain of the sender's address",
    "to": "each address in To",
    "cc": "each address in Cc",
    "recipient": "the support address the mail arrived for (envelope)",
    "subject": "the subject, decoded",
    "body": "the visible text (new text of a reply, no quotes or signature), first 256,000 characters",
    "attachment": "each attachment's file name and content type",
    "customer_tier": "the sender's tier from the contacts: list",
    "from_org": "the sender's organisation from the contacts: list",
    "kind": "what the classifier called the mail: normal, bounce, auto_reply, report, list or loop",
}
HEADER_FIELD = "header"          # header: {Name: test}
BOOL_FIELDS = ("is_reply", "is_new")
CALENDAR_FIELD = "business_hours"  # business_hours: CALENDAR-NAME
FIELDS = (*TEXT_FIELDS, HEADER_FIELD, *BOOL_FIELDS, CALENDAR_FIELD)
# The rules see the first MAX_BODY characters of the visible text: a 10 MB quoted body
# (all of it "visible" when nothing new is found) must not cost seconds per rule set.
MAX_BODY = 256_000


@dataclass(frozen=True)
class Contact:
    """One entry of the `contacts:` list in rules.yaml."""
    address: str                 # lower-cased
    name: str = ""
    org: str = ""
    tier: str = ""


@dataclass(frozen=True)
class Facts:
    from_address: str = ""                           # lower-cased, '' if none
    to: tuple[str, ...] = ()                         # lower-cased
    cc: tuple[str, ...] = ()                         # lower-cased
    recipient: str = ""                              # lower-cased
    subject: str = ""
    body: str = ""                                   # visible text
    headers: tuple[tuple[str, str], ...] = ()        # (name, decoded value), message order
    attachments: tuple[tuple[str, str], ...] = ()    # (file name, content type)
    is_reply: bool = False                           # it answers an existing ticket
    received_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    contact: Contact | None = None                   # the sender's contacts: entry
    automatic: bool = False                          # classified as not written by a person
    kind: str = "normal"                             # parsers.classify's kind

    @classmethod
    def of(cls, mail, *, recipient: str, is_reply: bool, received_at: datetime,
           contact: Contact | None = None, automatic: bool = False,
           kind: str = "normal") -> "Facts":
        """The facts of a `parsers.message.ParsedMail`."""
        return cls(from_address=mail.from_address.lower(), to=tuple(a.lower() for a in mail.to),
                   cc=tuple(a.lower() for a in mail.cc), recipient=recipient.lower(),
                   subject=mail.subject, body=mail.visible_text[:MAX_BODY], headers=mail.headers,
                   attachments=tuple((a.filename, a.content_type) for a in mail.attachments),
                   is_reply=is_reply, received_at=received_at, contact=contact,
                   automatic=automatic, kind=kind)

    @property
    def is_new(self) -> bool:
        return not self.is_reply

    @property
    def from_domain(self) -> str:
        return self.from_address.rpartition("@")[2] if "@" in self.from_address else ""

    def values(self, name: str) -> tuple[str, ...]:
        """The values of text field `name` (a key of TEXT_FIELDS); '' values are dropped.
        Computed once per message and field."""
        cache = self._memo
        key = ("values", name)
        if key not in cache:
            cache[key] = self._values(name)
        return cache[key]

    def _values(self, name: str) -> tuple[str, ...]:
        if name == "from":
            found: tuple[str, ...] = (self.from_address,)
        elif name == "from_domain":
            found = (self.from_domain,)
        elif name in ("to", "cc"):
            found = getattr(self, name)
        elif name == "recipient":
            found = (self.recipient,)
        elif name == "subject":
            found = (self.subject,)
        elif name == "body":
            found = (self.body,)
        elif name == "attachment":
            found = tuple(part for pair in self.attachments for part in pair)
        elif name == "customer_tier":
            found = (self.contact.tier,) if self.contact else ()
        elif name == "from_org":
            found = (self.contact.org,) if self.contact else ()
        elif name == "kind":
            found = (self.kind,)
        else:
            raise KeyError(name)
        return tuple(v for v in found if v)

    def header_values(self, name: str) -> tuple[str, ...]:
        """Every value of header `name` (case-insensitive), in message order."""
        return self._headers_by_name.get(name.lower(), ())

    def folded(self, name: str) -> tuple[str, ...]:
        """`values(name)` case-folded; computed once per message and field."""
        cache = self._memo
        key = ("folded", name)
        if key not in cache:
            cache[key] = tuple(v.casefold() for v in self.values(name))
        return cache[key]

    def remember(self, key, compute):
        """`compute()`, once per message and `key` (e.g. whether a calendar is open at
        `received_at`, which every `business_hours` test of that calendar asks)."""
        cache = self._memo
        if key not in cache:
            cache[key] = compute()
        return cache[key]

    @cached_property
    def _headers_by_name(self) -> dict[str, tuple[str, ...]]:
        found: dict[str, list[str]] = {}
        for key, value in self.headers:
            found.setdefault(key.lower(), []).append(value)
        return {k: tuple(v) for k, v in found.items()}

    @cached_property
    def _memo(self) -> dict:
        return {}
