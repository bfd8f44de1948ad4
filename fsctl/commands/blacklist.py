"""fsctl blacklist ..."""

import click

from ..services import blacklist as svc
from ._base import reading, transactional
from ._numbered import numbered_commands
from ._output import emit, json_option, say


@click.group("blacklist")
def cli():
    """Refused caller numbers and prefixes."""


@cli.command("add")
@click.argument("domain")
@click.argument("pattern")
@click.option("--prefix", "is_prefix", is_flag=True, help="Refuse every number starting with PATTERN.")
@click.option("--note", default="")
@transactional
def add(domain, pattern, is_prefix, note):
    """Blacklist a number: fsctl blacklist add acme.example +37060000000 (or --prefix +1900)."""
    entry = svc.add_entry(domain, pattern, "prefix" if is_prefix else "exact", note)
    say(f"blacklisted {entry.pattern} ({entry.match})")


numbered_commands(
    cli,
    "blacklist entry",
    list_rows=svc.list_entries,
    as_dict=svc.entry_dict,
    columns=["pattern", "match", "note"],
    helps={"list": "List the blacklist."},
)


@cli.command("show")
@click.argument("domain")
@click.argument("pattern")
@click.option("--prefix", "is_prefix", is_flag=True)
@json_option
@reading
def show(domain, pattern, is_prefix, as_json):
    """Show one blacklist entry."""
    emit(svc.entry_dict(svc.get_entry(domain, pattern, "prefix" if is_prefix else "exact")), as_json)


@cli.command("edit")
@click.argument("domain")
@click.argument("pattern")
@click.option("--prefix", "is_prefix", is_flag=True)
@click.option("--note", required=True)
@transactional
def edit(domain, pattern, is_prefix, note):
    """Change the note of a blacklist entry."""
    svc.edit_entry(domain, pattern, "prefix" if is_prefix else "exact", note)
    say(f"blacklist entry {pattern} updated")


@cli.command("remove")
@click.argument("domain")
@click.argument("pattern")
@click.option("--prefix", "is_prefix", is_flag=True)
@transactional
def remove(domain, pattern, is_prefix):
    """Take a number or prefix off the blacklist."""
    svc.remove_entry(domain, pattern, "prefix" if is_prefix else "exact")
    say(f"{pattern} removed from the blacklist")
