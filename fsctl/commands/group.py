"""fsctl group ..."""

import click

from ..services import groups as svc
from ._base import transactional
from ._output import emit, force_option, json_option, report, say


@click.group("group")
def cli():
    """Ring groups: simultaneous, random, or sequential (hunt) with fixed or rotating order."""


@cli.command("add")
@click.argument("domain")
@click.argument("number")
@click.option("--name", required=True)
@click.option("--strategy", type=click.Choice(svc.STRATEGIES), default="simultaneous", show_default=True)
@click.option("--order", type=click.Choice(svc.ORDERS), default="fixed", show_default=True,
              help="Sequential only: fixed (first member first) or rotating (each call starts at the next member).")
@click.option("--ring-time", default="20", show_default=True, help="Seconds; sequential: 10, 20 or 30 per member.")
@click.option("--member", "members", multiple=True, help=f"A user number, in ring order (repeat; at most {svc.SEQUENTIAL_MAX_MEMBERS} if sequential).")
@click.option("--fallback", default="hangup", show_default=True, help="Where the call goes when nobody answers.")
@transactional
def add(domain, number, **fields):
    """Add a group: fsctl group add acme.example 200 --name Sales --strategy sequential --member 101 --member 102."""
    group = svc.add_group(domain, number, **fields)
    say(f"group {group.number} added")


@cli.command("list")
@click.argument("domain")
@json_option
@transactional
def list_(domain, as_json):
    """List a tenant's groups."""
    rows = [svc.group_dict(g) for g in svc.list_groups(domain)]
    emit(rows, as_json, ["number", "name", "strategy", "order", "ring_time", "members", "fallback"])


@cli.command("show")
@click.argument("domain")
@click.argument("number")
@json_option
@transactional
def show(domain, number, as_json):
    """Show one group."""
    emit(svc.group_dict(svc.get_group(domain, number)), as_json)


@cli.command("edit")
@click.argument("domain")
@click.argument("number")
@click.option("--name")
@click.option("--strategy", type=click.Choice(svc.STRATEGIES))
@click.option("--order", type=click.Choice(svc.ORDERS))
@click.option("--ring-time")
@click.option("--member", "members", multiple=True, help="Replace the member list (repeat, in order).")
@click.option("--add-member", "add_members", multiple=True, help="Append a member.")
@click.option("--remove-member", "remove_members", multiple=True, help="Remove a member.")
@click.option("--fallback")
@transactional
def edit(domain, number, members, **fields):
    """Change a group."""
    group = svc.edit_group(domain, number, members=list(members) if members else None, **fields)
    say(f"group {group.number} updated")


@cli.command("remove")
@click.argument("domain")
@click.argument("number")
@force_option
@transactional
def remove(domain, number, force):
    """Remove a group; refused while routes point at it unless --force."""
    report(svc.remove_group(domain, number, force))
    say(f"group {number} removed")
