"""A saved report added to a digest goes out with the portal's digest of that kind, against the
portal double over real HTTP, carrying the engine's numbers for the digest's period."""

from __future__ import annotations

from push_helpers import CONFIG, label, setup  # noqa: F401  (setup is a fixture)
from test_push import TZ, run  # noqa: F401  (run is a fixture)

from b24desk import saved_reports as store
from b24desk.kpi import build_report
from b24desk.push import data as dg
from b24desk.text.i18n import kpi_label
from b24desk.text.present import fmt_value
from b24desk.viewer import ADMIN, Viewer


def test_saved_report_rides_with_the_weekly_digest(setup, run):
    admin = Viewer(portal=setup.portal, user_id="1", role=ADMIN, lang="ru")
    d = store.create(
        run.db,
        admin,
        {
            "name": "Высокий приоритет",
            "kpis": ["tickets_total", "resolved_count"],
            "filters": {"priority": ["high", "critical"]},
            "group_by": "agent",
        },
    )
    other = store.create(run.db, admin, {"name": "Не в рассылке", "kpis": ["backlog"]})
    store.set_digest(run.db, admin, d["id"], "weekly")
    week = label("weekly", setup.double.now, TZ)
    outcomes = run("weekly", week, channels=["notify"])
    assert outcomes and all(o.state == "sent" for o in outcomes)
    note = next(
        c["params"]
        for c in setup.double.portal.push_state.calls("im.notify.system.add")
        if c["params"]["TAG"].endswith(":portal")
    )
    period = dg.parse_period("weekly", week, TZ)
    truth = build_report(
        run.db, setup.portal, period.start, period.end, filters={"priority": ["high", "critical"]}, config=CONFIG
    )
    line = next(x for x in note["MESSAGE"].split("\n") if "Высокий приоритет" in x)
    for key in ("tickets_total", "resolved_count"):
        assert f"{kpi_label(key, 'ru')}: {fmt_value(key, truth['kpis'][key]['value'], 'ru')}" in line
    assert other["name"] not in note["MESSAGE"]
    # department digests do not repeat it; taking it out of the digest stops it
    store.set_digest(run.db, admin, d["id"], None)
    assert store.digest_reports(run.db, setup.portal, "weekly") == []
