"""A seeded, realistic service desk: who works there, who asks, and how each ticket lived.

Every ticket's life is planned first (creation, first reply, transfers, conversation, waiting,
resolution, reopen, rating, tracked time) as timed actions; all actions of all tickets are then
applied in time order through the portal's recorders, so ids grow with time like on a real portal
and every row the API serves (task history, comments, stage history, activities) agrees. Actions
after ``end`` have not happened yet: those tickets are still open.

Shape (``random.Random(seed)``): ~50 % tasks (most in support project 7), ~32 % deals of the support
funnel (category 3, escalation stage ``C3:UC_SECOND_LINE``) plus a few sales deals in category 0,
~18 % items of smart process 1038 (categories 5 incidents / 6 requests). Working hours are busier,
weekends quiet; agents differ in speed and load, so some KPIs land in the red.
"""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta

from .state import AWAITING_CONTROL, COMPANY, COMPLETED, CONTACT, DEAL, DEFERRED, IN_PROGRESS, PENDING, Portal

SUPPORT_GROUP = 7
DEAL_CATEGORY = 3
SPA = 1038
SPA_TYPE_ID = 3  # the smart process's own id -> UF prefix UF_CRM_3_
SPA_CATEGORIES = (5, 6)
PRIORITY_ENUM = {"low": 45, "normal": 46, "high": 47, "critical": 48}

_FIRST = [
    "Анна",
    "Борис",
    "Виктор",
    "Галина",
    "Дмитрий",
    "Елена",
    "Жанна",
    "Игорь",
    "Ксения",
    "Леонид",
    "Мария",
    "Никита",
    "Ольга",
    "Павел",
    "Роман",
    "Светлана",
    "Тимур",
    "Ульяна",
    "Фёдор",
    "Юлия",
    "Алексей",
    "Вера",
    "Григорий",
    "Дарья",
    "Егор",
    "Зоя",
    "Илья",
    "Кирилл",
    "Лидия",
    "Максим",
]
_LAST = [
    "Иванов",
    "Смирнов",
    "Кузнецов",
    "Попов",
    "Васильев",
    "Петров",
    "Соколов",
    "Михайлов",
    "Новиков",
    "Фёдоров",
    "Морозов",
    "Волков",
    "Алексеев",
    "Лебедев",
    "Семёнов",
    "Егоров",
    "Павлов",
    "Козлов",
    "Степанов",
    "Николаев",
    "Орлов",
    "Андреев",
    "Макаров",
    "Никитин",
    "Захаров",
]
_FEMALE = frozenset(
    {
        "Анна",
        "Галина",
        "Елена",
        "Жанна",
        "Ксения",
        "Мария",
        "Ольга",
        "Светлана",
        "Ульяна",
        "Юлия",
        "Вера",
        "Дарья",
        "Зоя",
        "Лидия",
    }
)


def gendered(first: str, last: str) -> str:
    """The surname in the gender of the first name (Галина Петрова, not Галина Петров)."""
    if first in _FEMALE:
        if last.endswith(("ов", "ев", "ёв", "ин", "ын")):
            return last + "а"
        if last.endswith("ий"):
            return last[:-2] + "ая"
    return last


_TOPICS = [
    "Не работает вход в личный кабинет",
    "Ошибка при оплате счёта",
    "Не приходит SMS-код",
    "Сломался принтер в офисе",
    "Нужен доступ к отчётам",
    "Медленно работает сайт",
    "Не синхронизируется почта",
    "Вопрос по договору",
    "Возврат оплаты",
    "Не загружаются файлы",
    "Настройка VPN",
    "Ошибка 500 в разделе заказов",
    "Изменить реквизиты",
    "Замена оборудования",
    "Сбой интеграции с 1С",
    "Не печатаются документы",
    "Просьба выставить закрывающие документы",
    "Перестала работать IP-телефония",
    "Консультация по тарифу",
    "Восстановить удалённые данные",
]


class Desk:
    """The people of the generated desk (for tests: agents, requesters, departments)."""

    def __init__(self):
        self.agents: list[int] = []
        self.levels: dict[int, int] = {}  # agent -> department id
        self.speed: dict[int, float] = {}  # agent -> reply-delay factor (>1 = slower)
        self.requesters: list[int] = []  # task authors (extranet clients)
        self.contacts: list[int] = []
        self.companies: list[int] = []
        self.heads: dict[int, int] = {}


