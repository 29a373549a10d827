"""The configuration files we ship load as they are (a sysadmin starts from them)."""
from __future__ import annotations

from pathlib import Path

from maild.config import load_settings
from rules.load import load_rules

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def test_the_development_config_loads_and_points_inside_its_folder():
    settings = load_settings(DEPLOY / "dev" / "maild.yaml")
    assert settings.spool_dir == DEPLOY / "dev" / "spool"
    assert settings.outbound.relay.startswith("maildir:")
    assert settings.listen.lmtp == "127.0.0.1:2424" and settings.listen.smtp == "127.0.0.1:2525"
    assert [q.name for q in load_rules(settings.rules_path).queues] == ["general", "billing"]


def test_the_example_etc_config_loads_with_absolute_paths():
    settings = load_settings(DEPLOY / "etc" / "maild.yaml")
    assert settings.database_url.endswith("/var/lib/maild/maild.db")
    assert settings.rules_path == Path("/etc/maild/rules.yaml")
    assert settings.limits.max_message_size == 25 * 1024 * 1024
    assert load_rules(DEPLOY / "etc" / "rules.yaml").default_queue.name == "general"


def test_the_development_config_trusts_from_and_says_so():
    settings = load_settings(DEPLOY / "dev" / "maild.yaml")
    assert settings.trust.agents == "none" and settings.warnings
    assert settings.helpdesk.comment_address == "support+comment@example.com"


def test_the_example_etc_config_trusts_only_our_mta_and_defines_agents_and_a_team():
    settings = load_settings(DEPLOY / "etc" / "maild.yaml")
    assert (settings.trust.agents, settings.trust.authserv_id) == (
        "authentication-results", "mx.example.com")
    assert settings.warnings == ()
    ruleset = load_rules(DEPLOY / "etc" / "rules.yaml")
    assert [a.name for a in ruleset.agents_for_queue("general")] == ["Alice Agent", "Bob Builder"]
    assert ruleset.match_agents("alice") == (ruleset.agent_for("alice@corp.example.com"),)


def test_an_agent_with_the_help_desks_own_address_is_refused_with_the_rules_line(tmp_path):
    import pytest

    from maild.runtime import load_policy
    from rules.source import ConfigError

    (tmp_path / "maild.yaml").write_text(
        "database: sqlite:maild.db\nspool: spool\noutbound: {relay: 'maildir:out'}\n"
        "helpdesk: {name: Acme, address: support@example.com, token_prefix: Acme, hostname: example.com,"
        " comment_address: notes@example.com}\nrules: rules.yaml\n")
    (tmp_path / "rules.yaml").write_text(
        "version: 1\nagents:\n  - {address: alice@example.com, name: Alice}\n"
        "  - {address: notes@example.com, name: Notes}\nqueues:\n  general: {address: support@example.com}\n")
    settings = load_settings(tmp_path / "maild.yaml")
    with pytest.raises(ConfigError) as refused:
        load_policy(settings)
    assert f"{tmp_path / 'rules.yaml'}:4:1: agents: notes@example.com is the help desk's own address" \
        in str(refused.value)
    # the shipped development files agree with each other
    load_policy(load_settings(DEPLOY / "dev" / "maild.yaml"))
