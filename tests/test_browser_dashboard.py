"""The dashboard in real headless Chromium, inside a frame page that mimics the portal.

The portal page (a second local server, the installation's domain) POSTs the launch into an
iframe exactly as Bitrix24 does (form target = the frame; DOCS settings/oauth/simple-way.md); the
app verifies it against the portal double over HTTP, and the test then works the page like a user:
charts draw, a filter reloads the page with the filter in the URL, a card drills down to its
tickets, the XSS title stays text, a foreign page cannot frame the app. Screenshots go to
``test-artifacts/``. Needs Debian's ``chromium`` and ``chromium-driver`` (``./dev test`` installs
them); skipped with a reason when absent, except under ``CI=true``, where their absence fails.
"""
from __future__ import annotations

import html
import json
import os
from pathlib import Path
from urllib.parse import urlencode

import pytest

from pages_support import XSS, build_desk

CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"

pytestmark = pytest.mark.browser

if not (os.path.exists(CHROMIUM) and os.path.exists(DRIVER)):
    if os.environ.get("CI") == "true":
        raise RuntimeError("CI=true but /usr/bin/chromium or /usr/bin/chromedriver is missing: "
                           "install Debian's chromium and chromium-driver (./dev test does)")
    pytest.skip("needs /usr/bin/chromium and /usr/bin/chromedriver (apt-get install chromium chromium-driver)",
                allow_module_level=True)

from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import NoAlertPresentException  # noqa: E402
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402
from portal_double import Served  # noqa: E402
from werkzeug.wrappers import Request, Response  # noqa: E402

WAIT = 60          # generous: a cold dashboard computes several reports; no timing is asserted


def portal_shell(desk, app_url: str):
    """The portal's page: its chrome, a frame, and the launch form posted into that frame."""
    @Request.application
    def shell(request):
        user = int(request.args.get("user", desk.admin))
        placement = request.args.get("placement", "DEFAULT")
        options = request.args.get("options", "{}")
        form = desk.launch_form(user, placement=placement, options=options)
        query = urlencode({"DOMAIN": request.host, "PROTOCOL": "0", "LANG": request.args.get("lang", "en"),
                           "APP_SID": "demo"})
        inputs = "".join(f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(str(v))}">'
                         for k, v in form.items())
        page = f"""<!doctype html><html><head><meta charset="utf-8"><title>Bitrix24</title>
<style>body{{margin:0;background:#eef2f4;font-family:"Open Sans","Helvetica Neue",Arial,sans-serif}}
header{{height:52px;background:#2fc6f6;color:#fff;font-size:20px;line-height:52px;padding:0 24px}}
main{{margin:16px 24px}} iframe{{width:100%;height:2600px;border:0;background:#fff;border-radius:12px}}</style>
</head><body><header>Bitrix24 · Service desk</header><main>
<form id="launch" method="post" target="app" action="{app_url}/app?{query}">{inputs}</form>
<iframe name="app" id="app"></iframe></main>
<script>document.getElementById("launch").submit();</script></body></html>"""
        return Response(page, content_type="text/html; charset=utf-8")
    return shell


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    from app import create_app
    from b24desk.store import open_db

    desk = build_desk(tmp_path_factory.mktemp("browser"), tickets=240, seed=21)
    flask_app = create_app({"TESTING": True, "DB": desk.db_path, "SECRET_KEY": "browser-secret"})
    app_srv = Served(flask_app)
    shell = Served(portal_shell(desk, app_srv.url))
    stranger = Served(portal_shell(desk, app_srv.url))       # a page of some other site
    db = open_db(desk.db_path)
    db.execute("update installations set domain = ? where member_id = ?", [shell.url.split("//")[1], desk.member_id])
    db.conn.commit()
    db.conn.close()
    opts = Options()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=1400,1100", "--lang=en-US"):
        opts.add_argument(a)
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=opts)
    ARTIFACTS.mkdir(exist_ok=True)
    yield {"desk": desk, "driver": driver, "shell": shell, "stranger": stranger, "app": app_srv}
    driver.quit()
    for s in (stranger, shell, app_srv):
        s.stop()
    desk.double.stop()


