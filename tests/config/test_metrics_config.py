"""maild.yaml `metrics:` and `log_format`: off when absent, every mistake named at its line."""
from __future__ import annotations

import pytest

from maild.config import load_settings
from tests.config.test_config import MINIMAL, refused, with_line


def test_metrics_are_off_and_logs_are_text_when_the_keys_are_absent(write):
    settings = load_settings(write(MINIMAL))
    assert settings.metrics is None
    assert settings.log_format == "text"


@pytest.mark.parametrize("listen, address", [
    ("127.0.0.1:9101", ("127.0.0.1", 9101)),
    ("[::1]:9101", ("::1", 9101)),
    ("*:9101", ("", 9101)),
    ("localhost:0", ("localhost", 0)),
])
def test_metrics_listen_is_host_and_port(write, listen, address):
    settings = load_settings(write(MINIMAL + f'metrics: {{listen: "{listen}"}}\nlog_format: json\n'))
    assert settings.metrics.address == address
    assert settings.log_format == "json"


@pytest.mark.parametrize("line, key, words", [
    ('metrics: {listen: "9101"}', "metrics.listen", "expected host:port"),
    ('metrics: {listen: "127.0.0.1:70000"}', "metrics.listen", "port 70000 is out of range"),
    ('metrics: {listen: "unix:/run/maild/metrics.sock"}', "metrics.listen",
     "expected host:port (Prometheus scrapes over TCP)"),
    ('metrics: {listen: "::1:9101"}', "metrics.listen", "IPv6 address in brackets"),
    ('metrics: {port: 9101}', "metrics.port", ""),
    ("metrics: {}", "metrics.listen", ""),
    ("log_format: xml", "log_format", "unknown log format 'xml'; use one of text, json"),
])
def test_bad_metrics_and_log_format_values_are_named_with_file_and_line(write, line, key, words):
    text = with_line(line.partition(":")[0], line)
    path = write(text)
    problems = refused(path)
    assert key in [p.key for p in problems]
    [problem] = [p for p in problems if p.key == key]
    assert words in problem.message
    assert problem.line == text.splitlines().index(line) + 1
    assert str(path) in str(problem)
