"""maild.yaml -> `Settings`: the sysadmin's file, read once at start.

The file (default /etc/maild/maild.yaml, or $MAILD_CONFIG)::

    database: sqlite:///var/lib/maild/maild.db    # or postgresql://maild@db.example.com/maild
    spool: /var/lib/maild/spool
    listen: {lmtp: "127.0.0.1:2424", smtp: "127.0.0.1:2525"}
    outbound: {relay: "smtp://127.0.0.1:25"}
    helpdesk: {name: Acme Support, address: support@example.com, token_prefix: Acme,
               comment_address: support+comment@example.com}
    trust: {agents: authentication-results, authserv_id: mx.example.com}
    rules: /etc/maild/rules.yaml

Keys (unknown keys are refused, at every level; values are not coerced, so a number where
text is expected is an error: quote it):

``database`` (required)
    ``sqlite:///ABSOLUTE/PATH`` — e.g. ``sqlite:///var/lib/maild/maild.db`` is the file
    /var/lib/maild/maild.db (``sqlite:////var/...`` with four slashes means the same);
    ``sqlite:RELATIVE/PATH`` (no slash after the colon) is relative to the folder of this
    file; ``postgresql://user[:password]@host[:port]/dbname`` (or ``postgres://``), passed
    on unchanged (a ``?key=value`` query goes to the driver). SQLite URLs take no query:
    maild sets the SQLite options itself (store/db.py).
    Note: peewee and SQLAlchemy read ``sqlite:///x`` as the *relative* path x. maild does
    not; it reads the URL as a sysadmin does and hands peewee ``sqlite:////abs/path``
    (`Settings.database_url`).
``spool`` (required)
    Folder of the local durable queue of received mail.
``listen`` (optional; each listener optional, none at all means ingest/IMAP only)
    ``lmtp`` and ``smtp``: ``host:port`` (port 0-65535; IPv6 in brackets, ``[::1]:2424``;
    ``*:2424`` for every local address) or ``unix:/path/to/socket`` (``unix:relative/path``
    is relative to this file's folder). The two may not be the same address.
``outbound`` (required)
    ``relay`` (required), exactly the forms `maild.relay.relay_from_url` accepts (config
    validates with that parser, so the two cannot disagree; no connection is opened):

    - ``smtp://[user:password@]host[:port]``: plain SMTP, port 25, no STARTTLS (the
      local MTA);
    - ``smtp+starttls://[user:password@]host[:port]``: STARTTLS required, port 587;
    - ``smtps://[user:password@]host[:port]``: implicit TLS, port 465;
    - options for the three: ``?verify=no`` (don't check the TLS certificate) and
      ``?helo=name`` (the name to greet with), e.g. ``smtps://relay.example.com?verify=no``;
      any other option is refused. User and password are percent-encoded (write '/' as
      ``%2F``, '?' as ``%3F``, '#' as ``%23``); a user needs a password;
    - ``maildir:/path`` (``maildir:relative/path``): drop outgoing mail into a Maildir
      instead, for development (percent-encoded too: ``%20`` is a space).

    ``max_attempts`` (default 10): delivery attempts before an outbound mail is failed.
    ``mail_from`` (default: helpdesk.address): a bare address, the *base* of the envelope
    sender (Return-Path) of every mail maild sends; it is not the From: header (that is
    helpdesk.name and helpdesk.address). Each outgoing mail gets its own VERP envelope
    sender ``<local>+bounces-<outbox id>@<domain>`` built from it (a ``+tag`` already in
    the local part is dropped): ``support@example.com`` sends outbox mail 42 as
    ``support+bounces-42@example.com``, so a bounce that comes back names the mail it
    answers and can be matched to it later. Bounces go to that address, so for them to
    reach maild the mail system has to deliver ``<local>+bounces-...@<domain>`` to it
    (sub-addressing, e.g. Postfix ``recipient_delimiter = +``).
``helpdesk`` (required)
    ``name``: display name on outgoing mail. ``address``: the main support address.
    ``token_prefix``: the word in subject tokens, ``[Acme #1042]`` (letters, digits,
    '.', '_', '-'; at most 32). ``hostname`` (default: the domain of ``address``): used in
    the Message-IDs maild generates.
    ``comment_address`` (optional): an address of ours, not ``address``, for internal
    notes: an agent's reply sent there stays on the ticket and goes to no customer (e.g.
    ``support+comment@example.com``; the mail system must deliver it to maild).
    ``unknown_sender`` (default ``unverified``): what a mail that matches a ticket but comes
    from a stranger (neither requester, participant nor agent) does: ``unverified``
    appends it to the ticket, flagged, and its sender gets nothing from the ticket;
    ``new_ticket`` opens a new ticket for it instead.
    ``reopen_days`` (default 14; 0 or more): a reply to a ticket closed at most this many
    days ago reopens it; a later reply opens a new ticket linked to the old one (0: a
    closed ticket is, in effect, never reopened).
    ``expose_agent_address`` (default false): whether the replies maild relays to
    customers show the agent's own address; false shows only the agent's name, so
    customers keep writing to the help desk.
``trust`` (optional)
    When a mail from an agent's address (rules.yaml ``agents``) counts as the agent.
    ``agents`` (default ``authentication-results``):

    - ``authentication-results``: only when the topmost ``Authentication-Results`` header
      whose authserv-id is ``authserv_id`` shows ``dmarc=pass``, or ``dkim=pass`` for a
      domain aligned with From. ``authserv_id`` (default: helpdesk.hostname) is the
      authserv-id our own MTA writes first in that header (compared case-insensitively);
      headers from anyone else are ignored, so with the default and no such header from
      our MTA nobody acts as an agent. An empty ``authserv_id`` is an error.
    - ``dkim``: maild verifies the DKIM signature itself.
    - ``none``: the From address alone (for development only: anyone can write as an
      agent; maild warns at every start and ``maild check`` says so).

    ``authserv_id`` is ignored with ``dkim`` and ``none``. A mail from an agent's address
    that does not pass is handled as a customer's mail, flagged.
``rules`` (required)
    Path of rules.yaml (queues, teams, rules, SLA).
``limits`` (optional)
    ``max_message_size`` (default 26214400 = 25 MiB): larger mail is refused at the
    door. Bytes, or a string with a unit: ``"25MB"``, ``"25 MiB"``, ``"512k"``, ``"1G"``;
    k/M/G count 1024s, as in nginx.

    Loop brakes (DESIGN §1.5): ``auto_replies_per_hour`` (default 3): automatic mails
    maild sends to one address per hour (0: none). ``auto_replies_per_ticket_per_hour``
    (default 3): automatic mails one ticket sends out of the help desk per hour (agents'
    notifications not counted; 0: none). ``burst_window_minutes`` (default 10; 0: off):
    a mail whose subject, visible text (whitespace normalised) and attachments its sender
    already sent within this many minutes opens no new ticket: it joins the first one's
    ticket, with no acknowledgement and no notification.

    What maild reads of a message it accepted (hostile mail; docs/hygiene.md, and
    `parsers.limits` for why each default): ``max_header_bytes`` (default 256k, a size)
    and ``max_headers`` (default 1000): a header section over either is quarantined
    with the reason. ``max_mime_parts`` (default 1000): the parse stops there, the rest
    is left out; ``max_mime_depth`` (default 100): deeper MIME parts are left out;
    ``max_attachments`` (default 500) and ``max_attachment_size`` (default 10M, a size):
    attachments past the count or over the size are not stored. What is left out is
    named in a ``trimmed`` event on the ticket; the raw message keeps everything.
``scheduler`` (optional)
    ``sla_sweep_seconds`` (default 30; 1 or more): how often the SLA sweep looks for
    escalation steps that fell due. ``housekeeping_minutes`` (default 60): how often
    housekeeping runs. ``close_resolved_after_days`` (default 7; 0 never): housekeeping
    closes a ticket that stayed resolved this many days (a later reply then reopens it
    within ``helpdesk.reopen_days``, as for any closed ticket).
``imap`` (optional): a list of mailboxes maild reads mail from (see README "IMAP
mailboxes"); each item is a mapping:

    ``name`` (required): the account's name in logs and metrics (letters, digits, '.',
    '_', '-'); unique.
    ``url`` (required): ``imaps://USER@HOST[:PORT]/FOLDER`` (implicit TLS, port 993) or
    ``imap://...`` (no TLS, port 143; refused unless HOST is loopback: 127.0.0.0/8, ::1,
    localhost). USER and FOLDER are percent-encoded (``support%40example.com`` is
    support@example.com; UTF-8 for other letters); FOLDER defaults to INBOX (any case).
    No password in the URL; two accounts may not read the same folder.
    ``password_file`` or ``password_env`` (exactly one): a file holding the password (one
    trailing newline is dropped; relative to this file's folder), or the name of an
    environment variable. Read at start: an unreadable file or a missing variable is a
    configuration error.
    ``recipient`` (required): the address this mailbox stands for; its mail is routed as
    if delivered to it (the envelope recipient).
    ``after`` (default keep): what maild does to a message once it is durably spooled:
    ``keep`` (nothing), ``seen`` (flag \\Seen), ``delete`` (\\Deleted and expunge), or
    ``move:FOLDER`` (created if missing; not the folder read, INBOX in any case). Folder
    names are written as they read (UTF-8); maild sends them in modified UTF-7.
    Tuning: ``batch`` (default 100, 1-200): messages fetched per round; ``poll_seconds``
    (default 300): look for new mail at least this often, IDLE or not; ``idle_seconds``
    (default 1500, at most 1740): end and restart IDLE after this long (RFC 2177: servers
    may drop an IDLE after 30 minutes); ``timeout_seconds`` (default 30): the longest the
    server may stay silent, before or in the middle of an answer; ``tls_verify``
    (default true; imaps:// only): check the server's certificate.
``log_level`` (default info): debug, info, warning, error or critical.
``log_format`` (default text): ``text``, one line per event (maild/logs.py), or ``json``,
    one JSON object per line; ``maild serve --log-format`` and $MAILD_LOG_FORMAT win.
``metrics`` (optional; absent: no metrics endpoint)
    ``listen``: ``host:port`` (IPv6 in brackets; ``*:9101`` for every local address, which
    exposes the numbers to the network: prefer loopback) where ``maild serve`` answers
    Prometheus at ``/metrics`` (maild/metrics.py). No ``unix:`` sockets (Prometheus
    scrapes over TCP). Port 0 takes a free port (tests).

Relative paths (spool, rules, sqlite, maildir, unix sockets) are resolved against the
folder of this file, not the working directory; `Settings` holds absolute paths only.
A bad file raises `rules.source.ConfigError` listing every problem as
``file:line:column: key: message``. A message that quotes a URL never shows its password:
it goes through `redact_url` (``postgresql://maild:***@db/maild``).
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated
from urllib.parse import unquote, urlsplit

from pydantic import AfterValidator, Field, ValidationInfo, field_validator

from maild.config_checks import (TRUST_POLICIES, UNKNOWN_SENDER_POLICIES, ListenSpec,
                                 PathText, Size, _check_authserv_id, _check_database,
                                 _check_hostname, _check_log_level, _check_name, _check_relay,
                                 _check_token_prefix, _check_trust_policy,
                                 _check_unknown_sender, _sqlite_path, parse_listen)
from maild.imap_url import check_account_name, folder_key, parse_after, parse_imap_url
from maild.redact import redact_url
from parsers import limits as parse_limits
from rules.source import (Address, ConfigError, KeyPath, StrictModel, load_yaml, problem_at,
                          validate)

__all__ = ["TRUST_NONE_WARNING", "TRUST_POLICIES", "UNKNOWN_SENDER_POLICIES", "ConfigError",
           "Helpdesk", "ImapAccount", "LOG_FORMATS", "Limits", "Listen", "Metrics", "Outbound",
           "Settings", "Trust",
           "default_config_path", "load_settings", "parse_listen", "redact_url"]

DEFAULT_CONFIG_PATH = Path("/etc/maild/maild.yaml")
LOG_FORMATS = ("text", "json")
DEFAULT_MAX_MESSAGE_SIZE = 25 * 1024 * 1024
AUTHENTICATION_RESULTS = "authentication-results"
TRUST_NONE_WARNING = ("trust.agents is none: any mail with an agent's From address acts as "
                      "that agent; use only for development")


# --- the settings, as the rest of maild sees them ---------------------------------------

@dataclass(frozen=True)
class Listen:
    lmtp: str | None = None        # 'host:port' or 'unix:/absolute/path'; None: no listener
    smtp: str | None = None


@dataclass(frozen=True)
class Outbound:
    relay: str                     # for relay_from_url: 'smtp[s]://...', 'smtp+starttls://...'
                                   # or 'maildir:/absolute/path' (percent-encoded)
    max_attempts: int
    mail_from: str                 # base of the VERP envelope sender, local+bounces-<id>@domain

    @property
    def maildir(self) -> Path | None:
        """The Maildir folder when the relay is 'maildir:', else None (as the relay reads it)."""
        if not self.relay.startswith("maildir:"):
            return None
        return Path(unquote(urlsplit(self.relay).path))


@dataclass(frozen=True)
class Helpdesk:
    name: str
    address: str
    token_prefix: str
    hostname: str                          # lower-cased
    comment_address: str | None = None     # lower-cased; mail to it makes internal notes
    unknown_sender: str = "unverified"     # one of UNKNOWN_SENDER_POLICIES
    reopen_days: int = 14                  # >= 0; a reply after that opens a new ticket
    expose_agent_address: bool = False     # relayed replies show the agent's own address


@dataclass(frozen=True)
class Trust:
    agents: str                  # one of TRUST_POLICIES: when agent mail counts as the agent
    authserv_id: str | None      # lower-cased; set only for 'authentication-results'


@dataclass(frozen=True)
class Limits:
    max_message_size: int          # bytes
    auto_replies_per_hour: int
    parse: parse_limits.Limits = parse_limits.Limits()    # what maild reads of a message
    # loop brakes (DESIGN §1.5)
    auto_replies_per_ticket_per_hour: int = 3
    burst_window_minutes: int = 10     # 0: off


@dataclass(frozen=True)
class Scheduler:
    sla_sweep_seconds: int = 30
    housekeeping_minutes: int = 60
    close_resolved_after_days: int = 7     # 0: never


@dataclass(frozen=True)
class ImapAccount:
    """One `imap:` mailbox. `password` is kept out of repr (and so out of any log line
    that shows the settings)."""
    name: str
    url: str                       # as written; holds no password
    tls: bool
    host: str
    port: int
    user: str                      # percent-decoded
    folder: str                    # percent-decoded
    recipient: str                 # lower-cased
    after: str                     # keep | seen | delete | move
    move_to: str | None            # the folder for after: move
    password: str = field(repr=False, default="")
    batch: int = 100
    poll_seconds: int = 300
    idle_seconds: int = 1500
    timeout_seconds: int = 30
    tls_verify: bool = True


@dataclass(frozen=True)
class Metrics:
    listen: str                    # 'host:port' ('*:port': every address); see maild/metrics.py

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) to bind; '' for every local address."""
        host, port = parse_listen(self.listen)
        return host or "", port


