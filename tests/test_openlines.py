"""Open-line dialogs as a source, end to end: b24desk's client against the portal double over real
HTTP on 127.0.0.1, the store compared with the double's ground truth (what happened to each dialog,
recorded independently of our mapping)."""

from __future__ import annotations

import pytest
from kpi_support import one_portal_statistics
from openlines_support import client_for, make_double, mismatches

from b24desk.sources import SelectorError, get_source
from b24desk.sources import openlines as ol
from b24desk.sources.base import SyncContext
from b24desk.store import get_setting
from b24desk.sync import run_sync
from portal_double import openlines as dol

CONFIG = {"sources": ["openlines"]}


@pytest.fixture(scope="module")
def double():
    d = make_double(900, seed=11)
    d.start()
    yield d
    d.stop()


def fresh(n=400, seed=5, **gen):
    d = make_double(n, seed=seed, **gen)
    d.start()
    return d


def sync(d, db, selectors=("openlines",), url=None, **kw):
    c = client_for(d, url)
    reports = run_sync(c, db, list(selectors), CONFIG, **kw)
    return c, reports


def test_full_sync_stores_every_session_as_the_truth_has_it(double, db):
    c, (rep,) = sync(double, db)
    assert rep.error is None and rep.mode == "full"
    assert rep.saved == len(dol.state(double.portal).sessions) == 900
    assert mismatches(db, c.portal_id, double) == []
    # 900 sessions: server.time, the earliest session, 5 windows' pages, a rating window, line names,
    # and one batch of transfer + stat calls per 1000 sessions
    assert rep.requests <= 14
    rows = {r["source_id"]: r for r in db.query("select * from tickets where source = 'openlines'")}
    assert {r["channel"] for r in rows.values()} == {"livechat", "telegrambot", "whatsappbyedna", "vkgroup", "avito"}
    assert {(r["line"], r["type"]) for r in rows.values()} == {
        ("1", "Поддержка"),
        ("2", "Продажи"),
        ("3", "VIP-клиенты"),
    }
    assert all(r["selector"] == "openlines" for r in rows.values())
    status = get_setting(db, c.portal_id, ol.STATUS_KEY)
    assert status["available"] is True and status["code"] is None
    assert get_setting(db, c.portal_id, ol.LINES_KEY) == {"1": "Поддержка", "2": "Продажи", "3": "VIP-клиенты"}


def test_bots_never_answer_first_and_a_bot_hand_over_is_no_transfer(double, db):
    c, _ = sync(double, db)
    truth = {t["source_id"]: t for t in dol.truth_tickets(double.portal)}
    state = dol.state(double.portal)
    bot_first = [
        s for s in state.sessions if s["dateOperatorAnswer"] and s["dateFirstAnswer"] < s["dateOperatorAnswer"]
    ]
    assert len(bot_first) > 30
    for s in bot_first:
        first = db.execute(
            "select min(at) from events where source = 'openlines' and source_id = ? and kind = 'reply'", [str(s["id"])]
        ).fetchone()[0]
        assert first == s["dateOperatorAnswer"] > s["dateFirstAnswer"]
        assert truth[str(s["id"])]["transfers"] == 0 or any(
            r["fromOperatorId"] not in (None, dol.BOT_ID) for r in state.transfers[s["id"]]
        )
    bot_only = [s for s in state.sessions if s["operatorId"] == dol.BOT_ID and s["dateClose"]]
    assert bot_only
    for s in bot_only:
        row = db.execute(
            "select responsible_id, state from tickets where source = 'openlines' and source_id = ?", [str(s["id"])]
        ).fetchone()
        assert row == (None, "resolved")


def test_votes_and_supervisor_scores_are_kept_apart(double, db):
    c, _ = sync(double, db)
    state = dol.state(double.portal)
    liked = next(s for s in state.sessions if s["vote"] == "like" and s["voteHead"] is not None and s["voteHead"] <= 3)
    disliked = next(s for s in state.sessions if s["vote"] == "dislike")

    def row(s):
        return db.execute(
            "select rating, qa_score from tickets where source = 'openlines' and source_id = ?", [str(s["id"])]
        ).fetchone()

    assert row(liked) == (5, liked["voteHead"])
    assert row(disliked)[0] == 1
    at = db.execute(
        "select at from events where source = 'openlines' and source_id = ? and kind = 'rated'", [str(liked["id"])]
    ).fetchone()[0]
    assert at == liked["dateVote"]  # the vote's own time, from the rating list


