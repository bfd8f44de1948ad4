"""fsctl rec-group ... (`recgroup`, its old name, stays as a hidden alias)"""

import click

from ..services import recgroups as svc
from ._base import transactional
from ._numbered import numbered_commands
from ._output import say


@click.group("rec-group")
def cli():
    """Recording groups: supervisors see the recordings of the group's members."""


@cli.command("add")
@click.argument("domain")
@click.argument("name")
@click.option("--member", "members", multiple=True, help="A recorded user's number (repeat).")
@click.option("--supervisor", "supervisors", multiple=True, help="A supervisor's number (repeat).")
@transactional
def add(domain, name, members, supervisors):
    """Add a recording group: fsctl rec-group add acme.example sales --member 101 --supervisor 100."""
    svc.add_recgroup(domain, name, members, supervisors)
    say(f"recording group {name} added")


@cli.command("edit")
@click.argument("domain")
@click.argument("name")
@click.option("--member", "members", multiple=True, help="Replace the members (repeat).")
@click.option("--supervisor", "supervisors", multiple=True, help="Replace the supervisors (repeat).")
@transactional
def edit(domain, name, members, supervisors):
    """Change a recording group."""
    svc.edit_recgroup(domain, name, list(members) if members else None, list(supervisors) if supervisors else None)
    say(f"recording group {name} updated")


numbered_commands(
    cli,
    "recording group",
    key="name",
    get=svc.get_recgroup,
    list_rows=svc.list_recgroups,
    remove=svc.remove_recgroup,
    force=False,
    as_dict=svc.recgroup_dict,
    columns=["name", "members", "supervisors"],
    helps={
        "list": "List recording groups.",
        "show": "Show one recording group.",
        "remove": "Remove a recording group (its recordings stay).",
    },
)
