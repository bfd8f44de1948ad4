"""fsctl token ... : the recording API's tokens of a tenant."""

import click

from ..services import tokens as svc
from ._base import transactional
from ._numbered import numbered_commands
from ._output import json_option, print_json, say


@click.group("token")
def cli():
    """API tokens for fsctl-web's recording API (/api/v1): shown once, stored hashed."""


@cli.command("add")
@click.argument("domain")
@click.argument("name")
@click.option(
    "--scope",
    type=click.Choice(svc.SCOPES),
    default="read",
    show_default=True,
    help="read: search, get, download recordings, calls, statistics; mark: also mark recordings.",
)
@json_option
@transactional
def add(domain, name, scope, as_json):
    """Add a token and print it once: fsctl token add acme.example crm-sync --scope mark."""
    row, secret = svc.add_token(domain, name, scope)
    if as_json:
        print_json({**svc.token_dict(row), "token": secret})
        return
    click.echo(secret)
    say(f"token {row.name} ({row.scope}) added to {row.tenant.domain}: store it now, it is not shown again")


numbered_commands(
    cli,
    "token",
    list_rows=svc.list_tokens,
    as_dict=svc.token_dict,
    columns=["name", "scope", "created_at", "last_used_at"],
    helps={"list": "List a tenant's tokens (names, scopes, last use; never the secrets)."},
)


@cli.command("revoke")
@click.argument("domain")
@click.argument("name")
@transactional
def revoke(domain, name):
    """Revoke a token: it stops working at once."""
    svc.revoke_token(domain, name)
    say(f"token {name} revoked")
