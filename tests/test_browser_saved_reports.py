"""The saved-report builder in real headless Chromium inside the portal-like frame, 1000 px wide.

An admin creates a report (live preview checked against the engine), shares it with one agent,
saves it; the agent opens it and sees only their own slice; the admin deletes it. Screenshots
of the list, builder and report page at 1000 and 1400 px, Russian and English, go to
``test-artifacts/``. Same browser set-up as test_browser_dashboard.py.
"""

from __future__ import annotations

import pytest
from browser_support import ARTIFACTS, WAIT, framed_app, no_alert, ready, require_chromium

pytestmark = pytest.mark.browser
require_chromium()

from pages_support import build_desk  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

FRAME_MARGIN = 48  # the shell's <main> margins: window 1048 px -> a 1000 px app frame


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    desk = build_desk(tmp_path_factory.mktemp("saved-browser"), tickets=240, seed=22)
    with framed_app(
        desk,
        {"SECRET_KEY": "browser-secret"},
        f"--window-size={1000 + FRAME_MARGIN},1100",
        "--lang=en-US",
        "--hide-scrollbars",
    ) as e:
        yield e


def launch(d, env, user, lang="en", width=1000):
    d.set_window_size(width + FRAME_MARGIN, 1100)
    d.switch_to.default_content()
    d.get(f"{env['shell'].url}/?user={user}&lang={lang}")
    WebDriverWait(d, WAIT).until(EC.frame_to_be_available_and_switch_to_it("app"))
    ready(d)


def go(d, element_id):
    body = d.find_element(By.TAG_NAME, "body")
    d.find_element(By.ID, element_id).click()
    WebDriverWait(d, WAIT).until(EC.staleness_of(body))
    ready(d)


def shot(d, name, top=True):
    d.switch_to.default_content()
    if top:
        d.execute_script("window.scrollTo(0, 0)")
    d.save_screenshot(str(ARTIFACTS / name))
    d.switch_to.frame("app")


def no_overflow(d):
    """Nothing wider than the frame: the page itself never scrolls sideways."""
    return d.execute_script("return document.documentElement.scrollWidth <= window.innerWidth + 1")


def wait_preview(d, after: int = 0) -> int:
    WebDriverWait(d, WAIT).until(
        lambda x: int(x.execute_script("return (document.getElementById('preview-state').dataset.done || '0')")) > after
    )
    return int(d.execute_script("return document.getElementById('preview-state').dataset.done"))


def total_cell(d, scope="#preview", col=1) -> str:
    return d.find_element(By.CSS_SELECTOR, f"{scope} tr.sr-total td:nth-child({col + 1})").text.split("\n")[0]


def engine_total(desk, period, **kw) -> int:
    from b24desk.kpi import build_report
    from b24desk.store import open_db

    db = open_db(desk.db_path)
    try:
        return build_report(db, desk.member_id, period["from"], period["to"], **kw)["kpis"]["tickets_total"]["value"]
    finally:
        db.conn.close()


