"""The KPI maths (engine.py) on hand-built event logs, one or more tests per KPI, traps included.

Period: October 2026 in Moscow (+03:00). Tickets are store-shaped dicts, events are
``(at, kind, actor, field, from, to)`` tuples, as the loader hands them over.
"""

from __future__ import annotations

import pytest
from kpi_support import ts

from b24desk.kpi.calendar import WorkCalendar
from b24desk.kpi.engine import KPI_KEYS, Context, aggregate, ticket_facts
from b24desk.kpi.load import TICKET_COLUMNS
from b24desk.kpi.stats import nearest_rank, summary

START, END = ts("2026-10-01 00:00"), ts("2026-11-01 00:00")
CAL = WorkCalendar("Europe/Moscow")


def T(created, author="c1", resp="10", **kw) -> dict:
    t = dict.fromkeys(TICKET_COLUMNS)
    t.update(
        source="task",
        source_id=str(id(kw)),
        priority="normal",
        author_id=author,
        customer=author,
        responsible_id=resp,
        created_at=ts(created),
        state="open",
    )
    t.update(kw)
    return t


def E(when, kind, actor="10", field=None, fv=None, tv=None):
    return (ts(when), kind, actor, field, fv, tv)


def kpis(*tickets, start=START, end=END, ctx=None, **ctx_kw):
    """``tickets``: (ticket, [events]) pairs -> {kpi: engine.Value}."""
    ctx = ctx or Context(calendar=CAL, **ctx_kw)
    facts = [ticket_facts(t, sorted(evs), start, end, ctx) for t, evs in tickets]
    facts = [f for f in facts if f is not None]
    days = 31 if (start, end) == (START, END) else (end - start) / 86400
    return aggregate(facts, start, end, days, ctx)


def v(result, key):
    return result[key].value


# --- populations and counts ------------------------------------------------------------------


def test_tickets_total_counts_from_inclusive_to_exclusive():
    r = kpis(
        (T("2026-10-01 00:00"), []),
        (T("2026-10-31 23:59"), []),
        (T("2026-11-01 00:00"), []),
        (T("2026-09-30 23:59"), []),
    )
    assert v(r, "tickets_total") == 2
    assert v(r, "tickets_per_day") == pytest.approx(2 / 31)


def test_empty_population_is_null_never_zero():
    r = kpis()
    for key in KPI_KEYS:
        if key in ("ccei",):
            continue
        if key in ("tickets_total", "resolved_count", "backlog", "overdue_count", "tickets_per_day"):
            assert v(r, key) == 0, key  # counts of nothing are 0
        elif key == "task_efficiency":
            assert v(r, key) == 100.0  # Bitrix24's rule: 100 when V = P = 0
        elif key == "resolved_by_priority":
            assert v(r, key) == {"low": 0, "normal": 0, "high": 0, "critical": 0}
        else:
            assert v(r, key) is None, key


def test_resolved_after_to_is_open_at_to():
    t = T("2026-10-20 10:00", state="resolved", resolved_at=ts("2026-11-02 10:00"), closed_at=ts("2026-11-02 10:00"))
    r = kpis((t, [E("2026-11-02 10:00", "status", fv="2", tv="5"), E("2026-11-02 10:00", "resolved")]))
    assert v(r, "resolved_count") == 0
    assert v(r, "resolution_time") is None
    assert v(r, "resolved_share") == 0
    assert v(r, "backlog") == 1
    assert v(r, "unanswered_share") == 1.0


def test_status_4_then_5_is_one_resolution_at_4():
    evs = [
        E("2026-10-02 12:00", "status", fv="3", tv="4"),
        E("2026-10-02 12:00", "resolved"),
        E("2026-10-03 09:00", "status", "1", fv="4", tv="5"),
        E("2026-10-03 09:00", "resolved", "1"),
    ]  # a naive adapter's second resolved event
    r = kpis((T("2026-10-02 10:00"), evs))
    assert v(r, "resolved_count") == 1
    assert v(r, "resolution_time")["avg"] == 7200
    assert v(r, "reopen_share") == 0


