"""``/api/reports``: saved reports over HTTP, tried as their users and as an attacker would.

The store is the benchmark's synthetic desk (departments 1 > 2..6, heads 101..106, agents 200..259
spread over departments 2..6), reached through the real Flask app with signed viewer tokens.
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
from viewer_tokens import trusted_token

from app import create_app
from b24desk.store import open_db
from b24desk.viewer import ADMIN, AGENT, HEAD, Viewer, dump_token

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from bench_store import PORTAL, seed_store  # noqa: E402

OTHER = "other000000000000000000000000002"
SECRET = "test-secret"
CONFIG = {"calendar": {"timezone": "Europe/Moscow"}, "sla": {}, "targets": {}}


DB = {}


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    path = tmp_path_factory.mktemp("saved") / "s.db"
    DB["path"] = str(path)
    db = open_db(path)
    seed_store(db, 6000, now=int(datetime(2026, 11, 15, tzinfo=timezone.utc).timestamp()), seed=4)
    db.conn.close()
    return create_app({"TESTING": True, "DB": str(path), "SECRET_KEY": SECRET, "B24DESK": CONFIG})


@pytest.fixture
def client(app):
    return app.test_client()


def tok(user="1", role=ADMIN, portal=PORTAL, lang="en", **kw):
    """Headers with the token a verified launch of this viewer leaves (bound to the installation)."""
    v = Viewer(portal=portal, user_id=user, role=role, lang=lang, **kw)
    return {"Authorization": "Bearer " + trusted_token(DB["path"], v, SECRET)}


HEAD2 = dict(user="102", role=HEAD, departments=("2",), headed=("2",), tree=("2",))
AGENT_203 = dict(user="203", role=AGENT, departments=("5",))  # agent 200 + i sits in department 2 + i % 5
AGENT_200 = dict(user="200", role=AGENT, departments=("2",))


def definition(**over):
    d = {
        "name": "Первая линия по приоритетам",
        "kpis": ["tickets_total", "first_response_time", "overdue_share"],
        "group_by": "priority",
        "filters": {"department": "2"},
        "period": {"from": "2026-10-01", "to": "2026-11-01"},
        "compare": "previous",
        "chart": "table",
        "share": {"roles": [], "departments": [], "users": []},
    }
    d.update(over)
    return d


def create(client, headers, **over):
    r = client.post("/api/reports", json=definition(**over), headers=headers)
    assert r.status_code == 201, r.get_json()
    return r.get_json()["id"]


@pytest.mark.parametrize(
    "group_by,filters",
    [("priority", {"department": "2"}), ("week", {}), ("agent", {"priority": ["high", "critical"]}), (None, {})],
)
def test_admins_report_gives_exactly_what_api_kpi_gives(client, group_by, filters):
    rid = create(client, tok(), group_by=group_by, filters=filters)
    got = client.get(f"/api/reports/{rid}/data", headers=tok())
    assert got.status_code == 200
    body = got.get_json()
    assert body["schema"] == "b24desk.report/1" and body["definition"]["id"] == rid
    q = {"from": "2026-10-01", "to": "2026-11-01", **filters}
    if group_by:
        q["group_by"] = group_by
    kpi = client.get("/api/kpi", query_string=q, headers=tok())
    assert kpi.status_code == 200
    assert body["result"] == kpi.get_json()
    assert body["result"]["kpis"]["tickets_total"]["value"] > 0
    # ?from=&to= overrides the saved period, still the /api/kpi numbers
    got = client.get(f"/api/reports/{rid}/data?from=2026-09-01&to=2026-10-01", headers=tok()).get_json()
    q.update({"from": "2026-09-01", "to": "2026-10-01"})
    assert got["result"] == client.get("/api/kpi", query_string=q, headers=tok()).get_json()


def test_crud_and_owner_set_by_the_server(client):
    rid = create(client, tok(), owner="999", id="forged")
    d = client.get(f"/api/reports/{rid}", headers=tok()).get_json()
    assert d["owner"] == "1" and d["id"] == rid and rid != "forged"
    assert d["name"] == "Первая линия по приоритетам" and d["chart"] == "table"
    assert rid in [x["id"] for x in client.get("/api/reports", headers=tok()).get_json()["reports"]]
    r = client.put(f"/api/reports/{rid}", json=definition(name="Renamed", chart="bar"), headers=tok())
    assert r.status_code == 200 and r.get_json()["name"] == "Renamed"
    assert client.get(f"/api/reports/{rid}", headers=tok()).get_json()["chart"] == "bar"
    assert client.delete(f"/api/reports/{rid}", headers=tok()).status_code == 204
    assert client.get(f"/api/reports/{rid}", headers=tok()).status_code == 404
    assert client.delete(f"/api/reports/{rid}", headers=tok()).status_code == 404


def test_agent_sees_only_shared_reports_and_only_their_own_slice(client):
    private = create(client, tok(), name="private")
    shared = create(client, tok(), name="shared with agents", group_by="agent", filters={}, share={"roles": ["agent"]})
    agent = tok(**AGENT_203)
    ids = [x["id"] for x in client.get("/api/reports", headers=agent).get_json()["reports"]]
    assert shared in ids and private not in ids
    for path in (f"/api/reports/{private}", f"/api/reports/{private}/data"):
        assert client.get(path, headers=agent).status_code == 404
    body = client.get(f"/api/reports/{shared}/data", headers=agent).get_json()
    res = body["result"]
    assert res["filters"]["agent"] == "203"
    assert [g["key"] for g in res["groups"]] == ["203"]
    own = client.get(
        "/api/kpi", query_string={"from": "2026-10-01", "to": "2026-11-01", "agent": "203"}, headers=agent
    ).get_json()
    assert res["kpis"] == own["kpis"] and 0 < res["kpis"]["tickets_total"]["value"]
    admin_view = client.get(f"/api/reports/{shared}/data", headers=tok()).get_json()["result"]
    assert res["kpis"]["tickets_total"]["value"] < admin_view["kpis"]["tickets_total"]["value"]
    # the agent cannot change, delete or create
    assert client.put(f"/api/reports/{shared}", json=definition(), headers=agent).status_code == 403
    assert client.delete(f"/api/reports/{shared}", headers=agent).status_code == 403
    r = client.post("/api/reports", json=definition(filters={}), headers=agent)
    assert r.status_code == 403 and r.get_json()["error"]


def test_sharing_by_user_and_department(client):
    by_user = create(client, tok(), name="for 200", filters={}, share={"users": ["200"]})
    by_dep = create(client, tok(), name="for dep 5", filters={}, share={"departments": ["5"]})
    ids_200 = [x["id"] for x in client.get("/api/reports", headers=tok(**AGENT_200)).get_json()["reports"]]
    ids_203 = [x["id"] for x in client.get("/api/reports", headers=tok(**AGENT_203)).get_json()["reports"]]
    assert by_user in ids_200 and by_dep not in ids_200
    assert by_dep in ids_203 and by_user not in ids_203
    # a report about department 2 shared with an agent of department 5 holds none of their data
    dep2 = create(client, tok(), name="dep 2", share={"users": ["203"]})
    r = client.get(f"/api/reports/{dep2}/data", headers=tok(**AGENT_203))
    assert r.status_code == 403 and r.get_json()["code"] == "no_slice"


def test_head_shares_only_inside_their_departments(client):
    head = tok(**HEAD2)
    r = client.post("/api/reports", json=definition(share={"departments": ["3"]}), headers=head)
    assert r.status_code == 403 and r.get_json()["field"] == "share.departments"
    r = client.post("/api/reports", json=definition(share={"users": ["203"]}), headers=head)  # 203 is in 5
    assert r.status_code == 403 and r.get_json()["field"] == "share.users"
    r = client.post("/api/reports", json=definition(filters={"department": "4"}), headers=head)
    assert r.status_code == 403 and r.get_json()["field"] == "filters.department"
    rid = create(client, head, filters={}, share={"roles": ["agent"], "users": ["200"]})
    d = client.get(f"/api/reports/{rid}", headers=head).get_json()
    assert d["filters"]["department"] == "2" and d["owner"] == "102"  # pinned to the head's department
    # shared with the role "agent": reaches agents of department 2 only
    assert rid in [x["id"] for x in client.get("/api/reports", headers=tok(**AGENT_200)).get_json()["reports"]]
    assert rid not in [x["id"] for x in client.get("/api/reports", headers=tok(**AGENT_203)).get_json()["reports"]]
    # another head cannot edit it; an admin can
    other_head = tok(user="103", role=HEAD, departments=("3",), headed=("3",), tree=("3",))
    assert client.put(f"/api/reports/{rid}", json=definition(), headers=other_head).status_code == 404
    assert client.put(f"/api/reports/{rid}", json=definition(name="by admin"), headers=tok()).status_code == 200
    assert client.get(f"/api/reports/{rid}", headers=head).get_json()["owner"] == "102"


def test_head_sees_only_their_part_of_an_admins_report(client):
    rid = create(client, tok(), name="whole desk", filters={}, group_by="department", share={"roles": ["head"]})
    res = client.get(f"/api/reports/{rid}/data", headers=tok(**HEAD2)).get_json()["result"]
    assert [g["key"] for g in res["groups"]] == ["2"]
    mine = client.get(
        "/api/kpi", query_string={"from": "2026-10-01", "to": "2026-11-01", "department": "2"}, headers=tok()
    ).get_json()
    assert res["kpis"]["tickets_total"] == mine["kpis"]["tickets_total"]


@pytest.mark.parametrize(
    "over,field",
    [
        ({"name": ""}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"kpis": []}, "kpis"),
        ({"kpis": ["tickets_total", "nope"]}, "kpis"),
        ({"group_by": "year"}, "group_by"),
        ({"filters": {"priority": "urgent"}}, "filters.priority"),
        ({"filters": {"colour": "red"}}, "filters.colour"),
        ({"filters": {"agent": "1; drop table"}}, "filters.agent"),
        ({"filters": []}, "filters"),
        ({"period": {"preset": "next_month"}}, "period.preset"),
        ({"period": {"from": "2026-10-01"}}, "period"),
        ({"period": {"from": "2026-11-01", "to": "2026-10-01"}}, "period.to"),
        ({"period": {"from": "2026-13-01", "to": "2026-14-01"}}, "period.from"),
        ({"compare": "yesterday"}, "compare"),
        ({"chart": "pie"}, "chart"),
        ({"share": {"roles": ["owner"]}}, "share.roles"),
        ({"share": {"users": [{"id": 1}]}}, "share.users"),
        ({"share": []}, "share"),
        ({"extra": 1}, "extra"),
    ],
)
def test_invalid_definitions_name_the_field(client, over, field):
    r = client.post("/api/reports", json=definition(**over), headers=tok())
    assert r.status_code == 400
    assert r.get_json()["field"] == field and r.get_json()["error"]


def test_errors_speak_the_viewers_language_and_bad_bodies_are_4xx(client):
    r = client.post("/api/reports", json=definition(kpis=[]), headers=tok(lang="ru"))
    assert r.status_code == 400 and "показатель" in r.get_json()["error"]
    for body in (b"not json", b"[1,2]", b"null", b'"x"'):
        r = client.post("/api/reports", data=body, headers=dict(tok(), **{"Content-Type": "application/json"}))
        assert r.status_code == 400, body
    rid = create(client, tok())
    r = client.get(f"/api/reports/{rid}/data?from=2026-10-01", headers=tok())
    assert r.status_code == 400 and r.get_json()["field"] == "from"
    r = client.get(f"/api/reports/{rid}/data?from=2026-11-01&to=2026-10-01", headers=tok())
    assert r.status_code == 400


def test_attacks_other_portal_no_token_forged_ids(client):
    rid = create(client, tok(), share={"roles": ["admin", "head", "agent"]})
    stranger = tok(portal=OTHER)  # an admin of another portal
    assert rid not in [x["id"] for x in client.get("/api/reports", headers=stranger).get_json()["reports"]]
    for m in ("get", "put", "delete"):
        r = getattr(client, m)(f"/api/reports/{rid}", json=definition(), headers=stranger)
        assert r.status_code == 404, m
    assert client.get(f"/api/reports/{rid}/data", headers=stranger).status_code == 404
    assert client.get(f"/api/reports/{rid}", headers=tok()).status_code == 200  # untouched
    assert client.get("/api/reports").status_code == 401
    assert client.post("/api/reports", json=definition()).status_code == 401
    forged = {"Authorization": "Bearer " + dump_token("not-the-secret", Viewer(portal=PORTAL, user_id="1", role=ADMIN))}
    assert client.get("/api/reports", headers=forged).status_code == 401
    for bad in ("..%2F..%2Fetc", "r' or '1'='1", "x" * 300, "%00"):
        r = client.get(f"/api/reports/{bad}", headers=tok())
        assert r.status_code == 404, bad


def test_presets_and_last_year_comparison(client):
    rid = create(client, tok(), period={"preset": "last_month"}, compare="last_year", group_by="month", filters={})
    body = client.get(f"/api/reports/{rid}/data", headers=tok()).get_json()
    res = body["result"]
    frm = datetime.fromisoformat(res["period"]["from"])
    prev = datetime.fromisoformat(res["previous"]["from"])
    assert frm.day == 1 and (prev.year, prev.month) == (frm.year - 1, frm.month)
    ly = client.get(
        "/api/kpi", query_string={"from": res["previous"]["from"], "to": res["previous"]["to"]}, headers=tok()
    ).get_json()
    assert res["kpis"]["tickets_total"]["previous"] == ly["kpis"]["tickets_total"]["value"]
    assert res["groups"][0]["kpis"]["tickets_total"]["previous"] == ly["kpis"]["tickets_total"]["value"]


def test_api_kpi_time_dimensions_and_team_totals(client):
    q = {"from": "2026-10-01", "to": "2026-11-01"}
    total = client.get("/api/kpi", query_string=q, headers=tok()).get_json()["kpis"]["tickets_total"]["value"]
    for dim, n in (("week", 5), ("month", 1), ("weekday", 7), ("hour", 24)):
        r = client.get("/api/kpi", query_string=dict(q, group_by=dim), headers=tok()).get_json()
        keyed = [g for g in r["groups"] if g["key"] is not None]
        assert len(keyed) == n and sum(g["kpis"]["tickets_total"]["value"] for g in r["groups"]) == total
    agent = tok(**AGENT_203)
    r = client.get("/api/kpi", query_string=dict(q, department="5", group_by="weekday"), headers=agent)
    assert r.status_code == 200 and r.get_json()["filters"]["agent"] is None  # team totals by weekday
    r = client.get("/api/kpi", query_string=dict(q, department="5", group_by="agent"), headers=agent)
    assert r.status_code == 403
    assert client.get("/api/kpi", query_string=dict(q, group_by="year"), headers=tok()).status_code == 400


def _t(headers):
    return headers["Authorization"][7:]


def test_pages_pin_and_digest_as_each_role(client):
    rid = create(
        client, tok(), name="Pinned <b>bold</b>", filters={}, group_by="agent", share={"roles": ["agent"]}, chart="bar"
    )
    agent = tok(**AGENT_203)
    # agents cannot pin, set a digest or open the builder; the admin can
    assert client.post(f"/api/reports/{rid}/pin", json={"pinned": True}, headers=agent).status_code == 403
    assert client.post(f"/api/reports/{rid}/digest", json={"digest": "weekly"}, headers=agent).status_code == 403
    assert client.get(f"/reports/saved/new?t={_t(agent)}").status_code == 403
    assert client.post(f"/api/reports/{rid}/digest", json={"digest": "hourly"}, headers=tok()).status_code == 400
    r = client.post(f"/api/reports/{rid}/pin", json={"pinned": True}, headers=tok())
    assert r.status_code == 200 and r.get_json()["pinned"] is True
    # pinned: on the dashboard of its audience (an agent it is shared with), escaped
    page = client.get(f"/reports/dashboard?t={_t(agent)}").get_data(as_text=True)
    assert 'id="pinned-reports"' in page and "Pinned &lt;b&gt;bold&lt;/b&gt;" in page
    head5 = tok(user="105", role=HEAD, departments=("5",), headed=("5",), tree=("5",))
    assert 'id="pinned-reports"' not in client.get(f"/reports/dashboard?t={_t(head5)}").get_data(as_text=True)
    # the report page as the agent: their slice, no edit controls, no problem zones of colleagues
    page = client.get(f"/reports/saved/{rid}?t={_t(agent)}").get_data(as_text=True)
    assert 'id="slice-note"' in page and 'id="delete-report"' not in page and 'id="problem-zones"' not in page
    assert "Agent203" in page and "Agent204" not in page
    # as the admin: every agent, the problem-zone panel, exports with the report's KPIs only
    page = client.get(f"/reports/saved/{rid}?t={_t(tok())}").get_data(as_text=True)
    assert 'id="problem-zones"' in page and "Agent204" in page and 'id="delete-report"' in page
    csv = client.get(f"/reports/saved/{rid}/export.csv?t={_t(tok())}").get_data(as_text=True)
    head = csv.lstrip("\ufeff").split("\n")[0]
    assert head.startswith("Agent,Tickets created,") and "Backlog" not in head and "Open at period end" not in head
    body = client.get(f"/reports/saved/{rid}/export.xlsx?t={_t(tok())}")
    assert body.status_code == 200 and body.data[:2] == b"PK"
    agent_csv = client.get(f"/reports/saved/{rid}/export.csv?t={_t(agent)}").get_data(as_text=True)
    assert "Agent203" in agent_csv and "Agent204" not in agent_csv
    # the builder preview: validated like a save, cut to the viewer
    r = client.post("/api/reports/preview", json=definition(kpis=[]), headers=tok())
    assert r.status_code == 400 and r.get_json()["field"] == "kpis"
    r = client.post("/api/reports/preview", json=definition(), headers=agent)
    assert r.status_code == 403
    r = client.post("/api/reports/preview", json=definition(group_by="weekday"), headers=tok())
    assert r.status_code == 200 and len(r.get_json()["table"]["rows"]) >= 8


def test_list_page_and_builder_show_names_not_ids(client):
    create(client, tok(), name="Named", filters={}, share={"departments": ["2"], "users": ["200"]})
    page = client.get(f"/reports/saved?t={_t(tok())}").get_data(as_text=True)
    assert "Line 2" in page and "Agent200" in page
    page = client.get(f"/reports/saved/new?t={_t(tok(**HEAD2))}").get_data(as_text=True)
    assert "Line 2" in page and "Line 3" not in page  # a head is offered only their departments
    assert client.get(f"/reports/saved/nope/edit?t={_t(tok())}").status_code == 404


def test_random_definitions_agree_with_api_kpi_and_respect_every_role(client):
    """Definitions no test names: any KPIs, breakdown, filters and period. The admin's /data is
    /api/kpi's JSON; a head's never leaves department 2; an agent's is their own; nothing 5xx."""
    import random

    from b24desk.kpi.engine import KPI_KEYS
    from b24desk.kpi.filters import GROUP_BY

    rnd = random.Random(16)
    head, agent = tok(**HEAD2), tok(**AGENT_200)
    for _ in range(25):
        filters = {}
        if rnd.random() < 0.4:
            filters["priority"] = rnd.sample(["low", "normal", "high", "critical"], rnd.randint(1, 2))
        if rnd.random() < 0.3:
            filters["department"] = rnd.choice(["1", "2", "3", "4"])
        if rnd.random() < 0.2:
            filters["agent"] = rnd.choice(["200", "201", "205"])
        if rnd.random() < 0.2:
            filters["source"] = "tasks"
        a = rnd.randint(0, 20)
        frm = f"2026-{rnd.choice(['08', '09', '10'])}-{1 + a:02d}"
        to = f"2026-11-{rnd.randint(1, 14):02d}"
        period = (
            {"from": frm, "to": to}
            if rnd.random() < 0.7
            else {"preset": rnd.choice(["last_month", "last_30_days", "this_quarter", "last_week"])}
        )
        gb = rnd.choice(list(GROUP_BY) + [None])
        d = definition(
            kpis=rnd.sample(list(KPI_KEYS), rnd.randint(1, 6)),
            group_by=gb,
            filters=filters,
            period=period,
            compare=rnd.choice(["previous", None]),
            share={"roles": ["head", "agent"]},
        )
        rid = create(client, tok(), **d)
        body = client.get(f"/api/reports/{rid}/data", headers=tok()).get_json()
        res = body["result"]
        q = {"from": res["period"]["from"], "to": res["period"]["to"], **filters}
        if gb:
            q["group_by"] = gb
        if "preset" not in period:
            q.update(period)
        assert res == client.get("/api/kpi", query_string=q, headers=tok()).get_json(), d
        for who in (head, agent):
            r = client.get(f"/api/reports/{rid}/data", headers=who)
            assert r.status_code in (200, 403), (r.status_code, d)
            if r.status_code == 403:
                assert r.get_json()["code"] == "no_slice"
                continue
            f = r.get_json()["result"]["filters"]
            if who is head:
                deps = f["department"] if isinstance(f["department"], list) else [f["department"]]
                assert deps and all(x == "2" for x in deps), (f, d)
            else:
                assert f["agent"] == "200", (f, d)


