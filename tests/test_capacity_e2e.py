"""Capacity over the portal double: generated tickets and open-line dialogs → sync over HTTP →
``flask capacity`` and ``GET /api/capacity``, checked against the double's ground truth
(``portal_double.truth``), and the API's roles and input checks as an attacker would try them."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from openlines_support import END
from pages_support import installed_and_synced
from viewer_tokens import trusted_token

from app import create_app
from b24desk.capacity.report import AGENT_KINDS
from b24desk.viewer import Viewer, dump_token
from portal_double import PortalDouble
from portal_double.truth import Truth

TZ = ZoneInfo("Europe/Moscow")
FROM, TO = "2026-07-13", "2026-10-12"  # 13 full weeks, Monday to Monday
SELECTORS = ["tasks", "deals", "crm:1038", "openlines"]
SECRET = "cap-secret"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("capacity")
    d = PortalDouble(
        seed=17, tickets=1200, months=6, drain_per_s=1e6, bucket_size=10**6, end=END, openlines=1200
    ).start()
    db = str(tmp / "store.db")
    installed_and_synced(d, db, SELECTORS)
    cfg = tmp / "b24desk.toml"
    cfg.write_text("sources = " + json.dumps(SELECTORS) + "\n", encoding="utf-8")
    mp = pytest.MonkeyPatch()
    mp.setenv("B24DESK_CONFIG", str(cfg))
    app = create_app({"TESTING": True, "DB": db, "SECRET_KEY": SECRET})
    yield {"double": d, "db": db, "app": app, "truth": Truth(d.portal)}
    d.stop()
    mp.undo()


def _ts(day: str) -> int:
    return int(datetime.fromisoformat(day).replace(tzinfo=TZ).timestamp())


def _cli(env, *args) -> dict:
    res = env["app"].test_cli_runner().invoke(args=["capacity", "--db", env["db"], *args])
    assert res.exit_code == 0, res.output
    return json.loads(res.output)


@pytest.fixture(scope="module")
def report(env):
    return _cli(env, "--from", FROM, "--to", TO, "--weeks-ahead", "6")


def test_schema_and_shape(report):
    assert report["schema"] == "b24desk.capacity/1"
    assert report["timezone"] == "Europe/Moscow"
    assert report["period"] == {"from": "2026-07-13T00:00:00+03:00", "to": "2026-10-12T00:00:00+03:00"}
    assert report["filters"]["source"] is None
    assert len(report["arrivals"]) == 168
    assert len(report["history"]) == 13 and len(report["forecast"]) == 6
    assert [f["week"] for f in report["forecast"]] == [
        "2026-W42",
        "2026-W43",
        "2026-W44",
        "2026-W45",
        "2026-W46",
        "2026-W47",
    ]
    for f in report["forecast"]:
        assert f["low"] <= f["created"] <= f["high"]
    b = report["backtest"]
    assert b["weeks"] == 8 and 0 <= b["mape"] < 1 and b["method"] in b["candidates"]
    assert b["candidates"][b["method"]] == min(v for v in b["candidates"].values() if v is not None)
    s = report["summary"]
    assert s["norm_per_agent_day"] == [15, 20]
    for key in ("agents_short_peak", "load_per_agent_day"):
        assert key in s


def test_arrivals_equal_the_double_truth(env, report):
    """Tickets created per weekday × hour, from what the double generated (not from the store)."""
    start, end = _ts(FROM), _ts(TO)
    per_slot = defaultdict(int)
    for t in env["truth"].tickets:
        if start <= t["created_at"] < end:
            dt = datetime.fromtimestamp(t["created_at"], TZ)
            per_slot[(dt.isoweekday(), dt.hour)] += 1
    got = {(r["weekday"], r["hour"]): r["created_per_hour"] for r in report["arrivals"]}
    assert sum(per_slot.values()) > 500
    for slot in got:
        assert got[slot] == pytest.approx(per_slot.get(slot, 0) / 13, abs=0.005), slot
    # the double's seasonality: Monday late morning is busier than Sunday night
    assert got[(1, 10)] > 3 * got[(7, 3)]


def test_agents_active_equal_the_double_truth(env, report):
    """Distinct agents who replied or changed a ticket, per local hour, mean over the 13 weeks. The
    open-lines statistics API gives message counts, not times, so a dialog's replies are known only
    as of its first live answer (portal_double/openlines.py): the truth is read the same way."""
    start, end = _ts(FROM), _ts(TO)
    truth = env["truth"]
    bots = {str(u) for u, info in env["double"].portal.users.items() if info.get("IS_BOT") in ("Y", True)}
    per_hour = defaultdict(set)
    for t in truth.tickets:
        evs = truth.events_of(t["source"], t["source_id"])
        if t["source"] == "openlines":
            first = min((e for e in evs if e["kind"] == "reply"), key=lambda e: e["at"], default=None)
            evs = [e for e in evs if e["kind"] != "reply"] + ([first] if first else [])
        for e in evs:
            actor = e["actor_id"]
            if (
                e["kind"] in AGENT_KINDS
                and start <= e["at"] < end
                and actor not in (None, "", "0")
                and actor != t["author_id"]
                and actor not in bots
            ):
                dt = datetime.fromtimestamp(e["at"], TZ)
                per_hour[(dt.date(), dt.hour)].add(actor)
    expected = defaultdict(float)
    for (day, hour), agents in per_hour.items():
        expected[(day.isoweekday(), hour)] += len(agents) / 13
    got = {(r["weekday"], r["hour"]): r["agents_active"] for r in report["arrivals"]}
    assert sum(expected.values()) > 50
    for slot, v in got.items():
        assert v == pytest.approx(expected.get(slot, 0), abs=0.051), slot


def test_staffing_rows_follow_erlang_c_and_the_norm(report):
    from b24desk.capacity.erlang import agents_needed

    chat = report["staffing"]
    assert len(chat) == 168 and any(r["arrivals_per_hour"] > 0 for r in chat)
    for r in chat:
        assert r["agents_needed"] == agents_needed(
            r["arrivals_per_hour"], r["aht_s"], r["target_answer_s"], r["target_share"]
        )
        # short = needed - active, rounded half up; only inside the service hours (the work calendar)
        gap = max(0, math.floor(r["agents_needed"] - r["agents_active"] + 0.5))
        assert r["short"] == (gap if r["in_service_hours"] else 0)
        assert r["in_service_hours"] == (r["weekday"] <= 5 and 9 <= r["hour"] < 18)
    assert report["summary"]["chat_aht_source"] == "measured"
    assert report["staffing_daily"], "tasks and deals are staffed per weekday"
    peak = max([r["short"] for r in chat] + [r["short"] for r in report["staffing_daily"]])
    assert report["summary"]["agents_short_peak"] == peak
    for g in report["summary"]["gaps"]:
        assert g["short"] > 0 and g["text"]["ru"].startswith("нуж") and "needed" in g["text"]["en"]


def test_source_filter_narrows_to_one_line(env, report):
    lines = sorted({t["line"] for t in env["truth"].tickets if t["source"] == "openlines" and t["line"]})
    line = lines[0]
    one = _cli(env, "--from", FROM, "--to", TO, "--source", f"openlines:line={line}")
    start, end = _ts(FROM), _ts(TO)
    n = sum(
        1
        for t in env["truth"].tickets
        if t["source"] == "openlines" and t["line"] == line and start <= t["created_at"] < end
    )
    assert round(sum(r["created_per_hour"] for r in one["arrivals"]) * 13) == n
    assert one["filters"]["source"] == f"openlines:line={line}"
    assert one["staffing_daily"] == []  # chats only: no per-day ticket staffing
    tasks = _cli(env, "--from", FROM, "--to", TO, "--source", "tasks")
    assert tasks["staffing"] == [] and tasks["staffing_daily"]


def test_cli_table_and_bad_input(env):
    res = (
        env["app"]
        .test_cli_runner()
        .invoke(args=["capacity", "--db", env["db"], "--from", FROM, "--to", TO, "--format", "table", "--lang", "en"])
    )
    assert res.exit_code == 0, res.output
    assert "Tickets created per hour" in res.output and "Weekly forecast" in res.output
    for bad in (
        ["--weeks-ahead", "9"],
        ["--from", "2026-10-12", "--to", "2026-07-13"],
        ["--from", "2026-07-13"],
        ["--department", "nope"],
    ):
        res = env["app"].test_cli_runner().invoke(args=["capacity", "--db", env["db"], *bad])
        assert res.exit_code == 2, (bad, res.output)
        assert "Traceback" not in res.output


# --- GET /api/capacity: roles and input, as an attacker would try them ---------------------------


def _token(env, role: str, lang: str = "ru", **kw) -> str:
    """A token as a verified launch leaves it (bound to the installation's epoch)."""
    d = env["double"]
    v = Viewer(portal=d.member_id, user_id=str(kw.pop("user_id", 1)), role=role, lang=lang, **kw)
    return trusted_token(env["db"], v, SECRET)


def _api(env, token: str, **params):
    q = "&".join(f"{k}={v}" for k, v in params.items())
    return env["app"].test_client().get(f"/api/capacity?{q}", headers={"Authorization": f"Bearer {token}"})


def test_api_admin_gets_the_cli_report(env, report):
    r = _api(env, _token(env, "admin"), **{"from": FROM, "to": TO, "weeks_ahead": 6})
    assert r.status_code == 200
    body = r.get_json()
    assert body["arrivals"] == report["arrivals"] and body["forecast"] == report["forecast"]


def test_api_agent_is_refused_in_their_language(env):
    for lang, word in (("ru", "руководител"), ("en", "heads")):
        r = _api(env, _token(env, "agent", lang, departments=("2",)))
        assert r.status_code == 403 and word in r.get_json()["message"]


def test_api_head_sees_only_their_departments(env):
    desk = env["double"].desk
    dep, head = sorted(desk.heads.items())[0]
    other = next(x for x in sorted(desk.heads) if x != dep)
    tok = _token(env, "head", user_id=head, headed=(str(dep),), tree=(str(dep),), departments=(str(dep),))
    mine = _api(env, tok, **{"from": FROM, "to": TO})
    assert mine.status_code == 200 and mine.get_json()["filters"]["department"] == str(dep)
    whole = _api(env, _token(env, "admin"), **{"from": FROM, "to": TO}).get_json()
    assert sum(r["created_per_hour"] for r in mine.get_json()["arrivals"]) < sum(
        r["created_per_hour"] for r in whole["arrivals"]
    )
    r = _api(env, tok, department=str(other))
    assert r.status_code == 403 and r.get_json()["error"] == "forbidden_department"


@pytest.mark.parametrize(
    "params,code",
    [
        ({"weeks_ahead": "9"}, "bad_weeks_ahead"),
        ({"weeks_ahead": "-1"}, "bad_weeks_ahead"),
        ({"weeks_ahead": "1e3"}, "bad_weeks_ahead"),
        ({"weeks_ahead": "²"}, "bad_weeks_ahead"),
        ({"weeks_ahead": "٣"}, "bad_weeks_ahead"),
        ({"source": "tasks;drop"}, "bad_source"),
        ({"source": "crm:9999"}, "bad_source"),
        ({"from": "2026-13-01", "to": "2026-10-01"}, "bad_period"),
        ({"from": "2026-10-01"}, "bad_period"),
        ({"from": "2026-10-12", "to": "2026-07-13"}, "bad_period"),
        ({"from": "1990-01-01", "to": "2026-01-01"}, "bad_period"),
        ({"from": "%00", "to": "x"}, "bad_period"),
        ({"department": "999999"}, "bad_department"),
        ({"source": "tasks&source=deals"}, "unknown_param"),
    ],
)
def test_api_rejects_bad_input_with_4xx(env, params, code):
    r = _api(env, _token(env, "admin", "en"), **params)
    assert r.status_code == 400, r.get_data(as_text=True)
    assert r.get_json()["error"] == code and r.get_json()["message"]


def test_api_needs_a_valid_token(env):
    c = env["app"].test_client()
    assert c.get("/api/capacity").status_code == 401
    forged = dump_token("not-the-secret", Viewer(portal=env["double"].member_id, user_id="1", role="admin"))
    assert c.get("/api/capacity", headers={"Authorization": f"Bearer {forged}"}).status_code == 401
    # signed by us but for a portal with no installation here, or minted before a re-install
    stranger = dump_token(SECRET, Viewer(portal="someone-elses-portal", user_id="1", role="admin"))
    assert c.get("/api/capacity", headers={"Authorization": f"Bearer {stranger}"}).status_code == 401
    stale = dump_token(SECRET, Viewer(portal=env["double"].member_id, user_id="1", role="head", epoch="old"))
    assert c.get("/api/capacity", headers={"Authorization": f"Bearer {stale}"}).status_code == 401


def test_api_is_exact_after_a_write(env):
    """The API is memoized per store version, never stale: a ticket written meanwhile shows at once."""
    import sqlite3

    tok = _token(env, "admin")
    before = _api(env, tok, **{"from": FROM, "to": TO}).get_json()
    again = _api(env, tok, **{"from": FROM, "to": TO}).get_json()
    assert again == before
    monday_10 = _ts("2026-09-07") + 10 * 3600 + 120
    conn = sqlite3.connect(env["db"])
    conn.execute(
        "insert into tickets (portal, source, source_id, created_at, state, deleted)"
        " values (?, 'task', 'cap-extra', ?, 'open', 0)",
        [env["double"].member_id, monday_10],
    )
    conn.commit()
    try:
        after = _api(env, tok, **{"from": FROM, "to": TO}).get_json()

        def slot(rep):
            return next(r["created_per_hour"] for r in rep["arrivals"] if (r["weekday"], r["hour"]) == (1, 10))

        assert slot(after) == pytest.approx(slot(before) + 1 / 13, abs=0.006)
    finally:
        conn.execute("delete from tickets where source_id = 'cap-extra'")
        conn.commit()
        conn.close()
