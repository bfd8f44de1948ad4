"""Recording groups: which supervisors see whose recordings. R-REC."""

from .. import validate
from ..errors import ConflictError, ValidationError
from ..model import RecordingGroup, RecordingGroupMember, RecordingGroupSupervisor, User
from .common import get_tenant
from .numbered import deleter, getter, lister

_NOUN = {"model": RecordingGroup, "key": "name", "label": "recording group"}
get_recgroup = getter("recgroup", **_NOUN)
list_recgroups = lister("recgroup", **_NOUN)
# Recordings stay; the tenant's FreeSWITCH configuration does not change (no touch).
remove_recgroup = deleter(get_recgroup, recursive=True, touches=False, label="recording group (its recordings stay)")


def add_recgroup(domain, name, members=(), supervisors=()):
    """Create a recording group."""
    tenant = get_tenant(domain)
    name = validate.slug(name, "recgroup.name")
    if RecordingGroup.select().where((RecordingGroup.tenant == tenant) & (RecordingGroup.name == name)).exists():
        raise ConflictError(f'recgroup.name "{name}": already exists in {tenant.domain}')
    group = RecordingGroup.create(tenant=tenant, name=name)
    _set(tenant, group, RecordingGroupMember, members, "recgroup.member")
    _set(tenant, group, RecordingGroupSupervisor, supervisors, "recgroup.supervisor")
    return group


def edit_recgroup(domain, name, members=None, supervisors=None):
    """Replace the members and/or supervisors of a recording group."""
    group = get_recgroup(domain, name)
    if members is not None:
        _set(group.tenant, group, RecordingGroupMember, members, "recgroup.member")
    if supervisors is not None:
        _set(group.tenant, group, RecordingGroupSupervisor, supervisors, "recgroup.supervisor")
    return group


def recgroup_dict(group):
    """The stable JSON shape of a recording group."""

    def numbers(model):
        return sorted(r.user.number for r in model.select(model, User).join(User).where(model.group == group))

    return {
        "name": group.name,
        "members": numbers(RecordingGroupMember),
        "supervisors": numbers(RecordingGroupSupervisor),
    }


def _set(tenant, group, model, numbers, field):
    users = []
    for n in numbers:
        n = validate.extension(n, field)
        user = User.get_or_none((User.tenant == tenant) & (User.number == n))
        if user is None:
            raise ValidationError(field, n, f"user {n} does not exist in {tenant.domain}")
        if user in users:
            raise ValidationError(field, n, "is listed twice")
        users.append(user)
    model.delete().where(model.group == group).execute()
    for user in users:
        model.create(group=group, user=user)
