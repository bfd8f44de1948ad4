"""fsctl conference ..."""

import click

from ..services import conferences as svc
from ._base import transactional
from ._output import emit, force_option, json_option, report, say


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


@cli.command("list")
@click.argument("domain")
@json_option
@transactional
def list_(domain, as_json):
    """List rooms."""
    emit([svc.conference_dict(c) for c in svc.list_conferences(domain)], as_json,
         ["number", "name", "has_pin", "max_members"])


@cli.command("show")
@click.argument("domain")
@click.argument("number")
@click.option("--show-secrets", is_flag=True, help="Include the PIN.")
@json_option
@transactional
def show(domain, number, show_secrets, as_json):
    """Show one room."""
    emit(svc.conference_dict(svc.get_conference(domain, number), show_secrets), as_json)


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


@cli.command("remove")
@click.argument("domain")
@click.argument("number")
@force_option
@transactional
def remove(domain, number, force):
    """Remove a room."""
    report(svc.remove_conference(domain, number, force))
    say(f"conference {number} removed")
