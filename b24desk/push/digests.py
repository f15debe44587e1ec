"""Pushing digests into Bitrix24: plan the deliveries of a report, send each exactly once.

A run for (portal, kind, period) builds the portal digest and one per department
(``data.py``), then, per channel:

* ``disk``   -- the XLSX of each digest (the KPI engine's own writer, ``b24desk.kpi.formats``)
  into the app's storage: ``disk.storage.getForApp`` -> ``ROOT_OBJECT_ID`` ->
  ``disk.folder.uploadfile`` with ``fileContent [name, base64]`` (DOCS api-reference/disk/storage/
  disk-storage-get-for-app.md, disk/folder/disk-folder-upload-file.md). Runs first, so the
  messages below link the file (its ``DETAIL_URL``);
* ``notify`` -- ``im.notify.system.add`` to each department head (the portal digest to the
  configured recipients, default the installing admin), ``TAG`` ``b24desk:<kind>:<scope>`` so a new
  digest replaces the previous one (DOCS api-reference/chats/notifications/im-notify-system-add.md);
* ``chat``   -- ``im.message.add`` with ``ATTACH`` blocks to the chosen chat, or to one the app
  creates once (``im.chat.add`` with ``ENTITY_TYPE``/``ENTITY_ID``, found again by ``im.chat.get``;
  DOCS api-reference/chats/im-chat-add.md, im-chat-get.md);
* ``feed``   -- ``log.blogpost.add`` with ``DEST ["DR<id>"]`` for each department (and ``UA`` for
  the portal digest when enabled; DOCS api-reference/log/log-blogpost-add.md).

Each delivery goes through ``delivery.Deliverer`` (exactly once; see there). Also here:
``after_sync`` -- what the server's scheduler calls after each
reconcile sync (due digests in the portal's time zone, alerts, unfinished deliveries).
"""

from __future__ import annotations

import base64
import logging
import time

from .. import bbcode
from .. import config as b24config
from ..client import B24Error
from ..kpi.formats import render
from ..kpi.periods import Period
from ..kpi.report import ReportEnv
from ..store import get_setting, open_db, set_setting
from . import data as dg
from . import render as R
from . import sentlog
from .context import (
    WEBHOOK_CLIENT_ID,
    Context,
    PushError,
    held,
    link,
    make_context,  # noqa: F401
    open_clients,
    portal_recipients,
    trusted_hosts,
)
from .delivery import Deliverer, Outcome

log = logging.getLogger(__name__)

CHANNEL_ORDER = ("disk", "notify", "chat", "feed")
CHAT_ENTITY = "B24DESK"  # im.chat.add ENTITY_TYPE of the chat the app creates
ALERTS_CHECKED_SETTING = "alerts_checked_at"


def _with_marker(text: str, key: sentlog.Key, url: str | None) -> str:
    """The marker rides in the dashboard link; without a link it is a small footer."""
    return text if url else f"{text}\n[I]#{key.marker}[/I]"


def scope_target(d: dict) -> str:
    return "portal" if d["scope"]["level"] == "portal" else f"dept:{d['scope']['id']}"


# --- channels -----------------------------------------------------------------------------------------


def xlsx_name(d: dict) -> str:
    scope = "portal" if d["scope"]["level"] == "portal" else f"dept{d['scope']['id']}"
    return bbcode.file_name(f"b24desk-{d['kind']}-{d['period']}-{scope}.xlsx")


def app_folder(ctx: Context):
    if ctx.dry_run:
        return "<app storage>"
    storage = ctx.reader.call("disk.storage.getForApp") or {}
    return storage.get("ROOT_OBJECT_ID")


