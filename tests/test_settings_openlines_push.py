"""Settings page: open-lines availability and cross-check (admins only), the push form; the
dashboard's by-channel and by-line tables. End to end against the portal double over HTTP."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from pages_support import installed_and_synced, settings_app_client
from pages_support import launch_token as token_of
from pages_support import stored_setting as stored

from b24desk.store import open_db
from b24desk.viewer import csrf_token, load_token

SECRET = "settings-secret"


@pytest.fixture(scope="module")
def desk(tmp_path_factory):
    from portal_double import PortalDouble

    d = PortalDouble(seed=4, tickets=40, months=2, openlines=250, drain_per_s=1e6).start()
    db_path = str(tmp_path_factory.mktemp("olset") / "s.db")
    installed_and_synced(d, db_path, ["tasks", "openlines"])
    today = datetime.fromtimestamp(d.portal.now, ZoneInfo("Europe/Moscow")).date()
    d.period = ((today - timedelta(days=40)).isoformat(), (today + timedelta(days=1)).isoformat())
    d.db_path = db_path
    agents = [a for a in d.desk.agents if a not in dict(d.desk.heads).values() and d.portal.users[a]["ACTIVE"]]
    d.agent = agents[0]
    yield d
    d.stop()


@pytest.fixture
def client(desk):
    return settings_app_client(desk, SECRET)


def test_crosscheck_and_tariff_restriction_for_admins_only(client, desk):
    from portal_double import openlines as dol

    admin = token_of(client, desk, 1)
    csrf = csrf_token(SECRET, load_token(SECRET, admin))
    page = client.get(f"/reports/settings?t={admin}").get_data(as_text=True)
    assert 'id="form-openlines"' in page and "Open Channels statistics are available" in page
    assert "No cross-check yet" in page
    # no CSRF: refused, nothing asked of the portal
    assert client.post("/reports/settings", data={"t": admin, "form": "crosscheck"}).status_code == 403
    bad = client.post(
        "/reports/settings",
        data={"t": admin, "csrf": csrf, "form": "crosscheck", "from": desk.period[1], "to": desk.period[0]},
    )
    assert bad.status_code == 400 and stored(desk, "openlines.crosscheck") is None
    r = client.post(
        "/reports/settings",
        data={"t": admin, "csrf": csrf, "form": "crosscheck", "from": desk.period[0], "to": desk.period[1]},
    )
    assert r.status_code == 303, r.get_data(as_text=True)
    check = stored(desk, "openlines.crosscheck")
    assert check["available"] and check["differs"] and check["differences"]["frt_avg"]  # the double's bots
    page = client.get(r.headers["Location"]).get_data(as_text=True)
    assert 'id="ol-differs"' in page and 'data-differs="true"' in page and "chatbot" in page
    assert '<tr data-key="frt_avg" class="differs">' in page
    dash = client.get(f"/reports/dashboard?from={desk.period[0]}&to={desk.period[1]}&t={admin}").get_data(as_text=True)
    assert 'id="ol-warning"' in dash and "Average first response" in dash

    # the plan now refuses the statistics: the next sync records it as a state, not a failure
    from b24desk.client import B24Client
    from b24desk.sync import run_sync

    dol.state(desk.portal).plan_allows = False
    try:
        db = open_db(desk.db_path)
        c = B24Client.from_installation(
            desk.db_path,
            desk.member_id,
            desk.client_id,
            desk.client_secret,
            oauth_url=desk.oauth_token_url,
            rps=1e6,
            backoff_base=0.01,
            share_limiter=False,
        )
        run_sync(c, db, ["openlines"], config={"sources": ["tasks", "openlines"]})
        c.close()
        db.conn.close()
    finally:
        dol.state(desk.portal).plan_allows = True
    assert stored(desk, "openlines.status")["code"] == "TARIFF_RESTRICTION"
    page = client.get(f"/reports/settings?t={admin}").get_data(as_text=True)
    assert 'data-code="TARIFF_RESTRICTION"' in page and "This is not a failure" in page
    assert 'id="ol-differs"' in page  # the last cross-check is still shown

    agent = token_of(client, desk, desk.agent)
    assert client.get(f"/reports/settings?t={agent}").status_code == 403
    r = client.post(
        "/reports/settings",
        data={"t": agent, "form": "crosscheck", "csrf": csrf_token(SECRET, load_token(SECRET, agent))},
    )
    assert r.status_code == 403
    dash = client.get(f"/reports/dashboard?from={desk.period[0]}&to={desk.period[1]}&t={agent}").get_data(as_text=True)
    assert 'id="ol-warning"' not in dash and 'id="ol-status"' not in dash


def _push_form(admin, csrf, recipients="1", **over):
    form = {
        "t": admin,
        "csrf": csrf,
        "form": "push",
        "push_enabled": "1",
        "push_daily_enabled": "1",
        "push_daily_time": "08:30",
        "push_weekly_enabled": "1",
        "push_weekly_time": "10:00",
        "push_weekly_weekday": "5",
        "push_monthly_time": "09:00",
        "push_monthly_day": "3",
        "push_channels": ["notify", "chat"],
        "push_recipients": recipients,
        "push_chat": "chat12",
        "push_alerts_enabled": "1",
        "push_alert_kpis": "first_response_time, csat",
    }
    form.update(over)
    return form


def test_push_form_saves_a_schedule_and_refuses_a_bad_one(client, desk):
    from b24desk.push.data import push_settings

    admin = token_of(client, desk, 1)
    csrf = csrf_token(SECRET, load_token(SECRET, admin))
    both = f"1, {desk.agent}"  # a script may post one comma list; the picker posts one per person
    r = client.post("/reports/settings", data=_push_form(admin, csrf, recipients=both))
    assert r.status_code == 303, r.get_data(as_text=True)
    saved = stored(desk, "push")
    assert saved["reports"] == {
        "daily": {"enabled": True, "time": "08:30"},
        "weekly": {"enabled": True, "time": "10:00", "weekday": 5},
        "monthly": {"enabled": False, "time": "09:00", "day": 3},
    }
    assert saved["channels"] == ["notify", "chat"] and saved["portal_recipients"] == ["1", str(desk.agent)]
    assert saved["chat"]["dialog_id"] == "chat12"
    assert saved["alerts"]["enabled"] is True and saved["alerts"]["kpis"] == ["first_response_time", "csat"]
    db = open_db(desk.db_path)
    try:
        eff = push_settings(db, desk.member_id)
    finally:
        db.conn.close()
    assert eff["alerts"]["window_days"] == 7 and eff["departments"] == "all"  # defaults kept
    page = client.get(r.headers["Location"]).get_data(as_text=True)
    assert 'name="push_daily_time" value="08:30"' in page and 'value="chat12"' in page

    # each refusal is named beside its field, in the admin's words, and stores nothing
    cases = {
        "push_daily_time": ("25:00", "push_daily_time", "HH:MM"),
        "push_weekly_weekday": ("9", "push_weekly_weekday", "1 to 7"),
        "push_channels": (["notify", "pigeon"], "push_channels", "Pick a value"),
        "push_chat": ("general", "push_chat", "chatNNN"),
        "push_recipients": ("1, bob", "push_recipients", "Not a user"),
        "push_alert_kpis": ("moon_phase", "push_alert_kpis", "Pick a value"),
    }
    for field, (value, where, says) in cases.items():
        r = client.post("/reports/settings", data=_push_form(admin, csrf, recipients=both, **{field: value}))
        body = r.get_data(as_text=True)
        m = re.search(rf'id="err-{where}" role="alert">([^<]*)<', body)
        assert r.status_code == 400 and m and says in m.group(1), field
        assert stored(desk, "push") == saved, field  # nothing lost
    r = client.post("/reports/settings", data=_push_form(admin, csrf, recipients=both, push_daily_time="25:00"))
    assert 'name="push_daily_time" value="25:00"' in r.get_data(as_text=True)  # the admin's input kept
    agent = token_of(client, desk, desk.agent)
    r = client.post("/reports/settings", data=_push_form(agent, csrf_token(SECRET, load_token(SECRET, agent))))
    assert r.status_code == 403 and stored(desk, "push") == saved


def test_dashboard_breaks_down_by_channel_and_line(client, desk):
    from b24desk.kpi import build_report

    admin = token_of(client, desk, 1)
    html = client.get(f"/reports/dashboard?from={desk.period[0]}&to={desk.period[1]}&t={admin}").get_data(as_text=True)
    assert 'id="table-channel"' in html and "By channel" in html
    assert 'id="table-line"' in html
    db = open_db(desk.db_path)
    try:
        rep = build_report(db, desk.member_id, desk.period[0], desk.period[1], group_by="channel")
        lines = build_report(
            db, desk.member_id, desk.period[0], desk.period[1], group_by="type", filters={"source": "openlines"}
        )
    finally:
        db.conn.close()
    channels = {g["key"] for g in rep["groups"] if g["key"] is not None}
    assert {"livechat", "telegrambot"} <= channels
    for ch in channels:
        assert f'<tr data-key="{ch}">' in html
    for g in lines["groups"]:
        if g["key"] is not None:
            assert f'<tr data-key="{g["key"]}">' in html and g["key"] in html
    agent = token_of(client, desk, desk.agent)
    html = client.get(f"/reports/dashboard?from={desk.period[0]}&to={desk.period[1]}&t={agent}").get_data(as_text=True)
    assert 'id="table-channel"' not in html  # an agent sees no split tables
