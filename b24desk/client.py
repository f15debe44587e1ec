"""The Bitrix24 REST client: webhook or installed-app OAuth, over ``requests``.

fast-bitrix24 is the project's named client, but its ``Bitrix`` wrapper returns an
``asyncio.Task`` instead of the result when a loop is running, its ``token_func`` must be
``async`` and is re-awaited forever on a bad token, 429 is not handled, and its ``get_all``
pages with ``start=N`` (a COUNT on every page). The measurements behind replacing it for the
transport are in ``bench/client_compare.py`` and the README's design notes. This module covers,
per the official docs (bitrix24/b24restdocs):

* keyset paging (``start=-1``, ``>ID``, ``order ID ASC``; ``settings/performance/huge-data.md``)
  chained 50 pages per ``batch`` through ``$result[...]`` references
  (``settings/how-to-call-rest-api/batch.md``): about one HTTP request per 2,500 rows;
* a client-side leaky bucket shared by every client of one portal (``limits.md``: X=50, Y=2/s);
* 503 / 5xx / connection errors: bounded exponential backoff with jitter;
* 429 ``OPERATION_TIME_LIMIT``: that method alone waits until ``time.operating_reset_at``;
* 401 ``expired_token``: one refresh under a thread + process lock, the rotated pair persisted
  atomically (``installations.refresh``), one retry (``settings/oauth/auto-renewal.md``);
* 302 (portal renamed): re-POST to ``Location`` (``settings/how-to-call-rest-api/change-domen.md``);
* quiet logs that never carry a token, a webhook secret or a client secret.
"""

from __future__ import annotations

import logging
import random
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator
from urllib.parse import quote_plus, urljoin, urlsplit

import requests

from . import installations
from .batching import LIMIT_CODES, MAX_BATCH, call_mixed
from .errors import AuthError, B24Error, B24Unavailable, ShapeError, brief, mask  # noqa: F401  (raised to and caught by callers)

log = logging.getLogger(__name__)
logging.getLogger("fast_bitrix24").setLevel(logging.WARNING)

PAGE = 50  # rows per list page, fixed by the portal (list-methods-pecularities.md)
USER_AGENT = "b24desk/1.0"

_AUTH_CODES = {
    "EXPIRED_TOKEN",
    "INVALID_TOKEN",
    "NO_AUTH_FOUND",
    "METHOD_CONFIRM_WAITING",
    "PAYMENT_REQUIRED",
    "APPLICATION_NOT_FOUND",
    "ERROR_OAUTH",
    "AUTHORIZATION_ERROR",
    "INVALID_GRANT",
    "INVALID_CLIENT",
}
_RETRY_CODES = {"QUERY_LIMIT_EXCEEDED", "INTERNAL_SERVER_ERROR", "ERROR_UNEXPECTED_ANSWER"}
_REDIRECTS = (301, 302, 303, 307, 308)


