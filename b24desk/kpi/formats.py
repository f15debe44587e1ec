"""Views of a report (the section 6 dict): json, csv, xlsx and a readable terminal table.

The report dict is the single source; these only lay it out. JSON is the dict as is; CSV has one
row per KPI (per group × KPI when grouped, after the totals); XLSX has a Summary and a Groups sheet
with numbers stored as numbers; the table shows traffic lights as ``●`` plus the colour's name.
"""

from __future__ import annotations

import csv
import io
import json
import re

from .. import labels
from ..labels import KPIS
from ..model import format_time
from .engine import DURATION_KPIS, KPI_KEYS
from .periods import zone

FORMATS = ("json", "csv", "xlsx", "table")

# UI labels (kpi.md section 3): the core's one table, shared with the pages and pushes.
LABELS = {k: v.name for k, v in KPIS.items()}
SHARES = frozenset(k for k in KPI_KEYS if k.endswith("_share")) | {"csat", "ces"}
GROUP_COLUMNS = (
    "tickets_total",
    "resolved_count",
    "backlog",
    "first_response_time",
    "resolution_time",
    "fcr_share",
    "csat",
    "overdue_share",
)


def render(report: dict, fmt: str, *, color: bool = False, lang: str | None = None):
    """``str`` for json/csv/table, ``bytes`` for xlsx. ``lang`` ("ru"/"en") lays CSV and XLSX out
    for a person reading in that language (:func:`to_csv`, :func:`to_xlsx`); without it they keep
    the machine layout of ``flask kpi`` (keys, seconds, fractions, comma CSV)."""
    if fmt == "json":
        return json.dumps(report, ensure_ascii=False, indent=2) + "\n"
    if fmt == "csv":
        return to_csv(report, lang=lang)
    if fmt == "xlsx":
        return to_xlsx(report, lang=lang)
    if fmt == "table":
        return to_table(report, color=color)
    raise ValueError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")


# --- flat rows (csv, xlsx) -------------------------------------------------------------------

COLUMNS = (
    "group",
    "group_label",
    "kpi",
    "label",
    "value",
    "median",
    "p90",
    "count",
    "previous",
    "delta",
    "target",
    "status",
    "n",
)


def _plain(value):
    """Numbers stay numbers; dicts and lists become compact JSON."""
    if value is None or isinstance(value, (int, float, str)):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _rows(kpis: dict, group: str = "", group_label: str = ""):
    for key in KPI_KEYS:
        e = kpis[key]
        v, p = e["value"], e["previous"]
        row = {
            "group": group,
            "group_label": group_label,
            "kpi": key,
            "label": LABELS[key][0],
            "value": None,
            "median": None,
            "p90": None,
            "count": None,
            "previous": None,
            "delta": e["delta"],
            "target": e["target"],
            "status": e["status"],
            "n": e["n"],
        }
        if key in DURATION_KPIS:
            if v:
                row.update(value=v["avg"], median=v["median"], p90=v["p90"], count=v["count"])
            row["previous"] = p["avg"] if p else None
        else:
            row["value"], row["previous"] = _plain(v), _plain(p)
        yield row


def flat_rows(report: dict):
    yield from _rows(report["kpis"])
    for g in report.get("groups") or []:
        yield from _rows(g["kpis"], "" if g["key"] is None else str(g["key"]), g["label"])


