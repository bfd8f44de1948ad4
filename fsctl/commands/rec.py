"""fsctl rec ... (R-REC): catalogue, search, marks, purge, SFTP pull, daily publication."""

import sys

import click

from ..db import transaction
from ..errors import OperationError, UnreachableError, ValidationError
from ..services import recordings as rec
from ._base import pass_app, reading, transactional
from ._output import emit, json_option, print_json, say

AS_HELP = (
    "Act as this user (USER@DOMAIN) and see only what they may: their own recordings, their "
    "recording groups' (supervisor), or the tenant's (admin). Without it: the operator, every tenant."
)
COLUMNS = ["id", "tenant", "user", "direction", "counterpart", "started_at", "duration", "colour", "note"]


def as_option(fn):
    """--as USER@DOMAIN."""
    return click.option("--as", "as_user", metavar="USER@DOMAIN", help=AS_HELP)(fn)


def filter_options(fn):
    """The search filters shared by search and pull."""
    options = [
        click.option("--tenant", help="Only this tenant (domain)."),
        click.option("--from", "since", metavar="DATE|TIME", help="Started at or after (UTC; YYYY-MM-DD or ISO time)."),
        click.option("--to", "until", metavar="DATE|TIME", help="Started before (a date includes that whole day)."),
        click.option("--min-length", metavar="SECONDS", help="At least this long."),
        click.option("--max-length", metavar="SECONDS", help="At most this long."),
        click.option("--user", help="Recorded user's number."),
        click.option("--user-name", help="Recorded user's name contains this text (any case, any script)."),
        click.option("--counterpart", metavar="PREFIX", help="Other party's number starts with this."),
        click.option("--colour", help="Colour mark: " + ", ".join(rec.COLOURS) + "."),
        click.option("--note", help="Note contains this text (any case)."),
        click.option("--field1", help="Free field 1 contains this text (any case)."),
        click.option("--field2", help="Free field 2 contains this text (any case)."),
        click.option("--field3", help="Free field 3 contains this text (any case)."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


FILTER_NAMES = (
    "tenant",
    "since",
    "until",
    "min_length",
    "max_length",
    "user",
    "user_name",
    "counterpart",
    "colour",
    "note",
    "field1",
    "field2",
    "field3",
)


def _filters(kwargs):
    return rec.make_filters(**{k: kwargs.pop(k) for k in FILTER_NAMES})


@click.group("rec")
def cli():
    """Call recordings: catalogue, search, marks, retention, SFTP pull and publication."""


def _node_option(what):
    return click.option(
        "--node",
        metavar="NAME",
        help=f"With nodes: the node {what} (run it where that node's recordings folder is, e.g. on the node).",
    )


@cli.command("import")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False),
    help="Recordings folder (default: setting recordings_dir, or the node's --recordings-dir).",
)
@_node_option("whose recordings folder this is: its files are catalogued as on that node")
@pass_app
@transactional
def import_(app, directory, node):
    """Catalogue the recordings folder (idempotent: new files added, known ones kept with their marks)."""
    found, folder = _local_node(app, node, "--node", "must name the node whose recordings folder this is")
    report = rec.import_recordings(directory or folder, node=found.name if found else None)
    for path, reason in report.skipped:
        say(f"skipped {path}: {reason}")
    click.echo(
        f"{report.added} added, {report.updated} updated, {report.unchanged} unchanged, {len(report.skipped)} skipped"
    )


@cli.command("search")
@filter_options
@as_option
@click.option("--limit", default=50, show_default=True, help="Rows per page.")
@click.option("--offset", default=0, show_default=True, help="Rows to skip (paging).")
@json_option
@reading
def search(as_user, limit, offset, as_json, **kwargs):
    """Search recordings, newest first: fsctl rec search --as 100@acme.example --from 2026-11-01 --colour red."""
    rows = rec.search(_filters(kwargs), as_user, limit, offset)
    emit([rec.recording_dict(r) for r in rows], as_json, COLUMNS)


@cli.command("show")
@click.argument("recording_id")
@as_option
@json_option
@reading
def show(recording_id, as_user, as_json):
    """Show one recording."""
    emit(rec.recording_dict(rec.get_recording(recording_id, as_user)), as_json)


