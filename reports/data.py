"""Every number a page, the API or an export shows, fetched from the KPI engine and memoized.

The engine (``b24desk.kpi``: ``ReportPass`` / ``build_report`` and its per-ticket replay
``drilldown.Replay``) does all KPI maths; this module only chooses the calls (scoped by the
viewer's role before it is reached) and caches their results (reports/cache.py): exact for
``/api/kpi`` and exports, stale-while-revalidate for the dashboard and its drilldown. A page's
reports and charts of one query come from one engine pass (:func:`page`).
"""

from __future__ import annotations

import gc
import json
import time
import weakref

from flask import current_app, g

from b24desk.kpi import cells as cells_mod
from b24desk.kpi.drilldown import Replay
from b24desk.kpi.formats import render, to_xlsx
from b24desk.kpi.load import load_people
from b24desk.kpi.now import now_items
from b24desk.kpi.report import CELL_GROUPS, ReportPass, cells_fit, paused_gc, report_settings
from b24desk.overrides import effective_config
from b24desk.store import VALUE_COLUMNS, distinct_values, journal_changes, journal_state, open_db

from .blueprint import config
from .cache import Memo, Pool
from .query import Query, weeks

MEMO = Memo()
# Engine passes kept for the exact reports (``/api/kpi``, exports): after a write, the next one
# re-reads only the tickets written (ReportPass.refresh) instead of the whole period. Two at most,
# and at most 300,000 tickets held in all (a kept pass holds its tickets: about 190 MiB for the
# 87k tickets of a month and its previous one at 1M); a bigger pass (a long period of a big
# portal) is not kept. The tickets a pass's settled cells stand for count too (their tallies hold
# a few values each; kpi/cells.py).
PASS_TICKETS = 300_000


def _weight(kept) -> int:
    loaded = kept[0].loaded
    return len(loaded.tickets) + sum(c.tally.n for c in loaded.cells)


PASSES = Pool(2, max_weight=PASS_TICKETS, weight=_weight)


def _db_path() -> str:
    return str(current_app.config["DB"])


def _own_db(path: str, fn):
    """``fn(db)`` on a connection of its own: a background recompute outlives the request's."""

    def run():
        db = open_db(path, migrate=False)
        try:
            return fn(db)
        finally:
            db.conn.close()

    return run


def _get(key, fn, *, exact: bool = False, scope=None, figures: bool = True, ttl: float | None = None):
    """The memo's answer; a stale figure is noted on ``g`` (the page says so, a header tells tests).
    Lists around the figures (``figures=False``: people, filter options) may lag a recompute
    silently, so a settings change, which makes every entry stale, shows no "refreshing" note."""
    path = _db_path()
    served = MEMO.lookup(path, key, _own_db(path, fn), exact=exact, scope=scope, ttl=ttl)
    if served.stale and figures:
        g.analytics_stale = max(getattr(g, "analytics_stale", 0.0), served.age)
    return served.value


def stale_age() -> float | None:
    """Seconds since the oldest stale figure of this request was known current; None if all fresh."""
    return getattr(g, "analytics_stale", None)


def with_stale_header(response):
    """``X-B24desk-Stale: <seconds>`` on a response built from stale figures (reports/cache.py)."""
    from flask import make_response

    response = make_response(response)
    age = stale_age()
    if age is not None:
        response.headers["X-B24desk-Stale"] = f"{age:.0f}"
    return response


def scope(portal: str, q: Query, cfg: dict) -> tuple | None:
    """What a report of ``q`` can depend on (reports/cache.py): the portal, and ticket lives that
    meet ``[previous from - repeat window, to)`` (the loader's window), a day wider on each side
    so that no time zone can narrow it. None when the period does not parse (no keeping)."""
    from b24desk.kpi.periods import make_period, zone

    try:
        p = make_period(q.date_from, q.date_to, zone(q.tz))
        prev = p.previous()
        if getattr(q, "compare", None):  # "last_year": the compared period is a year back
            from b24desk.kpi.presets import compare_period

            a, _b = compare_period(p.local(p.start), p.local(p.end), q.compare, p.tz)
            prev = make_period(a, p.start, p.tz)
        window = int(cfg.get("repeat_window_days", 30)) * 86400
    except Exception:  # anything odd: no scope, the store version alone decides
        return None
    return (portal, min(prev.start, p.start) - window - 86400, p.end + 86400)


def whole(portal: str) -> tuple:
    """The scope of what depends on the whole portal (people, filter options): kept while the
    change journal has no row for the portal, so writes that change no figure (the engine keeping
    per-ticket facts, b24desk/kpi/derived.py) leave it current."""
    return (portal, -(2**63), 2**63 - 1)


def portal_config(db, portal: str) -> dict:
    return effective_config(db, portal, config())