class _RedactFilter(logging.Filter):
    """urllib3 logs request lines with the URL (webhook secret, OAuth query): mask them."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken record is not ours to fix
            return True
        masked = mask(message)
        if masked != message:
            record.msg, record.args = masked, ()
        return True


for _name in ("urllib3.connectionpool", "urllib3.util.retry", "urllib3.connection", "requests"):
    _lg = logging.getLogger(_name)
    if not any(isinstance(f, _RedactFilter) for f in _lg.filters):
        _lg.addFilter(_RedactFilter())


# --- PHP-style parameter encoding (batch cmd strings) ----------------------------------------

_REFERENCE = re.compile(r"^\$result(?:_error|_total|_next|_time)?\[[^\]]+\](\[[^\]]*\])*$")


def _scalar(value: Any) -> str:
    if value is None:
        return ""
    if value is True:
        return "1"  # what PHP's http_build_query writes
    if value is False:
        return "0"
    if isinstance(value, bytes):
        return value.decode("utf-8")
    text = str(value)
    # A batch reference stays readable (the docs' JSON example sends it as is; PHP's parse_str
    # reads both forms); anything else is fully encoded.
    return text if _REFERENCE.match(text) else quote_plus(text, safe="")


def encode_params(params: Any, prefix: str | None = None) -> str:
    """``{"filter": {">ID": 5}, "select": ["ID"]}`` -> ``filter[%3EID]=5&select[0]=ID``.

    Nested dicts and lists become ``a[b][0]=…`` as PHP's ``http_build_query`` writes them
    (batch.md: "URL-encode the request data"); an empty list or dict is sent as ``key[]=``, the
    official Python SDK's choice (some methods need skipped params as empty arrays).
    """
    if isinstance(params, dict):
        items = params.items()
    elif isinstance(params, (list, tuple)):
        items = enumerate(params)
    else:
        if prefix is None:
            raise TypeError("params must be a dict or a list")
        return f"{prefix}={_scalar(params)}"
    if prefix is not None and not params:
        return f"{prefix}[]="
    parts = []
    for key, value in items:
        k = quote_plus(str(key), safe="")
        full = k if prefix is None else f"{prefix}[{k}]"
        parts.append(
            encode_params(value, full) if isinstance(value, (dict, list, tuple)) else f"{full}={_scalar(value)}"
        )
    return "&".join(p for p in parts if p)


# --- the shared limiter: leaky bucket + per-method pauses -------------------------------------

INTERACTIVE_HEADROOM = 5  # burst slots background traffic leaves for interactive requests


class _Limiter:
    """One per portal address, shared by every client and thread talking to it.

    The bucket is GCRA (a leaky bucket of ``burst`` requests draining at ``rps``): a caller
    reserves its slot under the lock and sleeps outside it. ``blocked`` holds, per method, the
    ``operating_reset_at`` after a 429, so only that method waits.
    """

    def __init__(self, rps: float, burst: int, clock: Callable[[], float]):
        self.lock = threading.Lock()
        self.interval = 1.0 / rps if rps > 0 else 0.0
        self.tolerance = max(0, burst - 1) * self.interval
        # slots of the burst background traffic leaves free: 5 of the portals' 50, none of a tiny burst
        self.headroom = min(INTERACTIVE_HEADROOM, burst // 10) * self.interval
        self.clock = clock
        self.tat = 0.0
        self.blocked: dict[str, float] = {}
        self.reset_at: dict[str, float] = {}

    def reserve(self, interactive: bool = False) -> float:
        """Take a slot; returns how long to wait before sending.

        Background traffic (syncs, the worker) leaves ``headroom`` slots of the burst
        unused, so a person's request (a launch's verification, a settings lookup) finds room in the
        portal's budget at once -- also when the sync runs in another process, whose limiter this
        one does not see: the portal's own bucket then never fills from background traffic."""
        if not self.interval:
            return 0.0
        with self.lock:
            now = self.clock()
            tat = max(self.tat, now)
            allowance = self.tolerance
            if not interactive:
                allowance = max(0.0, self.tolerance - self.headroom)
            wait = max(0.0, tat - now - allowance)
            self.tat = tat + self.interval
            return wait

    def drain(self) -> None:
        """The portal said 503 QUERY_LIMIT_EXCEEDED: treat our bucket as full."""
        with self.lock:
            self.tat = max(self.tat, self.clock() + self.tolerance + self.interval)

    def note_time(self, method: str, t: Any) -> None:
        if isinstance(t, dict) and t.get("operating_reset_at"):
            try:
                self.reset_at[method.lower()] = float(t["operating_reset_at"])
            except (TypeError, ValueError):
                pass

    def block(self, method: str, until: float) -> None:
        with self.lock:
            m = method.lower()
            self.blocked[m] = max(self.blocked.get(m, 0.0), until)

    def pending(self, methods, now: float) -> tuple[str, float] | None:
        """The longest pause among ``methods`` still in force, or None."""
        with self.lock:
            worst = None
            for m in {x.lower() for x in methods}:
                until = self.blocked.get(m)
                if until is None:
                    continue
                if until <= now:
                    self.blocked.pop(m, None)
                elif worst is None or until > worst[1]:
                    worst = (m, until)
            return worst

    def unblock(self, method: str, until: float) -> None:
        with self.lock:
            if self.blocked.get(method) == until:
                self.blocked.pop(method, None)


