"""Tenants: add, list, show, edit, remove."""

from .. import validate
from ..errors import ConflictError, ValidationError
from ..model import CallRecord, Recording, Tenant, User, utcnow
from . import nodes
from .common import check_destination, get_tenant, outbound_name_value  # noqa: F401 (get_tenant re-exported)

STATES = ("active", "suspended")


def add_tenant(
    domain,
    name,
    timezone="UTC",
    max_users=None,
    max_channels=None,
    gateway="default",
    node=None,
    standby=None,
    now=None,
    outbound_name=None,
):
    """Create a tenant; its fallback starts as hang-up.

    With nodes defined it gets a home and a standby node: `node` / `standby` by name, else the
    least loaded ones (fsctl.services.nodes).
    """
    domain = validate.domain(domain)
    name = validate.text(name, "tenant.name")
    timezone = validate.timezone(timezone)
    if Tenant.select().where(Tenant.domain == domain).exists():
        raise ConflictError(f'tenant "{domain}" already exists')
    home, spare = nodes.choose(node, standby, now)
    return Tenant.create(
        domain=domain,
        name=name,
        timezone=timezone,
        max_users=_limit(max_users, "tenant.max_users"),
        max_channels=_limit(max_channels, "tenant.max_channels"),
        gateway=validate.slug(gateway, "tenant.gateway"),
        home_node=home,
        standby_node=spare,
        outbound_name=outbound_name_value(outbound_name, "tenant.outbound_name"),
    )


def list_tenants():
    """All tenants, by domain."""
    return list(Tenant.select().order_by(Tenant.domain))


def edit_tenant(
    domain,
    name=None,
    timezone=None,
    state=None,
    max_users=None,
    max_channels=None,
    fallback=None,
    gateway=None,
    outbound_name=None,
):
    """Change a tenant's settings; only the given ones."""
    tenant = get_tenant(domain)
    changes = {}
    if name is not None:
        changes["name"] = validate.text(name, "tenant.name")
    if timezone is not None:
        changes["timezone"] = validate.timezone(timezone)
    if state is not None:
        changes["state"] = validate.choice(state, "tenant.state", STATES)
    if max_users is not None:
        changes["max_users"] = _limit(max_users, "tenant.max_users")
        count = User.select().where(User.tenant == tenant).count()
        if changes["max_users"] is not None and count > changes["max_users"]:
            raise ValidationError("tenant.max_users", max_users, f"tenant already has {count} users")
    if max_channels is not None:
        changes["max_channels"] = _limit(max_channels, "tenant.max_channels")
    if fallback is not None:
        changes["fallback"] = check_destination(tenant, fallback, "tenant.fallback")
    if gateway is not None:
        changes["gateway"] = validate.slug(gateway, "tenant.gateway")
    if outbound_name is not None:
        changes["outbound_name"] = outbound_name_value(outbound_name, "tenant.outbound_name")
    for key, value in changes.items():
        setattr(tenant, key, value)
    if changes:
        tenant.revision += 1
        tenant.updated_at = utcnow()
        tenant.save()
    return tenant


def remove_tenant(domain, force=False):
    """Remove a tenant and its configuration; its recordings and call records are never dropped."""
    tenant = get_tenant(domain)
    recs = Recording.select().where(Recording.tenant == tenant).count()
    calls = CallRecord.select().where(CallRecord.tenant == tenant).count()
    if recs or calls:
        raise ConflictError(
            f'tenant "{tenant.domain}" still has {recs} recordings and {calls} call records; they are kept '
            "until retention purges them: suspend the tenant instead (fsctl tenant edit --state suspended)"
        )
    users = User.select().where(User.tenant == tenant).count()
    if users and not force:
        raise ConflictError(f'tenant "{tenant.domain}" has {users} users: use --force to remove it with them')
    tenant.delete_instance(recursive=True)
    return tenant


def tenant_dict(tenant):
    """The stable JSON shape of a tenant (with its home, standby and draining node once nodes exist)."""
    shape = {
        "domain": tenant.domain,
        "name": tenant.name,
        "timezone": tenant.timezone,
        "state": tenant.state,
        "max_users": tenant.max_users,
        "max_channels": tenant.max_channels,
        "fallback": tenant.fallback,
        "gateway": tenant.gateway,
        "outbound_name": tenant.outbound_name,
        "revision": tenant.revision,
        "users": User.select().where(User.tenant == tenant).count(),
    }
    if nodes.nodes_defined():
        shape.update(nodes.placement(tenant))
    return shape


def _limit(value, field):
    if value is None or value == "":
        return None
    if str(value).lower() in ("none", "unlimited"):
        return None
    return validate.integer(value, field, low=1, high=100000)
