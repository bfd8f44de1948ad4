"""fsctl time-rule ... (`timerule`, its old name, stays as a hidden alias)"""

import click

from ..services import timerules as svc
from ._base import reading, transactional
from ._output import emit, force_option, json_option, report, say


@click.group("time-rule")
def cli():
    """Time rules: working hours and holidays in the tenant's time zone, two routes."""


@cli.command("add")
@click.argument("domain")
@click.argument("name")
@click.option("--range", "ranges", multiple=True, metavar="'DAYS HH:MM-HH:MM'",
              help="When the rule matches, e.g. 'mon-fri 08:00-17:00' (repeat).")
@click.option("--holiday", "holidays", multiple=True, metavar="DATE[..DATE] [HH:MM-HH:MM]",
              help="When it does not match even inside a range, e.g. 2026-12-24..2026-12-26.")
@click.option("--match", required=True, help="Destination in the ranges.")
@click.option("--nomatch", required=True, help="Destination outside them.")
@click.option("--tz", "timezone", help="Time zone (default: the tenant's).")
@transactional
def add(domain, name, ranges, holidays, match, nomatch, timezone):
    """Add a rule: fsctl time-rule add acme.example office --range 'mon-fri 08:00-17:00' --match ivr:500 --nomatch voicemail:101."""
    rule = svc.add_timerule(domain, name, match, nomatch, ranges, holidays, timezone)
    say(f"time rule {rule.name} added")


@cli.command("list")
@click.argument("domain")
@json_option
@reading
def list_(domain, as_json):
    """List time rules."""
    emit([svc.timerule_dict(r) for r in svc.list_timerules(domain)], as_json,
         ["name", "timezone", "ranges", "holidays", "match", "nomatch"])


@cli.command("show")
@click.argument("domain")
@click.argument("name")
@json_option
@reading
def show(domain, name, as_json):
    """Show one time rule."""
    emit(svc.timerule_dict(svc.get_timerule(domain, name)), as_json)


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
    svc.edit_timerule(domain, name, match, nomatch, list(ranges) if ranges else None,
                      list(holidays) if holidays else None, timezone, add_holidays)
    say(f"time rule {name} updated")


@cli.command("remove")
@click.argument("domain")
@click.argument("name")
@force_option
@transactional
def remove(domain, name, force):
    """Remove a time rule."""
    report(svc.remove_timerule(domain, name, force))
    say(f"time rule {name} removed")
