"""POST /install in both local-app flavours, as the double plays the portal over HTTP: stored
installation, bindings, re-binding after an update, forged installs, token refresh, uninstall,
and two portals on one server."""

from __future__ import annotations

import logging

import pytest
import requests
from events_harness import Harness, double, event_body, form

from b24desk import inbox

ONLINE = set(inbox.OBJECT_EVENTS) | set(inbox.APP_EVENTS)


def _online(d, url):
    return sorted((h["event"], h["handler"]) for h in d.app.handlers if not h["offline"] and h["handler"] == url)


def _offline(d):
    return sorted(h["event"] for h in d.app.handlers if h["offline"])


@pytest.fixture
def d():
    d = double(seed=2, tickets=40)
    yield d
    d.stop()


@pytest.fixture
def h(tmp_path, d):
    h = Harness(tmp_path, d)
    yield h
    h.close()


def test_ui_install_stores_the_portal_binds_and_finishes(h, d):
    r = h.install_ui(finish=False)
    assert r.status_code == 200
    assert "BX24.installFinish()" in r.text and "api.bitrix24.com/api/v1/" in r.text
    inst = h.installation()
    assert inst["domain"] == d.domain and inst["client_endpoint"] == d.client_endpoint
    assert inst["server_endpoint"] == d.server_endpoint
    assert inst["application_token"] == d.application_token
    assert inst["access_token"] and inst["refresh_token"] and inst["expires_at"]
    assert inst["user_id"] == "1" and inst["active"] == 1 and inst["lang"] == "en"
    assert "crm" in inst["scope"].split(",") and "task" in inst["scope"].split(",")
    assert [e for e, _ in _online(d, h.url + "/events")] == sorted(ONLINE)
    assert _offline(d) == sorted(inbox.OBJECT_EVENTS)
    assert sorted((p["placement"], p["handler"]) for p in d.app.placements) == [
        ("CRM_ANALYTICS_MENU", h.url + "/app"),
        ("CRM_DEAL_DETAIL_TAB", h.url + "/app"),
        ("CRM_DYNAMIC_1038_DETAIL_TAB", h.url + "/app"),
        ("TASK_VIEW_TAB", h.url + "/app"),
    ]
    # until the page's BX24.installFinish() runs, the portal sends nothing (installation-finish.md)
    assert d.app.installed is False
    d.advance(60)
    d.portal.update_task(d.portal.task_list[0]["id"], title="before finish")
    assert d.app.wait_idle() and d.app.deliveries == []
    d.app.install_finish()
    d.portal.update_task(d.portal.task_list[0]["id"], title="after finish")
    assert d.app.wait_idle() and [x["status"] for x in d.app.deliveries] == [200]


def test_api_only_install_then_update_rebinds_without_duplicates(h, d):
    r = h.install_api()
    assert r.status_code == 200 and r.json()["ok"] is True
    assert h.installation()["user_id"] == "1"
    bound = _online(d, h.url + "/events")
    assert len(bound) == len(ONLINE)
    # a reinstall binds nothing twice
    assert h.install_api().status_code == 200
    assert _online(d, h.url + "/events") == bound and len(d.app.handlers) == len(ONLINE) + len(inbox.OBJECT_EVENTS)
    # an app update drops the handlers (event-bind.md); the installer runs again and re-binds
    d.app.update()
    assert d.app.handlers == []
    d.advance(60)
    d.portal.update_task(d.portal.task_list[0]["id"], title="lost while unbound")
    assert d.app.wait_idle() and d.app.deliveries == []
    assert h.install_api().status_code == 200
    assert _online(d, h.url + "/events") == bound
    # and the scheduler's hourly check repairs a dropped binding with no install at all
    d.app.update()
    report = h.runtime.rebind(d.member_id)
    assert len(report["bound"]) == len(ONLINE) + len(inbox.OBJECT_EVENTS) and not report["errors"]
    assert _online(d, h.url + "/events") == bound


def test_rebind_moves_handlers_to_a_new_public_url(h, d):
    assert h.install_api().status_code == 200
    old = h.url + "/events"
    h.runtime.public_url = "http://127.0.0.1:1/new"
    report = h.runtime.rebind(d.member_id)
    assert len(report["unbound"]) == len(ONLINE)
    assert _online(d, old) == [] and len(_online(d, "http://127.0.0.1:1/new/events")) == len(ONLINE)


