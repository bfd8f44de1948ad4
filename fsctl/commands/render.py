"""fsctl render / apply / status: the FreeSWITCH configuration of every tenant."""

from pathlib import Path

import click

from .. import apply as svc
from .. import render as rnd
from .. import xmlcheck
from ..callcenter import CallcenterError, load_pending
from ..errors import FsctlError, ValidationError
from ..services.nodes import get_node, nodes_defined
from ._base import emit, json_option, pass_app, print_json, say, transactional


@click.group("render", invoke_without_command=True)
@click.option("--out", "out", type=click.Path(file_okay=False),
              help="Folder to write the XML tree into (created if missing).")
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


@transactional
@pass_app
def _render_freeswitch(app, out, as_json):
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


@cli.command("kamailio")
@click.option("--out", "out", type=click.Path(file_okay=False),
              help="Folder to write into (default: the kamailio_dir setting).")
@click.option("--no-check", is_flag=True, help="Do not run kamailio -c on the rendered kamailio.cfg.")
@json_option
@transactional
@pass_app
def render_kamailio(app, out, no_check, as_json):
    """Render kamailio.cfg (template kamailio.cfg) and the routing data; check it with kamailio -c.

    The routing data (dispatcher.list, dbtext/) is what fsctl apply keeps in line and reloads;
    kamailio.cfg is read when Kamailio starts: restart Kamailio after rendering a changed one.
    """
    from .. import kamailio

    folder = out or app.settings.kamailio_dir
    if not folder:
        raise ValidationError("--out", "", "give a folder, or set kamailio_dir in the settings")
    done = kamailio.render_all(app.settings, folder, check=not no_check)
    if as_json:
        print_json(done)
    else:
        checked = "checked with kamailio -c" if done["checked"] else "not checked (kamailio -c not run)"
        say(f"{len(done['files'])} files rendered into {done['out']} ({checked}); restart Kamailio if kamailio.cfg "
            "changed (the routing data needs no restart: fsctl apply reloads it)")


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
        _apply_nodes(app, full, only, as_json)
        return
    if only:
        raise ValidationError("--node", only[0], "there are no nodes (fsctl node add)")
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
    if nodes_defined():
        result = _apply_nodes(app, False, (), False, strict=False)
        if result.exit_code:
            failed = [n for n in result.nodes if n.error]
            what = "; ".join(n.error for n in failed) or result.kamailio_error
            raise NotAppliedError(f"saved; not applied everywhere: {what}; fsctl apply applies it", result.exit_code)
        return
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


def _apply_nodes(app, full, only, as_json, strict=True):
    """Apply every node (fsctl.nodeapply), then Kamailio's routing; report per node."""
    from .. import nodeapply

    settings = app.settings
    for name in only:
        get_node(name, "--node")
    hook = None
    if settings.kamailio_dir and not only:
        from .. import kamailio

        hook = kamailio.routing_hook(settings)
    result = nodeapply.apply_nodes(settings, full=full, now=app.now(), kamailio=hook, only=set(only) or None)
    if as_json:
        print_json(result.as_dict())
    else:
        for domain, node in result.drained:
            say(f"{node}: drained, {domain} taken off (its calls there are over)")
        for n in result.nodes:
            _report_node(n)
        if result.kamailio:
            say("kamailio: " + result.kamailio["summary"])
        if result.kamailio_error:
            say(f"kamailio: {result.kamailio_error}")
    if strict and result.exit_code:
        failed = [n.node for n in result.nodes if n.error]
        parts = []
        if failed:
            parts.append(f"{len(failed)} of {len(result.nodes)} nodes not fully applied ({', '.join(failed)}): "
                         "their tenants stay pending, the next fsctl apply retries")
        if result.kamailio_error:
            parts.append("kamailio's routing not applied")
        raise NotAppliedError("; ".join(parts), result.exit_code)
    return result


def _report_node(n):
    r = n.result
    if r is not None and (r.rendered or r.removed or r.reloaded or r.recovered):
        line = (f"{n.node}: {len(r.rendered)} tenants rendered, {len(r.removed)} removed, {len(r.written)} files "
                f"written, {len(r.deleted)} deleted; " + (f"reloadxml: {r.reply}" if r.reloaded else "no reload needed"))
    elif r is not None:
        line = f"{n.node}: nothing to apply"
    else:
        line = f"{n.node}: not applied"
    say(line)
    if r is not None and r.callcenter:
        _report_callcenter(r)
    if n.error:
        say(f"{n.node}: {n.error}" + (f" ({n.pending} tenants pending there)" if n.pending else ""))


@click.command("status")
@json_option
@transactional
@pass_app
def status(app, as_json):
    """Show per tenant the applied and current revision: applied, pending or removed.

    A tenant whose XML is applied but whose mod_callcenter commands are not all done shows
    pending / callcenter (the next fsctl apply sends them again). With nodes: one row per tenant
    and node holding it (role home, standby or draining).
    """
    if nodes_defined():
        from ..nodeapply import node_status

        emit(node_status(app.settings), as_json,
             ["domain", "node", "role", "applied_revision", "revision", "status", "change", "applied_at"])
        return
    pending = load_pending(Path(app.settings.conf_dir))
    emit(svc.config_status(pending), as_json,
         ["domain", "state", "applied_revision", "revision", "status", "change", "applied_at"])


EXTRA_COMMANDS = [apply, status]