class _Clock:
    """Working-time arithmetic in the portal's zone (Mon-Fri 9:00-18:00)."""

    START, END = 9, 18

    def __init__(self, tz):
        self.tz = tz

    def local(self, ts: int) -> datetime:
        return datetime.fromtimestamp(ts, self.tz)

    def at_work(self, ts: int) -> bool:
        d = self.local(ts)
        return d.weekday() < 5 and self.START <= d.hour < self.END

    def next_work(self, ts: int) -> int:
        """ts itself inside working hours, else the start of the next working period."""
        d = self.local(ts)
        for _ in range(10):
            if d.weekday() < 5 and d.hour < self.END:
                if d.hour >= self.START:
                    return int(d.timestamp())
                return int(d.replace(hour=self.START, minute=0, second=0, microsecond=0).timestamp())
            d = (d + timedelta(days=1)).replace(hour=self.START, minute=0, second=0, microsecond=0)
        return int(d.timestamp())

    def add_work(self, ts: int, seconds: float) -> int:
        """Add working seconds (agents only answer inside working hours)."""
        t = self.next_work(ts)
        left = float(seconds)
        for _ in range(400):
            d = self.local(t)
            end_of_day = int(d.replace(hour=self.END, minute=0, second=0, microsecond=0).timestamp())
            room = end_of_day - t
            if left <= room:
                return int(t + left)
            left -= room
            t = self.next_work(end_of_day + 1)
        return int(t + left)


def _lognormal(rng: random.Random, median: float, sigma: float = 0.9) -> float:
    return median * math.exp(rng.gauss(0.0, sigma))


def _weight(clock: _Clock, ts: int) -> float:
    """Seasonality: weekdays busier than weekends, working hours busier than nights."""
    d = clock.local(ts)
    day = (1.0, 1.0, 0.95, 0.95, 0.85, 0.3, 0.2)[d.weekday()]
    h = d.hour
    hour = (
        0.08
        if h < 7
        else 0.35
        if h < 9
        else 1.0
        if h < 13
        else 0.8
        if h < 14
        else 0.95
        if h < 18
        else 0.45
        if h < 21
        else 0.15
    )
    return day * hour


def _creation_times(rng, clock, n, start, end) -> list[int]:
    out = []
    span = end - start
    while len(out) < n:
        t = start + int(rng.random() * span)
        # slight growth over the period, so "this month vs last month" deltas are not all zero
        growth = 0.85 + 0.3 * (t - start) / span
        if rng.random() < _weight(clock, t) * growth / 1.15:
            out.append(t)
    out.sort()
    return out


