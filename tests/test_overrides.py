"""An admin's per-portal overrides reach every consumer: `flask kpi` applies them as the pages do."""

import json

import pytest
from kpi_support import PORTAL, add_ticket

from b24desk.kpi.report import build_report
from b24desk.overrides import effective_config, validate_config
from b24desk.store import set_setting


def _two_contacts(db):
    # the same customer twice, 5 days apart: a repeat contact within 30 days, not within 1 day
    add_ticket(db, 1, "2026-10-02 10:00", "C_1", "10")
    add_ticket(db, 2, "2026-10-07 10:00", "C_1", "10")


def _cli_report(runner, db_path):
    res = runner.invoke(args=["kpi", "--db", db_path, "--from", "2026-10-01", "--to", "2026-11-01", "--format", "json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.output)


def test_flask_kpi_applies_the_portal_overrides(app, runner, db, db_path):
    _two_contacts(db)
    base = app.config["B24DESK"]
    before = _cli_report(runner, db_path)
    assert before["kpis"]["repeat_contact_share"]["value"] == 1.0
    set_setting(db, PORTAL, "config", {"repeat_window_days": 1})
    after = _cli_report(runner, db_path)
    assert after["kpis"]["repeat_contact_share"]["value"] == 0.0
    expected = build_report(db, PORTAL, "2026-10-01", "2026-11-01", config=effective_config(db, PORTAL, base))
    assert after == json.loads(json.dumps(expected))


def test_overrides_are_validated():
    with pytest.raises(ValueError):
        validate_config({"targets": {}})  # not overridable through this key
    with pytest.raises(ValueError):
        validate_config({"repeat_window_days": "30"})
    assert validate_config({"bot_users": [5]}) == {"bot_users": [5]}
