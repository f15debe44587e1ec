"""The settings page in real headless Chromium inside the portal's frame (issue 15).

The admin adds a deal pipeline source, maps its priority field and escalation stage, sets an SLA,
a KPI target and a digest recipient with form controls only; ``flask sync`` then reads the new
source, and the dashboard and ``flask kpi`` show the change. Wrong input is named beside its field
and saves nothing; a head and an agent are refused. Screenshots (1000 and 1400 px, ru and en) go
to ``test-artifacts/``.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from browser_support import ARTIFACTS, WAIT, framed_app, ready, require_chromium

pytestmark = pytest.mark.browser
require_chromium()

from pages_support import build_desk  # noqa: E402
from pages_support import stored_setting as stored
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402
from test_browser_dashboard import open_in_frame  # noqa: E402

from portal_double import Served  # noqa: E402

SECRET = "browser-settings-secret"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    desk = build_desk(tmp_path_factory.mktemp("bsettings"), tickets=160, seed=23)
    d = desk.double
    config = {
        "SECRET_KEY": SECRET,
        "CLIENT_ID": d.client_id,
        "CLIENT_SECRET": d.client_secret,
        "OAUTH_URL": d.oauth_token_url,
    }
    with framed_app(desk, config, "--window-size=1448,1100", "--lang=en-US") as e:
        yield e


def settings_page(env, user, lang="en"):
    d = env["driver"]
    open_in_frame(d, f"{env['shell'].url}/?user={user}&lang={lang}")
    tok = settings_token(d)
    d.execute_script("location.href = arguments[0]", f"/reports/settings?t={tok}")
    WebDriverWait(d, WAIT).until(
        lambda x: (
            x.execute_script("return location.pathname") == "/reports/settings"
            and x.execute_script("return document.readyState") == "complete"
        )
    )
    return tok


def submit(d, form_id):
    body = d.find_element(By.TAG_NAME, "body")
    d.find_element(By.CSS_SELECTOR, f"#{form_id} button[type=submit]").click()
    WebDriverWait(d, WAIT).until(EC.staleness_of(body))
    ready(d)


def label_checkbox(d, scope_css, text):
    for lab in d.find_elements(By.CSS_SELECTOR, f"{scope_css} label"):
        if text in lab.text:
            return lab.find_element(By.TAG_NAME, "input")
    raise AssertionError(f"no checkbox labelled {text!r} in {scope_css}")


def shot(d, name, css=None):
    if css:
        d.execute_script("var e = document.querySelector(arguments[0]); if (e) e.scrollIntoView();", css)
    d.switch_to.default_content()
    d.save_screenshot(str(ARTIFACTS / name))
    d.switch_to.frame("app")


def flask_kpi(env) -> dict:
    desk = env["desk"]
    r = (
        env["flask"]
        .test_cli_runner()
        .invoke(
            args=[
                "kpi",
                "--portal",
                desk.member_id,
                "--db",
                desk.db_path,
                "--from",
                desk.date_from,
                "--to",
                desk.date_to,
                "--format",
                "json",
            ]
        )
    )
    assert r.exit_code == 0, r.output
    return json.loads(r.output)


def test_admin_sets_up_a_pipeline_sla_target_and_recipient(env):
    d, desk = env["driver"], env["desk"]
    base = flask_kpi(env)
    settings_page(env, desk.admin)
    ready(d)
    # 1. the deal pipeline, by its name in the portal
    label_checkbox(d, "#form-sources", "Обращения в поддержку").click()
    submit(d, "form-sources")
    assert d.find_element(By.ID, "saved")
    # 2. its priority field and values, the escalation stage, by name
    Select(d.find_element(By.ID, "m-0-priority")).select_by_visible_text("Приоритет обращения")
    block = d.find_element(By.CSS_SELECTOR, '.pv-block[data-field="UF_CRM_PRIORITY"]')
    assert block.is_displayed()
    for value, prio in (("Низкий", "Low"), ("Обычный", "Normal"), ("Высокий", "High"), ("Критический", "Critical")):
        Select(block.find_element(By.CSS_SELECTOR, f'select[aria-label="{value}"]')).select_by_visible_text(prio)
    label_checkbox(d, "#map-0 table.stages", "second line")  # the first escalation box
    for row in d.find_elements(By.CSS_SELECTOR, "#map-0 table.stages tbody tr"):
        if "Вторая линия" in row.text:
            row.find_element(By.CSS_SELECTOR, "input[type=checkbox]").click()
    submit(d, "form-mapping")
    # 3. SLA: resolution of a high-priority ticket in 4 h 30 min, first response in 20 min
    for name, value in (
        ("sla-res-high-h", "4"),
        ("sla-res-high-m", "30"),
        ("sla-frt-high-h", "0"),
        ("sla-frt-high-m", "20"),
    ):
        el = d.find_element(By.ID, name)
        el.clear()
        el.send_keys(value)
    submit(d, "form-sla")
    # 4. a target: first response within 7 minutes
    el = d.find_element(By.ID, "tg-first_response_time-value")
    el.clear()
    el.send_keys("7")
    submit(d, "form-targets")
    # 5. a digest recipient, found with the picker's search box
    agent = next(a for a, dep in desk.agents.items() if dep == 2)
    u = desk.double.portal.users[agent]
    q = d.find_element(By.CSS_SELECTOR, "#picker-push_recipients .picker-q")
    q.send_keys(u["LAST_NAME"])
    box = d.find_element(By.CSS_SELECTOR, f'#picker-push_recipients input[value="{agent}"]')
    assert box.is_displayed()
    box.click()
    submit(d, "form-push")
    assert d.find_element(By.ID, "saved")

    cfg = stored(desk, "config")
    entry = cfg["sources"][1]
    assert entry["select"] == "deals:category=3" and entry["priority"] == "UF_CRM_PRIORITY"
    assert entry["priority_values"] == {"45": "low", "46": "normal", "47": "high", "48": "critical"}
    assert entry["escalation_stages"] == ["C3:UC_SECOND_LINE"]
    assert cfg["sla"]["resolution_business_seconds"]["high"] == 4 * 3600 + 1800
    assert stored(desk, "targets")["portal"]["first_response_time"]["target"] == 420
    assert str(agent) in [str(x) for x in stored(desk, "push")["portal_recipients"]]
    history = d.find_element(By.ID, "history").text
    assert "Обращения в поддержку" in history and "4 h 30 min" in history
    assert "First response time: 10 → 7 min" in history and "— → —" not in history  # only real changes
    shot(d, "settings-after-setup-1400-en.png", "#history")

    # the scheduler's sync (here: `flask sync`) reads the new source; `flask kpi` and the dashboard agree
    runner = env["flask"].test_cli_runner()
    dbl = desk.double
    r = runner.invoke(
        args=["sync", "--portal", desk.member_id, "--db", desk.db_path],
        env={
            "B24DESK_CLIENT_ID": dbl.client_id,
            "B24DESK_CLIENT_SECRET": dbl.client_secret,
            "B24DESK_OAUTH_URL": dbl.oauth_token_url,
        },
    )
    assert r.exit_code == 0, r.output
    rep = flask_kpi(env)
    assert rep["kpis"]["first_response_time"]["target"] == 420
    assert rep["kpis"]["tickets_total"]["value"] > base["kpis"]["tickets_total"]["value"]  # the deals came in
    # tasks are never "critical": a critical ticket now is a deal whose priority value the admin mapped
    assert base["kpis"]["resolved_by_priority"]["value"].get("critical", 0) == 0
    assert rep["kpis"]["resolved_by_priority"]["value"]["critical"] > 0
    body = d.find_element(By.TAG_NAME, "body")
    d.execute_script(
        "location.href = arguments[0]",
        f"/reports/dashboard?from={desk.date_from}&to={desk.date_to}&t={settings_token(d)}",
    )
    WebDriverWait(d, WAIT).until(EC.staleness_of(body))
    ready(d)
    total = d.find_element(By.CSS_SELECTOR, '.card[data-kpi="tickets_total"] .value').text.replace("\u202f", "")
    assert total == str(rep["kpis"]["tickets_total"]["value"])
    frt = d.find_element(By.CSS_SELECTOR, '.card[data-kpi="first_response_time"]').text
    assert "7" in frt and ("min" in frt or "мин" in frt)
    shot(d, "settings-dashboard-after-1400-en.png", "#cards")


def settings_token(d) -> str:
    return parse_qs(urlsplit(d.execute_script("return location.href")).query)["t"][0]


def test_wrong_input_is_named_beside_its_field_and_saves_nothing(env):
    d, desk = env["driver"], env["desk"]
    settings_page(env, desk.admin)
    ready(d)
    before = {k: stored(desk, k) for k in ("config", "targets", "settings.history")}
    el = d.find_element(By.ID, "sla-res-low-m")
    el.clear()
    el.send_keys("75")
    submit(d, "form-sla")
    err = d.find_element(By.ID, "err-sla-res-low")
    assert "Minutes must be 0 to 59" in err.text and err.is_displayed()
    # beside its field: in the same table cell as the boxes the admin typed in
    cell = err.find_element(By.XPATH, "./ancestor::td")
    assert cell.find_element(By.ID, "sla-res-low-m").get_attribute("value") == "75"
    assert d.find_element(By.ID, "sla-res-low-m").get_attribute("aria-invalid") == "true"
    assert {k: stored(desk, k) for k in ("config", "targets", "settings.history")} == before
    shot(d, "settings-error-1400-en.png", "#form-sla")


@pytest.mark.parametrize("role", ["head", "agent"])
def test_a_head_or_an_agent_cannot_open_or_post(env, role):
    from b24desk.viewer import csrf_token, load_token

    d, desk = env["driver"], env["desk"]
    user = desk.heads[2] if role == "head" else next(a for a, dep in desk.agents.items() if dep == 2)
    open_in_frame(d, f"{env['shell'].url}/?user={user}&lang=en")
    assert not d.find_elements(By.ID, "nav-settings")
    tok = settings_token(d)
    d.execute_script("location.href = arguments[0]", f"/reports/settings?t={tok}")
    WebDriverWait(d, WAIT).until(lambda x: x.execute_script("return location.pathname") == "/reports/settings")
    WebDriverWait(d, WAIT).until(lambda x: "administrator" in x.find_element(By.TAG_NAME, "body").text)
    assert not d.find_elements(By.ID, "form-sla")
    shot(d, f"settings-refused-{role}-1400-en.png")
    before = stored(desk, "config")
    r = requests.post(
        f"{env['app'].url}/reports/settings",
        timeout=30,
        data={
            "t": tok,
            "csrf": csrf_token(SECRET, load_token(SECRET, tok)),
            "form": "sla",
            "sla-mode": "calendar",
            "sla-res-high-h": "1",
        },
    )
    assert r.status_code == 403 and stored(desk, "config") == before
    assert requests.get(f"{env['app'].url}/reports/settings?t={tok}", timeout=30).status_code == 403


def test_a_russian_admin_types_a_holiday_as_dd_mm_yyyy(env):
    """The browser speaks English (mm/dd/yyyy in its own date boxes); the Russian page still asks
    for and shows 08.03.2027, and stores the ISO date."""
    d, desk = env["driver"], env["desk"]
    d.set_window_size(1048, 1100)
    try:
        settings_page(env, desk.admin, "ru")
        ready(d)
        box = d.find_element(By.ID, "cal-hol-add")
        assert box.get_attribute("type") == "text" and box.get_attribute("placeholder") == "дд.мм.гггг"
        box.send_keys("08.03.2027")
        submit(d, "form-calendar")
        assert "2027-03-08" in stored(desk, "config")["calendar"]["extra_holidays"]
        kept = [lab.text for lab in d.find_elements(By.CSS_SELECTOR, "#form-calendar .dates label.check")]
        assert "08.03.2027" in kept, kept
        shot(d, "settings-calendar-typed-1000-ru.png", "#form-calendar")
    finally:
        d.set_window_size(1448, 1100)


@pytest.mark.parametrize("lang", ["ru", "en"])
@pytest.mark.parametrize("width", [1000, 1400])
def test_screenshots(env, lang, width):
    d, desk = env["driver"], env["desk"]
    d.set_window_size(width + 48, 1100)
    try:
        settings_page(env, desk.admin, lang)
        ready(d)
        wide = d.execute_script(
            "return document.documentElement.scrollWidth > document.documentElement.clientWidth + 1"
        )
        assert not wide, "the page is wider than the frame"
        for part, css in (
            ("top", None),
            ("mapping", "#form-mapping"),
            ("sla", "#form-sla"),
            ("calendar", "#form-calendar"),
            ("targets", "#form-targets"),
            ("people", "#form-people"),
            ("push", "#form-push"),
            ("alerts", "#picker-push_alert_recipients"),
            ("openlines", "#form-openlines"),
        ):
            shot(d, f"settings-{part}-{width}-{lang}.png", css)
    finally:
        d.set_window_size(1448, 1100)


def bx24_stub(user_id: int, user_name: str, dep_id: int, dep_name: str):
    """A stand-in for Bitrix24's BX24.js: its pickers answer as the docs describe
    (sdk/bx24-js-sdk/system-dialogues/bx24-select-users.md, bx24-select-access.md)."""
    from werkzeug.wrappers import Request, Response

    script = f"""window.BX24 = {{
  init: function (cb) {{ cb(); }}, fitWindow: function () {{}},
  selectUsers: function (cb) {{ cb([{{id: "{user_id}", name: {json.dumps(user_name)}, position: "", sub: false, sup: false}}]); }},
  selectAccess: function (cb) {{ cb({{"DR{dep_id}": {{id: "DR{dep_id}", name: {json.dumps(dep_name)}}}}}); }}
}};"""

    @Request.application
    def app(request):
        return Response(script, content_type="application/javascript; charset=utf-8")

    return app


def test_inside_the_portal_bitrix24s_own_pickers_fill_the_lists(env):
    d, desk = env["driver"], env["desk"]
    agent = next(a for a, dep in desk.agents.items() if dep == 3)
    u = desk.double.portal.users[agent]
    stub = Served(bx24_stub(agent, f"{u['NAME']} {u['LAST_NAME']}", 3, "Вторая линия поддержки"))
    env["flask"].config["BX24_JS_URL"] = stub.url + "/bx24.js"
    try:
        settings_page(env, desk.admin)
        ready(d)
        for picker, value in (("bots", str(agent)), ("deps", "3")):
            button = d.find_element(By.CSS_SELECTOR, f"#picker-{picker} .picker-bx24")
            assert button.is_displayed()  # shown only where BX24 exists
            button.click()
            assert d.find_element(By.CSS_SELECTOR, f'#picker-{picker} input[value="{value}"]').is_selected()
        submit(d, "form-people")
        cfg = stored(desk, "config")
        assert cfg["bot_users"] == [str(agent)] and cfg["support_departments"] == ["3"]
        for picker in ("bots", "deps"):  # back to none, with the same controls
            for box in d.find_elements(By.CSS_SELECTOR, f"#picker-{picker} input[type=checkbox]"):
                if box.is_selected():
                    box.click()
        submit(d, "form-people")
        assert stored(desk, "config")["bot_users"] == []
    finally:
        env["flask"].config.pop("BX24_JS_URL", None)
        stub.stop()
    settings_page(env, desk.admin)
    ready(d)
    assert not d.find_element(By.CSS_SELECTOR, "#picker-bots .picker-bx24").is_displayed()  # the demo frame
