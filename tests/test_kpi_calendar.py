"""Work calendar (business seconds, SLA deadlines, the portal's settings) and report periods."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from kpi_support import ts

from b24desk.kpi.calendar import WorkCalendar, build_calendar, calendar_settings, portal_calendar
from b24desk.kpi.periods import Period, last_full_month, make_period, parse_point, zone

MSK = ZoneInfo("Europe/Moscow")


def local(s, tz="Europe/Moscow"):
    return int(datetime.fromisoformat(s).replace(tzinfo=ZoneInfo(tz)).timestamp())


def test_business_seconds_within_and_across_days():
    cal = WorkCalendar("Europe/Moscow")
    assert cal.business_seconds(ts("2026-10-05 10:00"), ts("2026-10-05 12:30")) == 9000
    assert cal.business_seconds(ts("2026-10-05 07:00"), ts("2026-10-05 20:00")) == 9 * 3600
    assert cal.business_seconds(ts("2026-10-02 17:00"), ts("2026-10-05 10:00")) == 2 * 3600  # Fri -> Mon
    assert cal.business_seconds(ts("2026-10-03 10:00"), ts("2026-10-04 10:00")) == 0  # weekend
    assert cal.business_seconds(ts("2016-10-05 10:00"), ts("2026-10-05 10:00")) > 0  # long spans


def test_russian_production_calendar_with_transfers():
    cal = WorkCalendar("Europe/Moscow")
    from datetime import date

    assert cal.is_working_day(date(2027, 2, 20))  # a Saturday made a workday
    assert not cal.is_working_day(date(2027, 2, 22))  # the Monday it was moved to
    assert not cal.is_working_day(date(2026, 1, 9))  # New Year holidays
    assert cal.working_days(ts("2026-01-01 00:00"), ts("2026-02-01 00:00")) == 15
    assert cal.working_days(ts("2026-10-01 00:00"), ts("2026-11-01 00:00")) == 22
    # New Year: an SLA of 2 business hours started on Dec 31 2025 18:00 ends on Jan 12 2026 11:00
    assert cal.add_business_seconds(ts("2025-12-31 18:00"), 7200) == ts("2026-01-12 11:00")


def test_add_business_seconds_lands_inside_working_hours():
    cal = WorkCalendar("Europe/Moscow")
    assert cal.add_business_seconds(ts("2026-10-02 17:00"), 7200) == ts("2026-10-05 10:00")
    assert cal.add_business_seconds(ts("2026-10-05 07:00"), 3600) == ts("2026-10-05 10:00")
    assert cal.add_business_seconds(ts("2026-10-05 09:00"), 9 * 3600) == ts("2026-10-05 18:00")
    far = cal.add_business_seconds(ts("2026-10-05 09:00"), 9 * 3600 * 3000)  # ~12 years of workdays
    assert cal.business_seconds(ts("2026-10-05 09:00"), far) == 9 * 3600 * 3000


def test_business_hours_across_a_dst_change():
    cal = WorkCalendar("Europe/Berlin", holidays_country=None)
    # Sunday 2026-10-25 the clocks go back; Friday 17:00 -> Monday 10:00 is still 2 working hours
    assert (
        cal.business_seconds(local("2026-10-23T17:00", "Europe/Berlin"), local("2026-10-26T10:00", "Europe/Berlin"))
        == 7200
    )
    # working hours are wall-clock hours on both sides of the change
    assert cal.add_business_seconds(local("2026-10-23T17:00", "Europe/Berlin"), 7200) == local(
        "2026-10-26T10:00", "Europe/Berlin"
    )


def test_portal_calendar_settings_payload():
    # DOCS api-reference/calendar/calendar-settings-get.md, the documented example
    payload = {
        "work_time_start": "9",
        "work_time_end": "19",
        "year_holidays": "1.01,2.01,7.01,23.02,8.03,1.05,9.05,12.06,4.11",
        "year_workdays": "31.12",
        "week_holidays": ["SA", "SU"],
        "week_start": "MO",
    }
    cal_keys = portal_calendar(payload)
    assert cal_keys["work_start"] == "09:00" and cal_keys["work_end"] == "19:00"
    assert cal_keys["work_days"] == [1, 2, 3, 4, 5]
    assert "11-04" in cal_keys["recurring_holidays"] and cal_keys["recurring_workdays"] == ["12-31"]
    cal = build_calendar(calendar_settings({"calendar": {"holidays_country": ""}}, payload, "Europe/Moscow"))
    from datetime import date

    assert cal.is_working_day(date(2027, 12, 31))
    assert not cal.is_working_day(date(2027, 11, 4))
    assert cal.business_seconds(ts("2026-10-05 00:00"), ts("2026-10-06 00:00")) == 10 * 3600
    assert portal_calendar({"work_time_start": "9.30"})["work_start"] == "09:30"
    # the config can refuse the portal's settings
    off = calendar_settings({"calendar": {"use_portal_calendar": False}}, payload)
    assert off["work_end"] == "18:00"


def test_save_portal_calendar_keeps_a_good_one_on_bad_input(db):
    from b24desk.kpi.calendar import PORTAL_CALENDAR_SETTING, save_portal_calendar
    from b24desk.store import get_setting

    good = {
        "work_time_start": "9",
        "work_time_end": "19",
        "week_holidays": ["SA", "SU"],
        "path_to_user": "/company/personal/user/#user_id#/",
    }
    assert save_portal_calendar(db, "p1", good) == {
        "work_time_start": "9",
        "work_time_end": "19",
        "week_holidays": ["SA", "SU"],
    }
    with pytest.raises(ValueError):
        save_portal_calendar(db, "p1", {"work_time_start": "25"})
    assert get_setting(db, "p1", PORTAL_CALENDAR_SETTING)["work_time_end"] == "19"


@pytest.mark.parametrize(
    "payload, message",
    [
        ({"work_time_start": "nine"}, "bad work time"),
        ({"week_holidays": ["XX"]}, "unknown day"),
        ({"year_holidays": "32.01"}, "bad day"),
        ("not an object", "must be an object"),
    ],
)
def test_portal_calendar_bad_payload(payload, message):
    with pytest.raises(ValueError, match=message):
        portal_calendar(payload)


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"work_days": [0, 8]}, "ISO weekdays"),
        ({"work_start": "18:00", "work_end": "09:00"}, "after work_start"),
        ({"work_start": "9am"}, "HH:MM"),
        ({"timezone": "Mars/Base"}, "unknown time zone"),
        ({"holidays_country": "XX"}, "holidays_country"),
        ({"extra_holidays": ["2026-13-01"]}, "YYYY-MM-DD"),
        ({"work_hours": "9-18"}, "unknown \\[calendar\\] keys"),
    ],
)
def test_bad_calendar_config_is_a_clear_error(settings, message):
    with pytest.raises(ValueError, match=message):
        build_calendar(settings)


# --- periods --------------------------------------------------------------------------------


def test_parse_dates_and_iso_datetimes():
    assert parse_point("2026-10-01", MSK) == ts("2026-10-01 00:00")
    assert parse_point("2026-10-01T00:00:00+03:00", MSK) == ts("2026-10-01 00:00")
    assert parse_point("2026-09-30T21:00:00Z", MSK) == ts("2026-10-01 00:00")
    assert parse_point("2026-10-01T00:00", MSK) == ts("2026-10-01 00:00")  # no offset: local
    for bad in ("2026-13-01", "yesterday", "", None, "01.10.2026"):
        with pytest.raises(ValueError, match="not a date"):
            parse_point(bad, MSK)
    with pytest.raises(ValueError, match="empty"):
        make_period("2026-10-02", "2026-10-01", MSK)


def test_previous_periods():
    oct_ = make_period("2026-10-01", "2026-11-01", MSK)
    assert oct_.previous().as_json() == {"from": "2026-09-01T00:00:00+03:00", "to": "2026-10-01T00:00:00+03:00"}
    assert oct_.label == "2026-10" and oct_.days == 31
    q = make_period("2026-01-01", "2026-04-01", MSK)  # a quarter -> previous quarter
    assert q.previous().as_json()["from"] == "2025-10-01T00:00:00+03:00"
    week = make_period("2026-10-05", "2026-10-12", MSK)
    assert week.label == "2026-W41" and week.previous().as_json()["from"] == "2026-09-28T00:00:00+03:00"
    day = make_period("2026-10-05", "2026-10-06", MSK)
    assert day.label == "2026-10-05"
    odd = make_period("2026-10-05T12:00:00+03:00", "2026-10-05T18:00:00+03:00", MSK)
    assert odd.previous().as_json() == {"from": "2026-10-05T06:00:00+03:00", "to": "2026-10-05T12:00:00+03:00"}


def test_period_across_an_offset_change():
    berlin = zone("Europe/Berlin")
    p = make_period("2026-10-01", "2026-11-01", berlin)
    assert p.as_json() == {"from": "2026-10-01T00:00:00+02:00", "to": "2026-11-01T00:00:00+01:00"}
    assert p.days == 31 and (p.end - p.start) == 31 * 86400 + 3600
    assert p.previous().as_json() == {"from": "2026-09-01T00:00:00+02:00", "to": "2026-10-01T00:00:00+02:00"}
    week = make_period("2026-10-19", "2026-10-26", berlin)  # the week the clocks go back
    assert week.previous().as_json()["from"] == "2026-10-12T00:00:00+02:00"
    nov = make_period("2026-11-01", "2026-12-01", berlin)
    assert nov.previous().as_json()["from"] == "2026-10-01T00:00:00+02:00"
    # Moscow moved from +04:00 to +03:00 on 2014-10-26
    msk14 = make_period("2014-10-01", "2014-11-01", MSK)
    assert msk14.as_json() == {"from": "2014-10-01T00:00:00+04:00", "to": "2014-11-01T00:00:00+03:00"}
    assert msk14.days == 31


def test_last_full_month():
    p = last_full_month(ts("2026-11-15 12:00"), MSK)
    assert p.label == "2026-10"
    assert last_full_month(ts("2026-01-01 00:00"), MSK).label == "2025-12"
    assert isinstance(p, Period)
