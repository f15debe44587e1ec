"""The admin settings as forms (issue 15), end to end against the portal double over HTTP: the
portal's own lists on the page, per-field refusals that store nothing, change-only saves with a
history, the settings file round trip, and the page closed to heads and agents."""

from __future__ import annotations

import io
import json
import re
from datetime import datetime, timedelta
from html.parser import HTMLParser
from zoneinfo import ZoneInfo

import pytest
from pages_support import installed_and_synced, settings_app_client
from pages_support import launch_token as token_of
from pages_support import stored_setting as stored

from b24desk.store import open_db
from b24desk.viewer import csrf_token, load_token

SECRET = "forms-secret"


@pytest.fixture(scope="module")
def desk(tmp_path_factory):
    from portal_double import PortalDouble

    d = PortalDouble(seed=6, tickets=80, months=2, openlines=30, drain_per_s=1e6).start()
    db_path = str(tmp_path_factory.mktemp("forms") / "f.db")
    installed_and_synced(d, db_path, ["tasks"])
    today = datetime.fromtimestamp(d.portal.now, ZoneInfo("Europe/Moscow")).date()
    d.period = ((today - timedelta(days=40)).isoformat(), (today + timedelta(days=1)).isoformat())
    d.db_path = db_path
    heads = dict(d.desk.heads)
    d.head = heads[2]
    d.agent = next(a for a in d.desk.agents if a not in heads.values() and d.portal.users[a]["ACTIVE"])
    yield d
    d.stop()


@pytest.fixture
def client(desk):
    return settings_app_client(desk, SECRET)


class _Text(HTMLParser):
    """The text a person sees (no tags, attributes or scripts)."""

    def __init__(self):
        super().__init__()
        self.parts, self.skip = [], 0

    def handle_starttag(self, tag, attrs):
        self.skip += tag in ("script", "style")

    def handle_endtag(self, tag):
        self.skip -= tag in ("script", "style")

    def handle_data(self, data):
        if not self.skip:
            self.parts.append(data)


def visible(page: str) -> str:
    p = _Text()
    p.feed(page)
    return " ".join(p.parts)


INTERNAL = re.compile(r"\b[a-z]+_[a-z_]+\b|UF_CRM|\bdeals:|\bcrm:\d|\btasks:group|C3:|DT1038|openlines:line")


def post(client, tok, form, **fields):
    data = {"t": tok, "csrf": csrf_token(SECRET, load_token(SECRET, tok)), "form": form}
    data.update(fields)
    return client.post("/reports/settings", data=data)


@pytest.mark.parametrize("lang", ["ru", "en"])
def test_page_shows_the_portals_lists_and_no_internal_keys(client, desk, lang):
    tok = token_of(client, desk, 1, lang)
    r = client.get(f"/reports/settings?t={tok}")
    assert r.status_code == 200
    page = r.get_data(as_text=True)
    text = visible(page)
    # names read from the portal: pipelines (crm.category.list), the smart process (crm.type.list),
    # the workgroup (sonet_group.get), open lines (imopenlines.config.list.get)
    from portal_double.openlines import state

    lines = [x["LINE_NAME"] for x in state(desk.portal).lines.values()]
    assert lines
    for name in ["Обращения в поддержку", "Заявки на обслуживание", "Техническая поддержка"] + lines:
        assert name in text, name
    assert "<textarea" not in page  # no JSON box
    assert not INTERNAL.findall(text), INTERNAL.findall(text)[:5]
    assert 'value="deals:category=3"' in page  # ... internal values ride in form values only
    assert desk.stats.by_method["crm.item.fields"] >= 1 and desk.stats.by_method["sonet_group.get"] >= 1


def test_heads_and_agents_cannot_open_or_post(client, desk):
    for user in (desk.head, desk.agent):
        tok = token_of(client, desk, user)
        assert client.get(f"/reports/settings?t={tok}").status_code == 403
        assert client.get(f"/reports/settings/export?t={tok}").status_code == 403
        assert client.get(f"/reports/settings/people?q=a&t={tok}").status_code == 403
        before = stored(desk, "config")
        assert post(client, tok, "sla", **{"sla-mode": "calendar", "sla-res-high-h": "1"}).status_code == 403
        assert stored(desk, "config") == before
    admin = token_of(client, desk, 1)
    r = client.post("/reports/settings", data={"t": admin, "form": "sla", "sla-mode": "calendar"})
    assert r.status_code == 403  # no CSRF token