def push_disk(ctx: Context, digests: list[dict], key_of) -> dict:
    """Upload each digest's XLSX; returns scope -> the file's link (for the messages)."""
    links = {}
    try:
        folder = app_folder(ctx)
    except B24Error as exc:
        hint = " (the disk channel needs the installed app, not a webhook)" if ctx.is_webhook else ""
        for d in digests:
            ctx.outcomes.append(
                Outcome(key_of(d, "disk", scope_target(d)), "failed", "disk.storage.getForApp", error=f"{exc}{hint}")
            )
        return links
    for d in digests:
        key = key_of(d, "disk", scope_target(d))
        name = xlsx_name(d)
        data = render(d["report"], "xlsx")
        payload = {
            "id": folder,
            "data": {"NAME": name},
            "fileContent": [name, base64.b64encode(data).decode("ascii")],
            "generateUniqueName": False,
        }
        out = ctx.send(key, "disk.folder.uploadfile", payload)
        res = out.result if isinstance(out.result, dict) else {}
        links[scope_target(d)] = bbcode.url(res.get("DETAIL_URL") or res.get("DOWNLOAD_URL"), trusted_hosts(ctx, None))
    return links


def push_notify(ctx: Context, digests: list[dict], key_of, links: dict) -> None:
    for d in digests:
        users = portal_recipients(ctx) if d["scope"]["level"] == "portal" else [d["scope"]["head"]]
        for uid in [u for u in users if u]:
            key = key_of(d, "notify", f"{scope_target(d)}>user:{uid}")
            url = link(ctx, d, key)
            xlsx = links.get(scope_target(d))
            payload = {
                "USER_ID": int(uid),
                "MESSAGE": _with_marker(R.digest_text(d, ctx.lang, dashboard=url, xlsx=xlsx), key, url),
                "ATTACH": R.digest_attach(d, ctx.lang, dashboard=url, xlsx=xlsx),
                "TAG": f"b24desk:{d['kind']}:{scope_target(d)}",
            }
            if ctx.is_webhook:
                payload["CLIENT_ID"] = WEBHOOK_CLIENT_ID
            ctx.send(key, "im.notify.system.add", payload)


def chat_dialog(ctx: Context, digests: list[dict]) -> str:
    """The chosen chat, else the app's own digest chat (created once, found by its entity)."""
    chosen = (ctx.settings.get("chat") or {}).get("dialog_id")
    if chosen:
        return str(chosen)
    entity = {"ENTITY_TYPE": CHAT_ENTITY, "ENTITY_ID": f"digest|{ctx.portal}"}
    if ctx.dry_run:
        return "<the app's digest chat>"
    found = ctx.reader.call("im.chat.get", entity)
    if found and found.get("ID"):
        return f"chat{found['ID']}"
    users = set(portal_recipients(ctx)) | {d["scope"]["head"] for d in digests if d["scope"]["head"]}
    title = bbcode.text((ctx.settings.get("chat") or {}).get("title") or R.tr("service_desk", ctx.lang), 100)
    try:
        cid = ctx.writer.call(
            "im.chat.add", {"TYPE": "CHAT", "TITLE": title, "USERS": sorted(users, key=int), "COLOR": "AZURE", **entity}
        )
    except B24Error as exc:
        if exc.status is not None and 400 <= exc.status < 500:
            raise
        found = ctx.reader.call("im.chat.get", entity)  # the answer was lost: did it get made?
        if not (found and found.get("ID")):
            raise
        cid = found["ID"]
    return f"chat{cid}"


def push_chat(ctx: Context, digests: list[dict], key_of, links: dict) -> None:
    portal_digest = [d for d in digests if d["scope"]["level"] == "portal"]
    try:
        dialog = chat_dialog(ctx, digests)
    except B24Error as exc:
        for d in portal_digest:
            ctx.outcomes.append(Outcome(key_of(d, "chat", "portal>?"), "failed", "im.chat.add", error=str(exc)))
        return
    for d in portal_digest:
        key = key_of(d, "chat", f"portal>{dialog}")
        url = link(ctx, d, key)
        xlsx = links.get(scope_target(d))
        payload = {
            "DIALOG_ID": dialog,
            "MESSAGE": _with_marker(R.digest_text(d, ctx.lang, dashboard=url, xlsx=xlsx), key, url),
            "ATTACH": R.digest_attach(d, ctx.lang, dashboard=url, xlsx=xlsx),
            "URL_PREVIEW": "N",
        }
        ctx.send(key, "im.message.add", payload)


