"""The capacity page in real headless Chromium at the portal frame's 1000 px and at 1400 px, in
Russian and English, as admin, head and agent: the heatmaps and staffing tables render, the
forecast chart draws, nothing is wider than the window, an agent gets the refusal page.
Screenshots go to ``test-artifacts/capacity-*.png``. Needs Debian's chromium + chromium-driver."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"

pytestmark = pytest.mark.browser

if not (os.path.exists(CHROMIUM) and os.path.exists(DRIVER)):
    if os.environ.get("CI") == "true":
        raise RuntimeError("CI=true but /usr/bin/chromium or /usr/bin/chromedriver is missing")
    pytest.skip("needs /usr/bin/chromium and /usr/bin/chromedriver", allow_module_level=True)

from openlines_support import END  # noqa: E402
from pages_support import installed_and_synced  # noqa: E402
from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402
from test_browser_dashboard import painted  # noqa: E402

from portal_double import Served  # noqa: E402

SECRET = "cap-browser"
SELECTORS = ["tasks", "deals", "openlines"]
FROM, TO = "2026-07-13", "2026-10-12"
WAIT = 60


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    from app import create_app
    from portal_double import PortalDouble

    tmp = tmp_path_factory.mktemp("capbrowser")
    d = PortalDouble(seed=23, tickets=900, months=6, drain_per_s=1e6, bucket_size=10**6, end=END, openlines=900).start()
    db = str(tmp / "store.db")
    installed_and_synced(d, db, SELECTORS)
    cfg = tmp / "b24desk.toml"
    cfg.write_text("sources = " + json.dumps(SELECTORS) + "\n", encoding="utf-8")
    mp = pytest.MonkeyPatch()
    mp.setenv("B24DESK_CONFIG", str(cfg))
    srv = Served(create_app({"TESTING": True, "DB": db, "SECRET_KEY": SECRET}))
    opts = Options()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        opts.add_argument(a)
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=opts)
    ARTIFACTS.mkdir(exist_ok=True)
    yield {"double": d, "srv": srv, "driver": driver, "db": db}
    driver.quit()
    srv.stop()
    d.stop()
    mp.undo()


def _url(env, role, lang):
    from viewer_tokens import trusted_token

    from b24desk.viewer import Viewer

    d = env["double"]
    kw = {}
    if role == "head":
        dep, head = sorted(d.desk.heads.items())[0]
        kw = dict(user_id=str(head), headed=(str(dep),), tree=(str(dep),), departments=(str(dep),))
    elif role == "agent":
        kw = dict(user_id="12", departments=("2",))
    v = Viewer(
        portal=d.member_id,
        role=role,
        lang=lang,
        name={"admin": "Анна Админ", "head": "Ирина Руководитель", "agent": "Пётр Агент"}[role],
        **({"user_id": "1"} | kw),
    )
    return f"{env['srv'].url}/reports/capacity?t={trusted_token(env['db'], v, SECRET)}&from={FROM}&to={TO}"


def _full_shot(driver, width, name):
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(width, min(max(height + 120, 800), 4000))
    driver.save_screenshot(str(ARTIFACTS / name))


@pytest.mark.parametrize("width", [1000, 1400])
@pytest.mark.parametrize("lang", ["ru", "en"])
@pytest.mark.parametrize("role", ["admin", "head"])
def test_capacity_page_renders(env, role, lang, width):
    d = env["driver"]
    d.set_window_size(width, 1000)
    d.get(_url(env, role, lang))
    WebDriverWait(d, WAIT).until(lambda x: x.execute_script("return !!window.b24capacity"))
    assert d.execute_script("return document.body.getAttribute('data-page')") == "capacity"
    assert painted(d, "chart-forecast") > 500
    assert len(d.find_elements(By.CSS_SELECTOR, "#heat-arrivals table.heat tbody tr")) == 7
    assert len(d.find_elements(By.CSS_SELECTOR, "#heat-arrivals table.heat tbody td")) == 168
    assert d.find_elements(By.CSS_SELECTOR, "#staffing-chat table.heat.staff td")
    assert len(d.find_elements(By.CSS_SELECTOR, "#staffing-tickets table.data tbody tr")) == 7
    assert len(d.find_elements(By.CSS_SELECTOR, "#forecast-table thead th")) == 5  # label + 4 weeks
    # nothing wider than the window (the portal's frame is 1000 px)
    assert d.execute_script("return document.documentElement.scrollWidth") <= width
    nav = d.find_element(By.ID, "nav-capacity")
    assert nav.text == ("Нагрузка и штат" if lang == "ru" else "Capacity")
    text = d.find_element(By.TAG_NAME, "body").text
    assert ("Обращений в час" in text) if lang == "ru" else ("Tickets created per hour" in text)
    depts = Select(d.find_element(By.ID, "f-department"))
    if role == "head":
        assert len(depts.options) == 1  # their department only, no "whole portal"
    else:
        assert depts.options[0].get_attribute("value") == ""
    _full_shot(d, width, f"capacity-{role}-{lang}-{width}.png")


def test_filter_reloads_with_the_source(env):
    d = env["driver"]
    d.set_window_size(1400, 1000)
    d.get(_url(env, "admin", "en"))
    WebDriverWait(d, WAIT).until(lambda x: x.execute_script("return !!window.b24capacity"))
    Select(d.find_element(By.ID, "f-source")).select_by_value("tasks")
    d.find_element(By.ID, "apply").click()
    WebDriverWait(d, WAIT).until(
        lambda x: "source=tasks" in x.current_url and x.execute_script("return !!window.b24capacity")
    )
    assert "The selection holds no open-line chats." in d.find_element(By.ID, "staffing-chat").text


@pytest.mark.parametrize("lang", ["ru", "en"])
def test_agent_gets_the_refusal_page(env, lang):
    d = env["driver"]
    d.set_window_size(1000, 800)
    d.get(_url(env, "agent", lang))
    body = d.find_element(By.TAG_NAME, "body").text
    # the error page words a refusal in the viewer's language (its generic line for Russian readers)
    assert ("Нет доступа" in body or "руководителям" in body) if lang == "ru" else ("heads and admins" in body)
    d.save_screenshot(str(ARTIFACTS / f"capacity-agent-{lang}-1000.png"))
