"""Capacity maths without a portal: Erlang C against published values, arrivals and agents per
slot on hand-built data, and the forecasts on generated series with a known pattern and trend."""

from __future__ import annotations

import random
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from b24desk.capacity import forecast as fc
from b24desk.capacity.erlang import agents_needed, average_wait, erlang_c, service_level, traffic
from b24desk.capacity.slots import (
    LocalClock,
    agents_by_hour_and_day,
    daily_counts,
    hour_counts,
    occurrences,
    per_slot_mean,
    per_weekday_mean,
    period_days,
    slot_of,
    weekly_counts,
)
from b24desk.capacity.text import gap_text

MSK = ZoneInfo("Europe/Moscow")


# --- Erlang C ----------------------------------------------------------------------------------


def test_erlang_c_closed_forms():
    # M/M/1: the probability of waiting is the utilisation; M/M/2 at rho = 0.5: 1/3.
    assert erlang_c(1, 0.5) == pytest.approx(0.5)
    assert erlang_c(2, 1.0) == pytest.approx(1 / 3)
    assert erlang_c(3, 3.0) == 1.0 and erlang_c(2, 5.0) == 1.0  # unstable queue: everyone waits
    assert erlang_c(4, 0.0) == 0.0


def test_erlang_c_textbook_table():
    # Published Erlang C table value: 3 Erlangs on 5 servers -> P(wait) = 0.2362.
    assert erlang_c(5, 3.0) == pytest.approx(0.2362, abs=5e-5)


def test_call_centre_helper_worked_example():
    # "Erlang C formula made simple": 100 calls per 30 min, AHT 180 s, 80 % in 20 s.
    # A = 10 Erlangs; 11 agents: P(wait) 68.21 %, SL 39.0 %, ASA 122.8 s; 14 agents are needed (88.8 %).
    a = traffic(200, 180)
    assert a == pytest.approx(10.0)
    assert erlang_c(11, a) == pytest.approx(0.6821, abs=5e-5)
    assert service_level(11, a, 180, 20) == pytest.approx(0.390, abs=5e-4)
    assert average_wait(11, a, 180) == pytest.approx(122.8, abs=0.05)
    assert service_level(13, a, 180, 20) < 0.8 < service_level(14, a, 180, 20)
    assert service_level(14, a, 180, 20) == pytest.approx(0.888, abs=5e-4)
    assert agents_needed(200, 180, 20, 0.8) == 14


def test_erlang_c_mitan_example():
    # The classic Erlang-C walk-through: 360 calls per half hour, 4 min each, 55 agents, 15 s target:
    # A = 48, P(wait) 0.2387, ASA 8.2 s, service level 84.6 %.
    a = traffic(720, 240)
    assert a == pytest.approx(48.0)
    assert erlang_c(55, a) == pytest.approx(0.2387, abs=5e-5)
    assert average_wait(55, a, 240) == pytest.approx(8.18, abs=0.01)
    assert service_level(55, a, 240, 15) == pytest.approx(0.846, abs=5e-4)


def test_agents_needed_edges():
    assert agents_needed(0, 300, 600, 0.8) == 0
    # a trickle still needs someone on duty; more traffic never needs fewer agents
    assert agents_needed(0.1, 300, 600, 0.8) == 1
    seq = [agents_needed(lam, 300, 60, 0.8) for lam in range(1, 200, 7)]
    assert seq == sorted(seq)
    # large loads stay finite and stable (no factorial overflow)
    n = agents_needed(5000, 300, 20, 0.9)
    assert 417 < n < 460 and service_level(n, traffic(5000, 300), 300, 20) >= 0.9


# --- arrivals and agents per slot -------------------------------------------------------------


def _ts(*args) -> int:
    return int(datetime(*args, tzinfo=MSK).timestamp())


def _arrivals(times, start, end, tz=MSK):
    clock = LocalClock(start, end, tz)
    return per_slot_mean(hour_counts(times, clock), clock.hours())


def test_arrivals_mean_per_hour_over_the_weeks():
    # Two weeks from Monday 2026-11-02. Monday 10:xx: 3 tickets in week 1, 1 in week 2 -> 2.0 per hour.
    # Tuesday 23:59 local is still Tuesday (20:59 UTC), Wednesday 00:00 local is Wednesday.
    start, end = _ts(2026, 11, 2), _ts(2026, 11, 16)
    times = [
        _ts(2026, 11, 2, 10, 0),
        _ts(2026, 11, 2, 10, 30),
        _ts(2026, 11, 2, 10, 59, 59),
        _ts(2026, 11, 9, 10, 15),
        _ts(2026, 11, 3, 23, 59),
        _ts(2026, 11, 4, 0, 0),
        _ts(2026, 11, 16, 10, 0),
        _ts(2026, 11, 1, 10, 0),
    ]  # the last two fall outside
    arr = _arrivals(times, start, end)
    assert arr[(1, 10)] == 2.0
    assert arr[(2, 23)] == 0.5 and arr[(3, 0)] == 0.5
    assert sum(arr.values()) == pytest.approx(6 / 2)
    assert len(arr) == 168