def test_line_selector_reads_one_line(double, db):
    double.stats.reset()
    c, (rep,) = sync(double, db, ["openlines:line=2"])
    assert rep.error is None
    assert mismatches(db, c.portal_id, double, line="2") == []
    assert {r[0] for r in db.execute("select distinct selector from tickets")} == {"openlines:line=2"}
    assert all(
        str(p.get("configId")) == "2"
        for m, p in double.stats.log
        if m in ("imopenlines.v2.session.list", "imopenlines.v2.session.rating.list")
    )


def test_incremental_sync_sees_new_answers_transfers_closes_and_late_votes(db):
    d = fresh(400, seed=5)
    p = d.portal
    state = dol.state(p)
    queue = state.lines[1]["queue"]
    waiting = dol.start_session(p, 1, "livechat", operator=queue[0])
    talking = dol.start_session(p, 2, "vkgroup", operator=state.lines[2]["queue"][0])
    dol.answer(p, talking["id"])
    old = next(
        s for s in state.sessions if s["dateClose"] and s["vote"] == "none" and s["dateClose"] < p.now - 20 * 86400
    )
    try:
        c, (first,) = sync(d, db)
        assert first.mode == "full" and mismatches(db, c.portal_id, d) == []
        d.advance(3600)
        dol.answer(p, waiting["id"], messages=2)
        dol.client_message(p, waiting["id"])
        dol.transfer(p, waiting["id"], to_operator=queue[1])
        dol.transfer(p, talking["id"], to_line=3)
        dol.transfer(p, talking["id"], to_operator=state.lines[3]["queue"][0])
        d.advance(600)
        dol.close_session(p, waiting["id"])
        dol.vote(p, waiting["id"], "dislike")
        dol.head_vote(p, waiting["id"], 2, "Слишком долго")
        dol.vote(p, old["id"], "like")  # weeks after its close
        new = dol.start_session(p, 3, "telegrambot", operator=state.lines[3]["queue"][1])
        d.advance(60)
        d.stats.reset()
        c, (inc,) = sync(d, db)
        assert inc.mode == "incremental" and inc.error is None
        assert mismatches(db, c.portal_id, d) == []
        got = {
            r[0]: r
            for r in db.execute(
                "select source_id, state, responsible_id, rating, qa_score, type from tickets where source_id in (?,?,?,?)",
                [str(waiting["id"]), str(talking["id"]), str(old["id"]), str(new["id"])],
            ).fetchall()
        }
        assert got[str(waiting["id"])][1:5] == ("resolved", str(queue[1]), 1, 2)
        assert got[str(talking["id"])][5] == "VIP-клиенты"
        assert got[str(old["id"])][3] == 5 and got[str(new["id"])][1] == "open"
        assert inc.requests <= 12
        # each listing stays inside the documented limits
        for m, params in d.stats.log:
            if m in ("imopenlines.v2.session.list", "imopenlines.v2.session.rating.list"):
                assert int(params.get("limit", 50)) <= 200 and int(params.get("offset", 0)) <= 10000
    finally:
        d.stop()


