"""The `maild` command: one program for the daemon, the pipe and the admin's questions.

    maild [-c CONFIG] init                    create the database schema and the spool
    maild [-c CONFIG] serve [--single-process] [--log-format text|json]
                                              run the listeners; processing in a child
    maild [-c CONFIG] process [--log-format text|json]
                                              process the spool and send mail, no listeners
    maild [-c CONFIG] status [--json]         spool, outbox, tickets, SLA (24 h), the daemon's live numbers
    maild [-c CONFIG] ingest [--recipient A]  read one message on stdin (Postfix pipe, procmail)
    maild [-c CONFIG] check                   validate maild.yaml, rules.yaml and templates
    maild [-c CONFIG] rules check [FILE]      validate a rules file (exit 0/1)
    maild [-c CONFIG] rules test MESSAGE.eml [--json] [--recipient A] [--at T] [--new|--reply]
                                              which rules match a message and why; changes nothing
    maild [-c CONFIG] reload                  check the rules, then make the daemon reload them
    maild [-c CONFIG] sla show N [--json] [--now T]   a ticket's SLA clocks
    maild [-c CONFIG] sla sweep [--now T] [--dry-run] [--json]   send the escalations due
    maild [-c CONFIG] report [--since DATE] [--json] [--now T]   response times, SLA compliance, breaches
    maild [-c CONFIG] tickets [--status S] [--assignee A] [--queue Q] [--json]
    maild [-c CONFIG] show N [--json]
    maild [-c CONFIG] outbox [--status S] [--json]
    maild [-c CONFIG] bounces [--unmatched] [--limit N] [--json]   bounces received and what they matched
    maild [-c CONFIG] quarantine list [--json] | replay ID
    maild [-c CONFIG] export [--since DATE] [--until DATE] [--output FILE] [--with-raw]
                                              tickets and their messages as JSON lines

CONFIG defaults to $MAILD_CONFIG, else /etc/maild/maild.yaml.  Exit codes follow
sysexits: 0 ok, 1 a check failed, 64 usage, 75 (EX_TEMPFAIL) `ingest` could not make the
message durable so the MTA must retry, 78 (EX_CONFIG) the configuration is wrong.
"""
from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from pathlib import Path


log = logging.getLogger(__name__)

