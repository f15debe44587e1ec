"""The ``flask`` commands of shared/spec/interfaces.md: ``sync``, ``kpi``, ``push`` and ``demo``.

Each is a thin shell over the core function it drives (``b24desk.sync.run_sync``,
``b24desk.kpi.report.build_report``, ``b24desk.push.digests.run_push``, ``web.demo``): options in,
a clear usage error or the result out."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
from click.core import ParameterSource
from flask import current_app
from flask.cli import with_appcontext

from b24desk import config as b24config
from b24desk.client import AuthError, B24Client, B24Error
from b24desk.installations import get_installation
from b24desk.kpi.filters import GROUP_BY
from b24desk.kpi.formats import FORMATS, render
from b24desk.kpi.report import build_report
from b24desk.overrides import effective_config
from b24desk.push import data as dg
from b24desk.push.digests import PushError, describe, open_clients, preview, run_push
from b24desk.sources import SelectorError, get_source
from b24desk.store import open_db, portals
from b24desk.sync import SyncBusy, run_sync


def init_app(app) -> None:
    from .capacity_cli import capacity_command
    from .demo import demo_command

    for command in (sync_command, kpi_command, push_command, demo_command, capacity_command):
        app.cli.add_command(command)


def pick_portal(db, portal: str | None) -> str:
    """The ``--portal`` given, or the only portal of the store."""
    known = portals(db)
    if portal:
        if portal not in known:
            raise click.UsageError(
                f"portal {portal!r} is not in the store" + (f" (known: {', '.join(known)})" if known else "")
            )
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


# --- flask kpi ------------------------------------------------------------------------------------


@click.command("kpi")
@click.option("--db", "db_path", help="SQLite store (default: B24DESK_DB or instance/b24desk.db).")
@click.option("--portal", help="The portal's member_id (may be left out with one portal in the store).")
@click.option(
    "--from",
    "date_from",
    required=True,
    help="Start: YYYY-MM-DD (midnight in the portal's time zone) or an ISO datetime with offset.",
)
@click.option("--to", "date_to", required=True, help="End (exclusive), same forms as --from.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="json", show_default=True)
@click.option("--group-by", type=click.Choice(GROUP_BY), help="Add a breakdown by this dimension.")
@click.option("--source", multiple=True, help="Source selector (tasks, deals:category=3, crm:1038 ...); repeatable.")
@click.option("--department", multiple=True, help="Department id (sub-departments included); repeatable.")
@click.option("--agent", multiple=True, help="Agent (user id); repeatable.")
@click.option("--priority", multiple=True, help="low, normal, high or critical; repeatable.")
@click.option("--type", "types", multiple=True, help="Ticket type; repeatable.")
@click.option("--channel", multiple=True, help="Open-line channel (livechat, telegrambot ...); repeatable.")
@click.option("--line", multiple=True, help="Open line id; repeatable.")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, writable=True),
    help="Write to this file instead of standard output (needed for xlsx on a terminal).",
)
@with_appcontext
def kpi_command(
    db_path,
    portal,
    date_from,
    date_to,
    fmt,
    group_by,
    source,
    department,
    agent,
    priority,
    types,
    channel,
    line,
    output,
):
    """Compute the KPI report for [FROM, TO) and print it."""
    db, portal = open_portal_store(db_path, portal)
    try:
        filters = {
            "source": list(source) or None,
            "department": list(department) or None,
            "agent": list(agent) or None,
            "priority": list(priority) or None,
            "type": list(types) or None,
            "channel": list(channel) or None,
            "line": list(line) or None,
        }
        try:
            # the portal's admin overrides on top of the file config, as the pages apply them
            config = effective_config(db, portal, current_app.config.get("B24DESK") or {})
            report = build_report(db, portal, date_from, date_to, filters=filters, group_by=group_by, config=config)
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


# --- flask sync ------------------------------------------------------------------------------------


def _client(webhook: str | None, member_id: str | None, db_path: str, rps: float) -> B24Client:
    if webhook and member_id:
        raise click.UsageError("give --webhook or --portal, not both")
    if webhook:
        try:
            return B24Client.from_webhook(webhook, rps=rps)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--webhook") from None
    if not member_id:
        db = open_db(db_path)
        try:
            known = [p for p in portals(db) if list(db.query("select 1 from installations where member_id = ?", [p]))]
        finally:
            db.conn.close()
        if len(known) != 1:
            raise click.UsageError(
                "give --webhook URL (or B24DESK_WEBHOOK) or --portal MEMBER_ID"
                + (f"; installed portals: {', '.join(known)}" if known else "")
            )
        member_id = known[0]
    return B24Client.from_installation(
        db_path,
        member_id,
        b24config.env("B24DESK_CLIENT_ID"),
        b24config.env("B24DESK_CLIENT_SECRET"),
        b24config.env("B24DESK_OAUTH_URL"),
        rps=rps,
    )


@click.command("sync")
@click.option("--webhook", envvar="B24DESK_WEBHOOK", help="Inbound webhook URL https://PORTAL/rest/USER/SECRET/.")
@click.option("--portal", "member_id", help="member_id of an installed portal (uses the app's stored tokens).")
@click.option("--db", "db_path", help="SQLite store (default: B24DESK_DB or instance/b24desk.db).")
@click.option(
    "--source",
    "selectors",
    multiple=True,
    metavar="SEL",
    help="tasks | tasks:group=ID | deals | deals:category=ID | crm:TYPE | crm:TYPE:category=ID | "
    "openlines | openlines:line=ID (repeatable; default: the config's sources).",
)
@click.option("--full", is_flag=True, help="Re-read everything instead of what changed since the last sync.")
@click.option(
    "--rps",
    type=click.FloatRange(min=0.1),
    default=2.0,
    show_default=True,
    help="Requests per second to allow ourselves (the portal's limit: 2, or 5 on Enterprise).",
)
@click.option("--quiet", is_flag=True, help="No progress bar and no summary.")
@with_appcontext
def sync_command(webhook, member_id, db_path, selectors, full, rps, quiet):
    """Sync tickets from a Bitrix24 portal into the store (full first, then incremental)."""
    db_path = str(db_path or current_app.config["DB"])  # the app's store and config, as `flask kpi`
    config = current_app.config.get("B24DESK") or {}
    try:
        for s in selectors:
            get_source(s, config)
    except SelectorError as exc:
        raise click.BadParameter(str(exc), param_hint="--source") from None
    try:
        client = _client(webhook, member_id, db_path, rps)
    except AuthError as exc:
        raise click.ClickException(str(exc)) from None
    db = open_db(db_path)
    try:
        config = effective_config(db, client.portal_id, config)  # the admin's overrides, as the server applies
        reports = run_sync(client, db, selectors or None, config, full=full, progress=not quiet)
    except (SyncBusy, SelectorError) as exc:
        raise click.ClickException(str(exc)) from None
    except AuthError as exc:
        raise click.ClickException(f"the portal refused our credentials: {exc}") from None
    except B24Error as exc:
        raise click.ClickException(f"sync stopped, nothing half-written (re-run to resume): {exc}") from None
    finally:
        db.conn.close()
        client.close()
    if not quiet:
        for r in reports:
            click.echo(r.line())
    failed = [r for r in reports if r.error]
    if failed:
        raise click.ClickException("; ".join(f"{r.selector}: {r.error}" for r in failed))


# --- flask push ------------------------------------------------------------------------------------


@click.command("push")
@click.option("--db", "db_path", help="SQLite store (default: B24DESK_DB or instance/b24desk.db).")
@click.option("--portal", help="The portal's member_id (may be left out with one portal in the store).")
@click.option("--report", "kind", type=click.Choice(dg.KINDS), required=True, help="Which digest.")
@click.option(
    "--period",
    required=True,
    help="YYYY-MM-DD (daily), YYYY-Www (weekly), YYYY-MM (monthly), in the portal's time zone.",
)
@click.option(
    "--channel",
    "channels",
    type=click.Choice(dg.CHANNELS),
    multiple=True,
    help="notify | chat | feed | disk (repeatable; default: the portal's push settings).",
)
@click.option("--dry-run", is_flag=True, help="Print what would be sent; send nothing, record nothing.")
@click.option("--webhook", envvar="B24DESK_WEBHOOK", help="Inbound webhook URL, when the app is not installed.")
@with_appcontext
def push_command(db_path, portal, kind, period, channels, dry_run, webhook):
    """Push a digest into Bitrix24 now (each delivery at most once, see the sent-log)."""
    db, portal = open_portal_store(db_path, portal)
    path = Path(db_path or current_app.config["DB"])
    try:
        reader = writer = None
        if not dry_run:
            # an installed app wins over B24DESK_WEBHOOK from the environment; --webhook given here wins
            explicit = click.get_current_context().get_parameter_source("webhook") == ParameterSource.COMMANDLINE
            inst = get_installation(db, portal)
            if webhook and not explicit and inst and (inst.get("access_token") or inst.get("refresh_token")):
                webhook = None
            try:
                reader, writer = open_clients(str(path), portal, webhook=webhook)
            except (AuthError, ValueError) as exc:
                raise click.UsageError(f"cannot reach the portal: {exc} (install the app, or give --webhook)")
        try:
            outcomes = run_push(
                db,
                portal,
                kind,
                period,
                reader=reader,
                writer=writer,
                config=effective_config(db, portal, current_app.config.get("B24DESK") or {}),
                channels=channels,
                dry_run=dry_run,
            )
        except PushError as exc:
            raise click.UsageError(str(exc)) from None
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
    finally:
        db.conn.close()
    for o in outcomes:
        click.echo(describe(o))
        if dry_run:
            click.echo(preview(o))
    failed = [o for o in outcomes if not o.ok]
    if not outcomes:
        click.echo("nothing to send (no recipients for the chosen channels)", err=True)
    if failed:
        raise click.ClickException(
            f"{len(failed)} of {len(outcomes)} deliveries not done; "
            "run the same command again to retry them (sent ones are skipped)"
        )


if __name__ == "__main__":  # python -m web.cli sync [options]: ``flask sync`` without an app
    import logging

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    click.Group(commands=[sync_command])()
