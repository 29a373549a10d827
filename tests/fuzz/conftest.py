"""The `fuzz` hypothesis profile (registered here, so name this folder on the command
line: `pytest tests/fuzz --hypothesis-profile=fuzz`) and quiet logs while fuzzing."""
from __future__ import annotations

import logging

import pytest

from tests.fuzz.budget import register_profile

register_profile()


@pytest.fixture(autouse=True)
def _quiet_logs(caplog):
    """mail-parser and the parsers log every oddity they meet: thousands of lines here."""
    caplog.set_level(logging.CRITICAL)
