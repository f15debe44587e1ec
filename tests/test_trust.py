"""Installation trust (issue 11), attacked the way an attacker would: over HTTP against the real
server (``python -m b24desk.server``) and the app, beside the portal double, with an attacker's
own HTTP server on 127.0.0.1 that records every request it receives. Each attack must be
refused, change nothing stored, lose no data, and never make the app call the attacker."""

from __future__ import annotations

import json
import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from events_harness import Harness, double, form
from test_events_restart import Server, _synced_since, _wait
from werkzeug.wrappers import Request, Response

from b24desk.store import open_db
from portal_double import Served

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


class Attacker:
    """An HTTP server that plays every part an attacker could want the app to trust: a portal that
    says "you are admin", an OAuth server that hands out tokens for any member_id. It records
    everything it receives (a client secret or a token sent here would be stolen)."""

    def __init__(self, member_id: str = "e" * 32):
        self.seen: list[dict] = []
        self.member_id = member_id
        self.served = Served(self._wsgi, name="attacker")
        self.host = f"127.0.0.1:{self.served.port}"
        self.url = f"http://{self.host}"

    def _wsgi(self, environ, start_response):
        req = Request(environ)
        self.seen.append({"path": req.path, "args": dict(req.args), "body": req.get_data(as_text=True)})
        if "oauth" in req.path:
            body = {
                "access_token": "a" * 32,
                "refresh_token": "b" * 32,
                "expires_in": 3600,
                "member_id": self.member_id,
                "client_endpoint": self.url + "/rest/",
                "server_endpoint": self.url + "/rest/",
                "domain": self.host,
                "user_id": 1,
            }
        else:
            body = {"result": {"ID": "1", "ADMIN": True, "INSTALLED": True, "result": {"admin": True}}}
        return Response(json.dumps(body), content_type="application/json")(environ, start_response)

    def close(self):
        self.served.stop()


@pytest.fixture
def attacker():
    a = Attacker()
    yield a
    a.close()


@pytest.fixture
def d():
    d = double(seed=3, tickets=40)
    yield d
    d.stop()


@pytest.fixture
def server(tmp_path, d):
    s = Server(tmp_path, d)
    s.start()
    yield s
    s.stop()


def state(db_path: str) -> dict:
    """Everything an attack could change or lose: installations and the portal's data."""
    db = open_db(db_path)
    try:
        out = {"installations": [dict(r) for r in db.query("select * from installations order by member_id")]}
        for table in ("tickets", "events", "snapshots", "users", "departments", "settings", "cursors"):
            out[table] = db.execute(f"select count(*) from [{table}]").fetchone()[0]
        return out
    finally:
        db.conn.close()


def unchanged(after: dict, before: dict) -> bool:
    """The installation exactly as it was, and no data lost (the scheduler's own work after a sync
    may add settings rows, never remove any)."""
    return (
        after["installations"] == before["installations"]
        and all(after[k] == before[k] for k in ("tickets", "events", "snapshots", "users", "departments"))
        and all(after[k] >= before[k] for k in ("settings", "cursors"))
    )


def _installed(server, d) -> dict:
    t0 = time.time()
    r = d.app.install_ui(server.url + "/install")
    assert r.status_code == 200 and "BX24.installFinish()" in r.text
    d.app.install_finish()
    _wait(lambda: _synced_since(server.db_path, d.member_id, t0), what="the first sync")
    _wait(lambda: _quiet(server.db_path), what="the inbox")
    return state(server.db_path)


def _quiet(db_path) -> bool:
    db = open_db(db_path)
    try:
        return not db.execute("select count(*) from inbox where state in ('new', 'working')").fetchone()[0]
    finally:
        db.conn.close()


def _agent(d) -> int:
    return next(a for a in sorted(d.desk.levels) if a not in d.desk.heads.values() and a != 1)


def _ui_form(tokens: dict, member_id: str, app_token: str, endpoint: str) -> dict:
    return {
        "AUTH_ID": tokens["access_token"],
        "REFRESH_ID": tokens["refresh_token"],
        "AUTH_EXPIRES": "3600",
        "member_id": member_id,
        "APPLICATION_TOKEN": app_token,
        "PLACEMENT": "DEFAULT",
        "SERVER_ENDPOINT": endpoint + "/rest/",
        "status": "L",
        "APPLICATION_SCOPE": "crm,task",
    }


