"""Get, list and remove, once, for the things a tenant names by a key: the numbering plan
(model.NUMBERED: user, group, ivr, queue, conference, by number) and the other nouns (did by its
number, time rule, recording group and media by name, contact by number). Each noun's service
binds them (`get_group = getter("group")`, `get_timerule = getter("timerule", model=TimeRule,
key="name", label="time rule")`); adding and editing stay explicit in the noun's module."""

from ..errors import NotFoundError
from ..model import NUMBERED
from .common import get_tenant, release_references, touch


def _strip(value):
    return str(value).strip()


def _unchanged(value):
    return value


def getter(kind: str, *, model=None, key: str = "number", label: str | None = None, clean=None):
    """`get(domain, value)`: the tenant's row of `kind` whose `key` column is `clean(value)`, or
    NotFoundError naming `label` (default `kind`) and the value as given. Numbered kinds need only
    `kind` (their key is the number, stripped); other nouns give their `model`."""
    model, label = model or NUMBERED[kind], label or kind
    column, clean = getattr(model, key), clean or (_strip if kind in NUMBERED else _unchanged)

    def get(domain, value):
        tenant = get_tenant(domain)
        row = model.get_or_none((model.tenant == tenant) & (column == clean(value)))
        if row is None:
            raise NotFoundError(label, value, tenant.domain)
        row.tenant = tenant  # (the tenant at hand: no query to load it again)
        return row

    get.__doc__ = f"One {label} of a tenant, or NotFoundError."
    return get


def lister(kind: str, *, model=None, key: str = "number", label: str | None = None):
    """`list(domain)`: the tenant's rows of `kind`, by `key`."""
    model, label = model or NUMBERED[kind], label or kind
    column = getattr(model, key)

    def list_(domain):
        tenant = get_tenant(domain)
        return list(model.select().where(model.tenant == tenant).order_by(column))

    list_.__doc__ = f"Every {label} of the tenant, by {key}."
    return list_


def remover(kind: str, own=None, recursive: bool = True, *, get=None, key: str = "number", label: str | None = None):
    """`remove(domain, value, force=False)` for a thing routes point at (destination `kind:<key>`):
    refused while routes point at it unless `force` (then re-pointed to hang-up; the report lines
    are returned). `get` finds the row (default: the numbered getter), `own(row)` lists the
    (model, id) rows whose own routes do not count (by default the thing itself); `recursive`
    deletes its rows too."""
    get, label = get or getter(kind), label or kind

    def remove(domain, value, force=False):
        row = get(domain, value)
        tenant = row.tenant
        mine = own(row) if own else [(type(row), row.id)]
        name = getattr(row, key)
        report = release_references(tenant, [f"{kind}:{name}"], f"{label} {name}", force, exclude=mine)
        row.delete_instance(recursive=recursive)
        touch(tenant)
        return report

    remove.__doc__ = f"Remove a {label}; refused while routes point at it unless `force` (then re-pointed to hang-up)."
    return remove


def deleter(get, *, recursive: bool = False, touches: bool = True, label: str = "thing"):
    """`remove(domain, value)` for a thing no route points at: delete the row `get` finds (with its
    rows if `recursive`), mark the tenant changed if `touches` (it is in FreeSWITCH's
    configuration), and return the row."""

    def remove(domain, value):
        row = get(domain, value)
        row.delete_instance(recursive=recursive)
        if touches:
            touch(row.tenant)
        return row

    remove.__doc__ = f"Remove a {label}."
    return remove
