"""The store: schema, idempotent writes, snapshots."""

from b24desk.model import Bundle, Event, Ticket
from b24desk.store import events_for, get_ticket, open_db, save_bundle


def _bundle(title="Printer", responsible="10"):
    t = Ticket(
        portal="p1", source="task", source_id="42", title=title, responsible_id=responsible, created_at=1_700_000_000
    )
    ev = [
        Event("p1", "task", "42", "h:1", "created", 1_700_000_000, "5"),
        Event("p1", "task", "42", "c:9", "reply", 1_700_000_300, "10"),
    ]
    return Bundle(ticket=t, events=ev, snapshot={"id": "42", "title": title})


def test_save_bundle_is_idempotent(db):
    assert save_bundle(db, _bundle(), observed_at=1) is True
    assert save_bundle(db, _bundle(), observed_at=2) is False  # same payload: no new snapshot
    assert len(events_for(db, "p1", "task", "42")) == 2  # events not duplicated
    assert db["snapshots"].count == 1
    assert save_bundle(db, _bundle(title="Printer jam"), observed_at=3) is True
    assert db["snapshots"].count == 2
    assert get_ticket(db, "p1", "task", "42")["title"] == "Printer jam"


def test_migrations_apply_once(db_path):
    d1 = open_db(db_path)
    d1.conn.close()
    d2 = open_db(db_path)  # re-opening applies nothing twice
    assert "tickets" in d2.table_names()
    assert d2.execute("pragma journal_mode").fetchone()[0] == "wal"
    d2.conn.close()


def test_app_factory(app):
    assert app.config["DB"].endswith("b24desk.db")
    assert not create_app_is_debug(app)


def create_app_is_debug(app):
    return app.debug


def test_two_processes_migrate_a_fresh_store_once(tmp_path):
    """Several processes opening the same new store at once all succeed, with one schema."""
    import subprocess
    import sys

    path = str(tmp_path / "fresh.db")
    code = (
        "import sys; sys.path.insert(0, %r); from b24desk.store import open_db; "
        "db = open_db(%r); print(len(db.table_names()))"
    ) % (str(__import__("pathlib").Path(__file__).parent.parent), path)
    procs = [
        subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    outs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], [o[1] for o in outs]
    assert len({o[0] for o in outs}) == 1
    db = open_db(path)
    names = [r["name"] for r in db.query("select name from _sqlite_migrations")]
    assert len(names) == len(set(names))
    db.conn.close()


def test_distinct_values_skip_through_the_index_and_equal_a_full_scan(db):
    """store.distinct_values (the filter bar's sources, types, channels, lines): every combination
    of the portal's live tickets, None and '' alike, deleted tickets and other portals left out,
    the same as a scan of the whole table, and read by seeks in ``tickets_values``."""
    import itertools
    import random

    from b24desk.store import distinct_values

    rnd = random.Random(5)
    values = {
        "source": ["task", "crm:2", "openlines", "crm:1038"],
        "type": [None, "", "bug", "question", "7"],
        "channel": [None, "", "telegrambot", "livechat"],
        "line": [None, "", "1", "12"],
    }
    rows = []
    for i in range(600):
        combo = {c: rnd.choice(v) for c, v in values.items()}
        rows.append(
            dict(
                combo,
                portal=rnd.choice(["p1", "p1", "p1", "p2"]),
                source_id=str(i),
                deleted=1 if rnd.random() < 0.1 else rnd.choice([None, 0]),
            )
        )
    db["tickets"].insert_all(rows, alter=True)
    scan = sorted(
        db.execute(
            "select distinct coalesce(source, ''), coalesce(type, ''), coalesce(channel, ''), coalesce(line, '')"
            " from tickets where portal = 'p1' and coalesce(deleted, 0) = 0"
        ).fetchall()
    )
    got = distinct_values(db.conn, "p1")
    assert got == scan and len(got) > 50  # in order, each once
    assert set(got) < set(itertools.product(*[[x or "" for x in v] for v in values.values()]))
    assert distinct_values(db.conn, "nobody") == []
    plan = db.execute(
        "explain query plan select 1 from tickets where portal = ? and coalesce(deleted, 0) = 0"
        " and coalesce(source, '') = ? and coalesce(type, '') > ? order by coalesce(type, ''), coalesce(channel, ''),"
        " coalesce(line, '') limit 1",
        ["p1", "task", ""],
    ).fetchall()
    assert "tickets_values" in str(plan)
