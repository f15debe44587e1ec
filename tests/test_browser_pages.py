"""The dashboard as each role sees it, in real headless Chromium, at the portal frame's width
(1000 px) and at 1400 px, in Russian and English (issue 14).

For every width x language x role: the page does not overflow sideways (tables scroll inside their
panels), shows no raw key in its text or in the drilldown, the "now" panel is there, a one-day
period and a preset work through the form, and a drilldown opened from a table (a card for an
agent, who has no tables) is placed in view of the portal page. Screenshots go to
``test-artifacts/`` as ``pages-<role>-<lang>-<width>*.png``. Store: the demo's sources (tasks,
deals, a smart process, open lines) synced from the double.
"""

from __future__ import annotations

import html
from datetime import datetime, timedelta
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pytest
from browser_support import ARTIFACTS, WAIT, framed_app, no_alert, ready, require_chromium, shot

pytestmark = pytest.mark.browser
require_chromium()

from pages_support import build_desk  # noqa: E402
from selenium.common.exceptions import TimeoutException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402
from test_pages_words import DEMO_SOURCES, offenders, people_names  # noqa: E402
from werkzeug.wrappers import Request, Response  # noqa: E402

WIDTHS = (1000, 1400)


def shell_app(desk, app_url: str):
    """The portal's page with the app's frame exactly ``width`` px wide (the portal's frame)."""

    @Request.application
    def shell(request):
        user = int(request.args.get("user", desk.admin))
        width = int(request.args.get("width", 1000))
        form = desk.launch_form(user)
        query = urlencode(
            {"DOMAIN": request.host, "PROTOCOL": "0", "LANG": request.args.get("lang", "en"), "APP_SID": "demo"}
        )
        inputs = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(str(v))}">' for k, v in form.items()
        )
        page = f"""<!doctype html><html><head><meta charset="utf-8"><title>Bitrix24</title>
<style>body{{margin:0;background:#eef2f4;font-family:"Open Sans",Arial,sans-serif}}
header{{height:52px;background:#2fc6f6;color:#fff;font-size:20px;line-height:52px;padding:0 24px}}
main{{margin:16px 0 16px 24px}} iframe{{width:{width}px;height:5200px;border:0;background:#fff;border-radius:12px}}</style>
</head><body><header>Bitrix24</header><main>
<form id="launch" method="post" target="app" action="{app_url}/app?{query}">{inputs}</form>
<iframe name="app" id="app"></iframe></main>
<script>document.getElementById("launch").submit();</script></body></html>"""
        return Response(page, content_type="text/html; charset=utf-8")

    return shell


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    desk = build_desk(
        tmp_path_factory.mktemp("browser-pages"), tickets=260, seed=17, sources=DEMO_SOURCES, openlines=40
    )
    with framed_app(
        desk,
        {"SECRET_KEY": "pages-browser"},
        "--window-size=1500,1000",
        "--lang=en-US",
        "--hide-scrollbars",
        shell_app=shell_app,
    ) as e:
        yield {**e, "allow": people_names(desk)}


def roles(desk):
    head = next(iter(desk.heads.values()))
    agent = next(a for a, dep in desk.agents.items() if dep == 2)
    return {"admin": desk.admin, "head": head, "agent": agent}


def reload_after(d, action):
    body = d.find_element(By.TAG_NAME, "body")
    action()
    WebDriverWait(d, WAIT).until(EC.staleness_of(body))
    ready(d)


def open_frame(env, user, lang, width):
    d = env["driver"]
    d.set_window_size(width + 80, 1000)
    d.switch_to.default_content()
    d.get(f"{env['shell'].url}/?user={user}&lang={lang}&width={width}")
    WebDriverWait(d, WAIT).until(EC.frame_to_be_available_and_switch_to_it("app"))
    ready(d)
    return d


def overflow(d) -> int:
    """How far the page is wider than the frame (0 = no horizontal scroll)."""
    return d.execute_script("var e = document.documentElement; return e.scrollWidth - e.clientWidth;")


def in_view(d, element) -> bool:
    """The element's top lies within the portal window's visible part (frame offset included)."""
    top = d.execute_script("return arguments[0].getBoundingClientRect().top;", element)
    d.switch_to.default_content()
    frame_top = d.execute_script("return document.getElementById('app').getBoundingClientRect().top;")
    height = d.execute_script("return window.innerHeight;")
    d.switch_to.frame("app")
    return 0 <= frame_top + top < height