def test_status_only_logs_use_the_task_status_mapping():
    evs = [
        E("2026-10-02 12:00", "status", fv="3", tv="5"),
        E("2026-10-03 12:00", "status", fv="5", tv="2"),
        E("2026-10-04 12:00", "status", fv="2", tv="4"),
    ]
    r = kpis((T("2026-10-02 10:00"), evs))
    assert v(r, "resolution_time")["avg"] == ts("2026-10-04 12:00") - ts("2026-10-02 10:00")
    assert v(r, "reopen_share") == 1.0


def test_resolved_in_period_reopened_after_to_counts_as_resolved():
    evs = [E("2026-10-10 10:00", "resolved"), E("2026-11-03 10:00", "reopened", "c1")]
    r = kpis((T("2026-10-09 10:00"), evs))
    assert v(r, "resolved_count") == 1
    assert v(r, "reopen_share") == 0  # the reopen after `to` did not happen yet
    assert v(r, "backlog") == 0


def test_reopened_before_to_and_still_open_is_not_resolved():
    evs = [E("2026-10-10 10:00", "resolved"), E("2026-10-20 10:00", "reopened", "c1")]
    r = kpis((T("2026-10-09 10:00"), evs))
    assert v(r, "resolved_count") == 0
    assert v(r, "backlog") == 1


def test_reopen_inside_and_outside_the_period():
    # Resolved and reopened in September, resolved again in October: in R, and ever reopened.
    before = (
        T("2026-09-10 10:00"),
        [E("2026-09-11 10:00", "resolved"), E("2026-09-12 10:00", "reopened", "c1"), E("2026-10-05 10:00", "resolved")],
    )
    # Closed in September, reopened in October (so active), resolved again in October.
    inside = (
        T("2026-09-10 10:00", author="c2"),
        [E("2026-09-11 10:00", "resolved"), E("2026-10-02 10:00", "reopened", "c2"), E("2026-10-03 10:00", "resolved")],
    )
    # Closed in September for good: not in any October population.
    closed = (T("2026-09-10 10:00", author="c3"), [E("2026-09-11 10:00", "resolved")])
    r = kpis(before, inside, closed)
    assert v(r, "resolved_count") == 2
    assert v(r, "reopen_share") == 1.0
    assert r["task_efficiency"].n == 2  # P = |A|: the September-closed ticket is not active
    assert (
        v(r, "resolution_time")["avg"]
        == (ts("2026-10-05 10:00") - ts("2026-09-10 10:00") + ts("2026-10-03 10:00") - ts("2026-09-10 10:00")) / 2
    )


def test_backlog_counts_open_at_to_created_before_to():
    r = kpis(
        (T("2025-01-01 10:00"), []),  # open for ages
        (T("2026-10-31 23:00"), []),
        (T("2026-10-05 10:00"), [E("2026-10-06 10:00", "rejected")]),
        (T("2026-11-01 00:00"), []),
    )  # created at `to`
    assert v(r, "backlog") == 2


# --- first response, unanswered ------------------------------------------------------------------


def test_first_response_counts_agent_replies_before_to_only():
    a = (
        T("2026-10-02 10:00", author="c1"),
        [
            E("2026-10-02 10:01", "reply", "c1"),  # the author
            E("2026-10-02 10:02", "reply", "0"),  # the system
            E("2026-10-02 10:03", "reply", "99"),  # a bot
            E("2026-10-02 10:10", "reply", "10"),
        ],
    )
    b = (T("2026-10-31 22:00", author="c2"), [E("2026-11-01 09:00", "reply", "10")])  # after `to`
    r = kpis(a, b, bots=frozenset({"99"}))
    assert v(r, "first_response_time") == {"avg": 600, "median": 600, "p90": 600, "count": 1}
    assert v(r, "unanswered_share") == 0.5


