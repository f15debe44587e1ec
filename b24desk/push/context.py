"""What every push run shares: its clients, its lease, its context (store, settings, language,
deliverer) and the links and recipients derived from them. Digests (``digests.py``) and alerts
(``alerts.py``) both build on it and on nothing of each other.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from .. import bbcode, leases
from .. import config as b24config
from ..client import B24Client, B24Error
from ..installations import get_installation
from ..kpi.report import ReportEnv
from ..store import get_setting, set_setting
from . import data as dg
from . import render as R
from . import sentlog
from .delivery import Deliverer, Outcome

log = logging.getLogger(__name__)

WEBHOOK_CLIENT_ID = "b24desk"  # im.notify.system.add: a webhook passes CLIENT_ID with TAG
APP_ID_SETTING = "app_id"


class PushError(RuntimeError):
    """A push cannot start (bad input, no credentials, another push running)."""


# --- clients ----------------------------------------------------------------------------------------


def open_clients(
    db_path: str,
    portal: str,
    *,
    webhook: str | None = None,
    client_id: str | None = None,
    client_secret: str | None = None,
    oauth_url: str | None = None,
    **opts,
) -> tuple:
    """(reader, writer) for ``portal``: the installed app's tokens, else the inbound ``webhook``.
    The writer has ``max_retries=0``: the Deliverer decides what may be sent again."""
    if webhook:
        return (B24Client.from_webhook(webhook, **opts), B24Client.from_webhook(webhook, **opts, max_retries=0))
    client_id = client_id or b24config.env("B24DESK_CLIENT_ID")
    client_secret = client_secret or b24config.env("B24DESK_CLIENT_SECRET")
    oauth_url = oauth_url or b24config.env("B24DESK_OAUTH_URL")
    return (
        B24Client.from_installation(db_path, portal, client_id, client_secret, oauth_url, **opts),
        B24Client.from_installation(db_path, portal, client_id, client_secret, oauth_url, **opts, max_retries=0),
    )


def held(db, portal: str):
    """One push of a portal at a time (the lease ``push:<member_id>``, ``b24desk/leases.py``):
    another thread of this process is waited for up to 300 s, another process not at all."""
    return leases.hold(
        db,
        f"push:{portal}",
        local_wait=300,
        busy=lambda who: PushError(f"another push of {portal} is running ({who or 'in this process'})"),
    )


# --- context of a run -----------------------------------------------------------------------------------


@dataclass
class Context:
    db: object
    portal: str
    env: ReportEnv
    settings: dict
    lang: str
    reader: object = None
    writer: object = None
    dry_run: bool = False
    deliverer: Deliverer | None = None
    dashboard_base: str | None = None
    outcomes: list = field(default_factory=list)
    cache: dict = field(default_factory=dict)  # per-run memo (the alerts' drill-down replay)

    @property
    def is_webhook(self) -> bool:
        return bool(getattr(self.writer, "is_webhook", False))

    def send(self, key: sentlog.Key, method: str, payload: dict) -> Outcome:
        if self.dry_run:
            row = sentlog.get(self.db, key)
            state = "already" if row and row["state"] == sentlog.SENT else "dry-run"
            out = Outcome(key, state, method, payload, (row or {}).get("result"))
        else:
            out = self.deliverer.deliver(key, method, payload)
        self.outcomes.append(out)
        return out


def make_context(
    db, portal: str, *, config: dict | None, reader=None, writer=None, dry_run=False, deliverer_opts: dict | None = None
) -> Context:
    env = ReportEnv(db, portal, config)
    settings = dg.push_settings(db, portal)
    inst = get_installation(db, portal) if "installations" in db.table_names() else None
    lang = R.lang_of(settings.get("lang") or (inst or {}).get("lang") or "ru")
    ctx = Context(db, portal, env, settings, lang, reader, writer, dry_run)
    if not dry_run:
        ctx.deliverer = Deliverer(db, reader, writer, **(deliverer_opts or {}))
    ctx.dashboard_base = dashboard_base(ctx, inst)
    return ctx


def dashboard_base(ctx: Context, inst: dict | None) -> str | None:
    """Where "open the dashboard" points: the admin's ``dashboard_url``, else the app's page in
    the portal (``/marketplace/app/<ID>/``, the ID from ``app.info``), else nothing."""
    if ctx.settings.get("dashboard_url"):
        chosen = bbcode.url(ctx.settings["dashboard_url"], trusted_hosts(ctx, inst))
        if chosen:
            return chosen
        log.warning("dashboard_url is neither on the portal nor on this app: not linked")
    domain = (inst or {}).get("domain")
    if not domain or ctx.is_webhook:
        return None
    app_id = get_setting(ctx.db, ctx.portal, APP_ID_SETTING)
    if app_id is None and not ctx.dry_run and ctx.reader is not None:
        try:
            app_id = (ctx.reader.call("app.info") or {}).get("ID")
        except B24Error as exc:
            log.info("app.info: %s (no dashboard link)", exc)
        if app_id:
            set_setting(ctx.db, ctx.portal, APP_ID_SETTING, app_id)
    return f"{_scheme(inst, domain)}://{domain}/marketplace/app/{app_id}/" if app_id else None


def _scheme(inst: dict, domain: str) -> str:
    """Portals are https; a loopback portal (the demo's double) speaks its endpoint's scheme."""
    from urllib.parse import urlsplit

    ep = urlsplit((inst or {}).get("client_endpoint") or "")
    host = domain.rsplit(":", 1)[0]
    if host in ("127.0.0.1", "localhost", "::1") and ep.scheme in ("http", "https"):
        return ep.scheme
    return "https"


def trusted_hosts(ctx: Context, inst: dict | None) -> set[str]:
    """Where a pushed link may point: the portal's own addresses (stored domain and endpoint, or
    the webhook's host) and this app's public URL."""
    if inst is None and "installations" in ctx.db.table_names():
        inst = get_installation(ctx.db, ctx.portal)
    hosts = {
        bbcode.host_of((inst or {}).get("domain")),
        bbcode.host_of((inst or {}).get("client_endpoint")),
        bbcode.host_of(getattr(ctx.writer, "_base", "") or ""),
        bbcode.host_of(b24config.env("B24DESK_PUBLIC_URL", "") or ""),
    }
    return {h for h in hosts if h}


def link(ctx: Context, digest: dict, key: sentlog.Key) -> str | None:
    if not ctx.dashboard_base:
        return None
    return R.with_params(
        ctx.dashboard_base,
        report=digest["kind"],
        period=digest["period"],
        department=digest["scope"]["id"],
        ref=key.marker,
    )


# --- recipients -----------------------------------------------------------------------------------------


def alert_recipients(ctx: Context) -> list[str]:
    """Who hears a portal-wide alert, or one whose subject has no head: the admin's alert
    recipients (``push.alerts.recipients``), else the digest's (:func:`portal_recipients`)."""
    chosen = [str(u) for u in (ctx.settings.get("alerts") or {}).get("recipients") or []]
    return chosen or portal_recipients(ctx)


def portal_recipients(ctx: Context) -> list[str]:
    chosen = [str(u) for u in ctx.settings.get("portal_recipients") or []]
    if chosen:
        return chosen
    inst = get_installation(ctx.db, ctx.portal) if "installations" in ctx.db.table_names() else None
    if inst and inst.get("user_id"):
        return [str(inst["user_id"])]
    hook = getattr(ctx.writer, "_base", "") or ""
    parts = hook.rstrip("/").split("/")
    if ctx.is_webhook and len(parts) >= 2 and parts[-2].isdigit():
        return [parts[-2]]  # the webhook's own user
    return []
