"""fsctl rec-group ... (`recgroup`, its old name, stays as a hidden alias)"""

import click

from ..services import recgroups as svc
from ._base import reading, transactional
from ._output import emit, json_option, say


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


@cli.command("list")
@click.argument("domain")
@json_option
@reading
def list_(domain, as_json):
    """List recording groups."""
    emit([svc.recgroup_dict(g) for g in svc.list_recgroups(domain)], as_json, ["name", "members", "supervisors"])


@cli.command("show")
@click.argument("domain")
@click.argument("name")
@json_option
@reading
def show(domain, name, as_json):
    """Show one recording group."""
    emit(svc.recgroup_dict(svc.get_recgroup(domain, name)), as_json)


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


@cli.command("remove")
@click.argument("domain")
@click.argument("name")
@transactional
def remove(domain, name):
    """Remove a recording group (its recordings stay)."""
    svc.remove_recgroup(domain, name)
    say(f"recording group {name} removed")