@dataclass(frozen=True)
class Settings:
    database_url: str              # for playhouse.db_url.connect; sqlite: sqlite:////abs/path
    spool_dir: Path
    listen: Listen
    outbound: Outbound
    helpdesk: Helpdesk
    trust: Trust
    rules_path: Path
    limits: Limits
    log_level: str                 # one of LOG_LEVELS
    config_path: Path              # absolute path of the file these came from
    scheduler: Scheduler = Scheduler()
    imap: tuple[ImapAccount, ...] = ()
    log_format: str = "text"               # one of LOG_FORMATS
    metrics: Metrics | None = None         # None: no /metrics endpoint

    @property
    def warnings(self) -> tuple[str, ...]:
        """Settings that load but that the sysadmin should hear about at every start."""
        return (TRUST_NONE_WARNING,) if self.trust.agents == "none" else ()

    @property
    def sqlite_path(self) -> Path | None:
        """The database file when the database is SQLite, else None."""
        if not self.database_url.startswith("sqlite:///"):
            return None
        return Path(self.database_url[len("sqlite:///"):])


def default_config_path() -> Path:
    """$MAILD_CONFIG when set, else /etc/maild/maild.yaml."""
    return Path(os.environ.get("MAILD_CONFIG") or DEFAULT_CONFIG_PATH)


