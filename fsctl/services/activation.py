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
    """(tenants, sum of their revisions, of their nodes by role): every configuration or placement
    change moves it."""
    from ..model import Tenant

    sums = [
        sql.COALESCE(sql.SUM(f), 0)
        for f in (Tenant.revision, Tenant.home_node, Tenant.standby_node, Tenant.draining_node)
    ]
    return Tenant.select(sql.COUNT(Tenant.id), *sums).tuples().get()


def apply_nodes(settings, now=None, full=False, only=None):
    """With nodes: every node (or `only` those), then Kamailio's routing when `kamailio_dir` is set
    (not for `only`); the ClusterResult (services.nodeapply)."""
    from . import nodeapply

    hook = None
    if settings.kamailio_dir and not only:
        from . import kamailio

        hook = kamailio.routing_hook(settings)
    return nodeapply.apply_nodes(settings, full=full, now=now, kamailio=hook, only=only)


def apply_pending(settings, now=None):
    """Apply what is not applied yet; None when FreeSWITCH already runs the current configuration.

    With nodes, every node and Kamailio (a ClusterResult); one not applied raises NotAppliedError
    with that result.
    """
    from ..freeswitch.callcenter import CallcenterError, load_pending
    from . import apply as svc
    from .nodes import nodes_defined

    if nodes_defined():
        result = apply_nodes(settings, now)
        if result.exit_code:
            what = "; ".join(f"{n.node}: {n.error}" for n in result.nodes if n.error) or result.kamailio_error
            raise NotAppliedError(
                f"saved; not applied everywhere: {what}; fsctl apply applies it", result.exit_code, result
            )
        return result
    changed, removed = svc.plan()
    if not changed and not removed and not load_pending(Path(settings.conf_dir)):
        return None
    try:
        return svc.apply_config(
            settings.conf_dir,
            svc.esl_reloader(settings),
            templates_dir=settings.templates_dir,
            watchdog=settings.handoff_watchdog,
        )
    except CallcenterError as exc:
        raise NotAppliedError(f"saved; {exc}", exc.exit_code, exc.result) from None
    except FsctlError as exc:
        raise NotAppliedError(f"saved, not applied: {exc}; fsctl apply applies it", exc.exit_code) from None


def apply_if_changed(settings, before, now=None):
    """After a committed change: apply it when the fingerprint moved since `before` (None: do nothing)."""
    if before is None or fingerprint() == before:
        return None
    return apply_pending(settings, now)
