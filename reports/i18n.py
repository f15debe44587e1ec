"""Russian and English messages for the embedded pages, chosen by the portal's ``LANG``.

A dict catalogue rather than Flask-Babel: two languages and about a hundred strings, no plural
forms beyond what the templates avoid, and no ``.po``/``.mo`` compile step to forget on deploy.
A test checks that both languages carry exactly the same keys. KPI labels (ru) are kpi.md's.
"""
from __future__ import annotations

from b24desk import labels as _labels

LANGS = ("ru", "en")

# KPI names come from the core's one table (b24desk/labels.py), shared with exports and pushes.
KPI_LABELS = {k: v.name for k, v in _labels.KPIS.items()}

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
    "refreshing": ("данные обновляются, откройте страницу снова через несколько секунд",
                   "figures are being refreshed; reload in a few seconds"),
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
    "per_channel": ("По каналам", "By channel"),
    "per_line": ("По линиям (открытые линии, группа «Тип»)", "By line (open lines, the “type” group)"),
    "line": ("Линия", "Line"),
    "settings_openlines": ("Открытые линии", "Open lines"),
    "ol_unknown": ("Открытые линии ещё не синхронизировались.", "Open lines have not been synced yet."),
    "ol_available": ("Статистика открытых линий доступна, диалоги синхронизируются.",
                     "Open Channels statistics are available; dialogs are synced."),
    "ol_TARIFF_RESTRICTION": ("Тариф Битрикс24 не включает отчёты открытых линий (TARIFF_RESTRICTION): "
                              "диалоги открытых линий не синхронизируются. Это не ошибка.",
                              "The Bitrix24 plan does not include Open Channels reports (TARIFF_RESTRICTION): "
                              "open-line dialogs are not synced. This is not a failure."),
    "ol_ACCESS_DENIED": ("У пользователя приложения нет доступа к отчётам открытых линий: выдайте его в правах "
                         "Контакт-центра.", "The app's user has no access to Open Channels reports; grant it "
                         "in the Contact Center permissions."),
    "ol_INSUFFICIENT_SCOPE": ("У приложения нет права «imopenlines»: добавьте его, чтобы загружать диалоги.",
                              "The app has no 'imopenlines' scope; add it to sync open-line dialogs."),
    "ol_checked": ("Проверено", "Checked"),
    "ol_crosscheck": ("Сверка со статистикой Битрикс24", "Cross-check with Bitrix24 statistics"),
    "ol_crosscheck_none": ("Сверка ещё не проводилась.", "No cross-check yet."),
    "ol_crosscheck_run": ("Сверить за период", "Cross-check the period"),
    "ol_differs": ("Наши показатели открытых линий расходятся со статистикой Битрикс24",
                   "Our open-line figures differ from Bitrix24's statistics"),
    "ol_agrees": ("Показатели совпадают со статистикой Битрикс24.", "The figures agree with Bitrix24's statistics."),
    "ol_figure": ("Показатель", "Figure"),
    "ol_ours": ("b24desk", "b24desk"),
    "ol_portal": ("Битрикс24", "Bitrix24"),
    "ol_sessions": ("Диалогов", "Sessions"),
    "ol_frt_avg": ("Среднее время первого ответа", "Average first response"),
    "ol_positive_rate": ("Доля положительных оценок", "Positive rate"),
    "ol_see_settings": ("Подробности в настройках", "Details in settings"),
    "settings_push": ("Рассылка отчётов и оповещения", "Report pushes and alerts"),
    "push_enabled": ("Рассылка включена", "Pushes on"),
    "push_daily": ("Ежедневный", "Daily"),
    "push_weekly": ("Еженедельный", "Weekly"),
    "push_monthly": ("Ежемесячный", "Monthly"),
    "push_time": ("Время (ЧЧ:ММ)", "Time (HH:MM)"),
    "push_weekday": ("День недели (1 = пн)", "Weekday (1 = Mon)"),
    "push_day": ("Число месяца", "Day of month"),
    "push_channels": ("Каналы", "Channels"),
    "push_ch_notify": ("уведомление", "notification"),
    "push_ch_chat": ("чат", "chat"),
    "push_ch_feed": ("живая лента", "feed"),
    "push_ch_disk": ("Диск (XLSX)", "Drive (XLSX)"),
    "push_recipients": ("Получатели сводки по порталу (ID пользователей; пусто — установивший администратор)",
                        "Portal digest recipients (user ids; empty = the installing admin)"),
    "push_chat": ("Чат (chatNNN или ID пользователя; пусто — чат приложения)",
                  "Chat (chatNNN or a user id; empty = the app's own chat)"),
    "push_alerts": ("Оповещения о выходе за цели", "Alerts on missed targets"),
    "push_alert_kpis": ("Показатели для оповещений (ключи через запятую; пусто — все с целями)",
                        "KPIs to alert on (keys, comma-separated; empty = every KPI with a target)"),
    "on": ("вкл.", "on"),
}


def lang_index(lang: str | None) -> int:
    return 0 if (lang or "").lower().startswith("ru") else 1


def t(key: str, lang: str | None) -> str:
    """The message ``key`` in ``lang``; an unknown key shows itself (visible, never a crash)."""
    if key.startswith("kpi."):
        return kpi_label(key[4:], lang)
    pair = MESSAGES.get(key) or KPI_LABELS.get(key)
    return pair[lang_index(lang)] if pair else key


def kpi_label(key: str, lang: str | None, short: bool = False) -> str:
    return _labels.kpi_label(key, lang, short)


def catalogue(lang: str | None) -> dict:
    """Every message in one language (handed to the page's script as JSON)."""
    i = lang_index(lang)
    out = {k: v[i] for k, v in MESSAGES.items()}
    out.update({f"kpi.{k}": v[i] for k, v in KPI_LABELS.items()})
    return out