def setup_directory(p: Portal, rng: random.Random, n_tickets: int) -> Desk:
    desk = Desk()
    p.add_user(1, "Админ", "Порталов", departments=[1], position="Администратор портала")
    p.departments = [
        {"ID": 1, "NAME": "ООО «Сервис Плюс»", "SORT": 500, "PARENT": None, "UF_HEAD": 1},
        {"ID": 2, "NAME": "Первая линия поддержки", "SORT": 500, "PARENT": 1, "UF_HEAD": None},
        {"ID": 3, "NAME": "Вторая линия поддержки", "SORT": 500, "PARENT": 1, "UF_HEAD": None},
        {"ID": 4, "NAME": "Клиентский сервис", "SORT": 500, "PARENT": 1, "UF_HEAD": None},
    ]
    n_agents = max(4, min(25, n_tickets // 20))
    uid = 10
    used = set()
    for i in range(n_agents):
        dept = 2 if i < max(2, int(n_agents * 0.6)) else (3 if i < max(3, int(n_agents * 0.85)) else 4)
        while True:
            name = (rng.choice(_FIRST), rng.choice(_LAST))
            if name not in used:
                used.add(name)
                break
        first_in_dept = not any(desk.levels.get(a) == dept for a in desk.agents)
        p.add_user(
            uid,
            name[0],
            gendered(*name),
            departments=[dept],
            position="Руководитель группы" if first_in_dept else "Специалист поддержки",
        )
        if first_in_dept:
            p.departments[dept - 1]["UF_HEAD"] = uid
            desk.heads[dept] = uid
        desk.agents.append(uid)
        desk.levels[uid] = dept
        desk.speed[uid] = rng.choice((0.6, 0.8, 1.0, 1.0, 1.2, 1.6, 2.5))
        uid += 1
    # one agent has left the company: inactive, but their old tickets remain
    if len(desk.agents) >= 6:
        gone = desk.agents[-1]
        p.users[gone]["ACTIVE"] = False
    n_req = max(6, int(n_tickets * 0.5 / 2.6))
    for i in range(n_req):
        rid = 1000 + i
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        p.add_user(
            rid,
            first,
            gendered(first, last),
            departments=[],
            user_type="extranet",
            position="Клиент",
            email=f"client{rid}@example.ru",
        )
        desk.requesters.append(rid)
    p.groups = {SUPPORT_GROUP: {"ID": SUPPORT_GROUP, "NAME": "Техническая поддержка"}}
    return desk


def _contact_name(rng) -> dict:
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    return {"name": first, "lastName": gendered(first, last)}


def setup_crm(p: Portal, rng: random.Random, n_crm: int, desk: Desk, start: int) -> None:
    """Funnels, stages, the smart-process type, user fields, contacts and companies."""
    p.crm_types[SPA] = {
        "id": SPA_TYPE_ID,
        "title": "Заявки на обслуживание",
        "code": "service_request",
        "createdBy": 1,
        "entityTypeId": SPA,
        "customSectionId": None,
        "isCategoriesEnabled": "Y",
        "isStagesEnabled": "Y",
        "isBeginCloseDatesEnabled": "Y",
        "isClientEnabled": "Y",
        "isUseInUserfieldEnabled": "Y",
        "isLinkWithProductsEnabled": "N",
        "isMycompanyEnabled": "N",
        "isDocumentsEnabled": "N",
        "isSourceEnabled": "Y",
        "isObserversEnabled": "Y",
        "isRecyclebinEnabled": "Y",
        "isAutomationEnabled": "Y",
        "isBizProcEnabled": "N",
        "isSetOpenPermissions": "Y",
        "isPaymentsEnabled": "N",
        "isCountersEnabled": "N",
        "createdTime": start - 90 * 86400,
        "updatedTime": start - 90 * 86400,
        "updatedBy": 1,
    }
    p.categories[DEAL] = [
        {
            "id": DEAL_CATEGORY,
            "name": "Обращения в поддержку",
            "sort": 200,
            "entityTypeId": DEAL,
            "isDefault": "N",
            "originId": "",
            "originatorId": "",
        },
        {"id": 0, "name": "Продажи", "sort": 300, "entityTypeId": DEAL, "isDefault": "Y"},
    ]
    p.categories[SPA] = [
        {"id": 5, "name": "Инциденты", "sort": 100, "entityTypeId": SPA, "isDefault": "Y"},
        {"id": 6, "name": "Запросы на обслуживание", "sort": 200, "entityTypeId": SPA, "isDefault": "N"},
    ]
    sid = [100]

    def stages(entity_id, category, rows):
        lst = []
        for n, (code, name, sem) in enumerate(rows):
            sid[0] += 2
            extra = {"S": "success", "F": "failure", "A": "apology"}.get(sem, "process")
            s = {
                "ID": sid[0],
                "ENTITY_ID": entity_id,
                "STATUS_ID": code,
                "NAME": name,
                "SORT": (n + 1) * 10,
                "SYSTEM": "Y" if sem in ("S", "F") or n == 0 else "N",
                "CATEGORY_ID": category,
                "COLOR": ("#39A8EF", "#2FC6F6", "#55D0E0", "#47E4C2", "#FFA900", "#7BD500", "#FF5752")[n % 7],
                "SEMANTICS": {"S": "S", "F": "F", "A": "F"}.get(sem),
                "EXTRA_SEMANTICS": extra,
            }
            lst.append(s)
            p.stages[code] = s
        p.stage_lists[entity_id] = lst

    stages(
        "DEAL_STAGE",
        None,
        [
            ("NEW", "Новая", "P"),
            ("PREPARATION", "Подготовка", "P"),
            ("EXECUTING", "В работе", "P"),
            ("WON", "Сделка успешна", "S"),
            ("LOSE", "Сделка провалена", "F"),
        ],
    )
    c = f"C{DEAL_CATEGORY}:"
    stages(
        f"DEAL_STAGE_{DEAL_CATEGORY}",
        DEAL_CATEGORY,
        [
            (c + "NEW", "Новое обращение", "P"),
            (c + "PREPARATION", "В работе", "P"),
            (c + "UC_SECOND_LINE", "Вторая линия", "P"),
            (c + "UC_WAIT", "Ждём ответа клиента", "P"),
            (c + "WON", "Решено", "S"),
            (c + "LOSE", "Отклонено", "F"),
            (c + "APOLOGY", "Дубликат", "A"),
        ],
    )
    for cat in SPA_CATEGORIES:
        d = f"DT{SPA}_{cat}:"
        stages(
            f"DYNAMIC_{SPA}_STAGE_{cat}",
            cat,
            [
                (d + "NEW", "Новая", "P"),
                (d + "PREPARATION", "В работе", "P"),
                (d + "UC_SECOND_LINE", "Вторая линия", "P"),
                (d + "CLIENT", "Ожидание клиента", "P"),
                (d + "SUCCESS", "Выполнено", "S"),
                (d + "FAIL", "Отменено", "F"),
            ],
        )
    p.uf_fields[DEAL] = {
        "ufCrm_PRIORITY": ("UF_CRM_PRIORITY", "int"),
        "ufCrm_RATING": ("UF_CRM_RATING", "int"),
        "ufCrm_DEADLINE": ("UF_CRM_DEADLINE", "time"),
    }
    p.uf_fields[SPA] = {
        f"ufCrm{SPA_TYPE_ID}_PRIORITY": (f"UF_CRM_{SPA_TYPE_ID}_PRIORITY", "int"),
        f"ufCrm{SPA_TYPE_ID}_RATING": (f"UF_CRM_{SPA_TYPE_ID}_RATING", "int"),
    }
    n_companies = max(3, n_crm // 10)
    n_contacts = max(6, int(n_crm / 2.4))
    t0 = start - 200 * 86400
    for i in range(n_companies):
        it = p._item_create(
            COMPANY, t0 + i * 60, 1, rng.choice(desk.agents), title=f"ООО «{rng.choice(_LAST)} и партнёры»"
        )
        desk.companies.append(it["id"])
    for i in range(n_contacts):
        it = p._item_create(
            CONTACT,
            t0 + i * 60,
            1,
            rng.choice(desk.agents),
            title="",
            fields=_contact_name(rng) | {"companyId": rng.choice(desk.companies) if rng.random() < 0.5 else None},
        )
        desk.contacts.append(it["id"])


# -- planning -------------------------------------------------------------------------------


class _Plan:
    """A ticket's timed actions; ``seq`` keeps same-second actions in planning order."""

    def __init__(self, handle, kind):
        self.handle = handle
        self.kind = kind
        self.actions: list[tuple] = []


def _pick_agent(rng, desk: Desk, level: int | None = None) -> int:
    pool = [a for a in desk.agents if level is None or desk.levels[a] == level] or desk.agents
    # uneven load: the first agents of each list get more tickets
    return pool[min(len(pool) - 1, int(len(pool) * (rng.random() ** 1.6)))]


def _pick_requester(rng, pool: list[int]) -> int:
    # a few clients come back often, most rarely
    return pool[min(len(pool) - 1, int(len(pool) * (rng.random() ** 2.2)))]


def _reply_delay(rng, clock, desk, agent, t, priority_factor) -> int:
    med = 900 * desk.speed.get(agent, 1.0) * priority_factor
    return clock.add_work(t, _lognormal(rng, med, 1.0))


def _customer_delay(rng, t) -> int:
    return int(t + _lognormal(rng, 3 * 3600, 1.1))


def plan_task(rng, clock, desk: Desk, handle, t0: int) -> _Plan:
    pl = _Plan(handle, "task")
    A = pl.actions
    author = _pick_requester(rng, desk.requesters)
    agent = _pick_agent(rng, desk, 2 if rng.random() < 0.8 else None)
    prio = rng.choices((0, 1, 2), (0.2, 0.6, 0.2))[0]
    pf = {0: 2.0, 1: 1.0, 2: 0.5}[prio]
    sla = {0: 3 * 86400, 1: 86400, 2: 6 * 3600}[prio]
    deadline = clock.add_work(t0, sla * 9 / 24) if rng.random() < 0.85 else None
    control = rng.random() < 0.25
    A.append(
        (
            t0,
            "task_create",
            dict(
                creator=author,
                responsible=agent,
                priority=prio,
                deadline=deadline,
                group_id=SUPPORT_GROUP if rng.random() < 0.75 else 0,
                title=rng.choice(_TOPICS),
                task_control=control,
            ),
        )
    )
    if rng.random() < 0.04:  # never answered
        if rng.random() < 0.3:
            A.append((_customer_delay(rng, t0), "comment", dict(author=author, text="Есть новости по заявке?")))
        return pl
    t = _reply_delay(rng, clock, desk, agent, t0, pf)
    A.append((t, "status", dict(actor=agent, status=IN_PROGRESS)))
    A.append((t + rng.randint(5, 120), "comment", dict(author=agent, text="Здравствуйте! Взяли в работу.")))
    t += 120
    if rng.random() < 0.15:  # transfer to second line
        new = _pick_agent(rng, desk, 3)
        if new == agent:
            new = _pick_agent(rng, desk, None)
        if new != agent:
            t = clock.add_work(t, _lognormal(rng, 1800))
            A.append((t, "comment", dict(author=agent, text="Передаю коллегам со второй линии.")))
            A.append((t + 30, "responsible", dict(actor=agent, responsible=new)))
            agent = new
            t = _reply_delay(rng, clock, desk, agent, t + 60, pf)
            A.append((t, "comment", dict(author=agent, text="Добрый день, подключился к вашей заявке.")))
    if rng.random() < 0.05 and deadline:
        t = clock.add_work(t, 1200)
        A.append((t, "deadline", dict(actor=agent, deadline=clock.add_work(deadline, 9 * 3600))))
    for _ in range(min(4, int(rng.expovariate(1.1)))):
        t = _customer_delay(rng, t)
        A.append((t, "comment", dict(author=author, text="Уточните, пожалуйста, сроки.")))
        t = _reply_delay(rng, clock, desk, agent, t, pf)
        A.append((t, "comment", dict(author=agent, text="Работаем над вашим вопросом.")))
    if rng.random() < 0.06:
        t = clock.add_work(t, 900)
        A.append((t, "status", dict(actor=agent, status=DEFERRED)))
        t = int(t + _lognormal(rng, 86400, 0.7))
        A.append((t, "status", dict(actor=agent, status=IN_PROGRESS)))
    if rng.random() < 0.45:
        for _ in range(rng.randint(1, 3)):
            A.append(
                (
                    clock.add_work(t, rng.randint(600, 7200)),
                    "elapsed",
                    dict(user=agent, seconds=rng.randint(10, 90) * 60),
                )
            )
    t = clock.add_work(t, _lognormal(rng, 3 * 3600 * pf, 1.1))
    rounds = 0
    while True:
        A.append((t, "comment", dict(author=agent, text="Проблема решена, проверьте, пожалуйста.")))
        A.append((t + 20, "status", dict(actor=agent, status=AWAITING_CONTROL if control else COMPLETED)))
        t += 20
        reopened = rounds == 0 and rng.random() < 0.07
        if control:
            t = _customer_delay(rng, t)
            if reopened:
                A.append((t, "comment", dict(author=author, text="Не работает, верните в работу.")))
                A.append((t + 10, "status", dict(actor=author, status=IN_PROGRESS)))
            else:
                A.append((t, "status", dict(actor=author, status=COMPLETED)))
        elif reopened:
            t = int(t + _lognormal(rng, 86400, 0.8))
            A.append((t, "comment", dict(author=author, text="Проблема повторилась.")))
            A.append((t + 10, "status", dict(actor=author, status=PENDING)))
            t = _reply_delay(rng, clock, desk, agent, t + 10, pf)
            A.append((t, "status", dict(actor=agent, status=IN_PROGRESS)))
        if not reopened:
            break
        rounds += 1
        t = clock.add_work(t, _lognormal(rng, 2 * 3600 * pf))
    if rng.random() < 0.55:
        good = rng.random() < (0.5 if rounds else 0.8)
        A.append((_customer_delay(rng, t), "mark", dict(actor=author, mark="P" if good else "N")))
    return pl


def _crm_stage(etid: int, category: int, code: str) -> str:
    if etid == DEAL:
        return f"C{category}:{code}" if category else code
    return f"DT{SPA}_{category}:{code}"


def plan_crm(rng, clock, desk: Desk, handle, t0: int, etid: int) -> _Plan:
    pl = _Plan(handle, etid)
    A = pl.actions
    category = DEAL_CATEGORY if etid == DEAL else rng.choice(SPA_CATEGORIES)
    agent = _pick_agent(rng, desk, 2 if rng.random() < 0.75 else None)
    prio = rng.choices(("low", "normal", "high", "critical"), (0.15, 0.55, 0.24, 0.06))[0]
    pf = {"low": 2.0, "normal": 1.0, "high": 0.5, "critical": 0.3}[prio]
    contact = rng.choice(desk.contacts) if rng.random() < 0.8 else None
    company = rng.choice(desk.companies) if (contact is None or rng.random() < 0.3) else None
    fields = {"contactId": contact, "contactIds": [contact] if contact else [], "companyId": company}
    if etid == DEAL:
        fields["ufCrm_PRIORITY"] = PRIORITY_ENUM[prio]
        fields["ufCrm_RATING"] = None
        fields["ufCrm_DEADLINE"] = (
            clock.add_work(t0, {"low": 3, "normal": 1, "high": 0.3, "critical": 0.15}[prio] * 9 * 3600)
            if rng.random() < 0.5
            else None
        )
        rating_key = "ufCrm_RATING"
    else:
        fields[f"ufCrm{SPA_TYPE_ID}_PRIORITY"] = PRIORITY_ENUM[prio]
        fields[f"ufCrm{SPA_TYPE_ID}_RATING"] = None
        rating_key = f"ufCrm{SPA_TYPE_ID}_RATING"
    creator = 1 if rng.random() < 0.4 else agent
    A.append(
        (
            t0,
            "item_create",
            dict(
                etid=etid, creator=creator, assigned=agent, category=category, title=rng.choice(_TOPICS), fields=fields
            ),
        )
    )
    st = lambda code: _crm_stage(etid, category, code)  # noqa: E731
    by_call = rng.random() < 0.3
    A.append(
        (
            t0,
            "activity",
            dict(
                kind="call" if by_call else "email",
                direction=1,
                responsible=agent,
                duration=rng.randint(60, 480) if by_call else 0,
                subject="Обращение клиента",
            ),
        )
    )
    if rng.random() < 0.15:
        A.append(
            (
                t0 + 60,
                "activity",
                dict(kind="todo", direction=0, responsible=agent, duration=0, subject="Связаться с клиентом"),
            )
        )
    t_cat = None
    if etid == SPA and rng.random() < 0.08:  # requalified: wrong funnel at intake
        category = SPA_CATEGORIES[1] if category == SPA_CATEGORIES[0] else SPA_CATEGORIES[0]
        t_cat = clock.add_work(t0, _lognormal(rng, 600))
        A.append((t_cat, "category", dict(actor=agent, category=category)))
    if rng.random() < 0.04:  # never answered
        return pl
    t = _reply_delay(rng, clock, desk, agent, t0, pf)
    if t_cat is not None:
        t = max(t, t_cat + 60)
    A.append((t, "move", dict(actor=agent, stage=st("PREPARATION"))))
    out_call = rng.random() < 0.3
    A.append(
        (
            t + 5,
            "activity",
            dict(
                kind="call" if out_call else "email",
                direction=2,
                responsible=agent,
                duration=rng.randint(120, 900) if out_call else 0,
                subject="Ответ клиенту",
            ),
        )
    )
    t += 10
    if rng.random() < 0.12:  # escalation to second line
        t = clock.add_work(t, _lognormal(rng, 3600))
        A.append((t, "timeline", dict(author=agent, text="Передано на вторую линию: требуется анализ логов.")))
        A.append((t + 5, "move", dict(actor=agent, stage=st("UC_SECOND_LINE"))))
        t = clock.add_work(t, _lognormal(rng, 4 * 3600 * pf))
        A.append(
            (
                t,
                "activity",
                dict(kind="email", direction=2, responsible=agent, duration=0, subject="Ответ второй линии"),
            )
        )
    elif rng.random() < 0.2:
        A.append((clock.add_work(t, 600), "timeline", dict(author=agent, text="Внутренняя заметка: проверить оплату.")))
    for _ in range(min(4, int(rng.expovariate(1.2)))):
        if rng.random() < 0.4:
            A.append((t + 30, "move", dict(actor=agent, stage=st("CLIENT" if etid == SPA else "UC_WAIT"))))
            t = _customer_delay(rng, t)
            A.append(
                (t, "activity", dict(kind="email", direction=1, responsible=agent, duration=0, subject="Ответ клиента"))
            )
            A.append((t + 30, "move", dict(actor=agent, stage=st("PREPARATION"))))
        else:
            t = _customer_delay(rng, t)
            A.append(
                (
                    t,
                    "activity",
                    dict(kind="email", direction=1, responsible=agent, duration=0, subject="Вопрос клиента"),
                )
            )
        t = _reply_delay(rng, clock, desk, agent, t + 30, pf)
        call = rng.random() < 0.25
        A.append(
            (
                t,
                "activity",
                dict(
                    kind="call" if call else "email",
                    direction=2,
                    responsible=agent,
                    duration=rng.randint(120, 900) if call else 0,
                    subject="Ответ",
                ),
            )
        )
    t = clock.add_work(t, _lognormal(rng, 4 * 3600 * pf, 1.1))
    r = rng.random()
    final = "LOSE" if r < 0.06 else "APOLOGY" if (etid == DEAL and r < 0.08) else "WON"
    if etid == SPA:
        final = "FAIL" if r < 0.07 else "SUCCESS"
    A.append((t, "move", dict(actor=agent, stage=st(final))))
    success = final in ("WON", "SUCCESS")
    if success and rng.random() < 0.06:  # reopened
        t = int(t + _lognormal(rng, 86400, 0.8))
        A.append(
            (
                t,
                "activity",
                dict(kind="email", direction=1, responsible=agent, duration=0, subject="Проблема вернулась"),
            )
        )
        A.append((t + 60, "move", dict(actor=agent, stage=st("PREPARATION"))))
        t = clock.add_work(t + 60, _lognormal(rng, 3 * 3600 * pf))
        A.append((t, "activity", dict(kind="email", direction=2, responsible=agent, duration=0, subject="Исправили")))
        A.append((t + 30, "move", dict(actor=agent, stage=st(final))))
        t += 30
    if success and rng.random() < 0.12:  # control callback after resolution
        A.append(
            (
                clock.add_work(t + 86400, 3600),
                "activity",
                dict(
                    kind="call",
                    direction=2,
                    responsible=agent,
                    duration=rng.randint(60, 300),
                    subject="Контрольный звонок",
                ),
            )
        )
    if success and rng.random() < 0.5:
        rating = rng.choices((5, 4, 3, 2, 1), (0.5, 0.24, 0.1, 0.07, 0.09))[0]
        A.append((_customer_delay(rng, t), "field", dict(actor=1, key=rating_key, value=rating)))
    return pl


def plan_sales_deal(rng, clock, desk: Desk, handle, t0: int) -> _Plan:
    """Sales deals of funnel 0: not tickets of the support funnel, there to be filtered out."""
    pl = _Plan(handle, DEAL)
    agent = rng.choice(desk.agents)
    pl.actions.append(
        (
            t0,
            "item_create",
            dict(
                etid=DEAL,
                creator=agent,
                assigned=agent,
                category=0,
                title="Продажа: годовая подписка",
                fields={
                    "contactId": rng.choice(desk.contacts),
                    "opportunity": 120000,
                    "ufCrm_PRIORITY": None,
                    "ufCrm_RATING": None,
                    "ufCrm_DEADLINE": None,
                    "typeId": "SALE",
                },
            ),
        )
    )
    t = clock.add_work(t0, _lognormal(rng, 86400))
    pl.actions.append((t, "move", dict(actor=agent, stage="PREPARATION")))
    if rng.random() < 0.6:
        pl.actions.append((t + 5 * 86400, "move", dict(actor=agent, stage=rng.choice(("WON", "LOSE")))))
    return pl


# -- applying -------------------------------------------------------------------------------


def _apply(p: Portal, desk: Desk, plan: _Plan, rec: dict, t: int, kind: str, a: dict) -> None:
    if kind == "task_create":
        rec[plan.handle] = p._task_create(
            t,
            a["creator"],
            a["responsible"],
            a["title"],
            priority=a["priority"],
            deadline=a["deadline"],
            group_id=a["group_id"],
            task_control=a["task_control"],
        )
        return
    if kind == "item_create":
        rec[plan.handle] = p._item_create(
            a["etid"], t, a["creator"], a["assigned"], title=a["title"], category_id=a["category"], fields=a["fields"]
        )
        return
    obj = rec[plan.handle]
    if kind == "status":
        p._task_status(obj, t, a["actor"], a["status"])
    elif kind == "comment":
        p._task_comment(obj, t, a["author"], a["text"])
    elif kind == "responsible":
        p._task_responsible(obj, t, a["actor"], a["responsible"])
    elif kind == "deadline":
        p._task_deadline(obj, t, a["actor"], a["deadline"])
    elif kind == "mark":
        p._task_mark(obj, t, a["actor"], a["mark"])
    elif kind == "elapsed":
        p._task_elapsed(obj, t, a["user"], a["seconds"], "Работа над заявкой")
    elif kind == "move":
        p._item_move(obj["entityTypeId"], obj, t, a["actor"], a["stage"])
    elif kind == "category":
        p._item_category(obj["entityTypeId"], obj, t, a["actor"], a["category"])
    elif kind == "field":
        p._item_set(obj["entityTypeId"], obj, t, a["actor"], a["key"], a["value"])
    elif kind == "timeline":
        p._timeline_comment(obj["entityTypeId"], obj["id"], t, a["author"], a["text"])
    elif kind == "activity":
        type_id, prov, ptype = {
            "email": (4, "CRM_EMAIL", "EMAIL"),
            "call": (2, "VOXIMPLANT_CALL", "CALL"),
            "todo": (6, "CRM_TODO", "TODO"),
        }[a["kind"]]
        cust = obj.get("contactId")
        comm = f"client{cust}@example.ru" if a["kind"] == "email" else f"+7900{(cust or 0):07d}"
        p._activity(
            obj["entityTypeId"],
            obj["id"],
            t,
            type_id=type_id,
            direction=a["direction"],
            responsible=a["responsible"],
            subject=a["subject"],
            provider_id=prov,
            provider_type_id=ptype,
            duration=a["duration"],
            completed=a["kind"] != "todo",
            communication=comm,
        )
    else:  # pragma: no cover
        raise ValueError(kind)


def generate(p: Portal, *, seed: int, tickets: int, months: int, end: int) -> Desk:
    rng = random.Random(seed)
    clock = _Clock(p.tz)
    start = int((datetime.fromtimestamp(end, p.tz) - timedelta(days=round(months * 30.44))).timestamp())
    desk = setup_directory(p, rng, tickets)
    n_tasks = int(round(tickets * 0.5))
    n_spa = int(round(tickets * 0.18))
    n_deals = tickets - n_tasks - n_spa
    n_sales = max(1, n_deals // 20) if tickets >= 20 else 0
    setup_crm(p, rng, n_deals + n_spa, desk, start)
    kinds = ["task"] * n_tasks + [DEAL] * n_deals + [SPA] * n_spa + ["sale"] * n_sales
    rng.shuffle(kinds)
    times = _creation_times(rng, clock, len(kinds), start, end)
    plans = []
    for n, (kind, t0) in enumerate(zip(kinds, times)):
        if kind == "task":
            plans.append(plan_task(rng, clock, desk, n, t0))
        elif kind == "sale":
            plans.append(plan_sales_deal(rng, clock, desk, n, t0))
        else:
            plans.append(plan_crm(rng, clock, desk, n, t0, kind))
    actions = []
    seq = 0
    for pl in plans:
        for t, kind, a in sorted(pl.actions, key=lambda x: x[0]):
            if t > end:
                break  # the rest of this ticket's life has not happened yet
            actions.append((t, seq, pl, kind, a))
            seq += 1
    actions.sort(key=lambda x: (x[0], x[1]))
    rec: dict = {}
    for t, _, pl, kind, a in actions:
        _apply(p, desk, pl, rec, t, kind, a)
    return desk