def test_report_page_period_form_takes_the_last_day_inclusive(client):
    rid = create(client, tok(), name="Period", filters={}, group_by=None, kpis=["tickets_total"])
    page = client.get(f"/reports/saved/{rid}?t={_t(tok())}&from=2026-09-01&till=2026-09-30").get_data(as_text=True)
    want = client.get("/api/kpi", query_string={"from": "2026-09-01", "to": "2026-10-01"}, headers=tok()).get_json()[
        "kpis"
    ]["tickets_total"]["value"]
    assert 'value="2026-09-30"' in page and "01 Sep 2026 — 30 Sep 2026" in page
    assert f'<td class="num">{want}' in page.replace("\u202f", "")
    assert 'id="period-reset"' in page
    assert client.get(f"/reports/saved/{rid}?t={_t(tok())}&from=2026-09-01&till=nope").status_code == 400
    assert client.get(f"/reports/saved/{rid}?t={_t(tok())}&from=2026-09-10&till=2026-09-01").status_code == 400


def test_fuzzed_definitions_and_queries_never_answer_5xx(client):
    """Bounded hypothesis fuzz: JSON bodies that look like definitions (right keys, wrong shapes),
    odd ids and query strings, as admin, head and agent. Every answer is a 2xx or a 4xx."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(10**12), 10**12),
        st.floats(allow_nan=True),
        st.text(max_size=30),
        st.sampled_from(["agent", "week", "last_month", "2026-10-01", "tickets_total", "admin", "2", "../x", "\x00"]),
    )
    values = st.recursive(
        scalars,
        lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
        max_leaves=12,
    )
    keys = st.sampled_from(
        ["name", "kpis", "group_by", "filters", "period", "compare", "chart", "share", "owner", "id", "extra"]
    )
    bodies = st.one_of(values, st.dictionaries(keys, values, max_size=9))
    rid = create(client, tok(), name="fuzz target", share={"roles": ["head", "agent"]})
    viewers = [tok(), tok(**HEAD2), tok(**AGENT_203)]

    @settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(
        body=bodies,
        who=st.integers(0, 2),
        q=st.dictionaries(
            st.sampled_from(["from", "to", "till", "long", "months", "analysis", "t"]), st.text(max_size=25), max_size=4
        ),
        target=st.sampled_from([rid, "nope", "r" + "0" * 12]),
    )
    def run(body, who, q, target):
        h = viewers[who]
        for r in (
            client.post("/api/reports", json=body, headers=h),
            client.post("/api/reports/preview", json=body, headers=h),
            client.put(f"/api/reports/{target}", json=body, headers=h) if target != rid else None,
            client.post(f"/api/reports/{target}/digest", json=body, headers=h),
            client.get(f"/api/reports/{target}/data", query_string=q, headers=h),
            client.get(f"/reports/saved/{target}", query_string=dict(q, t=_t(h))),
        ):
            if r is not None:
                assert r.status_code < 500, (r.status_code, body, q, r.get_data(as_text=True)[:300])

    run()
