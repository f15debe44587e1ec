"""KPI alerts end to end against the portal double: green -> red -> red -> green gives one red
alert and one "back to green" note per subject, to the right head, naming the KPI, its value and
target; alerts survive a 503 storm without being lost or doubled."""

from __future__ import annotations

from collections import Counter

import pytest
from push_helpers import CONFIG, FAST, setup  # noqa: F401  (setup is a fixture)

from b24desk.kpi.drilldown import Replay
from b24desk.kpi.periods import zone
from b24desk.kpi.report import build_report
from b24desk.push import data as dg
from b24desk.push import sentlog
from b24desk.push.alerts import run_alerts, window
from b24desk.store import open_db, set_setting
from b24desk.text.i18n import kpi_label
from b24desk.text.present import fmt_value

TZ = zone("Europe/Moscow")
KPI = "first_response_time"


@pytest.fixture
def alerts(setup, tmp_path):
    st = setup.reset()
    path = setup.store(tmp_path)
    db = open_db(path)
    reader, writer = setup.clients(path)
    set_setting(db, setup.portal, dg.PUSH_SETTING, {"alerts": {"kpis": [KPI], "window_days": 14}})

    def target(seconds):
        set_setting(db, setup.portal, "targets", {"portal": {KPI: {"target": seconds, "min_n": 1}}})

    def run():
        before = len(st.calls("im.notify.system.add"))
        out = run_alerts(
            db, setup.portal, reader=reader, writer=writer, config=CONFIG, now=setup.double.now, deliverer_opts=FAST
        )
        assert all(o.ok for o in out), [(o.key, o.error) for o in out]
        return st.calls("im.notify.system.add")[before:]

    run.db, run.st, run.target = db, st, target
    yield run
    db.conn.close()


def heads(setup) -> dict:
    return {str(d["ID"]): d["UF_HEAD"] for d in setup.double.portal.departments}


def expected_recipient(setup, level: str, subject: str) -> int:
    users, h = setup.double.portal.users, heads(setup)
    parents = {str(d["ID"]): str(d["PARENT"]) if d["PARENT"] else None for d in setup.double.portal.departments}
    if level == "portal":
        return 1
    if level == "department":
        return h[subject]
    dep = str(users[int(subject)]["UF_DEPARTMENT"][0])
    head = h.get(dep)
    if head == int(subject):
        head = h.get(parents[dep])
    return head or 1


def test_green_red_red_green(setup, alerts):
    alerts.target(10**9)
    assert alerts() == []  # green, never alerted: silent
    alerts.target(1)
    red = alerts()
    subjects = Counter(c["params"]["TAG"] for c in red)
    assert red and all(v == 1 for v in subjects.values())
    levels = {tag.split(":")[2] for tag in subjects}
    assert levels == {"portal", "department", "agent"}
    for c in red:
        _, _, level, subject, kpi = c["params"]["TAG"].split(":")
        assert kpi == KPI
        assert c["params"]["USER_ID"] == expected_recipient(setup, level, subject), c["params"]["TAG"]
        assert kpi_label(KPI, "ru") in c["params"]["MESSAGE"] and "цель 1\u00a0с" in c["params"]["MESSAGE"]
    # the portal's alert carries the engine's value for the window
    period = window(setup.double.now, 14, TZ)
    rep = build_report(alerts.db, setup.portal, period.start, period.end, config=CONFIG)
    portal_alert = next(c for c in red if ":portal:" in c["params"]["TAG"])
    assert f"[B]{fmt_value(KPI, rep['kpis'][KPI]['value'], 'ru')}[/B]" in portal_alert["params"]["MESSAGE"]
    assert portal_alert["params"]["MESSAGE"].startswith("🔴")
    # ... and names the tickets behind it, slowest first (the engine's drill-down), linked into the portal
    members = Replay(alerts.db, setup.portal, period.start, period.end, config=CONFIG).members(KPI)
    slowest = sorted(members, key=lambda r: -r["value"])[:5]
    text = portal_alert["params"]["MESSAGE"]
    assert "Заявки за показателем:" in text
    positions = [text.index(f"]#{r['source_id']} ") for r in slowest]
    assert positions == sorted(positions)
    assert f"[URL=https://{setup.double.domain}/" in text

    assert alerts() == []  # still red: no repeat
    alerts.target(10**9)
    green = alerts()
    assert Counter(c["params"]["TAG"] for c in green) == subjects  # one note per alerted subject
    assert all(c["params"]["MESSAGE"].startswith("🟢") and "снова в норме" in c["params"]["MESSAGE"] for c in green)
    assert alerts() == []  # green stays silent
    # the note replaced the alert: each head sees one notification per subject, the green one
    visible = alerts.st.visible_notifications()
    assert Counter(n["TAG"] for n in visible) == subjects
    assert all(n["MESSAGE"].startswith("🟢") for n in visible)


def test_enabling_alerts_on_a_red_portal_sends_nothing(setup, alerts):
    alerts.target(1)
    assert alerts() == []  # the first evaluation is a baseline
    assert alerts() == []  # still red: nothing to announce


def test_an_alert_outlives_a_503_storm(setup, alerts):
    alerts.target(10**9)
    assert alerts() == []  # the baseline: green
    alerts.target(1)
    setup.double.faults.fail_next(10_000, method="im.notify.system.add")
    reader, writer = setup.clients(alerts.db.conn.execute("pragma database_list").fetchone()[2])
    out = run_alerts(
        alerts.db, setup.portal, reader=reader, writer=writer, config=CONFIG, now=setup.double.now, deliverer_opts=FAST
    )
    assert out and all(o.state == "failed" for o in out)
    assert alerts.st.visible_notifications() == []
    planned = {o.key for o in out}
    setup.double.faults.clear()
    delivered = alerts()  # state is red already: only the resume
    assert len(delivered) == len(planned)
    tags = Counter(c["params"]["TAG"] for c in delivered)
    assert tags == Counter(f"b24desk:alert:{k.period.split('#')[0]}" for k in planned)
    assert all(v == 1 for v in tags.values())
    assert alerts() == []
    rows = sentlog.entries(alerts.db, setup.portal, "alert")
    assert len(rows) == len(planned) and all(r["state"] == sentlog.SENT for r in rows)


def test_portal_alerts_go_to_the_chosen_alert_recipients(setup, alerts):
    """``push.alerts.recipients`` (the settings page's picker) hears portal-wide alerts instead of
    the digest's recipients; department and agent alerts still go to the heads."""
    users = sorted(u for u, d in setup.double.portal.users.items() if d["ACTIVE"] and u != 1)[:2]
    set_setting(
        alerts.db,
        setup.portal,
        dg.PUSH_SETTING,
        {
            "portal_recipients": ["1"],
            "alerts": {"kpis": [KPI], "window_days": 14, "recipients": [str(u) for u in users]},
        },
    )
    alerts.target(10**9)
    assert alerts() == []
    alerts.target(1)
    red = alerts()
    portal = [c["params"]["USER_ID"] for c in red if ":portal:" in c["params"]["TAG"]]
    assert sorted(portal) == users
    for c in red:
        _, _, level, subject, _ = c["params"]["TAG"].split(":")
        if level == "department":
            assert c["params"]["USER_ID"] == expected_recipient(setup, level, subject)