def _inputs(db, portal: str) -> tuple[dict, tuple]:
    """The effective config, and what a memo key must hold besides the query: the config and every
    other setting the engine reads (targets, CCEI inputs, time zone...), since a write makes a page's
    entry only *stale* (served once more) while a changed key makes it fresh at once."""
    cfg = portal_config(db, portal)
    return cfg, (cfg, report_settings(db, portal))


def engine_filters(filters: dict) -> dict:
    return {k: v for k, v in filters.items() if v not in (None, "", [])}


def report(db, portal: str, q: Query, filters: dict, group_by: str | None = None, *, exact: bool = False) -> dict:
    """``build_report`` for the query (the same call ``flask kpi`` makes), memoized: shared
    between requests, so callers treat it as read-only."""
    cfg, settings = _inputs(db, portal)
    key = ("report", portal, q.date_from, q.date_to, q.compare, engine_filters(filters), group_by, settings)
    sc, pk = scope(portal, q, cfg), _pass_key(portal, q, _sources_of(engine_filters(filters)), settings)
    return _get(key, lambda own: _kept_report(own, pk, sc, portal, q, filters, cfg, group_by), exact=exact, scope=sc)


def _sources_of(filters: dict) -> dict:
    """The part of ``filters`` a kept pass is made with (the sources: SQL reads only those); the
    rest narrows it (ReportPass.narrow)."""
    return {"source": filters["source"]} if filters.get("source") not in (None, "", []) else {}


def _pass_key(portal: str, q: Query, filters: dict, settings) -> tuple:
    """What an engine pass depends on: the store, the query but its ``group_by``, the settings. A
    pass that read settled cells (kpi/cells.py) serves totals and agent and department groups
    only: it is kept under this key and ``"cells"`` (``_pass``)."""
    what = [portal, q.date_from, q.date_to, q.compare, engine_filters(filters), settings]
    return (_db_path(), json.dumps(what, sort_keys=True, default=str))


def _with_cells(filters: dict, *group_bys) -> bool:
    """Whether a query's pass reads settled cells: its filters and groups are what a cell can
    tell (its source, its responsible and their department)."""
    return cells_fit(filters) and all(g in CELL_GROUPS for g in group_bys)


def _kept_report(own, pk, sc, portal: str, q: Query, filters: dict, cfg: dict, group_by) -> dict:
    """``build_report``'s answer, from the kept engine pass of the query's sources when there is
    one, narrowed to the other filters (the pass a dashboard of the same period uses too)."""
    mine = engine_filters(filters)
    sources = _sources_of(mine)
    cells = _with_cells(mine, group_by)  # what a pass that read cells can answer
    with paused_gc():
        rp, seq, pk = _pass(
            own,
            pk,
            sc,
            cells,
            lambda: ReportPass(
                own,
                portal,
                q.date_from,
                q.date_to,
                filters=sources,
                config=cfg,
                compare=q.compare,
                keep_keys=True,
                cells=cells,
            ),
        )
        out = rp.narrow(mine).report(group_by)
        if seq is not None:
            _keep(pk, rp, seq)  # before the GC is back (_keep)
    return out


def _keep(pk, rp, seq) -> None:
    """Keep the pass (PASSES). A newly made one is then moved out of the cyclic GC's sight
    (``gc.freeze``): it holds about 90,000 facts objects at 1M tickets, and a full collection
    walking them paused a request for 230 ms instead of 100 ms. A pass has no reference cycles, so
    reference counting still frees it when it is dropped; ``unfreeze`` first hands back to the GC
    whatever the previous freeze held that died since."""
    if PASSES.put(pk, (rp, seq)) and rp not in _FROZEN:  # a refreshed pass was frozen when made
        _FROZEN.add(rp)
        gc.unfreeze()
        gc.freeze()


_FROZEN: weakref.WeakSet = weakref.WeakSet()

# (store path, portal) -> how many cells builds kept new cells (reports/warm.py calls
# ``cells_built``), and each kept pass -> that count when it was made: a pass that read no cells
# though its query could, made before cells of its window were kept, is made anew once (_pass)
_CELL_BUILDS: dict = {}
_MADE_AT: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def cells_built(path, portal: str) -> None:
    """A cells build kept new cells of ``portal`` in the store at ``path``."""
    key = (str(path), portal)
    _CELL_BUILDS[key] = _CELL_BUILDS.get(key, 0) + 1