def test_first_response_business_seconds_skip_the_weekend():
    # Friday 17:30 -> Monday 09:30 Moscow: 30 min + 30 min of working time.
    r = kpis((T("2026-10-02 17:30"), [E("2026-10-05 09:30", "reply")]))
    assert v(r, "first_response_time")["avg"] == 64 * 3600
    assert v(r, "first_response_time_business")["avg"] == 3600


def test_unanswered_excludes_closed_tickets():
    r = kpis((T("2026-10-02 10:00"), [E("2026-10-02 11:00", "rejected")]), (T("2026-10-02 10:00"), []))
    assert v(r, "unanswered_share") == 0.5


def test_nearest_rank_percentiles():
    assert nearest_rank([1, 2, 3, 4], 50) == 2  # the median of 4 values is the 2nd
    assert nearest_rank(list(range(1, 11)), 90) == 9  # ceil(0.9 * 10) = 9, no float drift
    assert nearest_rank(list(range(1, 12)), 90) == 10  # ceil(9.9) = 10
    assert nearest_rank([7], 90) == 7
    assert nearest_rank([], 50) is None
    assert summary([300, 100, 400, 200]) == {"avg": 250, "median": 200, "p90": 400, "count": 4}
    r = kpis(*[(T("2026-10-02 10:00"), [E(f"2026-10-02 10:{m:02d}", "reply")]) for m in (1, 2, 3, 4)])
    assert v(r, "first_response_time")["median"] == 120


# --- overdue, efficiency -------------------------------------------------------------------------


def test_overdue_own_deadline_and_close_time():
    late = (T("2026-10-01 10:00", deadline=ts("2026-10-02 10:00")), [E("2026-10-03 10:00", "resolved")])
    on_time = (T("2026-10-01 10:00", deadline=ts("2026-10-02 10:00")), [E("2026-10-02 09:00", "resolved")])
    open_late = (T("2026-10-20 10:00", deadline=ts("2026-10-25 10:00")), [])
    open_ok = (T("2026-10-30 10:00", deadline=ts("2026-11-05 10:00")), [])
    no_deadline = (T("2026-10-20 10:00"), [])
    r = kpis(late, on_time, open_late, open_ok, no_deadline)
    assert v(r, "overdue_count") == 2
    assert v(r, "overdue_share") == 0.5  # 2 of the 4 with a deadline
    assert v(r, "task_efficiency") == pytest.approx(100 - 100 * 2 / 5)


def test_overdue_from_sla_in_business_time():
    # Normal priority SLA of 2 business hours: Friday 17:00 + 2 h = Monday 10:00.
    t = T("2026-10-02 17:00")
    early = kpis((t, [E("2026-10-05 09:59", "resolved")]), sla_resolution={"normal": 7200})
    late = kpis((t, [E("2026-10-05 10:01", "resolved")]), sla_resolution={"normal": 7200})
    assert v(early, "overdue_count") == 0 and v(late, "overdue_count") == 1
    none = kpis((t, [E("2026-10-05 10:01", "resolved")]), sla_resolution={"high": 7200})
    assert v(none, "overdue_share") is None  # no deadline for normal: not in the denominator


def test_deadline_moved_after_to_is_read_as_of_to():
    t = T("2026-10-20 10:00", deadline=ts("2026-12-01 10:00"))
    evs = [
        E(
            "2026-11-05 10:00",
            "field_changed",
            "10",
            "deadline",
            str(ts("2026-10-25 10:00")),
            str(ts("2026-12-01 10:00")),
        )
    ]
    assert v(kpis((t, evs)), "overdue_count") == 1


def test_task_efficiency_per_agent():
    r = kpis(
        (T("2026-10-01 10:00", resp="10", deadline=ts("2026-10-01 11:00")), []),
        (T("2026-10-01 10:00", resp="10"), []),
        (T("2026-10-01 10:00", resp="18"), []),
    )
    assert v(r, "task_efficiency") == pytest.approx(100 - 100 / 3)
    assert r["task_efficiency"].detail["per_agent"] == {"10": 50.0, "18": 100.0}