def test_tariff_restriction_is_recorded_not_failed_and_heals_when_the_plan_allows(db):
    d = fresh(300, seed=9)
    try:
        dol.state(d.portal).plan_allows = False
        c, (rep,) = sync(d, db)
        assert rep.error is None and rep.saved == 0
        status = get_setting(db, c.portal_id, ol.STATUS_KEY)
        assert status["available"] is False and status["code"] == "TARIFF_RESTRICTION"
        assert "plan" in status["message"] and status["selectors"] == {"openlines": False}
        # the plan is upgraded: the next (incremental) run reads everything, not only recent changes
        dol.state(d.portal).plan_allows = True
        d.advance(3600)
        c, (rep,) = sync(d, db)
        assert rep.mode == "incremental" and rep.saved == 300
        assert mismatches(db, c.portal_id, d) == []
        assert get_setting(db, c.portal_id, ol.STATUS_KEY)["available"] is True
        # downgraded again: a full sync keeps what the store has instead of marking it deleted
        dol.state(d.portal).plan_allows = False
        c, (rep,) = sync(d, db, full=True)
        assert rep.error is None and rep.deleted == 0
        assert db.execute("select count(*) from tickets where coalesce(deleted, 0) = 0").fetchone()[0] == 300
        assert get_setting(db, c.portal_id, ol.STATUS_KEY)["code"] == "TARIFF_RESTRICTION"
    finally:
        d.stop()


def test_missing_report_access_or_scope_is_recorded_with_what_to_do(double, db):
    state = dol.state(double.portal)
    state.report_users = {1}
    try:
        c, (rep,) = sync(double, db, url=double.add_webhook(10))
        assert rep.error is None and rep.saved == 0
        status = get_setting(db, c.portal_id, ol.STATUS_KEY)
        assert status["code"] == "ACCESS_DENIED" and "Contact Center" in status["message"]
    finally:
        state.report_users = None
    c, (rep,) = sync(double, db, url=double.add_webhook(1, scopes={"basic", "user", "department", "task"}), full=True)
    assert rep.error is None and rep.saved == 0
    status = get_setting(db, c.portal_id, ol.STATUS_KEY)
    assert status["code"] == "INSUFFICIENT_SCOPE" and "imopenlines" in status["message"]


