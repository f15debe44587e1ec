"""The portal's own page around an app: what a user of the double sees at ``GET /``.

Bitrix24 opens an application by POSTing into an iframe (DOCS settings/oauth/simple-way.md,
api-reference/widgets/index.md): query ``DOMAIN, PROTOCOL, LANG, APP_SID``; form ``AUTH_ID,
AUTH_EXPIRES, REFRESH_ID, SERVER_ENDPOINT, member_id, status, PLACEMENT, PLACEMENT_OPTIONS,
APPLICATION_TOKEN``, with tokens issued for the *viewing* user. This page does the same, so the
app's launch verification runs for real, and lets the demo switch the viewer (admin, a department
head, an agent). A side panel shows what the app pushed into the portal (notifications, chat
messages, feed posts, Disk files).
"""

from __future__ import annotations

import html
import json
import re
import secrets

from werkzeug.wrappers import Request, Response

# Viewers the switcher offers: (key, label ru, label en, how to find the user id)
ROLES = (
    ("admin", "Администратор", "Administrator"),
    ("head", "Руководитель отдела", "Department head"),
    ("agent", "Сотрудник поддержки", "Support agent"),
)


def viewer_ids(double) -> dict[str, int]:
    """User ids for each role: user 1 (admin), the head of the first support department, and
    an agent of that department who is not its head."""
    desk = double.desk
    dept = min(desk.heads)
    head = desk.heads[dept]
    agent = next(a for a, d in sorted(desk.levels.items()) if d == dept and a != head)
    return {"admin": 1, "head": head, "agent": agent}


def _user_name(portal, uid: int) -> str:
    u = portal.users.get(int(uid)) or {}
    return f"{u.get('NAME', '')} {u.get('LAST_NAME', '')}".strip() or f"#{uid}"


def bbcode(text: str) -> str:
    """Render the BB-codes Bitrix24 shows in notifications and chats ([B], [I], [URL=…], [BR]),
    escaping everything else."""
    out = html.escape(str(text))
    out = re.sub(r"\[(/?)(B|I|U)\]", lambda m: f"<{m.group(1)}{m.group(2).lower()}>", out, flags=re.I)
    out = re.sub(
        r"\[URL=(https?://[^\]]+)\](.*?)\[/URL\]", r'<a href="\1" target="_blank">\2</a>', out, flags=re.I | re.S
    )
    return re.sub(r"\[BR\]", "<br>", out, flags=re.I)


def _pushes_html(double, lang: str) -> str:
    from .push_methods import push_state

    st = push_state(double.portal)
    esc = html.escape
    parts = []
    notes = st.visible_notifications()
    parts.append(f"<h3>{'Уведомления' if lang == 'ru' else 'Notifications'} ({len(notes)})</h3>")
    for n in notes[-20:][::-1]:
        parts.append(
            f"<div class='push'><b>→ {esc(_user_name(double.portal, n['USER_ID']))}</b>"
            f"<pre>{bbcode(n.get('MESSAGE', ''))}</pre></div>"
        )
    msgs = [r for r in st.records if r["method"] == "im.message.add"]
    parts.append(f"<h3>{'Сообщения в чатах' if lang == 'ru' else 'Chat messages'} ({len(msgs)})</h3>")
    for r in msgs[-10:][::-1]:
        p = r.get("params", {})
        parts.append(
            f"<div class='push'><b>{esc(str(p.get('DIALOG_ID', p.get('dialog_id', ''))))}</b>"
            f"<pre>{bbcode(p.get('MESSAGE', p.get('message', '')))}</pre></div>"
        )
    parts.append(f"<h3>{'Живая лента' if lang == 'ru' else 'Feed'} ({len(st.posts)})</h3>")
    for p in st.posts[-5:][::-1]:  # stored as log.blogpost.get answers: TITLE, DETAIL_TEXT
        parts.append(
            f"<div class='push'><b>{esc(str(p.get('TITLE', '')))}</b>"
            f"<pre>{bbcode(str(p.get('DETAIL_TEXT', ''))[:600])}</pre></div>"
        )
    parts.append(f"<h3>{'Диск приложения' if lang == 'ru' else 'App Disk'} ({len(st.files)})</h3>")
    for f in list(st.files.values())[-5:][::-1]:
        parts.append(f"<div class='push'>{esc(str(f.get('NAME', '')))}</div>")
    return "\n".join(parts)


