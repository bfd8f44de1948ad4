"""fsctl render / apply / status: the FreeSWITCH configuration of every tenant."""

from pathlib import Path

import click

from .. import render as rnd
from ..freeswitch import xmlcheck
from ..freeswitch.callcenter import CallcenterError, load_pending
from ..services import apply as svc
from ._apply import print_apply_result
from ._base import pass_app, transactional
from ._output import emit, json_option, print_json, say


@click.command("render")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False),
              help="Folder to write the XML tree into (created if missing).")
@json_option
@transactional
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
            print_apply_result(exc.result, as_json)
        raise
    print_apply_result(result, as_json)


@click.command("status")
@json_option
@transactional
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
