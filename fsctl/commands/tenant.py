"""fsctl tenant ..."""

import click

from ..services import nodes, tenants as svc
from ._base import pass_app, reading, transactional
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
@click.option("--node", help="Home node (with nodes defined; default: the least loaded).")
@click.option("--standby", help="Standby node (default: the least loaded other node).")
@click.option(
    "--outbound-name", help="Caller name outside calls show (default: the caller ID's DID name, else --name)."
)
@transactional
@pass_app
def add(app, domain, name, timezone, max_users, max_channels, gateway, node, standby, outbound_name):
    """Add a tenant: fsctl tenant add acme.example --name "ACME" --tz Europe/Vilnius."""
    tenant = svc.add_tenant(
        domain,
        name,
        timezone,
        max_users,
        max_channels,
        gateway,
        node=node,
        standby=standby,
        now=app.now(),
        outbound_name=outbound_name,
    )
    where = nodes.placement(tenant)
    if where["home_node"]:
        say(
            f"tenant {tenant.domain} added on {where['home_node']}"
            + (f" (standby {where['standby_node']})" if where["standby_node"] else " (no standby: one node)")
        )
    else:
        say(f"tenant {tenant.domain} added")


@cli.command("list")
@json_option
@reading
def list_(as_json):
    """List tenants."""
    rows = [svc.tenant_dict(t) for t in svc.list_tenants()]
    columns = ["domain", "name", "timezone", "state", "users", "max_users", "fallback"]
    if nodes.nodes_defined():
        columns += ["home_node", "standby_node", "draining_node"]
    emit(rows, as_json, columns)


@cli.command("show")
@click.argument("domain")
@json_option
@reading
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


@cli.command("move")
@click.argument("domain")
@click.option("--to", "to", required=True, help="The tenant's new home node.")
@click.option("--standby", help="Its new standby node (default: unchanged; swapped when --to is the standby).")
@transactional
def move(domain, to, standby):
    """Move a tenant to another node without dropping calls: new calls go there, the old node drains.

    fsctl apply puts the tenant's configuration on the new node first, then points Kamailio at it;
    the old node keeps it until its last call of the tenant has ended.
    """
    tenant = nodes.move_tenant(svc.get_tenant(domain), to, standby)
    where = nodes.placement(tenant)
    say(
        f"tenant {tenant.domain} moved: home {where['home_node']}, standby {where['standby_node'] or '-'}"
        + (f", draining {where['draining_node']}" if where["draining_node"] else "")
        + "; fsctl apply carries it out"
    )
