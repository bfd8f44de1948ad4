"""Ring groups: simultaneous, random, sequential (fixed or rotating order). R-GRP, R-SEQ."""

from .. import validate
from ..calllogic.callconfig import (  # the group rules (R-GRP, R-SEQ) are the call logic's
    GROUP_ORDERS as ORDERS,
    GROUP_STRATEGIES as STRATEGIES,
    MAX_GROUP_MEMBERS as MAX_MEMBERS,
    SEQUENTIAL_MAX_MEMBERS,
    SEQUENTIAL_RING_TIMES,
)
from ..errors import ValidationError
from ..model import Group, GroupMember, GroupRotation, User
from .common import (
    assert_number_free,
    check_destination,
    get_numbered,
    get_tenant,
    touch,
)
from .numbered import getter, lister, remover

get_group = getter("group")
list_groups = lister("group")
remove_group = remover("group")


def add_group(
    domain, number, name, strategy="simultaneous", order="fixed", ring_time=20, members=(), fallback="hangup"
):
    """Create a group with its members in order."""
    tenant = get_tenant(domain)
    number = validate.extension(number, "group.number")
    assert_number_free(tenant, number, "group.number")
    strategy, order, ring_time = _check_mode(strategy, order, ring_time)
    group = Group.create(
        tenant=tenant,
        number=number,
        name=validate.text(name, "group.name"),
        strategy=strategy,
        order=order,
        ring_time=ring_time,
        fallback=check_destination(tenant, fallback, "group.fallback", source=f"group:{number}"),
    )
    _set_members(tenant, group, members)
    touch(tenant)
    return group


def edit_group(
    domain,
    number,
    name=None,
    strategy=None,
    order=None,
    ring_time=None,
    members=None,
    add_members=(),
    remove_members=(),
    fallback=None,
):
    """Change a group; `members` replaces the list, add/remove change it."""
    tenant = get_tenant(domain)
    group = get_numbered(tenant, "group", number)
    if name is not None:
        group.name = validate.text(name, "group.name")
    group.strategy, group.order, group.ring_time = _check_mode(
        strategy if strategy is not None else group.strategy,
        order if order is not None else group.order,
        ring_time if ring_time is not None else group.ring_time,
    )
    if fallback is not None:
        group.fallback = check_destination(tenant, fallback, "group.fallback", source=f"group:{group.number}")
    group.save()
    current = [m.user.number for m in member_rows(group)]
    if members is not None:
        current = list(members)
    for number_ in remove_members:
        if number_ not in current:
            raise ValidationError("group.member", number_, f"is not a member of group {group.number}")
        current.remove(number_)
    current += list(add_members)
    _set_members(tenant, group, current)
    touch(tenant)
    return group


def member_rows(group):
    """The group's members in ring order."""
    return list(
        GroupMember.select(GroupMember, User)
        .join(User)
        .where(GroupMember.group == group)
        .order_by(GroupMember.position)
    )


def group_dict(group):
    """The stable JSON shape of a group."""
    return {
        "number": group.number,
        "name": group.name,
        "strategy": group.strategy,
        "order": group.order,
        "ring_time": group.ring_time,
        "members": [m.user.number for m in member_rows(group)],
        "fallback": group.fallback,
    }


def _check_mode(strategy, order, ring_time):
    strategy = validate.choice(strategy, "group.strategy", STRATEGIES)
    order = validate.choice(order, "group.order", ORDERS)
    if strategy == "sequential":
        ring_time = validate.integer(ring_time, "group.ring_time", allowed=SEQUENTIAL_RING_TIMES)
    else:
        ring_time = validate.integer(ring_time, "group.ring_time", 5, 300)
        if order == "rotating":
            raise ValidationError("group.order", order, "rotating order applies to sequential groups only")
    return strategy, order, ring_time


def _set_members(tenant, group, numbers):
    """Replace the member list, enforcing R-SEQ on sequential groups."""
    numbers = [validate.extension(n, "group.member") for n in numbers]
    seen = set()
    for n in numbers:
        if n in seen:
            raise ValidationError("group.member", n, "is listed twice")
        seen.add(n)
        if n == group.number:
            raise ValidationError("group.member", n, "a group cannot contain its own number")
    limit = SEQUENTIAL_MAX_MEMBERS if group.strategy == "sequential" else MAX_MEMBERS
    if len(numbers) > limit:
        raise ValidationError("group.members", len(numbers), f"a {group.strategy} group has at most {limit} members")
    users = []
    for n in numbers:
        user = User.get_or_none((User.tenant == tenant) & (User.number == n))
        if user is None:
            raise ValidationError("group.member", n, f"user {n} does not exist in {tenant.domain}")
        if group.strategy == "sequential" and user.forwarding():
            active = ", ".join(f.replace("fwd_", "") for f in user.forwarding())
            raise ValidationError(
                "group.member",
                n,
                f"user {n} has forwarding active ({active}); members of a sequential group cannot forward (R-SEQ)",
            )
        users.append(user)
    GroupMember.delete().where(GroupMember.group == group).execute()
    for position, user in enumerate(users, 1):
        GroupMember.create(group=group, user=user, position=position)
    # A changed member list restarts the rotation (its index meant another member).
    GroupRotation.delete().where(GroupRotation.group == group).execute()