# --- the file's shape ---------------------------------------------------------------------

class _Listen(StrictModel):
    lmtp: ListenSpec | None = None
    smtp: ListenSpec | None = None


class _Outbound(StrictModel):
    relay: Annotated[str, AfterValidator(_check_relay)]
    max_attempts: Annotated[int, Field(ge=1)] = 10
    mail_from: Address | None = None


class _Helpdesk(StrictModel):
    name: Annotated[str, AfterValidator(_check_name)]
    address: Address
    token_prefix: Annotated[str, AfterValidator(_check_token_prefix)]
    hostname: Annotated[str, AfterValidator(_check_hostname)] | None = None
    comment_address: Address | None = None
    unknown_sender: Annotated[str, AfterValidator(_check_unknown_sender)] = "unverified"
    reopen_days: Annotated[int, Field(ge=0)] = 14
    expose_agent_address: bool = False


class _Trust(StrictModel):
    agents: Annotated[str, AfterValidator(_check_trust_policy)] = AUTHENTICATION_RESULTS
    authserv_id: str | None = None

    @field_validator("authserv_id")
    @classmethod
    def _authserv_id(cls, value: str | None, info: ValidationInfo) -> str | None:
        """Only checked (and only used) with agents: authentication-results; a key left out
        is not checked at all (its default comes from helpdesk.hostname)."""
        if info.data.get("agents") != AUTHENTICATION_RESULTS:
            return value
        if not value:
            raise ValueError("empty: write the authserv-id your MTA puts first in its "
                             "Authentication-Results header, or leave the key out to use "
                             "helpdesk.hostname")
        return _check_authserv_id(value)


