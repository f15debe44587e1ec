"""``flask demo``: the whole loop on one machine, without a Bitrix24 portal.

portal double (seeded service desk) → the app installed through the real ``/install`` flow →
full sync through the installed app's OAuth tokens → a weekly digest pushed into the portal →
the app served with its worker and scheduler → one URL: the portal's page framing the app, where
the viewer can be switched between the admin, a department head and an agent.

A second run with the same ``--seed``/``--tickets`` reuses the store (the double regenerates the
same desk from the seed and the saved end date, so the sync is incremental).
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import time
import tomllib
from datetime import datetime, timedelta, timezone
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parent.parent
DEMO_CONFIG = ROOT / "config" / "demo.toml"
# The double's leaky bucket drains faster than a real portal's 2 requests/s (the client's own
# bucket is told the same), so a 20,000-ticket first sync takes seconds, not ten minutes.
DEMO_RPS = 200.0


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def demo_config() -> dict:
    from b24desk.config import load_config

    with DEMO_CONFIG.open("rb") as fh:
        return _merge(load_config(), tomllib.load(fh))


def _state(folder: Path, seed: int, tickets: int) -> tuple[Path, int]:
    """The demo's store and the double's fixed end date, kept between runs."""
    folder.mkdir(parents=True, exist_ok=True)
    meta = folder / f"seed{seed}-t{tickets}.json"
    if meta.exists():
        end = json.loads(meta.read_text())["end"]
    else:
        end = int(time.time()) // 3600 * 3600
        meta.write_text(json.dumps({"end": end}))
    return folder / f"seed{seed}-t{tickets}.db", end


def _last_week_label(end: int, tz) -> str:
    y, w, _ = (datetime.fromtimestamp(end, tz) - timedelta(days=7)).isocalendar()
    return f"{y}-W{w:02d}"


_T0 = time.time()


def _say(msg: str) -> None:
    click.echo(f"[{time.time() - _T0:5.1f}s] {msg}", err=True)


class Demo:
    """Everything the demo started, so one Ctrl-C stops it all."""

    def __init__(self, port: int, tickets: int, seed: int, folder: Path, openlines: bool = True):
        self.port, self.tickets, self.seed = port, tickets, seed
        self.db_path, self.end = _state(folder, seed, tickets)
        self.openlines = openlines
        self.double = self.server = self.runtime = self.app = None

    def start(self) -> str:
        from waitress import create_server

        from b24desk.runtime import Runtime
        from portal_double import PortalDouble

        from .factory import create_app
        from .server import warm_hook

        t0 = time.time()
        config = demo_config()
        tz = timezone.utc
        n_ol = max(200, self.tickets // 10) if self.openlines else 0
        self.double = d = PortalDouble(
            seed=self.seed,
            tickets=self.tickets,
            months=6,
            end=datetime.fromtimestamp(self.end, tz),
            drain_per_s=DEMO_RPS,
            bucket_size=250,
            port=self.port + 1,
            openlines=n_ol,
        ).start()
        if not n_ol:
            config["sources"] = [
                s
                for s in config["sources"]
                if not str(s.get("select", s) if isinstance(s, dict) else s).startswith("openlines")
            ]
        _say(
            f"portal double: {d.base_url} ({self.tickets} tickets + {n_ol} open-line sessions, "
            f"generated in {time.time() - t0:.1f} s)"
        )

        self._repoint_store()
        app_url = f"http://127.0.0.1:{self.port}"
        self.app = create_app(
            {
                "DB": str(self.db_path),
                "PUBLIC_URL": app_url,
                "CLIENT_ID": d.client_id,
                "CLIENT_SECRET": d.client_secret,
                "OAUTH_URL": d.oauth_token_url,
                "B24DESK": config,
            }
        )
        self.server = create_server(self.app, host="127.0.0.1", port=self.port, threads=8)
        threading.Thread(target=self.server.run, name="waitress", daemon=True).start()

        # The admin opens the app for the first time: the portal POSTs the install wizard, the
        # page binds events and placements and calls BX24.installFinish() (installation-finish.md).
        d.app.handler_url = f"{app_url}/app"  # the local-app form's "Handler path"
        resp = d.app.install_ui(f"{app_url}/install", user_id=1, lang="ru")
        if resp.status_code != 200:
            raise click.ClickException(f"install failed: HTTP {resp.status_code} {resp.text[:300]}")
        d.app.install_finish()
        _say(
            f"app installed into {d.domain} (member_id {d.member_id}); "
            f"events bound: {len(d.app.handlers)}, placements: {len(d.app.placements)}"
        )

        self._sync(config)
        self._push(config)
        # as the server does after each sync (web/server.py): the default dashboard warmed, then
        # every ticket's facts and the settled cells kept in the background (reports/warm.py)
        warmer = warm_hook(self.app)
        warmer(d.member_id)
        self.runtime = Runtime(self.app, scheduler=True, after_sync=warmer).start()
        _say(f"ready in {time.time() - t0:.1f} s")
        return f"{d.base_url}/?as=admin"

    def _repoint_store(self) -> None:
        """A store made by a run on another ``--port`` names that run's portal address; the new
        double is the same portal (same seed, same member_id) at a new address. The demo, which
        started both, says where the portal lives now (a request never could), so the install
        below is verified against the running double instead of failing with CONNECTION_ERROR."""
        from b24desk.store import open_db

        d = self.double
        db = open_db(self.db_path)
        try:
            if "installations" not in db.table_names():
                return
            row = db.execute("select client_endpoint from installations where member_id = ?", [d.member_id]).fetchone()
            if row and row[0] != d.client_endpoint:
                db.execute(
                    "update installations set domain = ?, client_endpoint = ?, server_endpoint = ? where member_id = ?",
                    [d.domain, d.client_endpoint, d.server_endpoint, d.member_id],
                )
                db.conn.commit()
                _say(f"the store was made with another --port: its portal is now {d.base_url}")
        finally:
            db.conn.close()

    def _client(self, db):
        from b24desk.client import B24Client

        d = self.double
        return B24Client.from_installation(
            str(self.db_path), d.member_id, d.client_id, d.client_secret, d.oauth_token_url, rps=DEMO_RPS, burst=250
        )

    def _sync(self, config: dict) -> None:
        from b24desk.store import open_db
        from b24desk.sync import run_sync

        db = open_db(self.db_path)
        try:
            first = not db["tickets"].exists() or db["tickets"].count == 0
            t0, client = time.time(), self._client(db)
            try:
                reports = run_sync(client, db, None, config, full=first, progress=True)
            finally:
                client.close()
            for r in reports:
                _say(f"  sync {r.line()}")
            _say(
                f"{'full' if first else 'incremental'} sync: {client.requests_sent} requests, "
                f"{time.time() - t0:.1f} s, {db['tickets'].count} tickets in {self.db_path}"
            )
        finally:
            db.conn.close()

    def _push(self, config: dict) -> None:
        """Push last week's digest to the portal (notifications, chat, feed, Disk). The double is
        new on every run, so the demo portal's sent-log is cleared first."""
        from zoneinfo import ZoneInfo

        from b24desk.kpi.load import portal_zone
        from b24desk.push.digests import describe, open_clients, run_push
        from b24desk.store import open_db

        d = self.double
        db = open_db(self.db_path)
        try:
            db.execute("delete from push_log where portal = ?", [d.member_id])
            tz = ZoneInfo(portal_zone(db, d.member_id, config))
            label = _last_week_label(d.portal.now, tz)
            reader, writer = open_clients(
                str(self.db_path),
                d.member_id,
                client_id=d.client_id,
                client_secret=d.client_secret,
                oauth_url=d.oauth_token_url,
                rps=DEMO_RPS,
                burst=250,
            )
            try:
                outcomes = run_push(
                    db,
                    d.member_id,
                    "weekly",
                    label,
                    reader=reader,
                    writer=writer,
                    config=config,
                    channels=["disk", "notify", "chat", "feed"],
                )
            finally:
                reader.close()
                writer.close()
            sent = sum(1 for o in outcomes if o.ok)
            _say(f"weekly digest {label} pushed: {sent}/{len(outcomes)} deliveries")
            for o in outcomes:
                if not o.ok:
                    _say(f"  {describe(o)}")
        finally:
            db.conn.close()

    def stop(self) -> None:
        # Let a running reconcile finish while the portal is still up, then stop the rest.
        sched = self.runtime.scheduler if self.runtime else None
        for step in (
            lambda: sched and sched.shutdown(wait=True),
            lambda: self.runtime and self.runtime.stop(),
            lambda: self.server and self.server.close(),
            lambda: self.double and self.double.stop(),
        ):
            try:
                step()
            except Exception as exc:  # stopping must finish whatever one part says
                _say(f"while stopping: {exc}")


@click.command("demo")
@click.option(
    "--port", type=int, default=8750, show_default=True, help="the app's port; the demo portal takes the next one"
)
@click.option(
    "--tickets",
    type=int,
    default=20000,
    show_default=True,
    help="tickets across tasks, deals and the smart process (open lines add 10 %)",
)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--no-openlines", is_flag=True, help="leave open-line dialogs out")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="where the demo keeps its store between runs (default: instance/demo)",
)
def demo_command(port: int, tickets: int, seed: int, no_openlines: bool, data_dir: str | None) -> None:
    """Run the demo: a built-in portal with the app installed and synced; prints one URL."""
    from flask import current_app

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    demo = Demo(
        port, tickets, seed, Path(data_dir or Path(current_app.instance_path) / "demo"), openlines=not no_openlines
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    # Ctrl-C stops the demo even when it was started from a shell that ignores SIGINT for background
    # jobs (Python keeps an inherited SIG_IGN, and the demo would then never stop on Ctrl-C).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        url = demo.start()
        click.echo(f"\nb24desk demo is running. Open: {url}\n(Ctrl-C stops it)", err=False)
        sys.stdout.flush()
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        _say("stopping ...")
        demo.stop()
