"""Users (extensions): add, list, show, edit, remove; forwarding rules; SIP credentials."""

import secrets
import string

from .. import validate
from ..errors import ConflictError, ValidationError
from ..model import Group, GroupMember, QueueAgent, RecordingGroupMember, RecordingGroupSupervisor, Tenant, User
from .common import (
    assert_number_free,
    check_destination,
    get_numbered,
    get_tenant,
    outbound_name_value,
    release_references,
    touch,
)
from .numbered import getter, lister

ROLES = ("user", "supervisor", "admin")
TOLLS = ("internal", "local", "national", "international")
FORWARD_OPTIONS = {
    "always": "fwd_always",
    "busy": "fwd_busy",
    "no_answer": "fwd_no_answer",
    "unreachable": "fwd_unreachable",
}
_PASSWORD_ALPHABET = string.ascii_letters + string.digits + "-_.~"


get_user = getter("user")
list_users = lister("user")


def generate_password(length=24):
    """A strong random SIP password."""
    return "".join(secrets.choice(_PASSWORD_ALPHABET) for _ in range(length))


def generate_pin(length=6):
    """A random numeric voicemail PIN."""
    return "".join(secrets.choice(string.digits) for _ in range(length))


def add_user(
    domain,
    number,
    name,
    email=None,
    password=None,
    role="user",
    vm_enabled=True,
    vm_pin=None,
    record=False,
    toll="national",
    caller_id_number=None,
    no_answer_timeout=20,
    outbound_name=None,
):
    """Create a user; the SIP password and voicemail PIN are generated when not given."""
    tenant = get_tenant(domain)
    number = validate.extension(number, "user.number")
    assert_number_free(tenant, number, "user.number")
    if tenant.max_users is not None:
        count = User.select().where(User.tenant == tenant).count()
        if count >= tenant.max_users:
            raise ValidationError(
                "user.number", number, f"tenant {tenant.domain} is limited to {tenant.max_users} users"
            )
    user = User.create(
        tenant=tenant,
        number=number,
        name=validate.text(name, "user.name"),
        email=validate.email(email, "user.email") if email else None,
        sip_password=validate.sip_password(password) if password is not None else generate_password(),
        role=validate.choice(role, "user.role", ROLES),
        vm_enabled=bool(vm_enabled),
        vm_pin=validate.pin(vm_pin, "user.vm_pin") if vm_pin else generate_pin(),
        record=bool(record),
        toll=validate.choice(toll, "user.toll", TOLLS),
        caller_id_number=_caller_id(tenant, caller_id_number),
        no_answer_timeout=validate.integer(no_answer_timeout, "user.no_answer_timeout", 5, 300),
        outbound_name=outbound_name_value(outbound_name, "user.outbound_name"),
    )
    touch(tenant)
    return user


def edit_user(
    domain,
    number,
    name=None,
    email=None,
    password=None,
    role=None,
    vm_enabled=None,
    vm_pin=None,
    record=None,
    toll=None,
    caller_id_number=None,
    no_answer_timeout=None,
    new_number=None,
    forward=None,
    unforward=(),
    outbound_name=None,
):
    """Change a user; `forward` maps always/busy/no_answer/unreachable to a destination text."""
    tenant = get_tenant(domain)
    user = get_numbered(tenant, "user", number)
    changes = {}
    if name is not None:
        changes["name"] = validate.text(name, "user.name")
    if email is not None:
        changes["email"] = validate.email(email, "user.email") if email else None
    if password is not None:
        changes["sip_password"] = validate.sip_password(password)
    if role is not None:
        changes["role"] = validate.choice(role, "user.role", ROLES)
    if vm_enabled is not None:
        changes["vm_enabled"] = bool(vm_enabled)
        if not vm_enabled:
            _refuse_if_voicemail_routed(tenant, user)
    if vm_pin is not None:
        changes["vm_pin"] = validate.pin(vm_pin, "user.vm_pin")
    if record is not None:
        changes["record"] = bool(record)
    if toll is not None:
        changes["toll"] = validate.choice(toll, "user.toll", TOLLS)
    if caller_id_number is not None:
        changes["caller_id_number"] = _caller_id(tenant, caller_id_number)
    if no_answer_timeout is not None:
        changes["no_answer_timeout"] = validate.integer(no_answer_timeout, "user.no_answer_timeout", 5, 300)
    if outbound_name is not None:
        changes["outbound_name"] = outbound_name_value(outbound_name, "user.outbound_name")
    if new_number is not None and new_number != user.number:
        new_number = validate.extension(new_number, "user.number")
        assert_number_free(tenant, new_number, "user.number")
        release_references(
            tenant, [f"user:{user.number}", f"voicemail:{user.number}"], f"user {user.number}", force=False
        )
        changes["number"] = new_number
    for option in unforward:
        column = FORWARD_OPTIONS[validate.choice(option, "user.forward", tuple(FORWARD_OPTIONS))]
        changes[column] = None
    for option, target in (forward or {}).items():
        column = FORWARD_OPTIONS[validate.choice(option, "user.forward", tuple(FORWARD_OPTIONS))]
        field = f"user.forward.{option}"
        text = check_destination(tenant, target, field)
        if text in (f"user:{user.number}",):
            raise ValidationError(field, target, "a user cannot forward to themself")
        _refuse_forwarding_in_sequential_group(user, field, target)
        changes[column] = text
    for key, value in changes.items():
        setattr(user, key, value)
    if changes:
        user.save()
        touch(tenant)
    return user


