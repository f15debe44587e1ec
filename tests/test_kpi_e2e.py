"""The issue-3 loop as a user runs it: the double's generated portal → `flask sync` → `flask kpi`,
equal to the KPIs computed independently from the generator's ground truth (tests/truth_kpi.py)."""

from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from openlines_support import END
from truth_kpi import expected, got, same

from app import create_app
from b24desk.kpi.calendar import WorkCalendar
from portal_double import PortalDouble
from portal_double.truth import SOURCE_CONFIG

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


SLA = {"critical": 14400, "high": 32400, "normal": 97200, "low": 194400}  # business seconds
# the double's calendar.settings.get: 9-18, SA/SU off, these holidays every year
HOLIDAYS = {
    (m, d)
    for d, m in (
        (1, 1),
        (2, 1),
        (3, 1),
        (4, 1),
        (5, 1),
        (6, 1),
        (7, 1),
        (8, 1),
        (23, 2),
        (8, 3),
        (1, 5),
        (9, 5),
        (12, 6),
        (4, 11),
    )
}
# the two months, a 10-day window from a Wednesday, and a period ending on a Thursday afternoon
# (mid-data: many tickets still open at its end)
PERIODS = MONTHS + [("2026-09-09", "2026-09-19"), ("2026-09-14T12:00:00+03:00", "2026-10-07T15:30:00+03:00")]
# keys whose value needs the report's detail or a ranking (no "previous" to compare)
CURRENT_ONLY = ("top_agents",)


