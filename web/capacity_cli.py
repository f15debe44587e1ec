"""``flask capacity``: the capacity report from the store (shared/spec/interfaces.md "Capacity"),
a thin shell over ``b24desk.capacity.build_capacity``."""

from __future__ import annotations

import json

import click
from flask import current_app
from flask.cli import with_appcontext

from b24desk.capacity import CapacityError, build_capacity
from b24desk.capacity.table import render_table
from b24desk.overrides import effective_config


@click.command("capacity")
@click.option("--db", "db_path", help="SQLite store (default: B24DESK_DB or instance/b24desk.db).")
@click.option("--portal", help="The portal's member_id (may be left out with one portal in the store).")
@click.option(
    "--from", "date_from", help="Start: YYYY-MM-DD (local midnight) or ISO datetime; default: 12 full weeks ago."
)
@click.option("--to", "date_to", help="End (exclusive), same forms as --from; default: this week's Monday.")
@click.option("--weeks-ahead", default=4, show_default=True, help="Weeks to forecast (1-8).")
@click.option("--source", help="Source selector (tasks, deals:category=3, openlines:line=2 ...).")
@click.option("--department", help="Department id: its members' tickets and work (sub-departments included).")
@click.option("--format", "fmt", type=click.Choice(["json", "table"]), default="json", show_default=True)
@click.option(
    "--lang",
    type=click.Choice(["ru", "en"]),
    default="ru",
    show_default=True,
    help="Language of the table's sentences.",
)
@with_appcontext
def capacity_command(db_path, portal, date_from, date_to, weeks_ahead, source, department, fmt, lang):
    """Arrivals per weekday x hour, the volume forecast and the staffing gaps."""
    from .cli import open_portal_store

    db, portal = open_portal_store(db_path, portal)
    try:
        config = effective_config(db, portal, current_app.config.get("B24DESK") or {})
        report = build_capacity(
            db, portal, date_from, date_to, weeks_ahead=weeks_ahead, source=source, department=department, config=config
        )
    except CapacityError as exc:
        raise click.UsageError(str(exc)) from None
    finally:
        db.conn.close()
    if fmt == "json":
        click.echo(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        click.echo(render_table(report, lang), nl=False)