def open_in_frame(driver, url):
    driver.switch_to.default_content()
    driver.get(url)
    WebDriverWait(driver, WAIT).until(EC.frame_to_be_available_and_switch_to_it("app"))
    WebDriverWait(driver, WAIT).until(
        lambda d: d.execute_script("return document.body && document.body.getAttribute('data-ready')") == "1"
        or d.execute_script("return document.body && document.body.getAttribute('data-page')") == "ticket")


def painted(driver, canvas_id) -> int:
    """Non-transparent pixels of a canvas: > 0 once a chart has drawn on it."""
    return driver.execute_script("""
        var c = document.getElementById(arguments[0]); if (!c || !c.width) return 0;
        var d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data, n = 0;
        for (var i = 3; i < d.length; i += 4) { if (d[i]) n++; } return n;""", canvas_id)


def shot(driver, name):
    driver.switch_to.default_content()
    driver.save_screenshot(str(ARTIFACTS / name))
    driver.switch_to.frame("app")


def no_alert(driver):
    try:
        driver.switch_to.alert
    except NoAlertPresentException:
        return True
    return False


def test_dashboard_renders_in_the_portal_frame_and_charts_draw(env):
    d = env["driver"]
    desk = env["desk"]
    open_in_frame(d, f"{env['shell'].url}/?user={desk.admin}")
    assert "/reports/dashboard" in d.execute_script("return location.pathname")
    assert int(d.find_element(By.TAG_NAME, "body").get_attribute("data-charts")) >= 5
    for cid in ("chart-trend-volume", "chart-trend-time", "chart-frt", "chart-resolution", "chart-priority"):
        assert painted(d, cid) > 500, cid
    cards = d.find_elements(By.CSS_SELECTOR, "#cards .card")
    assert len(cards) >= 20
    font = d.execute_script("return getComputedStyle(document.body).fontFamily")
    assert "Open Sans" in font
    assert no_alert(d)
    shot(d, "dashboard.png")
    d.execute_script("document.getElementById('chart-trend-volume').scrollIntoView()")
    shot(d, "dashboard-charts.png")
    d.execute_script("document.getElementById('table-agent').scrollIntoView()")
    shot(d, "dashboard-tables.png")


def test_filter_is_kept_in_the_url_and_changes_the_numbers(env):
    d = env["driver"]
    desk = env["desk"]
    open_in_frame(d, f"{env['shell'].url}/?user={desk.admin}")
    before = d.find_element(By.CSS_SELECTOR, '.card[data-kpi="tickets_total"] .value').text
    body = d.find_element(By.TAG_NAME, "body")
    Select(d.find_element(By.ID, "f-priority")).select_by_value("high")
    WebDriverWait(d, WAIT).until(EC.staleness_of(body))
    WebDriverWait(d, WAIT).until(lambda x: x.execute_script(
        "return document.body && document.body.getAttribute('data-ready')") == "1")
    assert "priority=high" in d.execute_script("return location.search")
    assert Select(d.find_element(By.ID, "f-priority")).first_selected_option.get_attribute("value") == "high"
    after = d.find_element(By.CSS_SELECTOR, '.card[data-kpi="tickets_total"] .value').text
    from b24desk.kpi import build_report
    from b24desk.store import open_db
    q = dict(x.split("=", 1) for x in d.execute_script("return location.search")[1:].split("&"))
    db = open_db(desk.db_path)
    try:
        from datetime import date, timedelta
        end = (date.fromisoformat(q["to"]) + timedelta(days=1)).isoformat()   # the page's "to" is inclusive
        rep = build_report(db, desk.member_id, q["from"], end, filters={"priority": "high"})
        full = build_report(db, desk.member_id, q["from"], end)
    finally:
        db.conn.close()
    assert "".join(after.split()).replace(",", "") == str(rep["kpis"]["tickets_total"]["value"])
    assert "".join(before.split()).replace(",", "") == str(full["kpis"]["tickets_total"]["value"])
    shot(d, "dashboard-filtered.png")