# --- transfers, FCR, one-touch, reopen, qualification -----------------------------------------


def test_transfers_initial_assignment_and_after_to():
    t1 = (
        T("2026-10-02 10:00", resp="18"),
        [
            E("2026-10-02 10:00", "assigned", "1", "RESPONSIBLE_ID", None, "10"),
            E("2026-10-03 10:00", "assigned", "1", "RESPONSIBLE_ID", "10", "18"),
        ],
    )
    t2 = (T("2026-10-30 10:00", resp="18"), [E("2026-11-02 10:00", "assigned", "1", "RESPONSIBLE_ID", "10", "18")])
    t3 = (
        T("2026-10-30 10:00"),
        [
            E("2026-10-30 11:00", "escalated", "10"),
            E("2026-10-30 12:00", "assigned", "1", "RESPONSIBLE_ID", "10", "18"),
        ],
    )
    r = kpis(t1, t2, t3)
    assert v(r, "transferred_share") == pytest.approx(2 / 3)
    assert v(r, "transfers_per_ticket") == pytest.approx(1)  # (1 + 0 + 2) / 3


def test_transfer_after_to_keeps_the_old_responsible_for_grouping():
    ctx = Context(calendar=CAL)
    t = T("2026-10-30 10:00", resp="18")
    f = ticket_facts(t, [E("2026-11-02 10:00", "assigned", "1", "RESPONSIBLE_ID", "10", "18")], START, END, ctx)
    assert f.resp_end == "10" and f.resp_created == "10" and f.transfers == 0


def test_fcr_and_one_touch():
    ok = (T("2026-10-02 10:00"), [E("2026-10-02 10:10", "reply"), E("2026-10-02 11:00", "resolved")])
    two = (
        T("2026-10-02 10:00"),
        [E("2026-10-02 10:10", "reply"), E("2026-10-02 10:20", "reply"), E("2026-10-02 11:00", "resolved")],
    )
    moved = (
        T("2026-10-02 10:00"),
        [
            E("2026-10-02 10:05", "assigned", "1", "RESPONSIBLE_ID", "10", "18"),
            E("2026-10-02 10:10", "reply", "18"),
            E("2026-10-02 11:00", "resolved"),
        ],
    )
    reopened = (
        T("2026-10-02 10:00"),
        [E("2026-10-02 11:00", "resolved"), E("2026-10-02 12:00", "reopened", "c1"), E("2026-10-02 13:00", "resolved")],
    )
    r = kpis(ok, two, moved, reopened)
    assert v(r, "fcr_share") == 0.25
    assert v(r, "one_touch_share") == 0.75
    assert v(r, "reopen_share") == 0.25


def test_correctly_qualified():
    changed = (T("2026-10-02 10:00", type="b"), [E("2026-10-03 10:00", "field_changed", "10", "type", "a", "b")])
    first_set = (T("2026-10-02 10:00", type="a"), [E("2026-10-02 10:05", "field_changed", "10", "type", None, "a")])
    later = (T("2026-10-30 10:00", type="b"), [E("2026-11-03 10:00", "field_changed", "10", "type", "a", "b")])
    r = kpis(changed, first_set, later)
    assert v(r, "correctly_qualified_share") == pytest.approx(2 / 3)


# --- customers ------------------------------------------------------------------------------


