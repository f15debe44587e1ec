"""Who is looking, and what they may see: launch verification, roles, scopes, signed viewer tokens.

Core module (no Flask): the web layer (``reports/``) hands it the launch's query string and form,
and gets back a ``Viewer`` or a ``ViewerError`` carrying the HTTP status to answer with.

Roles (issue 5): the portal **admin** sees everything; a department **head** sees the tree of the
departments they head; an **agent** sees their own numbers and their team's totals (the team being
the departments they belong to), never another agent's numbers or another department's data.

A launch (``POST /app``) is trusted only after two checks (shared/spec/bitrix24-rest.md, "How the
app should verify a placement"): ``APPLICATION_TOKEN`` equals the stored one for that ``member_id``
(DOCS api-reference/widgets/index.md), and ``AUTH_ID`` is accepted by the *stored* portal endpoint
for ``user.current`` (DOCS api-reference/user/user-current.md). ``DOMAIN`` from the request is never
used. The admin flag comes from ``user.admin`` (DOCS api-reference/common/users/user-admin.md), the
headed departments from ``department.get`` filtered by ``UF_HEAD`` (DOCS
api-reference/departments/department-get.md). After that a short-lived signed token (itsdangerous)
carries the viewer in links, fetches and forms, so no third-party cookie is needed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import asdict, dataclass, field, replace
from typing import Callable, Iterable, Mapping

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from .model import parse_ids

ADMIN, HEAD, AGENT = "admin", "head", "agent"
ROLES = (ADMIN, HEAD, AGENT)

TOKEN_SALT = "b24desk.viewer/1"
TOKEN_MAX_AGE = 3600  # the portal's AUTH_ID lives 1 h; our token lives no longer
FILTER_KEYS = ("source", "department", "agent", "priority", "type", "channel", "line")
GROUP_DIMS = (
    "agent",
    "department",
    "priority",
    "type",
    "source",
    "channel",
    "line",
    "week",
    "month",
    "weekday",
    "hour",
)
# Dimensions an agent may group their team's totals by: none of them names a colleague.
TEAM_SAFE_DIMS = ("priority", "type", "source", "channel", "line", "week", "month", "weekday", "hour")
RU_LANGS = ("ru", "ua", "by", "kz")


class ViewerError(Exception):
    """A refused launch or request. ``status`` is the HTTP status the web layer answers with."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class Viewer:
    """The verified user behind a page, an API call or an export."""

    portal: str  # member_id
    user_id: str
    role: str  # admin | head | agent
    name: str = ""
    departments: tuple = ()  # the departments the user belongs to (their team)
    headed: tuple = ()  # departments they head (roots of their tree)
    tree: tuple = ()  # headed + every descendant (what a head sees)
    domain: str = ""  # the portal's stored domain (links, frame-ancestors)
    lang: str = "en"
    nonce: str = field(default_factory=lambda: secrets.token_hex(8))  # binds CSRF tokens
    epoch: str = ""  # the installation's epoch at launch (installations.epoch)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping) -> "Viewer":
        known = cls.__dataclass_fields__
        kw = {k: v for k, v in data.items() if k in known}
        for k in ("departments", "headed", "tree"):
            kw[k] = tuple(str(x) for x in kw.get(k) or ())
        if kw.get("role") not in ROLES:
            raise ViewerError(401, "bad_token", "token carries no valid role")
        return cls(**kw)

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN


# --- signed tokens and CSRF -----------------------------------------------------------------


def _serializer(secret: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt=TOKEN_SALT)


def dump_token(secret: str, viewer: Viewer) -> str:
    return _serializer(secret).dumps(viewer.to_dict())


def load_token(secret: str, token: str | None, max_age: int = TOKEN_MAX_AGE) -> Viewer:
    """The viewer a token carries; expired, forged or missing tokens raise ``ViewerError(401)``."""
    if not token:
        raise ViewerError(401, "no_token", "no viewer token: open the app from Bitrix24")
    try:
        data = _serializer(secret).loads(token, max_age=max_age)
    except SignatureExpired:
        raise ViewerError(401, "expired", "the session has expired: reopen the app in Bitrix24") from None
    except BadSignature:
        raise ViewerError(401, "bad_token", "invalid viewer token") from None
    if not isinstance(data, dict):
        raise ViewerError(401, "bad_token", "invalid viewer token")
    return Viewer.from_dict(data)