def _pass(own, pk, sc, cells: bool, new):
    """``(pass, journal position, key)``: the kept pass of ``pk`` (or, when the caller can use one
    that read settled cells, first of ``pk`` and ``"cells"``) brought up to date when the change
    journal names the tickets written since it was made (ReportPass.refresh), else ``new()``; the
    position is None when the store has no journal (the pass is then not kept); the key is the one
    to keep it under (with ``"cells"`` when it read some). A kept pass that read no cells, made
    before the warmer last kept some where its window now has valid ones, is made anew instead:
    refreshed, it would read every ticket of its periods until evicted (the warmer warms the
    dashboard first and builds the cells after)."""
    builds = _CELL_BUILDS.get((pk[0], sc[0]), 0) if sc is not None else 0
    for key in (pk + ("cells",), pk) if cells else (pk,):
        got = PASSES.take(key)
        if got is not None and sc is not None:
            rp, seq = got
            if cells and not rp.loaded.cells and _MADE_AT.get(rp, builds) < builds:
                _MADE_AT[rp] = builds  # asked once per build
                if cells_mod.any_valid(own.conn, sc[0], rp.ctx, rp.prev.start, rp.period.end):
                    continue  # dropped: made anew below, reading the cells
            changes = journal_changes(own.conn, sc[0], seq, sc[1], sc[2])
            if changes is not None and changes[1] is not None and rp.refresh(own, changes[1]):
                return rp, changes[0], key
    state = journal_state(own.conn) if sc is not None else None  # before the read: conservative
    rp = new()
    rp.slim()
    _MADE_AT[rp] = builds
    return rp, (state[0] if state else None), (pk + ("cells",) if rp.loaded.cells else pk)


def rendered(db, portal: str, q: Query, filters: dict, group_by: str | None, fmt: str, lang: str | None = None):
    """The report in ``flask kpi``'s ``--format`` (json, csv, xlsx): always exact, like the command.
    ``lang`` lays CSV and XLSX out for a reader of that language (headers, separators, sheet names)."""
    cfg, settings = _inputs(db, portal)
    key = (
        "rendered",
        fmt,
        lang,
        portal,
        q.date_from,
        q.date_to,
        q.compare,
        engine_filters(filters),
        group_by,
        settings,
    )

    sc, pk = scope(portal, q, cfg), _pass_key(portal, q, _sources_of(engine_filters(filters)), settings)

    def compute(own):
        if fmt != "xlsx":
            return render(_kept_report(own, pk, sc, portal, q, filters, cfg, group_by), fmt, lang=lang)
        with paused_gc():  # xlsx adds the weekly trend rows, from the same engine pass
            rp = ReportPass(
                own, portal, q.date_from, q.date_to, filters=engine_filters(filters), config=cfg, compare=q.compare
            )
            series = Replay.of_pass(rp).series(weeks(rp.period.start, rp.period.end, rp.env.tz_name))
            return to_xlsx(rp.report(group_by), series, lang=lang)

    return _get(key, compute, exact=True, scope=sc)


def page(
    db,
    portal: str,
    q: Query,
    filters: dict,
    group_bys: tuple,
    *,
    team: dict | None = None,
    exact: bool = False,
    group_kpis: tuple | None = None,
) -> dict:
    """What a dashboard shows for one query, from one engine pass: ``{"reports": {group_by:
    report}, "charts": {series, tz, frt, resolution}}`` (weekly series and the FRT / resolution
    per-ticket durations come from the same replay as the report). The groups carry this period's
    values only (``previous`` null): the page's group tables show no comparison. With ``team``
    (an agent's team filters), also ``"team"``: the team's report. With ``group_kpis`` the groups
    hold those KPIs only (the columns of the page's tables; ReportPass.report).

    The pass is the kept pass of the query's sources (PASSES, shared with ``/api/kpi``: after a
    write it re-reads only the tickets written, ReportPass.refresh), narrowed to the viewer's
    filters and to their team's (ReportPass.narrow); when the team selects other sources, two
    passes of their own."""
    cfg, settings = _inputs(db, portal)
    group_bys = tuple(group_bys)
    group_kpis = tuple(group_kpis) if group_kpis is not None else None
    mine = engine_filters(filters)
    theirs = engine_filters(team) if team is not None else None
    sc = scope(portal, q, cfg)
    sources = _sources_of(mine)
    # the settled cells stand for most of the period's tickets when the viewer's and their team's
    # filters are what a cell can tell (kpi/cells.py)
    cells = _with_cells(mine, *group_bys) and (theirs is None or cells_fit(theirs))
    pk = _pass_key(portal, q, sources, settings)  # here: a background recompute has no app context

    def compute(own):
        with paused_gc():
            out, kept = {}, None
            if theirs is None or _sources_of(theirs) == sources:
                base, seq, key = _pass(
                    own,
                    pk,
                    sc,
                    cells,
                    lambda: ReportPass(
                        own, portal, q.date_from, q.date_to, filters=sources, config=cfg, compare=q.compare,
                        keep_keys=True, cells=cells,
                    ),
                )  # fmt: skip
                kept = (key, base, seq)
                rp = base.narrow(mine)
                if theirs is not None:
                    out["team"] = base.narrow(theirs).report(None)
            else:
                rp = ReportPass(own, portal, q.date_from, q.date_to, filters=mine, config=cfg, compare=q.compare)
                out["team"] = ReportPass(
                    own, portal, q.date_from, q.date_to, filters=theirs, env=rp.env, compare=q.compare
                ).report(None)
            # the page's group tables show this period's values only (dashboard._group_table)
            reports = {gb: rp.report(gb, group_previous=False, group_kpis=group_kpis) for gb in group_bys}
            replay = Replay.of_pass(rp)
            bounds = weeks(rp.period.start, rp.period.end, rp.env.tz_name)
            charts = {
                "series": replay.series(bounds),
                "tz": rp.env.tz_name,
                "frt": sorted(replay.durations("first_response_time")),
                "resolution": sorted(replay.durations("resolution_time")),
            }
            if kept is not None and kept[2] is not None:
                _keep(*kept)  # before the GC is back (_keep)
        return dict(out, reports=reports, charts=charts)

    key = ("page", portal, q.date_from, q.date_to, q.compare, mine, group_bys, theirs, settings, group_kpis)
    return _get(key, compute, exact=exact, scope=sc)


