"""The store: schema, idempotent writes, snapshots."""
from b24desk.model import Bundle, Event, Ticket
from b24desk.store import events_for, get_ticket, open_db, save_bundle


def _bundle(title="Printer", responsible="10"):
    t = Ticket(portal="p1", source="task", source_id="42", title=title, responsible_id=responsible,
               created_at=1_700_000_000)
    ev = [Event("p1", "task", "42", "h:1", "created", 1_700_000_000, "5"),
          Event("p1", "task", "42", "c:9", "reply", 1_700_000_300, "10")]
    return Bundle(ticket=t, events=ev, snapshot={"id": "42", "title": title})


def test_save_bundle_is_idempotent(db):
    assert save_bundle(db, _bundle(), observed_at=1) is True
    assert save_bundle(db, _bundle(), observed_at=2) is False       # same payload: no new snapshot
    assert len(events_for(db, "p1", "task", "42")) == 2             # events not duplicated
    assert db["snapshots"].count == 1
    assert save_bundle(db, _bundle(title="Printer jam"), observed_at=3) is True
    assert db["snapshots"].count == 2
    assert get_ticket(db, "p1", "task", "42")["title"] == "Printer jam"


def test_migrations_apply_once(db_path):
    d1 = open_db(db_path)
    d1.conn.close()
    d2 = open_db(db_path)           # re-opening applies nothing twice
    assert "tickets" in d2.table_names()
    assert d2.execute("pragma journal_mode").fetchone()[0] == "wal"
    d2.conn.close()


def test_app_factory(app):
    assert app.config["DB"].endswith("b24desk.db")
    assert not create_app_is_debug(app)


def create_app_is_debug(app):
    return app.debug
