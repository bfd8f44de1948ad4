"""fsctl group ..."""

import click

from ..services import groups as svc
from ._base import transactional
from ._numbered import numbered_commands
from ._output import say


@click.group("group")
def cli():
    """Ring groups: simultaneous, random, or sequential (hunt) with fixed or rotating order."""


@cli.command("add")
@click.argument("domain")
@click.argument("number")
@click.option("--name", required=True)
@click.option("--strategy", type=click.Choice(svc.STRATEGIES), default="simultaneous", show_default=True)
@click.option(
    "--order",
    type=click.Choice(svc.ORDERS),
    default="fixed",
    show_default=True,
    help="Sequential only: fixed (first member first) or rotating (each call starts at the next member).",
)
@click.option("--ring-time", default="20", show_default=True, help="Seconds; sequential: 10, 20 or 30 per member.")
@click.option(
    "--member",
    "members",
    multiple=True,
    help=f"A user number, in ring order (repeat; at most {svc.SEQUENTIAL_MAX_MEMBERS} if sequential).",
)
@click.option("--fallback", default="hangup", show_default=True, help="Where the call goes when nobody answers.")
@transactional
def add(domain, number, **fields):
    """Add a group: fsctl group add acme.example 200 --name Sales --strategy sequential --member 101 --member 102."""
    group = svc.add_group(domain, number, **fields)
    say(f"group {group.number} added")


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


numbered_commands(
    cli,
    "group",
    get=svc.get_group,
    list_rows=svc.list_groups,
    remove=svc.remove_group,
    as_dict=svc.group_dict,
    columns=["number", "name", "strategy", "order", "ring_time", "members", "fallback"],
    helps={
        "list": "List a tenant's groups.",
        "show": "Show one group.",
        "remove": "Remove a group; refused while routes point at it unless --force.",
    },
)