def test_repeat_contacts_and_contacts_per_customer():
    history = {
        "anna": sorted([ts("2026-09-20 10:00"), ts("2026-10-05 10:00")]),
        "boris": sorted([ts("2026-08-20 10:00"), ts("2026-10-05 10:00")]),
        "clara": sorted([ts("2026-10-05 10:00"), ts("2026-10-06 10:00")]),
    }
    r = kpis(
        (T("2026-10-05 10:00", customer="anna"), []),  # 15 days after her September ticket
        (T("2026-10-05 10:00", customer="boris"), []),  # 46 days: not a repeat
        (T("2026-10-05 10:00", customer="clara"), []),
        (T("2026-10-06 10:00", customer="clara"), []),  # a day after her first
        customer_history=history,
    )
    assert v(r, "repeat_contact_share") == pytest.approx(2 / 3)
    assert v(r, "contacts_per_customer") == pytest.approx(4 / 3)


def _repeat_reference(customers: dict, history: dict, window: int) -> int:
    """The rule written plainly (kpi.md: a customer of C with another ticket created within the
    window before one of theirs), as the engine counted it before CustomerHistory."""
    repeat = 0
    for cust, times in customers.items():
        hist = history.get(cust) or sorted(times)
        if any(len([h for h in hist if c - window <= h <= c]) >= 2 for c in times):
            repeat += 1
    return repeat


@pytest.mark.parametrize("seed", range(40))
def test_repeat_customers_from_a_customer_history_equal_the_plain_rule(seed):
    """The engine visits only the customers with a repeat ticket in the history (a set test
    each); the count equals the plain rule for tallies of any part of the history, tickets the
    history does not hold, customers it does not know, and after a list changed in place."""
    import random

    from b24desk.kpi.engine import CustomerHistory, _repeat_customers

    rnd = random.Random(seed)
    window = rnd.choice((5, 30, 90))
    # tickets of one customer at the same second too (choices: with replacement)
    plain = {f"c{i}": sorted(rnd.choices(range(200), k=rnd.randint(1, 4))) for i in range(rnd.randint(1, 60))}
    history = CustomerHistory({k: list(v) for k, v in plain.items()})
    for _ in range(4):
        customers = {}
        for cust, times in plain.items():
            picked = [c for c in times if rnd.random() < 0.6]
            if rnd.random() < 0.1:
                picked.append(rnd.randrange(200) + 0.5)  # a ticket the history does not hold
            if picked:
                customers[cust] = picked
        for i in range(rnd.randint(0, 3)):  # customers the history does not know
            customers[f"new{i}"] = rnd.sample(range(200), rnd.randint(1, 3))
        want = _repeat_reference(customers, plain, window)
        assert _repeat_customers(customers, history, window) == want
        assert _repeat_customers(customers, plain, window) == want  # a plain dict (no history kept)
        # a list changed in place (Loaded.reload patches the history), then announced
        cust = rnd.choice(list(plain))
        extra = rnd.randrange(200)
        plain[cust] = sorted(plain[cust] + [extra])
        history[cust].append(extra)
        history[cust].sort()
        history.changed({cust} if rnd.random() < 0.7 else None)  # that customer's, or anyone's
    assert _repeat_customers({}, history, window) == 0


def test_integer_percentiles_equal_exact_fractions():
    """The report's 50 and 90 are ranked in integers (no Fraction a time); any n gives the same
    rank as the exact rational ceil."""
    import math
    from fractions import Fraction

    for n in range(1, 400):
        values = list(range(n))
        for p in (1, 10, 25, 50, 75, 90, 95, 99, 100):
            assert nearest_rank(values, p) == values[max(math.ceil(Fraction(p, 100) * n), 1) - 1]
        assert nearest_rank(values, 90.0) == nearest_rank(values, 90)  # a float p: the exact path


def test_tickets_per_agent_day_by_responsible_at_creation():
    moved = (T("2026-10-02 10:00", resp="18"), [E("2026-10-03 10:00", "assigned", "1", "RESPONSIBLE_ID", "10", "18")])
    r = kpis(
        moved,
        (T("2026-10-02 10:00", resp="10"), []),
        (T("2026-10-02 10:00", resp="18"), []),
        (T("2026-10-02 10:00", author="10", resp="10"), []),
    )  # self-assigned: not an agent's
    d = r["tickets_per_agent_day"].detail
    assert d["working_days"] == 22  # October 2026, Russia
    assert d["per_agent"] == {"10": 2 / 22, "18": 1 / 22}
    assert v(r, "tickets_per_agent_day") == pytest.approx(1.5 / 22)


