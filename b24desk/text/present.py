"""Turns the KPI report JSON (kpi.md section 6) into what a page shows: cards, deltas, formatted values.

Pure functions over the engine's output; no KPI maths here beyond the delta of two numbers the
engine already computed. Formatting follows the viewer's language (decimal comma in Russian).
"""

from __future__ import annotations

import functools
import math
from bisect import bisect_left

from babel.numbers import get_decimal_symbol, get_group_symbol

from .. import labels
from ..kpi.engine import KPI_KEYS as KPI_KEYS_ALL  # noqa: F401  (the drilldown accepts these)
from .i18n import kpi_label, t

DURATIONS = (
    "first_response_time",
    "first_response_time_business",
    "resolution_time",
    "resolution_time_business",
    "handle_time",
    "requester_wait_time",
    "agent_wait_time",
)
SHARES_EXTRA = ("csat", "ces")  # shares whose key does not end in _share
SCORES = ("nps", "task_efficiency")  # plain numbers on a fixed scale
# The cards, in the order a support manager reads them; anything else the engine adds follows.
CARD_ORDER = (
    "tickets_total",
    "first_response_time",
    "first_response_sla_share",
    "resolution_time",
    "resolved_count",
    "backlog",
    "overdue_share",
    "fcr_share",
    "csat",
    "nps",
    "unanswered_share",
    "resolved_share",
    "tickets_per_day",
    "overdue_count",
    "transferred_share",
    "transfers_per_ticket",
    "reopen_share",
    "one_touch_share",
    "repeat_contact_share",
    "contacts_per_customer",
    "tickets_per_agent_day",
    "correctly_qualified_share",
    "interactions_per_ticket",
    "handle_time",
    "rated_share",
    "ces",
    "callback_share",
    "task_efficiency",
    "requester_wait_time",
    "agent_wait_time",
    "first_response_time_business",
    "resolution_time_business",
)
NOT_CARDS = ("resolved_by_priority", "top_agents", "ccei")


def kind(key: str) -> str:
    if key in DURATIONS or key.endswith("_time") or key.endswith("_time_business"):
        return "duration"
    if key.endswith("_share") or key in SHARES_EXTRA:
        return "share"
    if key in ("tickets_total", "resolved_count", "backlog", "overdue_count"):
        return "count"
    return "number"


def headline(key: str, value):
    """The one number a card shows for ``value``: ``avg`` of a duration, the share of a share."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return None if isinstance(value, float) and math.isnan(value) else value
    if isinstance(value, dict):
        for k in ("avg", "value", "share", "team", "mean", "total"):
            if k in value:
                return headline(key, value[k])
    return None


def sample_size(entry: dict) -> int | None:
    """The ``n`` a card shows: the engine's own ``n``/``count`` where given."""
    if not isinstance(entry, dict):
        return None
    for k in ("n", "count"):
        if isinstance(entry.get(k), int):
            return entry[k]
    v = entry.get("value")
    if isinstance(v, dict):
        for k in ("count", "n"):
            if isinstance(v.get(k), int):
                return v[k]
    return None


@functools.lru_cache(maxsize=8)
def _symbols(lang: str) -> tuple[str, str]:
    """The locale's grouping and decimal symbols from Babel's CLDR data (``ru``: no-break space
    and comma; ``en``: comma and dot)."""
    loc = "ru" if lang == "ru" else "en"
    return get_group_symbol(loc), get_decimal_symbol(loc)


def _num(x: float, digits: int, lang: str) -> str:
    """``x`` with at most ``digits`` decimals in the viewer's locale (``4 002,5`` in Russian,
    ``4,002.5`` in English). The symbols are CLDR's (Babel); the digits are laid out here, since
    a page formats a few thousand numbers and Babel's pattern engine costs ~0.2 ms a call."""
    group, decimal = _symbols(lang)
    s = f"{x:,.{digits}f}"
    if digits and "." in s:
        s = s.rstrip("0").rstrip(".")
    if s in ("-0", "−0"):
        s = "0"
    return s.replace(",", "\x00").replace(".", decimal).replace("\x00", group)