@cli.command("mark")
@click.argument("recording_id")
@as_option
@click.option("--note", help="A note (any text; '' clears).")
@click.option("--colour", "--color", "colour", help="Colour: " + ", ".join(rec.COLOURS) + " or none.")
@click.option("--field1", help="Free field 1 (at most 128 characters).")
@click.option("--field2", help="Free field 2 (at most 128 characters).")
@click.option("--field3", help="Free field 3 (at most 128 characters).")
@click.option("--if-version", help="Save only if the mark is still this mark_version (rec show --json).")
@pass_app
@transactional
def mark(app, recording_id, as_user, note, colour, field1, field2, field3, if_version):
    """Mark a recording: fsctl rec mark 42 --note "call back" --colour red --field1 "order 77"."""
    row = rec.mark(
        recording_id,
        as_user,
        note=note,
        colour=colour,
        fields={"field1": field1, "field2": field2, "field3": field3},
        via="cli",
        now=app.now(),
        if_version=if_version,
    )
    say(f"recording {row.id} marked")


@cli.command("audit")
@as_option
@click.option("--recording", "recording_id", help="Only this recording's marks.")
@click.option("--limit", default=100, show_default=True, help="Rows per page.")
@click.option("--offset", default=0, show_default=True, help="Rows to skip (paging).")
@json_option
@reading
def audit(as_user, recording_id, limit, offset, as_json):
    """Who changed which marks, when and through what (cli, web, api), newest first (a tenant admin's view)."""
    rows = [rec.audit_dict(r) for r in rec.mark_audit(as_user, recording_id, limit, offset)]
    emit(rows, as_json, ["id", "tenant", "recording_id", "actor", "via", "at", "changes"])


@cli.command("purge")
@click.option("--dry-run", is_flag=True, help="Only print what would be removed (without --node: on every node).")
@_node_option("whose files this run removes (the quota counts every node's)")
@pass_app
@transactional
def purge(app, dry_run, node):
    """Remove recordings past the retention (180 days) and each user's oldest beyond the quota (30 MB)."""
    s = app.settings
    found, folder = _local_node(
        app, node, "--node", "must name the node whose recordings this run removes", required=not dry_run
    )
    plan = rec.purge(
        folder,
        s.recording_retention_days,
        s.recording_quota_mb,
        dry_run=dry_run,
        node=found.name if found else None,
        every_node=dry_run and node is None,
    )
    verb = "would purge" if dry_run else "purged"
    for item in plan.items:
        click.echo(
            f"{verb} {item.id} {item.domain} {item.user} {item.started_at:%Y-%m-%dT%H:%M:%SZ} "
            f"{item.path} ({item.reason})" + (f" on {item.node}" if item.node else "")
        )
    for line in plan.warnings:
        say(f"warning: {line}")
    say(f"{len(plan.items)} recordings {verb}")
    if plan.elsewhere:
        counts = {}
        for item in plan.elsewhere:
            counts[item.node or "no node"] = counts.get(item.node or "no node", 0) + 1
        say(
            f"{len(plan.elsewhere)} more on other nodes, left to their own purge (fsctl rec purge --node NAME): "
            + ", ".join(f"{name} {n}" for name, n in sorted(counts.items()))
        )


def _local_node(app, name, field, rule, required=True):
    """(node or None, its recordings folder here): with nodes defined a command that touches a recordings
    folder must say whose it is (`--node`); without nodes it is the recordings_dir setting's."""
    from ..services import nodes

    if name:
        node = nodes.get_node(name)
        return node, nodes.node_recordings_dir(app.settings, node)
    if required and nodes.nodes_defined():
        names = ", ".join(n.name for n in nodes.list_nodes())
        raise ValidationError(field, "", f"{rule} (nodes: {names})")
    return None, app.settings.recordings_dir


