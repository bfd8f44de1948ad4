"""fsctl conference ..."""

import click

from ..services import conferences as svc
from ._base import transactional
from ._numbered import numbered_commands
from ._output import say


@click.group("conference")
def cli():
    """Conference rooms (number, optional PIN)."""


@cli.command("add")
@click.argument("domain")
@click.argument("number")
@click.option("--name", required=True)
@click.option("--pin")
@click.option("--max-members")
@transactional
def add(domain, number, name, pin, max_members):
    """Add a room: fsctl conference add acme.example 700 --name Board --pin 4321."""
    conf = svc.add_conference(domain, number, name, pin, max_members)
    say(f"conference {conf.number} added")


@cli.command("edit")
@click.argument("domain")
@click.argument("number")
@click.option("--name")
@click.option("--pin", help="'' removes the PIN.")
@click.option("--max-members", help="0 removes the limit.")
@transactional
def edit(domain, number, name, pin, max_members):
    """Change a room."""
    svc.edit_conference(domain, number, name, pin, max_members)
    say(f"conference {number} updated")


numbered_commands(
    cli,
    "conference",
    get=svc.get_conference,
    list_rows=svc.list_conferences,
    remove=svc.remove_conference,
    as_dict=svc.conference_dict,
    columns=["number", "name", "has_pin", "max_members"],
    helps={"list": "List rooms.", "show": "Show one room.", "remove": "Remove a room."},
    secrets_help="Include the PIN.",
)
