"""What a saved report costs beside ``GET /api/kpi`` for the same query (the baseline), on the
benchmark store of bench/pages.py (100k tickets over two years by default).

    python bench/saved_reports.py [--tickets 100000] [--runs 5] [--db PATH] [--keep]

Times, through the real Flask app (test client, no network), for a per-agent report and a
weekday breakdown of the last full month: ``/api/kpi`` uncached (baseline), ``/api/reports/<id>/data``
uncached and warm, the report page uncached (the report, plus the problem-zone tests and best
agents: one more load and replay) and warm, and the long-term view (24 months beside the year
before, one replay per month over that month's tickets).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_store import admin_viewer, prepare_store, remove_store  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tickets", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--db", help="store to build or reuse")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args(argv)

    from b24desk.viewer import dump_token
    from reports import data
    from web.factory import create_app

    path, tmp = prepare_store(args.db, args.tickets, "b24desk-bench-saved-")
    admin_v = admin_viewer(path)

    app = create_app({"DB": str(path), "SECRET_KEY": "bench", "TESTING": True})
    client = app.test_client()
    tok = dump_token("bench", admin_v)
    auth = {"Authorization": f"Bearer {tok}"}
    kpis = ["tickets_total", "first_response_time", "resolution_time", "fcr_share"]
    period = {"from": "2026-10-01", "to": "2026-11-01"}

    def report(group_by):
        r = client.post(
            "/api/reports",
            headers=auth,
            json={"name": f"bench {group_by}", "kpis": kpis, "group_by": group_by, "period": period},
        )
        assert r.status_code == 201, r.get_data(as_text=True)
        return r.get_json()["id"]

    def timed(url, headers, clear):
        out = []
        for _ in range(args.runs):
            if clear:
                data.MEMO.clear()
            t0 = time.perf_counter()
            r = client.get(url, headers=headers)
            out.append((time.perf_counter() - t0) * 1000)
            if r.status_code != 200:
                raise SystemExit(f"{url}: HTTP {r.status_code}")
        return statistics.median(out), max(out)

    print(f"store: {args.tickets} tickets; period 2026-10; {args.runs} runs per case (median / max ms)")
    print(f"{'case':44} {'median':>9} {'max':>9}")
    for gb in ("agent", "weekday"):
        rid = report(gb)
        q = f"from=2026-10-01&to=2026-11-01&group_by={gb}"
        rows = [
            (f"/api/kpi group_by={gb} (baseline, uncached)", f"/api/kpi?{q}", auth, True),
            (f"/api/reports/<id>/data {gb}, uncached", f"/api/reports/{rid}/data", auth, True),
            (f"/api/reports/<id>/data {gb}, warm", f"/api/reports/{rid}/data", auth, False),
            (f"report page {gb}, uncached", f"/reports/saved/{rid}?t={tok}", {}, True),
            (f"report page {gb}, warm", f"/reports/saved/{rid}?t={tok}", {}, False),
        ]
        if gb == "agent":
            rows.append(
                (
                    "long-term view, 24 months + year before, uncached",
                    f"/reports/saved/{rid}?t={tok}&long=first_response_time&months=24",
                    {},
                    True,
                )
            )
        for name, url, headers, clear in rows:
            med, mx = timed(url, headers, clear)
            print(f"{name:44} {med:9.1f} {mx:9.1f}")
    remove_store(tmp, args.keep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
