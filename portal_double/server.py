"""The HTTP face of the double: Bitrix24's REST wire format (DOCS settings/how-to-call-rest-api/*.md,
limits.md, error-codes.md, local-integrations/local-webhooks.md, settings/oauth/*.md).

- ``/rest/{USER_ID}/{SECRET}/{method}[.json]``: inbound webhook;
  ``/rest/{method}`` with ``auth=<access_token>`` (query, form or JSON body): application (OAuth);
  ``/oauth/token/``: the OAuth server's token endpoint.
- Parameters: GET query and form bodies are read like PHP (``filter[>ID]=5``, ``select[]=ID``), JSON
  bodies as JSON; query and body are merged (PHP ``$_REQUEST``). Method names are case-insensitive.
- Success: ``{"result", "total"?, "next"?, "time"}``; errors: ``{"error", "error_description"}``
  with the documented HTTP status.
"""

from __future__ import annotations

import json
import re
import time
import traceback

from werkzeug.wrappers import Request, Response

from . import methods as _methods  # noqa: F401  (registers the handlers)
from . import openlines, push_methods, timefmt, viewer_methods  # noqa: F401  (other helpers' methods, STATUS.md)
from .phpquery import parse_query
from .query import ApiError
from .registry import METHODS, Call, Listed

BATCH_MAX = 50
_REF = re.compile(r"\$result\[([^\]]+)\]((?:\[[^\]]*\])*)")
_SCOPE_ALIASES = {"user": {"user", "user_brief", "user_basic"}, "task": {"task", "tasks"}}


def _json(body: dict, status: int = 200) -> Response:
    return Response(
        json.dumps(body, ensure_ascii=False, separators=(",", ":")),
        status=status,
        content_type="application/json; charset=utf-8",
    )


def _err(e: ApiError) -> Response:
    return _json(e.body(), e.status)


def _truthy(v) -> bool:
    return str(v).strip().lower() in ("1", "true", "y", "yes")


