"""The tenant's phonebook: caller names for incoming numbers. R-CLI."""

import csv
import io

from .. import validate
from ..errors import ConflictError, ValidationError
from ..model import Contact
from .common import get_tenant, touch
from .numbered import deleter, getter

MAX_IMPORT_ROWS = 200000

get_contact = getter("contact", model=Contact)
remove_contact = deleter(get_contact, label="phonebook entry")


def add_contact(domain, number, name):
    """Add a phonebook entry."""
    tenant = get_tenant(domain)
    number = validate.phone(number, "contact.number")
    if Contact.select().where((Contact.tenant == tenant) & (Contact.number == number)).exists():
        raise ConflictError(f'contact.number "{number}": already in the phonebook of {tenant.domain}')
    contact = Contact.create(tenant=tenant, number=number, name=validate.text(name, "contact.name"))
    touch(tenant)
    return contact


def list_contacts(domain, search=None):
    """Phonebook entries, optionally those whose number or name contains `search`."""
    tenant = get_tenant(domain)
    query = Contact.select().where(Contact.tenant == tenant)
    if search:
        query = query.where(Contact.number.contains(search) | Contact.name.contains(search))
    return list(query.order_by(Contact.number))


def edit_contact(domain, number, name):
    """Rename a phonebook entry."""
    contact = get_contact(domain, number)
    contact.name = validate.text(name, "contact.name")
    contact.save()
    touch(contact.tenant)
    return contact


def import_contacts(domain, stream, replace=False):
    """Import `number,name` rows (a header row is optional); all rows or none.

    Existing numbers are updated; with `replace` the phonebook becomes exactly the file.
    Returns counts {"added", "updated", "removed"}.
    """
    tenant = get_tenant(domain)
    rows = _parse_csv(stream)
    existing = {c.number: c for c in Contact.select().where(Contact.tenant == tenant)}
    added = updated = 0
    seen = set()
    for line, number, name in rows:
        if number in seen:
            raise ValidationError(f"contacts line {line} number", number, "is listed twice in the file")
        seen.add(number)
        contact = existing.get(number)
        if contact is None:
            Contact.create(tenant=tenant, number=number, name=name)
            added += 1
        elif contact.name != name:
            contact.name = name
            contact.save()
            updated += 1
    removed = 0
    if replace:
        gone = [c.id for n, c in existing.items() if n not in seen]
        for start in range(0, len(gone), 500):
            removed += Contact.delete().where(Contact.id.in_(gone[start : start + 500])).execute()
    if added or updated or removed:
        touch(tenant)
    return {"added": added, "updated": updated, "removed": removed}


def _parse_csv(stream):
    text = stream.read()
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ValidationError("contacts file", "<binary>", "must be UTF-8 text") from None
    elif text.startswith("\ufeff"):
        text = text[1:]
    sample = text[:4096]
    try:
        dialect = csv.Sniffer().sniff(sample, delimiters=",;\t") if sample.strip() else csv.excel
    except csv.Error:
        dialect = csv.excel
    rows = []
    for index, row in enumerate(csv.reader(io.StringIO(text), dialect), 1):
        if not row or all(not cell.strip() for cell in row):
            continue
        if index == 1 and row[0].strip().lower() in ("number", "phone", "tel", "telephone", "numeris"):
            continue
        if len(row) < 2:
            raise ValidationError(f"contacts line {index}", ",".join(row), "must have two columns: number,name")
        number = validate.phone(row[0], f"contacts line {index} number")
        name = validate.text(row[1].strip(), f"contacts line {index} name")
        rows.append((index, number, name))
        if len(rows) > MAX_IMPORT_ROWS:
            raise ValidationError("contacts file", f"{len(rows)} rows", f"must have at most {MAX_IMPORT_ROWS} rows")
    return rows


def contact_dict(contact):
    """The stable JSON shape of a phonebook entry."""
    return {"number": contact.number, "name": contact.name}