_PARSE = parse_limits.Limits()


class _Limits(StrictModel):
    max_message_size: Size = DEFAULT_MAX_MESSAGE_SIZE
    auto_replies_per_hour: Annotated[int, Field(ge=0)] = 3
    max_header_bytes: Size = _PARSE.max_header_bytes
    max_headers: Annotated[int, Field(ge=1)] = _PARSE.max_headers
    max_mime_parts: Annotated[int, Field(ge=1)] = _PARSE.max_mime_parts
    max_mime_depth: Annotated[int, Field(ge=1)] = _PARSE.max_mime_depth
    max_attachments: Annotated[int, Field(ge=1)] = _PARSE.max_attachments
    max_attachment_size: Size = _PARSE.max_attachment_size
    # loop brakes (DESIGN §1.5)
    auto_replies_per_ticket_per_hour: Annotated[int, Field(ge=0)] = 3
    burst_window_minutes: Annotated[int, Field(ge=0, le=1440)] = 10


class _Scheduler(StrictModel):
    sla_sweep_seconds: Annotated[int, Field(ge=1)] = 30
    housekeeping_minutes: Annotated[int, Field(ge=1)] = 60
    close_resolved_after_days: Annotated[int, Field(ge=0)] = 7


def _check_metrics_listen(value: str) -> str:
    if isinstance(parse_listen(value), Path):
        raise ValueError(f"expected host:port (Prometheus scrapes over TCP), got {value!r}")
    return value


