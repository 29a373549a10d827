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
