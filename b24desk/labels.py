"""The one table of KPI names, units, groups and one-line definitions, in Russian and English.

Pages, exports (b24desk/kpi/formats.py) and pushes read their KPI wording from here, so a KPI is
called the same everywhere. Names in Russian are kpi.md section 3's "UI (ru)" column; a ``short``
name drops "Среднее" where the page or export says next to the number that it is the average (and
shows median and p90 beneath). Definitions are kpi.md's, in plain words. Data only: no Flask.
"""

from __future__ import annotations

from dataclasses import dataclass

LANGS = ("ru", "en")

# Units: how a value is shown and exported.
COUNT, DURATION, SHARE, NUMBER, SCORE, LIST = "count", "duration", "share", "number", "score", "list"

# Groups of the dashboard, in reading order.
GROUPS = ("volume", "speed", "quality", "sla", "load")
GROUP_NAMES = {
    "volume": ("Объём", "Volume"),
    "speed": ("Скорость", "Speed"),
    "quality": ("Качество", "Quality"),
    "sla": ("Сроки и просрочки", "SLA and overdue"),
    "load": ("Нагрузка", "Load"),
}


@dataclass(frozen=True)
class Kpi:
    key: str
    unit: str
    group: str
    name: tuple[str, str]  # (ru, en)
    definition: tuple[str, str]  # one line each
    short: tuple[str, str] | None = None

    def label(self, lang: str | None, short: bool = False) -> str:
        pair = self.short if (short and self.short) else self.name
        return pair[lang_index(lang)]


def _k(key, unit, group, ru, en, def_ru, def_en, short=None) -> Kpi:
    return Kpi(key, unit, group, (ru, en), (def_ru, def_en), short)