EX_OK, EX_FAILED, EX_USAGE, EX_NOINPUT, EX_TEMPFAIL, EX_CONFIG = 0, 1, 64, 66, 75, 78


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="maild", description="Email-driven help desk daemon.")
    p.add_argument("-c", "--config", type=Path, help="maild.yaml (default $MAILD_CONFIG or /etc/maild/maild.yaml)")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("init", help="create or upgrade the database schema and the spool")
    serve = sub.add_parser("serve", help="run the daemon")
    serve.add_argument("--single-process", action="store_true",
                       help="process mail in the listening process (default: a child process)")
    process = sub.add_parser("process", help="the processing half of serve (started by serve)")
    process.add_argument("--wake-fd", type=int, default=None, help=argparse.SUPPRESS)
    for daemon in (serve, process):
        daemon.add_argument("--log-format", choices=("text", "json"), default=None,
                            help="one line of text (default) or one JSON object per event; "
                                 "default $MAILD_LOG_FORMAT, else maild.yaml log_format")
    status = sub.add_parser("status", help="spool, outbox, tickets and SLA numbers; the running "
                                           "daemon's live ones if metrics are on")
    status.add_argument("--json", action="store_true")
    status.add_argument("--now", help="count SLA mail in the 24 h before this time, ISO 8601 (default: now)")
    ingest = sub.add_parser("ingest", help="read one message on stdin and process it")
    ingest.add_argument("--recipient", action="append", default=[], help="envelope recipient (repeatable)")
    ingest.add_argument("--sender", default=None,
                        help="envelope sender ('' for the null sender <>; unknown if absent)")
    ingest.add_argument("--no-send", action="store_true", help="queue outbound mail but do not deliver it now")
    sub.add_parser("check", help="validate configuration, rules and templates")
    rules = sub.add_parser("rules", help="check rules.yaml, or explain how a message is routed")
    rsub = rules.add_subparsers(dest="action", required=True)
    rcheck = rsub.add_parser("check", help="validate a rules file (default: the configured one)")
    rcheck.add_argument("file", nargs="?", type=Path)
    rtest = rsub.add_parser("test", help="show which rules match MESSAGE.eml and why")
    rtest.add_argument("message", help="a message file (RFC 5322), or - for stdin")
    rtest.add_argument("--json", action="store_true")
    rtest.add_argument("--recipient", action="append", default=[],
                       help="envelope recipient (default: our address in To/Cc)")
    rtest.add_argument("--at", help="arrival time, ISO 8601 (default: now), for business_hours")
    rtest.add_argument("--sender", default=None,
                       help="envelope sender ('' for the null sender <>); unknown if absent")
    case = rtest.add_mutually_exclusive_group()
    case.add_argument("--new", action="store_true", help="evaluate as a new ticket")
    case.add_argument("--reply", action="store_true", help="evaluate as a reply to a ticket")
    sub.add_parser("reload", help="check the rules, then make the running daemon reload them")
    sla = sub.add_parser("sla", help="SLA clocks")
    ssub = sla.add_subparsers(dest="action", required=True)
    sshow = ssub.add_parser("show", help="a ticket's clocks: target, used, left, due")
    sshow.add_argument("number", type=int)
    sshow.add_argument("--json", action="store_true")
    sshow.add_argument("--now", help="as of this time, ISO 8601 (default: now)")
    ssweep = ssub.add_parser("sweep", help="send the escalation steps due (as the scheduler does)")
    ssweep.add_argument("--now", help="as of this time, ISO 8601 (default: now)")
    ssweep.add_argument("--dry-run", action="store_true", help="show what would be sent; change nothing")
    ssweep.add_argument("--json", action="store_true")
    report = sub.add_parser("report", help="first-response and resolution times, SLA compliance, breaches")
    report.add_argument("--since", help="tickets created since DATE (YYYY-MM-DD, UTC) or an ISO 8601 time "
                                        "(default: 30 days ago)")
    report.add_argument("--json", action="store_true")
    report.add_argument("--now", help="as of this time, ISO 8601 (default: now)")
    tickets = sub.add_parser("tickets", help="list tickets")
    tickets.add_argument("--status")
    tickets.add_argument("--assignee", help="an agent's address")
    tickets.add_argument("--queue")
    tickets.add_argument("--json", action="store_true")
    show = sub.add_parser("show", help="show one ticket")
    show.add_argument("number", type=int)
    show.add_argument("--json", action="store_true")
    outbox = sub.add_parser("outbox", help="list outbound mail")
    outbox.add_argument("--status")
    outbox.add_argument("--json", action="store_true")
    bounces = sub.add_parser("bounces", help="bounces received, newest first, and the mail each returns")
    bounces.add_argument("--unmatched", action="store_true", help="only those matched to no ticket")
    bounces.add_argument("--limit", type=int, default=1000, help="at most this many (default 1000)")
    bounces.add_argument("--json", action="store_true")
    quarantine = sub.add_parser("quarantine", help="messages that could not be processed")
    qsub = quarantine.add_subparsers(dest="action", required=True)
    qlist = qsub.add_parser("list")
    qlist.add_argument("--json", action="store_true")
    replay = qsub.add_parser("replay")
    replay.add_argument("id", type=int)
    export = sub.add_parser("export", help="tickets with their messages as JSON lines, one ticket a line")
    export.add_argument("--since", help="tickets changed since DATE (YYYY-MM-DD, UTC) or an ISO 8601 time")
    export.add_argument("--until", help="tickets changed before DATE (YYYY-MM-DD, UTC) or an ISO 8601 time")
    export.add_argument("--output", type=Path, help="write to FILE (whole or not at all) instead of stdout")
    export.add_argument("--with-raw", action="store_true",
                        help="include each message's raw bytes, base64 (raw_base64)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command in ("serve", "process"):
        # A reload asked for while starting must not kill the daemon (SIGHUP's default
        # action is to exit): ignore it before the slow imports; the daemon installs
        # its own handler once its loop runs.
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    from maild import commands

    if args.command == "bounces":
        from maild.bounce_commands import cmd_bounces as handler
    elif args.command == "status":
        from maild.status_commands import cmd_status as handler
    else:
        handler = getattr(commands, "cmd_" + args.command)
    try:
        return handler(args)
    except commands.ConfigurationFailed as exc:
        print(f"maild: configuration error:\n{exc}", file=sys.stderr)
        return EX_CONFIG
    except commands.SchemaMissing as exc:
        print(f"maild: {exc}", file=sys.stderr)
        return EX_FAILED
    except BrokenPipeError:
        return EX_OK


def print_json(value) -> None:
    json.dump(value, sys.stdout, indent=2, ensure_ascii=False, default=str)
    sys.stdout.write("\n")


if __name__ == "__main__":
    sys.exit(main())