def remove_user(domain, number, force=False):
    """Remove a user; refused while routes, groups or queues use them unless `force` (then re-pointed)."""
    tenant = get_tenant(domain)
    user = get_numbered(tenant, "user", number)
    report = release_references(
        tenant,
        [f"user:{user.number}", f"voicemail:{user.number}"],
        f"user {user.number}",
        force,
        exclude=[(User, user.id)],
    )
    memberships = [
        f"group {m.group.number}"
        for m in GroupMember.select(GroupMember, Group).join(Group).where(GroupMember.user == user)
    ] + [f"queue {a.queue.number}" for a in QueueAgent.select().where(QueueAgent.user == user)]
    if memberships and not force:
        raise ConflictError(f"user {user.number} is still a member of {', '.join(memberships)}: use --force")
    report += [f"{m}: member {user.number} removed" for m in memberships]
    group_ids = [m.group_id for m in GroupMember.select().where(GroupMember.user == user)]
    RecordingGroupMember.delete().where(RecordingGroupMember.user == user).execute()
    RecordingGroupSupervisor.delete().where(RecordingGroupSupervisor.user == user).execute()
    user.delete_instance(recursive=True)
    _renumber_positions(group_ids)
    touch(tenant)
    return report


def user_dict(user, show_secrets=False):
    """The stable JSON shape of a user (secrets only when asked)."""
    data = {
        "tenant": user.tenant.domain if isinstance(user.tenant, Tenant) else None,
        "number": user.number,
        "name": user.name,
        "email": user.email,
        "role": user.role,
        "vm_enabled": user.vm_enabled,
        "record": user.record,
        "toll": user.toll,
        "caller_id_number": user.caller_id_number,
        "no_answer_timeout": user.no_answer_timeout,
        "outbound_name": user.outbound_name,
        "forward": {opt: getattr(user, col) for opt, col in FORWARD_OPTIONS.items() if getattr(user, col)},
    }
    if show_secrets:
        data["sip_password"] = user.sip_password
        data["vm_pin"] = user.vm_pin
    return data


def sip_config(domain, number, server="127.0.0.1:5060"):
    """What a phone or softphone needs to register as this user (includes the SIP password)."""
    user = get_user(domain, number)
    return {
        "username": user.number,
        "auth_username": user.number,
        "password": user.sip_password,
        "domain": user.tenant.domain,
        "registrar": server,
        "outbound_proxy": server,
        "transport": "udp",
        "display_name": user.name,
    }


def _caller_id(tenant, value):
    if not value:
        return None
    from ..model import Did

    number = validate.e164(value, "user.caller_id_number")
    if not Did.select().where((Did.tenant == tenant) & (Did.number == number)).exists():
        raise ValidationError("user.caller_id_number", value, f"must be a DID of {tenant.domain}")
    return number


def _refuse_forwarding_in_sequential_group(user, field, target):
    """R-SEQ: a number in a sequential list must not have any forwarding active."""
    groups = (
        Group.select()
        .join(GroupMember)
        .where((GroupMember.user == user) & (Group.strategy == "sequential"))
        .order_by(Group.number)
    )
    for group in groups:
        raise ValidationError(
            field,
            target,
            f"user {user.number} is in sequential group {group.number}; its members cannot forward (R-SEQ)",
        )


def _refuse_if_voicemail_routed(tenant, user):
    from .common import references_to

    slots = references_to(tenant, [f"voicemail:{user.number}"])
    if slots:
        raise ConflictError(
            f"user {user.number}: voicemail is routed to by {', '.join(s[0] for s in slots[:5])}: re-point those first"
        )


def _renumber_positions(group_ids):
    """Group positions stay 1..n after a member leaves."""
    for group_id in group_ids:
        members = list(GroupMember.select().where(GroupMember.group == group_id).order_by(GroupMember.position))
        for index, member in enumerate(members, 1):
            if member.position != index:
                member.position = index
                member.save()
