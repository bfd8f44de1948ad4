"""fsctl did ..."""

import click

from ..services import dids as svc
from ._base import transactional
from ._numbered import numbered_commands
from ._output import say


@click.group("did")
def cli():
    """Public numbers (DIDs): each routes to its own scenario."""


@cli.command("add")
@click.argument("domain")
@click.argument("number")
@click.option("--to", "destination", required=True, help="Destination, e.g. ivr:500 or timerule:office.")
@click.option("--name", default="")
@transactional
def add(domain, number, destination, name):
    """Add a DID: fsctl did add acme.example +37052000000 --to ivr:500."""
    did = svc.add_did(domain, number, destination, name)
    say(f"did {did.number} added -> {did.destination}")


@cli.command("edit")
@click.argument("domain")
@click.argument("number")
@click.option("--to", "destination")
@click.option("--name")
@transactional
def edit(domain, number, destination, name):
    """Re-route or rename a DID."""
    did = svc.edit_did(domain, number, destination, name)
    say(f"did {did.number} -> {did.destination}")


numbered_commands(
    cli,
    "did",
    get=svc.get_did,
    list_rows=svc.list_dids,
    remove=svc.remove_did,
    all_tenants=True,
    as_dict=svc.did_dict,
    columns=["number", "tenant", "name", "destination"],
    helps={"list": "List DIDs of one tenant (or all).", "show": "Show one DID.", "remove": "Release a DID."},
)
