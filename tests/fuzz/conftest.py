"""The `fuzz` hypothesis profile (registered here, so name this folder on the command
line: `pytest tests/fuzz --hypothesis-profile=fuzz`), quiet logs while fuzzing, and
`context`: a real processing context (maild.pipeline.Context) on the shipped rules.yaml
with the authentication-results trust policy; it needs no database."""
from __future__ import annotations

import logging
from pathlib import Path

import pytest

from maild.config import load_settings
from maild.runtime import build_context, load_policy
from tests.fuzz.budget import register_profile
from tests.integration.harness import write_config

SHIPPED_RULES = Path(__file__).resolve().parents[2] / "deploy" / "etc" / "rules.yaml"
TRUST = "{agents: authentication-results, authserv_id: mx.example.com}"

register_profile()


@pytest.fixture(autouse=True)
def _quiet_logs(caplog):
    """mail-parser and the parsers log every oddity they meet: thousands of lines here."""
    caplog.set_level(logging.CRITICAL)


@pytest.fixture(scope="module")
def context(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz-pipeline")
    config = write_config(folder, f"sqlite:///{folder}/unused.db", "maildir:outbox",
                          rules=SHIPPED_RULES.read_text(encoding="utf-8"), trust=TRUST,
                          helpdesk="comment_address: support+comment@example.com")
    settings = load_settings(config)
    return build_context(settings, *load_policy(settings))