def members(db, portal: str, q: Query, filters: dict, kpi: str) -> list[dict]:
    cfg, settings = _inputs(db, portal)

    def compute(own):
        with paused_gc():
            rp = Replay(own, portal, q.date_from, q.date_to, filters=engine_filters(filters), config=cfg)
            return rp.members(kpi)

    key = ("members", portal, q.date_from, q.date_to, engine_filters(filters), kpi, settings)
    return _get(key, compute, scope=scope(portal, q, cfg))


def people(db, portal: str) -> tuple[dict, dict]:
    """Users (id -> {label, departments}) and departments (id -> {name, parent}), memoized."""
    return _get(("people", portal), lambda own: load_people(own, portal), figures=False, scope=whole(portal))


DISTINCT_COLUMNS = VALUE_COLUMNS


def distinct(db, portal: str, column: str) -> list[str]:
    """The values of a ticket column the filters offer; the four columns come from one scan,
    memoized as one entry (one background recompute after a write, not four)."""
    assert column in DISTINCT_COLUMNS

    def compute(own):
        out = {c: set() for c in DISTINCT_COLUMNS}
        for row in distinct_values(own.conn, portal):
            for c, v in zip(DISTINCT_COLUMNS, row):
                if v not in (None, ""):
                    out[c].add(str(v))
        return {c: sorted(v) for c, v in out.items()}

    return _get(("distinct", portal), compute, figures=False, scope=whole(portal))[column]


def _by_key(db, portal: str, keys: list[tuple[str, str]], columns: str) -> list:
    """``source, source_id, <columns>`` of the tickets named by ``(source, source_id)`` keys, in one
    query (the keys travel as one JSON parameter, however many there are)."""
    import json

    if not keys:
        return []
    return db.execute(
        f"select t.source, t.source_id, {columns} from json_each(?) j join tickets t"
        " on t.portal = ? and t.source = j.value ->> 0 and t.source_id = j.value ->> 1",
        [json.dumps([list(k) for k in keys]), portal],
    ).fetchall()


def tickets_by_key(db, portal: str, keys: list[tuple[str, str]]) -> dict:
    """Title and portal path of tickets, for drilldown rows (one query)."""
    rows = _by_key(db, portal, keys, "t.title, t.url, t.responsible_id")
    return {(r[0], r[1]): {"title": r[2], "url": r[3], "responsible_id": r[4]} for r in rows}


def _now_lookup(db, portal: str, filters: dict, now: int | None):
    cfg = portal_config(db, portal)

    def compute(own):
        t = int(time.time()) if now is None else now
        with paused_gc():
            return now_items(own, portal, engine_filters(filters), cfg, t - t % 60)

    path = _db_path()
    key = ("now", portal, engine_filters(filters), cfg)
    return lambda: MEMO.lookup(path, key, _own_db(path, compute), ttl=60, versioned=False).value


def now_state(db, portal: str, filters: dict, now: int | None = None) -> dict:
    """The "now" panel: tickets open at this moment, replayed by the engine as of now (so the
    effective deadline, own or the SLA target's, and the first reply are what the KPIs use),
    split into the panel's items. Only the open tickets and their events are read (no period
    load, no customer history). Memoized for a minute whatever the store's writes (the inbox
    writes on every portal event), then recomputed in the background while the old value is
    served: ``{"items": {item: [ticket rows]}, "now": ts}``; the panel says the time it shows."""
    return _now_lookup(db, portal, filters, now)()


def closed_at(db, portal: str, keys: list[tuple[str, str]]) -> dict:
    """``closed_at`` of tickets (the drilldown's "how long it took" for counted tickets)."""
    rows = _by_key(db, portal, keys, "t.closed_at")
    return {(r[0], r[1]): r[2] for r in rows}