def test_builder_create_preview_save_share_open_as_agent_delete(env):
    d, desk = env["driver"], env["desk"]
    agent = next(a for a, dep in desk.agents.items() if dep == 2)
    launch(d, env, desk.admin, "ru")
    go(d, "nav-saved")
    assert d.find_elements(By.ID, "no-reports")
    shot(d, "saved-list-empty-1000-ru.png")
    go(d, "new-report")
    n = wait_preview(d)
    assert no_overflow(d)
    # the preview follows the form: a breakdown by priority
    Select(d.find_element(By.ID, "b-group_by")).select_by_value("priority")
    n = wait_preview(d, n)
    period = d.execute_script("return window.b24saved.lastPreview.period")
    rows = d.find_elements(By.CSS_SELECTOR, "#preview tbody tr")
    assert len(rows) >= 2
    want = engine_total(desk, period)
    assert total_cell(d).replace("\u202f", "") == str(want)
    d.find_element(By.ID, "b-name").send_keys("Первая линия по приоритетам")
    d.find_element(By.CSS_SELECTOR, f"input[name='share_users'][value='{agent}']").click()
    n = wait_preview(d, n)
    shot(d, "saved-builder-1000-ru.png")
    d.execute_script("document.getElementById('preview-panel').scrollIntoView()")
    shot(d, "saved-builder-preview-1000-ru.png", top=False)
    assert no_alert(d)
    go(d, "b-save")
    assert "/reports/saved/r" in d.execute_script("return location.pathname")
    assert d.find_element(By.ID, "report-name").text == "Первая линия по приоритетам"
    assert total_cell(d, "#report-table").replace("\u202f", "") == str(want)
    assert no_overflow(d)
    shot(d, "saved-report-1000-ru.png")
    report_path = d.execute_script("return location.pathname")

    # the agent it is shared with: in their list, and only their own tickets inside
    launch(d, env, agent, "en")
    go(d, "nav-saved")
    links = d.find_elements(By.CSS_SELECTOR, "#reports a.sr-name")
    assert [a.text for a in links] == ["Первая линия по приоритетам"]
    assert not d.find_elements(By.ID, "new-report")
    shot(d, "saved-list-agent-1000-en.png")
    body = d.find_element(By.TAG_NAME, "body")
    links[0].click()
    WebDriverWait(d, WAIT).until(EC.staleness_of(body))
    ready(d)
    assert d.find_element(By.ID, "slice-note").is_displayed()
    assert not d.find_elements(By.ID, "delete-report") and not d.find_elements(By.ID, "edit-report")
    own = engine_total(desk, period, filters={"agent": str(agent)})
    assert total_cell(d, "#report-table").replace("\u202f", "").replace(",", "") == str(own)
    assert own < want
    shot(d, "saved-report-agent-1000-en.png")

    # a head of another department does not see it
    other_head = next(h for dep, h in desk.heads.items() if dep != 2 and h not in (desk.admin,))
    launch(d, env, other_head, "en")
    go(d, "nav-saved")
    assert not d.find_elements(By.CSS_SELECTOR, "#reports a.sr-name")

    # the admin deletes it
    launch(d, env, desk.admin, "en", width=1400)
    go(d, "nav-saved")
    assert len(d.find_elements(By.CSS_SELECTOR, "#reports a.sr-name")) == 1
    shot(d, "saved-list-1400-en.png")
    body = d.find_element(By.TAG_NAME, "body")
    d.find_element(By.CSS_SELECTOR, "#reports a.sr-name").click()
    WebDriverWait(d, WAIT).until(EC.staleness_of(body))
    ready(d)
    assert d.execute_script("return location.pathname") == report_path
    shot(d, "saved-report-1400-en.png")
    body = d.find_element(By.TAG_NAME, "body")
    d.find_element(By.ID, "delete-report").click()
    WebDriverWait(d, WAIT).until(EC.alert_is_present()).accept()
    WebDriverWait(d, WAIT).until(EC.staleness_of(body))
    ready(d)
    assert "/reports/saved" == d.execute_script("return location.pathname")
    assert d.find_elements(By.ID, "no-reports")


