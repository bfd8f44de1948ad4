"""fsctl contact ..."""

import click

from ..services import contacts as svc
from ._base import transactional
from ._numbered import numbered_commands
from ._output import say


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


@cli.command("edit")
@click.argument("domain")
@click.argument("number")
@click.option("--name", required=True)
@transactional
def edit(domain, number, name):
    """Rename a contact."""
    svc.edit_contact(domain, number, name)
    say(f"contact {number} updated")


numbered_commands(
    cli,
    "contact",
    get=svc.get_contact,
    list_rows=svc.list_contacts,
    remove=svc.remove_contact,
    force=False,
    list_options=[click.option("--search", help="Only numbers or names containing this text.")],
    as_dict=svc.contact_dict,
    columns=["number", "name"],
    helps={"list": "List contacts.", "show": "Show one contact.", "remove": "Remove a contact."},
)


@cli.command("import")
@click.argument("domain")
@click.argument("csvfile", type=click.File("rb"))
@click.option("--replace", is_flag=True, help="Make the phonebook exactly the file (others removed).")
@transactional
def import_(domain, csvfile, replace):
    """Import number,name rows from a CSV file (UTF-8; ',' ';' or tab); all rows or none."""
    counts = svc.import_contacts(domain, csvfile, replace)
    say(f"contacts: {counts['added']} added, {counts['updated']} updated, {counts['removed']} removed")
