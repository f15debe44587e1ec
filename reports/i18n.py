"""Russian and English messages for the embedded pages, chosen by the portal's ``LANG``.

A dict catalogue rather than Flask-Babel: two languages and about a hundred strings, no plural
forms beyond what the templates avoid, and no ``.po``/``.mo`` compile step to forget on deploy.
A test checks that both languages carry exactly the same keys. KPI labels (ru) are kpi.md's.
"""
from __future__ import annotations

LANGS = ("ru", "en")

KPI_LABELS = {
    "tickets_total": ("Общее количество заявок", "Tickets created"),
    "tickets_per_day": ("Обращений в день", "Tickets per day"),
    "first_response_time": ("Среднее время первого ответа", "First response time"),
    "first_response_time_business": ("Первый ответ (рабочее время)", "First response (business hours)"),
    "unanswered_share": ("Доля пропущенных заявок", "Unanswered share"),
    "resolution_time": ("Среднее время решения", "Resolution time"),
    "resolution_time_business": ("Время решения (рабочее время)", "Resolution time (business hours)"),
    "resolved_count": ("Решено заявок", "Tickets resolved"),
    "resolved_share": ("Доля решённых заявок", "Resolved share"),
    "backlog": ("Открытых на конец периода", "Open at period end"),
    "overdue_count": ("Количество просроченных заявок", "Overdue tickets"),
    "overdue_share": ("Доля просроченных", "Overdue share"),
    "transferred_share": ("Доля переведённых обращений", "Transferred share"),
    "transfers_per_ticket": ("Переводов на заявку", "Transfers per ticket"),
    "resolved_by_priority": ("Решено по приоритетам", "Resolved by priority"),
    "fcr_share": ("Доля закрытых с первого обращения (FCR)", "First contact resolution (FCR)"),
    "reopen_share": ("Доля переоткрытых", "Reopened share"),
    "correctly_qualified_share": ("Доля верно квалифицированных", "Correctly qualified share"),
    "repeat_contact_share": ("Доля повторных обращений", "Repeat contact share"),
    "contacts_per_customer": ("Обращений на клиента", "Contacts per customer"),
    "tickets_per_agent_day": ("Нагрузка на сотрудника", "Tickets per agent per day"),
    "interactions_per_ticket": ("Взаимодействий на заявку", "Interactions per ticket"),
    "handle_time": ("Среднее время обработки", "Average handle time"),
    "rated_share": ("Доля заявок с выставленной оценкой", "Rated share"),
    "csat": ("Удовлетворённость (CSAT)", "Satisfaction (CSAT)"),
    "nps": ("Индекс лояльности (NPS)", "Net Promoter Score (NPS)"),
    "ces": ("Индекс усилий клиента (CES)", "Customer Effort Score (CES)"),
    "callback_share": ("Доля заявок с обратным звонком", "Callback share"),
    "one_touch_share": ("Решено одним ответом", "One-touch resolution"),
    "task_efficiency": ("Эффективность (задачи)", "Task efficiency"),
    "requester_wait_time": ("Ожидание клиента", "Requester wait time"),
    "agent_wait_time": ("Ожидание ответа клиента", "Agent wait time"),
    "top_agents": ("Лучшие специалисты", "Top specialists"),
    "ccei": ("Индекс эффективности (CCEI)", "Customer Care Effectiveness Index (CCEI)"),
}