def test_drilldown_lists_the_tickets_and_the_xss_title_stays_text(env):
    d = env["driver"]
    desk = env["desk"]
    open_in_frame(d, f"{env['shell'].url}/?user={desk.admin}")
    # the XSS task is recent: widen the period to the desk's whole window
    body = d.find_element(By.TAG_NAME, "body")
    d.execute_script("var f=document.getElementById('filters'); f.elements['from'].value=arguments[0];"
                     "f.elements['to'].value=arguments[1]; f.requestSubmit();", desk.date_from, desk.date_to)
    WebDriverWait(d, WAIT).until(EC.staleness_of(body))
    WebDriverWait(d, WAIT).until(lambda x: x.execute_script(
        "return document.body && document.body.getAttribute('data-ready')") == "1")
    d.find_element(By.CSS_SELECTOR, '.card[data-kpi="tickets_total"]').click()
    WebDriverWait(d, WAIT).until(lambda x: len(x.find_elements(By.CSS_SELECTOR, "#drill-rows tr")) > 0)
    assert "open" in d.find_element(By.ID, "drill").get_attribute("class")
    rows = d.find_elements(By.CSS_SELECTOR, "#drill-rows tr")
    total = d.find_element(By.CSS_SELECTOR, '.card[data-kpi="tickets_total"] .value').text.replace("\u202f", "").replace("\xa0", "").replace(",", "")
    assert len(rows) == min(int(total), 50)                            # paged, 50 a page
    assert d.find_element(By.ID, "drill-note").text.endswith(f"/ {total}")
    # newest first: the XSS task is recent
    loaded = d.find_element(By.ID, "drill").get_attribute("data-loaded")
    d.find_element(By.CSS_SELECTOR, '#drill-table th[data-sort="created"]').click()
    WebDriverWait(d, WAIT).until(lambda x: x.find_element(By.ID, "drill").get_attribute("data-loaded") != loaded)
    xss_row = d.find_element(By.CSS_SELECTOR, f'#drill-rows tr[data-ticket="task:{desk.xss_task}"]')
    link = xss_row.find_element(By.TAG_NAME, "a")
    assert link.text == XSS                                            # shown as text ...
    assert not d.find_elements(By.CSS_SELECTOR, "#drill-rows img")     # ... never as an element
    assert link.get_attribute("href").startswith(desk.double.base_url + "/company/personal/user/")
    assert no_alert(d)
    shot(d, "drilldown.png")
    d.find_element(By.ID, "drill-close").click()
    assert "open" not in d.find_element(By.ID, "drill").get_attribute("class")


def test_ticket_card_tab_shows_the_title_as_text(env):
    d = env["driver"]
    desk = env["desk"]
    opts = json.dumps({"taskId": desk.xss_task})
    open_in_frame(d, f"{env['shell'].url}/?user={desk.admin}&placement=TASK_VIEW_TAB&{urlencode({'options': opts})}")
    WebDriverWait(d, WAIT).until(EC.presence_of_element_located((By.ID, "ticket-title")))
    assert d.find_element(By.CSS_SELECTOR, "#ticket-title a").text == XSS
    assert not d.find_elements(By.CSS_SELECTOR, "#ticket-title img")
    assert d.find_elements(By.CSS_SELECTOR, "#timeline li")
    assert no_alert(d)
    shot(d, "ticket-card.png")


def test_a_foreign_page_cannot_frame_the_app(env):
    """frame-ancestors names the installation's portal only: another origin gets no dashboard."""
    d = env["driver"]
    d.switch_to.default_content()
    d.get(f"{env['stranger'].url}/?user={env['desk'].admin}")
    WebDriverWait(d, WAIT).until(EC.frame_to_be_available_and_switch_to_it("app"))
    import time as _time
    deadline = _time.monotonic() + 15
    ready = None
    while _time.monotonic() < deadline:       # polling for a state that must never come
        ready = d.execute_script("return document.body && document.body.getAttribute('data-ready')")
        if ready:
            break
        _time.sleep(0.5)
    assert ready is None
    d.switch_to.default_content()
    d.save_screenshot(str(ARTIFACTS / "foreign-frame-blocked.png"))