PAGE = """<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8"><title>Bitrix24 (demo portal)</title>
<style>
 body{{margin:0;font-family:"Open Sans","Helvetica Neue",Arial,sans-serif;background:#eef2f4;color:#333}}
 header{{background:#2fc6f6;color:#fff;padding:10px 20px;display:flex;gap:24px;align-items:center}}
 header b{{font-size:18px}} header a{{color:#fff;text-decoration:none;padding:4px 10px;border-radius:14px}}
 header a.on{{background:rgba(255,255,255,.3)}}
 .wrap{{display:flex;gap:16px;padding:16px}}
 nav{{width:170px;font-size:14px}} nav div{{padding:8px 10px;border-radius:6px;color:#525c69}} nav a{{color:inherit;text-decoration:none}}
 nav div.on{{background:#fff;font-weight:600}}
 main{{flex:1;background:#fff;border-radius:10px;padding:0;min-height:600px}}
 iframe{{border:0;width:100%;height:3400px;border-radius:10px}}
 aside{{width:320px;font-size:12px;background:#fff;border-radius:10px;padding:10px 14px;max-height:3400px;overflow:auto}}
 aside h3{{font-size:13px;margin:12px 0 6px;color:#525c69}} .push{{border-top:1px solid #e6e9ec;padding:6px 0}}
 .push pre{{white-space:pre-wrap;font-family:inherit;margin:4px 0}}
</style></head>
<body>
<header><b>Bitrix24</b><span>{viewer_label}: {viewer_name}</span>{switcher}<span style="margin-left:auto">{langs}</span></header>
<div class="wrap">
 <nav><div class="{on_task}"><a href="/?as={role}&lang={lang}&placement=TASK_VIEW_TAB">{m_tasks}</a></div><div class="{on_deal}"><a href="/?as={role}&lang={lang}&placement=CRM_DEAL_DETAIL_TAB">CRM</a></div><div class="{on_app}"><a href="/?as={role}&lang={lang}">b24desk</a></div></nav>
 <main><iframe name="app" id="app-frame" title="b24desk"></iframe></main>
 <aside id="pushes">{pushes}</aside>
</div>
<form id="launch" method="post" target="app" action="{action}">{fields}</form>
<script>document.getElementById('launch').submit();</script>
</body></html>"""


def _sample(double, kind: str, uid: int | None = None) -> str | None:
    """A ticket to open in a card: the newest task or support deal of the demo portal; for an
    agent, the newest one they are responsible for (another's would rightly be refused)."""
    p = double.portal

    def mine(who):
        return uid is None or uid == 1 or str(who) == str(uid)

    if kind == "task":
        tasks = [t for t in p.task_list if mine(t.get("responsibleId", t.get("RESPONSIBLE_ID")))]
        return str(tasks[-1]["id"]) if tasks else (str(p.task_list[-1]["id"]) if p.task_list else None)
    deals = [i for i in (p.items.get(2) or {}).values() if str(i.get("categoryId")) == "3"]
    own = [i for i in deals if mine(i.get("assignedById"))]
    deals = own or deals
    return str(max(deals, key=lambda i: i["id"])["id"]) if deals else None


def _placement(
    double, request: Request, uid: int | None = None, card: tuple[str, str] | None = None
) -> tuple[str, dict]:
    """Which widget the portal opens, with the PLACEMENT_OPTIONS the docs show for it
    (api-reference/widgets/placements.md): the task card tab ``{"taskId"}``, a deal tab ``{"ID"}``,
    a smart process's ``CRM_DYNAMIC_<id>_DETAIL_TAB`` ``{"ID"}``. ``card`` is a ticket's own page
    (a link from the app) opened on the app's tab."""
    placement = request.args.get("placement", "DEFAULT")
    ticket = request.args.get("id")
    if card is not None:
        placement, ticket = card
    if placement == "TASK_VIEW_TAB":
        return placement, {"taskId": ticket or _sample(double, "task", uid)}
    if placement == "CRM_DEAL_DETAIL_TAB":
        return placement, {"ID": ticket or _sample(double, "deal", uid)}
    if re.match(r"^CRM_DYNAMIC_\d+_DETAIL_TAB$", placement) and ticket:
        return placement, {"ID": ticket}
    return placement, {}


