"""Period presets and comparison periods (interfaces.md "Saved reports"): calendar units in the portal's zone."""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from b24desk.kpi.presets import PRESETS, compare_period, resolve_preset

MSK = ZoneInfo("Europe/Moscow")
NOW = datetime(2026, 11, 18, 15, 30, tzinfo=MSK)  # a Wednesday


def d(s, tz=MSK):
    return datetime.fromisoformat(s).replace(tzinfo=tz)


def test_names_are_the_interface_names():
    assert PRESETS == (
        "today",
        "yesterday",
        "this_week",
        "last_week",
        "last_7_days",
        "last_30_days",
        "this_month",
        "last_month",
        "this_quarter",
        "last_quarter",
        "this_year",
    )


@pytest.mark.parametrize(
    "name,start,end",
    [
        ("today", "2026-11-18", "2026-11-19"),
        ("yesterday", "2026-11-17", "2026-11-18"),
        ("this_week", "2026-11-16", "2026-11-23"),
        ("last_week", "2026-11-09", "2026-11-16"),
        ("last_7_days", "2026-11-12", "2026-11-19"),
        ("last_30_days", "2026-10-20", "2026-11-19"),
        ("this_month", "2026-11-01", "2026-12-01"),
        ("last_month", "2026-10-01", "2026-11-01"),
        ("this_quarter", "2026-10-01", "2027-01-01"),
        ("last_quarter", "2026-07-01", "2026-10-01"),
        ("this_year", "2026-01-01", "2027-01-01"),
    ],
)
def test_presets_are_half_open_local_calendar_units(name, start, end):
    a, b = resolve_preset(name, NOW, MSK)
    assert (a, b) == (d(start), d(end))
    assert a.utcoffset() == MSK.utcoffset(a)


def test_now_is_read_in_the_portal_zone():
    # 22:30 UTC on the 18th is already the 19th in Moscow
    a, b = resolve_preset("today", datetime(2026, 11, 18, 22, 30, tzinfo=timezone.utc), MSK)
    assert (a, b) == (d("2026-11-19"), d("2026-11-20"))
    # a naive now is taken as local
    assert resolve_preset("today", datetime(2026, 11, 18, 23, 59), MSK)[0] == d("2026-11-18")


def test_year_and_week_edges():
    jan = datetime(2026, 1, 1, 0, 0, tzinfo=MSK)  # a Thursday
    assert resolve_preset("last_week", jan, MSK) == (d("2025-12-22"), d("2025-12-29"))
    assert resolve_preset("last_month", jan, MSK) == (d("2025-12-01"), d("2026-01-01"))
    assert resolve_preset("last_quarter", jan, MSK) == (d("2025-10-01"), d("2026-01-01"))
    assert resolve_preset("yesterday", jan, MSK) == (d("2025-12-31"), d("2026-01-01"))


def test_dst_zone_keeps_midnights():
    berlin = ZoneInfo("Europe/Berlin")
    a, b = resolve_preset("last_month", datetime(2026, 11, 2, 12, tzinfo=berlin), berlin)
    assert (a.hour, b.hour) == (0, 0) and b.timestamp() - a.timestamp() == 31 * 86400 + 3600


def test_unknown_preset_is_a_value_error():
    with pytest.raises(ValueError, match="last_decade"):
        resolve_preset("last_decade", NOW, MSK)


def test_compare_previous_and_last_year():
    assert compare_period(d("2026-10-01"), d("2026-11-01"), "previous", MSK) == (d("2026-09-01"), d("2026-10-01"))
    assert compare_period(d("2026-10-01"), d("2027-01-01"), "previous", MSK) == (d("2026-07-01"), d("2026-10-01"))
    assert compare_period(d("2026-11-16"), d("2026-11-23"), "previous", MSK) == (d("2026-11-09"), d("2026-11-16"))
    assert compare_period(d("2026-11-18"), d("2026-11-19"), "previous", MSK) == (d("2026-11-17"), d("2026-11-18"))
    assert compare_period(d("2026-10-01"), d("2026-11-01"), "last_year", MSK) == (d("2025-10-01"), d("2025-11-01"))
    assert compare_period(d("2028-02-29"), d("2028-03-01"), "last_year", MSK) == (d("2027-02-28"), d("2027-03-01"))
    s, e = d("2026-11-18T10:00"), d("2026-11-18T12:00")
    assert compare_period(s, e, "previous", MSK) == (d("2026-11-18T08:00"), s)
    with pytest.raises(ValueError):
        compare_period(s, e, "next", MSK)
