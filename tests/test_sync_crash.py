"""``python -m b24desk.sync`` killed with SIGKILL at random points, then re-run, gives exactly the
store a clean sync gives (tickets, events, snapshot hashes, cursors; observation times aside).

The double serves from a thread of this process over real HTTP; the sync runs as a subprocess.
Kill points are chosen by watching the store grow (so they land mid-sync whatever the machine's
speed) plus a random delay (so some land mid-transaction).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from b24desk.client import B24Client
from b24desk.store import open_db
from b24desk.sync import run_sync
from portal_double import PortalDouble
from portal_double.truth import SOURCE_CONFIG

ROOT = Path(__file__).resolve().parent.parent
SELECTORS = ["tasks", "deals:category=3", "crm:1038"]


def write_config(path: Path) -> Path:
    """The truth's source mapping as a b24desk.toml (``[[sources]]`` tables, interfaces.md)."""
    lines = []
    for src in SOURCE_CONFIG:
        lines.append("[[sources]]")
        for k, v in src.items():
            if isinstance(v, dict):
                inner = ", ".join(f'"{a}" = "{b}"' for a, b in v.items())
                lines.append(f"{k} = {{ {inner} }}")
            elif isinstance(v, list):
                lines.append(f"{k} = [{', '.join(repr(x).replace(chr(39), chr(34)) for x in v)}]")
            else:
                lines.append(f'{k} = "{v}"')
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def dump(db_path) -> dict:
    """Everything a sync decides, without the times we observed it at."""
    con = sqlite3.connect(db_path)
    con.row_factory = sqlite3.Row
    try:
        tickets = sorted(
            tuple(v for k, v in dict(r).items() if k != "synced_at") for r in con.execute("select * from tickets")
        )
        events = sorted(tuple(r) for r in con.execute("select * from events"))
        snaps = sorted(tuple(r) for r in con.execute("select portal, source, source_id, hash, data from snapshots"))
        cursors = sorted(tuple(r) for r in con.execute("select portal, selector, name, value from cursors"))
        settings = sorted(
            tuple(r)
            for r in con.execute(
                "select portal, key, value from settings where key not in ('directory_synced_at', 'clock_skew')"
            )
        )
        users = sorted(tuple(r) for r in con.execute("select * from users"))
    finally:
        con.close()
    return {
        "tickets": tickets,
        "events": events,
        "snapshots": snaps,
        "cursors": cursors,
        "settings": settings,
        "users": users,
    }


def count_tickets(db_path) -> int:
    try:
        con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=1)
        try:
            return con.execute("select count(*) from tickets").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def run_cli(url, db_path, env) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "b24desk.sync", "--webhook", url, "--db", str(db_path), "--quiet", "--rps", "1000"]
    for s in SELECTORS:
        cmd += ["--source", s]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def kill_at(proc: subprocess.Popen, db_path, rng: random.Random, target: int) -> str:
    """SIGKILL once the store holds ``target`` tickets (then a random few ms more), or at exit."""
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if count_tickets(db_path) >= target:
            time.sleep(rng.random() * 0.03)
            break
        time.sleep(0.005)
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        return "killed"
    proc.communicate(timeout=30)
    return "finished"


@pytest.mark.slow
def test_sigkill_at_random_points_then_rerun_equals_a_clean_sync(tmp_path):
    rng = random.Random(20261123)
    env = {**os.environ, "B24DESK_CONFIG": str(write_config(tmp_path / "b24desk.toml")), "PYTHONPATH": str(ROOT)}
    env.pop("B24DESK_WEBHOOK", None)
    config = {"sources": SOURCE_CONFIG}
    with PortalDouble(seed=29, tickets=1600, drain_per_s=1e6) as d:
        killed_db, clean_db = tmp_path / "killed.db", tmp_path / "clean.db"
        truth = d.truth  # a snapshot: computed once
        total = sum(
            1
            for t in truth.tickets
            if t["source"] != "crm:2" or truth.extra[(t["source"], t["source_id"])]["category"] == 3
        )

        # full sync: killed at growing store sizes, each re-run resumes where the last one died
        outcomes = []
        for target in sorted(rng.sample(range(0, total), 5)):
            outcomes.append(kill_at(run_cli(d.webhook_url, killed_db, env), killed_db, rng, target))
        assert "killed" in outcomes
        final = run_cli(d.webhook_url, killed_db, env)
        out, err = final.communicate(timeout=300)
        assert final.returncode == 0, err.decode()

        clean = open_db(clean_db)
        run_sync(B24Client.from_webhook(d.webhook_url, rps=1e6, share_limiter=False), clean, SELECTORS, config)
        clean.conn.close()
        a, b = dump(killed_db), dump(clean_db)
        assert len(a["tickets"]) == total
        for part in a:
            assert a[part] == b[part], part

        # incremental: the same after changes, against an uninterrupted incremental on a copy
        shutil.copy(clean_db, tmp_path / "clean2.db")
        truth = d.truth
        p = d.portal
        d.advance(3600)
        for t in rng.sample([t for t in truth.select("task") if t["state"] == "open"], 20):
            p.update_task(int(t["source_id"]), status=5)
            p.add_task_comment(int(t["source_id"]), int(t["author_id"]), "thanks")
        for t in rng.sample([t for t in truth.select("crm:2", category=3) if t["state"] == "open"], 10):
            p.reassign_item(2, int(t["source_id"]), d.desk.agents[0])
            p.add_activity(2, int(t["source_id"]), kind="email", direction=2)
        p.delete_task(int(truth.select("task")[0]["source_id"]))
        d.advance(60)
        for _ in range(3):
            proc = run_cli(d.webhook_url, killed_db, env)
            time.sleep(rng.random() * 0.6)
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        final = run_cli(d.webhook_url, killed_db, env)
        out, err = final.communicate(timeout=300)
        assert final.returncode == 0, err.decode()
        clean = open_db(tmp_path / "clean2.db")
        run_sync(B24Client.from_webhook(d.webhook_url, rps=1e6, share_limiter=False), clean, SELECTORS, config)
        clean.conn.close()
        a, b = dump(killed_db), dump(tmp_path / "clean2.db")
        for part in a:
            assert a[part] == b[part], part