_ROWS = (
    _k(
        "tickets_total",
        COUNT,
        "volume",
        "Общее количество заявок",
        "Tickets created",
        "Сколько заявок создано за период.",
        "Tickets created in the period.",
    ),
    _k(
        "tickets_per_day",
        NUMBER,
        "volume",
        "Обращений в день",
        "Tickets per day",
        "Созданные за период заявки, делённые на число календарных дней периода.",
        "Tickets created in the period divided by its calendar days.",
    ),
    _k(
        "first_response_time",
        DURATION,
        "speed",
        "Среднее время первого ответа",
        "First response time",
        "От создания заявки до первого ответа клиенту, по заявкам периода, получившим ответ.",
        "From a ticket's creation to the first reply to the customer, over the period's answered tickets.",
        ("Время первого ответа", "First response time"),
    ),
    _k(
        "first_response_time_business",
        DURATION,
        "speed",
        "Время первого ответа (рабочее)",
        "First response time (business hours)",
        "То же время первого ответа, но только в рабочие часы по календарю портала.",
        "The same first response time, counted in working hours of the portal's calendar only.",
    ),
    _k(
        "first_response_sla_share",
        SHARE,
        "sla",
        "Первый ответ в срок (SLA)",
        "First response within SLA",
        "Доля заявок периода, на которые ответили в срок SLA для их приоритета (в рабочем времени).",
        "Share of the period's tickets answered within their priority's SLA (in business time).",
    ),
    _k(
        "unanswered_share",
        SHARE,
        "speed",
        "Доля пропущенных заявок",
        "Unanswered share",
        "Доля созданных заявок без ответа, не закрытых к концу периода.",
        "Share of created tickets with no reply that are still open at the period's end.",
    ),
    _k(
        "resolution_time",
        DURATION,
        "speed",
        "Среднее время решения",
        "Resolution time",
        "От создания до решения, по заявкам, решённым в периоде.",
        "From creation to resolution, over tickets resolved in the period.",
        ("Время решения", "Resolution time"),
    ),
    _k(
        "resolution_time_business",
        DURATION,
        "speed",
        "Время решения (рабочее)",
        "Resolution time (business hours)",
        "То же время решения, но только в рабочие часы по календарю портала.",
        "The same resolution time, counted in working hours of the portal's calendar only.",
    ),
    _k(
        "resolved_count",
        COUNT,
        "volume",
        "Решено заявок",
        "Tickets resolved",
        "Сколько заявок решено за период (последнее решение в периоде, без переоткрытия).",
        "Tickets resolved in the period (last resolution in it, not reopened since).",
    ),
    _k(
        "resolved_share",
        SHARE,
        "volume",
        "Доля решённых заявок",
        "Resolved share",
        "Доля созданных в периоде заявок, решённых к его концу.",
        "Share of the period's created tickets that are resolved by its end.",
    ),
    _k(
        "backlog",
        COUNT,
        "volume",
        "Открытых на конец периода",
        "Open at period end",
        "Заявки, открытые на конец периода.",
        "Tickets still open at the end of the period.",
    ),
    _k(
        "overdue_count",
        COUNT,
        "sla",
        "Количество просроченных заявок",
        "Overdue tickets",
        "Заявки периода, закрытые после крайнего срока или открытые с истёкшим сроком.",
        "The period's tickets closed after their deadline or still open past it.",
    ),
    _k(
        "overdue_share",
        SHARE,
        "sla",
        "Доля просроченных",
        "Overdue share",
        "Просроченные заявки среди заявок периода, у которых есть срок.",
        "Overdue tickets among the period's tickets that have a deadline.",
    ),
    _k(
        "transferred_share",
        SHARE,
        "quality",
        "Доля переведённых обращений",
        "Transferred share",
        "Доля созданных заявок, переданных другому сотруднику хотя бы раз.",
        "Share of created tickets passed to another agent at least once.",
    ),
    _k(
        "transfers_per_ticket",
        NUMBER,
        "quality",
        "Переводов на заявку",
        "Transfers per ticket",
        "Среднее число переводов на одну созданную заявку.",
        "Average number of transfers per created ticket.",
    ),
    _k(
        "resolved_by_priority",
        LIST,
        "volume",
        "Решено по приоритетам",
        "Resolved by priority",
        "Решённые за период заявки по приоритетам.",
        "Tickets resolved in the period, by priority.",
    ),
    _k(
        "fcr_share",
        SHARE,
        "quality",
        "Доля закрытых с первого обращения (FCR)",
        "First contact resolution (FCR)",
        "Доля решённых заявок не более чем с одним ответом, без переводов и переоткрытий.",
        "Share of resolved tickets with at most one reply, no transfer and no reopening.",
    ),
    _k(
        "reopen_share",
        SHARE,
        "quality",
        "Доля переоткрытых",
        "Reopened share",
        "Доля решённых заявок, которые хоть раз переоткрывали.",
        "Share of resolved tickets that were ever reopened.",
    ),
    _k(
        "correctly_qualified_share",
        SHARE,
        "quality",
        "Доля верно квалифицированных",
        "Correctly qualified share",
        "Доля созданных заявок, тип которых не меняли после создания.",
        "Share of created tickets whose type was never changed after creation.",
    ),
    _k(
        "repeat_contact_share",
        SHARE,
        "quality",
        "Доля повторных обращений",
        "Repeat contact share",
        "Доля клиентов, обратившихся снова в течение 30 дней после прошлой заявки.",
        "Share of customers who came back within 30 days of their previous ticket.",
    ),
    _k(
        "contacts_per_customer",
        NUMBER,
        "load",
        "Обращений на клиента",
        "Contacts per customer",
        "Созданные заявки, делённые на число разных клиентов.",
        "Created tickets divided by distinct customers.",
    ),
    _k(
        "tickets_per_agent_day",
        NUMBER,
        "load",
        "Нагрузка на сотрудника",
        "Tickets per agent per day",
        "Созданные заявки на одного сотрудника в рабочий день.",
        "Created tickets per agent per working day.",
    ),
    _k(
        "interactions_per_ticket",
        NUMBER,
        "load",
        "Взаимодействий на заявку",
        "Interactions per ticket",
        "Среднее число ответов, сообщений клиента и комментариев на решённую заявку.",
        "Average replies, customer messages and comments per resolved ticket.",
    ),
    _k(
        "handle_time",
        DURATION,
        "load",
        "Среднее время обработки",
        "Average handle time",
        "Учтённое рабочее время на решённую заявку (учёт времени задач, звонки).",
        "Tracked working time per resolved ticket (task time tracking, calls).",
        ("Время обработки", "Handle time"),
    ),
    _k(
        "rated_share",
        SHARE,
        "quality",
        "Доля заявок с выставленной оценкой",
        "Rated share",
        "Доля решённых заявок, которым клиент поставил оценку.",
        "Share of resolved tickets the customer rated.",
    ),
    _k(
        "csat",
        SHARE,
        "quality",
        "Удовлетворённость (CSAT)",
        "Satisfaction (CSAT)",
        "Доля оценок 4–5 среди оценённых решённых заявок.",
        "Share of 4–5 ratings among rated resolved tickets.",
    ),
    _k(
        "nps",
        SCORE,
        "quality",
        "Индекс лояльности (NPS)",
        "Net Promoter Score (NPS)",
        "Доля оценок 9–10 минус доля 0–6, от −100 до 100.",
        "Share of 9–10 scores minus share of 0–6, from −100 to 100.",
    ),
    _k(
        "ces",
        SHARE,
        "quality",
        "Индекс усилий клиента (CES)",
        "Customer Effort Score (CES)",
        "Доля высшей оценки 5 среди ответивших об усилиях клиента.",
        "Share of the top score 5 among customers who rated their effort.",
    ),
    _k(
        "callback_share",
        SHARE,
        "quality",
        "Доля заявок с обратным звонком",
        "Callback share",
        "Доля решённых заявок, после решения которых клиенту звонили.",
        "Share of resolved tickets followed by an outgoing call to the customer.",
    ),
    _k(
        "one_touch_share",
        SHARE,
        "quality",
        "Решено одним ответом",
        "One-touch resolution",
        "Доля решённых заявок не более чем с одним ответом.",
        "Share of resolved tickets with at most one reply.",
    ),
    _k(
        "task_efficiency",
        SCORE,
        "sla",
        "Эффективность (задачи)",
        "Task efficiency",
        "Формула Битрикс24: 100 − 100 × просроченные / активные задачи периода.",
        "Bitrix24's formula: 100 − 100 × overdue / active tasks of the period.",
    ),
    _k(
        "requester_wait_time",
        DURATION,
        "speed",
        "Ожидание клиента",
        "Requester wait time",
        "Время, когда клиент ждал работы над заявкой, на решённую заявку.",
        "Time the customer waited for work on the ticket, per resolved ticket.",
    ),
    _k(
        "requester_wait_time_business",
        DURATION,
        "speed",
        "Ожидание клиента (рабочее)",
        "Requester wait time (business hours)",
        "То же ожидание клиента, в рабочие часы.",
        "The same requester wait, in working hours.",
    ),
    _k(
        "agent_wait_time",
        DURATION,
        "speed",
        "Ожидание ответа клиента",
        "Agent wait time",
        "Время, когда сотрудник ждал ответа клиента, на решённую заявку.",
        "Time the agent waited for the customer's answer, per resolved ticket.",
    ),
    _k(
        "agent_wait_time_business",
        DURATION,
        "speed",
        "Ожидание ответа клиента (рабочее)",
        "Agent wait time (business hours)",
        "То же ожидание ответа клиента, в рабочие часы.",
        "The same agent wait, in working hours.",
    ),
    _k(
        "top_agents",
        LIST,
        "load",
        "Лучшие специалисты",
        "Top specialists",
        "Сотрудники по числу решённых заявок.",
        "Agents ranked by tickets resolved.",
    ),
    _k(
        "ccei",
        SCORE,
        "quality",
        "Индекс эффективности (CCEI)",
        "Customer Care Effectiveness Index (CCEI)",
        "Взвешенная сумма качества, эффективности, бизнес-результата и команды. Эффективность — цели,"
        " делённые на фактическое время: выше 100, когда команда быстрее целей.",
        "Weighted sum of quality, efficiency, business and team. Efficiency is targets over actual"
        " times: above 100 when the team beats its targets.",
    ),
)

