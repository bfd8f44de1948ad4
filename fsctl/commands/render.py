"""fsctl render / apply / status: the FreeSWITCH configuration of every tenant."""

from pathlib import Path

import click

from .. import apply as svc
from .. import render as rnd
from .. import xmlcheck
from ..callcenter import CallcenterError, load_pending
from ..errors import FsctlError
from ._base import emit, json_option, pass_app, print_json, reading, say


@click.command("render")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False),
              help="Folder to write the XML tree into (created if missing).")
@json_option
@reading
@pass_app
def cli(app, out, as_json):
    """Render every active tenant's FreeSWITCH XML into a folder and validate it (FreeSWITCH is not touched)."""
    digests = rnd.render_tree(out, app.settings.templates_dir, app.settings.handoff_watchdog)
    # What an earlier render left there for a tenant now gone (or suspended) would mislead whoever
    # copies the folder: only fsctl's own folders are cleaned, and only *.xml.
    stale = sorted(rel for rel in svc.managed_stamps(Path(out)) if rel not in digests)
    for rel in stale:
        (Path(out) / rel).unlink()
    xmlcheck.check_paths(out, sorted(digests))
    if as_json:
        print_json({"out": out, "files": [{"path": p, "sha256": d} for p, d in sorted(digests.items())],
                    "removed": stale})
    else:
        removed = f" ({len(stale)} stale files of an earlier render removed)" if stale else ""
        say(f"{len(digests)} files rendered into {out} and validated{removed}")


@click.command("apply")
@click.option("--all", "full", is_flag=True, help="Render every tenant, not only those changed since the last apply.")
@json_option
@pass_app
def apply(app, full, as_json):
    """Write what changed into the conf dir and reloadxml; on any failure restore the previous files.

    Then send mod_callcenter (which ignores reloadxml) the callcenter_config commands for the queues,
    agents and tiers that changed. If it refuses one, the XML stays applied and the next apply sends
    that tenant's callcenter changes again.
    """
    app.open()
    settings = app.settings
    try:
        result = svc.apply_config(settings.conf_dir, svc.esl_reloader(settings), templates_dir=settings.templates_dir,
                                  watchdog=settings.handoff_watchdog, full=full)
    except CallcenterError as exc:
        if exc.result is not None:  # the XML is applied: say what was done before the error line
            _report(exc.result, as_json)
        raise
    _report(result, as_json)


class NotAppliedError(FsctlError):
    """A change is saved in the database but FreeSWITCH does not run it yet."""

    def __init__(self, message, exit_code):
        super().__init__(message)
        self.exit_code = exit_code


def apply_after_change(app):
    """`--apply` / auto_apply (R-ADM instant activation): apply what a committed command changed.

    Nothing changed (a list, a show) -> nothing happens. A failure keeps the change saved and
    says so: `fsctl apply` (or the next command with --apply) applies it.
    """
    settings = app.settings
    changed, removed = svc.plan()
    if not changed and not removed and not load_pending(Path(settings.conf_dir)):
        return
    try:
        result = svc.apply_config(settings.conf_dir, svc.esl_reloader(settings), templates_dir=settings.templates_dir,
                                  watchdog=settings.handoff_watchdog)
    except CallcenterError as exc:
        if exc.result is not None:
            _report(exc.result, False)
        raise NotAppliedError(f"saved; {exc}", exc.exit_code) from None
    except FsctlError as exc:
        raise NotAppliedError(f"saved, not applied: {exc}; fsctl apply applies it", exc.exit_code) from None
    _report(result, False)


def _report(result, as_json):
    if as_json:
        print_json(result.as_dict())
        return
    if result.recovered:
        say(f"recovered from an interrupted apply: {len(result.recovered)} files restored")
    if not result.rendered and not result.removed and not result.reloaded and not result.callcenter:
        say("nothing to apply: FreeSWITCH already runs the current configuration (no reload)")
        return
    if result.rendered or result.removed or result.reloaded:
        say(f"{len(result.rendered)} tenants rendered, {len(result.removed)} removed, {len(result.written)} files "
            f"written, {len(result.deleted)} deleted")
        say("reloadxml: " + result.reply if result.reloaded else "files unchanged: no reload needed")
    if result.callcenter:
        _report_callcenter(result)


def _report_callcenter(result):
    records = result.callcenter
    domains = sorted({r["domain"] for r in records})
    retried = [d for d in domains if d in result.callcenter_retried]
    if len(domains) <= 3:
        where = ", ".join(d + (" (pending since an earlier apply)" if d in retried else "") for d in domains)
    else:
        where = f"{len(domains)} tenants" + (f" ({len(retried)} pending since an earlier apply)" if retried else "")
    undone = [r for r in records if r["status"] in ("failed", "not sent")]
    if not undone:
        say(f"callcenter: {len(records)} commands for {where}: +OK")
        return
    done = len(records) - len(undone)
    say(f"callcenter: {done} of {len(records)} commands done for {where}; not done, "
        "sent again by the next fsctl apply (or by hand with fs_cli -x):")
    for r in undone:
        say(f"  {r['command']}")


@click.command("status")
@json_option
@reading
@pass_app
def status(app, as_json):
    """Show per tenant the applied and current revision: applied, pending or removed.

    A tenant whose XML is applied but whose mod_callcenter commands are not all done shows
    pending / callcenter (the next fsctl apply sends them again).
    """
    pending = load_pending(Path(app.settings.conf_dir))
    emit(svc.config_status(pending), as_json,
         ["domain", "state", "applied_revision", "revision", "status", "change", "applied_at"])


EXTRA_COMMANDS = [apply, status]
