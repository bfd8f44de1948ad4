"""What every provisioning service shares: tenant look-up, the numbering plan, destinations."""

from .. import validate
from ..errors import ConflictError, NotFoundError, ValidationError
from ..model import (
    NUMBERED,
    Did,
    Group,
    Ivr,
    IvrEntry,
    Media,
    Queue,
    Tenant,
    TimeRule,
    User,
    utcnow,
)

# FreeSWITCH hang-up causes a route may end with (switch_types.h, the ones a PBX uses).
HANGUP_CAUSES = (
    "NORMAL_CLEARING",
    "USER_BUSY",
    "NO_ANSWER",
    "CALL_REJECTED",
    "UNALLOCATED_NUMBER",
    "NO_ROUTE_DESTINATION",
    "NORMAL_TEMPORARY_FAILURE",
    "SERVICE_UNAVAILABLE",
)


OUTBOUND_NAME_MAX = 64  # a SIP display name; carriers cut longer ones


def outbound_name_value(value, field):
    """The caller name shown to carriers: text, or "" to clear it (None)."""
    if value is None or value == "":
        return None
    return validate.text(value, field, max_len=OUTBOUND_NAME_MAX)


def get_tenant(domain):
    """The tenant of `domain`, or NotFoundError."""
    clean = (domain or "").strip().lower().rstrip(".")
    tenant = Tenant.get_or_none(Tenant.domain == clean)
    if tenant is None:
        raise NotFoundError("tenant", domain)
    return tenant


def touch(tenant):
    """Mark the tenant's configuration changed (rendering compares the revision)."""
    Tenant.update(revision=Tenant.revision + 1, updated_at=utcnow()).where(Tenant.id == tenant.id).execute()
    tenant.revision += 1


def find_numbered(tenant, number):
    """(kind, row) of whatever owns `number` in the tenant's numbering plan, or None."""
    for kind, model in NUMBERED.items():
        row = model.get_or_none((model.tenant == tenant) & (model.number == number))
        if row is not None:
            return kind, row
    return None


def assert_number_free(tenant, number, field, own=None):
    """Numbers are unique across users, groups, IVRs, queues and conferences of a tenant."""
    found = find_numbered(tenant, number)
    if found is None:
        return
    kind, row = found
    if own is not None and own == (kind, row.id):
        return
    raise ConflictError(f'{field} "{number}": already used by {kind} {number} in {tenant.domain}')


def get_numbered(tenant, kind, number):
    """The row of kind `kind` with `number` in the tenant, or NotFoundError."""
    model = NUMBERED[kind]
    row = model.get_or_none((model.tenant == tenant) & (model.number == str(number).strip()))
    if row is None:
        raise NotFoundError(kind, number, tenant.domain)
    return row


def parse_destination(text, field):
    """Parse `kind:target` syntax (no existence check)."""
    from ..calllogic.callconfig import DESTINATION_KINDS, Destination  # (the call logic's model: not for reads)

    try:
        dest = Destination.parse((text or "").strip())
    except (ValueError, TypeError):
        raise ValidationError(
            field,
            text,
            "must be a destination like user:101, group:200, ivr:500, queue:600, "
            "timerule:office, voicemail:101, conference:700, external:+37052000000 or hangup",
        ) from None
    if dest.kind not in DESTINATION_KINDS:
        raise ValidationError(field, text, "kind must be one of " + ", ".join(DESTINATION_KINDS))
    return dest


def check_destination(tenant, text, field, source=None):
    """A destination that exists in this tenant, normalised to its text form.

    `source`: the destination whose route this is (`queue:600` for its overflow). A route back to
    itself cannot work and is refused: a queue overflowing into itself, a menu exiting into itself
    or a group falling back to itself would keep a caller going round (in XML: for ever).
    """
    dest = parse_destination(text, field)
    kind, target = dest.kind, dest.target or ""
    if source is not None and str(dest) == source:
        what = {"queue": "a queue's overflow", "ivr": "a menu's exit", "group": "a group's fallback"}.get(
            kind, "a route"
        )
        raise ValidationError(field, text, f"{what} cannot lead back to itself (callers would go round for ever)")
    if kind in NUMBERED:
        model = NUMBERED[kind]
        if not model.select().where((model.tenant == tenant) & (model.number == target)).exists():
            raise ValidationError(field, text, f"{kind} {target} does not exist in {tenant.domain}")
    elif kind == "voicemail":
        user = User.get_or_none((User.tenant == tenant) & (User.number == target))
        if user is None:
            raise ValidationError(field, text, f"user {target} does not exist in {tenant.domain}")
        if not user.vm_enabled:
            raise ValidationError(field, text, f"user {target} has voicemail switched off")
    elif kind == "timerule":
        if not TimeRule.select().where((TimeRule.tenant == tenant) & (TimeRule.name == target)).exists():
            raise ValidationError(field, text, f"time rule {target} does not exist in {tenant.domain}")
    elif kind == "external":
        validate.phone(target, field)
    elif kind == "hangup":
        if target and target not in HANGUP_CAUSES:
            raise ValidationError(field, text, "hang-up cause must be one of " + ", ".join(HANGUP_CAUSES))
    return str(dest)


