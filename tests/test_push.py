"""Pushing digests end to end against the portal double over real HTTP: what the portal received
(methods, recipients, the numbers in the text, an XLSX holding the same numbers as `flask kpi`),
repeat runs, TAG replacement, dry runs and bad input."""

from __future__ import annotations

import base64
import io
import json

import openpyxl
import pytest
from push_helpers import CONFIG, FAST, label, setup  # noqa: F401  (setup is a fixture)

from app import create_app
from b24desk.kpi.engine import DURATION_KPIS
from b24desk.kpi.periods import zone
from b24desk.push import data as dg
from b24desk.push import sentlog
from b24desk.push.digests import PushError, run_push
from b24desk.store import open_db, set_setting
from b24desk.text.i18n import kpi_label
from b24desk.text.present import fmt_value

TZ = zone("Europe/Moscow")
ALL = ["notify", "chat", "feed", "disk"]


def flask_kpi(db_path: str, portal: str, period, *, department: str | None = None) -> dict:
    """What `flask kpi --format json --group-by agent` says for the period (the yardstick)."""
    app = create_app({"TESTING": True, "DB": db_path, "SECRET_KEY": "x", "B24DESK": CONFIG})
    args = [
        "kpi",
        "--db",
        db_path,
        "--portal",
        portal,
        "--from",
        period.iso(period.start),
        "--to",
        period.iso(period.end),
        "--format",
        "json",
        "--group-by",
        "agent",
    ]
    if department:
        args += ["--department", department]
    res = app.test_cli_runner().invoke(args=args)
    assert res.exit_code == 0, res.output
    return json.loads(res.output)


def xlsx_values(blob: bytes) -> dict:
    """kpi -> value of the Summary sheet of an XLSX as written (openpyxl reads it back)."""
    ws = openpyxl.load_workbook(io.BytesIO(blob), read_only=True)["Summary"]
    rows = list(ws.iter_rows(values_only=True))
    head = next(i for i, r in enumerate(rows) if r and r[0] == "group")
    cols = rows[head]
    return {r[cols.index("kpi")]: r[cols.index("value")] for r in rows[head + 1 :] if r and r[cols.index("kpi")]}


def scalar(key: str, value):
    if key in DURATION_KPIS:
        return value["avg"] if value else None
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else "skip"


@pytest.fixture
def run(setup, tmp_path):
    """A fresh copy of the synced store and a clean push record on the double."""
    setup.reset()
    path = setup.store(tmp_path)
    db = open_db(path)
    reader, writer = setup.clients(path)

    def push(kind, period, channels=ALL, **kw):
        return run_push(
            db,
            setup.portal,
            kind,
            period,
            reader=reader,
            writer=writer,
            config=CONFIG,
            channels=channels,
            deliverer_opts=FAST,
            **kw,
        )

    push.db, push.path = db, path
    yield push
    db.conn.close()


