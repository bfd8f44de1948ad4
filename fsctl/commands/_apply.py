"""Applying to FreeSWITCH what a command changed (`--apply`, auto_apply) and reporting an apply."""

from pathlib import Path

from ..errors import FsctlError
from ..freeswitch.callcenter import CallcenterError, load_pending
from ..services import apply as svc
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