class _Metrics(StrictModel):
    listen: Annotated[str, AfterValidator(_check_metrics_listen)]


def _check_log_format(value: str) -> str:
    if value not in LOG_FORMATS:
        raise ValueError(f"unknown log format {value!r}; use one of {', '.join(LOG_FORMATS)}")
    return value


def _check_imap_url(value: str) -> str:
    parse_imap_url(value)
    return value


def _check_after(value: str) -> str:
    parse_after(value)
    return value


class _Imap(StrictModel):
    name: Annotated[str, AfterValidator(check_account_name)]
    url: Annotated[str, AfterValidator(_check_imap_url)]
    password_file: PathText | None = None
    password_env: Annotated[str, Field(min_length=1)] | None = None
    recipient: Address
    after: Annotated[str, AfterValidator(_check_after)] = "keep"
    batch: Annotated[int, Field(ge=1, le=200)] = 100     # le: aioimaplib parses a response recursively, a frame a line
    poll_seconds: Annotated[int, Field(ge=1)] = 300
    idle_seconds: Annotated[int, Field(ge=1, le=1740)] = 1500
    timeout_seconds: Annotated[int, Field(ge=1)] = 30
    tls_verify: bool | None = None


class _SettingsFile(StrictModel):
    database: Annotated[str, AfterValidator(_check_database)]
    spool: PathText
    listen: _Listen | None = None          # an empty `listen:` means no listeners
    outbound: _Outbound
    helpdesk: _Helpdesk
    trust: _Trust | None = None            # left out: authentication-results from our MTA
    rules: PathText
    limits: _Limits | None = None
    scheduler: _Scheduler | None = None
    imap: list[_Imap] | None = None
    log_level: Annotated[str, AfterValidator(_check_log_level)] = "info"
    log_format: Annotated[str, AfterValidator(_check_log_format)] = "text"
    metrics: _Metrics | None = None


