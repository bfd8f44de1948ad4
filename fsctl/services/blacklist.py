"""Blacklist: caller numbers and prefixes a tenant refuses. R-BLACK."""

from .. import validate
from ..errors import ConflictError, NotFoundError
from ..model import BlacklistEntry
from .common import get_tenant, touch

MATCHES = ("exact", "prefix")


def add_entry(domain, pattern, match="exact", note=""):
    """Refuse calls from a number (exact) or from every number starting with a prefix."""
    tenant = get_tenant(domain)
    match = validate.choice(match, "blacklist.match", MATCHES)
    pattern = validate.prefix(pattern, "blacklist.pattern")
    if (
        BlacklistEntry.select()
        .where(
            (BlacklistEntry.tenant == tenant) & (BlacklistEntry.pattern == pattern) & (BlacklistEntry.match == match)
        )
        .exists()
    ):
        raise ConflictError(f'blacklist.pattern "{pattern}": already blacklisted ({match}) in {tenant.domain}')
    entry = BlacklistEntry.create(
        tenant=tenant, pattern=pattern, match=match, note=validate.text(note, "blacklist.note", required=False)
    )
    touch(tenant)
    return entry


def list_entries(domain):
    """The tenant's blacklist."""
    tenant = get_tenant(domain)
    return list(BlacklistEntry.select().where(BlacklistEntry.tenant == tenant).order_by(BlacklistEntry.pattern))


def get_entry(domain, pattern, match="exact"):
    """One blacklist entry, or NotFoundError."""
    tenant = get_tenant(domain)
    match = validate.choice(match, "blacklist.match", MATCHES)
    pattern = validate.prefix(pattern, "blacklist.pattern")
    entries = {
        e.match: e
        for e in BlacklistEntry.select().where((BlacklistEntry.tenant == tenant) & (BlacklistEntry.pattern == pattern))
    }
    if match not in entries:
        hint = None
        if entries:  # the same digits as the other kind of entry: say how to name it
            hint = (
                "a prefix entry does: add --prefix" if match == "exact" else "an exact entry does: leave out --prefix"
            )
        raise NotFoundError("blacklist entry", pattern, tenant.domain, hint=hint)
    return entries[match]


def edit_entry(domain, pattern, match="exact", note=None):
    """Change an entry's note."""
    entry = get_entry(domain, pattern, match)
    if note is not None:
        entry.note = validate.text(note, "blacklist.note", required=False)
        entry.save()
    return entry


def remove_entry(domain, pattern, match="exact"):
    """Take a number or prefix off the blacklist."""
    entry = get_entry(domain, pattern, match)
    entry.delete_instance()
    touch(entry.tenant)
    return entry


def entry_dict(entry):
    """The stable JSON shape of a blacklist entry."""
    return {"pattern": entry.pattern, "match": entry.match, "note": entry.note}
