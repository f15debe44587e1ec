"""Scheduled pushes: what the server's scheduler runs after each reconcile sync (``after_sync``):
the digests that are due in the portal's time zone, once; alerts at most every ``every_minutes``;
and the server's job itself (reconcile, then push) against the double."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from push_helpers import CONFIG, FAST, setup  # noqa: F401  (setup is a fixture)

from app import create_app
from b24desk.kpi.periods import zone
from b24desk.push import data as dg
from b24desk.push import sentlog
from b24desk.push.digests import after_sync
from b24desk.runtime import Runtime
from b24desk.store import open_db, set_setting

TZ = zone("Europe/Moscow")
EVERYTHING_DUE = {
    "reports": {
        "daily": {"enabled": True, "time": "00:00"},
        "weekly": {"enabled": True, "weekday": 1, "time": "00:00"},
        "monthly": {"enabled": True, "day": 1, "time": "00:00"},
    },
    "channels": ["notify", "feed"],
    "alerts": {"kpis": ["first_response_time"], "every_minutes": 60, "window_days": 14},
}


def kinds(calls) -> Counter:
    return Counter(c["params"]["TAG"].split(":")[1] for c in calls)


def test_after_sync_pushes_what_is_due_once(setup, tmp_path):
    st = setup.reset()
    path = setup.store(tmp_path)
    db = open_db(path)
    set_setting(db, setup.portal, dg.PUSH_SETTING, EVERYTHING_DUE)
    set_setting(db, setup.portal, "targets", {"portal": {"first_response_time": {"target": 1, "min_n": 1}}})
    # noon of the double's day (portal zone): the next hour stays inside the same day, week and month
    day = datetime.fromtimestamp(setup.double.now, TZ).replace(hour=12, minute=0, second=0, microsecond=0)
    now = int(day.timestamp())
    clients = setup.clients(path)
    out = after_sync(path, setup.portal, config=CONFIG, now=now, clients=clients, deliverer_opts=FAST)
    assert out and all(o.ok for o in out), [(o.key, o.error) for o in out]
    notes = st.calls("im.notify.system.add")
    got = kinds(notes)
    assert got["daily"] >= 1 and got["weekly"] >= 1 and got["monthly"] >= 1
    assert {c["params"]["USER_ID"] for c in notes if c["params"]["TAG"].endswith(":portal")} == {1}
    # alerts: the first evaluation is a silent baseline (b24desk/push/states.py); the red KPI is recorded
    assert got["alert"] == 0
    assert db.execute("select count(*) from alert_state where portal = ?", [setup.portal]).fetchone()[0] >= 1
    periods = {o.key.report: o.key.period for o in out if o.key.report in dg.KINDS}
    assert periods == {k: dg.last_complete(k, now, TZ).label for k in dg.KINDS}
    posts = len(st.posts)
    # the next sync: nothing is due again, alerts wait for their interval
    again = after_sync(path, setup.portal, config=CONFIG, now=now + 600, clients=clients, deliverer_opts=FAST)
    assert again == [] and len(st.calls("im.notify.system.add")) == len(notes) and len(st.posts) == posts
    # an hour later the alerts are checked again: still red, so still silent
    later = after_sync(path, setup.portal, config=CONFIG, now=now + 3700, clients=clients, deliverer_opts=FAST)
    assert all(o.state == "already" for o in later) or later == []
    assert len(st.calls("im.notify.system.add")) == len(notes)
    runs = [r for r in sentlog.entries(db, setup.portal) if r["channel"] == "run"]
    assert {r["report"] for r in runs} == set(dg.KINDS) and all(r["state"] == sentlog.SENT for r in runs)
    db.conn.close()


def test_disabled_pushes_send_nothing(setup, tmp_path):
    st = setup.reset()
    path = setup.store(tmp_path)
    db = open_db(path)
    set_setting(db, setup.portal, dg.PUSH_SETTING, {**EVERYTHING_DUE, "enabled": False})
    assert after_sync(path, setup.portal, config=CONFIG, now=setup.double.now, clients=setup.clients(path)) == []
    assert st.records == []
    db.conn.close()


def test_the_servers_job_reconciles_then_pushes(setup, tmp_path):
    """Runtime.reconcile_and_push -- the job the APScheduler of the server process runs per portal."""
    st = setup.reset()
    path = setup.store(tmp_path)
    db = open_db(path)
    set_setting(db, setup.portal, dg.PUSH_SETTING, {**EVERYTHING_DUE, "alerts": {"enabled": False}})
    db.conn.close()
    d = setup.double
    app = create_app(
        {
            "TESTING": True,
            "DB": path,
            "SECRET_KEY": "x",
            "B24DESK": CONFIG,
            "CLIENT_ID": d.client_id,
            "CLIENT_SECRET": d.client_secret,
            "OAUTH_URL": d.oauth_token_url,
        }
    )
    runtime = Runtime(app, scheduler=False)
    result = runtime.reconcile_and_push(setup.portal)
    assert "sources" in result, result
    assert result["push"].get("sent", 0) == len(st.calls("im.notify.system.add")) + len(st.posts) > 0
    again = runtime.reconcile_and_push(setup.portal)
    assert again["push"] == {} and "sources" in again