_limiters: dict[tuple, _Limiter] = {}
_limiters_guard = threading.Lock()


def _shared_limiter(key: str, rps: float, burst: int, clock) -> _Limiter:
    with _limiters_guard:
        return _limiters.setdefault((key, rps, burst, clock), _Limiter(rps, burst, clock))


# --- results ----------------------------------------------------------------------------------


@dataclass
class BatchResult:
    """One ``batch`` answer, split by command name (empty sections come back as ``[]``: normalized)."""

    results: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, B24Error] = field(default_factory=dict)
    totals: dict[str, int] = field(default_factory=dict)
    nexts: dict[str, int] = field(default_factory=dict)
    times: dict[str, dict] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)

    def raise_for_errors(self) -> None:
        for name in self.order:
            if name in self.errors:
                raise self.errors[name]


def _as_map(section: Any, names: list[str]) -> dict:
    """PHP turns an empty map into ``[]`` and a map with keys 0..n-1 into a list."""
    if isinstance(section, dict):
        return {str(k): v for k, v in section.items()}
    if isinstance(section, list):
        return {str(i): v for i, v in enumerate(section)}
    return {}


def _rows(result: Any, items_key: str | None, method: str) -> tuple[list, str | None]:
    """The rows of a list answer and the key that wraps them (``tasks``, ``items``) if any. An
    answer of another shape (``null``, a scalar, a map without the list) raises ``ShapeError``:
    it is never read as an empty page."""
    if items_key is None and (result == [] or result == {}):
        return [], items_key
    if isinstance(result, list) and items_key is None:
        return result, None
    if isinstance(result, dict):
        if items_key is not None:
            rows = result.get(items_key)
            if not isinstance(rows, (list, dict)):
                raise ShapeError(method, f"expected a list under {items_key!r}, got {brief(result)}")
            return (list(rows.values()) if isinstance(rows, dict) else list(rows)), items_key
        lists = [k for k, v in result.items() if isinstance(v, list)]
        if len(lists) == 1:
            return result[lists[0]], lists[0]
        if result and all(str(k).isdigit() and isinstance(v, dict) for k, v in result.items()):
            return list(result.values()), None
    raise ShapeError(method, f"expected a list, got {brief(result)}")


def _id_sort_key(value: Any):
    text = str(value)
    return (0, int(text), "") if text.lstrip("-").isdigit() else (1, 0, text)


# --- the client -------------------------------------------------------------------------------


