"""Russian and English strings of the saved-report pages (list, builder, report page): only what
the main catalogue (b24desk/text/i18n.py) lacks or words differently here; ``ts`` and ``catalogue``
fall back to it. KPI names come from b24desk/labels.py alone."""

from __future__ import annotations

from b24desk.labels import DIMENSION_NAMES, PRIORITY_NAMES, lang_index
from b24desk.text.i18n import catalogue as main_catalogue
from b24desk.text.i18n import t

MESSAGES = {
    "new_report": ("Новый отчёт", "New report"),
    "no_reports": ("Пока нет отчётов, доступных вам.", "No reports you can open yet."),
    "no_reports_create": (
        "Создайте первый: выберите показатели, разбивку и период.",
        "Create the first one: pick KPIs, a breakdown and a period.",
    ),
    "col_name": ("Название", "Name"),
    "col_owner": ("Автор", "Owner"),
    "col_kpis": ("Показатели", "KPIs"),
    "col_breakdown": ("Разбивка", "Breakdown"),
    "col_period": ("Период", "Period"),
    "col_shared": ("Доступ", "Shared with"),
    "open": ("Открыть", "Open"),
    "edit": ("Изменить", "Edit"),
    "delete": ("Удалить", "Delete"),
    "confirm_delete": ("Удалить отчёт «{name}»?", "Delete the report “{name}”?"),
    "cancel": ("Отмена", "Cancel"),
    "name": ("Название", "Name"),
    "kpis": ("Показатели", "KPIs"),
    "breakdown": ("Разбивка", "Breakdown"),
    "no_breakdown": ("Без разбивки", "No breakdown"),
    "filters": ("Фильтры", "Filters"),
    "fixed_dates": ("Свои даты", "Fixed dates"),
    "compare": ("Сравнение", "Compare with"),
    "compare_previous": ("С предыдущим периодом", "The previous period"),
    "compare_last_year": ("С тем же периодом год назад", "The same period a year earlier"),
    "compare_none": ("Без сравнения", "No comparison"),
    "chart": ("Вид", "Chart"),
    "chart_table": ("Таблица", "Table"),
    "chart_bar": ("Столбцы", "Bars"),
    "chart_line": ("Линия", "Line"),
    "chart_heatmap": ("Тепловая карта (день недели × час)", "Heatmap (weekday × hour)"),
    "share": ("Кому доступен", "Who can open it"),
    "share_roles": ("Роли", "Roles"),
    "share_departments": ("Отделы", "Departments"),
    "share_users": ("Сотрудники", "People"),
    "share_note_head": (
        "Руководитель может делиться только внутри своих отделов.",
        "A head can share only inside the departments they head.",
    ),
    "share_note_limits": (
        "Каждый увидит в отчёте только то, что ему разрешено его ролью.",
        "Everyone sees inside a report only what their role allows.",
    ),
    "only_me": ("Только я", "Only me"),
    "preview": ("Предпросмотр", "Preview"),
    "preview_hint": ("Обновляется при каждом изменении.", "Updates with every change."),
    "loading": ("Считаем…", "Computing…"),
    "saved_ok": ("Отчёт сохранён", "Report saved"),
    "total": ("Итого", "Total"),
    "before_period": ("Созданы до периода", "Created before the period"),
    "export_csv": ("Скачать CSV", "Download CSV"),
    "export_xlsx": ("Скачать XLSX", "Download XLSX"),
    "pin": ("Закрепить на дашборде", "Pin to the dashboard"),
    "unpin": ("Открепить от дашборда", "Unpin from the dashboard"),
    "pinned": ("Закреплённые отчёты", "Pinned reports"),
    "pinned_note": (
        "Закреплённый отчёт виден на дашборде тем, с кем он поделён.",
        "A pinned report shows on the dashboard of everyone it is shared with.",
    ),
    "digest": ("Рассылка", "Digest"),
    "digest_none": ("Не рассылать", "Not sent"),
    "digest_daily": ("Каждый день", "Every day"),
    "digest_weekly": ("Каждую неделю", "Every week"),
    "digest_monthly": ("Каждый месяц", "Every month"),
    "digest_note": (
        "Отчёт уходит вместе со встроенными сводками по их расписанию и каналам (настройки).",
        "The report goes out with the built-in digests, on their schedule and channels (settings).",
    ),
    "add_to_digest": ("Добавить в рассылку", "Add to digest"),
    "previous": ("Было", "Before"),
    "was": ("было", "was"),
    "median_word": ("медиана", "median"),
    "saved_period": ("Период отчёта", "The report's own period"),
    "cells_note": (
        "Под значением — изменение и значение периода сравнения; зелёным — к лучшему, красным — к худшему.",
        "Under each value: the change and the value of the compared period; green is better, red worse.",
    ),
    "year_ago": ("Год назад", "A year earlier"),
    "group": ("Группа", "Group"),
    "n_tickets": ("заявок", "tickets"),
    "period_of": ("Период", "Period"),
    "compared_with": ("сравнение с", "compared with"),
    "by_owner": ("автор", "by"),
    "problem_zones": ("Проблемные зоны", "Problem zones"),
    "problem_note": (
        "Отмечено, только если разница значима: для долей — интервал Уилсона, для времени — "
        "ранговый критерий Манна — Уитни; 95 % на всю таблицу (поправка Бонферрони), не меньше {n} "
        "заявок у группы и у остальных.",
        "Marked only when the gap is significant: Wilson intervals for shares, the Mann-Whitney "
        "rank test for times; 95 % over the whole table (Bonferroni), at least {n} tickets in the "
        "group and in the rest of the team.",
    ),
    "no_problems": ("Значимо худших результатов нет.", "No result is significantly worse than the team."),
    "worse_share": (
        "{kpi}: {value} (95 % интервал {low}–{high}, {n} заявок) при {rest} у остальных",
        "{kpi}: {value} (95 % interval {low}–{high}, {n} tickets) against {rest} for the rest",
    ),
    "worse_rank": (
        "{kpi}: медиана {value} ({n} заявок) при {rest} у остальных, p {p}",
        "{kpi}: median {value} ({n} tickets) against {rest} for the rest, p {p}",
    ),
    "significantly_worse": ("значимо хуже команды", "significantly worse than the team"),
    "best_agents": ("Лучшие сотрудники", "Best agents"),
    "best_note": (
        "Что они делают иначе: медиана первого ответа, взаимодействий на заявку и FCR рядом с командой.",
        "What they do differently: median first response, interactions per ticket and FCR beside the team.",
    ),
    "team": ("команда", "team"),
    "long_term": ("Динамика по месяцам", "By month over time"),
    "long_term_note": (
        "Каждый месяц посчитан как отдельный период; рядом — тот же месяц год назад.",
        "Each month computed as its own period, beside the same month a year earlier.",
    ),
    "month": ("Месяц", "Month"),
    "months": ("месяцев", "months"),
    "role_admin_pl": ("Администраторы", "Admins"),
    "role_head_pl": ("Руководители", "Heads"),
    "role_agent_pl": ("Сотрудники", "Agents"),
    # the breakdowns and priorities are the core's names (b24desk/labels.py); only the line is spelled out
    **{f"dim_{k}": v for k, v in DIMENSION_NAMES.items()},
    **{f"priority_{k}": v for k, v in PRIORITY_NAMES.items()},
    "dim_line": ("Открытая линия", "Open line"),
    "dim_week": ("Неделя", "Week"),
    "dim_month": ("Месяц", "Month"),
    "dim_weekday": ("День недели", "Weekday"),
    "dim_hour": ("Час", "Hour"),
    "wd_1": ("Пн", "Mon"),
    "wd_2": ("Вт", "Tue"),
    "wd_3": ("Ср", "Wed"),
    "wd_4": ("Чт", "Thu"),
    "wd_5": ("Пт", "Fri"),
    "wd_6": ("Сб", "Sat"),
    "wd_7": ("Вс", "Sun"),
    "chart_needs_groups": (
        "Столбцы и линия рисуются по разбивке: выберите её в отчёте (например, по неделям).",
        "Bars and lines draw a breakdown: pick one for the report (by week, for example).",
    ),
    "heatmap_title": ("Поступление заявок: день недели × час", "Tickets created: weekday × hour"),
    "forbidden_edit": (
        "Изменять отчёт может только его автор или администратор.",
        "Only the report's owner or an admin can change it.",
    ),
    "agents_cannot_create": (
        "Отчёты создают администраторы и руководители отделов.",
        "Admins and department heads create reports.",
    ),
    "your_slice": ("Вы видите в отчёте только свои заявки.", "You see only your own tickets in this report."),
    "head_slice": ("Вы видите в отчёте только свои отделы.", "You see only your departments in this report."),
}


MONTHS = (
    ("янв", "фев", "мар", "апр", "май", "июн", "июл", "авг", "сен", "окт", "ноя", "дек"),
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
)


def month_name(key: str, lang: str | None) -> str:
    """``2026-10`` -> ``окт 2026`` / ``Oct 2026``."""
    try:
        y, m = int(key[:4]), int(key[5:7])
        return f"{MONTHS[lang_index(lang)][m - 1]} {y}"
    except (ValueError, IndexError, TypeError):
        return str(key)


def ts(key: str, lang: str | None) -> str:
    """The pages' own wording of ``key``, else the main catalogue's."""
    pair = MESSAGES.get(key)
    return pair[lang_index(lang)] if pair else t(key, lang)


def catalogue(lang: str | None) -> dict:
    """The main catalogue with these pages' own wording over it (handed to the page's script)."""
    i = lang_index(lang)
    return dict(main_catalogue(lang), **{k: v[i] for k, v in MESSAGES.items()})