def test_support_departments_limit_who_is_an_agent():
    r = kpis(
        (T("2026-10-02 10:00"), [E("2026-10-02 10:05", "reply", "55"), E("2026-10-02 10:10", "reply", "10")]),
        support_members=frozenset({"10"}),
    )
    assert v(r, "first_response_time")["avg"] == 600


# --- interactions, handle time, scores ------------------------------------------------------


def test_interactions_and_handle_time():
    a = (
        T("2026-10-02 10:00", handle_time=600),
        [
            E("2026-10-02 10:05", "reply"),
            E("2026-10-02 10:06", "customer_message", "c1"),
            E("2026-10-02 10:07", "comment"),
            E("2026-10-02 10:08", "call_out"),
            E("2026-10-02 11:00", "resolved"),
        ],
    )
    b = (T("2026-10-02 10:00"), [E("2026-10-02 11:00", "resolved")])
    r = kpis(a, b)
    assert v(r, "interactions_per_ticket") == 1.5
    assert v(r, "handle_time") == {"avg": 600, "median": 600, "p90": 600, "count": 1}
    assert v(kpis(b), "handle_time") is None


def test_handle_time_counts_only_work_logged_before_to():
    """AHT as of ``to``: ``worked`` events before it; the ticket's current total is not read."""
    a = (
        T("2026-10-02 10:00", handle_time=4500),
        [
            E("2026-09-30 09:00", "worked", tv="300"),  # before the period: still its work
            E("2026-10-02 10:30", "worked", tv="600"),
            E("2026-10-02 11:00", "resolved"),
            E("2026-11-01 00:00", "worked", tv="1800"),  # at `to`: not yet
            E("2026-11-03 09:00", "worked", "11", tv="1800"),
        ],
    )  # a control call after `to`
    b = (
        T("2026-10-03 10:00", handle_time=900),  # all its work after `to`: null
        [E("2026-10-03 11:00", "resolved"), E("2026-11-02 10:00", "worked", tv="900")],
    )
    c = (
        T("2026-10-04 10:00", handle_time=100),  # work before creation's period end
        [E("2026-10-04 10:10", "worked", tv="100"), E("2026-10-04 11:00", "resolved")],
    )
    r = kpis(a, b, c)
    assert v(r, "handle_time") == {"avg": 500, "median": 100, "p90": 900, "count": 2}
    assert r["handle_time"].n == 2
    # the month after: the late work counts there (as of its own `to`), not earlier
    nov = kpis(a, b, c, start=END, end=ts("2026-12-01 00:00"))
    assert v(nov, "handle_time") is None  # none of them is resolved in November (not in R)
    assert v(kpis(a, end=ts("2026-11-04 00:00")), "handle_time")["avg"] == 4500


def test_rating_given_after_to_counts_in_the_resolution_period():
    t = T("2026-10-31 10:00", rating=5, nps=10, ces=5)
    r = kpis((t, [E("2026-10-31 20:00", "resolved"), E("2026-11-01 09:00", "rated", "c1", "mark", None, "P")]))
    assert v(r, "rated_share") == 1.0 and v(r, "csat") == 1.0 and v(r, "nps") == 100 and v(r, "ces") == 1.0


def test_csat_nps_ces():
    rows = []
    for i, (rating, nps, ces) in enumerate([(5, 10, 5), (4, 9, 4), (3, 7, 5), (1, 0, None), (None, None, None)]):
        rows.append(
            (
                T("2026-10-02 10:00", author=f"c{i}", rating=rating, nps=nps, ces=ces),
                [E("2026-10-02 11:00", "resolved")],
            )
        )
    r = kpis(*rows)
    assert v(r, "rated_share") == 0.8
    assert v(r, "csat") == 0.5
    assert r["csat"].detail["avg_rating"] == 13 / 4
    assert v(r, "nps") == 100 * (2 - 1) / 4
    assert v(r, "ces") == pytest.approx(2 / 3)


