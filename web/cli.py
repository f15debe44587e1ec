"""``flask kpi``: the KPI report of a period from the store (shared/spec/interfaces.md)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

from ..overrides import effective_config
from ..store import open_db, portals
from .filters import GROUP_BY
from .formats import FORMATS, render
from .report import build_report


def pick_portal(db, portal: str | None) -> str:
    """The ``--portal`` given, or the only portal of the store."""
    known = portals(db)
    if portal:
        if portal not in known:
            raise click.UsageError(f"portal {portal!r} is not in the store"
                                   + (f" (known: {', '.join(known)})" if known else ""))
        return portal
    if len(known) == 1:
        return known[0]
    if not known:
        raise click.UsageError("the store has no portal yet: run `flask sync` first")
    raise click.UsageError(f"the store has several portals, pick one with --portal: {', '.join(known)}")


def open_portal_store(db_path: str | None, portal: str | None):
    """``(db, portal)`` for a command: the store at ``--db`` (else the app's) and the portal to use.
    The caller closes ``db``."""
    path = Path(db_path or current_app.config["DB"])
    if not path.exists():
        raise click.UsageError(f"no store at {path} (give --db or run `flask sync` first)")
    db = open_db(path)
    try:
        return db, pick_portal(db, portal)
    except click.UsageError:
        db.conn.close()
        raise


@click.command("kpi")
@click.option("--db", "db_path", help="SQLite store (default: B24DESK_DB or instance/b24desk.db).")
@click.option("--portal", help="The portal's member_id (may be left out with one portal in the store).")
@click.option("--from", "date_from", required=True,
              help="Start: YYYY-MM-DD (midnight in the portal's time zone) or an ISO datetime with offset.")
@click.option("--to", "date_to", required=True, help="End (exclusive), same forms as --from.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="json", show_default=True)
@click.option("--group-by", type=click.Choice(GROUP_BY), help="Add a breakdown by this dimension.")
@click.option("--source", multiple=True, help="Source selector (tasks, deals:category=3, crm:1038 ...); repeatable.")
@click.option("--department", multiple=True, help="Department id (sub-departments included); repeatable.")
@click.option("--agent", multiple=True, help="Agent (user id); repeatable.")
@click.option("--priority", multiple=True, help="low, normal, high or critical; repeatable.")
@click.option("--type", "types", multiple=True, help="Ticket type; repeatable.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True),
              help="Write to this file instead of standard output (needed for xlsx on a terminal).")
@with_appcontext
def kpi_command(db_path, portal, date_from, date_to, fmt, group_by, source, department, agent, priority,
                types, output):
    """Compute the KPI report for [FROM, TO) and print it."""
    db, portal = open_portal_store(db_path, portal)
    try:
        filters = {"source": list(source) or None, "department": list(department) or None,
                   "agent": list(agent) or None, "priority": list(priority) or None,
                   "type": list(types) or None}
        try:
            # the portal's admin overrides on top of the file config, as the pages apply them
            config = effective_config(db, portal, current_app.config.get("B24DESK") or {})
            report = build_report(db, portal, date_from, date_to, filters=filters, group_by=group_by,
                                  config=config)
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
    finally:
        db.conn.close()

    tty = sys.stdout.isatty()
    color = fmt == "table" and not output and tty and not os.environ.get("NO_COLOR")
    data = render(report, fmt, color=color)
    if output:
        Path(output).write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
        click.echo(f"wrote {output}", err=True)
    elif isinstance(data, bytes):
        if tty:
            raise click.UsageError("xlsx is binary: give --output FILE (or redirect standard output)")
        out = click.get_binary_stream("stdout")
        out.write(data)
        out.flush()
    else:
        click.echo(data, nl=False)
