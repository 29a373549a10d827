"""`maild rules check`, `maild rules test` and `maild reload`: the admin's tools for rules.yaml.

    maild rules check [FILE]                 validate FILE (default: the configured rules);
                                             exit 0 when valid, 1 with every problem
                                             listed as file:line:column otherwise
    maild rules test MESSAGE.eml [--json] [--recipient ADDR] [--sender ADDR] [--at ISO-TIME]
                     [--new|--reply]
                                             show, rule by rule, whether it matched and the
                                             condition that decided, then the decision;
                                             changes nothing (no database, no mail)
    maild reload                             check the rules, then ask the running daemon
                                             (pid file in the spool directory) to reload

`rules test` evaluates a message the way the daemon would: the same parser, classifier
and facts, the rules and templates of the configuration.  Whether the message opens a
ticket or answers one is up to the database; without it, `rules test` takes a message
with a ticket token in its subject or with In-Reply-To/References as a reply, others as
new (`--new` / `--reply` decide instead).  `--recipient` is the envelope address (default:
the first of our addresses in To/Cc); `--at` the time it arrives, for `business_hours`
(default: now); `--sender` the envelope sender ('' for the null sender of bounces), which
the classifier looks at as the daemon does.  A team assignment shows the team's policy: which member's turn it is is
decided when the ticket is created.
"""
from __future__ import annotations

import logging
import os
import signal
import sys
from datetime import datetime, timezone
from pathlib import Path

from maild.cli import EX_FAILED, EX_OK, EX_USAGE, print_json

log = logging.getLogger(__name__)

def cmd_rules(args) -> int:
    return {"check": _check, "test": _test}[args.action](args)


def _check(args) -> int:
    """With a maild.yaml: exactly what a reload checks (rules, templates, agents against
    the help desk's addresses).  Without one (a file given on its own): the rules against
    the packaged templates."""
    import templates
    from maild.commands import ConfigurationFailed, _settings
    from maild.runtime import check_acknowledgements, load_policy
    from rules.load import load_rules
    from rules.source import ConfigError

    try:
        settings = _settings(args)
    except ConfigurationFailed as exc:
        if args.file is None:
            raise
        print(f"note: maild.yaml not used ({str(exc).splitlines()[0]})", file=sys.stderr)
        settings = None
    path = Path(args.file) if args.file else settings.rules_path
    try:
        if settings is not None:
            ruleset, _ = load_policy(settings, path)
        else:
            env = templates.default_environment()
            ruleset = load_rules(path, templates=frozenset(env.names()))
            check_acknowledgements(ruleset, env)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        count = len(exc.problems)
        print(f"{path}: {count} problem{'s' if count != 1 else ''}", file=sys.stderr)
        return EX_FAILED
    except templates.TemplateError as exc:
        print(f"templates: {exc}", file=sys.stderr)
        return EX_FAILED
    except OSError as exc:
        print(f"{path}: {exc.strerror or exc}", file=sys.stderr)
        return EX_FAILED
    print(f"{path}: ok ({len(ruleset.queues)} queues, {len(ruleset.teams)} teams, "
          f"{len(ruleset.agents)} agents, {len(ruleset.rules)} rules, "
          f"{len(ruleset.calendars)} calendars, {len(ruleset.sla_policies)} SLA policies)")
    if settings is None:
        print("(no maild.yaml found: template names checked against the packaged templates)")
    return EX_OK


