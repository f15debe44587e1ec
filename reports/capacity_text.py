"""Russian and English strings of the capacity page and API errors (kept beside, not inside, the
main catalogue, so the page can move without touching it)."""

from __future__ import annotations

TEXT = {
    "capacity": ("Нагрузка и штат", "Capacity"),
    "weeks_ahead": ("Прогноз, недель", "Weeks ahead"),
    "all_sources": ("Все источники", "All sources"),
    "whole_portal": ("Весь портал", "Whole portal"),
    "period": ("Период", "Period"),
    "load_card": ("Нагрузка на сотрудника в день", "Requests per agent a day"),
    "load_note": (
        "Созданные заявки / сумма сотрудников, работавших в каждый день (норма {lo}–{hi})",
        "Tickets created / agents who worked each day, summed (norm {lo}–{hi})",
    ),
    "short_card": ("Не хватает в пиковый час", "Short at the peak hour"),
    "short_note": (
        "Больше всего недостающих сотрудников в одном часе или дне недели",
        "The most agents missing in any one hour or weekday",
    ),
    "forecast_card": ("Прогноз на неделю {week}", "Forecast for week {week}"),
    "forecast_note": ("Заявок; в скобках — интервал 80 %", "Tickets; in brackets, the 80 % interval"),
    "mape_card": ("Ошибка прогноза на истории", "Backtest error"),
    "mape_note": (
        "MAPE метода «{method}» на последних {weeks} нед., которых он не видел при подборе",
        "MAPE of “{method}” on the last {weeks} weeks it was not fitted on",
    ),
    "heat_arrivals": ("Обращений в час", "Tickets created per hour"),
    "heat_arrivals_note": (
        "Среднее по неделям периода, по времени портала ({tz})",
        "Mean over the period's weeks, in the portal's time zone ({tz})",
    ),
    "heat_agents": ("Сотрудников в работе", "Agents at work"),
    "heat_agents_note": (
        "Сколько сотрудников в среднем отвечали или меняли заявки в этот час",
        "How many agents on average replied to or changed tickets in that hour",
    ),
    "forecast_title": ("Заявок в неделю: факт и прогноз", "Tickets per week: actual and forecast"),
    "forecast_chart_note": (
        "Линия — прогноз, полоса — интервал 80 %; метод выбран по ошибке на истории",
        "Line: forecast; band: 80 % interval; the method was chosen by its backtest error",
    ),
    "actual": ("Факт", "Actual"),
    "forecast": ("Прогноз", "Forecast"),
    "interval": ("Интервал 80 %", "80 % interval"),
    "week": ("Неделя", "Week"),
    "tickets": ("Заявок", "Tickets"),
    "low": ("От", "Low"),
    "high": ("До", "High"),
    "staffing_chat": ("Чаты: нужно / работают", "Chats: needed / at work"),
    "staffing_chat_note": (
        "Erlang C: ответить {share} % чатов за {target} мин. при времени обработки {aht} мин.;"
        " красным — где не хватает",
        "Erlang C: answer {share} % of chats within {target} min at a handle time of {aht} min;"
        " red where agents are short",
    ),
    "staffing_tickets": ("Заявки по дням недели", "Tickets per weekday"),
    "staffing_tickets_note_aht": (
        "Нужно = заявок за день × {aht} мин. учтённого времени / рабочий день × {occ} %",
        "Needed = tickets a day × {aht} min tracked time / working day × {occ} %",
    ),
    "staffing_tickets_note_norm": (
        "Время не учитывается — по норме: не больше {hi} заявок на сотрудника в день;"
        " заявки выходных — в первый рабочий день",
        "No tracked time, so by the norm: at most {hi} tickets per agent a day;"
        " weekend tickets count on the next working day",
    ),
    "off_hours_note": (
        "Серым — вне рабочих часов (чаты ждут утра)",
        "Grey: outside working hours (chats wait for the morning)",
    ),
    "weekday": ("День недели", "Weekday"),
    "per_day": ("Заявок в день", "Tickets a day"),
    "needed": ("Нужно", "Needed"),
    "active": ("Работают", "At work"),
    "gap": ("Не хватает", "Short"),
    "gaps": ("Где не хватает сотрудников", "Where agents are short"),
    "no_gaps": ("Сотрудников хватает во все часы и дни.", "There are enough agents in every hour and day."),
    "no_chats": ("В выборке нет чатов открытых линий.", "The selection holds no open-line chats."),
    "no_data": ("Нет данных", "No data"),
    "apply": ("Применить", "Apply"),
    "m_naive": ("как прошлая неделя", "same as last week"),
    "m_drift": ("тренд от первой к последней неделе", "drift (the average change)"),
    "m_ses": ("экспоненциальное сглаживание", "exponential smoothing"),
    "m_holt_damped": ("Хольт с затухающим трендом", "Holt, damped trend"),
    "m_seasonal_naive": ("как неделю назад", "same weekday last week"),
    "m_holt_winters": ("Хольт-Винтерс", "Holt-Winters"),
    "m_holt_winters_mul": ("Хольт-Винтерс, мультипликативный", "Holt-Winters, multiplicative"),
    # errors
    "err_agents": (
        "Планирование штата доступно руководителям и администраторам",
        "Capacity planning is for heads and admins",
    ),
    "err_bad_period": ("Неверный период: {detail}", "Bad period: {detail}"),
    "err_bad_weeks_ahead": ("Прогноз строится на 1–8 недель вперёд", "weeks_ahead must be a whole number from 1 to 8"),
    "err_bad_source": ("Неизвестный источник: выберите из списка", "Unknown source: pick one from the list"),
    "err_bad_department": ("Неизвестный отдел", "Unknown department"),
    "err_forbidden_department": ("Этот отдел вне ваших отделов", "That department is outside the ones you head"),
    "err_no_scope": ("Вы не руководите ни одним отделом", "You head no department"),
    "err_bad_config": ("Ошибка в настройках планирования: {detail}", "Capacity settings are invalid: {detail}"),
    "err_unknown_param": ("Неизвестный параметр: {detail}", "Unknown parameter: {detail}"),
}


def ct(key: str, lang: str, **kw) -> str:
    pair = TEXT.get(key)
    if not pair:
        return key
    s = pair[0 if lang == "ru" else 1]
    return s.format(**kw) if kw else s
