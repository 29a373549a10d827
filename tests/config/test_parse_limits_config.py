"""maild.yaml `limits:` keys for hostile mail reach `parse` (docs/hygiene.md)."""
from __future__ import annotations

import pytest

from maild.config import load_settings
from maild.runtime import build_context, load_policy
from parsers.limits import Limits
from rules.source import ConfigError

BASE = """\
database: sqlite:///var/lib/maild/maild.db
spool: /var/lib/maild/spool
outbound: {relay: "smtp://127.0.0.1:25"}
helpdesk: {name: Acme Support, address: support@example.com, token_prefix: Acme}
rules: /etc/maild/rules.yaml
"""


def test_left_out_the_limits_are_the_parsers_defaults(write):
    assert load_settings(write(BASE)).limits.parse == Limits()


def test_each_key_sets_its_limit_and_sizes_take_units(write):
    settings = load_settings(write(
        BASE + "limits: {max_header_bytes: 64k, max_headers: 300, max_mime_parts: 50,\n"
               "         max_mime_depth: 8, max_attachments: 20, max_attachment_size: 2M}\n"))
    assert settings.limits.parse == Limits(max_header_bytes=65536, max_headers=300,
                                           max_mime_parts=50, max_mime_depth=8,
                                           max_attachments=20, max_attachment_size=2 * 1024 ** 2)
    assert settings.limits.max_message_size == 25 * 1024 ** 2


def test_the_limits_go_into_the_processing_context(write):
    write("version: 1\nqueues:\n  general: {address: support@example.com}\n", "rules.yaml")
    config = write(BASE.replace("/etc/maild/rules.yaml", "rules.yaml")
                   + "limits: {max_attachments: 7}\n")
    settings = load_settings(config)
    assert build_context(settings, *load_policy(settings)).limits.max_attachments == 7


@pytest.mark.parametrize("line, key", [
    ("limits: {max_mime_parts: 0}", "limits.max_mime_parts"),
    ("limits: {max_mime_depth: -1}", "limits.max_mime_depth"),
    ('limits: {max_attachment_size: "lots"}', "limits.max_attachment_size"),
    ("limits: {max_headers: many}", "limits.max_headers"),
    ("limits: {max_header_size: 10}", "limits.max_header_size"),       # a typo is refused
])
def test_bad_limits_name_the_key_and_line(write, line, key):
    with pytest.raises(ConfigError) as caught:
        load_settings(write(BASE + line + "\n"))
    [problem] = caught.value.problems
    assert (problem.key, problem.line) == (key, 6)

