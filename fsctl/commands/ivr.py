"""fsctl ivr ..."""

import click

from ..errors import ValidationError
from ..services import ivrs as svc
from ._base import transactional
from ._numbered import numbered_commands
from ._output import say


def _entries(pairs):
    result = {}
    for text in pairs:
        digits, sep, dest = text.partition("=")
        if not sep:
            raise ValidationError("ivr.entry", text, "must look like DIGITS=DESTINATION, e.g. 1=group:200")
        result[digits.strip()] = dest.strip()
    return result


@click.group("ivr")
def cli():
    """Voice menus (auto-attendant); menus route to each other for several levels."""


@cli.command("add")
@click.argument("domain")
@click.argument("number")
@click.option("--name", required=True)
@click.option("--greeting", help="Media name of the greeting.")
@click.option("--invalid-sound", help="Media name played on an invalid choice.")
@click.option("--timeout", default=5, show_default=True, help="Seconds to wait for a digit.")
@click.option("--max-failures", default=3, show_default=True)
@click.option("--max-timeouts", default=3, show_default=True)
@click.option("--digit-len", default=4, show_default=True)
@click.option(
    "--exit",
    "exit_destination",
    default="hangup",
    show_default=True,
    help="Where the caller goes after too many failures or timeouts.",
)
@click.option("--entry", "entries", multiple=True, metavar="DIGITS=DEST", help="A digit action, e.g. 1=group:200.")
@transactional
def add(domain, number, entries, **fields):
    """Add a menu: fsctl ivr add acme.example 500 --name Main --entry 1=group:200 --entry 2=ivr:501."""
    ivr = svc.add_ivr(domain, number, entries=_entries(entries), **fields)
    say(f"ivr {ivr.number} added")


@cli.command("edit")
@click.argument("domain")
@click.argument("number")
@click.option("--name")
@click.option("--greeting")
@click.option("--invalid-sound")
@click.option("--timeout")
@click.option("--max-failures")
@click.option("--max-timeouts")
@click.option("--digit-len")
@click.option("--exit", "exit_destination")
@click.option("--entry", "entries", multiple=True, metavar="DIGITS=DEST", help="Add or replace a digit action.")
@click.option("--remove-entry", "remove_entries", multiple=True, metavar="DIGITS")
@transactional
def edit(domain, number, entries, **fields):
    """Change a menu."""
    svc.edit_ivr(domain, number, set_entries=_entries(entries), **fields)
    say(f"ivr {number} updated")


numbered_commands(
    cli,
    "ivr",
    get=svc.get_ivr,
    list_rows=svc.list_ivrs,
    remove=svc.remove_ivr,
    as_dict=svc.ivr_dict,
    columns=["number", "name", "greeting", "entries", "exit_destination"],
    helps={"list": "List menus.", "show": "Show one menu.", "remove": "Remove a menu."},
)
