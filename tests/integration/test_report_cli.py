"""`maild report`: the admin asks how the desk did this week, for a person and as JSON."""
from __future__ import annotations

import json

import pytest

from rules.load import load_rules
from store.db import open_database
from tests.integration.harness import write_config
from tests.integration.test_cli import run
from tests.store.test_report import RULES, a_week_of_tickets


@pytest.fixture
def desk(tmp_path, database_url, capsys):
    """An initialised maild with the week of tickets of tests/store/test_report.py."""
    config = write_config(tmp_path, database_url, f"maildir:{tmp_path}/out", rules=RULES)
    assert run(config, capsys, "init")[0] == 0
    db = open_database(database_url)
    numbers = a_week_of_tickets(db, load_rules(tmp_path / "rules.yaml"))
    db.close()
    return config, numbers


def test_report_as_json(desk, capsys):
    config, n = desk
    code, out, _ = run(config, capsys, "report", "--json", "--now", "2026-11-27T13:00:00+01:00")
    r = json.loads(out)
    assert code == 0
    assert (r["now"], r["since"], r["tickets"]) == (
        "2026-11-27T12:00:00+00:00", "2026-10-28T12:00:00+00:00", 6)
    assert r["first_response"]["wall"] == {"count": 4, "median_s": 3 * 3600, "p90_s": 18 * 3600,
                                           "median": "3h", "p90": "18h"}
    assert r["resolution"]["business"] == {"count": 3, "median_s": 6 * 3600, "p90_s": 8 * 3600,
                                           "median": "6h", "p90": "8h"}
    assert {(c["queue"], c["priority"], c["clock"]): (c["met"], c["breached"], c["running"], c["percent"])
            for c in r["compliance"]}[("general", "urgent", "first_response")] == (1, 1, 0, 50.0)
    assert r["overall"] == {"queue": None, "priority": None, "clock": None, "met": 5, "breached": 4,
                            "running": 3, "percent": 55.6}
    assert r["breaches_total"] == 4
    assert r["breaches"][0] == {"ticket": n["t4"], "queue": "billing", "priority": "urgent",
                                "clock": "resolution", "cycle": 1, "state": "running",
                                "due_at": "2026-11-24T13:00:00+00:00", "overdue_s": 23 * 3600,
                                "overdue": "23h"}


def test_report_for_a_person(desk, capsys):
    config, n = desk
    code, out, _ = run(config, capsys, "report", "--now", "2026-11-27T12:00:00")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == ("SLA report: 6 ticket(s) created since 2026-10-28 12:00 UTC, "
                        "as of 2026-11-27 12:00 UTC")
    assert [line.split() for line in lines[3:7]] == [
        ["first", "response", "wall", "4", "3h", "18h"], ["business", "4", "2h", "4h"],
        ["resolution", "wall", "3", "6h", "24h"], ["business", "3", "6h", "8h"]]
    rows = {tuple(line.split()[:3]): line.split()[3:] for line in lines}
    assert rows[("general", "urgent", "first_response")] == ["1", "1", "0", "50.0%"]
    assert rows[("billing", "normal", "resolution")] == ["0", "0", "1", "-"]
    assert ["all", "5", "4", "3", "55.6%"] in [line.split() for line in lines]
    assert "  Breaches: 4 (newest first)" in lines
    assert (f"#{n['t4']:<6} billing  urgent    first_response  cycle 1  running  "
            f"due 2026-11-24 10:00 UTC  overdue 26h") in out
    assert f"#{n['t2']:<6} general  urgent    first_response  cycle 1  stopped  due -" in out


def test_since_takes_a_date_and_a_bad_one_is_a_usage_error(desk, capsys):
    config, _ = desk
    code, out, _ = run(config, capsys, "report", "--json", "--since", "2026-11-24",
                       "--now", "2026-11-27T12:00:00Z")
    r = json.loads(out)
    assert (code, r["since"], r["tickets"]) == (0, "2026-11-24T00:00:00+00:00", 3)
    code, _, err = run(config, capsys, "report", "--since", "last week")
    assert code == 64 and "--since 'last week'" in err
    code, _, err = run(config, capsys, "report", "--now", "friday")
    assert code == 64 and "--now 'friday'" in err
