"""``flask demo`` as a new user runs it: a subprocess, one URL, the page in headless Chromium.

The KPI cards the admin sees inside the portal's frame must carry the numbers ``flask kpi`` gives
for the same store and period. A second run reuses the store (incremental sync), Ctrl-C (SIGINT)
stops everything it started.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from browser_support import chrome, require_chromium

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"


def _free_port_pair() -> int:
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        with socket.socket() as s2:
            try:
                s2.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair")


def _start_demo(tmp: Path, port: int, tickets: int = 1200, seed: int = 5) -> tuple[subprocess.Popen, str, list]:
    env = dict(os.environ, PYTHONUNBUFFERED="1", B24DESK_DB=str(tmp / "unused.db"))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "flask",
            "--app",
            "app",
            "demo",
            "--port",
            str(port),
            "--tickets",
            str(tickets),
            "--seed",
            str(seed),
            "--data-dir",
            str(tmp / "demo"),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines, deadline = [], time.time() + 240
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                break
            continue
        lines.append(line)
        m = re.search(r"Open: (http://\S+)", line)
        if m:
            return proc, m.group(1), lines
    proc.kill()
    raise AssertionError("the demo printed no URL:\n" + "".join(lines))


def _stop(proc: subprocess.Popen) -> tuple[int, str]:
    """Ctrl-C, as a user would; read what it prints meanwhile (a full pipe would block it)."""
    proc.send_signal(signal.SIGINT)
    try:
        out, _ = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        raise AssertionError("the demo did not stop on Ctrl-C:\n" + out)
    return proc.returncode, out


def _flask_kpi(db: Path, date_from: str, date_to: str) -> dict:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "flask",
            "--app",
            "app",
            "kpi",
            "--db",
            str(db),
            "--from",
            date_from,
            "--to",
            date_to,
            "--format",
            "json",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(out.stdout)


def _digits(text: str) -> int:
    return int(re.sub(r"\D", "", text))


@pytest.mark.browser
@pytest.mark.slow
def test_demo_shows_the_numbers_of_flask_kpi(tmp_path):
    require_chromium()
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    port = _free_port_pair()
    proc, url, lines = _start_demo(tmp_path, port)
    db = tmp_path / "demo" / "seed5-t1200.db"
    try:
        assert url.startswith(f"http://127.0.0.1:{port + 1}/")
        log = "".join(lines)
        assert "app installed" in log and "full sync" in log
        driver = chrome(
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1500,1600",
        )
        try:
            driver.get(url)
            WebDriverWait(driver, 120).until(EC.frame_to_be_available_and_switch_to_it((By.NAME, "app")))
            card = WebDriverWait(driver, 120).until(
                EC.presence_of_element_located((By.CSS_SELECTOR, '#cards .card[data-kpi="tickets_total"] .value'))
            )
            date_from = driver.find_element(By.CSS_SELECTOR, 'input[name="from"]').get_attribute("value")
            date_to = driver.find_element(By.CSS_SELECTOR, 'input[name="to"]').get_attribute("value")
            shown = {
                k: driver.find_element(By.CSS_SELECTOR, f'#cards .card[data-kpi="{k}"] .value').text
                for k in ("tickets_total", "resolved_count", "backlog")
            }
            assert card.text
            ARTIFACTS.mkdir(exist_ok=True)
            driver.switch_to.default_content()
            driver.save_screenshot(str(ARTIFACTS / "demo-admin.png"))
            # the viewer switcher: an agent sees the page too (launch verified for that user)
            driver.find_element(By.ID, "as-agent").click()
            WebDriverWait(driver, 120).until(EC.frame_to_be_available_and_switch_to_it((By.NAME, "app")))
            WebDriverWait(driver, 120).until(EC.presence_of_element_located((By.CSS_SELECTOR, "#cards .card")))
            driver.switch_to.default_content()
            driver.save_screenshot(str(ARTIFACTS / "demo-agent.png"))
            pushes = driver.find_element(By.ID, "pushes").text
        finally:
            driver.quit()
    finally:
        code, tail = _stop(proc)
    assert code == 0, "".join(lines) + tail

    # the page's "to" is the last day shown; flask kpi takes the half-open end, a day later
    from datetime import date, timedelta

    date_to = (date.fromisoformat(date_to) + timedelta(days=1)).isoformat()
    report = _flask_kpi(db, date_from, date_to)
    for key, text in shown.items():
        assert _digits(text) == report["kpis"][key]["value"], (key, text, report["kpis"][key])
    assert report["kpis"]["tickets_total"]["value"] > 0
    assert "weekly" in pushes.lower() or "еженедельн" in pushes.lower()

    # A second run reuses the store: no full sync, the same tickets.
    proc2, url2, lines2 = _start_demo(tmp_path, port)
    try:
        log2 = "".join(lines2)
        assert "incremental sync" in log2, log2
    finally:
        code2, tail2 = _stop(proc2)
        assert code2 == 0, log2 + tail2
    assert _flask_kpi(db, date_from, date_to)["kpis"]["tickets_total"] == report["kpis"]["tickets_total"]