KPIS: dict[str, Kpi] = {k.key: k for k in _ROWS}

# The few that matter most: shown large at the top of each group.
HEADLINE = (
    "tickets_total",
    "resolved_count",
    "backlog",
    "first_response_time",
    "resolution_time",
    "first_response_sla_share",
    "overdue_share",
    "csat",
    "fcr_share",
)

# Parts of a duration value.
STAT_NAMES = {
    "avg": ("Среднее", "Average"),
    "median": ("Медиана", "Median"),
    "p90": ("90-й процентиль", "90th percentile"),
    "count": ("Заявок", "Tickets"),
}

# Column headers of the exports (b24desk/kpi/formats.py COLUMNS).
COLUMN_NAMES = {
    "group": ("Группа (код)", "Group (id)"),
    "group_label": ("Группа", "Group"),
    "kpi": ("Код показателя", "KPI id"),
    "label": ("Показатель", "KPI"),
    "value": ("Значение", "Value"),
    "median": ("Медиана", "Median"),
    "p90": ("90-й процентиль", "90th percentile"),
    "count": ("Заявок в расчёте", "Tickets counted"),
    "previous": ("Прошлый период", "Previous period"),
    "delta": ("Изменение", "Change"),
    "target": ("Цель", "Target"),
    "status": ("Статус", "Status"),
    "n": ("n", "n"),
    "unit": ("Единица", "Unit"),
}