def test_arrivals_partial_weeks_and_half_hour_zone():
    # A period from Wednesday to the next Tuesday holds one of each weekday; India is UTC+5:30.
    tz = ZoneInfo("Asia/Kolkata")
    start = int(datetime(2026, 11, 4, tzinfo=tz).timestamp())
    end = int(datetime(2026, 11, 11, tzinfo=tz).timestamp())
    t = int(datetime(2026, 11, 9, 9, 45, tzinfo=tz).timestamp())  # Monday 09:45 local = 04:15 UTC
    arr = _arrivals([t, t + 60], start, end, tz)
    assert arr[(1, 9)] == 2.0 and arr[(1, 4)] == 0.0
    assert sum(arr.values()) == 2.0 and len(arr) == 168


def test_dst_change_counts_the_hour_as_lived():
    # Berlin 2026-10-25: 02:00-03:00 happens twice (one occurrence holding both);
    # 2026-03-29: 02:00-03:00 never happens (no occurrence).
    tz = ZoneInfo("Europe/Berlin")
    start = int(datetime(2026, 10, 25, tzinfo=tz).timestamp())
    end = int(datetime(2026, 10, 26, tzinfo=tz).timestamp())
    first = int(datetime(2026, 10, 25, 2, 30, tzinfo=tz, fold=0).timestamp())
    second = int(datetime(2026, 10, 25, 2, 30, tzinfo=tz, fold=1).timestamp())
    assert second - first == 3600
    arr = _arrivals([first, second, int(datetime(2026, 10, 25, 3, 10, tzinfo=tz).timestamp())], start, end, tz)
    assert arr[(7, 2)] == 2.0 and arr[(7, 3)] == 1.0
    clock = LocalClock(start, end, tz)
    assert len(clock.segments) == 2 and len(clock.hours()) == 24
    spring = LocalClock(
        int(datetime(2026, 3, 29, tzinfo=tz).timestamp()), int(datetime(2026, 3, 30, tzinfo=tz).timestamp()), tz
    )
    assert len(spring.hours()) == 23 and (7, 2) not in occurrences(spring.hours())


def test_local_clock_sql_matches_python():
    """The store's grouping (SQL) and Python place every time in the same local weekday and hour,
    across both DST changes of a year."""
    import sqlite3

    tz = ZoneInfo("Europe/Berlin")
    start = int(datetime(2026, 1, 1, tzinfo=tz).timestamp())
    end = int(datetime(2027, 1, 1, tzinfo=tz).timestamp())
    clock = LocalClock(start, end, tz)
    assert len(clock.segments) == 3
    rnd = random.Random(5)
    times = [start + rnd.randrange(end - start) for _ in range(3000)]
    conn = sqlite3.connect(":memory:")
    conn.execute("create table t (ts integer)")
    conn.executemany("insert into t values (?)", [(x,) for x in times])
    expr, params = clock.sql("ts")
    got = [r[0] for r in conn.execute(f"select {expr} / 3600 from t order by rowid", params)]
    for ts, lh in zip(times, got):
        dt = datetime.fromtimestamp(ts, tz)
        assert lh == clock.hour(ts)
        assert slot_of(lh) == (dt.isoweekday(), dt.hour, dt.date().toordinal())


def test_agents_active_per_slot_and_day():
    start, end = _ts(2026, 11, 2), _ts(2026, 11, 16)
    clock = LocalClock(start, end, MSK)
    acts = [
        ("10", _ts(2026, 11, 2, 10, 5)),
        ("10", _ts(2026, 11, 2, 10, 50)),  # once per hour
        ("11", _ts(2026, 11, 2, 10, 20)),
        ("10", _ts(2026, 11, 9, 10, 0)),
        ("12", _ts(2026, 11, 9, 15, 0)),
    ]
    by_hour, per_date = agents_by_hour_and_day((clock.hour(ts), a) for a, ts in acts)
    by_slot = per_slot_mean(by_hour, clock.hours())
    assert by_slot[(1, 10)] == 1.5  # 2 agents in week 1, 1 in week 2
    assert by_slot[(1, 15)] == 0.5
    by_day = per_weekday_mean({d: len(a) for d, a in per_date.items()}, period_days(clock.hours()))
    assert by_day[1] == 2.0  # Monday 1: {10, 11}; Monday 2: {10, 12} -> (2 + 2) / 2
    assert by_day[2] == 0.0
    assert per_date[datetime(2026, 11, 9).toordinal()] == {"10", "12"}


