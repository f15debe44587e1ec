"""A malformed 200 (a ``result`` of the wrong shape) is an error, never "nothing changed": it is
logged with its method, the selector is read again, and if the portal keeps answering like that the
sync ends non-zero with no cursor moved -- the re-run then equals a clean sync."""

from __future__ import annotations

import logging

import pytest
from test_sync_e2e import mismatches

from b24desk import sync as sync_mod
from b24desk.client import B24Client, ShapeError
from b24desk.model import parse_time
from b24desk.sources.fetch import rows_of
from b24desk.store import get_cursor, open_db
from b24desk.sync import run_sync
from portal_double import PortalDouble
from portal_double.truth import SOURCE_CONFIG

CONFIG = {"sources": SOURCE_CONFIG}
SELECTORS = ["tasks", "deals:category=3"]


def client_for(d):
    return B24Client.from_webhook(d.webhook_url, rps=1e6, backoff_base=0.01, share_limiter=False)


@pytest.fixture(autouse=True)
def no_pause(monkeypatch):
    monkeypatch.setattr(sync_mod, "SHAPE_PAUSE", 0.0)


def _changes(d):
    """A handful of changes of every kind the incremental listing must find."""
    p, truth = d.portal, d.truth
    # open tasks first; how many are open depends on the hour the double generates at, so a closed
    # one is reopened when there are too few
    tasks = sorted(truth.select("task"), key=lambda t: t["state"] != "open")
    first, second, other = tasks[:3]
    deal = min(truth.select("crm:2", category=3), key=lambda t: t["state"] != "open")
    d.advance(3600)
    p.update_task(int(first["source_id"]), status=5 if first["state"] == "open" else 2)
    p.add_task_comment(int(second["source_id"]), int(other["responsible_id"]), "done?")
    p.create_task(creator=int(second["author_id"]), responsible=int(second["responsible_id"]), title="New one")
    p.add_activity(2, int(deal["source_id"]), kind="email", direction=2)
    d.advance(60)


@pytest.mark.parametrize(
    "method, bad",
    [
        ("tasks.task.list", None),  # null result inside the listing batch
        ("tasks.task.list", {"tasks": "oops"}),
        ("tasks.task.history.list", {"list": None}),  # a detail read of the changed tasks
        ("crm.item.list", []),  # PHP's empty array where {items: [...]} is due
        ("crm.activity.list", "x"),
    ],
)
def test_a_malformed_200_mid_incremental_loses_no_change(method, bad, caplog):
    with PortalDouble(seed=11, tickets=300, drain_per_s=1e6, bucket_size=10**6) as d:
        db = open_db(":memory:")
        c = client_for(d)
        run_sync(c, db, SELECTORS, CONFIG)
        _changes(d)
        cursors = {s: get_cursor(db, c.portal_id, s, "changed_since") for s in SELECTORS}
        # the portal keeps answering malformed through every re-read: the selector fails
        d.faults.malform_next(10**6, method, bad)
        with caplog.at_level(logging.WARNING, logger="b24desk"):
            reports = run_sync(c, db, SELECTORS, CONFIG)
        failed = [r for r in reports if r.error]
        assert failed, reports
        assert all("UNEXPECTED_ANSWER" in r.error and method in r.error for r in failed)
        assert any(method in m and "attempt 3 of 3" in m for m in caplog.messages)
        for r in failed:  # no cursor moved past the changes
            assert get_cursor(db, c.portal_id, r.selector, "changed_since") == cursors[r.selector]
        # the portal answers well again: the re-run equals a clean sync
        d.faults.clear()
        assert all(r.error is None for r in run_sync(c, db, SELECTORS, CONFIG))
        assert mismatches(db, d.truth, ("task", "crm:2")) == {"counts": {}, "examples": {}}
        clean = open_db(":memory:")
        run_sync(c, clean, SELECTORS, CONFIG, full=True)
        q = "select source, source_id, state, responsible_id, resolved_at from tickets order by 1, 2"
        assert list(db.query(q)) == list(clean.query(q))
        q = "select source, source_id, key, kind, at from events order by 1, 2, 3"
        assert list(db.query(q)) == list(clean.query(q))