def test_a_source_with_its_priority_field_sla_and_target(client, desk):
    tok = token_of(client, desk, 1)
    r = post(client, tok, "sources", src=["tasks", "deals:category=3"])
    assert r.status_code == 303 and "saved=1" in r.headers["Location"]
    assert stored(desk, "config")["sources"] == ["tasks", "deals:category=3"]
    page = client.get(f"/reports/settings?t={tok}").get_data(as_text=True)
    assert "Приоритет обращения" in page and "Вторая линия" in page  # fields and stages by name
    fields = {
        "m-0-select": "deals:category=3",
        "m-0-priority": "UF_CRM_PRIORITY",
        "m-0-pv-UF_CRM_PRIORITY-45": "low",
        "m-0-pv-UF_CRM_PRIORITY-46": "normal",
        "m-0-pv-UF_CRM_PRIORITY-47": "high",
        "m-0-pv-UF_CRM_PRIORITY-48": "critical",
        "m-0-rating": "UF_CRM_RATING",
        "m-0-esc": "C3:UC_SECOND_LINE",
        "b-0-C3:UC_WAIT": "wait_customer",
    }
    r = post(client, tok, "mapping", **fields)
    assert r.status_code == 303, r.get_data(as_text=True)
    entry = stored(desk, "config")["sources"][1]
    assert entry == {
        "select": "deals:category=3",
        "priority": "UF_CRM_PRIORITY",
        "rating": "UF_CRM_RATING",
        "priority_values": {"45": "low", "46": "normal", "47": "high", "48": "critical"},
        "escalation_stages": ["C3:UC_SECOND_LINE"],
    }
    assert stored(desk, "config")["status_buckets"]["crm:2"] == {"C3:UC_WAIT": "wait_customer"}
    r = post(
        client,
        tok,
        "sla",
        **{
            "sla-mode": "business",
            "sla-res-high-h": "4",
            "sla-res-high-m": "30",
            "sla-frt-high-h": "0",
            "sla-frt-high-m": "20",
        },
    )
    assert r.status_code == 303
    sla = stored(desk, "config")["sla"]
    assert sla["resolution_business_seconds"] == {"high": 4 * 3600 + 1800}
    assert sla["first_response_business_seconds"] == {"high": 1200}
    r = post(
        client,
        tok,
        "targets",
        **{
            "tg-first_response_time-value": "7",
            "tg-first_response_time-dir": "lower",
            "tg-first_response_time-tol": "10",
        },
    )
    assert r.status_code == 303
    assert stored(desk, "targets")["portal"]["first_response_time"] == {"target": 420}
    # the same post again changes nothing and records nothing
    n = len(stored(desk, "settings.history"))
    r = post(
        client,
        tok,
        "targets",
        **{
            "tg-first_response_time-value": "7",
            "tg-first_response_time-dir": "lower",
            "tg-first_response_time-tol": "10",
        },
    )
    assert "saved=0" in r.headers["Location"] and len(stored(desk, "settings.history")) == n
    hist = stored(desk, "settings.history")
    assert [h["section"] for h in hist[-4:]] == ["sources", "mapping", "sla", "targets"]
    assert all(h["user"] == "1" and h["at"] > 0 for h in hist)
    assert hist[-1]["changes"] == ["First response time: 10 → 7 min"]  # one line per real change
    assert hist[-3]["changes"][0].endswith("priority field: — → Приоритет обращения")
    page = visible(client.get(f"/reports/settings?t={tok}").get_data(as_text=True))
    assert "Pipeline “Обращения в поддержку”" in page and "4 h 30 min" in page  # the history, in words
    assert "Ждём ответа клиента → waiting for the customer" in page and "Вторая линия" in page
    assert not INTERNAL.findall(page), INTERNAL.findall(page)[:5]