# --- the session behind a token: the installation it belongs to, the admin right ---------------

ADMIN_RECHECK = 300  # seconds between two user.admin checks of an admin's session
_MAX_TOKEN = 256


def check_installation(db, viewer: Viewer) -> dict:
    """The viewer's installation, still the one they launched in; ``ViewerError(401)`` once the app
    was uninstalled or installed again since (the epoch changes on both), so no token outlives the
    installation that minted it."""
    inst = _installation(db, viewer.portal)
    if (
        inst is None
        or inst.get("active") in (0, "0")
        or not hmac.compare_digest(str(inst.get("epoch") or "").encode(), str(viewer.epoch or "").encode())
        or not viewer.epoch
    ):
        raise ViewerError(
            401, "revoked", "the app was reinstalled or removed since this page opened: reopen it in Bitrix24"
        )
    return inst


def open_sessions(db_path: str):
    """The admin sessions' store: a small SQLite file beside the main one (``<db>-sessions``), so
    a launch's write never changes the main store's version the page cache keys on. It holds the
    viewer's portal tokens from the launch, server side only (never in a URL)."""
    import sqlite3

    from sqlite_utils import Database

    conn = sqlite3.connect(f"{db_path}-sessions", timeout=30)
    db = Database(conn)
    db.execute("PRAGMA journal_mode=WAL")
    db["viewer_sessions"].create(
        {
            "nonce": str,
            "portal": str,
            "user_id": str,
            "access_token": str,
            "refresh_token": str,
            "admin": int,
            "checked_at": float,
            "created_at": float,
        },
        pk="nonce",
        if_not_exists=True,
    )
    return db


def save_session(db, viewer: Viewer, access_token: str, refresh_token: str | None, *, admin: bool, now: float) -> None:
    """Keep the launch's portal tokens server side (never in a URL), keyed by the viewer's nonce,
    so an admin's right can be re-checked later; old sessions of the portal are dropped."""
    with db.atomic():
        db.execute("delete from viewer_sessions where created_at < ?", [now - 2 * TOKEN_MAX_AGE])
        db["viewer_sessions"].upsert(
            {
                "nonce": viewer.nonce,
                "portal": viewer.portal,
                "user_id": viewer.user_id,
                "access_token": access_token,
                "refresh_token": refresh_token,
                "admin": int(admin),
                "checked_at": now,
                "created_at": now,
            },
            pk="nonce",
        )


def recheck_admin(
    db,
    viewer: Viewer,
    installation: dict,
    *,
    call: Callable[[str, str, str, dict], object],
    now: float,
    every: float = ADMIN_RECHECK,
) -> None:
    """An admin's session re-asks the portal (``user.admin`` with the viewer's own token, at the
    stored endpoint) at most every ``every`` seconds; a demoted admin gets 403, a session the portal
    no longer accepts 401 (reopen the app). The answer is remembered, so a refusal sticks."""
    if viewer.role != ADMIN:
        return
    row = db.execute(
        "select access_token, admin, checked_at from viewer_sessions where nonce = ? and portal = ? and user_id = ?",
        [viewer.nonce, viewer.portal, viewer.user_id],
    ).fetchone()
    if row is None:
        raise ViewerError(401, "expired", "the session has expired: reopen the app in Bitrix24")
    token, admin, checked = row
    if not admin:
        raise ViewerError(403, "demoted", "you are no longer a Bitrix24 administrator")
    if now - float(checked or 0) < every:
        return
    try:
        answer = call(installation["client_endpoint"], token, "user.admin", {})
    except Exception:
        raise ViewerError(401, "expired", "the session has expired: reopen the app in Bitrix24") from None
    still = answer in (True, "true", "Y", 1, "1")
    with db.atomic():
        db.execute(
            "update viewer_sessions set admin = ?, checked_at = ? where nonce = ?", [int(still), now, viewer.nonce]
        )
    if not still:
        raise ViewerError(403, "demoted", "you are no longer a Bitrix24 administrator")