def test_resume_starts_at_the_last_committed_session(double, db):
    c, _ = sync(double, db)
    src = get_source("openlines")
    ctx = SyncContext(portal=c.portal_id, db=db, config={})
    sessions = dol.state(double.portal).sessions
    mid = sessions[len(sessions) // 2]
    pages = list(src.full(c, ctx, after_id=str(mid["id"])))
    got = [b.ticket for p in pages for b in p.bundles]
    assert min(t.created_at for t in got) == mid["dateCreate"]
    assert len(got) == sum(1 for s in sessions if s["dateCreate"] >= mid["dateCreate"])
    assert pages[-1].last_id == str(sessions[-1]["id"])


def test_bad_selectors_are_refused_before_any_call():
    for bad in ("openlines:line=x", "openlines:group=2", "openlines:line=2:channel=x"):
        with pytest.raises(SelectorError):
            get_source(bad)
    assert get_source("openlines:line=2").params == {"configId": 2}


def test_crosscheck_against_the_portal_statistics(double, db):
    c, _ = sync(double, db)
    res = ol.crosscheck(db, c, c.portal_id, "2026-09-01T00:00:00+03:00", "2026-10-01T00:00:00+03:00")
    assert res["available"] is True
    ours, theirs = res["ours"], res["portal"]
    assert ours["sessions"] == theirs["total_sessions"] > 100
    assert ours["positive_rate"] == pytest.approx(theirs["positive_rate"], abs=1e-4)
    # Bitrix24 counts a chatbot's instant answer as the first response; we count live operators only
    assert res["differences"] == {"frt_avg": True, "positive_rate": False} and res["differs"] is True
    assert ours["frt_avg"] > theirs["frt_avg"]
    assert any("chatbot" in n for n in res["notes"])
    assert get_setting(db, c.portal_id, ol.CROSSCHECK_KEY) == res
    # one line, and bad periods
    one = ol.crosscheck(db, c, c.portal_id, "2026-09-01T00:00:00+03:00", "2026-10-01T00:00:00+03:00", line=2)
    assert one["ours"]["sessions"] == one["portal"]["total_sessions"] < ours["sessions"]
    with pytest.raises(ValueError):
        ol.crosscheck(db, c, c.portal_id, "2026-10-01", "2026-09-01")
    with pytest.raises(ValueError):
        ol.crosscheck(db, c, c.portal_id, "2025-01-01", "2026-10-01")


def test_crosscheck_agrees_without_bots_and_reports_a_refusal(db):
    d = fresh(500, seed=3, bot_share=0.0)
    try:
        c, _ = sync(d, db)
        res = ol.crosscheck(db, c, c.portal_id, "2026-08-01T00:00:00+03:00", "2026-10-01T00:00:00+03:00")
        assert res["differs"] is False and res["notes"] == []
        assert res["ours"]["frt_avg"] == pytest.approx(res["portal"]["frt_avg"], abs=0.1)
        dol.state(d.portal).plan_allows = False
        res = ol.crosscheck(db, c, c.portal_id, "2026-08-01T00:00:00+03:00", "2026-10-01T00:00:00+03:00")
        assert res["available"] is False and res["code"] == "TARIFF_RESTRICTION" and res["differs"] is False
        assert get_setting(db, c.portal_id, ol.CROSSCHECK_KEY)["available"] is False
    finally:
        d.stop()


def test_crosscheck_reads_bare_dates_in_the_portal_zone(double, db):
    c, _ = sync(double, db)
    iso = ol.crosscheck(db, c, c.portal_id, "2026-09-01T00:00:00+03:00", "2026-10-01T00:00:00+03:00")
    bare = ol.crosscheck(db, c, c.portal_id, "2026-09-01", "2026-10-01")
    assert bare["period"] == iso["period"] and bare["ours"] == iso["ours"]
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        ol.crosscheck(db, c, c.portal_id, "first of September", "2026-10-01")


def test_crosscheck_reads_bare_dates_in_the_admins_zone(double, db):
    """The admin's time zone (settings page, ``config`` overrides) wins over the portal's, as in
    every report (kpi.load.portal_zone): 1 September is midnight in Vladivostok, not in Moscow."""
    from b24desk.store import set_setting

    c, _ = sync(double, db)
    set_setting(db, c.portal_id, "config", {"calendar": {"timezone": "Asia/Vladivostok"}})
    bare = ol.crosscheck(db, c, c.portal_id, "2026-09-01", "2026-10-01")
    assert bare["period"] == {"from": "2026-08-31T14:00:00+00:00", "to": "2026-09-30T14:00:00+00:00"}


def test_oldest_open_session_is_read_through_the_open_tickets_whatever_the_statistics(double, db):
    """The incremental sync's oldest still-open session comes from the open tickets (``closed_at``
    null, an index range) even when ANALYZE's statistics make every index on ``tickets (portal,
    ...)`` look alike (one portal's store): by the key it read every session of the portal (0.23 s
    at 1M tickets, on every incremental sync)."""
    c, _ = sync(double, db)
    stats = {  # what ANALYZE wrote on a 1M-ticket store of one portal
        "sqlite_autoindex_tickets_1": "1000000 1000000 1000000 1",
        "idx_tickets_portal_created_at": "1000000 1000000 1",
        "idx_tickets_portal_closed_at": "1000000 1000000 1",
        "idx_tickets_portal_closed_at_created_at": "1000000 1000000 1 1",
        "idx_tickets_portal_created_at_customer_deleted": "1000000 1000000 1 1 1",
        "idx_tickets_portal_responsible_id": "1000000 1000000 16667",
        "tickets_author": "1000000 1000000 4",
    }
    one_portal_statistics(db, {"tickets": stats})
    for line in (None, 2, 3):  # the double's one open session is on line 3
        src = get_source("openlines" if line is None else f"openlines:line={line}")
        said = []
        db.conn.set_trace_callback(said.append)
        try:
            oldest = src._oldest_open(SyncContext(portal=c.portal_id, db=db, config={}))
        finally:
            db.conn.set_trace_callback(None)
        (q,) = [s for s in said if "min(created_at)" in s]
        plan = " ".join(r[3] for r in db.execute("explain query plan " + q).fetchall())
        assert "closed_at=?" in plan, plan
        assert (
            oldest
            == db.execute(
                "select min(created_at) from tickets where source = 'openlines' and state = 'open'"
                + ("" if line is None else f" and line = '{line}'")
            ).fetchone()[0]
        )
        assert (oldest is None) == (line == 2)
