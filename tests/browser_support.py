"""Headless Chromium for the browser tests (no tests here): the binaries, the CI rule, the driver,
and the app served inside a portal-like page that launches it into a frame.

Needs Debian's ``chromium`` and ``chromium-driver`` (``./dev test`` installs them); a test module
is skipped with a reason when they are absent, except under ``CI=true``, where their absence fails.
"""

from __future__ import annotations

import html
import os
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlencode

import pytest

CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
WAIT = 60  # generous: a cold dashboard computes several reports; no timing is asserted
BASE_ARGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage")


def require_chromium() -> None:
    """Skip the calling module (or test) without the browser; under CI=true fail instead."""
    if os.path.exists(CHROMIUM) and os.path.exists(DRIVER):
        return
    if os.environ.get("CI") == "true":
        raise RuntimeError(
            "CI=true but /usr/bin/chromium or /usr/bin/chromedriver is missing: "
            "install Debian's chromium and chromium-driver (./dev test does)"
        )
    pytest.skip(
        "needs /usr/bin/chromium and /usr/bin/chromedriver (apt-get install chromium chromium-driver)",
        allow_module_level=True,
    )


def chrome(*args: str):
    """A headless Chromium driver with the common flags plus ``args`` (window size, language...)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    opts.binary_location = CHROMIUM
    for a in BASE_ARGS + args:
        opts.add_argument(a)
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=opts)
    ARTIFACTS.mkdir(exist_ok=True)
    return driver


def portal_shell(desk, app_url: str):
    """The portal's page: its chrome, a frame, and the launch form posted into that frame."""
    from werkzeug.wrappers import Request, Response

    @Request.application
    def shell(request):
        user = int(request.args.get("user", desk.admin))
        placement = request.args.get("placement", "DEFAULT")
        options = request.args.get("options", "{}")
        form = desk.launch_form(user, placement=placement, options=options)
        query = urlencode(
            {"DOMAIN": request.host, "PROTOCOL": "0", "LANG": request.args.get("lang", "en"), "APP_SID": "demo"}
        )
        inputs = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(str(v))}">' for k, v in form.items()
        )
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


@contextmanager
def framed_app(desk, config: dict, *chrome_args: str, shell_app=portal_shell):
    """The app on ``desk``'s store, served beside a portal page (``shell_app``) whose host is the
    installation's domain, and a Chromium to open it; everything is stopped on exit."""
    from app import create_app
    from b24desk.store import open_db
    from portal_double import Served

    flask_app = create_app({"TESTING": True, "DB": desk.db_path, **config})
    app_srv = Served(flask_app)
    shell = Served(shell_app(desk, app_srv.url))
    db = open_db(desk.db_path)
    db.execute("update installations set domain = ? where member_id = ?", [shell.url.split("//")[1], desk.member_id])
    db.conn.commit()
    db.conn.close()
    driver = chrome(*chrome_args)
    try:
        yield {"desk": desk, "driver": driver, "shell": shell, "app": app_srv, "flask": flask_app}
    finally:
        driver.quit()
        for s in (shell, app_srv):
            s.stop()
        desk.double.stop()


def ready(d):
    """Wait until the page in the frame says it has drawn (body[data-ready=1])."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(d, WAIT).until(
        lambda x: x.execute_script("return document.body && document.body.getAttribute('data-ready')") == "1"
    )


def shot(driver, name):
    """A screenshot of the whole portal page into test-artifacts/, then back into the app's frame."""
    driver.switch_to.default_content()
    driver.save_screenshot(str(ARTIFACTS / name))
    driver.switch_to.frame("app")


def no_alert(driver):
    from selenium.common.exceptions import NoAlertPresentException

    try:
        driver.switch_to.alert
    except NoAlertPresentException:
        return True
    return False