def fmt_duration(seconds, lang: str) -> str:
    if seconds is None:
        return "—"
    s = float(seconds)
    sign = "−" if s < 0 else ""
    s = abs(s)
    units = [(86400, "days_short"), (3600, "hours_short"), (60, "minutes_short"), (1, "seconds_short")]
    parts = []
    for size, name in units:
        if s >= size or (size == 1 and not parts):
            q = int(s // size) if size > 1 else int(round(s))
            if q or size == 1:
                parts.append(f"{q}\u00a0{t(name, lang)}")
            s -= q * size
        if len(parts) == 2:
            break
    return sign + " ".join(parts)


def fmt_value(key: str, value, lang: str) -> str:
    """A KPI's headline value as text: ``8 min 20 s``, ``12.5 %``, ``1 204``."""
    v = headline(key, value)
    if v is None:
        return "—"
    k = kind(key)
    if k == "duration":
        return fmt_duration(v, lang)
    if k == "share":
        return _num(v * 100, 1, lang) + "\u00a0%"
    if k == "count":
        return _num(v, 0, lang)
    return _num(v, 2 if abs(v) < 100 else 1, lang)


def delta(key: str, entry: dict) -> dict | None:
    """Change against the previous period: ``{"diff", "pct", "arrow", "good"}``, or None.

    ``good`` is True/False when the entry (or its target) says which direction is better,
    None when neither does (the arrow then shows neutral)."""
    cur, prev = headline(key, entry.get("value")), headline(key, entry.get("previous"))
    if cur is None or prev is None:
        return None
    diff = cur - prev
    pct = (diff / prev) if prev else None
    arrow = "up" if diff > 0 else "down" if diff < 0 else "flat"
    if diff == 0:
        return {"diff": 0, "pct": 0.0 if prev else None, "arrow": "flat", "good": None}
    direction = entry.get("direction")
    good = None
    if direction in ("higher", "lower") and diff:
        good = (diff > 0) == (direction == "higher")
    return {"diff": diff, "pct": pct, "arrow": arrow, "good": good}


def fmt_delta(key: str, d: dict | None, lang: str) -> str:
    if not d:
        return ""
    k = kind(key)
    diff = d["diff"]
    if diff == 0:
        return t("no_change", lang)
    sign = "+" if diff > 0 else "−"
    if k == "duration":
        body = fmt_duration(abs(diff), lang)
    elif k == "share":
        body = _num(abs(diff) * 100, 1, lang) + (" п.п." if lang == "ru" else " pp")
    elif k == "count":
        body = _num(abs(diff), 0, lang)
    else:
        body = _num(abs(diff), 2, lang)
    return f"{sign}{body}"


def fmt_target(key: str, entry: dict, lang: str) -> str:
    target = entry.get("target")
    if isinstance(target, dict):
        target = target.get("target", target.get("value"))
    if target is None:
        return ""
    return fmt_value(key, target, lang)


def cards(report: dict, lang: str, directions: dict | None = None, team: dict | None = None) -> list[dict]:
    """Every scalar KPI of ``report`` as a card; ``team`` (an agent's team report) adds its value."""
    kpis = report.get("kpis") or {}
    keys = [k for k in CARD_ORDER if k in kpis] + sorted(k for k in kpis if k not in CARD_ORDER and k not in NOT_CARDS)
    out = []
    team_kpis = (team or {}).get("kpis") or {}
    for key in keys:
        entry = kpis.get(key) or {}
        if not isinstance(entry, dict):
            entry = {"value": entry}
        if isinstance(entry.get("value"), list):
            continue
        entry = dict(entry)
        if "direction" not in entry and directions and key in directions:
            entry["direction"] = directions[key]
        d = delta(key, entry)
        status = entry.get("status") or "grey"
        if status not in ("green", "yellow", "red", "grey"):
            status = "grey"
        has_target = entry.get("target") is not None
        status_label = t(f"status_{status}", lang) if (has_target or status != "grey") else t("no_target", lang)
        v = entry.get("value")
        stats = None
        if kind(key) == "duration" and isinstance(v, dict):
            stats = {"median": fmt_duration(v.get("median"), lang), "p90": fmt_duration(v.get("p90"), lang)}
        out.append(
            {
                "key": key,
                "label": kpi_label(key, lang, short=kind(key) == "duration"),
                "kind": kind(key),
                "definition": labels.kpi_definition(key, lang),
                "stats": stats,
                "has_target": has_target,
                "big": key in labels.HEADLINE,
                "value": fmt_value(key, entry.get("value"), lang),
                "raw": headline(key, entry.get("value")),
                "previous": fmt_value(key, entry.get("previous"), lang),
                "target": fmt_target(key, entry, lang),
                "status": status,
                "status_label": status_label,
                "delta": d,
                "delta_text": fmt_delta(key, d, lang),
                "n": sample_size(entry),
                "team": fmt_value(key, (team_kpis.get(key) or {}).get("value"), lang) if team else None,
            }
        )
    return out


def directions_from_config(config: dict | None) -> dict:
    """``{kpi: "higher"|"lower"}`` from the config's ``[targets]`` table."""
    out = {}
    for key, spec in ((config or {}).get("targets") or {}).items():
        if isinstance(spec, dict) and spec.get("direction") in ("higher", "lower"):
            out[key] = spec["direction"]
    return out


def histogram(values: list, median=None, p90=None, *, bins: int = 12, lang: str = "en", target=None) -> dict | None:
    """Counts of ``values`` in ``bins`` equal-width bins from 0 up to (about) the 95th percentile,
    the last bin open-ended; ``median_pos`` / ``p90_pos`` place the markers (fractional bin index).
    With a ``target`` the bins are scaled to it: they span about twice the target (less if the
    values do) and the target falls on a bin edge, so "within target" reads off the bars."""
    vals = sorted(v for v in values if v is not None)
    if not vals:
        return None
    top = vals[min(len(vals) - 1, int(0.95 * len(vals)))] or vals[-1] or 1
    if isinstance(target, (int, float)) and target > 0:
        width = _width_for_target(min(top, 2 * target), float(target), bins)
    else:
        width = _nice_width(top / bins)
    edges = [i * width for i in range(bins)] + [None]
    # the sorted values cut at each edge (bisect): tens of thousands a chart, each page view; a
    # negative duration (clock skew) is in the first bin
    cuts = [0] + [bisect_left(vals, e) for e in edges[1:-1]] + [len(vals)]
    counts = [cuts[i + 1] - cuts[i] for i in range(bins)]

    def pos(x):
        if x is None:
            return None
        return min(float(bins), x / width)

    names = [
        f"{fmt_duration(edges[i], lang)}–{fmt_duration(edges[i + 1], lang)}"
        if edges[i + 1] is not None
        else f"≥ {fmt_duration(edges[i], lang)}"
        for i in range(bins)
    ]
    return {
        "labels": names,
        "target": target,
        "target_pos": pos(target) if isinstance(target, (int, float)) else None,
        "counts": counts,
        "bins": [[edges[i], edges[i + 1]] for i in range(bins)],
        "median": median,
        "p90": p90,
        "median_pos": pos(median),
        "p90_pos": pos(p90),
    }


def _width_for_target(span: float, target: float, bins: int) -> float:
    """The smallest readable width that divides ``target`` and covers ``span`` in ``bins`` bins."""
    raw = span / bins
    for s in _STEPS:
        if s >= raw and target % s == 0:
            return float(s)
    return _nice_width(raw)


_STEPS = [
    1,
    2,
    5,
    10,
    15,
    30,
    60,
    120,
    300,
    600,
    900,
    1800,
    3600,
    7200,
    10800,
    21600,
    43200,
    86400,
    172800,
    259200,
    604800,
]


def _nice_width(raw: float) -> float:
    """A bin width a person reads easily: 1, 2, 5, 10, 15, 30 s/min, 1, 2, 3, 6, 12 h, days."""
    for s in _STEPS:
        if raw <= s:
            return float(s)
    return float(_STEPS[-1] * (int(raw // _STEPS[-1]) + 1))


def _when(ts, lang: str) -> str:
    if not ts:
        return "—"
    from datetime import datetime, timezone

    return datetime.fromtimestamp(int(ts), timezone.utc).strftime(
        "%d.%m.%Y %H:%M UTC" if lang == "ru" else "%Y-%m-%d %H:%M UTC"
    )


def openlines_panel(status: dict | None, check: dict | None, lang: str) -> dict:
    """The settings page's open-lines section: availability (a plan's refusal is a state, said in
    words, not a failure) and the last cross-check with ``imopenlines.v2.Stat.get``."""
    out = {
        "known": status is not None,
        "available": None,
        "code": None,
        "message": None,
        "checked": _when((status or {}).get("checked_at"), lang),
        "check": None,
    }
    if status is not None:
        out["available"] = bool(status.get("available"))
        out["code"] = status.get("code")
        if out["available"]:
            out["message"] = t("ol_available", lang)
        else:
            key = f"ol_{status.get('code')}"
            msg = t(key, lang)
            out["message"] = msg if msg != key else (status.get("message") or status.get("code") or "")
    if check:
        period = check.get("period") or {}
        c = {
            "available": bool(check.get("available")),
            "differs": bool(check.get("differs")),
            "period": f"{(period.get('from') or '')[:10]} — {(period.get('to') or '')[:10]}",
            "checked": _when(check.get("checked_at"), lang),
            "rows": [],
            "notes": list(check.get("notes") or []),
            "message": None,
        }
        if not c["available"]:
            key = f"ol_{check.get('code')}"
            msg = t(key, lang)
            c["message"] = msg if msg != key else (check.get("message") or check.get("code") or "")
        else:
            ours, theirs, diffs = check.get("ours") or {}, check.get("portal") or {}, check.get("differences") or {}
            c["rows"] = [
                {
                    "key": "sessions",
                    "label": t("ol_sessions", lang),
                    "ours": _num(ours.get("sessions") or 0, 0, lang),
                    "portal": _num(theirs.get("total_sessions") or 0, 0, lang),
                    "differs": False,
                },
                {
                    "key": "frt_avg",
                    "label": t("ol_frt_avg", lang),
                    "ours": fmt_duration(ours.get("frt_avg"), lang),
                    "portal": fmt_duration(theirs.get("frt_avg"), lang),
                    "differs": bool(diffs.get("frt_avg")),
                },
                {
                    "key": "positive_rate",
                    "label": t("ol_positive_rate", lang),
                    "ours": fmt_value("csat", ours.get("positive_rate"), lang),
                    "portal": fmt_value("csat", theirs.get("positive_rate"), lang),
                    "differs": bool(diffs.get("positive_rate")),
                },
            ]
        out["check"] = c
    return out
