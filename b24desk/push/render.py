"""Digests and alerts as Bitrix24 content: BB-code text and ``ATTACH`` blocks, in ru or en.

Numbers are formatted exactly as the dashboard shows them (``b24desk/text/present.py``: % for shares,
minutes/hours for durations, a decimal comma in Russian); labels are the dashboard's
(``b24desk/text/i18n.py``). Formats used (DOCS = bitrix24/b24restdocs):

- BB-codes ``[B]``, ``[URL=…]…[/URL]``, ``[BR]`` in notification and message text
  (api-reference/chats/messages/attachments/block-collections/grid.md lists those a VALUE takes);
- ``ATTACH`` full form ``{ID, COLOR_TOKEN, BLOCKS}`` with ``GRID`` rows (``DISPLAY: "ROW"``,
  ``NAME``/``VALUE``/``COLOR``), ``DELIMITER`` and ``LINK`` blocks
  (api-reference/chats/messages/attachments/index.md, block-collections/*.md), kept well under
  the 30 KB an ``ATTACH`` may weigh (im-notify-system-add.md).
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .. import bbcode
from ..text.i18n import kpi_label
from ..text.present import delta, fmt_delta, fmt_value

ICON = {"green": "🟢", "yellow": "🟡", "red": "🔴", "grey": "⚪"}
COLOR = {"green": "#2fc26e", "yellow": "#f7a700", "red": "#ff5752", "grey": "#a8adb4"}

TEXT = {
    "daily": ("Ежедневная сводка", "Daily digest"),
    "weekly": ("Еженедельный отчёт", "Weekly report"),
    "monthly": ("Ежемесячный отчёт", "Monthly report"),
    "service_desk": ("Сервис-деск", "Service desk"),
    "whole_portal": ("весь портал", "whole portal"),
    "worst": ("Хуже всего", "Needs attention"),
    "all_good": ("Все показатели с целями в норме.", "Every KPI with a target is on target."),
    "target": ("цель", "target"),
    "vs_prev": ("к прошлому периоду", "vs previous period"),
    "red_agents": ("Сотрудники с красными показателями", "Agents with red KPIs"),
    "open_dashboard": ("Открыть сводку", "Open the dashboard"),
    "xlsx": ("Отчёт XLSX", "XLSX report"),
    "alert_red": ("Показатель «{kpi}» в красной зоне: {scope}", "KPI “{kpi}” turned red: {scope}"),
    "alert_green": ("Показатель «{kpi}» снова в норме: {scope}", "KPI “{kpi}” is back to green: {scope}"),
    "value": ("значение", "value"),
    "window": ("за {days} дн. до {to}", "over the {days} days to {to}"),
    "tickets_behind": ("Заявки за показателем", "Tickets behind the number"),
    "department": ("отдел «{name}»", "department “{name}”"),
    "agent": ("сотрудник {name}", "agent {name}"),
    "saved": ("Отчёт «{name}»", "Report “{name}”"),
}


def lang_of(lang: str | None) -> str:
    return "ru" if (lang or "ru").lower().startswith("ru") else "en"


def tr(key: str, lang: str, **kw) -> str:
    s = TEXT[key][0 if lang == "ru" else 1]
    return s.format(**kw) if kw else s


def _day(iso: str | None, lang: str) -> str:
    if not iso:
        return ""
    y, m, d = iso[:10].split("-")
    return f"{d}.{m}.{y}" if lang == "ru" else f"{y}-{m}-{d}"


def _span(digest: dict, lang: str) -> str:
    """``05.10.2026–11.10.2026``: the last day shown is the day before ``to``."""
    from datetime import date, timedelta

    start = digest["from"][:10]
    last = (date.fromisoformat(digest["to"][:10]) - timedelta(days=1)).isoformat()
    return _day(start, lang) if start == last else f"{_day(start, lang)}–{_day(last, lang)}"


def scope_name(digest: dict, lang: str) -> str:
    scope = digest["scope"]
    return bbcode.text(scope["name"]) if scope["level"] == "department" else tr("whole_portal", lang)


def title(digest: dict, lang: str) -> str:
    kind = tr(digest["kind"], lang)
    kind = kind.lower() if lang == "ru" else kind
    return (
        f"{tr('service_desk', lang)}: {kind} · {scope_name(digest, lang)} · {digest['period']} ({_span(digest, lang)})"
    )


def with_params(url: str, **params) -> str:
    parts = urlsplit(url)
    q = dict(parse_qsl(parts.query))
    q.update({k: str(v) for k, v in params.items() if v not in (None, "")})
    return urlunsplit(parts._replace(query=urlencode(q)))


def _value(item: dict, lang: str) -> str:
    return fmt_value(item["key"], item["value"], lang)


def _delta(item: dict, lang: str) -> str:
    return fmt_delta(item["key"], delta(item["key"], item), lang)


def _target(item: dict, lang: str) -> str:
    t = item.get("target")
    return "" if t is None else fmt_value(item["key"], t, lang)


def line(item: dict, lang: str) -> str:
    """``🔴 First response time: 25 min — target 10 min (+5 min vs previous period)``."""
    out = f"{ICON.get(item['status'], ICON['grey'])} {kpi_label(item['key'], lang)}: {_value(item, lang)}"
    if item.get("target") is not None:
        out += f" — {tr('target', lang)} {_target(item, lang)}"
    d = _delta(item, lang)
    if d:
        out += f" ({d} {tr('vs_prev', lang)})"
    return out


def _headline(digest: dict, lang: str) -> str:
    parts = []
    for item in digest["scorecard"]:
        if item["key"] in ("tickets_total", "resolved_count", "backlog", "overdue_count"):
            d = _delta(item, lang)
            parts.append(f"{kpi_label(item['key'], lang)}: [B]{_value(item, lang)}[/B]" + (f" ({d})" if d else ""))
    return " · ".join(parts)


def saved_lines(digest: dict, lang: str) -> list[str]:
    """One line per saved report added to this digest: its KPIs for the digest's period."""
    out = []
    for sec in digest.get("saved") or []:
        parts = []
        for e in sec["kpis"]:
            d = fmt_delta(e["key"], delta(e["key"], e), lang)
            text = f"{kpi_label(e['key'], lang)}: {fmt_value(e['key'], e['value'], lang)}"
            parts.append(text + (f" ({d})" if d else ""))
        name = bbcode.text(sec["name"])  # a report's name is user input: never BB-code
        out.append(f"[B]{tr('saved', lang, name=name)}[/B]: " + " · ".join(parts))
    return out