@pytest.mark.parametrize(
    "form, fields, field, says",
    [
        ("sla", {"sla-res-high-h": "4", "sla-res-high-m": "75"}, "sla-res-high", "Minutes must be 0 to 59"),
        ("sla", {"sla-res-low-h": "x"}, "sla-res-low", "Enter a whole number"),
        (
            "calendar",
            {"cal-days": ["1", "2"], "cal-start": "19:00", "cal-end": "18:00", "cal-tz": "Europe/Moscow"},
            "cal-end",
            "The day must end after it starts",
        ),
        (
            "calendar",
            {"cal-days": ["1"], "cal-start": "09:00", "cal-end": "18:00", "cal-tz": "Mars/Olympus"},
            "cal-tz",
            "Pick a time zone from the list",
        ),
        (
            "targets",
            {"tg-csat-value": "140", "tg-csat-dir": "higher", "tg-csat-tol": "10"},
            "tg-csat-value",
            "A percent from 0 to 100",
        ),
        ("sources", {"src": ["deals", "deals:category=3"]}, "src", "already includes"),
        ("people", {"bots": ["999999"], "repeat-days": "30"}, "bots", "Not a user of the portal"),
        ("ccei", {"period": "2026-13", "enps": "40"}, "period", "A month like 2026-10"),
    ],
)
def test_wrong_input_is_named_beside_its_field_and_nothing_is_saved(client, desk, form, fields, field, says):
    tok = token_of(client, desk, 1)
    keys = ("config", "targets", "settings.history")
    before = {k: stored(desk, k) for k in keys}
    r = post(client, tok, form, **fields)
    assert r.status_code == 400
    page = r.get_data(as_text=True)
    m = re.search(rf'<div class="err" id="err-{re.escape(field)}" role="alert">([^<]*)</div>', page)
    assert m and says in m.group(1), page[page.find('class="err"') - 300 :][:600]
    assert {k: stored(desk, k) for k in keys} == before


def test_russian_messages(client, desk):
    tok = token_of(client, desk, 1, "ru")
    r = post(client, tok, "sla", **{"sla-res-high-h": "4", "sla-res-high-m": "75"})
    assert r.status_code == 400 and "Минуты — от 0 до 59" in r.get_data(as_text=True)


def test_people_pickers_and_search(client, desk):
    tok = token_of(client, desk, 1)
    a = desk.agent
    name = desk.portal.users[a]["NAME"]
    r = client.get(f"/reports/settings/people?q={name}&t={tok}")
    assert r.status_code == 200 and str(a) in [x["id"] for x in r.get_json()["items"]]
    deps = client.get(f"/reports/settings/people?kind=department&q=линия&t={tok}").get_json()["items"]
    assert {d["id"] for d in deps} == {"2", "3"}
    r = post(client, tok, "people", bots=[str(a)], deps=["2", "3"], **{"repeat-days": "14"})
    assert r.status_code == 303
    cfg = stored(desk, "config")
    assert cfg["bot_users"] == [str(a)] and cfg["support_departments"] == ["2", "3"]
    assert cfg["repeat_window_days"] == 14
    r = post(client, tok, "people", bots=[], deps=[], **{"repeat-days": "30"})
    assert r.status_code == 303 and "bot_users" in stored(desk, "config")  # set to none, as chosen


PUSH_FORM = {
    "push_enabled": "1",
    "push_daily_time": "09:00",
    "push_weekly_time": "09:00",
    "push_weekly_weekday": "1",
    "push_monthly_time": "09:00",
    "push_monthly_day": "1",
    "push_channels": ["notify"],
}


def test_push_departments_and_alert_recipients_by_picking(client, desk):
    """The digest's departments and the alert recipients are pickers like the digest recipients;
    none ticked means every department with a head, and the digest recipients for alerts."""
    tok = token_of(client, desk, 1)
    head = str(desk.head)
    page = client.get(f"/reports/settings?t={tok}").get_data(as_text=True)
    assert 'id="picker-push_departments"' in page and 'id="picker-push_alert_recipients"' in page
    r = post(client, tok, "push", push_departments=["2", "3"], push_alert_recipients=[head], **PUSH_FORM)
    assert r.status_code == 303, r.get_data(as_text=True)
    push = stored(desk, "push")
    assert push["departments"] == ["2", "3"] and push["alerts"]["recipients"] == [head]
    changes = stored(desk, "settings.history")[-1]["changes"]
    assert any(c.startswith("Department digests: ") and "линия" in c for c in changes), changes
    assert f"Alert recipients: {desk.portal.users[desk.head]['NAME']}" in " ".join(changes)
    page = client.get(f"/reports/settings?t={tok}").get_data(as_text=True)
    picked = re.search(r'id="picker-push_departments".*?</div>\s*</div>', page, re.S).group(0)
    assert sorted(re.findall(r'value="(\d+)" checked', picked)) == ["2", "3"]
    # an unknown department or person is named beside its field, and nothing is stored
    for name, value, says in (
        ("push_departments", "999", "Not a department"),
        ("push_alert_recipients", "999999", "Not a user"),
    ):
        r = post(client, tok, "push", **dict(PUSH_FORM, **{name: [value]}))
        assert r.status_code == 400
        m = re.search(rf'id="err-{name}" role="alert">([^<]*)<', r.get_data(as_text=True))
        assert m and says in m.group(1)
        assert stored(desk, "push") == push
    r = post(client, tok, "push", **PUSH_FORM)  # none ticked: the defaults again
    assert r.status_code == 303
    assert stored(desk, "push")["departments"] == "all" and stored(desk, "push")["alerts"]["recipients"] == []