def scroll_to(d, element, offset=300):
    """Scroll the portal page (the frame is as tall as the app) so ``element`` sits ``offset`` px down."""
    top = d.execute_script("return arguments[0].getBoundingClientRect().top;", element)
    d.switch_to.default_content()
    d.execute_script(
        "window.scrollTo(0, document.getElementById('app').getBoundingClientRect().top + window.scrollY"
        " + arguments[0] - arguments[1]);",
        top,
        offset,
    )
    d.switch_to.frame("app")


def texts_ok(env, d, lang):
    text = d.execute_script("return document.body.innerText;")
    bad = offenders(text, lang, env["allow"])
    assert not bad, bad


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("lang", ["ru", "en"])
@pytest.mark.parametrize("role", ["admin", "head", "agent"])
def test_dashboard_at_frame_widths(env, role, lang, width):
    desk = env["desk"]
    d = open_frame(env, roles(desk)[role], lang, width)
    tag = f"pages-{role}-{lang}-{width}"
    assert d.execute_script("return document.documentElement.clientWidth") == width
    assert overflow(d) <= 0, "the page is wider than the frame"
    assert len(d.find_elements(By.CSS_SELECTOR, "#now .now-item")) == 5
    assert d.find_elements(By.CSS_SELECTOR, ".card.big")
    assert d.find_elements(By.CSS_SELECTOR, '.card[data-kpi="first_response_time"] .stats')
    texts_ok(env, d, lang)
    shot(d, f"{tag}.png")

    # a preset through the form: the URL keeps it, the period label follows
    reload_after(d, lambda: Select(d.find_element(By.ID, "f-preset")).select_by_value("last_7_days"))
    assert "preset=last_7_days" in d.execute_script("return location.search")
    tz = ZoneInfo("Europe/Moscow")
    today = datetime.now(tz).date()
    first = today - timedelta(days=6)
    assert d.find_element(By.ID, "f-from").get_attribute("value") == first.isoformat()
    assert d.find_element(By.ID, "f-to").get_attribute("value") == today.isoformat()
    assert overflow(d) <= 0
    texts_ok(env, d, lang)

    # one day (from = to) through the date fields
    day = (today - timedelta(days=2)).isoformat()
    reload_after(
        d,
        lambda: d.execute_script(
            "var f=document.getElementById('filters'); document.getElementById('f-preset').value='';"
            "f.elements['from'].value=arguments[0]; f.elements['to'].value=arguments[0]; f.requestSubmit();",
            day,
        ),
    )
    label = d.find_element(By.ID, "period-label").text
    assert "—" not in label and label.replace(" ", "") != ""
    assert f"from={day}&to={day}" in d.execute_script("return location.search")
    assert overflow(d) <= 0
    shot(d, f"{tag}-one-day.png")

    # back to a wide period, then a drilldown from a table (a card for an agent) placed in view
    reload_after(d, lambda: Select(d.find_element(By.ID, "f-preset")).select_by_value("last_quarter"))
    if role == "agent":
        target = d.find_element(By.CSS_SELECTOR, '.card.drill[data-kpi="resolved_count"]')
    else:
        target = d.find_element(By.CSS_SELECTOR, "#table-agent td.drill")
    scroll_to(d, target)
    target.click()
    WebDriverWait(d, WAIT).until(lambda x: x.find_elements(By.CSS_SELECTOR, "#drill-rows tr"))
    dialog = d.find_element(By.CSS_SELECTOR, "#drill .dialog")
    assert in_view(d, dialog), "the drilldown opened outside what the user sees"
    assert overflow(d) <= 0
    values = [c.text for c in d.find_elements(By.CSS_SELECTOR, "#drill-rows tr td:last-child")]
    assert values and all(v.strip() for v in values), "every row shows the value behind it"
    texts_ok(env, d, lang)
    assert no_alert(d)
    d.switch_to.default_content()
    d.save_screenshot(str(ARTIFACTS / f"{tag}-drilldown.png"))
    d.switch_to.frame("app")
    d.find_element(By.ID, "drill-close").click()


