"""Placement launches, role slices, pages, /api/kpi, drilldown, exports and settings, end to end.

The app (Flask test client) verifies every launch against the portal double over real HTTP on
127.0.0.1 (``user.current``, ``user.admin``, ``department.get``), with the real client; the store
was filled by the real sync from the same double.
"""

from __future__ import annotations

import csv
import io
import json
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from pages_support import XSS, build_desk

from app import create_app
from b24desk.kpi import build_report
from b24desk.store import open_db
from b24desk.viewer import csrf_token, load_token

SECRET = "pages-secret"


@pytest.fixture(scope="module")
def desk(tmp_path_factory):
    d = build_desk(tmp_path_factory.mktemp("pages"), tickets=300, seed=11)
    yield d
    d.double.stop()


@pytest.fixture
def app(desk):
    a = create_app({"TESTING": True, "DB": desk.db_path, "SECRET_KEY": SECRET})
    from reports.data import MEMO

    MEMO.clear()
    return a


@pytest.fixture
def client(app):
    return app.test_client()


def launch(client, desk, user, *, lang="en", **form_over):
    return client.post(
        f"/app?DOMAIN=evil.example&PROTOCOL=1&LANG={lang}&APP_SID=x", data=desk.launch_form(user, **form_over)
    )


def token_of(client, desk, user, **kw) -> str:
    r = launch(client, desk, user, **kw)
    assert r.status_code == 303, r.get_data(as_text=True)
    return parse_qs(urlsplit(r.headers["Location"]).query)["t"][0]


def period(desk) -> str:
    return f"from={desk.date_from}&to={desk.date_to}"


def page_period(desk) -> str:
    """The same days as ``period`` in the page's URL, where ``to`` is the last day shown (inclusive)."""
    from reports.query import last_day

    return f"from={desk.date_from}&to={last_day(desk.date_to)}"


def api(client, desk, token, extra=""):
    return client.get(f"/api/kpi?{period(desk)}{extra}", headers={"Authorization": f"Bearer {token}"})


def engine(desk, **kw):
    db = open_db(desk.db_path)
    try:
        return build_report(db, desk.member_id, desk.date_from, desk.date_to, **kw)
    finally:
        db.conn.close()


# --- launches -----------------------------------------------------------------------------------


def test_launch_verifies_and_mints_a_viewer_token(client, desk):
    r = launch(client, desk, desk.admin)
    assert r.status_code == 303
    loc = urlsplit(r.headers["Location"])
    assert loc.path == "/reports/dashboard"
    v = load_token(SECRET, parse_qs(loc.query)["t"][0])
    assert (v.role, v.user_id, v.portal) == ("admin", "1", desk.member_id)
    assert v.domain == desk.double.domain  # the stored domain, not DOMAIN=evil.example
    head = load_token(SECRET, token_of(client, desk, desk.heads[2]))
    assert head.role == "head" and head.tree == ("2",)
    agent = next(a for a, dep in desk.agents.items() if dep == 3)
    ag = load_token(SECRET, token_of(client, desk, agent))
    assert ag.role == "agent" and ag.departments == ("3",)


def test_forged_launches_are_refused(client, desk, tmp_path):
    from portal_double import PortalDouble

    good = desk.launch_form(desk.admin)
    cases = {
        "wrong application token": dict(good, APPLICATION_TOKEN="0" * 32),
        "no application token": {k: v for k, v in good.items() if k != "APPLICATION_TOKEN"},
        "made-up AUTH_ID": dict(good, AUTH_ID="f" * 32),
        "unknown portal": dict(good, member_id="not-installed"),
    }
    other = PortalDouble(seed=2, tickets=20, months=1, drain_per_s=1e6).start()
    try:
        # a real token of another portal, sent with this portal's member_id and application token
        cases["token of another portal"] = dict(good, AUTH_ID=other.issue_tokens(1)["access_token"])
        for name, form in cases.items():
            r = client.post("/app?DOMAIN=x&LANG=en", data=form)
            assert r.status_code in (400, 403), name
            assert "Location" not in r.headers, name
            body = r.get_data(as_text=True)
            assert "?t=" not in body and "&t=" not in body and 'name="t"' not in body, name
    finally:
        other.stop()
    desk.double.expire_tokens()
    try:
        r = client.post("/app", data=good)  # expired AUTH_ID: the portal says 401
        assert r.status_code == 403
    finally:
        pass