def test_dates_as_the_viewer_writes_them(client, desk):
    """No browser-locale date box: a Russian admin types and reads 08.03.2027, an English one
    2027-03-08; the month of the CCEI inputs is picked by its name; a wrong date is named."""
    tok = token_of(client, desk, 1, "ru")
    page = client.get(f"/reports/settings?t={tok}").get_data(as_text=True)
    assert 'type="date"' not in page and 'type="month"' not in page
    assert re.search(r'id="cal-hol-add"[^>]*placeholder="дд.мм.гггг"', page)
    assert re.search(
        r'<select name="period" id="ccei-period"[^>]*>.*?>(январь|февраль|март|апрель|май|июнь|июль|'
        r"август|сентябрь|октябрь|ноябрь|декабрь) 20\d\d<",
        page,
        re.S,
    )
    cal = {
        "cal-days": ["1", "2", "3", "4", "5"],
        "cal-start": "09:00",
        "cal-end": "18:00",
        "cal-tz": "Europe/Moscow",
        "cal-country": "RU",
    }
    r = post(client, tok, "calendar", **cal, **{"cal-hol-add": "31.02.2027"})
    assert r.status_code == 400
    m = re.search(r'id="err-cal-hol-add" role="alert">([^<]*)<', r.get_data(as_text=True))
    assert m and "ДД.ММ.ГГГГ" in m.group(1)
    r = post(client, tok, "calendar", **cal, **{"cal-hol-add": "08.03.2027"})
    assert r.status_code == 303, r.get_data(as_text=True)
    assert "2027-03-08" in stored(desk, "config")["calendar"]["extra_holidays"]
    assert any(c.endswith("08.03.2027") for c in stored(desk, "settings.history")[-1]["changes"])
    page = client.get(f"/reports/settings?t={tok}").get_data(as_text=True)
    assert re.search(r'name="cal-hol-keep" value="2027-03-08" checked> 08.03.2027<', page)
    assert re.search(r'id="ol-from"[^>]*value="\d\d\.\d\d\.\d{4}"', page)
    en = client.get(f"/reports/settings?t={token_of(client, desk, 1, 'en')}").get_data(as_text=True)
    assert re.search(r'name="cal-hol-keep" value="2027-03-08" checked> 2027-03-08<', en)
    assert re.search(r'id="ol-from"[^>]*value="\d{4}-\d\d-\d\d"', en)


def test_settings_file_round_trip(client, desk):
    tok = token_of(client, desk, 1)
    r = client.get(f"/reports/settings/export?t={tok}")
    assert r.status_code == 200 and "attachment" in r.headers["Content-Disposition"]
    exported = json.loads(r.data)
    assert exported["schema"] == "b24desk.settings/1"
    before = {k: stored(desk, k) for k in ("config", "targets", "push")}
    broken = dict(exported, targets={"portal": {"moon_phase": {"target": 1}}})
    data = {
        "t": tok,
        "csrf": csrf_token(SECRET, load_token(SECRET, tok)),
        "form": "import",
        "file": (io.BytesIO(json.dumps(broken).encode()), "s.json"),
    }
    r = client.post("/reports/settings", data=data, content_type="multipart/form-data")
    assert r.status_code == 400 and 'id="err-file"' in r.get_data(as_text=True)
    assert {k: stored(desk, k) for k in ("config", "targets", "push")} == before
    changed = json.loads(json.dumps(exported))
    changed["config"]["repeat_window_days"] = 21
    data["file"] = (io.BytesIO(json.dumps(changed).encode()), "s.json")
    r = client.post("/reports/settings", data=data, content_type="multipart/form-data")
    assert r.status_code == 303
    assert stored(desk, "config")["repeat_window_days"] == 21
    data["file"] = (io.BytesIO(json.dumps(exported).encode()), "s.json")
    assert client.post("/reports/settings", data=data, content_type="multipart/form-data").status_code == 303
    assert {k: stored(desk, k) for k in ("config", "targets", "push")} == before