# --- a fake portal -------------------------------------------------------------------------------


def test_a_fake_portal_cannot_install_and_the_app_never_calls_it(server, d, attacker):
    fake = {"access_token": "c" * 32, "refresh_token": "d" * 32}
    ui = requests.post(
        server.url + "/install",
        params={"DOMAIN": attacker.host, "PROTOCOL": "0", "LANG": "en"},
        data=_ui_form(fake, attacker.member_id, "f" * 32, attacker.url),
        timeout=30,
    )
    api = requests.post(
        server.url + "/install",
        headers=FORM,
        timeout=30,
        data=form(
            {
                "event": "ONAPPINSTALL",
                "data": {"VERSION": "1", "LANGUAGE_ID": "en"},
                "auth": {
                    **fake,
                    "domain": attacker.host,
                    "client_endpoint": attacker.url + "/rest/",
                    "server_endpoint": attacker.url + "/rest/",
                    "member_id": attacker.member_id,
                    "application_token": "f" * 32,
                    "expires_in": "3600",
                },
            }
        ),
    )
    assert ui.status_code == 401 and "OAuth" in ui.text
    assert api.status_code == 401 and api.json()["error"] == "install_rejected"
    assert state(server.db_path)["installations"] == []
    time.sleep(1.0)  # give a scheduler that wrongly picked it up a chance to call
    assert attacker.seen == []


# --- an agent's takeover ---------------------------------------------------------------------------


def test_an_agent_cannot_take_over_or_repoint_the_installation(server, d, attacker):
    before = _installed(server, d)
    agent = _agent(d)
    tok = d.issue_tokens(agent)  # what an agent finds in their own launch frame
    r = requests.post(
        server.url + "/install",
        params={"DOMAIN": attacker.host, "PROTOCOL": "0", "LANG": "ru"},
        data=_ui_form(tok, d.member_id, "e" * 32, attacker.url),
        timeout=30,
    )
    assert r.status_code == 403
    assert "только администратор" in r.text and "Ничего не изменено" in r.text  # the viewer's language
    tok2 = d.issue_tokens(agent)
    r = requests.post(
        server.url + "/install",
        headers=FORM,
        timeout=30,
        data=form(
            {
                "event": "ONAPPINSTALL",
                "data": {"VERSION": "1", "LANGUAGE_ID": "en"},
                "auth": {
                    **{k: tok2[k] for k in ("access_token", "refresh_token")},
                    "domain": attacker.host,
                    "client_endpoint": attacker.url + "/rest/",
                    "server_endpoint": attacker.url + "/rest/",
                    "member_id": d.member_id,
                    "application_token": "e" * 32,
                    "expires_in": "3600",
                },
            }
        ),
    )
    assert r.status_code == 403 and "administrator" in r.json()["error_description"]
    # an admin's genuine token claimed for another portal is refused too
    adm = d.issue_tokens(1)
    r = requests.post(
        server.url + "/install",
        params={"DOMAIN": d.domain, "PROTOCOL": "0"},
        data=_ui_form(adm, "f" * 32, "e" * 32, d.base_url),
        timeout=30,
    )
    assert r.status_code == 403 and "another portal" in r.text
    assert unchanged(state(server.db_path), before)
    # the portal's genuine events are still accepted, and the real admin can still reinstall
    d.advance(60)
    d.portal.update_task(d.portal.task_list[0]["id"], title="still ours")
    assert d.app.wait_idle() and d.app.deliveries[-1]["status"] == 200
    assert d.app.install_ui(server.url + "/install").status_code == 200
    after = state(server.db_path)["installations"][0]
    assert after["application_token"] == d.application_token and after["client_endpoint"] == d.client_endpoint
    assert attacker.seen == []


# --- forged install / uninstall events with the genuine application token --------------------------