UNIT_NAMES = {
    COUNT: ("шт.", "count"),
    DURATION: ("ч:мм:сс", "h:mm:ss"),
    SHARE: ("%", "%"),
    NUMBER: ("число", "number"),
    SCORE: ("баллы", "points"),
    LIST: ("", ""),
}

STATUS_NAMES = {
    "green": ("в норме", "on target"),
    "yellow": ("близко к цели", "near target"),
    "red": ("вне нормы", "off target"),
    "grey": ("без оценки", "not rated"),
}

# Dimensions a report is grouped or filtered by.
DIMENSION_NAMES = {
    "agent": ("Сотрудник", "Agent"),
    "department": ("Отдел", "Department"),
    "priority": ("Приоритет", "Priority"),
    "type": ("Тип", "Type"),
    "source": ("Источник", "Source"),
    "channel": ("Канал", "Channel"),
    "line": ("Линия", "Line"),
}

# The label of an empty group (a ticket with no department, agent, channel...).
EMPTY_GROUP = {
    "department": ("Без отдела", "No department"),
    "agent": ("Не назначено", "Unassigned"),
    "channel": ("Без канала", "No channel"),
    "type": ("Без типа", "No type"),
    "source": ("Без источника", "No source"),
    "line": ("Без линии", "No line"),
    "priority": ("Без приоритета", "No priority"),
}

PRIORITY_NAMES = {
    "low": ("Низкий", "Low"),
    "normal": ("Обычный", "Normal"),
    "high": ("Высокий", "High"),
    "critical": ("Критический", "Critical"),
}


def lang_index(lang: str | None) -> int:
    return 0 if (lang or "").lower().startswith("ru") else 1


def pick(pair, lang: str | None) -> str:
    return pair[lang_index(lang)]


def kpi_label(key: str, lang: str | None, short: bool = False) -> str:
    """The KPI's name; an unknown key reads as words, never as snake_case."""
    k = KPIS.get(key)
    return k.label(lang, short) if k else key.replace("_", " ")


def kpi_definition(key: str, lang: str | None) -> str:
    k = KPIS.get(key)
    return pick(k.definition, lang) if k else ""


def kpi_unit(key: str) -> str:
    k = KPIS.get(key)
    return k.unit if k else NUMBER