def destination_slots(tenant):
    """Every place in the tenant that stores a destination: (label, model, row id, column, text)."""
    slots = []
    if tenant.fallback:
        slots.append((f"tenant {tenant.domain} fallback", Tenant, tenant.id, "fallback", tenant.fallback))
    for user in User.select().where(User.tenant == tenant):
        for col in User.FORWARD_FIELDS:
            value = getattr(user, col)
            if value:
                slots.append((f"user {user.number} {col}", User, user.id, col, value))
    for group in Group.select().where(Group.tenant == tenant):
        slots.append((f"group {group.number} fallback", Group, group.id, "fallback", group.fallback))
    for did in Did.select().where(Did.tenant == tenant):
        slots.append((f"did {did.number}", Did, did.id, "destination", did.destination))
    for ivr in Ivr.select().where(Ivr.tenant == tenant):
        slots.append((f"ivr {ivr.number} exit", Ivr, ivr.id, "exit_destination", ivr.exit_destination))
    entries = IvrEntry.select(IvrEntry, Ivr).join(Ivr).where(Ivr.tenant == tenant)
    for entry in entries:
        slots.append(
            (f"ivr {entry.ivr.number} digit {entry.digits}", IvrEntry, entry.id, "destination", entry.destination)
        )
    for rule in TimeRule.select().where(TimeRule.tenant == tenant):
        slots.append((f"time rule {rule.name} match", TimeRule, rule.id, "match_destination", rule.match_destination))
        slots.append(
            (f"time rule {rule.name} no match", TimeRule, rule.id, "nomatch_destination", rule.nomatch_destination)
        )
    for queue in Queue.select().where(Queue.tenant == tenant):
        slots.append((f"queue {queue.number} overflow", Queue, queue.id, "overflow", queue.overflow))
    return slots


def references_to(tenant, targets):
    """The destination slots that point at any of `targets` (destination texts)."""
    from ..calllogic.callconfig import Destination

    wanted = set(targets)
    found = []
    for slot in destination_slots(tenant):
        try:
            text = str(Destination.parse(slot[4]))
        except (ValueError, TypeError):
            text = slot[4]
        if text in wanted:
            found.append(slot)
    return found


def release_references(tenant, targets, what, force, replacement="hangup", exclude=()):
    """Refuse to remove something still routed to, or (force) re-point those routes.

    Returns the report lines of what was re-pointed.
    """
    slots = [s for s in references_to(tenant, targets) if (s[1], s[2]) not in set(exclude)]
    if not slots:
        return []
    if not force:
        where = ", ".join(s[0] for s in slots[:5]) + (" ..." if len(slots) > 5 else "")
        raise ConflictError(f"{what} is still referenced by {where}: re-point those first or use --force")
    report = []
    for label, model, row_id, column, old in slots:
        model.update({getattr(model, column): replacement}).where(model.id == row_id).execute()
        report.append(f"{label}: {old} -> {replacement}")
    return report


def apply_changes(row, changes):
    """Set the given attributes on a row and save it (only when something changed)."""
    dirty = False
    for key, value in changes.items():
        if getattr(row, key) != value:
            setattr(row, key, value)
            dirty = True
    if dirty:
        row.save()
    return dirty


def check_media(tenant, name, field):
    """A media name that exists in the tenant (None stays None)."""
    if not name:
        return None
    if not Media.select().where((Media.tenant == tenant) & (Media.name == name)).exists():
        raise ValidationError(field, name, f"media {name} does not exist in {tenant.domain} (fsctl media add)")
    return name
