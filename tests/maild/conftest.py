"""`context`: a processing context on the SLA rules of test_escalations, with the `db` fixture's database."""
from __future__ import annotations

import pytest

from maild.config import load_settings
from maild.runtime import build_context, load_policy
from tests.integration.harness import write_config


@pytest.fixture
def context(tmp_path, database_url, db):
    from tests.maild.test_escalations import RULES

    config = write_config(tmp_path, database_url, "maildir:outbox", rules=RULES)
    settings = load_settings(config)
    return build_context(settings, *load_policy(settings))