def test_placements_route_to_dashboard_or_ticket_card(client, desk):
    r = launch(client, desk, desk.admin, placement="CRM_ANALYTICS_MENU", options="")
    assert urlsplit(r.headers["Location"]).path == "/reports/dashboard"
    r = launch(client, desk, desk.admin, placement="TASK_VIEW_TAB", options=json.dumps({"taskId": desk.xss_task}))
    loc = urlsplit(r.headers["Location"])
    assert loc.path == "/reports/ticket" and parse_qs(loc.query)["source"] == ["task"]
    r = launch(client, desk, desk.admin, placement="CRM_DYNAMIC_1038_DETAIL_TAB", options='{"ID": "5"}')
    assert parse_qs(urlsplit(r.headers["Location"]).query)["source"] == ["crm:1038"]
    r = launch(client, desk, desk.admin, placement="CRM_DEAL_DETAIL_TAB", options='{"ID": "x"}')
    assert r.status_code == 400


# --- role slices ------------------------------------------------------------------------------------


def test_api_kpi_is_flask_kpi_json(client, desk, app):
    tok = token_of(client, desk, desk.admin)
    r = api(client, desk, tok, "&group_by=agent")
    assert r.status_code == 200 and r.mimetype == "application/json"
    runner = app.test_cli_runner()
    out = runner.invoke(
        args=[
            "kpi",
            "--db",
            desk.db_path,
            "--from",
            desk.date_from,
            "--to",
            desk.date_to,
            "--format",
            "json",
            "--group-by",
            "agent",
        ]
    )
    assert out.exit_code == 0, out.output
    assert r.get_data(as_text=True) == out.output
    q = api(client, desk, None and tok or "")
    assert q.status_code == 401 and q.get_json()["error"] == "no_token"
    assert client.get(f"/api/kpi?{period(desk)}&t={tok}").status_code == 200
    assert api(client, desk, tok, "&group_by=moon").status_code == 400
    assert client.get(f"/api/kpi?from=2026-13-01&to=2026-14-01&t={tok}").status_code == 400
    assert client.get(f"/api/kpi?from={desk.date_from}&t={tok}").status_code == 400


def test_each_role_sees_exactly_its_slice(client, desk):
    admin = token_of(client, desk, desk.admin)
    full = api(client, desk, admin).get_json()
    assert full == engine(desk)

    head_id = desk.heads[2]
    head = token_of(client, desk, head_id)
    hr = api(client, desk, head, "&group_by=agent").get_json()
    assert hr["filters"]["department"] == "2"
    assert hr == engine(desk, filters={"department": "2"}, group_by="agent")
    tree_people = {str(a) for a, dep in desk.agents.items() if dep == 2} | {str(head_id)}
    assert {g["key"] for g in hr["groups"]} <= tree_people | {None}
    assert api(client, desk, head, "&department=3").status_code == 403
    other_agent = next(a for a, dep in desk.agents.items() if dep == 3)
    assert api(client, desk, head, f"&agent={other_agent}").status_code == 403
    mine = next(a for a, dep in desk.agents.items() if dep == 2)
    assert api(client, desk, head, f"&agent={mine}").get_json() == engine(
        desk, filters={"department": "2", "agent": str(mine)}
    )

    ag = token_of(client, desk, mine)
    own = api(client, desk, ag).get_json()
    assert own["filters"]["agent"] == str(mine)
    assert own == engine(desk, filters={"agent": str(mine)})
    team = api(client, desk, ag, "&department=2").get_json()
    assert team == engine(desk, filters={"department": "2"})
    assert api(client, desk, ag, f"&agent={desk.heads[2]}").status_code == 403  # a colleague
    assert api(client, desk, ag, "&department=3").status_code == 403  # another department
    assert api(client, desk, ag, "&department=2&group_by=agent").status_code == 403  # team split by agent
    # the slice of each role adds up: the head's department is part of the whole
    assert hr["kpis"]["tickets_total"]["value"] <= full["kpis"]["tickets_total"]["value"]
    assert own["kpis"]["tickets_total"]["value"] <= team["kpis"]["tickets_total"]["value"]


