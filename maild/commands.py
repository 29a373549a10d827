"""The bodies of the `maild` subcommands (see `maild.cli` for the manual).

Each `cmd_<name>(args) -> exit code` loads the settings once, does its work and prints
for people, or JSON with `--json`.
"""
from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path

from maild import logs
from maild.cli import EX_FAILED, EX_OK, EX_TEMPFAIL, print_json

log = logging.getLogger(__name__)


class ConfigurationFailed(Exception):
    """maild.yaml or rules.yaml is unusable (the text names file:line and key)."""


def _settings(args):
    from maild.config import default_config_path, load_settings
    from rules.source import ConfigError

    path = args.config or default_config_path()
    try:
        return load_settings(Path(path))
    except ConfigError as exc:
        raise ConfigurationFailed(str(exc)) from exc
    except OSError as exc:
        raise ConfigurationFailed(f"{path}: {exc.strerror or exc}") from exc


def _runtime(settings, spool=None):
    from maild.runtime import Runtime
    from rules.source import ConfigError
    from templates import TemplateError

    try:
        return Runtime.open(settings, spool=spool)
    except (ConfigError, TemplateError) as exc:
        raise ConfigurationFailed(str(exc)) from exc
    except OSError as exc:
        raise ConfigurationFailed(f"{settings.rules_path}: {exc.strerror or exc}") from exc


class SchemaMissing(Exception):
    """The database has no maild schema yet."""


def _read_database(settings):
    """Open the database for questions; never changes the schema."""
    from store.db import open_database
    from store.migrations import current_version

    db = open_database(settings.database_url)
    if current_version(db) is None:
        raise SchemaMissing(f"no maild schema in the database; run `maild -c {settings.config_path} init`")
    return db


def cmd_init(args) -> int:
    from store.migrations import migrate

    settings = _settings(args)
    logs.configure(settings.log_level)
    runtime = _runtime(settings)
    before, after = migrate(runtime.open_database(upgrade=False))
    runtime.spool.close()
    what = "created" if before is None else ("up to date" if before == after else f"upgraded from {before}")
    print(f"database {what} at schema version {after}; spool at {settings.spool_dir}")
    return EX_OK


def _daemon_logs(args, settings) -> None:
    """Logging for serve/process; a --log-format given to serve reaches the child too."""
    log_format = logs.chosen_format(args.log_format, settings.log_format)
    os.environ[logs.ENV_FORMAT] = log_format
    logs.configure(settings.log_level, log_format)


def cmd_serve(args) -> int:
    # SIGHUP is ignored from `maild.cli.main` on (a reload while starting must not kill us)
    settings = _settings(args)
    _daemon_logs(args, settings)
    if settings.metrics is not None and not args.single_process:
        from maild.metrics import use_multiprocess    # before prometheus-client is imported

        use_multiprocess(settings.spool_dir)
    from maild.daemon import BOTH, INTAKE, serve

    ok = asyncio.run(serve(_runtime(settings), role=BOTH if args.single_process else INTAKE))
    return EX_OK if ok else EX_FAILED


def cmd_process(args) -> int:
    # SIGHUP is ignored from `maild.cli.main` on (a reload forwarded before our handlers exist)
    settings = _settings(args)
    _daemon_logs(args, settings)
    from maild.daemon import PROCESSING, serve

    ok = asyncio.run(serve(_runtime(settings), role=PROCESSING, wake_fd=args.wake_fd))
    return EX_OK if ok else EX_FAILED


def cmd_ingest(args) -> int:
    """Spool stdin durably (exit 75 if impossible), then process and send what is due."""
    from maild.envelope import Envelope
    from maild.spool import Spool, SpoolBusy, SpoolError

    raw = sys.stdin.buffer.read()
    try:
        settings = _settings(args)
    except ConfigurationFailed as exc:
        print(f"maild ingest: configuration error, message not accepted:\n{exc}", file=sys.stderr)
        return EX_TEMPFAIL
    logs.configure(settings.log_level)
    envelope = Envelope(mail_from=args.sender,
                        rcpt_tos=tuple(a.lower() for a in args.recipient), received_via="ingest")
    try:
        spool = Spool(settings.spool_dir)
        spool_id = spool.put(raw, envelope)
    except (SpoolError, OSError) as exc:
        print(f"maild ingest: could not spool the message, retry later: {exc}", file=sys.stderr)
        return EX_TEMPFAIL
    try:
        _process_spool(settings, spool, send=not args.no_send)
    except SpoolBusy:
        log.info("spool item %d accepted; the running daemon will process it", spool_id)
    except Exception as exc:  # noqa: BLE001 - the message is durable; the daemon retries it
        log.error("spool item %d accepted but not processed yet: %s", spool_id, exc)
    finally:
        spool.close()
    return EX_OK