def test_broken_install_requests_are_refused_and_store_nothing(h, d):
    url = h.url + "/install"
    tok = d.issue_tokens(1)
    ui_form = {
        "AUTH_ID": tok["access_token"],
        "REFRESH_ID": tok["refresh_token"],
        "AUTH_EXPIRES": "3600",
        "member_id": d.member_id,
        "APPLICATION_TOKEN": d.application_token,
        "PLACEMENT": "DEFAULT",
    }
    query = {"DOMAIN": d.domain, "PROTOCOL": "0", "LANG": "en", "APP_SID": "x"}
    cases = [
        (dict(ui_form), {}, 400),  # no DOMAIN
        ({**ui_form, "AUTH_ID": ""}, query, 400),
        ({**ui_form, "member_id": "../x"}, query, 400),
        ({**ui_form, "PLACEMENT": "CRM_DEAL_DETAIL_TAB"}, query, 400),  # a widget launch, not an install
        ({**ui_form, "REFRESH_ID": "f" * 32}, query, 401),  # a token the OAuth server never issued
        ({"event": "ONAPPINSTALL", "auth[domain]": d.domain}, {}, 400),
    ]
    for data, params, want in cases:
        r = requests.post(url, data=data, params=params, timeout=30)
        assert r.status_code == want, (data, r.status_code)
    assert h.installation() is None and d.app.handlers == []


def test_a_forged_install_cannot_take_over_an_installed_portal(tmp_path, h, d):
    assert h.install_api().status_code == 200
    before = h.installation()
    other = double(seed=9, tickets=10, member_id="0" * 31 + "b")
    try:
        # portal B's genuine token, claiming to be portal A and pointing at B's address
        tok = other.issue_tokens(1)
        forged = {
            "event": "ONAPPINSTALL",
            "data": {"VERSION": "1"},
            "auth": {
                "access_token": tok["access_token"],
                "refresh_token": tok["refresh_token"],
                "expires_in": "3600",
                "domain": other.domain,
                "client_endpoint": other.client_endpoint,
                "server_endpoint": other.server_endpoint,
                "member_id": d.member_id,
                "application_token": "evil" + "0" * 28,
                "scope": "crm task",
            },
        }
        r = requests.post(
            h.url + "/install",
            data=form(forged),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            timeout=30,
        )
        assert r.status_code == 401
        assert h.installation() == before
    finally:
        other.stop()


def test_expired_tokens_refresh_once_and_the_new_pair_is_stored(h, d, caplog, monkeypatch):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("B24DESK_OAUTH_URL", d.oauth_token_url)
    h.runtime.oauth_url = None  # the token URL comes from the server's environment
    assert h.install_api().status_code == 200
    h.runtime.reconcile(d.member_id)
    old = h.installation()
    d.expire_tokens()  # an hour passes
    d.advance(60)
    t = d.portal.task_list[3]
    d.portal.update_task(t["id"], title="read with a refreshed token")
    h.settle()
    new = h.installation()
    assert new["access_token"] != old["access_token"] and new["refresh_token"] != old["refresh_token"]
    assert old["refresh_token"] not in d.creds.refresh and new["refresh_token"] in d.creds.refresh
    with h.db() as db:
        title = db.execute(
            "select title from tickets where source = 'task' and source_id = ?", [str(t["id"])]
        ).fetchone()[0]
    assert title == "read with a refreshed token"
    secrets = [
        old["access_token"],
        old["refresh_token"],
        new["access_token"],
        new["refresh_token"],
        d.client_secret,
        d.application_token,
    ]
    assert not any(s in caplog.text for s in secrets)


@pytest.mark.parametrize("clean", [True, False])
def test_uninstall(h, d, clean):
    assert h.install_api().status_code == 200
    h.runtime.reconcile(d.member_id)
    with h.db() as db:
        assert db.execute("select count(*) from tickets").fetchone()[0] > 0
    token = d.application_token
    d.app.uninstall(clean=clean)
    assert [x["status"] for x in d.app.deliveries if x["event"] == "ONAPPUNINSTALL"] == [200]
    h.settle()  # the worker confirms the uninstall with the portal first
    with h.db() as db:
        tickets = db.execute("select count(*) from tickets where portal = ?", [d.member_id]).fetchone()[0]
        cursors = db.execute("select count(*) from cursors where portal = ?", [d.member_id]).fetchone()[0]
    inst = h.installation()
    if clean:
        assert inst is None and tickets == 0 and cursors == 0
    else:
        assert inst["active"] == 0 and inst["access_token"] is None and inst["refresh_token"] is None
        assert tickets > 0
    # the portal is gone: its old token opens nothing any more
    body = event_body(h, "ONTASKUPDATE", {"FIELDS_AFTER": {"ID": 1}}, token=token)
    r = requests.post(
        h.url + "/events", data=body, headers={"Content-Type": "application/x-www-form-urlencoded"}, timeout=10
    )
    assert r.status_code == 401
    # and a reinstall brings it back
    assert h.install_api().status_code == 200
    assert h.installation()["active"] == 1