def _u(url: str | None) -> str | None:
    """A link that cannot break out of ``[URL=…]`` (its host was checked by the caller: push.py)."""
    return bbcode.url(url, [bbcode.host_of(url)]) if url else None


def _links(lang: str, dashboard: str | None, xlsx: str | None) -> str:
    """The dashboard and workbook as BB-code links on one line ("" when there is neither)."""
    links = []
    if dashboard:
        links.append(f"[URL={dashboard}]{tr('open_dashboard', lang)}[/URL]")
    if xlsx:
        links.append(f"[URL={xlsx}]{tr('xlsx', lang)}[/URL]")
    return " · ".join(links)


def digest_text(digest: dict, lang: str, *, dashboard: str | None = None, xlsx: str | None = None) -> str:
    """The message: title, headline counts, the worst KPIs, agents in the red, saved reports, links."""
    dashboard, xlsx = _u(dashboard), _u(xlsx)
    lines = [f"[B]{title(digest, lang)}[/B]", _headline(digest, lang)]
    if digest["worst"]:
        lines.append(f"[B]{tr('worst', lang)}:[/B]")
        lines += [line(i, lang) for i in digest["worst"]]
    else:
        lines.append(f"{ICON['green']} {tr('all_good', lang)}")
    if digest.get("worst_agents"):
        names = ", ".join(f"{bbcode.text(a['name'])} ({len(a['red'])})" for a in digest["worst_agents"])
        lines.append(f"{tr('red_agents', lang)}: {names}")
    if digest.get("capacity"):
        lines.append(f"📈 {digest['capacity'][lang]}")
    lines += saved_lines(digest, lang)
    links = _links(lang, dashboard, xlsx)
    if links:
        lines.append(links)
    return "\n".join(x for x in lines if x)


