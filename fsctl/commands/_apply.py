"""Applying to FreeSWITCH what a command changed (`--apply`, auto_apply) and reporting an apply."""

from ..services import activation
from ._output import print_json, say


def apply_after_change(app, before):
    """`--apply` / auto_apply (R-ADM instant activation): apply what a committed command changed.

    Nothing changed (a list, a show) -> nothing happens. A failure keeps the change saved and
    says so: `fsctl apply` (or the next command with --apply) applies it. The path itself is
    services.activation's, which the web workspace shares.
    """
    try:
        result = activation.apply_if_changed(app.settings, before)
    except activation.NotAppliedError as exc:
        if exc.result is not None:  # the XML is applied: say what was done before the error line
            print_apply_result(exc.result, False)
        raise
    if result is not None:
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
