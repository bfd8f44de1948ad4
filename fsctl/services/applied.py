"""What each FreeSWITCH runs, per tenant: the scope of one apply and where it is recorded.

Without nodes the conf dir is the one FreeSWITCH's and every active tenant goes there
(`EVERYTHING`, revisions in `AppliedConfig`). With nodes each node's apply holds the tenants
placed on it (`OnNode`, revisions in `NodeConfig`, one row per node and tenant).
"""

from .. import render
from ..model import AppliedConfig, NodeConfig


class Everything:
    """The one FreeSWITCH of the settings: every active tenant, applied revisions in AppliedConfig."""

    node = None

    def applied(self) -> dict:
        """{domain: revision} of what this FreeSWITCH runs."""
        return dict(render.plain_rows(AppliedConfig.select(AppliedConfig.domain, AppliedConfig.revision)))

    def record(self, changed, removed, digests, now):
        """Record the tenants rendered and removed by a successful apply."""
        _record(AppliedConfig, {}, changed, removed, digests, now)


class OnNode(Everything):
    """One node of several: the active tenants it holds, applied revisions in NodeConfig."""

    def __init__(self, node):
        self.node = node

    def applied(self) -> dict:
        query = NodeConfig.select(NodeConfig.domain, NodeConfig.revision).where(NodeConfig.node == self.node)
        return dict(render.plain_rows(query))

    def record(self, changed, removed, digests, now):
        _record(NodeConfig, {"node": self.node}, changed, removed, digests, now)


EVERYTHING = Everything()


def _record(table, key, changed, removed, digests, now):
    """Upsert the applied revision of each changed tenant into `table` (rows matching `key`), drop the removed."""
    where = [getattr(table, k) == v for k, v in key.items()]
    for tenant in changed:
        row = table.get_or_none(table.domain == tenant.domain, *where)
        if row is None:
            table.create(
                domain=tenant.domain, revision=tenant.revision, digest=digests[tenant.domain], applied_at=now, **key
            )
        else:
            row.revision, row.digest, row.applied_at = tenant.revision, digests[tenant.domain], now
            row.save()
    if removed:
        table.delete().where(table.domain.in_(removed), *where).execute()