# --- checks across keys: each yields (key path, message) ---------------------------------

def _distinct_listeners(settings: Settings) -> Iterator[tuple[KeyPath, str]]:
    lmtp, smtp = settings.listen.lmtp, settings.listen.smtp
    if lmtp and smtp and parse_listen(lmtp) == parse_listen(smtp) and not lmtp.endswith(":0"):
        yield ("listen", "smtp"), f"the same address as listen.lmtp ({lmtp})"


def _comment_address_is_not_the_main_one(settings: Settings) -> Iterator[tuple[KeyPath, str]]:
    comment = settings.helpdesk.comment_address
    if comment is not None and comment == settings.helpdesk.address.lower():
        yield (("helpdesk", "comment_address"),
               f"the same address as helpdesk.address ({settings.helpdesk.address}); internal "
               "notes need an address of their own, e.g. support+comment@example.com")


def _distinct_imap_accounts(settings: Settings) -> Iterator[tuple[KeyPath, str]]:
    names: dict[str, int] = {}
    mailboxes: dict[tuple, int] = {}
    for i, account in enumerate(settings.imap):
        if account.name in names:
            yield ("imap", i, "name"), (f"imap[{names[account.name]}] has the same name; "
                                        "each account needs a name of its own")
        names.setdefault(account.name, i)
        mailbox = (account.host.lower(), account.port, account.user, folder_key(account.folder))
        if mailbox in mailboxes:
            yield ("imap", i, "url"), (f"the same mailbox folder as imap[{mailboxes[mailbox]}]; "
                                       "two accounts would race on it")
        mailboxes.setdefault(mailbox, i)
        moves_to = account.move_to and folder_key(account.move_to)
        if moves_to == folder_key(account.folder):     # INBOX in any case: RFC 3501 §5.1
            yield ("imap", i, "after"), f"moves mail to the folder it reads ({account.folder})"


CHECKS: tuple[Callable[[Settings], Iterator[tuple[KeyPath, str]]], ...] = (
    _distinct_listeners,
    _comment_address_is_not_the_main_one,
    _distinct_imap_accounts,
)


# --- loading ------------------------------------------------------------------------------

def load_settings(path: Path) -> Settings:
    """Read and validate maild.yaml; raise ConfigError naming every problem found."""
    data, locator = load_yaml(path)
    doc = validate(_SettingsFile, data, locator, path)
    config_path = Path(os.path.abspath(path))
    passwords, unreadable = _imap_passwords(doc.imap or (), config_path.parent)
    settings = _build(doc, config_path, passwords)
    problems = [problem_at(path, locator, key, message)
                for check in CHECKS for key, message in check(settings)]
    problems += [problem_at(path, locator, key, message) for key, message in unreadable]
    if problems:
        raise ConfigError(problems)
    return settings


def _imap_passwords(accounts, base: Path) -> tuple[list[str], list[tuple[KeyPath, str]]]:
    """Each account's password (read now: a mistake is named at start), and the problems."""
    passwords, problems = [], []
    for i, account in enumerate(accounts):
        password = ""
        if (account.password_file is None) == (account.password_env is None):
            problems.append((("imap", i), "give exactly one of password_file and password_env"))
        elif account.password_file is not None:
            path = Path(os.path.normpath(base / account.password_file))
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
                problems.append((("imap", i, "password_file"), f"cannot read {path}: {reason}"))
            else:
                password = text[:-2] if text.endswith("\r\n") else text.removesuffix("\n")
                if not password:
                    problems.append((("imap", i, "password_file"), f"{path} is empty"))
        else:
            password = os.environ.get(account.password_env, "")
            if not password:
                problems.append((("imap", i, "password_env"),
                                 f"the environment variable {account.password_env} is not set "
                                 "or empty"))
        if any(c in password for c in "\r\n\0"):
            key = "password_file" if account.password_file is not None else "password_env"
            problems.append((("imap", i, key), "the password contains a line break or NUL "
                             "(only one trailing newline is dropped)"))
        passwords.append(password)
    for i, account in enumerate(accounts):
        if account.tls_verify is not None and not parse_imap_url(account.url).tls:
            problems.append((("imap", i, "tls_verify"), "only for imaps:// URLs"))
    return passwords, problems


