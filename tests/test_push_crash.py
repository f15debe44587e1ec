"""Exactly once under failure: a push killed (SIGKILL) between the portal's work and the sent-log's
mark, answers lost after the portal acted, and 503 storms. Whatever happens, the portal ends with
each delivery once -- never twice, never missing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest
from push_helpers import CONFIG, FAST, label, setup  # noqa: F401  (setup is a fixture)

from b24desk.kpi.periods import zone
from b24desk.push import sentlog
from b24desk.push.digests import run_push
from b24desk.store import open_db

ROOT = Path(__file__).resolve().parent.parent
TZ = zone("Europe/Moscow")
ALL = ["disk", "notify", "chat", "feed"]
WRITES = ("disk.folder.uploadfile", "im.notify.system.add", "im.message.add", "log.blogpost.add")


def received(st) -> Counter:
    """How many of each non-idempotent delivery the portal holds, keyed by what identifies it."""
    c = Counter()
    for f in st.files.values():
        c[("file", f["NAME"])] += 1
    for p in st.posts:
        c[("post", p["TITLE"], tuple(p["DEST"]))] += 1
    for r in st.calls("im.message.add"):
        c[("message", r["params"]["DIALOG_ID"], r["params"]["MESSAGE"][:80])] += 1
    return c


def visible_digests(st) -> Counter:
    return Counter((n["USER_ID"], n["TAG"]) for n in st.visible_notifications())


def check_exactly_once(st, outcomes, db, portal):
    assert outcomes and all(o.ok for o in outcomes), [(o.key, o.state, o.error) for o in outcomes]
    assert all(v == 1 for v in received(st).values()), received(st)
    assert all(v == 1 for v in visible_digests(st).values()), visible_digests(st)
    kinds = Counter(o.key.channel for o in outcomes)
    assert len(st.files) == kinds["disk"] and len(st.posts) == kinds["feed"]
    assert len(st.calls("im.message.add")) == kinds["chat"]
    assert len(visible_digests(st)) == kinds["notify"]
    rows = [r for r in sentlog.entries(db, portal) if r["channel"] != "run"]
    assert rows and all(r["state"] == sentlog.SENT for r in rows)


@pytest.mark.parametrize("method", WRITES)
def test_sigkill_between_the_call_and_the_mark(setup, tmp_path, method):
    """`flask push` in a child process is killed while the portal handles its first `method` call
    (the portal did the work; the child never hears back). The next run finishes the job without
    a second copy: it finds the message, post or file, and a notification replaces itself."""
    st = setup.reset()
    path = setup.store(tmp_path)
    week = label("weekly", setup.double.now, TZ)
    started = threading.Event()
    child: dict = {}

    def kill_on_first(rec):
        if rec["method"] == method and "killed" not in child:
            started.wait(30)
            child["killed"] = rec
            os.kill(child["proc"].pid, signal.SIGKILL)

    st.on_received = kill_on_first
    env = {**os.environ, **setup.env(path), "PYTHONPATH": str(ROOT)}
    args = [
        sys.executable,
        "-m",
        "flask",
        "--app",
        "app",
        "push",
        "--portal",
        setup.portal,
        "--report",
        "weekly",
        "--period",
        week,
    ] + sum((["--channel", c] for c in ALL), [])
    child["proc"] = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    started.set()
    out, err = child["proc"].communicate(timeout=120)
    st.on_received = None
    assert child["proc"].returncode == -signal.SIGKILL, (out, err)
    assert "killed" in child

    db = open_db(path)
    try:
        unsure = [r for r in sentlog.entries(db, setup.portal) if r["state"] == sentlog.PENDING]
        assert len(unsure) == 1 and unsure[0]["method"] == method and unsure[0]["attempts"] == 1
        reader, writer = setup.clients(path)
        outcomes = run_push(
            db,
            setup.portal,
            "weekly",
            week,
            reader=reader,
            writer=writer,
            config=CONFIG,
            channels=ALL,
            deliverer_opts=FAST,
        )
        check_exactly_once(st, outcomes, db, setup.portal)
        again = {o.key: o.state for o in outcomes}
        expected = "sent" if method == "im.notify.system.add" else "adopted"  # re-sent vs found
        assert again[sentlog.key_of(unsure[0])] in (expected, "already")
        if method != "im.notify.system.add":
            row = sentlog.get(db, sentlog.key_of(unsure[0]))
            assert row["result"]["adopted"] is True
    finally:
        db.conn.close()


@pytest.fixture
def fresh(setup, tmp_path):
    st = setup.reset()
    path = setup.store(tmp_path)
    db = open_db(path)
    reader, writer = setup.clients(path)

    def push(kind="weekly", period=None, channels=ALL):
        return run_push(
            db,
            setup.portal,
            kind,
            period or label(kind, setup.double.now, TZ),
            reader=reader,
            writer=writer,
            config=CONFIG,
            channels=channels,
            deliverer_opts=FAST,
        )

    push.st, push.db = st, db
    yield push
    db.conn.close()


def test_lost_answers_are_found_not_resent(setup, fresh):
    """The portal acts, then answers 500: the outcome is unknown, so the portal is asked first."""
    for m in WRITES:
        fresh.st.drop_reply(m, 1)
    outcomes = fresh()
    states = Counter((o.method, o.state) for o in outcomes)
    for m in ("disk.folder.uploadfile", "im.message.add", "log.blogpost.add"):
        assert states[(m, "adopted")] == 1
    assert states[("im.notify.system.add", "sent")] >= 1
    check_exactly_once(fresh.st, outcomes, fresh.db, setup.portal)


def test_a_short_503_storm_is_ridden_out(setup, fresh):
    setup.double.faults.fail_next(4, method="im.message.add")
    setup.double.faults.fail_next(3, method="log.blogpost.add")
    setup.double.faults.fail_next(5)  # whole requests, whatever they are
    outcomes = fresh()
    assert setup.double.stats.refused["QUERY_LIMIT_EXCEEDED"] >= 12
    check_exactly_once(fresh.st, outcomes, fresh.db, setup.portal)


def test_a_long_503_storm_skips_nothing_and_the_next_run_finishes(setup, fresh):
    setup.double.faults.fail_next(10_000)  # the portal refuses everything
    first = fresh()
    assert first and all(o.state == "failed" for o in first)
    assert fresh.st.records == []  # nothing arrived
    rows = sentlog.entries(fresh.db, setup.portal)
    assert {r["state"] for r in rows if r["channel"] != "run"} <= {sentlog.FAILED}
    setup.double.faults.clear()
    second = fresh()
    check_exactly_once(fresh.st, second, fresh.db, setup.portal)
    third = fresh()
    assert all(o.state == "already" for o in third)
    check_exactly_once(fresh.st, second, fresh.db, setup.portal)


def test_a_storm_in_the_middle(setup, fresh):
    """Some deliveries pass, some are refused mid-run; reruns complete the rest, none twice."""
    setup.double.faults.fail_next(25, method="im.notify.system.add")
    setup.double.faults.fail_next(1, method="disk.folder.uploadfile")
    first = fresh()
    assert {o.state for o in first} == {"sent", "failed"}
    setup.double.faults.clear()
    second = fresh()
    check_exactly_once(fresh.st, second, fresh.db, setup.portal)
    assert Counter(o.state for o in second)["already"] == Counter(o.state for o in first)["sent"]