def digest_attach(digest: dict, lang: str, *, dashboard: str | None = None, xlsx: str | None = None) -> dict:
    """The scorecard as a GRID: one row per KPI, coloured by its traffic light."""
    dashboard, xlsx = _u(dashboard), _u(xlsx)
    rows = []
    for item in digest["scorecard"]:
        value = _value(item, lang)
        if item.get("target") is not None:
            value += f" · {tr('target', lang)} {_target(item, lang)}"
        d = _delta(item, lang)
        if d:
            value += f" · {d}"
        rows.append(
            {
                "NAME": f"{ICON.get(item['status'], ICON['grey'])} {kpi_label(item['key'], lang)}",
                "VALUE": value,
                "DISPLAY": "ROW",
                "WIDTH": 250,
                "COLOR": COLOR.get(item["status"], COLOR["grey"]),
            }
        )
    blocks = [{"GRID": rows}]
    if dashboard or xlsx:
        blocks.append({"DELIMITER": {"SIZE": 200, "COLOR": "#c8c8c8"}})
    if dashboard:
        blocks.append({"LINK": {"NAME": tr("open_dashboard", lang), "LINK": dashboard}})
    if xlsx:
        blocks.append({"LINK": {"NAME": tr("xlsx", lang), "LINK": xlsx}})
    red = any(i["status"] == "red" for i in digest["scorecard"])
    return {
        "ID": 1,
        "COLOR_TOKEN": "alert" if red else "primary",
        "COLOR": COLOR["red" if red else "green"],
        "BLOCKS": blocks,
    }


def feed_message(digest: dict, lang: str, *, dashboard: str | None = None, xlsx: str | None = None) -> str:
    """A Live Feed post: the whole scorecard as lines (posts take no ATTACH)."""
    dashboard, xlsx = _u(dashboard), _u(xlsx)
    lines = [_headline(digest, lang), ""]
    lines += [
        line(i, lang)
        for i in digest["scorecard"]
        if i["key"] not in ("tickets_total", "resolved_count", "backlog", "overdue_count")
    ]
    if digest.get("worst_agents"):
        names = ", ".join(f"{bbcode.text(a['name'])} ({len(a['red'])})" for a in digest["worst_agents"])
        lines += ["", f"{tr('red_agents', lang)}: {names}"]
    if digest.get("capacity"):
        lines += ["", f"📈 {digest['capacity'][lang]}"]
    if digest.get("saved"):
        lines += [""] + saved_lines(digest, lang)
    links = _links(lang, dashboard, xlsx)
    if links:
        lines += ["", links]
    return "\n".join(lines)


# --- alerts ------------------------------------------------------------------------------------


def alert_scope(level: str, name: str | None, lang: str) -> str:
    if level == "portal":
        return tr("whole_portal", lang)
    return tr("department" if level == "department" else "agent", lang, name=bbcode.text(name) if name else "?")


def alert_text(
    kind: str,
    item: dict,
    *,
    level: str,
    name: str | None,
    lang: str,
    days: int,
    to_iso: str,
    tickets: list[dict] | None = None,
    dashboard: str | None = None,
) -> str:
    """One alert: which KPI, for whom, its value and target, and the tickets behind it."""
    dashboard = _u(dashboard)
    head = tr(
        "alert_red" if kind == "red" else "alert_green",
        lang,
        kpi=kpi_label(item["key"], lang),
        scope=alert_scope(level, name, lang),
    )
    lines = [
        f"{ICON['red' if kind == 'red' else 'green']} [B]{head}[/B]",
        f"{tr('value', lang).capitalize()}: [B]{_value(item, lang)}[/B]"
        + (f" — {tr('target', lang)} {_target(item, lang)}" if item.get("target") is not None else "")
        + f" ({tr('window', lang, days=days, to=_day(to_iso, lang))})",
    ]
    if kind == "red" and tickets:
        lines.append(f"{tr('tickets_behind', lang)}:")
        for t in tickets:
            label = f"#{bbcode.text(t['id'], 20)} {bbcode.text(t.get('title') or '')}".strip()
            url = _u(t.get("url"))
            lines.append(f"[URL={url}]{label}[/URL]" if url else label)
    if dashboard:
        lines.append(f"[URL={dashboard}]{tr('open_dashboard', lang)}[/URL]")
    return "\n".join(lines)