def test_builder_and_report_views_in_both_languages_and_widths(env):
    """Screenshots to LOOK at: a per-agent report with charts, problem zones and the long-term view."""
    d, desk = env["driver"], env["desk"]
    for lang, width in (("en", 1000), ("ru", 1400), ("en", 1400), ("ru", 1000)):
        launch(d, env, desk.admin, lang, width=width)
        go(d, "nav-saved")
        go(d, "new-report")
        wait_preview(d)
        shot(d, f"saved-builder-{width}-{lang}.png")
        assert no_overflow(d)
    # a bar chart per agent, compared with the same period a year earlier
    d.find_element(By.ID, "b-name").send_keys("Agents, bars")
    Select(d.find_element(By.ID, "b-chart")).select_by_value("bar")
    Select(d.find_element(By.ID, "b-preset")).select_by_value("fixed")
    d.execute_script(
        "document.getElementById('b-from').value=arguments[0];"
        "document.getElementById('b-to').value=arguments[1];"
        "document.getElementById('b-from').dispatchEvent(new Event('change', {bubbles: true}));",
        desk.date_from,
        desk.date_to,
    )
    go(d, "b-save")
    assert d.execute_script("return document.querySelectorAll('canvas').length") >= 3
    assert no_overflow(d)
    shot(d, "saved-report-bars-1000-ru.png")
    link = d.find_elements(By.CSS_SELECTOR, "#long-term .sr-links a")[0]
    body = d.find_element(By.TAG_NAME, "body")
    link.click()
    WebDriverWait(d, WAIT).until(EC.staleness_of(body))
    ready(d)
    assert len(d.find_elements(By.CSS_SELECTOR, "#long-table tbody tr")) == 24
    d.execute_script("document.getElementById('long-term').scrollIntoView()")
    shot(d, "saved-report-long-1000-ru.png", top=False)
    # the heatmap view of a report edited into one
    go(d, "edit-report")
    Select(d.find_element(By.ID, "b-chart")).select_by_value("heatmap")
    wait_preview(d)
    go(d, "b-save")
    assert len(d.find_elements(By.CSS_SELECTOR, "#heatmap tbody tr")) == 7
    shot(d, "saved-report-heatmap-1000-ru.png")


def test_head_builds_only_inside_their_departments(env):
    d, desk = env["driver"], env["desk"]
    dep, head = next((dep, h) for dep, h in desk.heads.items() if dep == 2)
    launch(d, env, head, "ru")
    go(d, "nav-saved")
    go(d, "new-report")
    wait_preview(d)
    offered = [e.get_attribute("value") for e in d.find_elements(By.CSS_SELECTOR, "input[name='share_departments']")]
    assert offered and "1" not in offered and str(dep) in offered
    # the preview is the head's departments only
    assert d.execute_script("return window.b24saved.lastPreview.table.rows.length") >= 1
    shot(d, "saved-builder-head-1000-ru.png")
    d.find_element(By.ID, "b-name").send_keys("Моя линия")
    go(d, "b-save")
    assert d.find_element(By.ID, "slice-note").is_displayed()
    assert d.find_element(By.ID, "edit-report").is_displayed()
    shot(d, "saved-report-head-1000-ru.png")


def test_pin_puts_the_report_on_the_dashboard_of_its_audience(env):
    d, desk = env["driver"], env["desk"]
    agent = next(a for a, dep in desk.agents.items() if dep == 2)
    launch(d, env, desk.admin, "ru")
    go(d, "nav-saved")
    go(d, "new-report")
    wait_preview(d)
    d.find_element(By.ID, "b-name").send_keys("На дашборд")
    d.find_element(By.CSS_SELECTOR, "input[name='share_roles'][value='agent']").click()
    go(d, "b-save")
    d.find_element(By.ID, "pin").click()
    WebDriverWait(d, WAIT).until(lambda x: x.find_element(By.ID, "controls-state").text != "")
    Select(d.find_element(By.ID, "digest")).select_by_value("weekly")
    WebDriverWait(d, WAIT).until(
        lambda x: x.execute_script("return document.getElementById('digest').value") == "weekly"
    )
    launch(d, env, agent, "ru")  # lands on the dashboard
    panel = WebDriverWait(d, WAIT).until(EC.presence_of_element_located((By.ID, "pinned-reports")))
    assert "На дашборд" in panel.text
    d.execute_script("document.getElementById('pinned-reports').scrollIntoView()")
    shot(d, "dashboard-pinned-1000-ru.png", top=False)
    # the digest choice was stored
    from b24desk import saved_reports as store
    from b24desk.store import open_db

    db = open_db(desk.db_path)
    try:
        assert [r["name"] for r in store.digest_reports(db, desk.member_id, "weekly")] == ["На дашборд"]
    finally:
        db.conn.close()
