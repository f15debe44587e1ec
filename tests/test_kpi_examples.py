"""kpi-examples.md reproduced exactly: five tasks, October 2026 in +03:00, every number of its table."""

from __future__ import annotations

import pytest
from kpi_support import CONFIG, PORTAL, add_ticket, close, reopen, ts

from b24desk.kpi import build_report

ANNA, BORIS, CLARA = "1", "2", "3"


def seed(db, with_status=True, with_event=True):
    kw = dict(with_status=with_status, with_event=with_event)
    add_ticket(
        db,
        1,
        "2026-10-02 10:00",
        ANNA,
        "10",
        priority="high",
        state="resolved",
        resolved_at=ts("2026-10-02 12:00"),
        closed_at=ts("2026-10-02 12:00"),
        rating=5,
        events=[
            ("2026-10-02 10:05", "reply", "10"),
            *close("2026-10-02 12:00", "10", **kw),
            ("2026-10-02 13:00", "rated", ANNA, "mark", None, "P"),
        ],
    )
    add_ticket(
        db,
        2,
        "2026-10-05 09:00",
        BORIS,
        "18",
        state="resolved",
        resolved_at=ts("2026-10-08 15:00"),
        closed_at=ts("2026-10-08 15:00"),
        rating=1,
        events=[
            ("2026-10-05 11:00", "reply", "10"),
            ("2026-10-05 12:00", "assigned", None, "RESPONSIBLE_ID", "10", "18"),
            ("2026-10-06 09:00", "reply", "18"),
            *close("2026-10-07 09:00", None, **kw),
            *reopen("2026-10-08 09:00", BORIS, **kw),
            *close("2026-10-08 15:00", "18", frm="2", **kw),
            ("2026-10-08 16:00", "rated", BORIS, "mark", None, "N"),
        ],
    )
    add_ticket(
        db,
        3,
        "2026-10-30 18:00",
        ANNA,
        "10",
        deadline=ts("2026-10-31 18:00"),
        state="resolved",
        resolved_at=ts("2026-11-02 10:00"),
        closed_at=ts("2026-11-02 10:00"),
        events=[*close("2026-11-02 10:00", "10", frm="2", **kw)],
    )
    add_ticket(
        db,
        4,
        "2026-09-28 10:00",
        CLARA,
        "10",
        state="resolved",
        resolved_at=ts("2026-09-29 10:00"),
        closed_at=ts("2026-09-29 10:00"),
        events=[*close("2026-09-29 10:00", "10", frm="2", **kw)],
    )
    add_ticket(
        db,
        5,
        "2026-09-30 10:00",
        CLARA,
        "10",
        priority="low",
        deadline=ts("2026-10-01 10:00"),
        state="resolved",
        resolved_at=ts("2026-10-03 10:00"),
        closed_at=ts("2026-10-03 10:00"),
        events=[("2026-10-01 08:00", "reply", "10"), *close("2026-10-03 10:00", "10", **kw)],
    )


def values(report):
    return {k: v["value"] for k, v in report["kpis"].items()}


@pytest.mark.parametrize(
    "with_status,with_event",
    [(True, True), (True, False), (False, True)],
    ids=["status+events", "status-only", "events-only"],
)
def test_worked_example(db, with_status, with_event):
    seed(db, with_status, with_event)
    r = build_report(db, PORTAL, "2026-10-01", "2026-11-01", config=CONFIG)
    v = values(r)
    assert r["period"] == {"from": "2026-10-01T00:00:00+03:00", "to": "2026-11-01T00:00:00+03:00"}
    assert v["tickets_total"] == 3
    assert v["tickets_per_day"] == pytest.approx(3 / 31)
    assert v["first_response_time"] == {"avg": 3750, "median": 300, "p90": 7200, "count": 2}
    assert v["unanswered_share"] == pytest.approx(1 / 3)
    assert v["resolution_time"] == {"avg": 182400, "median": 259200, "p90": 280800, "count": 3}
    assert v["resolved_count"] == 3
    assert v["resolved_share"] == pytest.approx(2 / 3)
    assert v["backlog"] == 1
    assert v["overdue_count"] == 2 and v["overdue_share"] == 1.0
    assert v["transferred_share"] == pytest.approx(1 / 3)
    assert v["transfers_per_ticket"] == pytest.approx(1 / 3)
    assert v["resolved_by_priority"] == {"high": 1, "normal": 1, "low": 1, "critical": 0}
    assert v["fcr_share"] == pytest.approx(2 / 3)
    assert v["one_touch_share"] == pytest.approx(2 / 3)
    assert v["reopen_share"] == pytest.approx(1 / 3)
    assert v["rated_share"] == pytest.approx(2 / 3)
    assert v["csat"] == 0.5
    assert v["interactions_per_ticket"] == pytest.approx(4 / 3)
    assert v["contacts_per_customer"] == 1.5
    assert v["repeat_contact_share"] == 0.5


def test_worked_example_september_is_the_previous_period(db):
    seed(db)
    r = build_report(db, PORTAL, "2026-10-01", "2026-11-01", config=CONFIG)
    assert r["previous"] == {"from": "2026-09-01T00:00:00+03:00", "to": "2026-10-01T00:00:00+03:00"}
    k = r["kpis"]
    # September: T4 and T5 created; T4 resolved; T5 open at the end of September.
    assert k["tickets_total"]["previous"] == 2 and k["tickets_total"]["delta"] == 1
    assert k["resolved_count"]["previous"] == 1
    assert k["backlog"]["previous"] == 1
    assert k["resolution_time"]["previous"] == {"avg": 86400, "median": 86400, "p90": 86400, "count": 1}