MESSAGES = {
    "app_title": ("Сервис-деск: показатели", "Service desk KPIs"),
    "dashboard": ("Сводка", "Dashboard"),
    "settings": ("Настройки", "Settings"),
    "period": ("Период", "Period"),
    "from": ("С", "From"),
    "to": ("По", "To"),
    "department": ("Отдел", "Department"),
    "agent": ("Сотрудник", "Agent"),
    "priority": ("Приоритет", "Priority"),
    "type": ("Тип", "Type"),
    "source": ("Источник", "Source"),
    "channel": ("Канал", "Channel"),
    "all": ("Все", "All"),
    "apply": ("Применить", "Apply"),
    "reset": ("Сбросить", "Reset"),
    "export_csv": ("Экспорт CSV", "Export CSV"),
    "export_xlsx": ("Экспорт XLSX", "Export XLSX"),
    "target": ("Цель", "Target"),
    "previous": ("Прошлый период", "Previous period"),
    "delta": ("Изменение", "Change"),
    "value": ("Значение", "Value"),
    "status": ("Статус", "Status"),
    "count_n": ("n", "n"),
    "no_data": ("Нет данных", "No data"),
    "you": ("Вы", "You"),
    "team": ("Команда", "Team"),
    "your_numbers": ("Ваши показатели", "Your numbers"),
    "team_totals": ("Итоги команды", "Team totals"),
    "trend_weekly": ("Динамика по неделям", "Weekly trend"),
    "created": ("Создано", "Created"),
    "resolved": ("Решено", "Resolved"),
    "frt_distribution": ("Распределение времени первого ответа", "First response time distribution"),
    "resolution_distribution": ("Распределение времени решения", "Resolution time distribution"),
    "median": ("Медиана", "Median"),
    "p90": ("90-й процентиль", "90th percentile"),
    "tickets": ("Заявки", "Tickets"),
    "per_agent": ("По сотрудникам", "By agent"),
    "per_department": ("По отделам", "By department"),
    "ccei_components": ("Составляющие CCEI", "CCEI components"),
    "quality": ("Качество", "Quality"),
    "efficiency": ("Эффективность", "Efficiency"),
    "business": ("Бизнес", "Business"),
    "left_out": ("Не учтено (нет данных)", "Left out (no input)"),
    "drilldown": ("Заявки за показателем", "Tickets behind the number"),
    "close": ("Закрыть", "Close"),
    "open_in_bitrix": ("Открыть в Битрикс24", "Open in Bitrix24"),
    "title": ("Название", "Title"),
    "responsible": ("Ответственный", "Responsible"),
    "created_at": ("Создана", "Created"),
    "resolved_at": ("Решена", "Resolved"),
    "state": ("Состояние", "State"),
    "state_open": ("Открыта", "Open"),
    "state_resolved": ("Решена", "Resolved"),
    "state_rejected": ("Отклонена", "Rejected"),
    "prio_low": ("Низкий", "Low"),
    "prio_normal": ("Обычный", "Normal"),
    "prio_high": ("Высокий", "High"),
    "prio_critical": ("Критический", "Critical"),
    "status_green": ("в норме", "on target"),
    "status_yellow": ("близко к цели", "near target"),
    "status_red": ("вне нормы", "off target"),
    "status_grey": ("мало данных", "not enough data"),
    "ticket_card": ("Карточка заявки", "Ticket card"),
    "timeline": ("Хронология", "Timeline"),
    "first_response": ("Первый ответ", "First response"),
    "sla_clock": ("SLA", "SLA"),
    "deadline": ("Срок", "Deadline"),
    "sla_left": ("осталось", "left"),
    "sla_overdue": ("просрочено на", "overdue by"),
    "sla_met": ("выполнено в срок", "met"),
    "sla_missed": ("срок нарушен", "missed"),
    "sla_none": ("нет срока", "no deadline"),
    "transfers": ("Переводы", "Transfers"),
    "rating": ("Оценка", "Rating"),
    "no_reply_yet": ("ответа ещё не было", "no reply yet"),
    "not_synced": ("Эта заявка ещё не загружена: она появится после синхронизации.",
                   "This ticket has not been synced yet: it will appear after the next sync."),
    "ev_created": ("создана", "created"),
    "ev_assigned": ("назначена", "assigned"),
    "ev_status": ("статус", "status"),
    "ev_reply": ("ответ клиенту", "reply to customer"),
    "ev_customer_message": ("сообщение клиента", "customer message"),
    "ev_comment": ("внутренний комментарий", "internal comment"),
    "ev_reopened": ("переоткрыта", "reopened"),
    "ev_resolved": ("решена", "resolved"),
    "ev_rejected": ("отклонена", "rejected"),
    "ev_field_changed": ("изменено поле", "field changed"),
    "ev_call_out": ("исходящий звонок", "outgoing call"),
    "ev_rated": ("оценена", "rated"),
    "ev_escalated": ("эскалация", "escalated"),
    "settings_sources": ("Источники и поля", "Sources and field mapping"),
    "settings_targets": ("Цели", "Targets"),
    "settings_calendar": ("Рабочий календарь", "Work calendar"),
    "settings_ccei": ("Данные для CCEI", "CCEI inputs"),
    "save": ("Сохранить", "Save"),
    "saved": ("Сохранено", "Saved"),
    "settings_help_json": ("Значение в формате JSON; пустое поле — значение из файла конфигурации.",
                           "A JSON value; leave empty to use the configuration file's value."),
    "admins_only": ("Настройки доступны только администратору портала.",
                    "Only the portal administrator can change settings."),
    "error": ("Ошибка", "Error"),
    "err_no_token": ("Откройте приложение из Битрикс24.", "Open the app from Bitrix24."),
    "err_expired": ("Сессия истекла: откройте приложение в Битрикс24 заново.",
                    "The session has expired: reopen the app in Bitrix24."),
    "err_forbidden": ("Нет доступа к этим данным.", "You have no access to these data."),
    "loading": ("Загрузка…", "Loading…"),
    "seconds_short": ("с", "s"),
    "minutes_short": ("мин", "min"),
    "hours_short": ("ч", "h"),
    "days_short": ("д", "d"),
    "week_of": ("Неделя с", "Week of"),
    "role_admin": ("администратор", "administrator"),
    "role_head": ("руководитель", "head of department"),
    "role_agent": ("сотрудник", "agent"),
    "more": ("ещё", "more"),
}


def lang_index(lang: str | None) -> int:
    return 0 if (lang or "").lower().startswith("ru") else 1


def t(key: str, lang: str | None) -> str:
    """The message ``key`` in ``lang``; an unknown key shows itself (visible, never a crash)."""
    if key.startswith("kpi."):
        return kpi_label(key[4:], lang)
    pair = MESSAGES.get(key) or KPI_LABELS.get(key)
    return pair[lang_index(lang)] if pair else key


def kpi_label(key: str, lang: str | None) -> str:
    pair = KPI_LABELS.get(key)
    return pair[lang_index(lang)] if pair else key.replace("_", " ")


def catalogue(lang: str | None) -> dict:
    """Every message in one language (handed to the page's script as JSON)."""
    i = lang_index(lang)
    out = {k: v[i] for k, v in MESSAGES.items()}
    out.update({f"kpi.{k}": v[i] for k, v in KPI_LABELS.items()})
    return out
