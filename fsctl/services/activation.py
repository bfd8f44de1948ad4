"""Instant activation (R-ADM): apply a committed change to FreeSWITCH, as `fsctl apply` would.

The CLI (`--apply` / the auto_apply setting) and the web workspace share this path: take the
tenants' fingerprint before a change, commit, then `apply_if_changed`. A failure keeps the
change saved and pending (NotAppliedError): the next `fsctl apply` applies it.
"""

from pathlib import Path

from peewee import fn as sql

from ..errors import FsctlError


class NotAppliedError(FsctlError):
    """A change is saved in the database but FreeSWITCH does not run it yet."""

    def __init__(self, message, exit_code, result=None):
        super().__init__(message)
        self.exit_code = exit_code
        self.result = result  # what was done before the failure (callcenter), or None


def fingerprint():
    """(tenants, sum of their revisions): every configuration change moves it."""
    from ..model import Tenant

    return Tenant.select(sql.COUNT(Tenant.id), sql.COALESCE(sql.SUM(Tenant.revision), 0)).tuples().get()


def apply_pending(settings):
    """Apply what is not applied yet; None when FreeSWITCH already runs the current configuration."""
    from ..freeswitch.callcenter import CallcenterError, load_pending
    from . import apply as svc

    changed, removed = svc.plan()
    if not changed and not removed and not load_pending(Path(settings.conf_dir)):
        return None
    try:
        return svc.apply_config(settings.conf_dir, svc.esl_reloader(settings), templates_dir=settings.templates_dir,
                                watchdog=settings.handoff_watchdog)
    except CallcenterError as exc:
        raise NotAppliedError(f"saved; {exc}", exc.exit_code, exc.result) from None
    except FsctlError as exc:
        raise NotAppliedError(f"saved, not applied: {exc}; fsctl apply applies it", exc.exit_code) from None


def apply_if_changed(settings, before):
    """After a committed change: apply it when the fingerprint moved since `before` (None: do nothing)."""
    if before is None or fingerprint() == before:
        return None
    return apply_pending(settings)