def test_one_malformed_answer_is_read_again_and_the_sync_succeeds():
    with PortalDouble(seed=11, tickets=200, drain_per_s=1e6, bucket_size=10**6) as d:
        db = open_db(":memory:")
        c = client_for(d)
        run_sync(c, db, ["tasks"], CONFIG)
        _changes(d)
        d.faults.malform_next(1, "tasks.task.list", None)
        reports = run_sync(c, db, ["tasks"], CONFIG)
        assert reports[0].error is None and reports[0].mode == "incremental"
        assert mismatches(db, d.truth, ("task",)) == {"counts": {}, "examples": {}}


def test_shapes():
    assert rows_of([]) == [] and rows_of({}) == [] and rows_of({"tasks": []}, "tasks") == []
    assert rows_of({"tasks": [{"id": "1"}]}, "tasks") == [{"id": "1"}]
    assert rows_of({"items": {"0": {"id": 1}}}, "items") == [{"id": 1}]
    for bad in (None, "x", 5, [], {}, {"tasks": None}, {"other": []}, {"tasks": ["1"]}, {"tasks": [1, 2]}):
        with pytest.raises(ShapeError):
            rows_of(bad, "tasks", "tasks.task.list")


def test_every_date_form_parses_and_a_bad_one_never_raises(caplog):
    from datetime import timedelta, timezone

    from b24desk.model import naive_zone

    msk = timezone(timedelta(hours=3))
    assert parse_time("2019-01-03T15:29:28+03:00") == 1546518568
    assert parse_time("2019-01-03T12:29:28Z") == 1546518568
    assert parse_time("03.01.2019 15:29:28", tz=msk) == 1546518568  # the portal's own form
    assert parse_time("2019-01-03 15:29:28", tz=msk) == 1546518568  # naive ISO: the portal's zone
    with naive_zone(msk):
        assert parse_time("03.01.2019 15:29:28") == parse_time("2019-01-03 15:29:28") == 1546518568
        assert parse_time("03.01.2019") == parse_time("2019-01-03T00:00:00+03:00")
    assert parse_time("2019-01-03 12:29:28") == 1546518568  # no portal zone known: UTC
    assert parse_time("1546518568") == 1546518568 and parse_time(None) is None and parse_time("") is None
    with caplog.at_level(logging.WARNING, logger="b24desk"):
        assert parse_time("32.13.2019 99:00:00", field="createdDate") is None
        assert parse_time("yesterday", field="TIMESTAMP_X") is None
    assert any("createdDate" in m for m in caplog.messages) and any("TIMESTAMP_X" in m for m in caplog.messages)


def test_flask_sync_ends_non_zero_with_a_clear_message(tmp_path, monkeypatch):
    from app import create_app

    cfg = tmp_path / "b24desk.toml"
    cfg.write_text('[[sources]]\nselect = "tasks"\n', encoding="utf-8")
    monkeypatch.setenv("B24DESK_CONFIG", str(cfg))
    db = str(tmp_path / "s.db")
    runner = create_app({"TESTING": True, "DB": db, "SECRET_KEY": "t"}).test_cli_runner()
    with PortalDouble(seed=11, tickets=300, drain_per_s=1e6, bucket_size=10**6) as d:
        args = ["sync", "--webhook", d.webhook_url, "--db", db, "--rps", "1000", "--quiet"]
        assert runner.invoke(args=args).exit_code == 0
        _changes(d)
        d.faults.malform_next(10**6, "tasks.task.list", {"tasks": None})
        res = runner.invoke(args=args)
        assert res.exit_code != 0
        assert "tasks.task.list" in res.output and "not of the documented shape" in res.output
        d.faults.clear()
        assert runner.invoke(args=args).exit_code == 0
        assert mismatches(open_db(db), d.truth, ("task",)) == {"counts": {}, "examples": {}}