def test_catalog_survives_a_refused_list(client, desk):
    """An app without the userfieldconfig scope still offers every field; list values are then
    missing (nothing to map), and the page says some lists are unavailable instead of failing."""
    tok = token_of(client, desk, 1)
    desk.creds.app_scopes.discard("userfieldconfig")
    try:
        db = open_db(desk.db_path)  # the installation's new token carries the reduced scopes
        fresh = desk.issue_tokens(1)
        db.execute(
            "update installations set access_token = ? where member_id = ?", [fresh["access_token"], desk.member_id]
        )
        db.conn.commit()
        db.conn.close()
        assert post(client, tok, "catalog").status_code == 303
        cat = stored(desk, "catalog")
        assert any(e.startswith("userfieldconfig.list") for e in cat["errors"])
        deal_fields = {f["code"]: f for f in cat["crm"]["2"]["fields"]}
        assert "UF_CRM_PRIORITY" in deal_fields and deal_fields["UF_CRM_PRIORITY"]["values"] == []
        assert deal_fields["UF_CRM_PRIORITY"]["name"] == "Приоритет обращения"  # the label crm.item.fields gives
        page = client.get(f"/reports/settings?t={tok}")
        assert page.status_code == 200 and 'id="catalog-note"' in page.get_data(as_text=True)
    finally:
        desk.creds.app_scopes.add("userfieldconfig")
        fresh = desk.issue_tokens(1)
        db = open_db(desk.db_path)
        db.execute(
            "update installations set access_token = ? where member_id = ?", [fresh["access_token"], desk.member_id]
        )
        db.conn.commit()
        db.conn.close()
        assert post(client, tok, "catalog").status_code == 303
    assert not [e for e in stored(desk, "catalog")["errors"] if e.startswith("userfieldconfig")]


def _reinstall_with(desk, scopes):
    """The installation's token (and its recorded scope) as if the app were given ``scopes``."""
    desk.creds.app_scopes = set(scopes)
    fresh = desk.issue_tokens(1)
    db = open_db(desk.db_path)
    db.execute(
        "update installations set access_token = ?, scope = ? where member_id = ?",
        [fresh["access_token"], fresh["scope"], desk.member_id],
    )
    db.conn.commit()
    db.conn.close()


def test_the_documented_scopes_are_enough_to_map_priority_values(client, desk):
    """An app given exactly the permissions webhooks/README.md asks for reads every list of the
    settings page, the priority field's values included; one without userfieldconfig is told so."""
    from pathlib import Path

    from b24desk.installations import SCOPES
    from portal_double import ALL_SCOPES

    readme = (Path(__file__).resolve().parent.parent / "webhooks" / "README.md").read_text()
    row = next(line for line in readme.splitlines() if line.startswith("| *Assign permissions*"))
    assert re.findall(r"`([a-z_]+)`", row) == list(SCOPES)
    assert "userfieldconfig" in SCOPES and set(SCOPES) <= ALL_SCOPES
    tok = token_of(client, desk, 1)
    try:
        _reinstall_with(desk, SCOPES)
        assert post(client, tok, "catalog").status_code == 303
        cat = stored(desk, "catalog")
        assert cat["errors"] == []
        values = {f["code"]: f for f in cat["crm"]["2"]["fields"]}["UF_CRM_PRIORITY"]["values"]
        assert len(values) == 4
        assert 'id="scopes-note"' not in client.get(f"/reports/settings?t={tok}").get_data(as_text=True)
        _reinstall_with(desk, set(SCOPES) - {"userfieldconfig"})
        page = client.get(f"/reports/settings?t={tok}").get_data(as_text=True)
        note = re.search(r'id="scopes-note">(.*?)</p>', page, re.S).group(1)
        assert "<b>userfieldconfig</b>" in note and "priority values cannot be mapped" in note
    finally:
        _reinstall_with(desk, ALL_SCOPES)
        assert post(client, tok, "catalog").status_code == 303