def test_drilldown_is_scoped_and_matches_the_number(client, desk):
    admin = token_of(client, desk, desk.admin)
    rep = engine(desk)
    r = client.get(f"/api/drilldown?kpi=tickets_total&{period(desk)}&t={admin}")
    body = r.get_json()
    assert r.status_code == 200 and body["total"] == rep["kpis"]["tickets_total"]["value"]
    xss = [x for x in body["tickets"] if x["source_id"] == desk.xss_task]
    assert xss and xss[0]["title"] == XSS
    assert xss[0]["link"] == f"{desk.double.base_url}/company/personal/user/{xss[0]['link'].split('/user/')[1]}"
    frt = client.get(f"/api/drilldown?kpi=first_response_time&{period(desk)}&t={admin}").get_json()
    assert frt["total"] == rep["kpis"]["first_response_time"]["value"]["count"]
    mine = next(a for a, dep in desk.agents.items() if dep == 2)
    ag = token_of(client, desk, mine)
    own = client.get(f"/api/drilldown?kpi=tickets_total&{period(desk)}&t={ag}").get_json()
    assert own["total"] == engine(desk, filters={"agent": str(mine)})["kpis"]["tickets_total"]["value"]
    db = open_db(desk.db_path)
    try:
        for row in own["tickets"]:
            resp = db.execute(
                "select responsible_id from tickets where source = ? and source_id = ?",
                [row["source"], row["source_id"]],
            ).fetchone()[0]
            assert resp == str(mine)
    finally:
        db.conn.close()
    assert client.get(f"/api/drilldown?kpi=tickets_total&department=2&{period(desk)}&t={ag}").status_code == 403
    assert client.get(f"/api/drilldown?kpi=nope&{period(desk)}&t={admin}").status_code == 400


# --- pages --------------------------------------------------------------------------------------


def test_dashboard_page_is_frame_safe_and_escaped(client, desk):
    tok = token_of(client, desk, desk.admin)
    r = client.get(f"/reports/dashboard?{page_period(desk)}&t={tok}")
    assert r.status_code == 200
    csp = r.headers["Content-Security-Policy"]
    assert f"frame-ancestors {desk.double.base_url}" in csp and "evil.example" not in csp
    assert "X-Frame-Options" not in r.headers
    assert "script-src 'self';" in csp  # the double is no real portal: no BX24 script
    html = r.get_data(as_text=True)
    assert "api.bitrix24.com" not in html and "cdn" not in html.lower()
    assert re.search(r"<script>", html) is None  # no inline script: the CSP forbids it
    assert 'id="cards"' in html and 'data-kpi="first_response_time"' in html
    assert 'id="table-agent"' in html and 'id="table-department"' in html
    data = json.loads(
        re.search(r'<script type="application/json" id="b24desk-data">(.*?)</script>', html, re.S).group(1)
    )
    assert data["trend"]["labels"] and data["frt_dist"]["counts"]
    assert XSS not in html  # ticket texts never reach the page raw


def test_dashboard_languages_and_agent_page(client, desk):
    mine = next(a for a, dep in desk.agents.items() if dep == 2)
    tok = token_of(client, desk, mine, lang="ru")
    html = client.get(f"/reports/dashboard?{page_period(desk)}&t={tok}").get_data(as_text=True)
    assert "Время первого ответа" in html and "среднее" in html and "Команда" in html
    assert 'id="table-agent"' not in html and 'name="agent"' not in html  # no colleague's numbers
    en = token_of(client, desk, mine, lang="en")
    html = client.get(f"/reports/dashboard?{page_period(desk)}&t={en}").get_data(as_text=True)
    assert "First response time" in html and "Team" in html
    assert client.get(f"/reports/dashboard?{page_period(desk)}&agent={desk.heads[2]}&t={en}").status_code == 403