class WireApp:
    """WSGI application; one instance per PortalDouble."""

    def __init__(self, double):
        self.d = double

    def __call__(self, environ, start_response):
        request = Request(environ)
        try:
            response = self.dispatch(request)
        except ApiError as e:
            response = _err(e)
        except Exception:  # a bug in the double must still answer like a portal would
            traceback.print_exc()
            response = _json({"error": "INTERNAL_SERVER_ERROR", "error_description": "Internal server error"}, 500)
        return response(environ, start_response)

    # -- request parsing -----------------------------------------------------------------
    @staticmethod
    def params(request: Request) -> dict:
        params = parse_query(request.query_string) if request.query_string else {}
        data = request.get_data(cache=True)
        if data:
            ctype = (request.mimetype or "").lower()
            if ctype == "application/json" or (not ctype and data[:1] in (b"{", b"[")):
                try:
                    body = json.loads(data)
                except ValueError:
                    raise ApiError(400, "INVALID_REQUEST", "Invalid JSON in the request body")
                if isinstance(body, list):
                    body = {str(i): v for i, v in enumerate(body)}
                if not isinstance(body, dict):
                    raise ApiError(400, "INVALID_REQUEST", "The JSON body must be an object")
                params.update(body)
            elif ctype in ("application/x-www-form-urlencoded", "", "text/plain"):
                params.update(parse_query(data))
            elif ctype == "multipart/form-data":
                params.update(parse_query("&".join(f"{_q(k)}={_q(v)}" for k, vs in request.form.lists() for v in vs)))
        return params

    # -- dispatch ------------------------------------------------------------------------
    def dispatch(self, request: Request) -> Response:
        d = self.d
        path = request.path
        if path.rstrip("/") in ("/oauth/token",):
            return self.token_endpoint(request)
        if not path.startswith("/rest/"):
            from .frame import serve_page  # the portal's own pages (demo frame)

            page = serve_page(d, request)
            if page is not None:
                return page
            return _json({"error": "NOT_FOUND", "error_description": "Not found"}, 404)
        parts = [p for p in path[len("/rest/") :].split("/") if p != ""]
        d.stats.requests += 1
        fault = d.faults.take(None)
        if fault:
            d.stats.refused[fault.error] += 1
            return _json({"error": fault.error, "error_description": fault.description}, fault.status)
        if not d.bucket.hit():
            d.stats.refused["QUERY_LIMIT_EXCEEDED"] += 1
            return _json({"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"}, 503)
        if parts and parts[0] == "api":
            raise ApiError(404, "ERROR_METHOD_NOT_FOUND", "REST 3.0 is not simulated by the double")
        if len(parts) == 3 and parts[0].isdigit():
            auth_mode, method_name = "webhook", parts[2]
        elif len(parts) == 1:
            auth_mode, method_name = "oauth", parts[0]
        else:
            raise ApiError(404, "ERROR_METHOD_NOT_FOUND", "Method not found!")
        method_name = re.sub(r"\.(json|xml)$", "", method_name, flags=re.I).lower()
        params = self.params(request)
        if auth_mode == "webhook":
            wh = d.creds.webhooks.get((int(parts[0]), parts[1]))
            if wh is None:
                raise ApiError(401, "NO_AUTH_FOUND", "Wrong authorization data")
            user_id, scopes, cred_key = wh.user_id, wh.scopes, ("webhook", wh.secret)
        else:
            token = params.pop("auth", None)
            if not token:
                raise ApiError(401, "NO_AUTH_FOUND", "Wrong authorization data")
            tok, problem = d.creds.check_access(str(token))
            if tok is None:
                desc = {
                    "expired_token": "The access token provided has expired.",
                    "invalid_token": "The access token provided is invalid.",
                }[problem]
                raise ApiError(401, problem, desc)
            user_id, scopes, cred_key = tok.user_id, tok.scopes, ("app", d.creds.client_id)
        params.pop("auth", None)
        call = Call(d.portal, user_id, auth_mode, d)
        started = time.time()
        with d.portal.lock:
            if method_name == "batch":
                d.stats.by_method["batch"] += 1
                result = self.batch(call, params, scopes, cred_key)
                return _json({"result": result, "time": self.time_block(started, 0.0)})
            value, op = self.call_method(call, method_name, params, scopes, cred_key)
        body = {"result": value.result if isinstance(value, Listed) else value}
        if isinstance(value, Listed):
            if value.total is not None:
                body["total"] = value.total
            if value.next is not None:
                body["next"] = value.next
        body["time"] = self.time_block(started, *op)
        return _json(body)

    def call_method(self, call: Call, name: str, params: dict, scopes, cred_key):
        """Run one method with every check of the real portal; returns (value, (cost, operating, reset))."""
        d = self.d
        d.stats.by_method[name] += 1
        d.stats.log.append((name, params))
        m = METHODS.get(name)
        if name == "batch":
            raise ApiError(405, "ERROR_BATCH_METHOD_NOT_ALLOWED", "Method is not allowed for batch usage")
        if m is None:
            raise ApiError(404, "ERROR_METHOD_NOT_FOUND", "Method not found!")
        if m.app_only and call.auth == "webhook":
            raise ApiError(403, "WRONG_AUTH_TYPE", "Current authorization type is denied for this method")
        if m.scope != "basic" and not (_SCOPE_ALIASES.get(m.scope, {m.scope}) & set(scopes)):
            raise ApiError(
                403, "insufficient_scope", "The request requires higher privileges than provided by the access token"
            )
        fault = d.faults.take(name)
        if fault:
            d.stats.refused[fault.error] += 1
            raise ApiError(fault.status, fault.error, fault.description)
        key = (cred_key, name)
        allowed, _, reset_at = d.operating.check(key)
        if not allowed:
            d.stats.refused["OPERATION_TIME_LIMIT"] += 1
            raise ApiError(429, "OPERATION_TIME_LIMIT", "Method is blocked due to operation time limit.")
        t0 = time.perf_counter()
        try:
            value = m.handler(call, params)
        finally:
            cost = d.call_cost + m.cost + (time.perf_counter() - t0)
            operating, reset_at = d.operating.add(key, cost)
        bad, malformed = d.faults.take_malformed(name)
        if bad:
            value = malformed
        return value, (cost, operating, reset_at)

    def time_block(
        self, started: float, cost: float = 0.0, operating: float | None = None, reset_at: int | None = None
    ) -> dict:
        p = self.d.portal
        finish = time.time()
        start = p.now + (started % 1)
        dur = (finish - started) + cost
        block = {
            "start": start,
            "finish": start + dur,
            "duration": dur,
            "processing": dur,
            "date_start": timefmt.iso(int(start), p.tz),
            "date_finish": timefmt.iso(int(start + dur), p.tz),
        }
        if operating is not None:
            block["operating_reset_at"] = reset_at
            block["operating"] = operating
        return block

    # -- batch (DOCS settings/how-to-call-rest-api/batch.md) --------------------------------
    def batch(self, call: Call, params: dict, scopes, cred_key) -> dict:
        cmd = params.get("cmd")
        if cmd is None:
            cmd = {}
        if isinstance(cmd, list):
            cmd = {str(i): v for i, v in enumerate(cmd)}
        if not isinstance(cmd, dict):
            raise ApiError(400, "ERROR_ARGUMENT", "cmd must be an array of commands")
        halt = _truthy(params.get("halt", 0))
        res, errs, totals, nexts, times = {}, {}, {}, {}, {}
        done: dict = {}
        for n, (key, spec) in enumerate(cmd.items()):
            if n >= BATCH_MAX:
                # overflow commands fail one by one (DOCS batch.md note on ERROR_BATCH_LENGTH_EXCEEDED)
                errs[key] = {"error": "ERROR_BATCH_LENGTH_EXCEEDED", "error_description": "Max batch length exceeded"}
                continue
            started = time.time()
            try:
                if isinstance(spec, dict):  # SDK form {method, params}
                    mname = str(spec.get("method", ""))
                    sub = _resolve(spec.get("params") or {}, done)
                else:
                    mname, _, qs = str(spec).partition("?")
                    sub = _resolve(parse_query(qs), done)
                mname = re.sub(r"\.(json|xml)$", "", mname.strip(), flags=re.I).lower()
                sub.pop("auth", None)
                value, op = self.call_method(call, mname, sub, scopes, cred_key)
            except ApiError as e:
                errs[key] = {"error": e.error, "error_description": e.description}
                if halt:
                    break
                continue
            result = value.result if isinstance(value, Listed) else value
            res[key] = result
            done[key] = result
            if isinstance(value, Listed):
                if value.total is not None:
                    totals[key] = value.total
                if value.next is not None:
                    nexts[key] = value.next
            times[key] = self.time_block(started, *op)
        # empty sections are PHP empty arrays: [] (DOCS batch.md)
        return {
            "result": res or [],
            "result_error": errs or [],
            "result_total": totals or [],
            "result_next": nexts or [],
            "result_time": times or [],
        }

    # -- OAuth server (DOCS settings/oauth/auto-renewal.md, error-codes.md) ---------------------
    def token_endpoint(self, request: Request) -> Response:
        d = self.d
        params = parse_query(request.query_string) if request.query_string else {}
        if request.get_data():
            try:
                params.update(self.params(request))
            except ApiError:
                pass
        d.stats.by_method["oauth.token"] += 1
        grant = params.get("grant_type")
        if grant != "refresh_token":
            return _json({"error": "invalid_request", "error_description": "Unsupported grant_type"}, 400)
        if params.get("client_id") != d.creds.client_id or params.get("client_secret") != d.creds.client_secret:
            return _json({"error": "invalid_client", "error_description": "Invalid client credentials"}, 401)
        # Like oauth.bitrix.info: it knows only the refresh tokens it issued, for the portals it
        # serves, and its answer names the portal (member_id, client_endpoint, user_id).
        refresh = str(params.get("refresh_token", ""))
        for portal in d.oauth_portals:
            if refresh not in portal.creds.refresh:
                continue
            if portal.creds.revoked:  # the app was uninstalled there
                return _json({"error": "invalid_client", "error_description": "Application not installed"}, 401)
            pair = portal.creds.rotate(refresh)
            if pair is None:
                break
            access, new_refresh, expires, scopes = pair
            return _json(
                portal.token_payload(
                    access, new_refresh, expires, scopes, portal.creds.access[access].user_id, oauth_domain=True
                )
            )
        return _json({"error": "invalid_grant", "error_description": "Invalid refresh token"}, 400)