def test_forged_install_and_uninstall_events_change_nothing(server, d, attacker):
    before = _installed(server, d)
    inst = before["installations"][0]
    agent_tok = d.issue_tokens(_agent(d))
    auth = {
        "domain": attacker.host,
        "client_endpoint": attacker.url + "/rest/",
        "server_endpoint": attacker.url + "/rest/",
        "member_id": d.member_id,
        "application_token": d.application_token,
    }  # genuine: it is in every viewer's frame
    events = [
        {
            "event": "ONAPPINSTALL",
            "data": {"VERSION": "9"},
            "auth": {
                **auth,
                "access_token": agent_tok["access_token"],
                "refresh_token": agent_tok["refresh_token"],
                "expires_in": "3600",
            },
        },
        {"event": "ONAPPUNINSTALL", "data": {"LANGUAGE_ID": "en", "CLEAN": 1}, "auth": auth},
        {"event": "ONAPPUNINSTALL", "data": {"LANGUAGE_ID": "en", "CLEAN": 0}, "auth": auth},
    ]
    for ev in events:
        r = requests.post(server.url + "/events", headers=FORM, data=form({**ev, "ts": str(d.now)}), timeout=30)
        assert r.status_code == 200  # acknowledged; carried out only if the portal confirms
    _wait(lambda: _quiet(server.db_path), what="the worker")
    after = state(server.db_path)
    assert unchanged(after, before), "a forged event changed the store"
    for key in ("access_token", "refresh_token", "client_endpoint", "domain", "application_token", "epoch"):
        assert after["installations"][0][key] == inst[key]
    db = open_db(server.db_path)
    try:
        body = " ".join(r[0] for r in db.execute("select body from inbox").fetchall())
    finally:
        db.conn.close()
    assert agent_tok["refresh_token"] not in body and d.application_token not in body  # no secret kept
    assert attacker.seen == []
    # the genuine uninstall (the portal revokes the app, then tells us) is carried out
    d.app.uninstall(clean=True)
    _wait(
        lambda: state(server.db_path)["installations"] == [] and state(server.db_path)["tickets"] == 0,
        what="the confirmed uninstall",
    )


# --- BB-code in names ------------------------------------------------------------------------------


def test_bbcode_in_portal_data_is_shown_literally_and_links_stay_on_trusted_hosts():
    from b24desk.push import render as R

    evil = "[URL=http://evil.example]Reset your password[/URL] [B]x[/B] http://evil.example/a www.evil.example"
    digest = {
        "kind": "daily",
        "period": "2026-10-05",
        "from": "2026-10-05",
        "to": "2026-10-06",
        "scope": {"level": "department", "name": evil, "id": "3", "head": "7"},
        "scorecard": [],
        "worst": [],
        "worst_agents": [{"name": evil, "red": ["frt"]}],
    }
    texts = [
        R.digest_text(digest, "en", dashboard="https://portal.example/marketplace/app/7/"),
        R.feed_message(digest, "ru"),
        R.alert_text(
            "red",
            {"key": "frt_avg", "value": 60.0, "target": 10.0},
            level="department",
            name=evil,
            lang="en",
            days=7,
            to_iso="2026-10-06",
            tickets=[
                {"id": "5", "title": evil, "url": "https://portal.example/t/5/"},
                {"id": "6", "title": "t", "url": "https://x.example/]evil[URL=http://e/"},
            ],
        ),
    ]
    for text in texts:
        assert "evil.example]" not in text and "[URL=http://evil" not in text and "[/URL] [B]x" not in text
        assert "http://evil.example" not in text and "www.evil.example" not in text
        assert "［URL=http:" in text and "Reset your password" in text  # shown, as text
        assert "[URL=http://e/" not in text
    assert "[URL=https://portal.example/t/5/]" in texts[2]


