"""The embedded pages: the dashboard, the ticket card and the admin settings (GET, signed token).

Every page takes the viewer from the signed token (reports/auth.py); the data shown are scoped
by role before anything is computed (reports/dashboard.py, b24desk/viewer.py).
"""

from __future__ import annotations

import json
import re

from flask import Response, current_app, g, jsonify, redirect, render_template, request, url_for

from b24desk import catalog as catalog_mod
from b24desk import settings_change
from b24desk.client import B24Error
from b24desk.installations import get_installation, missing_scopes
from b24desk.kpi.load import portal_zone
from b24desk.store import set_setting
from b24desk.text import present
from b24desk.text.i18n import kpi_label, lang_index, t
from b24desk.viewer import ViewerError, can_see_ticket, check_csrf, csrf_token

from . import dashboard as dashboard_mod
from . import data, portal_settings, settings_forms, ticket_card
from .auth import current_viewer, viewer_required
from .blueprint import bp, config, get_db
from .query import parse as parse_query
from .security import bx24_script, portal_origins


def _page(template: str, active: str, **ctx):
    v = current_viewer()
    token = g.viewer_token
    inst = get_installation(get_db(), v.portal)
    return render_template(
        f"reports/{template}",
        viewer=v,
        lang=v.lang,
        token=token,
        active=active,
        t=lambda k: t(k, v.lang),
        bx24_js=bx24_script(inst),
        nav={
            "dashboard": url_for("reports.dashboard", t=token),
            "settings": url_for("reports.settings", t=token),
            "saved": url_for("reports.saved_list", t=token),
            "capacity": url_for("reports.capacity_page", t=token),
        },
        **ctx,
    )


@bp.route("/reports/dashboard")
@viewer_required
def dashboard():
    ctx = dashboard_mod.build(get_db(), current_viewer(), request.args, g.viewer_token)
    from .saved_pages import pinned_panel  # saved reports pinned for this viewer's audience

    ctx["pinned_reports"] = pinned_panel(get_db(), current_viewer(), g.viewer_token)
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
        card = ticket_card.build(
            db,
            v.portal,
            row,
            events,
            v.lang,
            config=data.portal_config(db, v.portal),
            origin=origins[0] if origins else None,
        )
        if not can_see_ticket(v, row, db=db, actors=card["actors"]):
            raise ViewerError(403, "forbidden_ticket", "this ticket is outside what you may see")
    return _page("ticket.html", "ticket", card=card)


