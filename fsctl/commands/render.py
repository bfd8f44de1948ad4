"""fsctl render / apply / status: the FreeSWITCH configuration of every tenant."""

from pathlib import Path

import click

from .. import render as rnd
from ..errors import ValidationError
from ..freeswitch import xmlcheck
from ..freeswitch.callcenter import CallcenterError, load_pending
from ..services import apply as svc
from ..services.nodes import nodes_defined
from ._apply import apply_nodes, print_apply_result
from ._base import pass_app, reading
from ._output import emit, json_option, print_json, say


@click.group("render", invoke_without_command=True)
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False),
    help="Folder to write the XML tree into (created if missing; never one holding FreeSWITCH XML "
    "fsctl did not write there).",
)
@json_option
@click.pass_context
def cli(ctx, out, as_json):
    """Render every active tenant's FreeSWITCH XML into a folder and validate it (FreeSWITCH is not touched).

    fsctl render kamailio: Kamailio's configuration and routing data instead.
    """
    if ctx.invoked_subcommand is not None:
        return
    if not out:
        raise click.UsageError("Missing option '--out'.", ctx)
    ctx.invoke(_render_freeswitch, out=out, as_json=as_json)


@reading
@pass_app
def _render_freeswitch(app, out, as_json):
    # Files an earlier render wrote for a tenant now gone (or suspended) would mislead whoever
    # copies the folder: they are removed, and only they (the folder's .fsctl-render.json).
    digests, stale = rnd.render_out(out, app.settings.templates_dir, app.settings.handoff_watchdog)
    xmlcheck.check_paths(out, sorted(digests))
    if as_json:
        print_json(
            {"out": out, "files": [{"path": p, "sha256": d} for p, d in sorted(digests.items())], "removed": stale}
        )
    else:
        removed = f" ({len(stale)} stale files of an earlier render removed)" if stale else ""
        say(f"{len(digests)} files rendered into {out} and validated{removed}")


@cli.command("kamailio")
@click.option(
    "--out", "out", type=click.Path(file_okay=False), help="Folder to write into (default: the kamailio_dir setting)."
)
@click.option("--no-check", is_flag=True, help="Do not run kamailio -c on the rendered kamailio.cfg.")
@json_option
@reading
@pass_app
def render_kamailio(app, out, no_check, as_json):
    """Render kamailio.cfg (template kamailio.cfg) and the routing data; check it with kamailio -c.

    The routing data (dispatcher.list, dbtext/) is what fsctl apply keeps in line and reloads;
    kamailio.cfg is read when Kamailio starts: restart Kamailio after rendering a changed one.
    """
    from ..services import kamailio

    folder = out or app.settings.kamailio_dir
    if not folder:
        raise ValidationError("--out", "", "give a folder, or set kamailio_dir in the settings")
    done = kamailio.render_all(app.settings, folder, check=not no_check)
    if as_json:
        print_json(done)
    else:
        checked = "checked with kamailio -c" if done["checked"] else "not checked (kamailio -c not run)"
        say(
            f"{len(done['files'])} files rendered into {done['out']} ({checked}); restart Kamailio if kamailio.cfg "
            "changed (the routing data needs no restart: fsctl apply reloads it)"
        )


@click.command("apply")
@click.option("--all", "full", is_flag=True, help="Render every tenant, not only those changed since the last apply.")
@click.option("--node", "only", multiple=True, help="With nodes: only this node (repeatable); Kamailio is not touched.")
@json_option
@pass_app
def apply(app, full, only, as_json):
    """Write what changed into the conf dir and reloadxml; on any failure restore the previous files.

    Then send mod_callcenter (which ignores reloadxml) the callcenter_config commands for the queues,
    agents and tiers that changed. If it refuses one, the XML stays applied and the next apply sends
    that tenant's callcenter changes again.

    With nodes (fsctl node add): every node in turn, each on its own conf dir and Event Socket; a node
    that cannot be reached keeps its tenants pending (exit 3) and the others are applied. Then
    Kamailio's routing (kamailio_dir): fsctl render kamailio.
    """
    app.open()
    settings = app.settings
    if nodes_defined():
        apply_nodes(app, full, only, as_json)
        return
    if only:
        raise ValidationError("--node", only[0], "there are no nodes (fsctl node add)")
    try:
        result = svc.apply_config(
            settings.conf_dir,
            svc.esl_reloader(settings),
            templates_dir=settings.templates_dir,
            watchdog=settings.handoff_watchdog,
            full=full,
        )
    except CallcenterError as exc:
        if exc.result is not None:  # the XML is applied: say what was done before the error line
            print_apply_result(exc.result, as_json)
        raise
    print_apply_result(result, as_json)


@click.command("status")
@json_option
@reading
@pass_app
def status(app, as_json):
    """Show per tenant the applied and current revision: applied, pending or removed.

    A tenant whose XML is applied but whose mod_callcenter commands are not all done shows
    pending / callcenter (the next fsctl apply sends them again). With nodes: one row per tenant
    and node holding it (role home, standby or draining).
    """
    if nodes_defined():
        from ..services.nodeapply import node_status

        emit(
            node_status(app.settings),
            as_json,
            ["domain", "node", "role", "applied_revision", "revision", "status", "change", "applied_at"],
        )
        return
    pending = load_pending(Path(app.settings.conf_dir))
    emit(
        svc.config_status(pending),
        as_json,
        ["domain", "state", "applied_revision", "revision", "status", "change", "applied_at"],
    )


EXTRA_COMMANDS = [apply, status]
