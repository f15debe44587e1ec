"""Shared set-up for the page, API and browser tests (no tests here).

A seeded portal double over real HTTP, the app installed into a fresh store the way an install
leaves it, synced with the real client and sync, plus one task whose title is an XSS payload.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

XSS = "<img src=x onerror=alert(1)>"


@dataclass
class Desk:
    double: object
    db_path: str
    member_id: str
    date_from: str
    date_to: str
    admin: int
    heads: dict  # department -> head user id
    agents: dict  # agent -> department (agents who head nothing)
    xss_task: str

    def auth(self, user_id: int) -> str:
        return self.double.issue_tokens(user_id)["access_token"]

    def launch_form(self, user_id: int, placement: str = "DEFAULT", options: str = "{}", **over) -> dict:
        d = self.double
        form = {
            "AUTH_ID": self.auth(user_id),
            "AUTH_EXPIRES": "3600",
            "REFRESH_ID": "r",
            "SERVER_ENDPOINT": d.server_endpoint,
            "member_id": d.member_id,
            "status": "L",
            "PLACEMENT": placement,
            "PLACEMENT_OPTIONS": options,
            "APPLICATION_TOKEN": d.application_token,
            "APPLICATION_SCOPE": "crm,task,user,department",
        }
        form.update(over)
        return form


def installed_and_synced(d, db_path: str, selectors: list[str]) -> None:
    """Store the double's app installation (admin tokens) in ``db_path`` and sync ``selectors`` through it."""
    from b24desk.client import B24Client
    from b24desk.installations import save_installation
    from b24desk.store import open_db
    from b24desk.sync import run_sync

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
        lang="en",
        timezone="Europe/Moscow",
    )
    client = B24Client.from_installation(
        db_path,
        d.member_id,
        d.client_id,
        d.client_secret,
        oauth_url=d.oauth_token_url,
        rps=1e6,
        backoff_base=0.01,
        share_limiter=False,
    )
    if all(isinstance(s, str) for s in selectors):
        run_sync(client, db, selectors, config={"sources": selectors}, full=True)
    else:  # source tables with their field mapping (config/demo.toml)
        run_sync(client, db, None, {"sources": selectors}, full=True)
    client.close()
    db.conn.close()


def build_desk(tmp_dir, *, tickets: int = 120, seed: int = 5, sources: list | None = None, openlines: int = 0) -> Desk:
    """A double with ``tickets`` (and ``openlines`` sessions), synced into a store; ``sources``
    (the demo's, e.g. tasks + deals + a smart process + open lines) default to tasks only."""
    from portal_double import PortalDouble

    d = PortalDouble(seed=seed, tickets=tickets, months=3, drain_per_s=1e6, openlines=openlines).start()
    desk = d.desk
    heads = dict(desk.heads)
    agents = {a: desk.levels[a] for a in desk.agents if a not in heads.values() and d.portal.users[a]["ACTIVE"]}
    agent = next(a for a, dep in agents.items() if dep == 2)
    p = d.portal
    task = p.create_task(creator=desk.requesters[0], responsible=agent, title=XSS, priority=2, at=p.now - 3 * 86400)
    p.advance(60)
    p.add_task_comment(task["id"], agent, "Looking into it <b>now</b>")

    db_path = str(tmp_dir / "pages.db")
    installed_and_synced(d, db_path, sources or ["tasks"])

    tz = ZoneInfo("Europe/Moscow")
    today = datetime.fromtimestamp(p.now, tz).date()
    start = (today.replace(day=1) - timedelta(days=1)).replace(day=1)
    return Desk(
        double=d,
        db_path=db_path,
        member_id=d.member_id,
        date_from=start.isoformat(),
        date_to=(today + timedelta(days=1)).isoformat(),
        admin=1,
        heads=heads,
        agents=agents,
        xss_task=str(task["id"]),
    )


def month_start(d: date) -> date:
    return d.replace(day=1)


# --- the settings tests' shared helpers (an app on the desk's store, a launch token, a setting) -----


def settings_app_client(d, secret: str):
    """A test client of an app on ``d``'s store, with the double's OAuth server and an empty memo."""
    from app import create_app
    from reports.data import MEMO

    app = create_app(
        {
            "TESTING": True,
            "DB": d.db_path,
            "SECRET_KEY": secret,
            "CLIENT_ID": d.client_id,
            "CLIENT_SECRET": d.client_secret,
            "OAUTH_URL": d.oauth_token_url,
        }
    )
    MEMO.clear()
    return app.test_client()


def launch_token(client, d, user, lang: str = "en") -> str:
    """The viewer token the app hands ``user`` when the portal opens it (a real launch POST)."""
    from urllib.parse import parse_qs, urlsplit

    form = {
        "AUTH_ID": d.issue_tokens(user)["access_token"],
        "AUTH_EXPIRES": "3600",
        "REFRESH_ID": "r",
        "SERVER_ENDPOINT": d.server_endpoint,
        "member_id": d.member_id,
        "status": "L",
        "PLACEMENT": "DEFAULT",
        "PLACEMENT_OPTIONS": "{}",
        "APPLICATION_TOKEN": d.application_token,
    }
    r = client.post(f"/app?LANG={lang}", data=form)
    assert r.status_code == 303, r.get_data(as_text=True)
    return parse_qs(urlsplit(r.headers["Location"]).query)["t"][0]


def stored_setting(d, key: str):
    """A setting of ``d``'s portal as the store holds it now."""
    from b24desk.store import get_setting, open_db

    db = open_db(d.db_path)
    try:
        return get_setting(db, d.member_id, key)
    finally:
        db.conn.close()