def test_agent_dashboard_cards_show_own_and_team_figures_of_the_engine(client, desk):
    """An agent's cards: their own figures and their team's (department 2) beside them, from one
    engine pass narrowed twice (ReportPass.narrow); each equals build_report with those filters."""
    from b24desk.text import present

    mine = next(a for a, dep in desk.agents.items() if dep == 2)
    tok = token_of(client, desk, mine, lang="en")
    html = client.get(f"/reports/dashboard?{page_period(desk)}&t={tok}").get_data(as_text=True)
    own = engine(desk, filters={"agent": str(mine)})["kpis"]
    team = engine(desk, filters={"department": "2"})["kpis"]
    assert own["tickets_total"]["value"] < team["tickets_total"]["value"]  # two different figures
    for key in ("tickets_total", "resolved_count", "backlog", "fcr_share"):
        card = re.search(rf'<div class="card[^"]*" data-kpi="{key}".*?<div class="team">(.*?)</div>', html, re.S)
        assert card, key
        value = re.search(r'<div class="value">(.*?)(?:<small|</div>)', card.group(0), re.S).group(1).strip()
        assert value == present.fmt_value(key, own[key]["value"], "en"), key
        assert card.group(1) == f"Team: {present.fmt_value(key, team[key]['value'], 'en')}", key


def test_ticket_card_escapes_and_is_scoped(client, desk):
    tok = token_of(client, desk, desk.admin, placement="TASK_VIEW_TAB", options=json.dumps({"taskId": desk.xss_task}))
    r = client.get(f"/reports/ticket?source=task&id={desk.xss_task}&t={tok}")
    html = r.get_data(as_text=True)
    assert r.status_code == 200
    assert XSS not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert 'id="timeline"' in html and "Looking into it" not in html  # comment texts are not stored
    assert 'id="ticket-frt"' in html
    owner = next(a for a, dep in desk.agents.items() if dep == 2)
    assert (
        client.get(f"/reports/ticket?source=task&id={desk.xss_task}&t={token_of(client, desk, owner)}").status_code
        == 200
    )
    stranger = next(a for a, dep in desk.agents.items() if dep == 3)
    assert (
        client.get(f"/reports/ticket?source=task&id={desk.xss_task}&t={token_of(client, desk, stranger)}").status_code
        == 403
    )
    assert client.get(f"/reports/ticket?source=task&id=999999&t={tok}").status_code == 200  # not synced yet
    assert client.get(f"/reports/ticket?source=task&id=abc&t={tok}").status_code == 400


def test_exports_carry_the_view(client, desk):
    tok = token_of(client, desk, desk.admin)
    r = client.get(f"/reports/export.csv?{period(desk)}&priority=high&layout=raw&t={tok}")
    assert r.status_code == 200 and "attachment" in r.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(r.get_data(as_text=True).lstrip("\ufeff"))))
    rep = engine(desk, filters={"priority": "high"}, group_by="agent")
    total = next(x for x in rows if x["kpi"] == "tickets_total" and x["group"] == "")
    assert int(total["value"]) == rep["kpis"]["tickets_total"]["value"]
    assert {x["group"] for x in rows} - {""} == {str(g["key"]) for g in rep["groups"] if g["key"] is not None}
    import openpyxl

    x = client.get(f"/reports/export.xlsx?{period(desk)}&priority=high&layout=raw&t={tok}")
    wb = openpyxl.load_workbook(io.BytesIO(x.data))
    assert wb.sheetnames == ["Summary", "Groups", "Weeks"]
    # the Weeks sheet holds the trend charts' numbers: created per week sums to the period's total
    weeks = list(wb["Weeks"].iter_rows(min_row=2, values_only=True))
    assert weeks and weeks[0][0].startswith(rep["period"]["from"][:10])
    assert sum(w[2] for w in weeks) == rep["kpis"]["tickets_total"]["value"]
    mine = next(a for a, dep in desk.agents.items() if dep == 2)
    ag = token_of(client, desk, mine)
    r = client.get(f"/reports/export.csv?{period(desk)}&layout=raw&t={ag}")
    rows = list(csv.DictReader(io.StringIO(r.get_data(as_text=True).lstrip("\ufeff"))))
    assert {x["group"] for x in rows} == {""}  # no per-agent rows for an agent
    assert client.get(f"/reports/export.csv?{period(desk)}&agent={desk.heads[2]}&t={ag}").status_code == 403