def _settings_context(db, portal: str, error: str | None = None, form=None, errors: dict | None = None) -> dict:
    """Everything the settings page shows: the portal's lists, the settings in force (or the admin's
    own input after a refusal), units and names; never an internal key or a JSON box."""
    from zoneinfo import ZoneInfo

    v = current_viewer()
    lang = v.lang
    base = config()
    eff = data.portal_config(db, portal)
    catalog = _catalog(db, portal, lang)
    ppl = settings_forms.people(db, portal)
    tz_name = portal_zone(db, portal, eff)
    period = (form or {}).get("period") or request.args.get("period") or ""
    if not period:
        from datetime import date

        d = date.today().replace(day=1)
        prev = date(d.year - (d.month == 1), 12 if d.month == 1 else d.month - 1, 1)
        period = prev.strftime("%Y-%m")
    ccei_inputs = portal_settings.get_ccei(db, portal, period) if settings_forms.PERIOD.match(period) else {}
    status, check = portal_settings.openlines_state(db, portal)
    src = form if form is not None else request.args
    try:
        q = parse_query(
            {
                "from": settings_forms.iso_date(src.get("from") or "", lang),
                "to": settings_forms.iso_date(src.get("to") or "", lang),
            },
            tz_name,
        )
    except ViewerError:  # a bad period was posted: the error box says why
        q = parse_query({}, tz_name)
    posted = form.get("form") if form is not None else None
    selected = settings_forms.configured_selectors(eff)
    push = portal_settings.push_view(db, portal, form)
    for text, ids in (
        ("recipients", "recipient_ids"),
        ("departments", "department_ids"),
        ("alert_recipients", "alert_recipient_ids"),
    ):
        push[ids] = [x for x in re.split(r"[\s,;]+", push[text]) if x]
    push["alert_kpi_list"] = [x for x in re.split(r"[\s,;]+", push["alert_kpis"]) if x]
    fv = form if form is not None else None

    def pv(formname, name, default=""):
        """A field's value: the admin's own input after a refusal of that form, else ``default``."""
        return fv.get(name, "") if posted == formname and fv is not None else default

    def pon(formname, name, value, default=False):
        if posted == formname and fv is not None:
            return str(value) in (fv.getlist(name) if hasattr(fv, "getlist") else [fv.get(name)])
        return default

    def first(rows, chosen):
        chosen = {str(c) for c in chosen}
        return sorted(rows, key=lambda r: r["id"] not in chosen)

    return {
        "L": lambda ru, en: ru if lang.startswith("ru") else en,
        "pv": pv,
        "pon": pon,
        "first": first,
        "unit": lambda k: settings_forms.unit(k, lang),
        "show_date": lambda d: settings_forms.show_date(d, lang),
        "date_hint": settings_forms.DATE_HINT[lang_index(lang)],
        "ccei_months": settings_forms.month_options(period, lang),
        "openlines": present.openlines_panel(status, check, lang),
        "ol_from": q.date_from,
        "ol_to": q.date_to,
        "push": push,
        "push_kinds": portal_settings.digest.KINDS,
        "push_channels": portal_settings.digest.CHANNELS,
        "catalog": catalog,
        "catalog_errors": catalog.get("errors") or [],
        "missing_scopes": missing_scopes((get_installation(db, portal) or {}).get("scope")),
        "source_groups": settings_forms.source_options(catalog, lang),
        "sources_selected": selected,
        "mappings": settings_forms.mapping_view(db, portal, base, catalog, lang),
        "task_buckets": settings_forms.task_buckets_view(eff, lang),
        "buckets": settings_forms.BUCKETS,
        "bucket_label": lambda b: settings_forms.bucket_label(b, lang),
        "prios": settings_forms.PRIOS,
        "prio_label": lambda p: settings_forms.prio_label(p, lang),
        "sla": settings_forms.sla_view(eff),
        "cal": settings_forms.calendar_view(db, portal, eff, tz_name),
        "weekday_label": lambda d: settings_forms.weekday_label(d, lang),
        "targets": settings_forms.targets_view(db, portal, base, lang, ppl),
        "people": ppl,
        "bots": [str(x) for x in eff.get("bot_users") or []],
        "support_deps": [str(x) for x in eff.get("support_departments") or []],
        "repeat_days": eff.get("repeat_window_days", 30),
        "alert_kpis": [(k, kpi_label(k, lang)) for k in settings_forms.TARGET_KPIS],
        "ccei_period": period,
        "ccei_fields": settings_forms.ccei_view(
            {k: form.get(k, "") for k in portal_settings.kccei.INPUT_KEYS} if posted == "ccei" else ccei_inputs, lang
        ),
        "history": settings_forms.history_view(settings_change.history(db, portal), lang, ZoneInfo(tz_name)),
        "posted": posted,
        "form_values": form,
        "errors": errors or {},
        "error": error,
        "saved": request.args.get("saved") == "1",
        "unchanged": request.args.get("saved") == "0",
        "csrf": csrf_token(current_app.config["SECRET_KEY"], v),
        "action": url_for("reports.settings"),
        "export_url": url_for("reports.settings_export", t=g.viewer_token),
        "people_url": url_for("reports.settings_people"),
    }


def _catalog(db, portal: str, lang: str, force: bool = False) -> dict:
    """The portal's lists: the stored copy while fresh, else read again through the installed
    app; when the portal cannot be asked, the stored copy (however old) or what the sync knows."""
    cached = catalog_mod.stored(db, portal)
    if cached and not force and catalog_mod.is_fresh(cached):
        return cached
    from b24desk.client import B24Client

    app = current_app.config
    try:
        client = B24Client.from_installation(
            str(app["DB"]), portal, app.get("CLIENT_ID"), app.get("CLIENT_SECRET"), app.get("OAUTH_URL")
        )
    except Exception:
        return cached or catalog_mod.fallback(db, portal)
    try:
        fresh = catalog_mod.read(client, lang)
    except Exception:
        return cached or catalog_mod.fallback(db, portal)
    finally:
        client.close()
    if cached and len(fresh.get("errors") or []) > len(cached.get("errors") or []) and not force:
        return cached
    with db.atomic():
        set_setting(db, portal, catalog_mod.CATALOG_SETTING, fresh)
    return fresh


def _admin():
    v = current_viewer()
    if not v.is_admin:
        raise ViewerError(403, "admins_only", t("admins_only", v.lang))
    return v


def _who(db, v) -> dict:
    users = settings_forms.people(db, v.portal)["user_names"]
    return {"id": v.user_id, "name": users.get(str(v.user_id), str(v.user_id))}


@bp.route("/reports/settings", methods=["GET"])
@viewer_required
def settings():
    v = _admin()
    return _page("settings.html", "settings", **_settings_context(get_db(), v.portal))


@bp.route("/reports/settings/people", methods=["GET"])
@viewer_required
def settings_people():
    """The server-side picker: employees or departments matching ``q`` (admins only), for pages
    outside the portal where ``BX24.selectUsers`` does not exist."""
    v = _admin()
    kind_ = "department" if request.args.get("kind") == "department" else "user"
    rows = settings_forms.search_people(get_db(), v.portal, kind_, (request.args.get("q") or "")[:100])
    return jsonify({"items": rows})