def _csv_cell(v):
    """Text that a spreadsheet would run as a formula (a portal user named "=HYPERLINK(...)")
    is prefixed with a quote (OWASP CSV injection); numbers stay numbers."""
    if v is None:
        return ""
    if isinstance(v, str) and v[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + v
    return v


# What a person's export shows (``lang`` given): no ids, a unit column, durations in minutes,
# shares in percent; the machine layout (no ``lang``) keeps COLUMNS.
HUMAN_COLUMNS = (
    "group_label",
    "label",
    "unit",
    "value",
    "median",
    "p90",
    "count",
    "previous",
    "delta",
    "target",
    "status",
    "n",
)
NUMERIC = ("value", "median", "p90", "previous", "delta", "target")


def _human_unit(key: str) -> str:
    unit = labels.kpi_unit(key)
    return {labels.DURATION: "min", labels.SHARE: "%"}.get(unit, unit)


def human_rows(report: dict, lang: str):
    """Flat rows for a person: durations in minutes, shares in percent, labels and statuses in ``lang``."""
    units = {
        "min": ("мин", "min"),
        "%": ("%", "%"),
        labels.COUNT: ("шт.", "count"),
        labels.NUMBER: ("", ""),
        labels.SCORE: ("баллы", "points"),
        labels.LIST: ("", ""),
    }
    for row in flat_rows(report):
        key = row["kpi"]
        if key in ("resolved_by_priority", "top_agents"):
            continue
        unit = _human_unit(key)
        out = dict(
            row,
            label=labels.kpi_label(key, lang),
            unit=labels.pick(units.get(unit, ("", "")), lang),
            status=labels.pick(labels.STATUS_NAMES.get(row["status"], ("", "")), lang),
            group_label=row["group_label"] or "",
        )
        if row["group"] == "" and row["group_label"] in ("", "—"):
            out["group_label"] = row["group_label"] and labels.pick(("Не указано", "Not set"), lang)
        for c in NUMERIC:
            v = out.get(c)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                out[c] = v / 60 if unit == "min" else v * 100 if unit == "%" else v
            elif isinstance(v, str) and c != "value":
                out[c] = None
        yield out


def _ru_number(v) -> str:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return v
    if isinstance(v, float):
        v = round(v, 2)
        if v.is_integer():
            v = int(v)
    return str(v).replace(".", ",")


def to_csv(report: dict, lang: str | None = None) -> str:
    """The machine CSV without ``lang``; with it, localized headers and values, and for Russian
    the layout a Russian-locale spreadsheet opens as columns: ``;`` separators, decimal commas."""
    buf = io.StringIO()
    if lang is None:
        w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
        w.writeheader()
        for row in flat_rows(report):
            w.writerow({k: _csv_cell(v) for k, v in row.items()})
        return buf.getvalue()
    ru = labels.lang_index(lang) == 0
    w = csv.writer(buf, delimiter=";" if ru else ",", lineterminator="\r\n")
    w.writerow([labels.pick(labels.COLUMN_NAMES[c], lang) for c in HUMAN_COLUMNS])
    for row in human_rows(report, lang):
        cells = []
        for c in HUMAN_COLUMNS:
            v = row.get(c)
            if isinstance(v, float):
                v = round(v, 2)
            cells.append(_csv_cell(_ru_number(v) if ru else v))
        w.writerow(cells)
    return buf.getvalue()


WEEK_COLUMNS = (
    "week_from",
    "week_to",
    "created",
    "resolved",
    "frt_avg",
    "frt_median",
    "frt_p90",
    "resolution_avg",
    "resolution_median",
    "resolution_p90",
)


SHEETS = {"Summary": ("Сводка", "Summary"), "Groups": ("Группы", "Groups"), "Weeks": ("Недели", "Weeks")}


def _sheet_head(ws, lines, columns, bold) -> int:
    """A sheet's heading: the lines about the report, a blank row after them, then the column names
    in bold; the row of the column names."""
    r = 0
    for line in lines:
        ws.write_row(r, 0, line)
        r += 1
    if lines:
        r += 1
    ws.write_row(r, 0, columns, bold)
    return r


def to_xlsx(report: dict, weeks: list[dict] | None = None, lang: str | None = None) -> bytes:
    """Summary and Groups sheets; with ``weeks`` (``Replay.series`` rows), also a Weeks sheet with
    the trend charts' numbers, so the export has the granularity of the dashboard. With ``lang``,
    sheets and headers in that language and cells with number formats (durations ``[h]:mm:ss``,
    which a Russian Excel shows as ``[ч]:мм:сс``; shares as ``%``)."""
    if lang is not None:
        return _human_xlsx(report, weeks, lang)
    import xlsxwriter

    buf = io.BytesIO()
    wb = xlsxwriter.Workbook(buf, {"in_memory": True})
    bold = wb.add_format({"bold": True})
    fills = {
        s: wb.add_format({"bg_color": c})
        for s, c in (("green", "#C6EFCE"), ("yellow", "#FFEB9C"), ("red", "#FFC7CE"), ("grey", "#E7E6E6"))
    }

    def sheet(name, rows, header_lines):
        ws = wb.add_worksheet(name)
        r = _sheet_head(ws, header_lines, COLUMNS, bold)
        for row in rows:
            r += 1
            for c, col in enumerate(COLUMNS):
                v = row[col]
                if v is None:
                    continue
                if col == "status":
                    ws.write_string(r, c, v, fills.get(v))
                elif isinstance(v, (int, float)) and not isinstance(v, bool):
                    ws.write_number(r, c, v)
                else:
                    ws.write_string(r, c, str(v))
        ws.set_column(3, 3, 38)
        return ws

    ccei = report.get("ccei") or {}
    head = [
        ["portal", report["portal"]],
        ["timezone", report["timezone"]],
        ["from", report["period"]["from"]],
        ["to", report["period"]["to"]],
        ["previous from", report["previous"]["from"]],
        ["previous to", report["previous"]["to"]],
        ["filters", json.dumps(report["filters"], ensure_ascii=False)],
        ["CCEI", ccei.get("value")]
        + [f"{k} {'' if v is None else v}" for k, v in (ccei.get("components") or {}).items()],
    ]
    head = [[("" if x is None else x) for x in line] for line in head]
    sheet("Summary", list(_rows(report["kpis"])), head)
    group_rows = [row for row in flat_rows(report) if row["group"] or row["group_label"]]
    sheet("Groups", group_rows, [["group_by", report.get("group_by") or "(none)"]])
    if weeks is not None:
        tz = zone(report["timezone"])
        ws = wb.add_worksheet("Weeks")
        ws.write_row(0, 0, WEEK_COLUMNS, bold)
        for r, w in enumerate(weeks, 1):
            frt, res = w.get("first_response_time") or {}, w.get("resolution_time") or {}
            row = [
                format_time(w["start"], tz),
                format_time(w["end"], tz),
                w["created"],
                w["resolved"],
                frt.get("avg"),
                frt.get("median"),
                frt.get("p90"),
                res.get("avg"),
                res.get("median"),
                res.get("p90"),
            ]
            for c, v in enumerate(row):
                if isinstance(v, (int, float)):
                    ws.write_number(r, c, v)
                elif v is not None:
                    ws.write_string(r, c, v)
        ws.set_column(0, 1, 26)
    wb.close()
    return buf.getvalue()


def _human_xlsx(report: dict, weeks: list[dict] | None, lang: str) -> bytes:
    import xlsxwriter

    buf = io.BytesIO()
    wb = xlsxwriter.Workbook(buf, {"in_memory": True})
    bold = wb.add_format({"bold": True, "text_wrap": True, "valign": "top"})
    fmt = {
        "duration": wb.add_format({"num_format": "[h]:mm:ss"}),
        "share": wb.add_format({"num_format": "0.0%"}),
        labels.COUNT: wb.add_format({"num_format": "# ##0" if labels.lang_index(lang) == 0 else "#,##0"}),
        "number": wb.add_format({"num_format": "0.00"}),
    }
    fills = {
        s: wb.add_format({"bg_color": c})
        for s, c in (("green", "#C6EFCE"), ("yellow", "#FFEB9C"), ("red", "#FFC7CE"), ("grey", "#E7E6E6"))
    }
    cols = ("group_label", "label", "value", "median", "p90", "count", "previous", "delta", "target", "status", "n")

    def cell_format(key, col):
        if col in ("count", "n"):
            return fmt[labels.COUNT]
        unit = labels.kpi_unit(key)
        if unit == labels.DURATION and col in NUMERIC:
            return fmt["duration"]
        if unit == labels.SHARE and col in NUMERIC:
            return fmt["share"]
        if unit == labels.COUNT and col in NUMERIC:
            return fmt[labels.COUNT]
        return fmt["number"]

    def sheet(name, rows, head):
        ws = wb.add_worksheet(labels.pick(SHEETS[name], lang))
        r = _sheet_head(ws, head, [labels.pick(labels.COLUMN_NAMES[c], lang) for c in cols], bold)
        ws.freeze_panes(r + 1, 2)
        for row in rows:
            r += 1
            key = row["kpi"]
            for c, col in enumerate(cols):
                v = row.get(col)
                if v is None:
                    continue
                if col == "status":
                    ws.write_string(r, c, labels.pick(labels.STATUS_NAMES.get(v, ("", "")), lang), fills.get(v))
                elif col == "label":
                    ws.write_string(r, c, labels.kpi_label(key, lang))
                elif isinstance(v, (int, float)) and not isinstance(v, bool):
                    if labels.kpi_unit(key) == labels.DURATION and col in NUMERIC:
                        v = v / 86400
                    ws.write_number(r, c, v, cell_format(key, col))
                elif col in NUMERIC and col != "value":
                    continue
                else:
                    ws.write_string(r, c, str(v))
        ws.set_column(0, 0, 24)
        ws.set_column(1, 1, 40)
        ws.set_column(2, 10, 14)

    rows = [r for r in _rows(report["kpis"]) if r["kpi"] not in ("resolved_by_priority", "top_agents")]
    p, q = report["period"], report["previous"]
    head = [
        [labels.pick(("Период", "Period"), lang), f"{p['from'][:10]} — {p['to'][:10]}"],
        [labels.pick(("Сравнение", "Compared with"), lang), f"{q['from'][:10]} — {q['to'][:10]}"],
        [labels.pick(("Часовой пояс", "Time zone"), lang), report["timezone"]],
    ]
    sheet("Summary", rows, head)
    groups = [
        r
        for r in flat_rows(report)
        if (r["group"] or r["group_label"]) and r["kpi"] not in ("resolved_by_priority", "top_agents")
    ]
    sheet("Groups", groups, [])
    if weeks is not None:
        tz = zone(report["timezone"])
        ws = wb.add_worksheet(labels.pick(SHEETS["Weeks"], lang))
        heads = [
            ("Неделя с", "Week from"),
            ("по", "to"),
            ("Создано", "Created"),
            ("Решено", "Resolved"),
            ("Первый ответ, среднее", "First response, average"),
            ("Первый ответ, медиана", "First response, median"),
            ("Первый ответ, p90", "First response, p90"),
            ("Решение, среднее", "Resolution, average"),
            ("Решение, медиана", "Resolution, median"),
            ("Решение, p90", "Resolution, p90"),
        ]
        ws.write_row(0, 0, [labels.pick(h, lang) for h in heads], bold)
        datef = wb.add_format({"num_format": "dd.mm.yyyy" if labels.lang_index(lang) == 0 else "yyyy-mm-dd"})
        from datetime import datetime as _dt

        for r, w in enumerate(weeks, 1):
            frt, res = w.get("first_response_time") or {}, w.get("resolution_time") or {}
            ws.write_datetime(r, 0, _dt.fromtimestamp(w["start"], tz).replace(tzinfo=None), datef)
            ws.write_datetime(r, 1, _dt.fromtimestamp(w["end"] - 1, tz).replace(tzinfo=None), datef)
            ws.write_number(r, 2, w["created"], fmt[labels.COUNT])
            ws.write_number(r, 3, w["resolved"], fmt[labels.COUNT])
            for c, v in enumerate(
                (frt.get("avg"), frt.get("median"), frt.get("p90"), res.get("avg"), res.get("median"), res.get("p90")),
                4,
            ):
                if v is None:  # a week with nothing to measure: blank, but typed like its column
                    ws.write_blank(r, c, None, fmt["duration"])
                else:
                    ws.write_number(r, c, v / 86400, fmt["duration"])
        ws.set_column(0, 9, 16)
    wb.close()
    return buf.getvalue()


# --- the terminal table --------------------------------------------------------------------

ANSI = {"green": "\033[32m", "yellow": "\033[33m", "red": "\033[31m", "grey": "\033[90m"}


def human_seconds(s) -> str:
    if s is None:
        return "—"
    s = int(round(s))
    sign, s = ("-" if s < 0 else ""), abs(s)
    d, rem = divmod(s, 86400)
    h, rem = divmod(rem, 3600)
    m, sec = divmod(rem, 60)
    if d:
        return f"{sign}{d}d {h:02d}h"
    if h:
        return f"{sign}{h}h {m:02d}m"
    if m:
        return f"{sign}{m}m {sec:02d}s"
    return f"{sign}{sec}s"


def fmt_value(key: str, v, brief: bool = False) -> str:
    if v is None:
        return "—"
    if key in DURATION_KPIS:
        if brief:
            return human_seconds(v["avg"])
        return (
            f"{human_seconds(v['avg'])} (med {human_seconds(v['median'])}, "
            f"p90 {human_seconds(v['p90'])}, n={v['count']})"
        )
    if key == "resolved_by_priority":
        return " · ".join(f"{p} {n}" for p, n in v.items())
    if key == "top_agents":
        return ", ".join(f"{a['name']} ({a['resolved']})" for a in v[:3]) + (" …" if len(v) > 3 else "")
    if key in SHARES:
        return f"{100 * v:.1f}%"
    if isinstance(v, float):
        return f"{v:.2f}"
    return str(v)


def fmt_delta(key: str, d) -> str:
    if d is None:
        return ""
    if key in DURATION_KPIS:
        return ("+" if d >= 0 else "-") + human_seconds(abs(d))
    if key in SHARES:
        return f"{100 * d:+.1f} pp"
    return f"{d:+.2f}" if isinstance(d, float) else f"{d:+d}"


DOTS = {"green": "●", "yellow": "◐", "red": "○", "grey": "·"}  # distinguishable without colour


def _dot(s: str, color: bool) -> str:
    return f"{ANSI[s]}●\033[0m" if color and s in ANSI else DOTS.get(s, "·")


def _status(s: str, color: bool) -> str:
    word = f"● {s}"
    return f"{ANSI[s]}{word}\033[0m" if color and s in ANSI else word


_ANSI_RE = re.compile(r"\033\[[0-9;]*m")


def _width(cell: str) -> int:
    return len(_ANSI_RE.sub("", cell))


def _grid(rows: list[list[str]]) -> list[str]:
    """Left-aligned columns; widths ignore colour codes."""
    widths = [max(_width(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c + " " * (widths[i] - _width(c)) for i, c in enumerate(r)).rstrip() for r in rows]


def to_table(report: dict, color: bool = False) -> str:
    p, q = report["period"], report["previous"]
    lines = [
        f"KPI report · portal {report['portal']} · {p['from']} → {p['to']} ({report['timezone']})",
        f"previous period: {q['from']} → {q['to']}",
    ]
    active = {k: v for k, v in report["filters"].items() if v is not None}
    if active:
        lines.append("filters: " + ", ".join(f"{k}={v}" for k, v in active.items()))
    lines.append("")
    rows = [["KPI", "value", "previous", "Δ", "target", "status"]]
    for key in KPI_KEYS:
        e = report["kpis"][key]
        if key == "top_agents":
            continue
        if e["target"] is None:
            target = "—"
        else:
            target = human_seconds(e["target"]) if key in DURATION_KPIS else fmt_value(key, e["target"])
        rows.append(
            [
                LABELS[key][0],
                fmt_value(key, e["value"]),
                fmt_value(key, e["previous"], True),
                fmt_delta(key, e["delta"]),
                target,
                _status(e["status"], color),
            ]
        )
    lines += _grid(rows)
    ccei = report.get("ccei") or {}
    comps = ", ".join(f"{k} {'—' if v is None else f'{v:.1f}'}" for k, v in (ccei.get("components") or {}).items())
    value = "—" if ccei.get("value") is None else f"{ccei['value']:.2f}"
    lines += [
        "",
        f"CCEI {value} ({comps})" + (f"; left out: {', '.join(ccei['left_out'])}" if ccei.get("left_out") else ""),
    ]
    top = report["kpis"]["top_agents"]["value"]
    if top:
        lines += ["", LABELS["top_agents"][0]]
        trows = [["#", "agent", "resolved", "FRT median", "CSAT", "FCR"]]
        for i, a in enumerate(top, 1):
            trows.append(
                [
                    str(i),
                    str(a["name"]),
                    str(a["resolved"]),
                    human_seconds(a["frt_median"]),
                    fmt_value("csat", a["csat"]),
                    fmt_value("fcr_share", a["fcr"]),
                ]
            )
        lines += _grid(trows)
    if report.get("groups"):
        lines += ["", f"By {report['group_by']}"]
        grows = [[report["group_by"]] + [LABELS[k][1] for k in GROUP_COLUMNS]]
        for g in report["groups"]:
            label = ("  " * g.get("depth", 0)) + str(g["label"])
            cells = [label]
            for k in GROUP_COLUMNS:
                e = g["kpis"][k]
                mark = "" if e["target"] is None else " " + _dot(e["status"], color)
                cells.append(fmt_value(k, e["value"], True) + mark)
            grows.append(cells)
        lines += _grid(grows)
    return "\n".join(lines) + "\n"