# The portal's own pages of a ticket (the links the app shows), opened on the app's card tab.
CARD_PATHS = (
    (re.compile(r"^/company/personal/user/\d+/tasks/task/view/(\d+)/?$"), lambda m: ("TASK_VIEW_TAB", m.group(1))),
    (re.compile(r"^/crm/deal/details/(\d+)/?$"), lambda m: ("CRM_DEAL_DETAIL_TAB", m.group(1))),
    (re.compile(r"^/crm/type/(\d+)/details/(\d+)/?$"), lambda m: (f"CRM_DYNAMIC_{m.group(1)}_DETAIL_TAB", m.group(2))),
)


def card_of(path: str) -> tuple[str, str] | None:
    for rx, make in CARD_PATHS:
        m = rx.match(path)
        if m:
            return make(m)
    return None


def render(double, request: Request, card: tuple[str, str] | None = None) -> Response:
    app = double.app
    handler = getattr(app, "handler_url", None)
    lang = request.args.get("lang", "ru") if request.args.get("lang") in ("ru", "en") else "ru"
    if not handler:
        return Response(
            "<p>No application is installed on this portal yet.</p>", 404, content_type="text/html; charset=utf-8"
        )
    roles = viewer_ids(double)
    role = request.args.get("as", "admin")
    if role not in roles:
        role = "admin"
    uid = roles[role]
    tok = double.issue_tokens(uid)
    placement, options = _placement(double, request, uid, card)
    query = {"DOMAIN": double.domain, "PROTOCOL": "0", "LANG": lang, "APP_SID": secrets.token_hex(16)}
    action = handler + ("&" if "?" in handler else "?") + "&".join(f"{k}={html.escape(v)}" for k, v in query.items())
    form = {
        "AUTH_ID": tok["access_token"],
        "AUTH_EXPIRES": "3600",
        "REFRESH_ID": tok["refresh_token"],
        "SERVER_ENDPOINT": double.server_endpoint,
        "member_id": double.member_id,
        "status": "L",
        "PLACEMENT": placement,
        "PLACEMENT_OPTIONS": json.dumps(options),
        "APPLICATION_TOKEN": double.application_token,
        "APPLICATION_SCOPE": tok["scope"],
    }
    fields = "".join(
        f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(str(v))}">' for k, v in form.items()
    )
    idx = 1 if lang == "ru" else 2
    switcher = " ".join(
        f'<a class="{"on" if r[0] == role else ""}" id="as-{r[0]}" href="/?as={r[0]}&lang={lang}">{r[idx]}</a>'
        for r in ROLES
    )
    langs = " ".join(
        f'<a class="{"on" if lg == lang else ""}" href="/?as={role}&lang={lg}">{lg.upper()}</a>' for lg in ("ru", "en")
    )
    page = PAGE.format(
        lang=lang,
        viewer_label="Вы вошли как" if lang == "ru" else "Signed in as",
        viewer_name=html.escape(_user_name(double.portal, uid)),
        switcher=switcher,
        langs=langs,
        m_tasks="Задачи" if lang == "ru" else "Tasks",
        pushes=_pushes_html(double, lang),
        role=role,
        on_task="on" if placement == "TASK_VIEW_TAB" else "",
        on_deal="on" if placement == "CRM_DEAL_DETAIL_TAB" or placement.startswith("CRM_DYNAMIC_") else "",
        on_app="on" if options == {} else "",
        action=action,
        fields=fields,
    )
    return Response(page, 200, content_type="text/html; charset=utf-8")


def serve_page(double, request: Request) -> Response | None:
    """Non-REST paths of the portal: ``/`` is the app page in the portal's frame."""
    if request.method != "GET":
        return None
    if request.path in ("/", "/index.php", "/app/") or re.match(r"^/marketplace/app/\d+/?$", request.path):
        return render(double, request)
    card = card_of(request.path)
    if card is not None:
        return render(double, request, card)
    return None