def test_settings_admin_only_with_csrf(client, desk, app):
    admin = token_of(client, desk, desk.admin)
    assert client.get(f"/reports/settings?t={admin}").status_code == 200
    mine = next(a for a, dep in desk.agents.items() if dep == 2)
    ag = token_of(client, desk, mine)
    assert client.get(f"/reports/settings?t={ag}").status_code == 403
    good = csrf_token(SECRET, load_token(SECRET, admin))
    body = {
        "t": admin,
        "form": "targets",
        "tg-first_response_time-value": "5",
        "tg-first_response_time-dir": "lower",
        "tg-first_response_time-tol": "10",
    }
    assert client.post("/reports/settings", data=body).status_code == 403  # no CSRF token
    other = token_of(client, desk, desk.admin)  # another session
    assert (
        client.post(
            "/reports/settings", data=dict(body, csrf=csrf_token(SECRET, load_token(SECRET, other)))
        ).status_code
        == 403
    )
    assert (
        client.post(
            "/reports/settings", data=dict(body, t=ag, csrf=csrf_token(SECRET, load_token(SECRET, ag)))
        ).status_code
        == 403
    )
    r = client.post("/reports/settings", data=dict(body, csrf=good))
    assert r.status_code == 303
    rep = api(client, desk, admin).get_json()
    assert rep["kpis"]["first_response_time"]["target"] == 300  # the engine sees the new target (5 min)
    bad = client.post("/reports/settings", data=dict(body, csrf=good, **{"tg-first_response_time-value": "soon"}))
    assert bad.status_code == 400 and 'id="err-tg-first_response_time-value"' in bad.get_data(as_text=True)
    assert api(client, desk, admin).get_json()["kpis"]["first_response_time"]["target"] == 300  # nothing lost
    r = client.post(
        "/reports/settings",
        data={"t": admin, "csrf": good, "form": "ccei", "period": "2026-10", "enps": "40", "turnover": "10"},
    )
    assert r.status_code == 303
    r = client.post(
        "/reports/settings", data={"t": admin, "csrf": good, "form": "ccei", "period": "2026-10", "turnover": "700"}
    )
    assert r.status_code == 400
    cal = {
        "t": admin,
        "csrf": good,
        "form": "calendar",
        "cal-days": ["1", "2", "3", "4", "5"],
        "cal-country": "RU",
        "cal-portal": "1",
        "cal-tz": "Europe/Moscow",
        "cal-start": "19:00",
        "cal-end": "18:00",
    }
    r = client.post("/reports/settings", data=cal)
    assert r.status_code == 400 and 'id="err-cal-end"' in r.get_data(as_text=True)
    r = client.post("/reports/settings", data=dict(cal, **{"cal-start": "10:00"}))
    assert r.status_code == 303
    r = client.post("/reports/settings", data=dict(body, csrf=good, **{"tg-first_response_time-value": "10"}))
    assert r.status_code == 303  # back to the file's target
    r = client.post("/reports/settings", data=dict(cal, **{"cal-start": "09:00"}))
    assert r.status_code == 303  # back to the file's calendar for the other tests
    assert api(client, desk, admin).get_json() == engine(desk)


def test_expired_and_forged_viewer_tokens(client, desk, app):
    tok = token_of(client, desk, desk.admin)
    app.config["VIEWER_TOKEN_MAX_AGE"] = -1
    r = client.get(f"/reports/dashboard?{page_period(desk)}&t={tok}")
    assert r.status_code == 401 and "reopen" in r.get_data(as_text=True).lower()
    app.config["VIEWER_TOKEN_MAX_AGE"] = 3600
    assert client.get(f"/reports/dashboard?t={tok[:-2]}xx").status_code == 401
    assert client.get("/api/kpi", headers={"Authorization": "Bearer nope"}).status_code == 401
