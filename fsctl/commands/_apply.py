"""Applying to FreeSWITCH what a command changed (`--apply`, auto_apply) and reporting an apply."""

from pathlib import Path

from ..errors import FsctlError
from ..freeswitch.callcenter import CallcenterError, load_pending
from ..services import apply as svc
from ..services.nodes import get_node, nodes_defined
from ._output import print_json, say


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
        result = apply_nodes(app, False, (), False, strict=False)
        if result.exit_code:
            what = "; ".join(f"{n.node}: {n.error}" for n in result.nodes if n.error) or result.kamailio_error
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
            print_apply_result(exc.result, False)
        raise NotAppliedError(f"saved; {exc}", exc.exit_code) from None
    except FsctlError as exc:
        raise NotAppliedError(f"saved, not applied: {exc}; fsctl apply applies it", exc.exit_code) from None
    print_apply_result(result, False)


def print_apply_result(result, as_json):
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


def apply_nodes(app, full, only, as_json, strict=True):
    """Apply every node (fsctl.services.nodeapply), then Kamailio's routing; report per node.

    `strict`: a node or Kamailio not applied ends the command (exit 3 if unreachable, else 1).
    """
    from ..services import nodeapply

    settings = app.settings
    for name in only:
        get_node(name, "--node")
    hook = None
    if settings.kamailio_dir and not only:
        from ..services import kamailio

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
    pending = f" ({n.pending} tenants pending there)" if n.pending else ""
    if r is None and n.error:
        say(f"{line}: {n.error}{pending}")
        return
    say(line)
    if r is not None and r.callcenter:
        _report_callcenter(r)
    if n.error:
        say(f"{n.node}: {n.error}{pending}")
