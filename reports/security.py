"""Security headers for pages that live in the portal's frame.

No ``X-Frame-Options`` (it would block the portal's frame); instead CSP ``frame-ancestors`` names
the viewer's portal origin, taken from the *stored* installation (its ``client_endpoint`` and
``domain``), never from the request. Scripts and styles come from this app only (plus BX24's own
script when the page really runs in a portal), so a ticket title can never become code.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import current_app, g, request

from b24desk.installations import get_installation

BX24_JS = "https://api.bitrix24.com/api/v1/"
LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")
OUR_PATHS = ("/reports/", "/api/")


def portal_origins(installation: dict | None) -> list[str]:
    """Origins the portal's pages are served from: the stored endpoint's, and https://domain."""
    if not installation:
        return []
    out = []
    ep = urlsplit(installation.get("client_endpoint") or "")
    if ep.scheme in ("http", "https") and ep.netloc:
        out.append(f"{ep.scheme}://{ep.netloc}")
    domain = (installation.get("domain") or "").strip().strip("/")
    if domain and "/" not in domain and " " not in domain and ";" not in domain:
        # portals are https; a loopback portal (the double) speaks its endpoint's scheme
        host = domain.rsplit(":", 1)[0] if domain.count(":") == 1 else domain
        scheme = ep.scheme if host in LOOPBACK and ep.scheme in ("http", "https") else "https"
        origin = f"{scheme}://{domain}"
        if origin not in out:
            out.append(origin)
    return out


def is_real_portal(installation: dict | None) -> bool:
    """BX24's script is loaded only for a portal on the internet, never for the local double."""
    host = urlsplit((installation or {}).get("client_endpoint") or "").hostname or ""
    return bool(host) and host not in LOOPBACK and not host.endswith(".localhost")


def bx24_script(installation: dict | None) -> str | None:
    configured = current_app.config.get("BX24_JS_URL")
    if configured is not None:  # "" turns it off; a URL forces it (tests, mirrors)
        return configured or None
    return BX24_JS if is_real_portal(installation) else None


def frame_installation(db) -> dict | None:
    """The installation whose portal may frame this response: the viewer's, else the launch's."""
    viewer = g.get("viewer")
    member_id = viewer.portal if viewer is not None else None
    if member_id is None and request.method == "POST" and request.path.rstrip("/") == "/app":
        member_id = (request.form.get("member_id") or "").strip() or None
    if not member_id:
        return None
    if g.get("frame_installation", {}).get("member_id") == member_id:
        return g.frame_installation
    try:
        return get_installation(db, member_id)
    except Exception:
        return None


def apply_headers(response, db_getter):
    if not (request.path.startswith(OUR_PATHS) or request.path.rstrip("/") == "/app"):
        return response
    inst = None
    try:
        inst = frame_installation(db_getter())
    except Exception:
        inst = None
    ancestors = " ".join(portal_origins(inst)) or "'none'"
    script = "'self'"
    bx = bx24_script(inst)
    if bx:
        u = urlsplit(bx)
        script += f" {u.scheme or 'https'}://{u.netloc}"
    response.headers["Content-Security-Policy"] = (
        f"default-src 'self'; script-src {script}; style-src 'self'; img-src 'self' data:; "
        f"connect-src 'self'; font-src 'self' data:; object-src 'none'; base-uri 'none'; "
        f"form-action 'self'; frame-ancestors {ancestors}"
    )
    response.headers.pop("X-Frame-Options", None)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"  # tokens ride in URLs: never leak them
    if not request.path.startswith("/reports/static/"):
        response.headers["Cache-Control"] = "no-store"
    return response