def test_weekly_push_reaches_every_channel_with_the_numbers_of_flask_kpi(setup, run):
    week = label("weekly", setup.double.now, TZ)
    outcomes = run("weekly", week)
    assert outcomes and all(o.state == "sent" for o in outcomes), [(o.key, o.error) for o in outcomes]
    st = setup.double.portal.push_state
    heads = {str(d["ID"]): str(d["UF_HEAD"]) for d in setup.double.portal.departments if d["UF_HEAD"]}
    period = dg.parse_period("weekly", week, TZ)
    # every department with a head gets a digest -- except the root (it would repeat the portal's)
    # and one with nothing in either week (flask kpi: no ticket created, resolved or open)
    quiet = lambda r: (
        not any(
            (r["kpis"][k][f] or 0)
            for k in ("tickets_total", "resolved_count", "backlog")  # noqa: E731
            for f in ("value", "previous")
        )
    )
    candidates = [str(d["ID"]) for d in setup.double.portal.departments if d["PARENT"] and d["UF_HEAD"]]
    sub_departments = [d for d in candidates if not quiet(flask_kpi(run.path, setup.portal, period, department=d))]
    assert 0 < len(sub_departments) < len(candidates)  # the pinned data has both cases this week
    digests = {o.key.target for o in outcomes if o.key.channel == "disk"}
    assert digests == {"portal"} | {f"dept:{d}" for d in sub_departments}

    # who got what
    notified = sorted(c["params"]["USER_ID"] for c in st.calls("im.notify.system.add"))
    assert notified == sorted([1] + [int(heads[d]) for d in sub_departments])
    assert [c["params"]["DEST"] for c in st.calls("log.blogpost.add")] == [[f"DR{d}"] for d in sub_departments]
    assert len(st.calls("im.chat.add")) == 1 and len(st.calls("im.message.add")) == 1
    chat_id = st.calls("im.chat.add")[0]["result"]
    assert st.calls("im.message.add")[0]["params"]["DIALOG_ID"] == f"chat{chat_id}"
    assert set(st.calls("im.chat.add")[0]["params"]["USERS"]) == {"1"} | {heads[d] for d in sub_departments}
    assert len(st.calls("disk.folder.uploadfile")) == len(digests)
    assert all(c["auth"] == "oauth" for c in st.records)

    # the numbers: the portal notification carries flask kpi's values, formatted like the dashboard
    truth = flask_kpi(run.path, setup.portal, period)
    note = next(c["params"] for c in st.calls("im.notify.system.add") if c["params"]["TAG"].endswith(":portal"))
    for key in ("tickets_total", "resolved_count", "backlog", "overdue_count"):
        want = f"{kpi_label(key, 'ru')}: [B]{fmt_value(key, truth['kpis'][key]['value'], 'ru')}[/B]"
        assert want in note["MESSAGE"]
    grid = note["ATTACH"]["BLOCKS"][0]["GRID"]
    shown = {row["NAME"].split(" ", 1)[1]: row["VALUE"] for row in grid}
    for key, entry in truth["kpis"].items():
        if entry["target"] is not None:
            assert shown[kpi_label(key, "ru")].startswith(fmt_value(key, entry["value"], "ru")), key
    # ... and the file it links is an XLSX with the same numbers
    upload = next(c for c in st.calls("disk.folder.uploadfile") if c["params"]["data"]["NAME"].endswith("-portal.xlsx"))
    assert upload["result"]["DETAIL_URL"] in note["MESSAGE"]
    blob = base64.b64decode(upload["params"]["fileContent"][1])
    assert blob == st.files[upload["result"]["ID"]]["content"]
    got = xlsx_values(blob)
    for key, entry in truth["kpis"].items():
        want = scalar(key, entry["value"])
        if want != "skip":
            assert got.get(key) == (pytest.approx(want, rel=1e-12) if want is not None else None), key

    # a department's digest holds that department's numbers (sub-departments included)
    dep = sub_departments[0]
    dtruth = flask_kpi(run.path, setup.portal, period, department=dep)
    post = next(c["params"] for c in st.calls("log.blogpost.add") if c["params"]["DEST"] == [f"DR{dep}"])
    total = fmt_value("tickets_total", dtruth["kpis"]["tickets_total"]["value"], "ru")
    assert f"{kpi_label('tickets_total', 'ru')}: [B]{total}[/B]" in post["POST_MESSAGE"]
    dnote = next(c["params"] for c in st.calls("im.notify.system.add") if c["params"]["TAG"].endswith(f"dept:{dep}"))
    assert dnote["USER_ID"] == int(heads[dep])
    dfile = next(
        c for c in st.calls("disk.folder.uploadfile") if c["params"]["data"]["NAME"].endswith(f"dept{dep}.xlsx")
    )
    assert (
        xlsx_values(base64.b64decode(dfile["params"]["fileContent"][1]))["tickets_total"]
        == dtruth["kpis"]["tickets_total"]["value"]
    )