def push_feed(ctx: Context, digests: list[dict], key_of, links: dict) -> None:
    for d in digests:
        if d["scope"]["level"] == "portal":
            if not (ctx.settings.get("feed") or {}).get("portal"):
                continue
            dest = ["UA"]
        else:
            dest = [f"DR{d['scope']['id']}"]
        key = key_of(d, "feed", f"{scope_target(d)}>{dest[0]}")
        url = link(ctx, d, key)
        xlsx = links.get(scope_target(d))
        payload = {
            "POST_TITLE": R.title(d, ctx.lang),
            "POST_MESSAGE": _with_marker(R.feed_message(d, ctx.lang, dashboard=url, xlsx=xlsx), key, url),
            "DEST": dest,
        }
        ctx.send(key, "log.blogpost.add", payload)


# --- a run ----------------------------------------------------------------------------------------------


def digests_for(ctx: Context, kind: str, period: Period) -> list[dict]:
    """The portal digest and each department's that has anything to say."""
    deps = dg.departments(ctx.db, ctx.portal)
    out = [dg.build_digest(ctx.env, kind, period)]
    for dep in dg.digest_departments(ctx.db, ctx.portal, ctx.settings):
        d = dg.build_digest(ctx.env, kind, period, department=dep, dept_info=deps.get(dep))
        if not dg.is_empty(d):
            out.append(d)
    return out


def run_push(
    db,
    portal: str,
    kind: str,
    period,
    *,
    reader=None,
    writer=None,
    config: dict | None = None,
    channels=None,
    dry_run: bool = False,
    deliverer_opts: dict | None = None,
) -> list[Outcome]:
    """Push the ``kind`` digest of ``period`` (a Period or its label) on ``channels`` (default: the
    portal's setting). Returns one Outcome per delivery; sent ones are never sent again."""
    if kind not in dg.KINDS:
        raise PushError(f"unknown report {kind!r} (one of {', '.join(dg.KINDS)})")
    channels = list(channels or [])
    bad = [c for c in channels if c not in dg.CHANNELS]
    if bad:
        raise PushError(f"unknown channel {bad[0]!r} (one of {', '.join(dg.CHANNELS)})")
    if not dry_run and (reader is None or writer is None):
        raise PushError("no Bitrix24 client: give --webhook or install the app")
    ctx = make_context(
        db, portal, config=config, reader=reader, writer=writer, dry_run=dry_run, deliverer_opts=deliverer_opts
    )
    if not isinstance(period, Period):
        try:
            period = dg.parse_period(kind, period, ctx.env.tz)
        except ValueError as exc:
            raise PushError(str(exc)) from None
    channels = [c for c in CHANNEL_ORDER if c in (channels or ctx.settings.get("channels") or ["notify"])]

    def key_of(d, channel, target):
        return sentlog.Key(portal, kind, period.label, channel, target)

    def work():
        # what earlier runs of this kind left unsure or refused goes first (sent-log rows, stored payloads)
        resumed = [] if dry_run else ctx.deliverer.resume(portal, report=kind)
        digests = digests_for(ctx, kind, period)
        links = push_disk(ctx, digests, key_of) if "disk" in channels else {}
        if "notify" in channels:
            push_notify(ctx, digests, key_of, links)
        if "chat" in channels:
            push_chat(ctx, digests, key_of, links)
        if "feed" in channels:
            push_feed(ctx, digests, key_of, links)
        if not dry_run and all(o.ok for o in ctx.outcomes):
            done = sentlog.Key(portal, kind, period.label, "run", ",".join(channels))
            sentlog.begin(db, done, "-", {"deliveries": len(ctx.outcomes)})
            sentlog.mark_sent(db, done, {"at": time.time()})
        # a delivery finished by the resume shows as what happened to it now, not as "already"
        now_done = {o.key: o for o in resumed}
        planned = {o.key for o in ctx.outcomes}
        return [o for o in resumed if o.key not in planned] + [
            now_done.get(o.key, o) if o.state == "already" else o for o in ctx.outcomes
        ]

    if dry_run:
        return work()
    with held(db, portal):
        return work()


# --- the scheduler's entry point ------------------------------------------------------------------------