@bp.route("/reports/settings/export", methods=["GET"])
@viewer_required
def settings_export():
    v = _admin()
    body = json.dumps(settings_change.export_all(get_db(), v.portal), ensure_ascii=False, indent=2)
    return Response(
        body, mimetype="application/json", headers={"Content-Disposition": "attachment; filename=b24desk-settings.json"}
    )


FORMS = (
    "sources",
    "mapping",
    "sla",
    "calendar",
    "targets",
    "people",
    "push",
    "ccei",
    "import",
    "catalog",
    "crosscheck",
)


def _parse(which: str, db, v, form):
    base, lang = config(), v.lang
    if which == "sources":
        return settings_forms.parse_sources(form, db, v.portal, base, _catalog(db, v.portal, lang), lang)
    if which == "mapping":
        return settings_forms.parse_mapping(form, db, v.portal, base, _catalog(db, v.portal, lang), lang)
    if which == "sla":
        return settings_forms.parse_sla(form, db, v.portal, base, lang)
    if which == "calendar":
        return settings_forms.parse_calendar(form, db, v.portal, base, lang)
    if which == "targets":
        return settings_forms.parse_targets(form, db, v.portal, base, lang, settings_forms.people(db, v.portal))
    if which == "people":
        return settings_forms.parse_people(form, db, v.portal, base, lang, settings_forms.people(db, v.portal))
    if which == "push":
        return settings_forms.parse_push(
            form, db, v.portal, lang, settings_forms.people(db, v.portal), present.KPI_KEYS_ALL
        )
    if which == "ccei":
        return settings_forms.parse_ccei(form, db, v.portal, lang)
    if which == "import":
        f = request.files.get("file")
        try:
            raw = f.read() if f else b""  # the app caps a body at 1 MB (413 beyond)
            values = settings_change.import_values(json.loads(raw.decode("utf-8-sig")))
        except (ValueError, UnicodeDecodeError) as exc:
            raise settings_forms.FormErrors({"file": settings_forms.msg("err_file", lang) + f" ({exc})"}) from None
        return values, [settings_forms.section_title("import", lang) + f": {getattr(f, 'filename', '') or 'file'}"]
    raise ValueError("unknown form")


@bp.route("/reports/settings", methods=["POST"])
@viewer_required
def settings_save():
    v = _admin()
    check_csrf(current_app.config["SECRET_KEY"], v, request.form.get("csrf"))
    db = get_db()
    which = request.form.get("form")
    if which not in FORMS:
        ctx = _settings_context(db, v.portal, error=t("error", v.lang), form=request.form)
        return _page("settings.html", "settings", **ctx), 400
    changed = True
    try:
        if which == "crosscheck":
            _crosscheck(db, v.portal)
        elif which == "catalog":
            _catalog(db, v.portal, v.lang, force=True)
        else:
            values, lines = _parse(which, db, v, request.form)
            changed = settings_change.apply(db, v.portal, values, _who(db, v), which, lines)
    except settings_forms.FormErrors as exc:
        ctx = _settings_context(
            db, v.portal, form=request.form, errors=exc.errors, error=settings_forms.msg("err_fix", v.lang)
        )
        return _page("settings.html", "settings", **ctx), 400
    except ValueError as exc:
        ctx = _settings_context(db, v.portal, error=str(exc), form=request.form)
        return _page("settings.html", "settings", **ctx), 400
    except B24Error as exc:  # the portal could not be asked (tokens, network): nothing stored
        ctx = _settings_context(db, v.portal, error=f"Bitrix24: {exc}", form=request.form)
        return _page("settings.html", "settings", **ctx), 502
    extra = {"period": request.form.get("period")} if which == "ccei" else {}
    if which == "crosscheck":
        extra = {"from": request.form.get("from"), "to": request.form.get("to")}
    return redirect(
        url_for("reports.settings", t=g.viewer_token, saved=1 if changed else 0, **extra) + f"#form-{which}", code=303
    )


def _crosscheck(db, portal: str) -> dict:
    """Run the open-lines cross-check for the posted period (the dashboard's, by default) with the
    installed app's tokens; outside the write transaction, since it waits for the portal."""
    tz_name = portal_zone(db, portal, data.portal_config(db, portal))
    form = request.form
    try:
        q = parse_query(
            {
                "from": settings_forms.iso_date(form.get("from") or "", current_viewer().lang),
                "to": settings_forms.iso_date(form.get("to") or "", current_viewer().lang),
            },
            tz_name,
        )
    except ViewerError as exc:
        raise ValueError(exc.message) from None
    app = current_app.config
    return portal_settings.run_crosscheck(
        db,
        str(app["DB"]),
        portal,
        q.date_from,
        q.date_to,
        data.portal_config(db, portal),
        app.get("CLIENT_ID"),
        app.get("CLIENT_SECRET"),
        app.get("OAUTH_URL"),
    )
