"""A launch while a long first sync uses the portal's request budget opens the dashboard: the
background traffic leaves room in the budget (``INTERACTIVE_HEADROOM``), and the launch's portal
calls go ahead of it. The sync runs with its own limiter, as it does in the server's background
process, so only the portal's own bucket (the double's, 50 requests draining at 2 per second as on
a cloud portal) is shared."""

from __future__ import annotations

import threading
import time
from urllib.parse import parse_qs, urlsplit

from pages_support import Desk

from app import create_app
from b24desk.client import B24Client
from b24desk.installations import save_installation
from b24desk.store import open_db
from b24desk.sync import run_sync
from portal_double import PortalDouble


def test_a_launch_during_a_first_sync_opens_the_dashboard(tmp_path):
    d = PortalDouble(seed=4, tickets=4000, months=3, bucket_size=50, drain_per_s=2.0).start()
    try:
        db_path = str(tmp_path / "s.db")
        db = open_db(db_path)
        tok = d.issue_tokens(1)
        save_installation(
            db,
            member_id=d.member_id,
            domain=d.domain,
            client_endpoint=d.client_endpoint,
            server_endpoint=d.server_endpoint,
            access_token=tok["access_token"],
            refresh_token=tok["refresh_token"],
            expires=tok["expires"],
            application_token=d.application_token,
            scope=tok["scope"],
            status="L",
            user_id="1",
            lang="ru",
            timezone="Europe/Moscow",
        )
        db.conn.close()
        done, failures = threading.Event(), []

        def first_sync():
            sdb = open_db(db_path)
            c = B24Client.from_installation(
                db_path, d.member_id, d.client_id, d.client_secret, oauth_url=d.oauth_token_url, share_limiter=False
            )
            try:
                reports = run_sync(c, sdb, ["tasks"], {"sources": ["tasks"]}, full=True)
                failures.extend(r.error for r in reports if r.error)
            finally:
                c.close()
                sdb.conn.close()
                done.set()

        t = threading.Thread(target=first_sync, daemon=True)
        t.start()
        deadline = time.monotonic() + 120  # a bound on waiting, not a timing check
        while d.stats.requests < 60 and not done.is_set() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not done.is_set(), f"the sync ended before it used the burst: {failures}"
        refused_before = d.stats.refused["QUERY_LIMIT_EXCEEDED"]

        desk = Desk(
            double=d,
            db_path=db_path,
            member_id=d.member_id,
            date_from="",
            date_to="",
            admin=1,
            heads={},
            agents={},
            xss_task="",
        )
        client = create_app({"TESTING": True, "DB": db_path, "SECRET_KEY": "t"}).test_client()
        r = client.post("/app?DOMAIN=x&PROTOCOL=1&LANG=ru&APP_SID=x", data=desk.launch_form(desk.admin))
        assert r.status_code == 303, r.get_data(as_text=True)[:500]
        token = parse_qs(urlsplit(r.headers["Location"]).query)["t"][0]
        assert client.get(f"/reports/dashboard?t={token}").status_code == 200
        assert not done.is_set(), "the launch must have run during the sync"
        # the background left the room: the portal refused nobody while the launch ran
        assert d.stats.refused["QUERY_LIMIT_EXCEEDED"] == refused_before
        t.join(300)
        assert done.is_set() and failures == []
    finally:
        d.stop()
