"""The issue-3 loop as a user runs it: the double's generated portal → `flask sync` → `flask kpi`,
equal to the KPIs computed independently from the generator's ground truth (tests/truth_kpi.py)."""
from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from app import create_app
from portal_double import PortalDouble
from portal_double.truth import SOURCE_CONFIG
from test_openlines_support import END
from truth_kpi import expected, got, same

TZ = ZoneInfo("Europe/Moscow")
MONTHS = [("2026-08-01", "2026-09-01"), ("2026-09-01", "2026-10-01")]


def _toml(sources) -> str:
    out = []
    for s in sources:
        out.append("[[sources]]")
        for k, v in s.items():
            out.append(f"{k} = {json.dumps(v, ensure_ascii=False) if not isinstance(v, dict) else _inline(v)}")
    return "\n".join(out) + "\n"


def _inline(d: dict) -> str:
    return "{ " + ", ".join(f'"{k}" = {json.dumps(v, ensure_ascii=False)}' for k, v in d.items()) + " }"


@pytest.fixture(scope="module")
def synced(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    cfg = tmp / "b24desk.toml"
    cfg.write_text(_toml(SOURCE_CONFIG), encoding="utf-8")
    db = str(tmp / "store.db")
    mp = pytest.MonkeyPatch()
    mp.setenv("B24DESK_CONFIG", str(cfg))
    d = PortalDouble(seed=11, tickets=900, drain_per_s=1e6, bucket_size=10 ** 6, end=END).start()
    app = create_app({"TESTING": True, "DB": db, "SECRET_KEY": "t"})
    runner = app.test_cli_runner()
    res = runner.invoke(args=["sync", "--webhook", d.webhook_url, "--db", db, "--rps", "1000", "--quiet"])
    assert res.exit_code == 0, res.output
    yield d, runner, db
    d.stop()
    mp.undo()


def _kpi(runner, db, date_from, date_to, *extra) -> dict:
    res = runner.invoke(args=["kpi", "--db", db, "--from", date_from, "--to", date_to, "--format", "json", *extra])
    assert res.exit_code == 0, res.output
    return json.loads(res.output)


def _bounds(date_from, date_to):
    return (int(datetime.fromisoformat(date_from).replace(tzinfo=TZ).timestamp()),
            int(datetime.fromisoformat(date_to).replace(tzinfo=TZ).timestamp()))


@pytest.mark.parametrize("date_from, date_to", MONTHS)
def test_flask_kpi_after_flask_sync_equals_the_truth(synced, date_from, date_to):
    d, runner, db = synced
    truth = d.truth
    report = _kpi(runner, db, date_from, date_to)
    assert report["schema"] == "b24desk.kpi/1" and report["period"]["from"].startswith(date_from)

    def synced_only(t):             # the selector is deals:category=3; the truth has every funnel
        return t["source"] != "crm:2" or truth.extra[("crm:2", t["source_id"])]["category"] == 3
    want = expected(truth, *_bounds(date_from, date_to), synced_only)
    # CRM has no responsible history (kpi.md: snapshot diffs only), so a first sync cannot know past
    # CRM reassignments the truth holds; transfers are checked on tasks below.
    want.pop("transferred_share")
    assert want["tickets_total"] > 50
    mine = {k: got(report["kpis"], k) for k in want}
    assert {k: (mine[k], want[k]) for k in want if not same(mine[k], want[k])} == {}


@pytest.mark.parametrize("date_from, date_to", MONTHS)
def test_task_transfers_equal_the_truth(synced, date_from, date_to):
    d, runner, db = synced
    report = _kpi(runner, db, date_from, date_to, "--source", "tasks")
    want = expected(d.truth, *_bounds(date_from, date_to), lambda t: t["source"] == "task")
    mine = {k: got(report["kpis"], k) for k in want}
    assert want["transferred_share"] is not None
    assert {k: (mine[k], want[k]) for k in want if not same(mine[k], want[k])} == {}
