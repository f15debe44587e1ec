"""``flask kpi``: formats, portal choice and clear errors (shared/spec/interfaces.md)."""

from __future__ import annotations

import csv
import io
import json

import openpyxl
from kpi_support import add_ticket
from test_kpi_examples import seed

from b24desk.store import open_db

ARGS = ["kpi", "--from", "2026-10-01", "--to", "2026-11-01"]


def store(db_path, *extra_portals):
    db = open_db(db_path)
    seed(db)
    for p in extra_portals:
        add_ticket(db, 99, "2026-10-05 10:00", "c1", "10", portal=p)
    db.conn.close()
    return db_path


def test_json_is_the_report(runner, db_path):
    store(db_path)
    res = runner.invoke(args=ARGS + ["--db", db_path])
    assert res.exit_code == 0, res.output
    r = json.loads(res.output)
    assert r["schema"] == "b24desk.kpi/1" and r["portal"] == "p1"  # the only portal: no --portal needed
    assert r["kpis"]["tickets_total"]["value"] == 3


def test_iso_datetimes_with_offset_and_filters(runner, db_path):
    store(db_path)
    res = runner.invoke(
        args=[
            "kpi",
            "--db",
            db_path,
            "--from",
            "2026-09-30T21:00:00Z",
            "--to",
            "2026-11-01T00:00:00+03:00",
            "--priority",
            "high",
            "--source",
            "tasks",
        ]
    )
    assert res.exit_code == 0, res.output
    r = json.loads(res.output)
    assert r["period"]["from"] == "2026-10-01T00:00:00+03:00"
    assert r["filters"]["priority"] == "high" and r["filters"]["source"] == "tasks"
    assert r["kpis"]["tickets_total"]["value"] == 1


def test_table_shows_traffic_lights(runner, db_path):
    store(db_path)
    res = runner.invoke(args=ARGS + ["--db", db_path, "--format", "table", "--group-by", "agent"])
    assert res.exit_code == 0, res.output
    assert "Общее количество заявок" in res.output and "● grey" in res.output
    assert "By agent" in res.output and "\033[" not in res.output  # no colour codes when not a terminal


def test_csv_rows_per_kpi_and_per_group(runner, db_path):
    store(db_path)
    res = runner.invoke(args=ARGS + ["--db", db_path, "--format", "csv", "--group-by", "priority"])
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(io.StringIO(res.output)))
    totals = {r["kpi"]: r for r in rows if r["group"] == ""}
    assert totals["tickets_total"]["value"] == "3"
    assert totals["first_response_time"]["median"] == "300"
    high = {r["kpi"]: r for r in rows if r["group"] == "high"}
    assert high["tickets_total"]["value"] == "1"


def test_xlsx_has_summary_and_groups_with_numbers(runner, db_path, tmp_path):
    store(db_path)
    out = tmp_path / "kpi.xlsx"
    res = runner.invoke(args=ARGS + ["--db", db_path, "--format", "xlsx", "--group-by", "agent", "-o", str(out)])
    assert res.exit_code == 0, res.output
    wb = openpyxl.load_workbook(out)
    assert wb.sheetnames == ["Summary", "Groups"]
    rows = list(wb["Summary"].iter_rows(values_only=True))
    header = rows.index(next(r for r in rows if r[0] == "group"))
    cols = rows[header]
    body = {r[cols.index("kpi")]: r for r in rows[header + 1 :]}
    assert body["tickets_total"][cols.index("value")] == 3
    assert body["first_response_time"][cols.index("value")] == 3750
    assert isinstance(body["resolved_share"][cols.index("value")], float)
    groups = list(wb["Groups"].iter_rows(values_only=True))
    assert any(r[0] == "10" and r[2] == "tickets_total" and r[4] == 2 for r in groups)


def test_errors_are_clear_and_exit_2(runner, db_path, tmp_path):
    res = runner.invoke(args=ARGS + ["--db", str(tmp_path / "missing.db")])
    assert res.exit_code == 2 and "no store at" in res.output
    assert not (tmp_path / "missing.db").exists()  # a typo creates no empty store
    store(db_path, "p2")
    res = runner.invoke(args=ARGS + ["--db", db_path])
    assert res.exit_code == 2 and "several portals" in res.output and "p2" in res.output
    res = runner.invoke(args=ARGS + ["--db", db_path, "--portal", "p3"])
    assert res.exit_code == 2 and "not in the store" in res.output
    res = runner.invoke(args=["kpi", "--db", db_path, "--portal", "p1", "--from", "01.10.2026", "--to", "2026-11-01"])
    assert res.exit_code == 2 and "not a date" in res.output
    res = runner.invoke(args=["kpi", "--db", db_path, "--portal", "p1", "--from", "2026-11-01", "--to", "2026-10-01"])
    assert res.exit_code == 2 and "empty" in res.output
    res = runner.invoke(args=ARGS + ["--db", db_path, "--portal", "p1", "--priority", "urgent"])
    assert res.exit_code == 2 and "unknown priority" in res.output
    res = runner.invoke(args=ARGS + ["--db", db_path, "--portal", "p2", "--group-by", "moon"])
    assert res.exit_code == 2


def test_csv_cells_never_run_as_formulas():
    from b24desk.kpi.formats import _csv_cell

    assert _csv_cell('=HYPERLINK("http://x","y")') == '\'=HYPERLINK("http://x","y")'
    assert _csv_cell("@SUM(A1)") == "'@SUM(A1)"
    assert _csv_cell(-3) == -3 and _csv_cell(0.5) == 0.5
    assert _csv_cell(None) == "" and _csv_cell("Первая линия") == "Первая линия"


def test_group_by_time_dimensions_in_every_format(runner, db_path):
    store(db_path)
    for dim, first in (("weekday", 1), ("hour", 0), ("week", "2026-W40"), ("month", "2026-10")):
        res = runner.invoke(args=ARGS + ["--db", db_path, "--group-by", dim])
        assert res.exit_code == 0, res.output
        r = json.loads(res.output)
        assert r["group_by"] == dim and r["groups"][0]["key"] == first
        assert sum(g["kpis"]["tickets_total"]["value"] for g in r["groups"]) == 3
        for fmt in ("csv", "table"):
            res = runner.invoke(args=ARGS + ["--db", db_path, "--group-by", dim, "--format", fmt])
            assert res.exit_code == 0, res.output
    res = runner.invoke(args=ARGS + ["--db", db_path, "--group-by", "year"])
    assert res.exit_code != 0 and "week" in res.output


def test_channel_and_line_filters(runner, db_path):
    db = open_db(db_path)
    add_ticket(db, 1, "2026-10-02 10:00", "C_1", "10", source="openlines", line="1", channel="livechat")
    add_ticket(db, 2, "2026-10-03 10:00", "C_2", "10", source="openlines", line="2", channel="telegrambot")
    db.conn.close()
    res = runner.invoke(args=ARGS + ["--db", db_path, "--line", "2"])
    assert res.exit_code == 0, res.output
    r = json.loads(res.output)
    assert r["filters"]["line"] == "2" and r["kpis"]["tickets_total"]["value"] == 1
    res = runner.invoke(args=ARGS + ["--db", db_path, "--channel", "livechat", "--channel", "telegrambot"])
    assert json.loads(res.output)["kpis"]["tickets_total"]["value"] == 2