def _ascii_field(form: Mapping, key: str, max_len: int = _MAX_TOKEN) -> str:
    value = form.get(key) or ""
    if not isinstance(value, str) or len(value) > max_len or not value.isascii() or not value.isprintable():
        raise ViewerError(400, "bad_launch", f"{key} is malformed: open the app from Bitrix24")
    return value.strip()


def csrf_token(secret: str, viewer: Viewer) -> str:
    """A form token bound to this viewer's signed token (its nonce), so a form from another
    session, user or portal fails even with a valid viewer token."""
    msg = f"csrf|{viewer.portal}|{viewer.user_id}|{viewer.nonce}".encode()
    return hmac.new(secret.encode(), msg, hashlib.sha256).hexdigest()


def check_csrf(secret: str, viewer: Viewer, value: str | None) -> None:
    if not value or not hmac.compare_digest(str(value).encode(), csrf_token(secret, viewer).encode()):
        raise ViewerError(403, "csrf", "invalid or missing CSRF token: reload the page and retry")


# --- departments and members ----------------------------------------------------------------


def department_parents(db, portal: str) -> dict[str, str | None]:
    return {
        str(r["id"]): (str(r["parent"]) if r["parent"] not in (None, "", "0") else None)
        for r in db.query("select id, parent from departments where portal = ?", [portal])
    }


def subtree(parents: Mapping[str, str | None], roots: Iterable[str]) -> list[str]:
    """``roots`` and every department below them (cycle-safe), roots first."""
    children: dict[str, list[str]] = {}
    for d, p in parents.items():
        if p is not None:
            children.setdefault(p, []).append(d)
    out, seen, stack = [], set(), [str(r) for r in roots][::-1]
    while stack:
        d = stack.pop()
        if d in seen:
            continue
        seen.add(d)
        out.append(d)
        stack.extend(sorted(children.get(d, []), key=_id_key, reverse=True))
    return out


def _id_key(x: str):
    return (0, int(x), "") if str(x).isdigit() else (1, 0, str(x))


def members(db, portal: str, departments: Iterable[str]) -> set[str]:
    """User ids belonging to any of ``departments`` (from the synced users table)."""
    wanted = {str(d) for d in departments}
    if not wanted:
        return set()
    return {
        str(r["id"])
        for r in db.query("select id, departments from users where portal = ?", [portal])
        if wanted & set(parse_ids(r["departments"]))
    }


# --- scopes ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scoped:
    """A request after scoping: the filters and grouping to run, and which slice it is."""

    filters: dict
    group_by: str | None
    slice: str  # "all" (admin), "tree" (head), "own" or "team" (agent)


def clean_filters(filters: Mapping | None) -> dict:
    """Filters as strings, or lists of strings where a dimension holds several values (the CLI's
    repeatable options); empty values become None."""
    out = {k: None for k in FILTER_KEYS}
    for k, v in (filters or {}).items():
        if k not in FILTER_KEYS:
            raise ViewerError(400, "bad_filter", f"unknown filter {k!r}")
        if isinstance(v, (list, tuple, set)):
            vals = sorted({str(x) for x in v if x not in (None, "")})
            out[k] = None if not vals else vals[0] if len(vals) == 1 else vals
        else:
            out[k] = None if v in (None, "") else str(v)
    return out


def _values(v) -> list[str]:
    return [] if v is None else list(v) if isinstance(v, list) else [v]


