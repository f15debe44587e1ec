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
