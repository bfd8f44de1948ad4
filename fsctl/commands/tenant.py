"""fsctl tenant ..."""

import click

from ..services import tenants as svc
from ._base import transactional
from ._output import emit, force_option, json_option, say


@click.group("tenant")
def cli():
    """Tenants: one business customer each (a SIP domain and its own dialplan)."""


@cli.command("add")
@click.argument("domain")
@click.option("--name", required=True, help="The customer's name (any text).")
@click.option("--tz", "timezone", default="UTC", show_default=True, help="IANA time zone, e.g. Europe/Vilnius.")
@click.option("--max-users", help="Most users the tenant may have.")
@click.option("--max-channels", help="Most simultaneous calls.")
@click.option("--gateway", default="default", show_default=True, help="Outbound SIP gateway name.")
@click.option("--outbound-name", help="Caller name outside calls show (default: the caller ID's DID name, else --name).")
@transactional
def add(domain, name, timezone, max_users, max_channels, gateway, outbound_name):
    """Add a tenant: fsctl tenant add acme.example --name "ACME" --tz Europe/Vilnius."""
    tenant = svc.add_tenant(domain, name, timezone, max_users, max_channels, gateway, outbound_name)
    say(f"tenant {tenant.domain} added")


@cli.command("list")
@json_option
@transactional
def list_(as_json):
    """List tenants."""
    rows = [svc.tenant_dict(t) for t in svc.list_tenants()]
    emit(rows, as_json, ["domain", "name", "timezone", "state", "users", "max_users", "fallback"])


@cli.command("show")
@click.argument("domain")
@json_option
@transactional
def show(domain, as_json):
    """Show one tenant."""
    emit(svc.tenant_dict(svc.get_tenant(domain)), as_json)


@cli.command("edit")
@click.argument("domain")
@click.option("--name")
@click.option("--tz", "timezone")
@click.option("--state", type=click.Choice(svc.STATES))
@click.option("--max-users", help="A number, or 'unlimited'.")
@click.option("--max-channels", help="A number, or 'unlimited'.")
@click.option("--fallback", help="Destination for scenario calls the call logic cannot serve, e.g. voicemail:101.")
@click.option("--gateway")
@click.option("--outbound-name", help="Caller name outside calls show; '' for the default.")
@transactional
def edit(domain, **changes):
    """Change a tenant's settings."""
    tenant = svc.edit_tenant(domain, **changes)
    say(f"tenant {tenant.domain} updated")


@cli.command("remove")
@click.argument("domain")
@force_option
@transactional
def remove(domain, force):
    """Remove a tenant with its configuration (never its recordings or call records)."""
    tenant = svc.remove_tenant(domain, force)
    say(f"tenant {tenant.domain} removed")
