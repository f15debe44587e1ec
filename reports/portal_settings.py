"""The settings page's push form and open-lines panel (the other forms: settings_forms.py).

- ``push``: schedules, channels, recipients, departments and alerts as a partial setting, validated
  by ``b24desk.push.data.validate_push`` before settings_forms.parse_push stores it.
- ``ccei_inputs:<period>``: read with the engine's own key (b24desk/kpi/ccei.py).
- ``openlines.crosscheck``: written by ``b24desk.sources.openlines.crosscheck`` when an admin asks.
"""

from __future__ import annotations

import re

from b24desk.kpi import ccei as kccei
from b24desk.push import data as digest
from b24desk.store import get_setting


def get_ccei(db, portal: str, period: str) -> dict:
    return kccei.get_inputs(db, portal, period)


# --- push schedules, channels, recipients and alerts ---------------------------------------------


def _ids(text: str, field: str) -> list[str]:
    out = [x for x in re.split(r"[\s,;]+", (text or "").strip()) if x]
    bad = [x for x in out if not x.isdigit()]
    if bad:
        raise ValueError(f"{field}: {bad[0]!r} is not a user id")
    return out


def _int(form, name: str, field: str, lo: int, hi: int) -> int:
    raw = (form.get(name) or "").strip()
    if not raw.isdigit() or not lo <= int(raw) <= hi:
        raise ValueError(f"{field} must be a whole number {lo} .. {hi}")
    return int(raw)


def _joined(form, name: str) -> str:
    getlist = getattr(form, "getlist", None)
    values = getlist(name) if getlist else [form.get(name) or ""]
    return ",".join(v for v in values if v).strip()


def push_from_form(form, kpi_keys) -> dict:
    """The push form's fields as a partial ``push`` setting (checked by ``validate_push`` on save).

    Checkboxes absent from the form mean off; an empty KPI list means every KPI with a target."""
    reports = {}
    for kind in digest.KINDS:
        sched = {
            "enabled": form.get(f"push_{kind}_enabled") == "1",
            "time": (form.get(f"push_{kind}_time") or "").strip(),
        }
        if kind == "weekly":
            sched["weekday"] = _int(form, "push_weekly_weekday", "push.reports.weekly.weekday", 1, 7)
        elif kind == "monthly":
            sched["day"] = _int(form, "push_monthly_day", "push.reports.monthly.day", 1, 28)
        reports[kind] = sched
    getlist = getattr(form, "getlist", None)
    channels = getlist("push_channels") if getlist else list(form.get("push_channels") or [])
    # pickers post one value per person / KPI; a script may post one comma-separated text
    kpis = [k for k in re.split(r"[\s,;]+", _joined(form, "push_alert_kpis")) if k]
    unknown = [k for k in kpis if k not in kpi_keys]
    if unknown:
        raise ValueError(f"push.alerts.kpis: {unknown[0]!r} is not a KPI")
    dialog = (form.get("push_chat") or "").strip() or None
    deps = _ids(_joined(form, "push_departments"), "push.departments")
    return {
        "enabled": form.get("push_enabled") == "1",
        "reports": reports,
        "channels": channels,
        "portal_recipients": _ids(_joined(form, "push_recipients"), "push.portal_recipients"),
        "departments": deps or "all",  # none ticked: every department with a head
        "chat": {"dialog_id": dialog},
        "alerts": {
            "enabled": form.get("push_alerts_enabled") == "1",
            "kpis": kpis or None,
            "recipients": _ids(_joined(form, "push_alert_recipients"), "push.alerts.recipients"),
        },
    }


def push_view(db, portal: str, form=None) -> dict:
    """What the push form shows: the effective setting, or the admin's own input after a refusal."""
    eff = digest.push_settings(db, portal)
    rep = eff.get("reports") or {}
    view = {
        "enabled": bool(eff.get("enabled")),
        "channels": list(eff.get("channels") or []),
        "recipients": ", ".join(str(x) for x in eff.get("portal_recipients") or []),
        "departments": ", ".join(str(x) for x in eff["departments"])
        if isinstance(eff.get("departments"), list)
        else "",  # "all": none ticked
        "alert_recipients": ", ".join(str(x) for x in (eff.get("alerts") or {}).get("recipients") or []),
        "chat": (eff.get("chat") or {}).get("dialog_id") or "",
        "alerts_enabled": bool((eff.get("alerts") or {}).get("enabled")),
        "alert_kpis": ", ".join((eff.get("alerts") or {}).get("kpis") or []),
        "reports": {
            k: {
                "enabled": bool((rep.get(k) or {}).get("enabled")),
                "time": (rep.get(k) or {}).get("time") or "09:00",
                "weekday": (rep.get(k) or {}).get("weekday") or 1,
                "day": (rep.get(k) or {}).get("day") or 1,
            }
            for k in digest.KINDS
        },
    }
    if form is not None and form.get("form") == "push":
        getlist = getattr(form, "getlist", None)
        view.update(
            enabled=form.get("push_enabled") == "1",
            channels=getlist("push_channels") if getlist else [],
            recipients=form.get("push_recipients") or "",
            chat=form.get("push_chat") or "",
            departments=form.get("push_departments") or "",
            alert_recipients=form.get("push_alert_recipients") or "",
            alerts_enabled=form.get("push_alerts_enabled") == "1",
            alert_kpis=form.get("push_alert_kpis") or "",
        )
        for k in digest.KINDS:
            view["reports"][k] = {
                "enabled": form.get(f"push_{k}_enabled") == "1",
                "time": form.get(f"push_{k}_time") or "",
                "weekday": form.get("push_weekly_weekday") or "",
                "day": form.get("push_monthly_day") or "",
            }
    return view


# --- open lines: availability and the cross-check with the portal's own statistics -----------------


def openlines_state(db, portal: str) -> tuple[dict | None, dict | None]:
    """(``openlines.status``, ``openlines.crosscheck``) as the sync and the last check stored them."""
    from b24desk.sources import openlines as ol

    return ol.status(db, portal), get_setting(db, portal, ol.CROSSCHECK_KEY)


def run_crosscheck(
    db,
    db_path: str,
    portal: str,
    date_from: str,
    date_to: str,
    config: dict,
    client_id: str | None,
    client_secret: str | None,
    oauth_url: str | None,
) -> dict:
    """Compare our open-line figures with ``imopenlines.v2.Stat.get`` through the installed app's
    tokens; the result (a refusal by the plan included) is stored by ``crosscheck`` itself."""
    from b24desk.client import B24Client
    from b24desk.sources import openlines as ol

    client = B24Client.from_installation(
        db_path, portal, client_id, client_secret, oauth_url, interactive=True
    )  # an admin waits on the settings page
    try:
        return ol.crosscheck(db, client, portal, date_from, date_to, config=config)
    finally:
        client.close()