@cli.command("pull")
@filter_options
@as_option
@click.option("--dest", "target", required=True, type=click.Path(file_okay=False), help="Local folder.")
@click.option(
    "--jobs", type=click.IntRange(1, 32), help="Parallel connections per server (default: one per CPU core, at most 4)."
)
@click.option("--limit", default=100000, show_default=True, help="At most this many recordings.")
@json_option
@pass_app
def pull(app, as_user, target, jobs, limit, as_json, **kwargs):
    """Fetch recordings over SFTP (resumable, verified): fsctl rec pull --dest ./rec --from 2026-11-01.

    Each file comes from where the catalogue says it is: the recordings server of the settings
    (sftp_host), or with nodes the node that holds it (its --sftp account).
    """
    filters = _filters(kwargs)
    s = app.settings
    from ..services import recfetch, sftp  # (subprocess and the SFTP code: only for pull)

    # ssh's handshake with the settings' server overlaps the catalogue query (used if some files are there)
    started = sftp.Connection(sftp.Endpoint.from_settings(s), wait=False)
    try:
        app.open()
        with transaction():
            rows = rec.search(filters, as_user, limit, 0, max_limit=10**7)
            plan = recfetch.plan([(row, rec.resolve(target, row.path)) for row in rows], s)
    except BaseException:
        started.close()
        raise
    report = _fetch_with_progress(plan, jobs, as_json, started)
    results = report.results
    unreached = {**report.unreachable, **report.refused}
    if len(plan.groups) == 1 and unreached:  # one server and it cannot be reached: that is the whole story
        ((label, error),) = unreached.items()
        raise (UnreachableError if report.unreachable else OperationError)(
            (f"{label}: " if report.nodes[0] else "") + error
        )
    if as_json:
        print_json(
            [
                {
                    "path": r.transfer.local_path,
                    "node": node,
                    "status": r.status,
                    "resumed_from": r.resumed_from,
                    "error": r.error,
                }
                for r, node in zip(results, report.nodes)
            ]
        )
    failed = report.failed
    for r in failed:
        say(f"failed {r.error}")
    for label, error in unreached.items():
        say(f"{label}: {report.missed.get(label, 0)} recordings not fetched: {error}")
    counts = {k: sum(1 for r in results if r.status == k) for k in ("fetched", "resumed", "skipped", "failed")}
    say(", ".join(f"{v} {k}" for k, v in counts.items()))
    if report.unreachable:
        raise UnreachableError(
            f"{len(failed)} of {len(results)} recordings not fetched ({', '.join(report.unreachable)} "
            "unreachable); the others are here: run again to fetch the rest"
        )
    if report.refused:
        label, error = next(iter(report.refused.items()))
        raise OperationError(f"{len(failed)} of {len(results)} recordings failed: {label}: {error}")
    if failed:
        raise OperationError(f"{len(failed)} of {len(results)} recordings failed: {failed[0].error}")


def _fetch_with_progress(plan, jobs, quiet, started):
    """recfetch.fetch with a progress bar on a terminal (rich is imported only then)."""
    from ..services import recfetch

    if quiet or not sys.stderr.isatty():
        return recfetch.fetch(plan, jobs, started=started)
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    total = sum(t.size for t in plan.transfers)
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task(f"{len(plan.transfers)} recordings", total=total)
        return recfetch.fetch(plan, jobs, progress=lambda _t, n: bar.advance(task, n), started=started)


@cli.command("publish")
@click.option("--date", "day", metavar="YYYY-MM-DD", help="The day to publish (default: the latest publishable).")
@click.option("--tenant", "domains", multiple=True, help="Only this tenant (repeat).")
@click.option("--force", is_flag=True, help="Publish even before 06:00 of the next day in the tenant's time zone.")
@pass_app
@reading
def publish(app, day, domains, force):
    """Daily job: put each tenant's previous-day recordings and SHA256SUMS in its SFTP drop folder.

    Recordings on nodes are fetched from the node that holds them (its --sftp account).
    """
    from ..services import publish as publishing, recfetch

    s = app.settings

    def fetch(items):
        return recfetch.fetch(recfetch.plan(items, s), jobs=2)

    unreachable, refused, waiting = {}, {}, 0
    for r in publishing.publish(
        s.recordings_dir,
        s.publish_dir,
        s.publish_hour,
        s.publish_keep_days,
        day=day,
        now=app.now(),
        force=force,
        domains=domains,
        fetch=fetch,
    ):
        for path in r.missing:
            say(f"warning: {r.domain} {path}: catalogued but the file is gone, not published")
        for path, why in r.waiting:
            say(f"warning: {r.domain} {path}: not published yet ({why})")
        unreachable.update(r.unreachable)
        refused.update(r.refused)
        waiting += len(r.waiting)
        line = (
            f"{r.domain} {r.day.isoformat()}: {r.published} recordings ({r.linked} linked, {r.copied} copied, "
            + (f"{r.fetched} fetched from nodes, " if r.fetched else "")
            + f"{r.unchanged} already there)"
        )
        if r.removed:
            line += "; removed " + ", ".join(r.removed)
        click.echo(line)
    for label, error in {**unreachable, **refused}.items():
        say(f"{label}: {error}")
    if unreachable:
        raise UnreachableError(
            f"{', '.join(unreachable)} not reached: their recordings wait for the next run "
            "(everything else is published)"
        )
    if waiting:
        raise OperationError(f"{waiting} recordings on nodes not published (listed above): everything else is")
