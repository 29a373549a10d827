"""SLA escalations sent are counted for Prometheus, and `maild status` shows those of the
last 24 hours from the database (the SLA rules of test_escalations, an injected clock)."""
from __future__ import annotations

import json

from maild import cli
from maild.metrics import Metrics
from tests.maild.test_escalations import assigned_ticket
from tests.maild.test_scheduler import scheduler
from tests.store.test_sla import berlin


def test_sla_warnings_and_breaches_are_counted_and_shown_for_the_last_24_hours(db, context, tmp_path, capsys):
    assigned_ticket(db, context, berlin(2026, 11, 23, 9, 0))
    jobs, store = scheduler(db, context, berlin(2026, 11, 23, 10, 0))
    jobs.metrics = metrics = Metrics()
    result = jobs.sweep()
    store.shutdown()
    assert [(s.step, s.breached) for s in result.sent] == [("80%", False), ("breach", True)]
    assert metrics.registry.get_sample_value("maild_sla_warnings_total") == 1
    assert metrics.registry.get_sample_value("maild_sla_breaches_total") == 1
    assert jobs.sweep().sent == ()                                   # sent once, counted once
    assert metrics.registry.get_sample_value("maild_sla_breaches_total") == 1

    def status(now: str) -> dict:
        capsys.readouterr()
        assert cli.main(["-c", str(tmp_path / "maild.yaml"), "status", "--json", "--now", now]) == 0
        return json.loads(capsys.readouterr().out)

    assert status("2026-11-23T12:00:00+01:00")["sla_last_24h"] == {"warnings": 1, "breaches": 1}
    assert status("2026-11-24T11:00:00+01:00")["sla_last_24h"] == {"warnings": 0, "breaches": 0}