def due_reports(settings: dict, now: int, tz) -> list[tuple[str, Period]]:
    """The (kind, period) pairs whose time has come: the latest complete period of each enabled kind."""
    out = []
    for kind in dg.KINDS:
        sched = (settings.get("reports") or {}).get(kind) or {}
        if not sched.get("enabled"):
            continue
        period = dg.last_complete(kind, now, tz)
        if now >= dg.due_at(kind, period, sched):
            out.append((kind, period))
    return out


def after_sync(
    db_path: str,
    portal: str,
    *,
    config: dict | None = None,
    now: int | None = None,
    clients: tuple | None = None,
    deliverer_opts: dict | None = None,
) -> list[Outcome]:
    """What the server's scheduler runs after each reconcile sync of ``portal``: deliveries left
    unsure by earlier runs, the digests that are due (in the portal's time zone) and not yet
    complete, then the KPI alerts. Safe to call as often as wanted: the sent-log makes repeats free."""
    from .alerts import run_alerts

    config = b24config.load_config() if config is None else config
    db = open_db(db_path)
    try:
        settings = dg.push_settings(db, portal)
        if not settings.get("enabled", True):
            return []
        reader, writer = clients or open_clients(db_path, portal)
        now = int(now if now is not None else time.time())
        tz = ReportEnv(db, portal, config).tz
        outcomes = []
        with held(db, portal):
            outcomes += Deliverer(db, reader, writer, **(deliverer_opts or {})).resume(portal)
        channels = [c for c in CHANNEL_ORDER if c in (settings.get("channels") or ["notify"])]
        for kind, period in due_reports(settings, now, tz):
            done = sentlog.get(db, sentlog.Key(portal, kind, period.label, "run", ",".join(channels)))
            if done and done["state"] == sentlog.SENT:
                continue
            outcomes += run_push(
                db,
                portal,
                kind,
                period,
                reader=reader,
                writer=writer,
                config=config,
                channels=channels,
                deliverer_opts=deliverer_opts,
            )
        alerts = settings.get("alerts") or {}
        last = get_setting(db, portal, ALERTS_CHECKED_SETTING)
        if alerts.get("enabled", True) and (
            last is None or now - last >= 60 * int(alerts.get("every_minutes", 15)) or now < last
        ):
            outcomes += run_alerts(
                db, portal, reader=reader, writer=writer, config=config, now=now, deliverer_opts=deliverer_opts
            )
            set_setting(db, portal, ALERTS_CHECKED_SETTING, now)
        return outcomes
    finally:
        db.conn.close()


# --- describing outcomes (``flask push``, the demo) ------------------------------------------------------


def describe(o: Outcome) -> str:
    what = {
        "im.notify.system.add": lambda p: f"user {p.get('USER_ID')}",
        "im.message.add": lambda p: f"dialog {p.get('DIALOG_ID')}",
        "log.blogpost.add": lambda p: f"DEST {','.join(p.get('DEST') or [])}",
        "disk.folder.uploadfile": lambda p: f"file {(p.get('data') or {}).get('NAME')}",
    }
    target = what.get(o.method, lambda p: o.key.target)(o.payload or {})
    res = o.result.get("ID") if isinstance(o.result, dict) else o.result
    tail = f" -> {res}" if res not in (None, "") and o.state != "dry-run" else ""
    err = f": {o.error}" if o.error else ""
    return f"{o.state:8} {o.key.channel:6} {o.key.target:28} {o.method} {target}{tail}{err}"


def preview(o: Outcome) -> str:
    """What a dry run shows of one delivery: its title and text, or the file's name and size."""
    p = o.payload or {}
    text = p.get("MESSAGE") or p.get("POST_MESSAGE") or ""
    if o.method == "disk.folder.uploadfile":
        size = len(base64.b64decode(p["fileContent"][1])) if p.get("fileContent") else 0
        text = f"{(p.get('data') or {}).get('NAME')} ({size} bytes, XLSX of the KPI report)"
    title = p.get("POST_TITLE")
    lines = ([f"  title: {title}"] if title else []) + [f"  {x}" for x in str(text).splitlines()]
    return "\n".join(lines)
