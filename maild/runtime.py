"""Build the running parts from `Settings`: database, spool, processing context, relay.

Shared by `maild serve` and `maild ingest` so both process mail identically.

    runtime = Runtime.open(settings)          # opens the spool; the database lazily
    context = runtime.context()               # rules + templates as last loaded
    runtime.reload()                          # SIGHUP: keep the last good rules on error
    load_policy(settings)                     # rules + templates alone (`maild check`)
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import peewee

import templates
from maild.config import Settings
from maild.pipeline import Context
from parsers.auth import TrustPolicy
from maild.spool import Spool
from rules.load import load_rules
from rules.source import ConfigError, ConfigProblem
from rules.model import Ruleset
from store.db import open_database
from store.migrations import migrate

log = logging.getLogger(__name__)


def load_policy(settings: Settings, rules_path: Path | None = None
                ) -> tuple[Ruleset, templates.TemplateEnvironment]:
    """The admin's part: rules.yaml (or `rules_path`) and the templates (site overrides
    first).  Raises ConfigError or TemplateError naming the file at fault."""
    env = templates.TemplateEnvironment(_override_dir(settings))
    ruleset = load_rules(rules_path or settings.rules_path, templates=frozenset(env.names()))
    _check_agents_are_not_ours(settings, ruleset)
    check_acknowledgements(ruleset, env)
    check_escalations(ruleset, env)
    return ruleset, env


def check_acknowledgements(ruleset: Ruleset, env: templates.TemplateEnvironment) -> None:
    """Every template a rule names in `auto_reply:` renders with the values an
    acknowledgement gets (a rule naming `reply` or a broken site template is refused at
    its line, before any customer waits for it)."""
    problems = []
    for i, rule in enumerate(ruleset.rules):
        name = rule.then.auto_reply
        if not isinstance(name, str):
            continue
        try:
            env.render(name, templates.SAMPLE_CONTEXTS["ack"])
        except templates.TemplateError as exc:
            problems.append(ConfigProblem(ruleset.source, rule.line, 1, f"rules[{i}].then.auto_reply",
                                          f"rule {rule.name!r}: template {name!r} cannot be an "
                                          f"acknowledgement: {exc}"))
    if problems:
        raise ConfigError(problems)


def check_escalations(ruleset: Ruleset, env: templates.TemplateEnvironment) -> None:
    """Every template an SLA escalation names renders with the values an escalation mail
    gets, so a broken site template is refused at load, not at 3 a.m. in the sweep."""
    problems, tried = [], {}
    source = Path(ruleset.source) if ruleset.source else None
    lines = source.read_text(encoding="utf-8", errors="replace").splitlines() if source else []
    for policy in ruleset.sla_policies:
        for i, step in enumerate(policy.escalations):
            name = step.template
            if name not in tried:
                try:
                    env.render(name, templates.SAMPLE_CONTEXTS["sla_breach"])
                    tried[name] = None
                except templates.TemplateError as exc:
                    tried[name] = str(exc)
            if tried[name] is None:
                continue
            line = next((n for n, text in enumerate(lines, 1) if f"template: {name}" in text), 0)
            problems.append(ConfigProblem(ruleset.source, line, 1 if line else 0,
                                          f"sla.{policy.name}.escalations[{i}].template",
                                          f"template {name!r} cannot be an SLA escalation mail: "
                                          f"{tried[name]}"))
    if problems:
        raise ConfigError(problems)


def _check_agents_are_not_ours(settings: Settings, ruleset: Ruleset) -> None:
    """An agent's address can't be one of the help desk's own (maild.yaml): mail from it
    would be both our own mail (never answered) and an agent's."""
    ours = {settings.helpdesk.address.lower(), settings.helpdesk.comment_address or ""} - {""}
    clash = sorted(ruleset.agent_addresses & ours)
    if not clash:
        return
    source = Path(ruleset.source) if ruleset.source else settings.rules_path
    lines = source.read_text(encoding="utf-8", errors="replace").splitlines()
    problems = []
    for address in clash:
        line = next((n for n, text in enumerate(lines, 1) if address in text.lower()), 0)
        problems.append(ConfigProblem(str(source), line, 1 if line else 0, "agents",
                                      f"{address} is the help desk's own address in "
                                      f"{settings.config_path}; an agent needs an address of their own"))
    raise ConfigError(problems)


@dataclass
class Runtime:
    """The running parts; `context` is rebuilt only when rules or templates change."""
    settings: Settings
    spool: Spool
    context_value: Context

    @classmethod
    def open(cls, settings: Settings, *, spool: Spool | None = None) -> "Runtime":
        """Load rules and templates (raising ConfigError / TemplateError on a fault)."""
        for warning in settings.warnings:          # e.g. trust.agents: none
            log.warning("%s: %s", settings.config_path, warning)
        context = build_context(settings, *load_policy(settings))
        return cls(settings=settings, spool=spool or Spool(settings.spool_dir),
                   context_value=context)

    @property
    def ruleset(self) -> Ruleset:
        return self.context_value.ruleset

    def open_database(self, *, upgrade: bool = True) -> peewee.Database:
        db = open_database(self.settings.database_url)
        if upgrade:
            migrate(db)
        return db

    def context(self) -> Context:
        return self.context_value          # replaced whole on reload: no lock needed

    def accepts(self, address: str) -> bool:
        return self.context_value.is_ours(address)

    def reload(self) -> bool:
        """Reload rules and templates; on any error keep the running ones and return False."""
        try:
            context = build_context(self.settings, *load_policy(self.settings))
        except Exception as exc:  # noqa: BLE001 - a bad edit must not stop the daemon
            log.error("reload refused, keeping the last good rules: %s", exc)
            return False
        self.context_value = context
        log.info("rules and templates reloaded from %s", self.settings.rules_path)
        return True


def build_context(settings: Settings, ruleset: Ruleset, env) -> Context:
    helpdesk = settings.helpdesk
    return Context(ruleset=ruleset, helpdesk_name=helpdesk.name,
                   helpdesk_address=helpdesk.address, token_prefix=helpdesk.token_prefix,
                   hostname=helpdesk.hostname, render=env.render,
                   auto_replies_per_hour=settings.limits.auto_replies_per_hour,
                   auto_replies_per_ticket_per_hour=settings.limits.auto_replies_per_ticket_per_hour,
                   burst_window_minutes=settings.limits.burst_window_minutes,
                   mail_from=settings.outbound.mail_from,
                   comment_address=helpdesk.comment_address,
                   trust=TrustPolicy(settings.trust.agents, settings.trust.authserv_id),
                   unknown_sender=helpdesk.unknown_sender, reopen_days=helpdesk.reopen_days,
                   expose_agent_address=helpdesk.expose_agent_address,
                   limits=settings.limits.parse)


def _override_dir(settings: Settings) -> Path | None:
    candidate = settings.config_path.parent / "templates"
    return candidate if candidate.is_dir() else None
