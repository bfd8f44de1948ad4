"""The model -> the call logic's snapshot of one tenant (fsctl.calllogic.callconfig.TenantConfig).

A fixed number of queries per tenant, whatever its size. Also the rotation store for
rotating sequential groups (compare-and-set, so concurrent calls and several service
processes never start two calls on the same member by accident).
"""

from collections import defaultdict

from ..calllogic import callconfig as cc
from ..calllogic.decide import RotationState
from ..model import (
    BlacklistEntry,
    Conference,
    Contact,
    Did,
    Group,
    GroupMember,
    GroupRotation,
    Holiday,
    Ivr,
    Queue,
    Tenant,
    TimeRange,
    TimeRule,
    User,
    utcnow,
)


def build_tenant_config(tenant, recordings_root=None):
    """The TenantConfig of a Tenant row."""
    extra = {"recordings_root": recordings_root} if recordings_root else {}
    snap_tenant = cc.Tenant(
        domain=tenant.domain, timezone=tenant.timezone, fallback=tenant.fallback, gateway=tenant.gateway, **extra
    )
    dids = list(Did.select().where(Did.tenant == tenant).order_by(Did.number))
    did_names = {d.number: d.name for d in dids}
    default_cid = dids[0].number if dids else None  # the rendered directory's default caller ID too
    users = [
        cc.User(
            number=u.number,
            name=u.name,
            record=u.record,
            vm_enabled=u.vm_enabled,
            forwarding=cc.Forwarding(
                always=u.fwd_always, busy=u.fwd_busy, no_answer=u.fwd_no_answer, unreachable=u.fwd_unreachable
            ),
            no_answer_timeout=u.no_answer_timeout,
            outbound_name=cc.outbound_name(
                tenant.name, tenant.outbound_name, did_names.get(u.caller_id_number or default_cid), u.outbound_name
            ),
        )
        for u in User.select().where(User.tenant == tenant)
    ]
    members = defaultdict(list)
    query = (
        GroupMember.select(GroupMember.group, GroupMember.position, User.number)
        .join(User)
        .join_from(GroupMember, Group)
        .where(Group.tenant == tenant)
        .order_by(GroupMember.position)
        .tuples()
    )
    for group_id, _position, number in query:
        members[group_id].append(number)
    groups = [
        cc.Group(
            number=g.number,
            name=g.name,
            strategy=g.strategy,
            order=g.order,
            ring_time=g.ring_time,
            members=tuple(members[g.id]),
            fallback=g.fallback,
        )
        for g in Group.select().where(Group.tenant == tenant)
    ]
    ranges, holidays = defaultdict(list), defaultdict(list)
    for r in TimeRange.select().join(TimeRule).where(TimeRule.tenant == tenant).order_by(TimeRange.id):
        ranges[r.rule_id].append(cc.TimeRange.from_text(r.weekdays, r.start, r.end))
    for h in Holiday.select().join(TimeRule).where(TimeRule.tenant == tenant).order_by(Holiday.id):
        holidays[h.rule_id].append(cc.Holiday(h.start_date, h.end_date, h.start_time, h.end_time, h.name))
    rules = [
        cc.TimeRule(
            name=r.name,
            ranges=tuple(ranges[r.id]),
            holidays=tuple(holidays[r.id]),
            match=r.match_destination,
            nomatch=r.nomatch_destination,
            timezone=r.timezone,
        )
        for r in TimeRule.select().where(TimeRule.tenant == tenant)
    ]
    return cc.TenantConfig.build(
        snap_tenant,
        users=users,
        groups=groups,
        dids=[cc.Did(d.number, d.destination, d.name) for d in dids],
        ivrs=[
            cc.Ivr(i.number, i.name, i.greeting, i.exit_destination) for i in Ivr.select().where(Ivr.tenant == tenant)
        ],
        time_rules=rules,
        queues=[
            cc.Queue(q.number, q.name, q.overflow, q.max_wait) for q in Queue.select().where(Queue.tenant == tenant)
        ],
        conferences=[
            cc.Conference(c.number, c.name, c.pin) for c in Conference.select().where(Conference.tenant == tenant)
        ],
        blacklist=[
            cc.BlacklistEntry(b.pattern, b.match, b.note)
            for b in BlacklistEntry.select().where(BlacklistEntry.tenant == tenant)
        ],
        contacts=list(Contact.select(Contact.number, Contact.name).where(Contact.tenant == tenant).tuples()),
    )


def load_rotation(tenant):
    """The rotation state of the tenant's rotating groups (group number -> next start index)."""
    query = (
        GroupRotation.select(Group.number, GroupRotation.next_start).join(Group).where(Group.tenant == tenant).tuples()
    )
    return RotationState(dict(query))


def save_rotation(tenant, updates):
    """Persist rotation updates with compare-and-set; returns the groups whose update lost a race.

    Updates of one group that follow each other (0->1, 1->2) are written as one compare-and-set
    (0->2) that counts all their calls: a batch costs a few queries per group, not per call.
    """
    lost = []
    for group_number, previous, next_start, calls in _chains(updates):
        group = Group.get_or_none((Group.tenant == tenant) & (Group.number == group_number))
        if group is None:
            continue
        row = GroupRotation.get_or_none(GroupRotation.group == group)
        if row is None:
            if previous != 0:
                lost.append(group_number)
                continue
            # The first rotating call of this group: insert; a racing insert fails on the unique key.
            try:
                with GroupRotation._meta.database.atomic():
                    GroupRotation.create(group=group, next_start=next_start, calls=calls)
            except Exception:  # noqa: BLE001 - IntegrityError of either engine: the race was lost
                lost.append(group_number)
            continue
        changed = (
            GroupRotation.update(next_start=next_start, calls=GroupRotation.calls + calls, updated_at=utcnow())
            .where((GroupRotation.id == row.id) & (GroupRotation.next_start == previous))
            .execute()
        )
        if not changed:
            lost.append(group_number)
    return lost


def _chains(updates):
    """[group, first previous, last next_start, calls] per run of updates that follow each other."""
    chains, open_chain = [], {}
    for update in updates:
        chain = open_chain.get(update.group)
        if chain is not None and chain[2] == update.previous:
            chain[2] = update.next_start
            chain[3] += 1
        else:
            chain = open_chain[update.group] = [update.group, update.previous, update.next_start, 1]
            chains.append(chain)
    return chains


def tenant_for_did(number):
    """The Tenant row owning a public number, or None."""
    did = Did.select(Did, Tenant).join(Tenant).where(Did.number == number).first()
    return did.tenant if did else None
