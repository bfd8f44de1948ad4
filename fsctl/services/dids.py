"""Public numbers (DIDs): each one has its own scenario. R-DID."""

from .. import validate
from ..errors import ConflictError
from ..model import Did, Tenant, User
from .common import check_destination, get_tenant, touch
from .numbered import getter

get_did = getter("did", model=Did, clean=lambda number: validate.e164(number, "did.number"))


def add_did(domain, number, destination, name=""):
    """Give the tenant a public number routed to `destination`."""
    tenant = get_tenant(domain)
    number = validate.e164(number, "did.number")
    existing = Did.get_or_none(Did.number == number)
    if existing is not None:
        raise ConflictError(f'did.number "{number}": already belongs to tenant {existing.tenant.domain}')
    did = Did.create(
        tenant=tenant,
        number=number,
        name=validate.text(name, "did.name", required=False),
        destination=check_destination(tenant, destination, "did.destination"),
    )
    touch(tenant)
    return did


def list_dids(domain=None):
    """DIDs of one tenant, or of all tenants."""
    query = Did.select(Did, Tenant).join(Tenant).order_by(Did.number)
    if domain:
        query = query.where(Did.tenant == get_tenant(domain))
    return list(query)


def edit_did(domain, number, destination=None, name=None):
    """Re-route a DID or rename it."""
    did = get_did(domain, number)
    if destination is not None:
        did.destination = check_destination(did.tenant, destination, "did.destination")
    if name is not None:
        did.name = validate.text(name, "did.name", required=False)
    did.save()
    touch(did.tenant)
    return did


def remove_did(domain, number, force=False):
    """Release a DID; refused while a user presents it as caller ID unless `force`."""
    did = get_did(domain, number)
    users = list(User.select().where((User.tenant == did.tenant) & (User.caller_id_number == did.number)))
    if users and not force:
        raise ConflictError(
            f"did {did.number} is the caller ID of user {', '.join(u.number for u in users)}: use --force"
        )
    report = [f"user {u.number} caller_id_number: {did.number} -> tenant default" for u in users]
    User.update(caller_id_number=None).where(User.id.in_([u.id for u in users])).execute()
    did.delete_instance()
    touch(did.tenant)
    return report


def did_dict(did):
    """The stable JSON shape of a DID."""
    return {"number": did.number, "tenant": did.tenant.domain, "name": did.name, "destination": did.destination}
