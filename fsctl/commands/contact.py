"""fsctl contact ..."""

import click

from ..services import contacts as svc
from ._base import reading, transactional
from ._output import emit, json_option, say


@click.group("contact")
def cli():
    """The tenant's phonebook: names shown for incoming numbers."""


@cli.command("add")
@click.argument("domain")
@click.argument("number")
@click.option("--name", required=True)
@transactional
def add(domain, number, name):
    """Add a contact: fsctl contact add acme.example +37061234567 --name "UAB Tiekėjas"."""
    contact = svc.add_contact(domain, number, name)
    say(f"contact {contact.number} added")


@cli.command("list")
@click.argument("domain")
@click.option("--search", help="Only numbers or names containing this text.")
@json_option
@reading
def list_(domain, search, as_json):
    """List contacts."""
    emit([svc.contact_dict(c) for c in svc.list_contacts(domain, search)], as_json, ["number", "name"])


@cli.command("show")
@click.argument("domain")
@click.argument("number")
@json_option
@reading
def show(domain, number, as_json):
    """Show one contact."""
    emit(svc.contact_dict(svc.get_contact(domain, number)), as_json)


@cli.command("edit")
@click.argument("domain")
@click.argument("number")
@click.option("--name", required=True)
@transactional
def edit(domain, number, name):
    """Rename a contact."""
    svc.edit_contact(domain, number, name)
    say(f"contact {number} updated")


@cli.command("remove")
@click.argument("domain")
@click.argument("number")
@transactional
def remove(domain, number):
    """Remove a contact."""
    svc.remove_contact(domain, number)
    say(f"contact {number} removed")


@cli.command("import")
@click.argument("domain")
@click.argument("csvfile", type=click.File("rb"))
@click.option("--replace", is_flag=True, help="Make the phonebook exactly the file (others removed).")
@transactional
def import_(domain, csvfile, replace):
    """Import number,name rows from a CSV file (UTF-8; ',' ';' or tab); all rows or none."""
    counts = svc.import_contacts(domain, csvfile, replace)
    say(f"contacts: {counts['added']} added, {counts['updated']} updated, {counts['removed']} removed")
