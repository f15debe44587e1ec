"""The portal's time zone comes from a portal-wide source (the offset of ``server.time``; DOCS
api-reference/common/system/server-time.md, api-reference/data-types.md), not from one user's
``calendar.user.settings.get``; an admin's ``[calendar] timezone`` overrides it; the KPI day
boundaries follow it; naive date strings are read in it."""

from __future__ import annotations

from datetime import datetime

from openlines_support import END

from b24desk.client import B24Client
from b24desk.directory import portal_zone_name
from b24desk.kpi.load import portal_timezone
from b24desk.kpi.report import build_report
from b24desk.model import naive_zone, parse_time
from b24desk.store import open_db, set_setting
from b24desk.sync import api_zone, run_sync
from portal_double import PortalDouble

CONFIG = {"sources": [{"select": "tasks"}]}
JULY = int(datetime(2026, 7, 1).timestamp())


def test_zone_names_agree_with_the_server_offset():
    # a name is taken only when it has the server's offset now (daylight saving kept)
    assert portal_zone_name(7200, ["Europe/Berlin"], JULY) == "Europe/Berlin"
    assert portal_zone_name(3 * 3600, ["Europe/Berlin", "Europe/Moscow"], JULY) == "Europe/Moscow"
    # one user's zone that disagrees with the server is not the portal's: the offset's fixed zone
    assert portal_zone_name(5 * 3600, ["America/New_York", "Europe/Moscow"], JULY) == "Etc/GMT-5"
    assert portal_zone_name(0, [None, "bogus/zone"], JULY) == "Etc/UTC"
    assert portal_zone_name(-4 * 3600, [], JULY) == "Etc/GMT+4"
    assert portal_zone_name(19800, [], JULY) is None and portal_zone_name(None, ["Europe/Moscow"], JULY) is None
    assert portal_zone_name(19800, ["Asia/Kolkata"], JULY) == "Asia/Kolkata"


def test_kpi_days_follow_the_portal_zone_and_the_admin_override():
    with PortalDouble(
        seed=3, tickets=120, drain_per_s=1e6, bucket_size=10**6, end=END, timezone="Asia/Yekaterinburg"
    ) as d:
        db = open_db(":memory:")
        c = B24Client.from_webhook(d.webhook_url, rps=1e6, backoff_base=0.01, share_limiter=False)
        assert all(r.error is None for r in run_sync(c, db, ["tasks"], CONFIG))
        # the server says +05:00; the configured default (Moscow, +03:00) disagrees
        assert portal_timezone(db, c.portal_id) == "Etc/GMT-5"
        report = build_report(db, c.portal_id, "2026-09-01", "2026-10-01", config=CONFIG)
        assert report["timezone"] == "Etc/GMT-5"
        assert report["period"]["from"] == "2026-09-01T00:00:00+05:00"
        # naive strings of this portal are read at +05:00
        with naive_zone(api_zone(db, c.portal_id)):
            assert parse_time("01.09.2026 00:00:00") == parse_time("2026-09-01T00:00:00+05:00")
        # the admin's choice in the portal's settings wins
        set_setting(db, c.portal_id, "config", {"calendar": {"timezone": "Asia/Yekaterinburg"}})
        assert portal_timezone(db, c.portal_id) == "Asia/Yekaterinburg"
        report = build_report(db, c.portal_id, "2026-09-01", "2026-10-01", config=CONFIG)
        assert report["timezone"] == "Asia/Yekaterinburg"


def test_a_portal_in_the_configured_zone_keeps_its_name():
    with PortalDouble(seed=3, tickets=60, drain_per_s=1e6, bucket_size=10**6, end=END) as d:  # Moscow
        db = open_db(":memory:")
        c = B24Client.from_webhook(d.webhook_url, rps=1e6, backoff_base=0.01, share_limiter=False)
        run_sync(c, db, ["tasks"], CONFIG)
        assert portal_timezone(db, c.portal_id) == "Europe/Moscow"