def test_push_links_and_file_names_only_point_at_the_portal_or_the_app(tmp_path, monkeypatch):
    from b24desk import bbcode
    from b24desk.installations import save_installation
    from b24desk.push import context as push
    from b24desk.push.digests import xlsx_name

    monkeypatch.setenv("B24DESK_PUBLIC_URL", "https://desk.example.com")
    db = open_db(str(tmp_path / "s.db"))
    save_installation(db, member_id="m1", domain="acme.bitrix24.ru", client_endpoint="https://acme.bitrix24.ru/rest/")
    ctx = push.make_context(db, "m1", config={}, dry_run=True)
    hosts = push.trusted_hosts(ctx, None)
    assert hosts == {"acme.bitrix24.ru", "desk.example.com"}
    for bad in (
        "https://evil.example/x",
        "javascript:alert(1)",
        "https://acme.bitrix24.ru.evil.example/",
        "https://user@evil.example/",
        "https://acme.bitrix24.ru/x]y",
        "https://acme.bitrix24.ru/a b",
    ):
        assert bbcode.url(bad, hosts) is None, bad
    assert bbcode.url("https://acme.bitrix24.ru/crm/deal/details/5/", hosts)
    assert bbcode.url("https://desk.example.com/reports/dashboard", hosts)
    ctx.settings["dashboard_url"] = "https://evil.example/phish"
    assert push.dashboard_base(ctx, {"domain": "acme.bitrix24.ru"}) != "https://evil.example/phish"
    name = xlsx_name({"kind": "daily", "period": "2026-10-05", "scope": {"level": "department", "id": "../[URL=x]"}})
    assert "/" not in name and "[" not in name and name.endswith(".xlsx")
    db.conn.close()


# --- revoked and demoted viewers ---------------------------------------------------------------------


@pytest.fixture
def h(tmp_path, d):
    h = Harness(tmp_path, d)
    h.app.config["ADMIN_RECHECK_SECONDS"] = 0  # re-ask the portal on every request
    yield h
    h.close()


def _launch(h, d, user: int, lang: str = "en") -> str:
    tok = d.issue_tokens(user)
    r = requests.post(
        h.url + "/app",
        params={"DOMAIN": d.domain, "PROTOCOL": "0", "LANG": lang},
        data={
            "AUTH_ID": tok["access_token"],
            "REFRESH_ID": tok["refresh_token"],
            "member_id": d.member_id,
            "APPLICATION_TOKEN": d.application_token,
            "PLACEMENT": "DEFAULT",
            "PLACEMENT_OPTIONS": "{}",
        },
        allow_redirects=False,
        timeout=30,
    )
    assert r.status_code == 303, r.text
    return parse_qs(urlsplit(r.headers["Location"]).query)["t"][0]


def test_a_demoted_admin_loses_the_admin_pages_at_the_next_check(h, d):
    assert h.install_ui().status_code == 200
    token = _launch(h, d, 1, lang="ru")
    bearer = {"Authorization": f"Bearer {token}"}
    assert requests.get(h.url + "/reports/settings", params={"t": token}, timeout=30).status_code == 200
    assert requests.get(h.url + "/api/kpi", headers=bearer, timeout=30).status_code == 200
    d.portal.admins = {2}  # the portal takes the admin right away
    r = requests.get(h.url + "/reports/settings", params={"t": token}, timeout=30)
    assert r.status_code == 403 and "больше не администратор" in r.text
    r = requests.get(h.url + "/api/kpi", headers=bearer, timeout=30)
    assert r.status_code == 403 and r.json()["error"] == "demoted" and "администратор" in r.json()["hint"]
    d.portal.admins = {1, 2}  # once refused, the session stays refused: reopen
    assert requests.get(h.url + "/api/kpi", headers=bearer, timeout=30).status_code == 403
    assert (
        requests.get(
            h.url + "/api/kpi", timeout=30, headers={"Authorization": f"Bearer {_launch(h, d, 1)}"}
        ).status_code
        == 200
    )


def test_uninstall_and_reinstall_revoke_every_viewer_token(h, d):
    assert h.install_ui().status_code == 200
    head = d.desk.heads[min(d.desk.heads)]
    tokens = [_launch(h, d, 1), _launch(h, d, head), _launch(h, d, _agent(d))]
    for t in tokens:
        assert requests.get(h.url + "/reports/dashboard", params={"t": t}, timeout=60).status_code == 200
    assert h.install_ui().status_code == 200  # a re-install: a new installation epoch
    for t in tokens:
        r = requests.get(h.url + "/api/kpi", headers={"Authorization": f"Bearer {t}"}, timeout=30)
        assert r.status_code == 401 and r.json()["error"] == "revoked"
    fresh = _launch(h, d, _agent(d), lang="ru")
    assert requests.get(h.url + "/reports/dashboard", params={"t": fresh}, timeout=60).status_code == 200
    d.app.uninstall(clean=False)
    h.settle()
    r = requests.get(h.url + "/reports/dashboard", params={"t": fresh}, timeout=30)
    assert r.status_code == 401 and "переустановлено или удалено" in r.text
    r = requests.post(
        h.url + "/app",
        data={"AUTH_ID": "a" * 32, "member_id": d.member_id, "APPLICATION_TOKEN": d.application_token},
        timeout=30,
    )
    assert r.status_code == 403


