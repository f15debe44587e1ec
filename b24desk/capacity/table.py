"""The capacity report as plain text for a terminal (``flask capacity --format table``)."""

from __future__ import annotations

from .text import WEEKDAY_SHORT


def _heat(report: dict, key: str) -> list[str]:
    grid = {(r["weekday"], r["hour"]): r[key] for r in report["arrivals"]}
    hours = [h for h in range(24) if any(grid[(wd, h)] for wd in range(1, 8))] or list(range(24))
    lines = ["     " + "".join(f"{h:>6}" for h in hours)]
    for wd in range(1, 8):
        lines.append(f"{WEEKDAY_SHORT['en'][wd - 1]:<5}" + "".join(f"{grid[(wd, h)]:>6.1f}" for h in hours))
    return lines


def render_table(report: dict, lang: str = "ru") -> str:
    ru = lang == "ru"
    s = report["summary"]
    out = [f"{report['portal']}  {report['period']['from']} .. {report['period']['to']}  ({report['timezone']})", ""]
    out.append("Обращений в час (среднее по неделям):" if ru else "Tickets created per hour (mean over the weeks):")
    out += _heat(report, "created_per_hour")
    out += ["", "Сотрудников в работе (среднее):" if ru else "Agents at work (mean):"]
    out += _heat(report, "agents_active")
    b = report["backtest"]
    mape = "—" if b["mape"] is None else f"{b['mape'] * 100:.1f} %"
    out += [
        "",
        (
            f"Прогноз по неделям ({b['method']}, ошибка на истории MAPE {mape} за {b['weeks']} нед.):"
            if ru
            else f"Weekly forecast ({b['method']}, backtest MAPE {mape} over {b['weeks']} weeks):"
        ),
    ]
    for r in report["forecast"]:
        band = "" if r["low"] is None else f"  [{r['low']} – {r['high']}]"
        out.append(f"  {r['week']}  {r['created']:>7}{band}")
    load = s["load_per_agent_day"]
    lo, hi = s["norm_per_agent_day"]
    out += [
        "",
        (
            f"Нагрузка: {load if load is not None else '—'} обращений на сотрудника в день (норма {lo}–{hi})"
            if ru
            else f"Load: {load if load is not None else '—'} requests per agent a day (norm {lo}–{hi})"
        ),
    ]
    if s["forecast_note"]:
        out.append(s["forecast_note"][lang])
    if s["gaps"]:
        out += ["", "Не хватает:" if ru else "Short of agents:"]
        out += ["  " + g["text"][lang] for g in s["gaps"]]
    else:
        out += ["", "Сотрудников хватает во все часы." if ru else "Enough agents in every hour."]
    return "\n".join(out) + "\n"