def test_round_the_clock_sla_and_the_admins_time_zone(client, desk):
    from b24desk.kpi.load import portal_zone as timezone_of
    from b24desk.kpi.report import ReportEnv

    tok = token_of(client, desk, 1)
    r = post(client, tok, "sla", **{"sla-mode": "calendar", "sla-res-high-h": "2"})
    assert r.status_code == 303
    r = post(
        client,
        tok,
        "calendar",
        **{
            "cal-days": ["1", "2", "3", "4", "5"],
            "cal-start": "09:00",
            "cal-end": "18:00",
            "cal-tz": "Asia/Vladivostok",
            "cal-country": "RU",
            "cal-portal": "1",
        },
    )
    assert r.status_code == 303
    from b24desk.config import load_config
    from b24desk.overrides import effective_config

    db = open_db(desk.db_path)
    try:
        cfg = effective_config(db, desk.member_id, load_config())
        env = ReportEnv(db, desk.member_id, cfg)
        assert env.tz_name == "Asia/Vladivostok" == timezone_of(db, desk.member_id, cfg)  # wins over the portal's
        t0 = int(datetime(2026, 11, 28, 23, 0, tzinfo=ZoneInfo("Asia/Vladivostok")).timestamp())  # a Saturday night
        assert env.ctx.sla_calendar.business_seconds(t0, t0 + 7200) == 7200  # the clock runs
        assert env.calendar.business_seconds(t0, t0 + 7200) == 0  # work hours do not
    finally:
        db.conn.close()
    hist = stored(desk, "settings.history")[-2:]
    assert "round the clock" in " ".join(hist[0]["changes"]) and "Asia/Vladivostok" in " ".join(hist[1]["changes"])
    post(client, tok, "sla", **{"sla-mode": "business", "sla-res-high-h": "2"})
    post(
        client,
        tok,
        "calendar",
        **{
            "cal-days": ["1", "2", "3", "4", "5"],
            "cal-start": "09:00",
            "cal-end": "18:00",
            "cal-tz": "Europe/Moscow",
            "cal-country": "RU",
            "cal-portal": "1",
        },
    )


JUNK = ["", "x", "-1", "1e309", "NaN", "9" * 40, "<script>", "../..", "deals:category=999", "a|b|c", "25:99"]


@pytest.mark.parametrize(
    "form",
    ["sources", "mapping", "sla", "calendar", "targets", "people", "push", "ccei", "import", "catalog", "nonsense"],
)
def test_forged_input_never_gets_a_5xx(client, desk, form):
    """Every field of every form, forged: a 4xx (or a harmless save), never a 5xx."""
    tok = token_of(client, desk, 1)
    page = client.get(f"/reports/settings?t={tok}").get_data(as_text=True)
    names = sorted(set(re.findall(r'name="([^"]+)"', page)) - {"t", "csrf", "form"})
    before = stored(desk, "settings.history")
    for i, junk in enumerate(JUNK):
        fields = {n: junk for n in names}
        fields.update({"src": [junk, "tasks"], "m-0-select": junk if i % 2 else "deals:category=3"})
        r = post(client, tok, form, **fields)
        assert r.status_code < 500, (form, junk, r.status_code)
    big = {
        "t": tok,
        "csrf": csrf_token(SECRET, load_token(SECRET, tok)),
        "form": "import",
        "file": (io.BytesIO(b"{" + b" " * (2 << 20) + b"}"), "big.json"),
    }
    r = client.post("/reports/settings", data=big, content_type="multipart/form-data")
    assert r.status_code == 413  # the app's body cap
    big["file"] = (io.BytesIO(b"[1, 2"), "broken.json")
    r = client.post("/reports/settings", data=big, content_type="multipart/form-data")
    assert r.status_code == 400 and 'id="err-file"' in r.get_data(as_text=True)
    if form in ("import", "catalog", "nonsense"):
        assert stored(desk, "settings.history") == before
