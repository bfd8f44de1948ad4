"""fsctl time-rule ... (`timerule`, its old name, stays as a hidden alias)"""

import click

from ..services import timerules as svc
from ._base import transactional
from ._numbered import numbered_commands
from ._output import say


@click.group("time-rule")
def cli():
    """Time rules: working hours and holidays in the tenant's time zone, two routes."""


@cli.command("add")
@click.argument("domain")
@click.argument("name")
@click.option(
    "--range",
    "ranges",
    multiple=True,
    metavar="'DAYS HH:MM-HH:MM'",
    help="When the rule matches, e.g. 'mon-fri 08:00-17:00' (repeat).",
)
@click.option(
    "--holiday",
    "holidays",
    multiple=True,
    metavar="DATE[..DATE] [HH:MM-HH:MM]",
    help="When it does not match even inside a range, e.g. 2026-12-24..2026-12-26.",
)
@click.option("--match", required=True, help="Destination in the ranges.")
@click.option("--nomatch", required=True, help="Destination outside them.")
@click.option("--tz", "timezone", help="Time zone (default: the tenant's).")
@transactional
def add(domain, name, ranges, holidays, match, nomatch, timezone):
    """Add a rule: fsctl time-rule add acme.example office --range 'mon-fri 08:00-17:00' --match ivr:500 --nomatch voicemail:101."""
    rule = svc.add_timerule(domain, name, match, nomatch, ranges, holidays, timezone)
    say(f"time rule {rule.name} added")


@cli.command("edit")
@click.argument("domain")
@click.argument("name")
@click.option("--range", "ranges", multiple=True, help="Replace the ranges (repeat).")
@click.option("--holiday", "holidays", multiple=True, help="Replace the holidays (repeat).")
@click.option("--add-holiday", "add_holidays", multiple=True, help="Add a holiday.")
@click.option("--match")
@click.option("--nomatch")
@click.option("--tz", "timezone", help="'' uses the tenant's time zone.")
@transactional
def edit(domain, name, ranges, holidays, add_holidays, match, nomatch, timezone):
    """Change a time rule."""
    svc.edit_timerule(
        domain,
        name,
        match,
        nomatch,
        list(ranges) if ranges else None,
        list(holidays) if holidays else None,
        timezone,
        add_holidays,
    )
    say(f"time rule {name} updated")


numbered_commands(
    cli,
    "time rule",
    key="name",
    get=svc.get_timerule,
    list_rows=svc.list_timerules,
    remove=svc.remove_timerule,
    as_dict=svc.timerule_dict,
    columns=["name", "timezone", "ranges", "holidays", "match", "nomatch"],
    helps={"list": "List time rules.", "show": "Show one time rule.", "remove": "Remove a time rule."},
)
