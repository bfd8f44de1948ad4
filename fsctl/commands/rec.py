"""fsctl rec ... (R-REC): catalogue, search, marks, purge, SFTP pull, daily publication."""

import sys

import click

from ..db import transaction
from ..errors import OperationError
from ..services import recordings as rec
from ._base import pass_app, reading, transactional
from ._output import emit, json_option, print_json, say

AS_HELP = ("Act as this user (USER@DOMAIN) and see only what they may: their own recordings, their "
           "recording groups' (supervisor), or the tenant's (admin). Without it: the operator, every tenant.")
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


FILTER_NAMES = ("tenant", "since", "until", "min_length", "max_length", "user", "user_name", "counterpart",
                "colour", "note", "field1", "field2", "field3")


def _filters(kwargs):
    return rec.make_filters(**{k: kwargs.pop(k) for k in FILTER_NAMES})


@click.group("rec")
def cli():
    """Call recordings: catalogue, search, marks, retention, SFTP pull and publication."""


@cli.command("import")
@click.option("--dir", "directory", type=click.Path(file_okay=False), help="Recordings folder (default: setting "
              "recordings_dir).")
@pass_app
@transactional
def import_(app, directory):
    """Catalogue the recordings folder (idempotent: new files added, known ones kept with their marks)."""
    report = rec.import_recordings(directory or app.settings.recordings_dir)
    for path, reason in report.skipped:
        say(f"skipped {path}: {reason}")
    click.echo(f"{report.added} added, {report.updated} updated, {report.unchanged} unchanged, "
               f"{len(report.skipped)} skipped")


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
    row = rec.mark(recording_id, as_user, note=note, colour=colour,
                   fields={"field1": field1, "field2": field2, "field3": field3}, via="cli", now=app.now(),
                   if_version=if_version)
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
@click.option("--dry-run", is_flag=True, help="Only print what would be removed.")
@pass_app
@transactional
def purge(app, dry_run):
    """Remove recordings past the retention (180 days) and each user's oldest beyond the quota (30 MB)."""
    s = app.settings
    plan = rec.purge(s.recordings_dir, s.recording_retention_days, s.recording_quota_mb, dry_run=dry_run)
    verb = "would purge" if dry_run else "purged"
    for item in plan.items:
        click.echo(f"{verb} {item.id} {item.domain} {item.user} {item.started_at:%Y-%m-%dT%H:%M:%SZ} "
                   f"{item.path} ({item.reason})")
    for line in plan.warnings:
        say(f"warning: {line}")
    say(f"{len(plan.items)} recordings {verb}")


@cli.command("pull")
@filter_options
@as_option
@click.option("--dest", "target", required=True, type=click.Path(file_okay=False), help="Local folder.")
@click.option("--jobs", type=click.IntRange(1, 32),
              help="Parallel connections (default: one per CPU core, at most 4).")
@click.option("--limit", default=100000, show_default=True, help="At most this many recordings.")
@json_option
@pass_app
def pull(app, as_user, target, jobs, limit, as_json, **kwargs):
    """Fetch recordings over SFTP (resumable, verified): fsctl rec pull --dest ./rec --from 2026-11-01."""
    filters = _filters(kwargs)
    s = app.settings
    from ..services import sftp  # (subprocess and the SFTP code: only for pull)

    endpoint = sftp.Endpoint.from_settings(s)
    started = sftp.Connection(endpoint, wait=False)  # ssh's handshake overlaps the catalogue query
    try:
        app.open()
        with transaction():
            rows = rec.search(filters, as_user, limit, 0, max_limit=10**7)
            transfers = sftp.pull_transfers(rows, s.sftp_remote_dir, target)
    except BaseException:
        started.close()
        raise
    results = _fetch_with_progress(endpoint, transfers, jobs, as_json, started)
    if as_json:
        print_json([{"path": t.local_path, "status": r.status, "resumed_from": r.resumed_from, "error": r.error}
                    for t, r in zip(transfers, results)])
    failed = [r for r in results if r.status == "failed"]
    for r in failed:
        say(f"failed {r.error}")
    counts = {k: sum(1 for r in results if r.status == k) for k in ("fetched", "resumed", "skipped", "failed")}
    say(", ".join(f"{v} {k}" for k, v in counts.items()))
    if failed:
        raise OperationError(f"{len(failed)} of {len(results)} recordings failed: {failed[0].error}")


def _fetch_with_progress(endpoint, transfers, jobs, quiet, started):
    """fetch_all with a progress bar on a terminal (rich is imported only then)."""
    from ..services import sftp

    if quiet or not sys.stderr.isatty():
        return sftp.fetch_all(endpoint, transfers, jobs, started=started)
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    total = sum(t.size for t in transfers)
    with Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(f"{len(transfers)} recordings", total=total)
        return sftp.fetch_all(endpoint, transfers, jobs, progress=lambda _t, n: bar.advance(task, n), started=started)


@cli.command("publish")
@click.option("--date", "day", metavar="YYYY-MM-DD", help="The day to publish (default: the latest publishable).")
@click.option("--tenant", "domains", multiple=True, help="Only this tenant (repeat).")
@click.option("--force", is_flag=True, help="Publish even before 06:00 of the next day in the tenant's time zone.")
@pass_app
@reading
def publish(app, day, domains, force):
    """Daily job: put each tenant's previous-day recordings and SHA256SUMS in its SFTP drop folder."""
    from ..services import publish as publishing

    s = app.settings
    for r in publishing.publish(s.recordings_dir, s.publish_dir, s.publish_hour, s.publish_keep_days,
                                day=day, now=app.now(), force=force, domains=domains):
        for path in r.missing:
            say(f"warning: {r.domain} {path}: catalogued but the file is gone, not published")
        line = (f"{r.domain} {r.day.isoformat()}: {r.published} recordings ({r.linked} linked, {r.copied} copied, "
                f"{r.unchanged} already there)")
        if r.removed:
            line += "; removed " + ", ".join(r.removed)
        click.echo(line)