def _imap_account(doc: _Imap, password: str) -> ImapAccount:
    url = parse_imap_url(doc.url)
    after, move_to = parse_after(doc.after)
    return ImapAccount(name=doc.name, url=doc.url, tls=url.tls, host=url.host, port=url.port,
                       user=url.user, folder=url.folder, recipient=doc.recipient.lower(),
                       after=after, move_to=move_to, password=password, batch=doc.batch,
                       poll_seconds=doc.poll_seconds, idle_seconds=doc.idle_seconds,
                       timeout_seconds=doc.timeout_seconds,
                       tls_verify=True if doc.tls_verify is None else doc.tls_verify)


def _build(doc: _SettingsFile, config_path: Path, imap_passwords: list[str] = ()) -> Settings:
    base = config_path.parent

    def resolve(path: str) -> Path:
        return Path(os.path.normpath(base / path))  # base / '/abs' is '/abs'

    listen = doc.listen or _Listen()
    limits = doc.limits or _Limits()
    trust = doc.trust or _Trust()
    desk = doc.helpdesk
    hostname = (desk.hostname or desk.address.rpartition("@")[2]).lower()
    authserv_id = None
    if trust.agents == AUTHENTICATION_RESULTS:
        authserv_id = (trust.authserv_id or hostname).lower()
    return Settings(
        database_url=_database_url(doc.database, resolve),
        spool_dir=resolve(doc.spool),
        listen=Listen(lmtp=_listen(listen.lmtp, resolve), smtp=_listen(listen.smtp, resolve)),
        outbound=Outbound(relay=_relay(doc.outbound.relay, resolve),
                          max_attempts=doc.outbound.max_attempts,
                          mail_from=doc.outbound.mail_from or doc.helpdesk.address),
        helpdesk=Helpdesk(name=desk.name, address=desk.address, token_prefix=desk.token_prefix,
                          hostname=hostname,
                          comment_address=desk.comment_address and desk.comment_address.lower(),
                          unknown_sender=desk.unknown_sender, reopen_days=desk.reopen_days,
                          expose_agent_address=desk.expose_agent_address),
        trust=Trust(agents=trust.agents, authserv_id=authserv_id),
        rules_path=resolve(doc.rules),
        limits=Limits(max_message_size=limits.max_message_size,
                      auto_replies_per_hour=limits.auto_replies_per_hour,
                      parse=parse_limits.Limits(
                          max_header_bytes=limits.max_header_bytes, max_headers=limits.max_headers,
                          max_mime_parts=limits.max_mime_parts, max_mime_depth=limits.max_mime_depth,
                          max_attachments=limits.max_attachments,
                          max_attachment_size=limits.max_attachment_size),
                      auto_replies_per_ticket_per_hour=limits.auto_replies_per_ticket_per_hour,
                      burst_window_minutes=limits.burst_window_minutes),
        log_level=doc.log_level,
        config_path=config_path,
        scheduler=Scheduler(**(doc.scheduler or _Scheduler()).model_dump()),
        imap=tuple(_imap_account(account, password)
                   for account, password in zip(doc.imap or (), imap_passwords)),
        log_format=doc.log_format,
        metrics=Metrics(listen=_listen(doc.metrics.listen, resolve)) if doc.metrics else None,
    )


def _database_url(value: str, resolve: Callable[[str], Path]) -> str:
    scheme, _, rest = value.partition(":")
    if scheme.lower() != "sqlite":
        return value
    # peewee (like SQLAlchemy) drops one '/' after 'sqlite://': four slashes, absolute path
    return f"sqlite:///{resolve(_sqlite_path(rest))}"


def _listen(spec: str | None, resolve: Callable[[str], Path]) -> str | None:
    if spec is None:
        return None
    where = parse_listen(spec)
    if isinstance(where, Path):
        return f"unix:{resolve(str(where))}"
    host, port = where
    if host is None:
        return f"*:{port}"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _relay(value: str, resolve: Callable[[str], Path]) -> str:
    """A relative Maildir path resolved, read as the relay reads it (percent-decoded, up
    to any '?' or '#') and written back so that it reads the same; other URLs unchanged."""
    if value.partition(":")[0].lower() != "maildir":
        return value
    path = str(resolve(unquote(urlsplit(value).path)))
    if path.startswith("//"):                     # 'maildir://x' would name a host
        path = "/" + path.lstrip("/")
    return "maildir:" + path.replace("%", "%25").replace("?", "%3F").replace("#", "%23")