def test_a_second_run_sends_nothing_and_a_new_digest_replaces_the_old_notification(setup, run):
    now = setup.double.now
    last, before = dg.last_complete("weekly", now, TZ), dg.last_complete("weekly", now - 7 * 86400, TZ)
    first = run("weekly", before, ["notify", "chat"])
    st = setup.double.portal.push_state
    calls = len(st.calls("im.notify.system.add")) + len(st.calls("im.message.add"))
    again = run("weekly", before, ["notify", "chat"])
    assert [o.state for o in again] == ["already"] * len(first)
    assert len(st.calls("im.notify.system.add")) + len(st.calls("im.message.add")) == calls
    run("weekly", last, ["notify"])
    for uid in {c["params"]["USER_ID"] for c in st.calls("im.notify.system.add")}:
        visible = st.visible_notifications(uid)
        tags = [n["TAG"] for n in visible]
        assert len(tags) == len(set(tags))  # one weekly digest per scope and head
        assert all(last.label in n["MESSAGE"] for n in visible)
    # the sent-log has one row per delivery, all sent
    rows = sentlog.entries(run.db, setup.portal, "weekly")
    assert all(r["state"] == sentlog.SENT for r in rows)


def test_messages_follow_the_portal_language(setup, run):
    set_setting(run.db, setup.portal, dg.PUSH_SETTING, {"lang": "en"})
    month = label("monthly", setup.double.now, TZ)
    run("monthly", month, ["notify"])
    note = setup.double.portal.push_state.calls("im.notify.system.add")[0]["params"]["MESSAGE"]
    assert note.startswith("[B]Service desk: Monthly report") and "Tickets created" in note


def test_dry_run_prints_and_sends_nothing(setup, tmp_path, monkeypatch):
    st = setup.reset()
    path = setup.store(tmp_path)
    for k, v in setup.env(path).items():
        monkeypatch.setenv(k, v)
    app = create_app({"TESTING": True, "DB": path, "SECRET_KEY": "x", "B24DESK": CONFIG})
    month = label("monthly", setup.double.now, TZ)
    res = app.test_cli_runner().invoke(
        args=[
            "push",
            "--portal",
            setup.portal,
            "--report",
            "monthly",
            "--period",
            month,
            "--channel",
            "notify",
            "--dry-run",
        ]
    )
    assert res.exit_code == 0, res.output
    assert "dry-run  notify" in res.output and "im.notify.system.add user 1" in res.output
    assert "Хуже всего" in res.output or "в норме" in res.output
    assert st.records == []
    db = open_db(path)
    assert sentlog.entries(db, setup.portal) == []
    db.conn.close()


def test_flask_push_sends_then_skips(setup, tmp_path, monkeypatch):
    st = setup.reset()
    path = setup.store(tmp_path)
    for k, v in setup.env(path).items():
        monkeypatch.setenv(k, v)
    app = create_app({"TESTING": True, "DB": path, "SECRET_KEY": "x", "B24DESK": CONFIG})
    day = label("daily", setup.double.now, TZ)
    args = ["push", "--report", "daily", "--period", day, "--channel", "notify", "--channel", "feed"]
    res = app.test_cli_runner().invoke(args=args)
    assert res.exit_code == 0, res.output
    sent = res.output.count("sent ")
    assert sent == len(st.records) and sent >= 2
    res = app.test_cli_runner().invoke(args=args)
    assert res.exit_code == 0 and "sent " not in res.output and res.output.count("already") == sent
    assert len(st.records) == sent


@pytest.mark.parametrize(
    "kind,period,message",
    [
        ("weekly", "2026-10", "does not fit a weekly report: use YYYY-Www"),
        ("monthly", "2026-13", "not a real month"),
        ("daily", "2026-02-30", "not a real day"),
        ("weekly", "2026-W54", "not a real week"),
    ],
)
def test_bad_periods_are_refused_clearly(setup, run, kind, period, message):
    with pytest.raises(PushError, match=message):
        run(kind, period)
    assert setup.double.portal.push_state.records == []
    assert sentlog.entries(run.db, setup.portal) == []