def test_two_portals_on_one_server_stay_apart(tmp_path, h, d):
    b = double(seed=7, tickets=30, member_id="b" * 32, oauth=d)  # one OAuth server, one client_id
    try:
        assert h.install_api().status_code == 200
        assert h.install_ui(b).status_code == 200
        h.runtime.reconcile(d.member_id)
        h.runtime.reconcile(b.member_id)
        with h.db() as db:
            counts = dict(db.execute("select portal, count(*) from tickets group by portal").fetchall())
        assert counts[d.member_id] > 0 and counts[b.member_id] > 0
        a_token, b_token = d.application_token, b.application_token
        assert a_token != b_token
        hdr = {"Content-Type": "application/x-www-form-urlencoded"}
        # B's token presented as A (and the other way round) is refused
        for member, token in ((d.member_id, b_token), (b.member_id, a_token)):
            r = requests.post(
                h.url + "/events",
                headers=hdr,
                timeout=10,
                data=event_body(h, "ONTASKDELETE", {"FIELDS_BEFORE": {"ID": 1}}, member_id=member, token=token),
            )
            assert r.status_code == 401
        # a change on B lands on B only
        with h.db() as db:
            a_before = list(
                db.query("select * from tickets where portal = ? order by source, source_id", [d.member_id])
            )
        b.advance(60)
        tb = b.portal.task_list[0]
        b.portal.update_task(tb["id"], title="only on B")
        h.settle(d, b)
        with h.db() as db:
            assert (
                list(db.query("select * from tickets where portal = ? order by source, source_id", [d.member_id]))
                == a_before
            )
            got = db.execute(
                "select title from tickets where portal = ? and source = 'task' and source_id = ?",
                [b.member_id, str(tb["id"])],
            ).fetchone()[0]
        assert got == "only on B"
        # uninstalling B with CLEAN=1 leaves A whole
        b.app.uninstall(clean=True)
        h.settle(d, b)
        with h.db() as db:
            assert db.execute("select count(*) from tickets where portal = ?", [b.member_id]).fetchone()[0] == 0
            assert (
                list(db.query("select * from tickets where portal = ? order by source, source_id", [d.member_id]))
                == a_before
            )
    finally:
        b.stop()


def test_ui_install_page_is_framed_by_the_portal_only(h, d):
    r = h.install_ui()
    csp = r.headers["Content-Security-Policy"]
    assert f"frame-ancestors {d.base_url} https://{d.domain}" in csp
    assert "'unsafe-inline'" not in csp and "nonce-" in csp
    assert "X-Frame-Options" not in r.headers


def test_app_update_and_install_events_rebind_through_the_worker(h, d):
    assert h.install_api().status_code == 200
    bound = _online(d, h.url + "/events")
    hdr = {"Content-Type": "application/x-www-form-urlencoded"}
    d.app.update()
    r = requests.post(
        h.url + "/events",
        headers=hdr,
        timeout=10,
        data=event_body(h, "ONAPPUPDATE", {"VERSION": "2", "PREVIOUS_VERSION": "1"}),
    )
    assert r.status_code == 200
    h.settle()
    assert _online(d, h.url + "/events") == bound
    # an ONAPPINSTALL reaching /events (token-checked) re-binds, but never replaces the tokens,
    # endpoints or application token an admin's install stored (the application token is in every frame)
    before = h.installation()
    d.app.update()
    tok = d.issue_tokens(1)
    body = form(
        {
            "event": "ONAPPINSTALL",
            "data": {"VERSION": "3"},
            "ts": str(d.now),
            "auth": {
                "access_token": tok["access_token"],
                "refresh_token": tok["refresh_token"],
                "expires_in": "3600",
                "domain": d.domain,
                "client_endpoint": d.client_endpoint,
                "server_endpoint": d.server_endpoint,
                "member_id": d.member_id,
                "application_token": d.application_token,
                "scope": "crm task user",
            },
        }
    )
    assert requests.post(h.url + "/events", headers=hdr, data=body, timeout=10).status_code == 200
    h.settle()
    inst = h.installation()
    for key in ("access_token", "refresh_token", "client_endpoint", "domain", "application_token", "scope"):
        assert inst[key] == before[key]
    assert _online(d, h.url + "/events") == bound


def test_each_smart_process_source_gets_its_detail_tab():
    from b24desk.bindings import placements_for

    codes = [
        p[0]
        for p in placements_for(
            {"sources": ["tasks", {"select": "crm:1038:category=5"}, "crm:1038", "deals:category=3", "crm:2"]}
        )
    ]
    assert codes == ["CRM_ANALYTICS_MENU", "CRM_DEAL_DETAIL_TAB", "TASK_VIEW_TAB", "CRM_DYNAMIC_1038_DETAIL_TAB"]


def test_portal_domains_allow_list_refuses_before_any_call(h, d, monkeypatch):
    from webhooks.install import domain_allowed

    assert domain_allowed("acme.bitrix24.ru", "*.bitrix24.ru, help.example.com")
    assert not domain_allowed("evil.example.net", "*.bitrix24.ru,help.example.com")
    assert domain_allowed("anything.example", "")
    monkeypatch.setenv("B24DESK_PORTAL_DOMAINS", "*.bitrix24.ru")
    d.stats.reset()
    r = h.install_ui()
    assert r.status_code == 403 and d.stats.requests == 0  # the double's 127.0.0.1 is not allowed
    assert h.installation() is None
    monkeypatch.setenv("B24DESK_PORTAL_DOMAINS", "*.bitrix24.ru,127.0.0.1:*")
    assert h.install_ui().status_code == 200 and h.installation()["member_id"] == d.member_id
