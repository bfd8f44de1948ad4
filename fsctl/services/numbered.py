"""Get, list and remove, once, for the things of a tenant's numbering plan (model.NUMBERED: user,
group, ivr, queue, conference). Each noun's service binds them (`get_group = getter("group")`);
adding and editing stay explicit in the noun's module."""

from ..model import NUMBERED
from .common import get_numbered, get_tenant, release_references, touch


def getter(kind: str):
    """`get(domain, number)`: one thing of `kind`, or NotFoundError."""

    def get(domain, number):
        return get_numbered(get_tenant(domain), kind, number)

    get.__doc__ = f"One {kind} of a tenant, or NotFoundError."
    return get


def lister(kind: str):
    """`list(domain)`: the tenant's things of `kind`, by number."""
    model = NUMBERED[kind]

    def list_(domain):
        tenant = get_tenant(domain)
        return list(model.select().where(model.tenant == tenant).order_by(model.number))

    list_.__doc__ = f"The tenant's {kind}s by number."
    return list_


def remover(kind: str, own=None, recursive: bool = True):
    """`remove(domain, number, force=False)`: refused while routes point at it unless `force` (then
    re-pointed to hang-up; the report lines are returned). `own(row)` lists the (model, id) rows
    whose own routes do not count (by default the thing itself); `recursive` deletes its rows too."""
    model = NUMBERED[kind]
    own = own or (lambda row: [(model, row.id)])

    def remove(domain, number, force=False):
        tenant = get_tenant(domain)
        row = get_numbered(tenant, kind, number)
        report = release_references(tenant, [f"{kind}:{row.number}"], f"{kind} {row.number}", force,
                                    exclude=own(row))
        row.delete_instance(recursive=recursive)
        touch(tenant)
        return report

    remove.__doc__ = f"Remove a {kind}; refused while routes point at it unless `force` (then re-pointed to hang-up)."
    return remove
