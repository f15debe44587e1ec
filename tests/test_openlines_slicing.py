"""Date slicing past the statistics API's limits: 200 rows a page, ``offset`` at most 10000
(DOCS api-reference/imopenlines/statistics/imopenlines-v2-session-list.md, ...-rating-list.md),
with more than 10,000 sessions and more than 10,000 votes in one window, over real HTTP."""

from __future__ import annotations

import pytest
from openlines_support import client_for, make_double, mismatches

from b24desk.client import B24Error
from b24desk.model import parse_time
from b24desk.sources import openlines as ol
from b24desk.sync import run_sync
from portal_double import openlines as dol

N = 12500


@pytest.fixture(scope="module")
def big():
    # six weeks, nearly every dialog rated: both lists overflow one window of 10,200 reachable rows
    d = make_double(N, seed=2, months=1.5, vote_share=0.95)
    d.start()
    yield d
    d.stop()


def test_full_sync_of_12500_sessions_misses_none_and_stays_in_the_limits(big, db):
    big.stats.reset()
    c = client_for(big)
    (rep,) = run_sync(c, db, ["openlines"], {"sources": ["openlines"]}, directory=False)
    assert rep.error is None and rep.saved == N
    assert mismatches(db, c.portal_id, big) == []
    calls = [(m, p) for m, p in big.stats.log if m.startswith("imopenlines.v2.session.")]
    for m, p in calls:
        if m in ("imopenlines.v2.session.list", "imopenlines.v2.session.rating.list"):
            assert 1 <= int(p.get("limit", 50)) <= 200 and 0 <= int(p.get("offset", 0)) <= 10000
            lo = p.get("dateCreateFrom") or p.get("dateVoteFrom")
            hi = p.get("dateCreateTo") or p.get("dateVoteTo")
            if lo and hi:
                assert parse_time(hi) - parse_time(lo) <= 366 * 86400
        else:
            assert len(p["sessionId"]) <= (50 if m.endswith("transfer.list") else 100)
    # the session listing continued from the last date it reached instead of giving up at 10,200 rows
    starts = {p["dateCreateFrom"] for m, p in calls if m == "imopenlines.v2.session.list" and "dateCreateFrom" in p}
    assert len(starts) == 2
    # the rating window overflowed too and was halved
    windows = {(p["dateVoteFrom"], p["dateVoteTo"]) for m, p in calls if m == "imopenlines.v2.session.rating.list"}
    assert len(windows) == 3
    votes = sum(1 for s in dol.state(big.portal).sessions if s["vote"] != "none")
    assert votes > 10200
    assert db.execute("select count(*) from events where kind = 'rated'").fetchone()[0] == votes
    # ~200 HTTP requests would be the naive cost (one page each); batching keeps it to a few dozen
    assert rep.requests <= 40


def test_each_listing_returns_every_session_once_in_date_order(big):
    c = client_for(big)
    sessions = dol.state(big.portal).sessions
    lo, hi = sessions[0]["dateCreate"], big.now
    before = c.requests_sent
    got = list(ol.list_sessions(c, {}, lo, hi))
    assert [int(s["id"]) for s in got] == [s["id"] for s in sorted(sessions, key=lambda s: (s["dateCreate"], s["id"]))]
    assert c.requests_sent - before <= 8
    closed = [s for s in sessions if s["dateClose"]]
    by_close = list(ol.list_sessions(c, {"configIdList": [1, 2, 3]}, lo, hi, by="Close"))
    assert sorted(int(s["id"]) for s in by_close) == sorted(s["id"] for s in closed)
    ratings = ol.list_ratings(c, {}, lo, hi)
    assert set(ratings) == {str(s["id"]) for s in sessions if s["vote"] != "none"}


def test_windows_never_exceed_the_documented_period():
    day = 86400
    w = list(ol.windows(0, 800 * day))
    assert w[0][0] == 0 and w[-1][1] == 800 * day
    assert all(b - a < 366 * day for a, b in w)
    assert all(w[i + 1][0] == w[i][1] + 1 for i in range(len(w) - 1))


def test_more_sessions_in_one_second_than_the_api_can_page_is_a_clear_error():
    d = make_double(0, seed=1)
    p = d.portal
    dol.add_line(p, 1, "Поддержка", [10])
    for _ in range(10300):
        dol._start(p, p.now - 5, 1, "livechat")
    d.start()
    try:
        with pytest.raises(B24Error) as err:
            list(ol.list_sessions(client_for(d), {}, p.now - 3600, p.now))
        assert err.value.code == "SLICE_TOO_DENSE" and "openlines:line=N" in str(err.value)
    finally:
        d.stop()
