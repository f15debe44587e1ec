"""The embedded pages: the dashboard, the ticket card and the admin settings (GET, signed token).

Every page takes the viewer from the signed token (reports/auth.py); the data shown are scoped
by role before anything is computed (reports/dashboard.py, b24desk/viewer.py).
"""
from __future__ import annotations

import json

from flask import current_app, g, redirect, render_template, request, url_for

from b24desk.installations import get_installation
from b24desk.viewer import ViewerError, can_see_ticket, check_csrf, csrf_token

from . import dashboard as dashboard_mod
from b24desk.client import B24Error

from b24desk.text import present

from . import data, portal_settings, ticket_card
from .auth import current_viewer, viewer_required
from .blueprint import bp, config, get_db
from b24desk.text.i18n import t
from .query import parse as parse_query
from .security import bx24_script, portal_origins


def _page(template: str, active: str, **ctx):
    v = current_viewer()
    token = g.viewer_token
    inst = get_installation(get_db(), v.portal)
    return render_template(
        f"reports/{template}", viewer=v, lang=v.lang, token=token, active=active,
        t=lambda k: t(k, v.lang), bx24_js=bx24_script(inst),
        nav={"dashboard": url_for("reports.dashboard", t=token), "settings": url_for("reports.settings", t=token),
             "capacity": url_for("reports.capacity_page", t=token)},
        **ctx)


@bp.route("/reports/dashboard")
@viewer_required
def dashboard():
    ctx = dashboard_mod.build(get_db(), current_viewer(), request.args, g.viewer_token)
    return data.with_stale_header(_page("dashboard.html", "dashboard", **ctx))


@bp.route("/reports/ticket")
@viewer_required
def ticket():
    v = current_viewer()
    source = (request.args.get("source") or "").strip()
    sid = (request.args.get("id") or "").strip()
    if not source or not sid or len(source) > 40 or not sid.isdigit():
        raise ViewerError(400, "bad_ticket", "give source (task, crm:2, crm:1038...) and a numeric id")
    db = get_db()
    row, events = ticket_card.load(db, v.portal, source, sid)
    card = None
    if row is not None:
        inst = get_installation(db, v.portal)
        origins = portal_origins(inst)
        card = ticket_card.build(db, v.portal, row, events, v.lang, config=data.portal_config(db, v.portal),
                                 origin=origins[0] if origins else None)
        if not can_see_ticket(v, row, db=db, actors=card["actors"]):
            raise ViewerError(403, "forbidden_ticket", "this ticket is outside what you may see")
    return _page("ticket.html", "ticket", card=card)


def _settings_context(db, portal: str, error: str | None = None, form: dict | None = None) -> dict:
    over = portal_settings.overrides(db, portal)
    base = config()
    sections = []
    for name in portal_settings.OVERRIDABLE:
        text = (form or {}).get(f"cfg_{name}")
        if text is None:
            text = json.dumps(over[name], ensure_ascii=False, indent=2) if name in over else ""
        effective = json.dumps(base.get(name), ensure_ascii=False) if base.get(name) is not None else ""
        sections.append((name, text, effective[:300]))
    targets = portal_settings.get_targets(db, portal)
    targets_text = (form or {}).get("targets")
    if targets_text is None:
        targets_text = json.dumps(targets, ensure_ascii=False, indent=2) if targets else ""
    period = (form or {}).get("period") or request.args.get("period") or ""
    if not period:
        from datetime import date
        d = date.today().replace(day=1)
        prev = date(d.year - (d.month == 1), 12 if d.month == 1 else d.month - 1, 1)
        period = prev.strftime("%Y-%m")
    ccei_inputs = portal_settings.get_ccei(db, portal, period) if portal_settings.PERIOD.match(period) else {}
    if form and form.get("form") == "ccei":
        ccei_inputs = {k: form.get(k, "") for k in portal_settings.kccei.INPUT_KEYS}
    status, check = portal_settings.openlines_state(db, portal)
    tz_name = dashboard_mod.timezone_of(db, portal, data.portal_config(db, portal))
    src = form if form is not None else request.args
    try:
        q = parse_query({"from": src.get("from") or "", "to": src.get("to") or ""}, tz_name)
    except ViewerError:                 # a bad period was posted: the error box says why
        q = parse_query({}, tz_name)
    return {"openlines": present.openlines_panel(status, check, current_viewer().lang),
            "ol_from": q.date_from, "ol_to": q.date_to,
            "push": portal_settings.push_view(db, portal, form), "push_kinds": portal_settings.digest.KINDS,
            "push_channels": portal_settings.digest.CHANNELS,
            "config_sections": sections, "targets_text": targets_text,
            "targets_effective": json.dumps(base.get("targets") or {}, ensure_ascii=False)[:300],
            "ccei_period": period, "ccei_keys": portal_settings.kccei.INPUT_KEYS, "ccei_inputs": ccei_inputs,
            "error": error, "saved": request.args.get("saved") == "1",
            "csrf": csrf_token(current_app.config["SECRET_KEY"], current_viewer()),
            "action": url_for("reports.settings")}


