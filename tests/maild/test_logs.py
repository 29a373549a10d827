"""Log lines as a sysadmin reads them: one event per line, in text or JSON, with the
Message-ID and ticket number of the message a line is about."""
from __future__ import annotations

import json
import logging

import pytest

from maild import logs


@pytest.fixture
def stderr(capsys, monkeypatch):
    """Reads what maild wrote to stderr (the handler writes to the sys.stderr of the
    moment: pytest's capture); logging restored afterwards."""
    monkeypatch.delenv(logs.ENV_FORMAT, raising=False)
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield lambda: capsys.readouterr().err.splitlines()
    root.handlers[:] = handlers
    root.setLevel(level)


def test_text_keeps_a_multi_line_message_and_its_traceback_on_one_line(stderr):
    logs.configure("info", "text")
    log = logging.getLogger("maild.worker")
    log.info("message-id=<a@b> subject=%s", "Printer\r\non fire")
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        log.exception("spool item 7 quarantined")
    first, second = stderr()
    assert first.endswith("INFO maild.worker: message-id=<a@b> subject=Printer\\r\\non fire")
    assert "ERROR maild.worker: spool item 7 quarantined | Traceback (most recent call last):" in second
    assert second.endswith("ValueError: bad\\nthing")


def test_text_leaves_the_time_to_the_journal_under_systemd(stderr, monkeypatch):
    monkeypatch.setenv("JOURNAL_STREAM", "8:12345")
    logs.configure("info")
    logging.getLogger("maild.daemon").info("ready")
    assert stderr() == ["INFO maild.daemon: ready"]


def test_json_is_one_object_per_line_with_message_id_and_ticket(stderr):
    logs.configure("info", "json")
    log = logging.getLogger("maild.worker")
    log.info("created", extra=logs.about("<x@customer.example>", 1042, spool_id=9))
    log.info("ticket=#7 message-id=<y@example.com> to=carol@customer.example sent")   # read from the text
    log.warning("a line about no message\nat all")
    try:
        1 / 0
    except ZeroDivisionError:
        log.exception("spool item 12 message-id=(no Message-ID) quarantined")
    entries = [json.loads(line) for line in stderr()]
    assert len(entries) == 4
    first, second, third, fourth = entries
    assert {k: first[k] for k in ("level", "logger", "msg", "message_id", "ticket", "spool_id")} == {
        "level": "INFO", "logger": "maild.worker", "msg": "created",
        "message_id": "x@customer.example", "ticket": 1042, "spool_id": 9}
    assert first["ts"].endswith("Z") and "T" in first["ts"]
    assert (second["message_id"], second["ticket"]) == ("y@example.com", 7)
    assert "message_id" not in third and "ticket" not in third
    assert third["msg"] == "a line about no message\nat all"
    assert fourth["spool_id"] == 12 and "message_id" not in fourth
    assert "ZeroDivisionError" in fourth["exc"]


def test_the_command_line_wins_then_the_environment_then_maild_yaml(monkeypatch):
    monkeypatch.delenv(logs.ENV_FORMAT, raising=False)
    assert logs.chosen_format(None, "json") == "json"
    assert logs.chosen_format(None) == "text"
    monkeypatch.setenv(logs.ENV_FORMAT, "json")
    assert logs.chosen_format(None, "text") == "json"
    assert logs.chosen_format("text", "json") == "text"


def test_an_unknown_format_is_refused():
    with pytest.raises(ValueError, match="unknown log format 'xml'"):
        logs.formatter("xml")