def test_daily_and_weekly_counts_drop_cut_weeks():
    start, end = _ts(2026, 11, 4), _ts(2026, 11, 23)  # Wednesday .. Monday: one full week inside
    clock = LocalClock(start, end, MSK)
    times = [_ts(2026, 11, 5, 12)] * 3 + [_ts(2026, 11, 10, 12)] * 4 + [_ts(2026, 11, 22, 23)]
    daily = daily_counts(hour_counts(times, clock), clock.hours())
    assert len(daily) == 19 and sum(daily.values()) == 8
    assert weekly_counts(daily) == [("2026-W46", 4), ("2026-W47", 1)]


def test_gap_text():
    assert gap_text(2, 1, 10, 13, "ru") == "нужно ещё 2 сотрудника по понедельникам 10–13"
    assert gap_text(1, 3, 9, 10, "ru") == "нужен ещё 1 сотрудник по средам 9–10"
    assert gap_text(5, 5, lang="ru") == "нужно ещё 5 сотрудников по пятницам"
    assert gap_text(1, 7, 18, 20, "en") == "1 more agent needed on Sundays 18–20"


# --- forecasts ----------------------------------------------------------------------------------

PATTERN = (1.3, 1.2, 1.1, 1.0, 0.9, 0.3, 0.2)  # Monday .. Sunday


def _daily_series(days, rnd, base=100.0, slope=0.5, noise=3.0):
    return [(base + slope * i) * PATTERN[i % 7] + rnd.gauss(0, noise) for i in range(days)]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_daily_forecast_learns_weekly_pattern_and_trend(seed):
    """12 weeks of a weekly pattern on a linear trend with noise: a Holt-Winters model must win the
    backtest and forecast the next 4 weeks within 5 % MAPE of the noise-free truth (the bound of
    this test); seasonal naive, which ignores the trend, must do worse."""
    rnd = random.Random(seed)
    y = _daily_series(84, rnd)
    f = fc.daily(y, 28)
    truth = [(100 + 0.5 * i) * PATTERN[i % 7] for i in range(84, 112)]
    got = [p for p, _lo, _hi in f.values]
    assert f.method in ("holt_winters", "holt_winters_mul")
    err = fc.mape(truth, got)
    assert err < 0.05
    naive = fc._seasonal_naive(y, 28)
    assert err < fc.mape(truth, [p for p, _a, _b in naive])
    # the interval holds most of the truth and always its point
    inside = sum(lo <= t <= hi for t, (_p, lo, hi) in zip(truth, f.values))
    assert inside >= 0.75 * len(truth)
    assert all(lo <= p <= hi for p, lo, hi in f.values)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_weekly_forecast_follows_trend(seed):
    """Weekly totals of the same kind of series: the chosen method forecasts 6 weeks within 6 %
    MAPE of the truth, and the backtest MAPE is reported over 8 weeks."""
    rnd = random.Random(seed)
    days = _daily_series(84, rnd)
    weeks = [sum(days[i : i + 7]) for i in range(0, 84, 7)]
    f = fc.weekly(weeks, 6)
    truth = [sum((100 + 0.5 * i) * PATTERN[i % 7] for i in range(d, d + 7)) for d in range(84, 126, 7)]
    assert fc.mape(truth, [p for p, _a, _b in f.values]) < 0.06
    assert f.backtest_points == 8 and f.mape is not None and f.mape < 0.1
    assert f.method in fc.WEEKLY and set(f.scores) == set(fc.WEEKLY)


def test_forecast_short_and_degenerate_histories():
    f = fc.weekly([10, 12], 4)
    assert f.method == "naive" and f.mape is None and [p for p, _a, _b in f.values] == [12.0] * 4
    z = fc.weekly([0] * 10, 4)
    assert all(p == 0 for p, _a, _b in z.values) and z.mape is None
    assert fc.weekly([], 3).values == [(0.0, None, None)] * 3
    d = fc.daily([5, 0, 3], 7)
    assert len(d.values) == 7 and all(p >= 0 for p, _a, _b in d.values)
    assert fc.mape([0, 0], [1, 2]) is None
    assert fc.mape([10, 20], [11, 18]) == pytest.approx(0.1)


def test_capacity_settings_are_checked():
    from b24desk.capacity.report import CapacityError, settings

    assert settings({})["target_answer_s"] == 600
    assert settings({"targets": {"first_response_time": {"target": 300}}})["target_answer_s"] == 300
    for bad in (
        {"norm_per_agent_day": [20, 15]},
        {"norm_per_agent_day": "15-20"},
        {"target_share": 1.5},
        {"chat_sources": "openlines"},
        {"chat_aht_s": -5},
        {"backtest_weeks": 0},
        {"occupancy": True},
    ):
        with pytest.raises(CapacityError) as exc:
            settings({"capacity": bad})
        assert exc.value.code == "bad_config"