def _process_spool(settings, spool, *, send: bool) -> None:
    """Process what waits in `spool` (ours, or left over), then deliver due mail once."""
    from maild.outbound import Sender
    from maild.relay import relay_from_url
    from maild.worker import Worker

    runtime = _runtime(settings, spool)
    db = runtime.open_database()
    worker = Worker(spool, db, runtime.context)
    while worker.process_available():
        pass
    if send:
        async def inline(fn, *a):
            return fn(*a)

        sender = Sender(relay_from_url(settings.outbound.relay), inline, db=db,
                        max_attempts=settings.outbound.max_attempts,
                        loop_value=settings.helpdesk.hostname,
                        envelope_from=settings.outbound.mail_from)
        try:
            asyncio.run(asyncio.wait_for(sender.send_due(), timeout=30))
        except Exception as exc:  # noqa: BLE001 - rows stay queued for the daemon
            log.warning("outbound mail stays queued: %s", exc)
    db.close()


def cmd_check(args) -> int:
    """Like `nginx -t`: maild.yaml (a fault there exits 78, see maild.cli), rules.yaml, and
    every template compiled and rendered with sample data (a built-in with its own, one a
    rule or an SLA escalation names with what it gets there).  Every problem found is
    printed, each starting with file:line; exit 1 if there was any.  (A template that
    doesn't compile stops the template checks there, as in `nginx -t`.)"""
    import templates
    from maild.runtime import _override_dir, load_policy
    from rules.load import load_rules
    from rules.source import ConfigError

    settings = _settings(args)
    problems, env, ruleset = [], None, None
    try:
        env = templates.TemplateEnvironment(_override_dir(settings))    # compiles them all
    except templates.TemplateError as exc:
        problems.append(str(exc))
    for name in env.names() if env else ():
        if name in templates.SAMPLE_CONTEXTS:
            try:
                env.render(name, templates.SAMPLE_CONTEXTS[name])
            except templates.TemplateError as exc:
                problems.append(str(exc))
    try:
        if env is None:
            load_rules(settings.rules_path)        # the rules alone: no template names to check
        else:
            ruleset, env = load_policy(settings)   # the rules, and the templates they name
    except ConfigError as exc:
        problems.append(str(exc))
    except OSError as exc:
        problems.append(f"{settings.rules_path}: {exc.strerror or exc}")
    if problems:
        print("\n".join(problems), file=sys.stderr)
        print(f"maild check: failed ({len(problems)} problem(s) above)", file=sys.stderr)
        return EX_FAILED
    warnings = [f"{settings.config_path}: warning: {w}" for w in settings.warnings]
    for warning in warnings + _unused_templates(ruleset, env):     # valid, but worth knowing
        print(warning, file=sys.stderr)
    queues = ", ".join(f"{q.name} <{q.address}>" for q in ruleset.queues)
    print(f"{settings.config_path}: ok\n{settings.rules_path}: ok ({queues})\n"
          f"templates: ok ({', '.join(env.names())})")
    return EX_OK


def _unused_templates(ruleset, env) -> list[str]:
    """Site templates that no rule, escalation or built-in mail uses (a misspelt name?)."""
    import templates

    used = set(templates.SAMPLE_CONTEXTS)
    used.update(r.then.auto_reply for r in ruleset.rules if isinstance(r.then.auto_reply, str))
    used.update(step.template for policy in ruleset.sla_policies for step in policy.escalations)
    return [f"{env.override_dir}/{name}{templates.TEXT_SUFFIX}: warning: named by no rule "
            f"or escalation, never sent" for name in env.names() if name not in used]


def _listing(args, rows, line, noun: str) -> int:
    """Print `rows` as JSON (--json) or one `line(row)` each and a count."""
    if args.json:
        print_json(rows)
        return EX_OK
    for row in rows:
        print(line(row))
    print(f"{len(rows)} {noun}")
    return EX_OK


def cmd_tickets(args) -> int:
    from store.views import list_tickets

    _read_database(_settings(args))
    rows = list_tickets(args.status, assignee=args.assignee, queue=args.queue)
    return _listing(args, rows, lambda t: (
        f"#{t['number']:<6} {t['status']:<8} {t['priority']:<7} {t['queue']:<10} "
        f"{t['requester']:<30} {(t['assignee'] or '-'):<24} {t['messages']:>3} msg  {t['subject']}"),
        "ticket(s)")