@pytest.fixture(scope="module")
def synced(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    cfg = tmp / "b24desk.toml"
    cfg.write_text(_toml(SOURCE_CONFIG), encoding="utf-8")
    sla_cfg = tmp / "b24desk-sla.toml"
    sla_cfg.write_text(
        _toml(SOURCE_CONFIG) + "[sla]\nresolution_business_seconds = " + _inline(SLA) + "\n", encoding="utf-8"
    )
    db = str(tmp / "store.db")
    mp = pytest.MonkeyPatch()
    mp.setenv("B24DESK_CONFIG", str(sla_cfg))
    sla_runner = create_app({"TESTING": True, "DB": db, "SECRET_KEY": "t"}).test_cli_runner()
    mp.setenv("B24DESK_CONFIG", str(cfg))
    d = PortalDouble(seed=11, tickets=900, drain_per_s=1e6, bucket_size=10**6, end=END).start()
    app = create_app({"TESTING": True, "DB": db, "SECRET_KEY": "t"})
    runner = app.test_cli_runner()
    res = runner.invoke(args=["sync", "--webhook", d.webhook_url, "--db", db, "--rps", "1000", "--quiet"])
    assert res.exit_code == 0, res.output
    runner.sla = sla_runner
    yield d, runner, db
    d.stop()
    mp.undo()


def _kpi(runner, db, date_from, date_to, *extra) -> dict:
    res = runner.invoke(args=["kpi", "--db", db, "--from", date_from, "--to", date_to, "--format", "json", *extra])
    assert res.exit_code == 0, res.output
    return json.loads(res.output)


def _ts(value: str) -> int:
    dt = datetime.fromisoformat(value)
    return int((dt if dt.tzinfo else dt.replace(tzinfo=TZ)).timestamp())


def _bounds(date_from, date_to):
    return _ts(date_from), _ts(date_to)


def _synced_only(truth):
    def keep(t):  # the selector is deals:category=3; the truth has every funnel
        return t["source"] != "crm:2" or truth.extra[("crm:2", t["source_id"])]["category"] == 3

    return keep


def _expected(truth, bounds, keep, **kw):
    kw.setdefault("tz", TZ)
    kw.setdefault("holidays", HOLIDAYS)
    return expected(truth, *bounds, keep, **kw)


def _diff(report, want, which="value") -> dict:
    kpis = report["kpis"]
    out = {}
    for k, w in want.items():
        if which != "value" and ("." in k or k in CURRENT_ONLY):
            continue
        mine = got(kpis, k, which)
        if not same(mine, w) or not same(w, mine):
            out[k] = (mine, w)
    return out


def _compare(report, truth, bounds, keep, pop=(), **kw) -> None:
    """The report's values and its previous period's, against the truth."""
    want = _expected(truth, bounds, keep, **kw)
    prev = _expected(truth, (_ts(report["previous"]["from"]), _ts(report["previous"]["to"])), keep, **kw)
    for k in pop:
        want.pop(k, None)
        prev.pop(k, None)
    assert want["tickets_total"] > 20 and want["resolved_count"] > 10
    assert {"value": _diff(report, want), "previous": _diff(report, prev, "previous")} == {"value": {}, "previous": {}}


# CRM has no responsible history (kpi.md: snapshot diffs only), so a first sync cannot know past CRM
# reassignments the truth holds; transfers (and FCR, which needs them) are checked on tasks alone.
CRM_BLIND = ("transferred_share", "transfers_per_ticket", "fcr_share", "top_agents")


@pytest.mark.parametrize("date_from, date_to", PERIODS)
def test_flask_kpi_after_flask_sync_equals_the_truth(synced, date_from, date_to):
    d, runner, db = synced
    report = _kpi(runner, db, date_from, date_to)
    assert report["schema"] == "b24desk.kpi/1" and report["period"]["from"].startswith(date_from[:10])
    _compare(report, d.truth, _bounds(date_from, date_to), _synced_only(d.truth), pop=CRM_BLIND)


@pytest.mark.parametrize("date_from, date_to", PERIODS)
def test_task_kpis_equal_the_truth(synced, date_from, date_to):
    d, runner, db = synced
    report = _kpi(runner, db, date_from, date_to, "--source", "tasks")
    want = _expected(d.truth, _bounds(date_from, date_to), lambda t: t["source"] == "task")
    assert want["transferred_share"] and want["transfers_per_ticket"]
    _compare(report, d.truth, _bounds(date_from, date_to), lambda t: t["source"] == "task")


@pytest.mark.parametrize("date_from, date_to", PERIODS)
def test_overdue_with_sla_targets_equals_the_truth(synced, date_from, date_to):
    """With [sla] targets every ticket has an effective deadline: its own, else created_at + the
    target in business time (the product's WorkCalendar is used for that arithmetic only, built
    like the double's calendar)."""
    d, runner, db = synced
    cal = WorkCalendar(tz="Europe/Moscow", holidays_country="RU", recurring_holidays=sorted(HOLIDAYS))
    report = _kpi(runner.sla, db, date_from, date_to)
    bounds, keep = _bounds(date_from, date_to), _synced_only(d.truth)
    plain, with_sla = _expected(d.truth, bounds, keep), _expected(d.truth, bounds, keep, sla=SLA, calendar=cal)
    assert with_sla["overdue_count"] > plain["overdue_count"]  # the targets do change the answer
    assert with_sla["task_efficiency"] < plain["task_efficiency"]
    _compare(report, d.truth, _bounds(date_from, date_to), _synced_only(d.truth), pop=CRM_BLIND, sla=SLA, calendar=cal)


def _tracked_as_of(portal):
    """Tracked time recorded before ``end``, read from the double's own records (not the truth's
    ``worked`` events): task elapsed records by their creation, CRM call lengths by their start."""

    def handle_time(t, end):
        if t["source"] == "task":
            recs = [e["seconds"] for e in portal.task_elapsed.get(int(t["source_id"]), []) if e["at"] < end]
        else:
            etid = int(t["source"].split(":")[1])
            recs = [
                a["END_TIME"] - a["START_TIME"]
                for a in portal.activities_by_owner.get((etid, int(t["source_id"])), [])
                if a["TYPE_ID"] == 2 and a["START_TIME"] < end
            ]
        return sum(recs) if recs else None

    return handle_time


def test_handle_time_counts_only_time_tracked_before_the_end(synced):
    d, runner, db = synced
    date_from, date_to = PERIODS[-1]
    report = _kpi(runner, db, date_from, date_to)
    want = _expected(d.truth, _bounds(date_from, date_to), _synced_only(d.truth), handle_time=_tracked_as_of(d.portal))[
        "handle_time"
    ]
    assert same(got(report["kpis"], "handle_time"), want) and same(want, got(report["kpis"], "handle_time"))
    # the check has teeth: some tickets of R had time tracked after the end (the total would differ)
    totals = _expected(
        d.truth, _bounds(date_from, date_to), _synced_only(d.truth), handle_time=lambda t, end: t["handle_time"]
    )["handle_time"]
    assert not same(totals, want)


@pytest.fixture(scope="module")
def celled(synced, tmp_path_factory):
    """A copy of the synced store after the warmer's work: every ticket's facts kept, then the
    settled cells of its whole history (b24desk/kpi/cells.py)."""
    import shutil

    from b24desk.kpi import cells, derived
    from b24desk.kpi.load import backfill
    from b24desk.kpi.report import ReportEnv
    from b24desk.store import open_db

    _d, runner, db = synced
    path = str(tmp_path_factory.mktemp("e2e-cells") / "store.db")
    shutil.copy(db, path)
    store = open_db(path)
    (portal,) = store.execute("select distinct portal from tickets").fetchone()
    ctx = ReportEnv(store, portal).ctx  # the config `flask kpi` reads (B24DESK_CONFIG)
    after = ("", "")
    while after is not None:
        _n, after = backfill(store, portal, ctx, after)
    while derived.fill_gaps(store, portal):
        pass
    assert cells.build(store, portal, ctx, _ts("2025-01-01"), _ts("2027-01-01")) > 0
    store.conn.close()
    return path


@pytest.mark.parametrize("date_from, date_to", PERIODS)
def test_flask_kpi_from_settled_cells_equals_the_truth(synced, celled, date_from, date_to):
    """The same loop once the settled cells are kept: `flask kpi` merges them instead of reading
    most tickets (whole months, and the whole weeks inside the other periods), and still equals the
    independent computation, totals and per source."""
    d, runner, _db = synced
    report = _kpi(runner, celled, date_from, date_to)
    _compare(report, d.truth, _bounds(date_from, date_to), _synced_only(d.truth), pop=CRM_BLIND)
    tasks = _kpi(runner, celled, date_from, date_to, "--source", "tasks")
    _compare(tasks, d.truth, _bounds(date_from, date_to), lambda t: t["source"] == "task")
    if (date_from, date_to) in MONTHS:  # most of a month's tickets came from cells
        from b24desk.kpi.report import ReportPass
        from b24desk.store import open_db

        store = open_db(celled)
        try:
            rp = ReportPass(store, report["portal"], date_from, date_to, cells=True)
            assert sum(c.tally.nC for c in rp.cells_c) > report["kpis"]["tickets_total"]["value"] / 2
        finally:
            store.conn.close()