def _admin():
    v = current_viewer()
    if not v.is_admin:
        raise ViewerError(403, "admins_only", t("admins_only", v.lang))
    return v


@bp.route("/reports/settings", methods=["GET"])
@viewer_required
def settings():
    v = _admin()
    return _page("settings.html", "settings", **_settings_context(get_db(), v.portal))


@bp.route("/reports/settings", methods=["POST"])
@viewer_required
def settings_save():
    v = _admin()
    check_csrf(current_app.config["SECRET_KEY"], v, request.form.get("csrf"))
    db = get_db()
    which = request.form.get("form")
    try:
        with db.atomic():
            if which == "config":
                for name in portal_settings.OVERRIDABLE:
                    if f"cfg_{name}" in request.form:
                        portal_settings.save_config(db, v.portal, name, request.form[f"cfg_{name}"])
            elif which == "targets":
                portal_settings.save_targets(db, v.portal, request.form.get("targets", ""))
            elif which == "ccei":
                portal_settings.save_ccei(db, v.portal, request.form.get("period", ""), request.form)
            elif which == "push":
                portal_settings.save_push(db, v.portal, request.form, present.KPI_KEYS_ALL)
            elif which == "crosscheck":
                pass
            else:
                raise ValueError("unknown form")
        if which == "crosscheck":
            _crosscheck(db, v.portal)
    except ValueError as exc:
        ctx = _settings_context(db, v.portal, error=str(exc), form=request.form)
        return _page("settings.html", "settings", **ctx), 400
    except B24Error as exc:             # the portal could not be asked (tokens, network): nothing stored
        ctx = _settings_context(db, v.portal, error=f"Bitrix24: {exc}", form=request.form)
        return _page("settings.html", "settings", **ctx), 502
    extra = {"period": request.form.get("period")} if which == "ccei" else {}
    if which == "crosscheck":
        extra = {"from": request.form.get("from"), "to": request.form.get("to")}
    return redirect(url_for("reports.settings", t=g.viewer_token, saved=1, **extra), code=303)


def _crosscheck(db, portal: str) -> dict:
    """Run the open-lines cross-check for the posted period (the dashboard's, by default) with the
    installed app's tokens; outside the write transaction, since it waits for the portal."""
    tz_name = dashboard_mod.timezone_of(db, portal, data.portal_config(db, portal))
    form = request.form
    try:
        q = parse_query({"from": form.get("from") or "", "to": form.get("to") or ""}, tz_name)
    except ViewerError as exc:
        raise ValueError(exc.message) from None
    app = current_app.config
    return portal_settings.run_crosscheck(db, str(app["DB"]), portal, q.date_from, q.date_to,
                                          data.portal_config(db, portal), app.get("CLIENT_ID"),
                                          app.get("CLIENT_SECRET"), app.get("OAUTH_URL"))