def _q(s: str) -> str:
    from urllib.parse import quote

    return quote(s, safe="")


def _lookup(done: dict, key: str, path: str):
    if key not in done:
        return None
    node = done[key]
    for seg in re.findall(r"\[([^\]]*)\]", path):
        if isinstance(node, list):
            try:
                node = node[int(seg)]
            except (ValueError, IndexError):
                return None
        elif isinstance(node, dict):
            if seg in node:
                node = node[seg]
            else:
                return None
        else:
            return None
    return node


def _resolve(value, done: dict):
    """Replace ``$result[key][path]`` references with earlier results. A missing path becomes an
    empty string, as PHP's substitution leaves it."""
    if isinstance(value, dict):
        return {k: _resolve(v, done) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, done) for v in value]
    if not isinstance(value, str) or "$result[" not in value:
        return value
    whole = _REF.fullmatch(value)
    if whole:
        got = _lookup(done, whole.group(1), whole.group(2))
        if isinstance(got, (dict, list)):
            return got
        return "" if got is None else _scalar(got)
    return _REF.sub(lambda m: _scalar(_lookup(done, m.group(1), m.group(2))), value)


def _scalar(v) -> str:
    if v is None:
        return ""
    if v is True:
        return "1"
    if v is False:
        return ""
    if isinstance(v, (dict, list)):
        return json.dumps(v)
    return str(v)