def test_dashboard_in_a_narrow_frame_and_its_pickers_open_inside_it(env):
    """A frame of 400 px (the portal's side panel, a small window): the page is no wider than the
    frame (the two-column chart rows fold to one; a closed picker's popup takes no room), and every
    filter picker opens inside the frame, leftwards when it sits near the right edge."""
    d = open_frame(env, roles(env["desk"])["admin"], "ru", 400)
    assert overflow(d) <= 0, "the page is wider than the frame"
    pickers = d.find_elements(By.CSS_SELECTOR, ".fpicker")
    assert len(pickers) >= 2
    for i in range(len(pickers)):
        summary = d.find_elements(By.CSS_SELECTOR, ".fpicker summary")[i]
        d.execute_script("arguments[0].scrollIntoView({block: 'center'});", summary)
        summary.click()
        placed = []  # the picker is placed by its "toggle" handler, which the browser runs a moment later

        def inside(x):
            placed[:] = x.execute_script(
                "var p = document.querySelector('.fpicker[open] .pk-pop'); if (!p) { return null; }"
                " var r = p.getBoundingClientRect(); return [r.left, r.right, document.documentElement.clientWidth];"
            ) or [None, None, None]
            return placed[0] is not None and 0 <= placed[0] and placed[1] <= placed[2]

        try:
            WebDriverWait(d, WAIT).until(inside)
        except TimeoutException:
            pytest.fail(f"picker {i} opens outside the frame: left, right, frame width = {placed}")
        assert overflow(d) <= 0
        summary.click()
    shot(d, "pages-admin-ru-400.png")


def test_now_panel_drills_into_open_tickets(env):
    desk = env["desk"]
    d = open_frame(env, desk.admin, "ru", 1000)
    item = d.find_element(By.CSS_SELECTOR, '#now .now-item[data-now="open"]')
    n = int("".join(item.find_element(By.CLASS_NAME, "value").text.split()))
    assert n > 0
    item.click()
    WebDriverWait(d, WAIT).until(lambda x: x.find_elements(By.CSS_SELECTOR, "#drill-rows tr"))
    note = d.find_element(By.ID, "drill-note").text
    assert note.endswith(f"/ {n}")
    assert in_view(d, d.find_element(By.CSS_SELECTOR, "#drill .dialog"))
    texts_ok(env, d, "ru")
    shot(d, "pages-now-drilldown.png")
    d.find_element(By.ID, "drill-close").click()
    # every KPI's "i" tells its one-line definition
    from b24desk.labels import kpi_definition

    info = d.find_element(By.CSS_SELECTOR, '.card[data-kpi="fcr_share"] .info')
    scroll_to(d, info)
    info.click()
    pop = WebDriverWait(d, WAIT).until(lambda x: x.find_element(By.ID, "info-pop"))
    assert pop.text == kpi_definition("fcr_share", "ru")
    assert in_view(d, pop)
    shot(d, "pages-kpi-definition.png")
    assert all(i.get_attribute("data-info") for i in d.find_elements(By.CSS_SELECTOR, ".card .info"))


def test_tables_sort_and_scroll_inside_their_panel(env):
    desk = env["desk"]
    d = open_frame(env, desk.admin, "en", 1000)
    reload_after(d, lambda: Select(d.find_element(By.ID, "f-preset")).select_by_value("last_quarter"))
    table = d.find_element(By.CSS_SELECTOR, "#table-agent table")
    box = d.find_element(By.CSS_SELECTOR, "#table-agent .table-scroll")
    assert d.execute_script("return arguments[0].scrollWidth > arguments[0].clientWidth", box)  # it scrolls ...
    assert overflow(d) <= 0  # ... the page does not
    assert (
        d.execute_script(
            "return getComputedStyle(arguments[0]).position", table.find_element(By.CSS_SELECTOR, "td.first")
        )
        == "sticky"
    )
    scroll_to(d, d.find_element(By.ID, "chart-trend-volume"), 80)
    shot(d, "pages-charts-1000.png")
    scroll_to(d, d.find_element(By.ID, "table-agent"), 80)
    shot(d, "pages-tables-1000.png")
    head = table.find_element(By.CSS_SELECTOR, 'th[data-col="1"]')
    head.click()
    vals = [
        float(x.get_attribute("data-sort") or "nan")
        for x in table.find_elements(By.CSS_SELECTOR, "tbody tr td:nth-child(2)")
    ]
    assert vals == sorted(vals)
    head.click()
    vals = [
        float(x.get_attribute("data-sort") or "nan")
        for x in table.find_elements(By.CSS_SELECTOR, "tbody tr td:nth-child(2)")
    ]
    assert vals == sorted(vals, reverse=True)
    # the agent picker: searchable, several at once
    d.find_element(By.CSS_SELECTOR, "#picker-agent summary").click()
    items = d.find_elements(By.CSS_SELECTOR, "#picker-agent .pk-item")
    assert 0 < len(items) < 60  # agents who acted, not every requester
    first_name = items[0].text.strip()
    d.find_element(By.CSS_SELECTOR, "#picker-agent .pk-search").send_keys(first_name[:4])
    shown = [i for i in items if i.is_displayed()]
    assert shown and all(first_name[:4].lower() in i.text.lower() for i in shown)
    shot(d, "pages-agent-picker.png")