def test_cli_bad_input(setup, tmp_path, monkeypatch):
    path = setup.store(tmp_path)
    for k, v in setup.env(path).items():
        monkeypatch.setenv(k, v)
    app = create_app({"TESTING": True, "DB": path, "SECRET_KEY": "x", "B24DESK": CONFIG})
    cli = app.test_cli_runner()
    res = cli.invoke(args=["push", "--report", "weekly", "--period", "2026-10-05", "--dry-run"])
    assert res.exit_code == 2 and "use YYYY-Www" in res.output
    res = cli.invoke(args=["push", "--portal", "nope", "--report", "weekly", "--period", "2026-W40"])
    assert res.exit_code == 2 and "not in the store" in res.output
    res = cli.invoke(args=["push", "--report", "weekly", "--period", "2026-W40", "--channel", "fax"])
    assert res.exit_code == 2 and "fax" in res.output
    res = cli.invoke(args=["push", "--db", str(tmp_path / "none.db"), "--report", "weekly", "--period", "2026-W40"])
    assert res.exit_code == 2 and "no store" in res.output


def test_disk_needs_the_app_not_a_webhook(setup, run):
    """A webhook cannot reach the app's storage (ACCESS_DENIED): a clear failure, nothing else lost."""
    from b24desk.client import B24Client

    hook = setup.double.webhook_url
    reader = B24Client.from_webhook(hook, rps=1e6, share_limiter=False)
    writer = B24Client.from_webhook(hook, rps=1e6, share_limiter=False, max_retries=0)
    month = label("monthly", setup.double.now, TZ)
    outcomes = run_push(
        run.db,
        setup.portal,
        "monthly",
        month,
        reader=reader,
        writer=writer,
        config=CONFIG,
        channels=["disk", "notify"],
        deliverer_opts=FAST,
    )
    disk = [o for o in outcomes if o.key.channel == "disk"]
    assert disk and all(o.state == "failed" and "needs the installed app" in o.error for o in disk)
    notes = [o for o in outcomes if o.key.channel == "notify"]
    assert notes and all(o.state == "sent" for o in notes)
    calls = setup.double.portal.push_state.calls("im.notify.system.add")
    assert all(c["auth"] == "webhook" and c["params"]["CLIENT_ID"] == "b24desk" for c in calls)
    assert all("Отчёт XLSX" not in c["params"]["MESSAGE"] for c in calls)


def test_due_reports_follow_the_schedule_in_the_portal_zone():
    """The latest complete period of each enabled kind is due once its time (portal zone) passed;
    the run marker in the sent-log, not this function, keeps it from being pushed twice."""
    from datetime import datetime

    from b24desk.push.digests import due_reports

    settings = dg._merge(dg.DEFAULT_PUSH, {"reports": {"daily": {"enabled": True, "time": "08:30"}}})
    at = lambda *a: int(datetime(*a, tzinfo=TZ).timestamp())  # noqa: E731
    due = lambda ts: {k: p.label for k, p in due_reports(settings, ts, TZ)}  # noqa: E731
    assert due(at(2026, 10, 12, 8, 0)) == {"monthly": "2026-09"}  # Monday 08:00 Moscow
    assert due(at(2026, 10, 12, 9, 0)) == {"daily": "2026-10-11", "weekly": "2026-W41", "monthly": "2026-09"}
    assert "monthly" not in due(at(2026, 11, 1, 8, 59))  # October not due yet; September is stale
    assert due(at(2026, 11, 1, 9, 0))["monthly"] == "2026-10"
    settings["reports"]["weekly"]["weekday"] = 3  # Wednesdays
    assert "weekly" not in due(at(2026, 10, 13, 12, 0)) and due(at(2026, 10, 14, 9, 0))["weekly"] == "2026-W41"
