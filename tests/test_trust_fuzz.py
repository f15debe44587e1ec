"""A bounded fuzz run (hypothesis) over ``/install``, ``/app``, ``/events`` and the report routes:
whatever arrives, the answer is never a 5xx, the installation is untouched and the attacker's
host (named in many of the generated fields) never hears from the app. The app is installed into
the portal double first, and the generated values mix noise with the genuine member_id,
application token and viewer token, so the checks behind the first gate are reached too."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from events_harness import Harness, double
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_trust import Attacker, state

EXAMPLES = 120  # per route family: bounded, so the suite stays quick


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = double(seed=4, tickets=30)
    h = Harness(tmp_path_factory.mktemp("fuzz"), d, runtime=False)
    attacker = Attacker()
    assert h.install_ui().status_code == 200
    tok = d.issue_tokens(1)
    r = requests.post(
        h.url + "/app",
        params={"DOMAIN": d.domain, "LANG": "ru"},
        allow_redirects=False,
        timeout=30,
        data={
            "AUTH_ID": tok["access_token"],
            "member_id": d.member_id,
            "APPLICATION_TOKEN": d.application_token,
            "PLACEMENT": "DEFAULT",
        },
    )
    assert r.status_code == 303
    viewer = parse_qs(urlsplit(r.headers["Location"]).query)["t"][0]
    before = state(h.db_path)["installations"]
    yield {"d": d, "h": h, "attacker": attacker, "viewer": viewer, "client": h.app.test_client()}
    assert state(h.db_path)["installations"][0]["application_token"] == before[0]["application_token"]
    for key in ("client_endpoint", "domain", "refresh_token", "epoch"):
        assert state(h.db_path)["installations"][0][key] == before[0][key], key
    assert attacker.seen == [], attacker.seen[:3]
    attacker.close()
    h.close()
    d.stop()


def values(env_dict):
    d, a = env_dict["d"], env_dict["attacker"]
    special = st.sampled_from(
        [
            d.member_id,
            d.application_token,
            d.domain,
            a.host,
            a.url,
            a.url + "/rest/",
            "0001-01-01",
            "9999-12-31",
            "[URL=http://evil.example]x[/URL]",
            "ж" * 40,
            "a" * 5000,
            "",
            " ",
            "\x00",
            "ONAPPINSTALL",
            "ONAPPUNINSTALL",
            "ONTASKUPDATE",
            "DEFAULT",
            "CRM_DEAL_DETAIL_TAB",
            "TASK_VIEW_TAB",
            '{"ID":"5"}',
            '{"taskId":"x"}',
            "undefined",
            "1",
            "0",
            "-1",
            "1e999",
            "nan",
            "2026-10-01",
            "2026-10-01T00:00:00+03:00",
            env_dict["viewer"],
        ]
    )
    return st.one_of(special, st.text(max_size=80))


INSTALL_KEYS = [
    "AUTH_ID",
    "REFRESH_ID",
    "AUTH_EXPIRES",
    "member_id",
    "APPLICATION_TOKEN",
    "PLACEMENT",
    "SERVER_ENDPOINT",
    "APPLICATION_SCOPE",
    "status",
    "DOMAIN",
    "LANG",
    "event",
    "auth[domain]",
    "auth[access_token]",
    "auth[refresh_token]",
    "auth[member_id]",
    "auth[application_token]",
    "auth[client_endpoint]",
    "auth[server_endpoint]",
    "auth[expires_in]",
    "data[LANGUAGE_ID]",
    "data[CLEAN]",
    "PLACEMENT_OPTIONS",
    "data[FIELDS_AFTER][ID]",
    "ts",
]
QUERY_KEYS = [
    "from",
    "to",
    "group_by",
    "source",
    "department",
    "agent",
    "priority",
    "type",
    "kpi",
    "min",
    "max",
    "LANG",
    "id",
    "period",
    "saved",
    "x",
]


def forms(env_dict, keys):
    return st.dictionaries(st.one_of(st.sampled_from(keys), st.text(max_size=20)), values(env_dict), max_size=12)


def _ok(r, what):
    assert r.status_code < 500, (what, r.status_code, r.get_data(as_text=True)[:300])


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(data=st.data())
def test_install_app_and_events_never_answer_5xx(env, data):
    c = env["client"]
    form = data.draw(forms(env, INSTALL_KEYS))
    query = data.draw(forms(env, ["DOMAIN", "PROTOCOL", "LANG", "APP_SID"]))
    for path in ("/install", "/app", "/events"):
        _ok(c.post(path, query_string=query, data=form), (path, query, form))
    raw = data.draw(st.binary(max_size=300))
    _ok(c.post("/events", data=raw, content_type="application/x-www-form-urlencoded"), ("raw", raw))
    _ok(c.post("/install", data=raw, content_type="application/x-www-form-urlencoded"), ("raw", raw))


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(data=st.data())
def test_report_routes_never_answer_5xx(env, data):
    c = env["client"]
    query = data.draw(forms(env, QUERY_KEYS))
    use_token = data.draw(st.sampled_from(["viewer", "none", "noise"]))
    headers = {}
    if use_token == "viewer":
        headers["Authorization"] = f"Bearer {env['viewer']}"
    elif use_token == "noise":
        headers["Authorization"] = "Bearer " + data.draw(st.text(max_size=60)).replace("\n", " ").replace("\r", " ")
    for path in (
        "/api/kpi",
        "/api/drilldown",
        "/reports/export.csv",
        "/reports/export.xlsx",
        "/reports/dashboard",
        "/reports/ticket",
        "/reports/settings",
    ):
        _ok(c.get(path, query_string=query, headers=headers), (path, query))
    form = data.draw(forms(env, ["t", "csrf", "form", "targets", "period", "push_chat", "cfg_sla", "from", "to"]))
    _ok(c.post("/reports/settings", data=form, headers=headers), ("settings", form))