def _test(args) -> int:
    from dataclasses import replace

    from maild.commands import _runtime, _settings
    from maild.envelope import Envelope
    from maild.pipeline import classify_mail, receiving_address, rule_facts
    from parsers import threading as threads
    from parsers.message import MessageRefused, UnparseableMessage, parse
    from rules.engine import explain

    settings = _settings(args)
    runtime = _runtime(settings, spool=NoSpool())
    context = runtime.context()
    try:
        raw = sys.stdin.buffer.read() if args.message == "-" else Path(args.message).read_bytes()
        at = parse_when(args.at)
        mail = parse(raw, context.limits)
    except OSError as exc:
        print(f"maild rules test: {args.message}: {exc.strerror or exc}", file=sys.stderr)
        return EX_USAGE
    except (ValueError, UnparseableMessage, MessageRefused) as exc:  # bad --at; empty; over a limit
        print(f"maild rules test: {exc}", file=sys.stderr)
        return EX_USAGE
    envelope = Envelope(mail_from=args.sender, rcpt_tos=tuple(a.lower() for a in args.recipient),
                        received_via="rules-test")
    verdict = classify_mail(mail, envelope, context)
    recipient = receiving_address(envelope, mail, context)
    token = threads.find_token(mail.subject, context.token_prefix)
    refs = threads.reply_candidates(mail)
    if args.reply or args.new:
        as_reply, why = bool(args.reply), "as asked (--reply)" if args.reply else "as asked (--new)"
    elif token is not None:
        as_reply, why = True, f"its subject carries ticket #{token}"
    elif refs:
        as_reply, why = True, "it has In-Reply-To/References (the database decides in the daemon)"
    else:
        as_reply, why = False, "no ticket token and no references"
    facts = replace(rule_facts(mail, verdict.kind, recipient, context, at), is_reply=as_reply)
    decision, trace = explain(context.ruleset, facts)
    if args.json:
        print_json(_as_json(mail, verdict, recipient, at, as_reply, why, decision, trace))
    else:
        _print(mail, verdict, recipient, at, as_reply, why, decision, trace, context.ruleset.source)
    return EX_OK


def parse_when(text: str | None) -> datetime:
    if not text:
        return datetime.now(timezone.utc)
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--at {text!r}: expected an ISO 8601 time like 2026-11-23T09:00:00+01:00") from None
    return at if at.tzinfo else at.replace(tzinfo=timezone.utc)


def _decision(decision) -> dict:
    return {"queue": decision.queue or None, "priority": decision.priority,
            "assign": str(decision.assign) if decision.assign else None,
            "tags": list(decision.tags), "sla": decision.sla,
            "auto_reply": decision.template if decision.auto_reply else False,
            "discard": decision.discard, "matched": list(decision.matched)}


def _as_json(mail, verdict, recipient, at, as_reply, why, decision, trace) -> dict:
    return {
        "message": {"message_id": mail.message_id, "from": mail.from_address,
                    "subject": mail.subject, "recipient": recipient, "kind": verdict.kind,
                    "received_at": at.isoformat()},
        "evaluated_as": {"case": "reply" if as_reply else "new", "why": why},
        "rules": [{"name": t.name, "line": t.line, "outcome": t.outcome, "reason": t.reason}
                  for t in trace],
        "decision": _decision(decision),
        "explanation": list(decision.explanation),
    }


def _print(mail, verdict, recipient, at, as_reply, why, decision, trace, source) -> None:
    print(f"message <{mail.message_id or 'no Message-ID'}> from {mail.from_address or '(nobody)'}")
    print(f"  subject: {mail.subject!r}")
    print(f"  for {recipient}, {verdict.kind} mail, received {at:%Y-%m-%d %H:%M %Z}")
    print(f"evaluated as {'a reply to a ticket' if as_reply else 'a new ticket'}: {why}")
    print(f"\nrules ({source}):")
    if not trace:
        print("  (none)")
    for number, rule in enumerate(trace, 1):
        print(f"  {number:>3}. {rule.outcome:<11} {rule.name!r} (line {rule.line})")
        print(f"       {rule.reason}")
    print("\ndecision:")
    for line in decision.explanation:
        print(f"  {line}")


class NoSpool:
    """`rules test` opens no spool: it changes nothing."""

    def close(self) -> None:
        pass


# --- reload -------------------------------------------------------------------------------

def cmd_reload(args) -> int:
    from maild.commands import _settings
    from maild.pidfile import DaemonNotRunning, running_pid
    from maild.runtime import load_policy
    from rules.source import ConfigError
    from templates import TemplateError

    settings = _settings(args)
    try:
        load_policy(settings)
    except (ConfigError, TemplateError) as exc:
        print(exc, file=sys.stderr)
        print("not reloaded: the daemon would refuse these rules and keep its last good ones",
              file=sys.stderr)
        return EX_FAILED
    try:
        pid = running_pid(settings.spool_dir)
    except DaemonNotRunning as exc:
        print(f"maild reload: {exc}", file=sys.stderr)
        return EX_FAILED
    try:
        os.kill(pid, signal.SIGHUP)
    except OSError as exc:
        print(f"maild reload: cannot signal maild (pid {pid}): {exc.strerror}; run as its "
              "user or use `systemctl reload maild`", file=sys.stderr)
        return EX_FAILED
    print(f"rules valid; asked maild (pid {pid}) to reload {settings.rules_path}")
    return EX_OK