# How `maild show` labels each message (direction, kind) for people; --json has the fields.
MESSAGE_LABELS = {
    ("in", "agent_reply"): "AGENT REPLY (sent to the customer)",
    ("in", "note"): "INTERNAL NOTE",
    ("in", "command"): "AGENT COMMANDS",
    ("in", "refused"): "AGENT MAIL REFUSED (nothing applied)",
    ("in", "discarded"): "DISCARDED by the rules (answered never)",
    ("out", "ack"): "acknowledgement to the customer",
    ("out", "reply"): "reply relayed to the customer",
    ("out", "notify"): "notification to an agent",
    ("out", "command_error"): "command error to the agent",
}


def _message_label(m: dict) -> str:
    label = MESSAGE_LABELS.get((m["direction"], m["kind"]))
    if label is None:
        label = f"customer mail ({m['kind']})" if m["direction"] == "in" else m["kind"]
    if m["unverified"]:
        label += " [UNVERIFIED SENDER: not on this ticket]"
    if m["auth"]:
        label += f" [AGENT ADDRESS NOT PROVEN: {m['auth']}]"
    return label


def cmd_show(args) -> int:
    from store.views import TicketNotFound, show_ticket

    _read_database(_settings(args))
    try:
        ticket = show_ticket(args.number)
    except TicketNotFound as exc:
        print(f"maild: {exc}", file=sys.stderr)
        return EX_FAILED
    if args.json:
        print_json(ticket)
        return EX_OK
    print(f"Ticket #{ticket['number']}: {ticket['subject']}")
    print(f"  status {ticket['status']}, priority {ticket['priority']}, queue {ticket['queue']}, "
          f"requester {ticket['requester']}, assignee {ticket['assignee'] or '-'}"
          + (f", tags {' '.join(ticket['tags'])}" if ticket["tags"] else "")
          + (f", SLA {ticket['sla']}" if ticket.get("sla") else "")
          + (f", linked to #{ticket['linked_to']}" if ticket["linked_to"] else ""))
    for m in ticket["messages"]:
        print(f"\n--- {_message_label(m)}, {m['created_at']}, from {m['from']} to {m['to']}")
        print(f"    Subject: {m['subject']}")
        print("    " + (m["text"] or "").strip().replace("\n", "\n    "))
    print("\nEvents:")
    for e in ticket["events"]:
        print(f"  {e['at']} {e['actor']} {e['kind']} {e['detail']}")
    return EX_OK


def cmd_outbox(args) -> int:
    from store.views import list_outbox

    _read_database(_settings(args))
    return _listing(args, list_outbox(args.status), lambda r: (
        f"#{r['ticket']:<6} {r['status']:<7} {r['attempts']} {r['template']:<6} "
        f"{r['to']:<30} {r['subject']}" + (f"  ({r['last_error']})" if r["last_error"] else "")),
        "outbound mail(s)")


def cmd_quarantine(args) -> int:
    from maild.spool import Spool, SpoolBusy, UnknownSpoolItem

    settings = _settings(args)
    with Spool(settings.spool_dir) as spool:
        if args.action == "list":
            _print_quarantine(spool.quarantined(), as_json=args.json)
            return EX_OK
        try:
            spool.replay(args.id)
        except UnknownSpoolItem:
            print(f"maild: no quarantined message {args.id}", file=sys.stderr)
            return EX_FAILED
        print(f"spool item {args.id} queued for processing again")
        try:
            _process_spool(settings, spool, send=True)
        except SpoolBusy:
            print("the running daemon will process it")
    return EX_OK


def _print_quarantine(items, *, as_json: bool) -> None:
    rows = [{"id": i.id, "received_at": i.received_at.isoformat(timespec="seconds"),
             "size": len(i.raw), "attempts": i.attempts, "reason": i.last_error,
             "mail_from": i.envelope.mail_from, "rcpt_tos": list(i.envelope.rcpt_tos)}
            for i in items]
    if as_json:
        print_json(rows)
        return
    for r in rows:
        print(f"{r['id']:>6} {r['received_at']} {r['size']:>8} B  {r['reason']}")
    print(f"{len(rows)} quarantined message(s)")


def cmd_rules(args) -> int:
    from maild.rules_commands import cmd_rules as run
    return run(args)


def cmd_reload(args) -> int:
    from maild.rules_commands import cmd_reload as run
    return run(args)


def cmd_sla(args) -> int:
    from maild.sla_commands import cmd_sla as run
    return run(args)


def cmd_report(args) -> int:
    from maild.report_commands import cmd_report as run
    return run(args)


def cmd_export(args) -> int:
    from maild.export_commands import cmd_export as run
    return run(args)
