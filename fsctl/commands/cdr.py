"""fsctl cdr ..."""

import click

from ..errors import ValidationError
from ..services import cdr as svc, stats as stats_svc
from ..services.common import get_tenant
from ._base import pass_app, reading
from ._export import export, export_options, period_options
from ._output import json_option, print_json, say

# What people see in the table (csv/json carry every column of stats.LOG_COLUMNS).
TABLE_COLUMNS = (
    "started_at",
    "direction",
    "caller",
    "callee",
    "target",
    "status",
    "answered_by",
    "missed_by",
    "talk_time",
)


@click.group("cdr")
def cli():
    """The call log: one record per call (however many phones rang)."""


@cli.command("list")
@click.argument("domain")
@period_options
@click.option("--user", help="Only calls of this user (made, rang, answered or missed).")
@click.option("--status", type=click.Choice(svc.STATUSES), help="Only calls with this status.")
@export_options
@reading
def list_(domain, from_, to_, user, status, fmt, as_json, output):
    """The call log: fsctl cdr list acme.example --from 2026-11-01 --user 101 --status missed --json."""
    tenant = get_tenant(domain)
    start, end = stats_svc.period(tenant, from_, to_)
    batches = stats_svc.call_rows(tenant, start, end, user=user, status=status, node=True)
    export(
        stats_svc.LOG_COLUMNS,
        batches,
        fmt,
        as_json,
        output,
        title=f"calls {tenant.domain}",
        table_columns=TABLE_COLUMNS,
    )


@cli.command("import")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option(
    "--notify/--no-notify",
    default=True,
    show_default=True,
    help="Queue missed-call notifications and CRM events for the calls imported (not for old archives).",
)
@click.option(
    "--move-to",
    "move_to",
    metavar="ARCHIVE",
    help="Once a batch is committed, move its imported files into ARCHIVE (same relative path, created "
    "if missing; outside DIR). Files that failed stay in DIR.",
)
@click.option(
    "--min-age",
    "min_age",
    metavar="SECONDS",
    default="0",
    show_default=True,
    help="Leave files modified less than SECONDS ago (FreeSWITCH may still be writing them), and the "
    "other files of their call, for the next run.",
)
@click.option(
    "--archive-keep-days",
    "keep_days",
    metavar="DAYS",
    help="With --move-to: delete archived files older than DAYS (by the time FreeSWITCH wrote them).",
)
@click.option(
    "--node",
    metavar="NAME",
    help="With nodes: the node whose mod_xml_cdr folder DIR is (run it where that folder is, e.g. on the "
    "node: conf/systemd/fsctl-cdr-import@.timer).",
)
@json_option
@pass_app
def import_(app, directory, notify, move_to, min_age, keep_days, node, as_json):
    """Import FreeSWITCH mod_xml_cdr files (again and again: a call is never counted twice).

    The safety net of the call log; conf/systemd/fsctl-cdr-import.timer runs, every 5 minutes:

    \b
    fsctl cdr import /var/log/freeswitch/xml_cdr \\
        --move-to /var/log/freeswitch/xml_cdr.imported --min-age 30 --archive-keep-days 30

    With nodes, each node's folder is imported with --node NAME (fsctl-cdr-import@NAME.timer).
    """
    from ..db import transaction
    from ..services import nodes

    app.open()
    with transaction():
        if node:
            node = nodes.get_node(node).name
        elif nodes.nodes_defined():
            names = ", ".join(n.name for n in nodes.list_nodes())
            raise ValidationError("--node", "", f"must name the node whose mod_xml_cdr folder this is (nodes: {names})")
    result = svc.import_xml_cdr_dir(
        directory,
        notifier=None if notify else _no_notifier,
        move_to=move_to,
        min_age=min_age,
        keep_days=keep_days,
        node=node,
    )
    data = {
        "files": result.files,
        "calls_created": result.calls_created,
        "calls_updated": result.calls_updated,
        "legs": result.legs,
        "failed": [{"path": p, "reason": r} for p, r in result.failed],
        "skipped_too_new": result.too_new,
        "moved": result.moved,
        "not_moved": [{"path": p, "reason": r} for p, r in result.not_moved],
        "archive_deleted": result.archive_deleted,
    }
    if as_json:
        print_json(data)
    else:
        line = (
            f"{result.files} files: {result.calls_created} calls created, {result.calls_updated} updated, "
            f"{result.legs} legs, {len(result.failed)} failed, {len(result.too_new)} skipped (too new)"
        )
        if move_to is not None:
            line += f", {result.moved} moved to {move_to}"
        if result.archive_deleted is not None:
            line += f", {result.archive_deleted} archived files older than {keep_days} days deleted"
        say(line)
    for path, reason in result.failed:
        say(f"  {path}: {reason}")
    for path, reason in result.not_moved:
        say(f"  {path}: imported, not moved ({reason}); the next run imports it again")
    if result.failed or result.not_moved:
        raise click.exceptions.Exit(1)


def _no_notifier(call_ids):
    """Queue nothing (fsctl cdr import --no-notify)."""
