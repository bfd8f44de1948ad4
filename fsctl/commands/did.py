"""fsctl did ..."""

import click

from ..services import dids as svc
from ._base import reading, transactional
from ._output import emit, force_option, json_option, report, say


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


@cli.command("list")
@click.argument("domain", required=False)
@json_option
@reading
def list_(domain, as_json):
    """List DIDs of one tenant (or all)."""
    emit([svc.did_dict(d) for d in svc.list_dids(domain)], as_json, ["number", "tenant", "name", "destination"])


@cli.command("show")
@click.argument("domain")
@click.argument("number")
@json_option
@reading
def show(domain, number, as_json):
    """Show one DID."""
    emit(svc.did_dict(svc.get_did(domain, number)), as_json)


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


@cli.command("remove")
@click.argument("domain")
@click.argument("number")
@force_option
@transactional
def remove(domain, number, force):
    """Release a DID."""
    report(svc.remove_did(domain, number, force))
    say(f"did {number} removed")