def scope_query(
    viewer: Viewer, filters: Mapping | None = None, group_by: str | None = None, *, db=None, want: str | None = None
) -> Scoped:
    """Apply the viewer's role to a KPI request, or refuse it with ``ViewerError(403)``.

    - admin: anything.
    - head: ``department`` must lie in their tree (default: the first department they head);
      ``agent`` must be a member of their tree.
    - agent: their own numbers (``agent`` forced to themselves), or, with ``want="team"`` or an
      own ``department`` and no ``agent``, the team totals, grouped at most by a dimension that
      names no colleague.
    """
    f = clean_filters(filters)
    if group_by in ("", None):
        group_by = None
    elif group_by not in GROUP_DIMS:
        raise ViewerError(400, "bad_group_by", f"unknown group_by {group_by!r}; one of {', '.join(GROUP_DIMS)}")
    if viewer.role == ADMIN:
        return Scoped(f, group_by, "all")
    if viewer.role == HEAD:
        if not viewer.tree:
            raise ViewerError(403, "no_scope", "you head no department")
        if f["department"] is None:
            roots = list(viewer.headed or viewer.tree[:1])
            f["department"] = roots[0] if len(roots) == 1 else roots
        elif any(d not in viewer.tree for d in _values(f["department"])):
            raise ViewerError(403, "forbidden_department", "that department is outside the ones you head")
        others = [a for a in _values(f["agent"]) if a != viewer.user_id]
        if others:
            allowed = members(db, viewer.portal, viewer.tree) if db is not None else set()
            if any(a not in allowed for a in others):
                raise ViewerError(403, "forbidden_agent", "that agent is outside the departments you head")
        return Scoped(f, group_by, "tree")
    # agent
    if any(a != viewer.user_id for a in _values(f["agent"])):
        raise ViewerError(403, "forbidden_agent", "agents see only their own numbers")
    if any(d not in viewer.departments for d in _values(f["department"])):
        raise ViewerError(403, "forbidden_department", "agents see only their own department's totals")
    team = want == "team" or (f["department"] is not None and f["agent"] is None)
    if team:
        if f["agent"] is not None:
            raise ViewerError(400, "bad_request", "team totals take no agent filter")
        if not viewer.departments:
            raise ViewerError(403, "no_team", "you belong to no department")
        if group_by not in (None,) + TEAM_SAFE_DIMS:
            raise ViewerError(403, "forbidden_group", "team totals cannot be split by agent or department")
        f["department"] = f["department"] or viewer.departments[0]
        return Scoped(f, group_by, "team")
    f["agent"] = viewer.user_id
    return Scoped(f, group_by, "own")


def can_drill(viewer: Viewer, scoped: Scoped) -> bool:
    """Tickets behind a number: never a colleague's tickets for an agent (team totals only)."""
    return scoped.slice != "team"


def can_see_ticket(viewer: Viewer, ticket: Mapping, *, db=None, actors: Iterable[str] = ()) -> bool:
    """May the viewer open this ticket's card? Admins: any; heads: tickets of their tree's members;
    agents: tickets they are or were responsible for (``actors`` = every assignee from the log)."""
    if viewer.portal != ticket.get("portal"):
        return False
    if viewer.role == ADMIN:
        return True
    people = {str(x) for x in actors if x not in (None, "")}
    for k in ("responsible_id", "author_id"):
        if ticket.get(k) not in (None, ""):
            people.add(str(ticket[k]))
    if viewer.user_id in people:
        return True
    if viewer.role == HEAD and db is not None:
        return bool(people & members(db, viewer.portal, viewer.tree))
    return False


# --- launch verification ---------------------------------------------------------------------


@dataclass(frozen=True)
class Launch:
    """A verified placement launch."""

    viewer: Viewer
    placement: str  # DEFAULT, CRM_ANALYTICS_MENU, CRM_DEAL_DETAIL_TAB, ...
    options: dict  # PLACEMENT_OPTIONS, parsed
    installation: dict


def lang_of(value: str | None, default: str = "en") -> str:
    v = (value or "").strip().lower()[:2]
    if not v:
        return default if default in ("ru", "en") else "en"
    return "ru" if v in RU_LANGS else "en"


def parse_options(raw) -> dict:
    """PLACEMENT_OPTIONS is a JSON string; the portal may send "" or the literal "undefined"."""
    if isinstance(raw, dict):
        return raw
    if raw in (None, "", "undefined", "null"):
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        raise ViewerError(400, "bad_options", "PLACEMENT_OPTIONS is not JSON") from None
    return data if isinstance(data, dict) else {}


def _installation(db, member_id: str) -> dict | None:
    rows = list(db.query("select * from installations where member_id = ?", [member_id]))
    return rows[0] if rows else None


def _first(result):
    """``department.get`` answers a list; tolerate a dict keyed by index."""
    if isinstance(result, dict):
        return list(result.values())
    return list(result or [])