# --- malformed input ----------------------------------------------------------------------------------


def test_malformed_input_is_a_clear_4xx(h, d):
    assert h.install_ui().status_code == 200
    before = state(h.db_path)
    long = "a" * 5000
    for data in (
        {"AUTH_ID": "x" * 32, "member_id": d.member_id, "APPLICATION_TOKEN": "жжж" * 11},
        {"AUTH_ID": "ж" * 32, "member_id": d.member_id, "APPLICATION_TOKEN": d.application_token},
        {"AUTH_ID": long, "member_id": d.member_id, "APPLICATION_TOKEN": d.application_token},
        {"AUTH_ID": "x" * 32, "member_id": "ж", "APPLICATION_TOKEN": d.application_token},
        {"AUTH_ID": "x\x00" * 16, "member_id": d.member_id, "APPLICATION_TOKEN": d.application_token},
    ):
        r = requests.post(h.url + "/app", data=data, timeout=30)
        assert 400 <= r.status_code < 500, (data, r.status_code)
    token = _launch(h, d, 1, lang="ru")
    bearer = {"Authorization": f"Bearer {token}"}
    for q in (
        "from=0001-01-01&to=0001-02-01",
        "from=9999-12-01&to=9999-12-31",
        "from=1969-12-31&to=1970-01-02",
        "from=2026-10-01&to=2026-09-01",
        "from=2026-13-01&to=2026-14-01",
        "from=жж&to=жж",
        "from=2026-10-01&to=" + "9" * 500,
        "departmnt=5",
        "from=2026-10-01&to=2026-11-01&x=1",
    ):
        for path in ("/api/kpi", "/api/drilldown", "/reports/export.csv", "/reports/export.xlsx"):
            r = requests.get(f"{h.url}{path}?{q}&kpi=tickets_total", headers=bearer, timeout=60)
            assert r.status_code == 400, (path, q, r.status_code)
            assert r.json()["hint"].startswith("Запрос содержит"), r.json()
        r = requests.get(f"{h.url}/reports/dashboard?{q}&t={token}", timeout=60)
        assert r.status_code in (200, 400) and r.status_code < 500, (q, r.status_code)
    for body in (
        "event=ONTASKUPDATE&auth[member_id]=x&auth[application_token]=" + "ж" * 10,
        "event=ONTASKUPDATE&auth[member_id]=" + d.member_id + "&auth[application_token]=" + "a" * 300,
        "event=%00&auth[member_id]=x&auth[application_token]=y",
    ):
        r = requests.post(h.url + "/events", data=body.encode(), headers=FORM, timeout=30)
        assert 400 <= r.status_code < 500, (body, r.status_code)
    assert state(h.db_path) == before


def test_failed_install_attempts_are_limited_before_they_reach_the_oauth_server(h, d, attacker):
    h.app.config["INSTALL_FAILED_PER_MINUTE"] = 3
    calls = []
    for i in range(6):
        d.stats.reset()
        r = requests.post(
            h.url + "/install",
            params={"DOMAIN": d.domain, "PROTOCOL": "0", "LANG": "ru"},
            timeout=30,
            data=_ui_form(
                {"access_token": "c" * 32, "refresh_token": f"{i:x}" * 32}, d.member_id, "f" * 32, attacker.url
            ),
        )
        calls.append((r.status_code, d.stats.by_method["oauth.token"]))
    assert calls[:3] == [(401, 1)] * 3
    assert calls[3:] == [(429, 0)] * 3  # refused here: the OAuth server is not asked
    assert "подождите минуту" in r.text
    assert state(h.db_path)["installations"] == [] and attacker.seen == []