def test_callback_after_resolution_before_to():
    after = (T("2026-10-02 10:00"), [E("2026-10-02 11:00", "resolved"), E("2026-10-03 11:00", "call_out")])
    before = (T("2026-10-02 10:00"), [E("2026-10-02 10:30", "call_out"), E("2026-10-02 11:00", "resolved")])
    late = (T("2026-10-31 10:00"), [E("2026-10-31 11:00", "resolved"), E("2026-11-02 11:00", "call_out")])
    assert v(kpis(after, before, late), "callback_share") == pytest.approx(1 / 3)


# --- wait times, top agents, grouping by priority ---------------------------------------------


def test_requester_and_agent_wait_time_by_status_bucket():
    buckets = {"task": {"2": "work", "3": "work", "6": "wait_customer", "5": "done"}}
    evs = [
        E("2026-10-02 10:00", "status", fv="2", tv="3"),
        E("2026-10-02 12:00", "status", fv="3", tv="6"),
        E("2026-10-03 12:00", "status", fv="6", tv="3"),
        E("2026-10-03 13:00", "status", fv="3", tv="5"),
    ]
    r = kpis((T("2026-10-02 09:00"), evs), status_buckets=buckets)
    assert v(r, "requester_wait_time")["avg"] == 3 * 3600 + 3600  # 09-12 and 12-13 next day
    assert v(r, "agent_wait_time")["avg"] == 86400
    # Friday 12:00 -> Saturday 12:00: only Friday 12:00-18:00 is working time
    assert v(r, "agent_wait_time_business")["avg"] == 6 * 3600
    # the default task buckets have no wait_customer status: the agent wait is unknown, not 0
    assert v(kpis((T("2026-10-02 09:00"), evs)), "agent_wait_time") is None


def test_top_agents_and_resolved_by_priority():
    rows = [
        (
            T("2026-10-02 10:00", resp="10", priority="high"),
            [E("2026-10-02 10:10", "reply"), E("2026-10-02 11:00", "resolved")],
        ),
        (T("2026-10-02 10:00", resp="10"), [E("2026-10-02 10:30", "reply"), E("2026-10-02 11:00", "resolved")]),
        (T("2026-10-02 10:00", resp="18", priority="critical", rating=5), [E("2026-10-02 11:00", "resolved")]),
        (T("2026-10-02 10:00", resp="18", priority="low"), []),
    ]
    r = kpis(*rows)
    assert v(r, "resolved_by_priority") == {"low": 0, "normal": 1, "high": 1, "critical": 1}
    assert r["resolved_by_priority"].detail["created"] == {"low": 1, "normal": 1, "high": 1, "critical": 1}
    assert r["resolved_by_priority"].detail["resolved_share"]["low"] == 0
    top = v(r, "top_agents")
    assert [(a["agent"], a["resolved"]) for a in top] == [("10", 2), ("18", 1)]
    assert top[0]["frt_median"] == 600 and top[0]["fcr"] == 1.0 and top[0]["csat"] is None
    assert top[1]["csat"] == 1.0


def test_a_reply_stamped_before_creation_counts_as_0_s_in_the_top_agents_too():
    """Clock skew: a first reply stamped before ``created_at`` is 0 s for the period's first-response
    time and for the agent's first-reply median in the top agents table alike (it was negative there)."""
    rows = [
        (T("2026-10-02 10:00", resp="10"), [E("2026-10-02 09:58", "reply"), E("2026-10-02 11:00", "resolved")]),
    ]
    r = kpis(*rows)
    assert v(r, "first_response_time")["median"] == 0
    assert v(r, "top_agents")[0]["frt_median"] == 0