def verify_launch(
    db,
    query: Mapping,
    form: Mapping,
    *,
    call: Callable[[str, str, str, dict], object],
    portal_departments: Callable[[], list] | None = None,
) -> Launch:
    """Check a placement/app-page POST and work out the viewer, or raise ``ViewerError``.

    ``call(endpoint, access_token, method, params) -> result`` reaches the portal with the
    *viewer's* token (injected so tests and the web layer choose the client).
    """
    member_id = _ascii_field(form, "member_id", 64)
    app_token = _ascii_field(form, "APPLICATION_TOKEN")
    auth_id = _ascii_field(form, "AUTH_ID")
    if not member_id or not auth_id:
        raise ViewerError(400, "bad_launch", "launch without member_id or AUTH_ID: open the app from Bitrix24")
    inst = _installation(db, member_id)
    if inst is not None and not inst.get("epoch"):
        from .installations import ensure_epoch

        inst["epoch"] = ensure_epoch(db, member_id)
    if inst is None or not inst.get("client_endpoint"):
        raise ViewerError(403, "unknown_portal", "this portal has not installed the app")
    if inst.get("active") in (0, "0") or inst.get("status") == "uninstalled":
        raise ViewerError(403, "inactive", "the app is not installed on this portal any more")
    stored = inst.get("application_token") or ""
    if not stored or not hmac.compare_digest(str(app_token).encode(), str(stored).encode()):
        raise ViewerError(403, "bad_application_token", "APPLICATION_TOKEN does not match this portal")
    endpoint = inst["client_endpoint"]
    try:
        user = call(endpoint, auth_id, "user.current", {})
    except ViewerError:
        raise
    except Exception as exc:  # the portal refused the token, or could not be reached
        raise ViewerError(
            403, "portal_refused", f"the portal did not accept this launch ({type(exc).__name__})"
        ) from None
    if not isinstance(user, dict) or not user.get("ID"):
        raise ViewerError(403, "portal_refused", "the portal did not name the viewer")
    user_id = str(user["ID"])
    try:
        admin = call(endpoint, auth_id, "user.admin", {})
    except Exception:
        admin = False  # a portal without user.admin: least privilege
    admin = admin in (True, "true", "Y", 1, "1")
    departments = parse_ids(user.get("UF_DEPARTMENT"))
    headed: list[str] = []
    if not admin:
        try:
            rows = _first(call(endpoint, auth_id, "department.get", {"UF_HEAD": user_id}))
        except Exception:
            rows = []
        # The filter is documented; keep only rows that really name this user where UF_HEAD is given.
        headed = sorted(
            {
                str(r["ID"])
                for r in rows
                if isinstance(r, dict) and r.get("ID") is not None and str(r.get("UF_HEAD", user_id)) == user_id
            },
            key=_id_key,
        )
    tree: list[str] = []
    if headed:
        parents = department_parents(db, member_id)
        if not parents and portal_departments is not None:
            parents = {
                str(r["ID"]): (str(r["PARENT"]) if r.get("PARENT") not in (None, "", "0") else None)
                for r in portal_departments()
                if isinstance(r, dict) and r.get("ID") is not None
            }
        tree = subtree(parents, headed)
    name = " ".join(x for x in (user.get("NAME"), user.get("LAST_NAME")) if x) or f"#{user_id}"
    role = ADMIN if admin else HEAD if headed else AGENT
    viewer = Viewer(
        portal=member_id,
        user_id=user_id,
        role=role,
        name=name,
        departments=tuple(departments),
        headed=tuple(headed),
        tree=tuple(tree),
        domain=str(inst.get("domain") or ""),
        lang=lang_of(query.get("LANG"), inst.get("lang") or "en"),
        epoch=str(inst.get("epoch") or ""),
    )
    placement = (form.get("PLACEMENT") or "DEFAULT").strip() or "DEFAULT"
    return Launch(
        viewer=viewer, placement=placement, options=parse_options(form.get("PLACEMENT_OPTIONS")), installation=inst
    )


def with_lang(viewer: Viewer, lang: str | None) -> Viewer:
    return replace(viewer, lang=lang_of(lang, viewer.lang)) if lang else viewer
