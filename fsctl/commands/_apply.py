"""Applying to FreeSWITCH what a command changed (`--apply`, auto_apply) and reporting an apply."""

from ..services import activation
from ..services.nodes import get_node
from ._output import print_json, say


def apply_after_change(app, before):
    """`--apply` / auto_apply (R-ADM instant activation): apply what a committed command changed.

    Nothing changed (a list, a show) -> nothing happens. A failure keeps the change saved and
    says so: `fsctl apply` (or the next command with --apply) applies it. The path itself is
    services.activation's, which the web workspace shares.
    """
    try:
        result = activation.apply_if_changed(app.settings, before, now=app.now())
    except activation.NotAppliedError as exc:
        if exc.result is not None:  # the XML is applied (there): say what was done before the error line
            print_apply_result(exc.result, False)
        raise
    if result is not None:
        print_apply_result(result, False)


def apply_nodes(app, full, only, as_json):
    """`fsctl apply` with nodes: every node (services.nodeapply), then Kamailio's routing; report per
    node. A node or Kamailio not applied ends the command (exit 3 if unreachable, else 1)."""
    for name in only:
        get_node(name, "--node")
    result = activation.apply_nodes(app.settings, now=app.now(), full=full, only=set(only) or None)
    print_apply_result(result, as_json)
    if result.exit_code:
        failed = [n.node for n in result.nodes if n.error]
        parts = []
        if failed:
            parts.append(
                f"{len(failed)} of {len(result.nodes)} nodes not fully applied ({', '.join(failed)}): "
                "their tenants stay pending, the next fsctl apply retries"
            )
        if result.kamailio_error:
            parts.append("kamailio's routing not applied")
        raise activation.NotAppliedError("; ".join(parts), result.exit_code)
    return result


def print_apply_result(result, as_json):
    """An apply's report: one FreeSWITCH's (ApplyResult), or every node's and Kamailio's (ClusterResult)."""
    if hasattr(result, "nodes"):
        _print_cluster(result, as_json)
        return
    if as_json:
        print_json(result.as_dict())
        return
    if result.recovered:
        say(f"recovered from an interrupted apply: {len(result.recovered)} files restored")
    if not result.rendered and not result.removed and not result.reloaded and not result.callcenter:
        say("nothing to apply: FreeSWITCH already runs the current configuration (no reload)")
        return
    if result.rendered or result.removed or result.reloaded:
        say(
            f"{len(result.rendered)} tenants rendered, {len(result.removed)} removed, {len(result.written)} files "
            f"written, {len(result.deleted)} deleted"
        )
        say("reloadxml: " + result.reply if result.reloaded else "files unchanged: no reload needed")
    if result.callcenter:
        _report_callcenter(result)


def _report_callcenter(result, prefix=""):
    """What mod_callcenter was told; `prefix` names the node ("fs1: ") with nodes."""
    records = result.callcenter
    domains = sorted({r["domain"] for r in records})
    retried = [d for d in domains if d in result.callcenter_retried]
    if len(domains) <= 3:
        where = ", ".join(d + (" (pending since an earlier apply)" if d in retried else "") for d in domains)
    else:
        where = f"{len(domains)} tenants" + (f" ({len(retried)} pending since an earlier apply)" if retried else "")
    undone = [r for r in records if r["status"] in ("failed", "not sent")]
    if not undone:
        say(f"{prefix}callcenter: {len(records)} commands for {where}: +OK")
        return
    done = len(records) - len(undone)
    say(
        f"{prefix}callcenter: {done} of {len(records)} commands done for {where}; not done, "
        "sent again by the next fsctl apply (or by hand with fs_cli -x):"
    )
    for r in undone:
        say(f"  {r['command']}")


def _print_cluster(result, as_json):
    if as_json:
        print_json(result.as_dict())
        return
    for domain, node in result.drained:
        say(f"{node}: drained, {domain} taken off (its calls there are over)")
    for n in result.nodes:
        _report_node(n)
    if result.kamailio:
        say("kamailio: " + result.kamailio["summary"])
    if result.kamailio_error:
        say(f"kamailio: {result.kamailio_error}")


def _report_node(n):
    r = n.result
    if r is not None and (r.rendered or r.removed or r.reloaded or r.recovered):
        line = (
            f"{n.node}: {len(r.rendered)} tenants rendered, {len(r.removed)} removed, {len(r.written)} files "
            f"written, {len(r.deleted)} deleted; " + (f"reloadxml: {r.reply}" if r.reloaded else "no reload needed")
        )
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
        _report_callcenter(r, f"{n.node}: ")
    if n.error:
        say(f"{n.node}: {n.error}{pending}")