class B24Client:
    """Calls one portal, through an inbound webhook or an installed app's OAuth tokens.

    Thread-safe: share one client between threads (each thread gets its own HTTP session);
    the rate limiter is shared by every client of the same portal address anyway.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        is_webhook: bool,
        portal_id: str,
        access_token: str | None = None,
        expires_at: int | None = None,
        store=None,
        client_id: str | None = None,
        client_secret: str | None = None,
        oauth_url: str | None = None,
        rps: float = 2.0,
        burst: int = 50,
        max_retries: int = 8,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        max_limit_pauses: int = 5,
        max_pause: float = 660.0,
        default_pause: float = 60.0,
        timeout: float = 60,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], float] = time.time,
        clock: Callable[[], float] = time.monotonic,
        share_limiter: bool = True,
        interactive: bool = False,
    ):
        self._base = endpoint if endpoint.endswith("/") else endpoint + "/"
        self.is_webhook = is_webhook
        self.portal_id = portal_id
        self._access_token = access_token
        self._expires_at = expires_at
        self._store, self._client_id, self._client_secret = store, client_id, client_secret
        self._oauth_url = oauth_url
        self.max_retries, self.backoff_base, self.backoff_cap = max_retries, backoff_base, backoff_cap
        self.max_limit_pauses, self.max_pause, self.default_pause = max_limit_pauses, max_pause, default_pause
        self.timeout = timeout
        self._sleep, self._now, self._clock = sleep, now, clock
        self._session = session
        self._local = threading.local()
        self._state = threading.Lock()
        self.requests_sent = 0
        self.refreshes = 0
        self.interactive = interactive  # a person waits: ahead of background traffic (_Limiter.reserve)
        key = urlsplit(self._base).netloc.lower()
        self._limiter = _shared_limiter(key, rps, burst, clock) if share_limiter else _Limiter(rps, burst, clock)

    # -- construction --

    @classmethod
    def from_webhook(cls, url: str, **opts) -> "B24Client":
        """``https://PORTAL/rest/USER_ID/SECRET/`` (local-integrations/local-webhooks.md).

        ``portal_id`` is the URL's host (with its port, if any): a webhook carries no member_id.
        """
        if not isinstance(url, str) or not url.strip():
            raise ValueError("the webhook URL is empty")
        url = url.strip()
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("the webhook URL must look like https://PORTAL/rest/USER_ID/SECRET/")
        m = re.match(r"^(.*?/rest/\d+/[^/]+)(?:/.*)?$", parts.path)
        if not m:
            raise ValueError(f"the webhook URL must look like https://PORTAL/rest/USER_ID/SECRET/ (got {mask(url)})")
        endpoint = f"{parts.scheme}://{parts.netloc}{m.group(1)}/"
        return cls(endpoint, is_webhook=True, portal_id=parts.netloc.lower(), **opts)

    @classmethod
    def from_access_token(cls, endpoint: str, access_token: str, **opts) -> "B24Client":
        """A client for one bare OAuth access token, e.g. the ``AUTH_ID`` of a placement launch
        (DOCS settings/oauth/simple-way.md): it acts as the viewing user and never refreshes
        (no store), so a rejected or expired token raises ``AuthError``."""
        if (
            not isinstance(endpoint, str)
            or urlsplit(endpoint).scheme not in ("http", "https")
            or not urlsplit(endpoint).netloc
        ):
            raise ValueError("the endpoint must look like https://PORTAL/rest/")
        if not access_token:
            raise ValueError("the access token is empty")
        opts.setdefault("portal_id", urlsplit(endpoint).netloc.lower())
        return cls(endpoint, is_webhook=False, access_token=access_token, **opts)

    @classmethod
    def from_installation(
        cls,
        db_path_or_factory,
        member_id: str,
        client_id: str | None,
        client_secret: str | None,
        oauth_url: str | None = None,
        **opts,
    ) -> "B24Client":
        """The installed app's client for ``member_id``, tokens read from (and rotated in) the store."""
        with installations.open_store(db_path_or_factory) as db:
            inst = installations.get_installation(db, member_id)
        if inst is None:
            raise AuthError(None, "NO_INSTALLATION", f"no installation for member_id {member_id!r}")
        if inst.get("active") == 0:
            raise AuthError(None, "NOT_INSTALLED", f"the app was uninstalled from {member_id!r}")
        endpoint = inst.get("client_endpoint") or (f"https://{inst['domain']}/rest/" if inst.get("domain") else None)
        if not endpoint:
            raise AuthError(None, "NO_ENDPOINT", f"installation {member_id!r} has no client_endpoint")
        if not inst.get("access_token") and not inst.get("refresh_token"):
            raise AuthError(None, "NO_TOKENS", f"installation {member_id!r} has no tokens; reinstall the app")
        return cls(
            endpoint,
            is_webhook=False,
            portal_id=str(member_id),
            access_token=inst.get("access_token"),
            expires_at=inst.get("expires_at"),
            store=db_path_or_factory,
            client_id=client_id,
            client_secret=client_secret,
            oauth_url=oauth_url,
            **opts,
        )

    def close(self) -> None:
        s = getattr(self._local, "session", None)
        if s is not None and self._session is None:
            s.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self) -> str:
        kind = "webhook" if self.is_webhook else "app"
        return f"<B24Client {kind} {self.portal_id}>"

    # -- plumbing --

    def _http(self) -> requests.Session:
        if self._session is not None:
            return self._session
        s = getattr(self._local, "session", None)
        if s is None:
            s = self._local.session = requests.Session()
            s.headers.update({"Accept": "application/json", "User-Agent": USER_AGENT})
        return s

    def _count(self) -> None:
        with self._state:
            self.requests_sent += 1

    def _backoff(self, method: str, attempt: int, status: int | None, code: str, why: str) -> None:
        if attempt > self.max_retries:
            raise B24Unavailable(status, code, f"gave up after {self.max_retries} retries ({why})", method)
        delay = min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1))
        delay = delay / 2 + random.random() * delay / 2
        log.warning("%s: %s, retry %d/%d in %.1fs", method, why, attempt, self.max_retries, delay)
        self._sleep(delay)

    def _pause_until(self, method: str, body: Any) -> float:
        """When the 429'd ``method`` may run again: the answer's ``operating_reset_at``, else the
        last one seen for that method, else ``default_pause`` from now (capped by ``max_pause``)."""
        now = self._now()
        until = None
        t = body.get("time") if isinstance(body, dict) else None
        if isinstance(t, dict) and t.get("operating_reset_at"):
            try:
                until = float(t["operating_reset_at"])
            except (TypeError, ValueError):
                until = None
        if until is None or until <= now:
            known = self._limiter.reset_at.get(method.lower())
            until = known if known and known > now else now + self.default_pause
        return min(until, now + self.max_pause)

    def _wait_turn(self, methods) -> None:
        """Wait out a 429 pause of any of ``methods``, then our slot in the leaky bucket."""
        pending = self._limiter.pending(methods, self._now())
        if pending:
            m, until = pending
            wait = until - self._now()
            log.info("%s paused %.0fs by OPERATION_TIME_LIMIT", m, wait)
            self._sleep(wait)
            self._limiter.unblock(m, until)
        wait = self._limiter.reserve(self.interactive)
        if wait > 0:
            self._sleep(wait)

    def _ensure_fresh(self) -> None:
        if self._expires_at and self._now() >= int(self._expires_at) - installations.EXPIRY_MARGIN:
            self._refresh(self._access_token)

    def _refresh(self, stale: str | None) -> None:
        if self._store is None:
            raise AuthError(None, "NO_STORE", "this client cannot refresh tokens")
        inst = installations.refresh(
            self._store,
            self.portal_id,
            self._client_id,
            self._client_secret,
            self._oauth_url,
            session=self._session,
            stale_access_token=stale,
            sleep=self._sleep,
        )
        with self._state:
            self.refreshes += 1
            self._access_token = inst.get("access_token")
            self._expires_at = inst.get("expires_at")
            if inst.get("client_endpoint"):
                ep = inst["client_endpoint"]
                self._base = ep if ep.endswith("/") else ep + "/"

    def _move_to(self, location: str, method: str) -> None:
        """The portal moved (302): call the new address from now on and remember it."""
        parts = urlsplit(location)
        path = parts.path
        low = path.lower()
        for suffix in (method.lower() + ".json", method.lower()):
            if low.endswith("/" + suffix):
                path = path[: -len(suffix)]
                break
        else:
            path = urlsplit(self._base).path
        new_base = f"{parts.scheme}://{parts.netloc}{path}"
        with self._state:
            self._base = new_base
        log.info("portal moved; now calling %s", mask(new_base))
        if not self.is_webhook and self._store is not None:
            with installations.open_store(self._store) as db:
                installations.save_installation(
                    db, member_id=self.portal_id, client_endpoint=new_base, domain=parts.netloc
                )

    def _request(self, method: str, payload: dict, block_methods=None) -> dict:
        """POST one call (JSON body, ``auth`` inside for OAuth) and return the decoded body."""
        block_methods = tuple(block_methods or (method,))
        retries = pauses = redirects = 0
        refreshed = False
        while True:
            if not self.is_webhook:
                self._ensure_fresh()
            self._wait_turn(block_methods)
            token = self._access_token
            url = self._base + method
            body = dict(payload)
            if not self.is_webhook:
                body["auth"] = token
            self._count()
            started = self._clock()
            try:
                resp = self._http().post(
                    url,
                    json=body,
                    timeout=self.timeout,
                    allow_redirects=False,
                    headers={"Accept": "application/json", "User-Agent": USER_AGENT},
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                retries += 1
                self._backoff(method, retries, None, "CONNECTION_ERROR", type(exc).__name__)
                continue
            status = resp.status_code
            log.debug("%s -> %s in %.2fs", method, status, self._clock() - started)
            if status in _REDIRECTS:
                redirects += 1
                location = resp.headers.get("Location")
                if not location or redirects > 5:
                    raise B24Error(status, "BAD_REDIRECT", "redirect without Location, or a loop", method)
                self._move_to(urljoin(url, location), method)
                continue
            try:
                data = resp.json()
            except ValueError:
                data = None
            is_error = isinstance(data, dict) and "error" in data and ("result" not in data or status >= 400)
            if status < 300 and isinstance(data, dict) and not is_error:
                self._limiter.note_time(method, data.get("time"))
                return data
            code = str(data["error"]) if is_error and data.get("error") not in (None, "") else f"HTTP_{status}"
            desc = str(data.get("error_description") or "") if isinstance(data, dict) else ""
            ucode = code.upper()
            if status == 429 or ucode == "OPERATION_TIME_LIMIT":
                pauses += 1
                if pauses > self.max_limit_pauses:
                    raise B24Error(status, code, desc or "operating time limit persists", method)
                until = self._pause_until(method, data)
                self._limiter.block(method, until)
                log.warning("%s: OPERATION_TIME_LIMIT, method paused until %d", method, until)
                continue
            if status >= 500 or ucode in _RETRY_CODES:
                if status == 503 or ucode == "QUERY_LIMIT_EXCEEDED":
                    self._limiter.drain()
                retries += 1
                self._backoff(method, retries, status, code, f"{code} (HTTP {status})")
                continue
            if status == 401 or ucode in _AUTH_CODES:
                if not self.is_webhook and self._store is not None and ucode == "EXPIRED_TOKEN" and not refreshed:
                    refreshed = True
                    log.info("%s: access token expired, refreshing", method)
                    self._refresh(token)
                    continue
                raise AuthError(status, code, desc, method)
            if status < 300 and data is None:
                raise B24Error(status, "INVALID_RESPONSE", "the portal answered with no JSON", method)
            raise B24Error(status, code, desc, method)

    # -- public calls --

    def call_raw(self, method: str, params: dict | None = None) -> dict:
        """One REST call; the whole body (``result``, ``total``, ``next``, ``time``)."""
        if not method or not isinstance(method, str):
            raise ValueError("method must be a non-empty string")
        if params is not None and not isinstance(params, dict):
            raise TypeError("params must be a dict")
        return self._request(method, dict(params or {}))

    def call(self, method: str, params: dict | None = None) -> Any:
        """One REST call; its ``result``."""
        return self.call_raw(method, params).get("result")

    def batch(self, cmds: dict, halt: bool = False) -> BatchResult:
        """Up to 50 ``name: (method, params)`` commands in one request (batch.md).

        Params may reference earlier results: ``{"ID": "$result[first][0][ID]"}``.
        """
        if not cmds:
            return BatchResult()
        if len(cmds) > MAX_BATCH:
            raise ValueError(f"a batch takes at most {MAX_BATCH} commands, got {len(cmds)}")
        encoded, methods = {}, {}
        for name, spec in cmds.items():
            method, params = (spec, None) if isinstance(spec, str) else spec
            if not isinstance(method, str) or not method:
                raise ValueError(f"command {name!r}: method must be a non-empty string")
            if method.lower() == "batch":
                raise ValueError("batch cannot be nested (ERROR_BATCH_METHOD_NOT_ALLOWED)")
            query = encode_params(params) if params else ""
            encoded[str(name)] = f"{method}?{query}" if query else method
            methods[str(name)] = method
        data = self._request("batch", {"halt": 1 if halt else 0, "cmd": encoded}, block_methods=set(methods.values()))
        return self._parse_batch(data, methods)

    def _parse_batch(self, data: dict, methods: dict[str, str]) -> BatchResult:
        names = list(methods)
        if not isinstance(data.get("result"), dict):
            raise ShapeError("batch", f"expected {{result: {{result: ...}}}}, got {brief(data.get('result'))}")
        inner = data["result"]
        out = BatchResult(order=names)
        out.results = _as_map(inner.get("result"), names)
        out.totals = _as_map(inner.get("result_total"), names)
        out.nexts = _as_map(inner.get("result_next"), names)
        out.times = _as_map(inner.get("result_time"), names)
        for name, err in _as_map(inner.get("result_error"), names).items():
            if isinstance(err, dict):
                code, desc = str(err.get("error") or "ERROR"), str(err.get("error_description") or "")
            else:
                code, desc = "ERROR", str(err)
            cls = AuthError if code.upper() in _AUTH_CODES else B24Error
            out.errors[name] = cls(None, code, desc, methods.get(name))
        for name, t in out.times.items():
            if name in methods:
                self._limiter.note_time(methods[name], t)
        return out

    def _handle_nested_limit(self, err: B24Error, attempt: int) -> None:
        """A command inside a batch hit a limit: pause that method (429) or back off (503)."""
        if err.code.upper() == "OPERATION_TIME_LIMIT":
            if attempt > self.max_limit_pauses:
                raise err
            until = self._pause_until(err.method or "", None)
            self._limiter.block(err.method or "", until)
            log.warning("%s: OPERATION_TIME_LIMIT inside batch, method paused", err.method)
        else:
            self._limiter.drain()
            self._backoff(err.method or "batch", attempt, 503, err.code, err.code)

    def call_many(self, method: str, params_list) -> list:
        """One ``method`` call per params, 50 to a batch; results in input order.

        Commands that hit a rate or operating-time limit are re-sent after the pause
        (``batching.call_mixed``); any other error raises (its description says which input it was).
        """
        params_list = list(params_list)
        results: list[Any] = []
        for start in range(0, len(params_list), MAX_BATCH):
            calls = [(method, p) for p in params_list[start : start + MAX_BATCH]]
            for i, a in enumerate(call_mixed(self, calls, max_limit_retries=None, transient_retries=0), start):
                if a.error is not None:
                    err = a.error
                    raise type(err)(err.status, err.code, f"{err.description} (input #{i})".strip(), err.method)
                results.append(a.result)
        return results

    def list_all(
        self,
        method: str,
        params: dict | None = None,
        *,
        id_field: str = "ID",
        items_key: str | None = None,
        page_size: int = PAGE,
    ) -> Iterator[dict]:
        """Every row of a list method, lazily, by keyset paging (huge-data.md).

        ``start=-1`` (no COUNT), ``order {id_field: ASC}``, ``filter {">id_field": last}``; after
        a first plain page, 50 pages are chained per batch through
        ``$result[pN][items_key][49][id]``, so N rows cost about ceil(N/2500)+1 requests. Stops at
        the first short page. ``id_field`` is the name in filter/order (``ID``; ``id`` for
        crm.item.list); the rows' own key is found case-insensitively (tasks.task.list answers
        ``id``). A ``>id_field`` already in the filter is the starting point (resume).
        Any ``order`` given is replaced by the ID order. Known cost: in the last batch the
        commands after the short page still run with an unresolved (empty) reference, up to 49
        cheap ``start=-1`` queries that are discarded (b24pysdk's ``as_list_fast`` does the same).
        """
        base = dict(params or {})
        flt = dict(base.get("filter") or {})
        gt = f">{id_field}"
        last_id = flt.pop(gt, None)
        select = base.get("select")
        if (
            isinstance(select, (list, tuple))
            and select
            and "*" not in select
            and not any(str(s).upper() == id_field.upper() for s in select)
        ):
            base["select"] = [*select, id_field]
        base["order"] = {id_field: "ASC"}
        base["start"] = -1

        def page_params(after) -> dict:
            p = dict(base)
            f = dict(flt)
            if after is not None:
                f[gt] = after
            p["filter"] = f
            return p

        body = self.call_raw(method, page_params(last_id))
        rows, items_key = _rows(body.get("result"), items_key, method)
        row_id = None
        if rows:
            row_id = next((k for k in rows[0] if str(k).upper() == id_field.upper()), None)
            if row_id is None:
                raise B24Error(None, "NO_ID_FIELD", f"rows carry no {id_field!r} field", method)
        yield from rows
        if len(rows) < page_size:
            return
        last_id = self._advance(method, last_id, rows, row_id)
        limit_attempt = 0
        while True:
            cmds = {}
            for i in range(MAX_BATCH):
                if i == 0:
                    after = last_id
                else:
                    ref = f"$result[p{i - 1}]" + (f"[{items_key}]" if items_key else "")
                    after = f"{ref}[{page_size - 1}][{row_id}]"
                cmds[f"p{i}"] = (method, page_params(after))
            res = self.batch(cmds, halt=True)
            for i in range(MAX_BATCH):
                name = f"p{i}"
                err = res.errors.get(name)
                if err is not None:
                    if err.code.upper() not in LIMIT_CODES:
                        raise err
                    limit_attempt += 1
                    self._handle_nested_limit(err, limit_attempt)
                    break  # resume after last_id: the pages so far are kept
                if name not in res.results:
                    raise B24Error(None, "BATCH_INCOMPLETE", f"no result for command {name}", method)
                rows, _ = _rows(res.results[name], items_key, method)
                if rows and row_id not in rows[0]:
                    raise B24Error(None, "NO_ID_FIELD", f"rows carry no {row_id!r} field", method)
                yield from rows
                if len(rows) < page_size:
                    return
                last_id = self._advance(method, last_id, rows, row_id)
            else:
                limit_attempt = 0

    @staticmethod
    def _advance(method: str, last_id, rows: list, row_id: str):
        """The next keyset position; refuses to go backwards (a broken chain would loop)."""
        first, new = rows[0].get(row_id), rows[-1].get(row_id)
        if new is None:
            raise B24Error(None, "NO_ID_FIELD", f"a row carries no {row_id!r} field", method)
        if last_id is not None and not str(last_id).startswith("$") and _id_sort_key(first) <= _id_sort_key(last_id):
            raise B24Error(
                None, "KEYSET_BROKEN", f"page starts at {first} after {last_id}: is the order by ID honoured?", method
            )
        return new

    def list_paged(
        self, method: str, params: dict | None = None, *, items_key: str | None = None, page_size: int = PAGE
    ) -> Iterator[dict]:
        """Every row by ``start=N`` paging, for methods without an ID keyset.

        The first page gives ``total``; the remaining offsets go 50 to a batch. Offset paging
        sees rows shift if the set changes meanwhile: prefer ``list_all`` where it applies.
        """
        base = dict(params or {})
        base.pop("start", None)
        body = self.call_raw(method, {**base, "start": 0})
        rows, items_key = _rows(body.get("result"), items_key, method)
        yield from rows
        try:
            total = int(body.get("total") or 0)
        except (TypeError, ValueError):
            total = 0
        if len(rows) < page_size or total <= len(rows):
            return
        offsets = list(range(page_size, total, page_size))
        for chunk_start in range(0, len(offsets), MAX_BATCH):
            chunk = offsets[chunk_start : chunk_start + MAX_BATCH]
            pages = self.call_many(method, [{**base, "start": off} for off in chunk])
            for page in pages:
                rows, _ = _rows(page, items_key, method)
                yield from rows