def empty_group(dim: str, lang: str | None) -> str:
    return pick(EMPTY_GROUP.get(dim, ("Не указано", "Not set")), lang)


# Ticket sources by their meaning in the portal (a smart process is named by its own title, read
# from the portal at sync time; see reports/names.py).
SOURCE_NAMES = {
    "task": ("Задачи", "Tasks"),
    "crm:2": ("Сделки", "Deals"),
    "crm:1": ("Лиды", "Leads"),
    "openlines": ("Открытые линии", "Open lines"),
}

# Open-line channels: Bitrix24's connector ids and the names the portal shows for them.
CHANNEL_NAMES = {
    "livechat": ("Онлайн-чат", "Live chat"),
    "telegrambot": ("Telegram", "Telegram"),
    "whatsappbyedna": ("WhatsApp", "WhatsApp"),
    "whatsappbytwilio": ("WhatsApp", "WhatsApp"),
    "vkgroup": ("ВКонтакте", "VK"),
    "vkgrouporder": ("ВКонтакте (заказы)", "VK orders"),
    "avito": ("Авито", "Avito"),
    "ok": ("Одноклассники", "Odnoklassniki"),
    "viber": ("Viber", "Viber"),
    "facebook": ("Facebook", "Facebook"),
    "facebookcomments": ("Комментарии Facebook", "Facebook comments"),
    "fbinstagramdirect": ("Instagram Direct", "Instagram Direct"),
    "imessage": ("Apple Messages", "Apple Messages"),
    "network": ("Битрикс24.Network", "Bitrix24.Network"),
    "wechat": ("WeChat", "WeChat"),
    "yandex": ("Яндекс", "Yandex"),
    "olx": ("OLX", "OLX"),
    "notifications": ("Уведомления", "Notifications"),
    "botframework": ("Microsoft Bot Framework", "Microsoft Bot Framework"),
    "telegram": ("Telegram", "Telegram"),
    "email": ("Эл. почта", "Email"),
    "openlines": ("Открытая линия", "Open line"),
}

# Ticket timeline events in words (reports/ticket_card.py).
EVENT_NAMES = {
    "created": ("создана", "created"),
    "assigned": ("назначена", "assigned"),
    "status": ("статус", "status"),
    "reply": ("ответ клиенту", "reply to customer"),
    "customer_message": ("сообщение клиента", "customer message"),
    "comment": ("внутренний комментарий", "internal comment"),
    "reopened": ("переоткрыта", "reopened"),
    "resolved": ("решена", "resolved"),
    "rejected": ("отклонена", "rejected"),
    "field_changed": ("изменено поле", "field changed"),
    "call_out": ("исходящий звонок", "outgoing call"),
    "rated": ("оценена", "rated"),
    "escalated": ("эскалация", "escalated"),
    "worked": ("учтено время", "time tracked"),
}

# Task statuses (tasks.task.* REAL_STATUS / status), by number.
TASK_STATUS_NAMES = {
    "1": ("Новая", "New"),
    "2": ("Ждёт выполнения", "Pending"),
    "3": ("Выполняется", "In progress"),
    "4": ("Ждёт контроля", "Awaiting review"),
    "5": ("Завершена", "Completed"),
    "6": ("Отложена", "Deferred"),
    "7": ("Отклонена", "Declined"),
}

FIELD_NAMES = {
    "responsible": ("ответственный", "responsible"),
    "priority": ("приоритет", "priority"),
    "type": ("тип", "type"),
    "deadline": ("срок", "deadline"),
    "status": ("статус", "status"),
    "title": ("название", "title"),
    "stage": ("стадия", "stage"),
    "category": ("воронка", "pipeline"),
}


def channel_name(key, lang: str | None) -> str:
    if key in (None, ""):
        return empty_group("channel", lang)
    pair = CHANNEL_NAMES.get(str(key).lower())
    return pick(pair, lang) if pair else str(key).replace("_", " ").capitalize()
