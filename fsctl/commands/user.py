"""fsctl user ..."""

import click

from ..services import users as svc
from ..services.users import FORWARD_OPTIONS
from ._base import reading, transactional
from ._numbered import numbered_commands
from ._output import emit, json_option, say

FWD = click.Choice(tuple(FORWARD_OPTIONS))


@click.group("user")
def cli():
    """Users: extensions with SIP credentials, voicemail, recording and forwarding."""


@cli.command("add")
@click.argument("domain")
@click.argument("number")
@click.option("--name", required=True)
@click.option("--email")
@click.option("--password", help="SIP password (default: a strong generated one).")
@click.option("--role", type=click.Choice(svc.ROLES), default="user", show_default=True)
@click.option("--voicemail/--no-voicemail", "vm_enabled", default=True, show_default=True)
@click.option("--vm-pin", help="Voicemail PIN, 4-12 digits (default: generated).")
@click.option("--record/--no-record", default=False, show_default=True, help="Record every call of this user.")
@click.option("--toll", type=click.Choice(svc.TOLLS), default="national", show_default=True)
@click.option("--caller-id", "caller_id_number", help="Outbound caller ID: one of the tenant's DIDs.")
@click.option("--no-answer-timeout", default=20, show_default=True, help="Seconds before no-answer forwarding.")
@click.option("--outbound-name", help="Caller name this user's outside calls show (default: the tenant's).")
@transactional
def add(domain, number, **fields):
    """Add a user: fsctl user add acme.example 101 --name "Ona" --email ona@acme.example."""
    user = svc.add_user(domain, number, **fields)
    say(
        f"user {user.number} added to {user.tenant.domain} (SIP password: fsctl user show {user.tenant.domain} "
        f"{user.number} --show-secrets)"
    )


@cli.command("sip-config")
@click.argument("domain")
@click.argument("number")
@click.option("--server", default="127.0.0.1:5060", show_default=True, help="The SIP server phones register to.")
@json_option
@reading
def sip_config(domain, number, server, as_json):
    """Print what a phone or softphone needs to register (includes the password)."""
    emit(svc.sip_config(domain, number, server), as_json)


@cli.command("edit")
@click.argument("domain")
@click.argument("number")
@click.option("--name")
@click.option("--email", help="'' removes it.")
@click.option("--password", help="New SIP password.")
@click.option("--new-password", is_flag=True, help="Generate a new SIP password.")
@click.option("--role", type=click.Choice(svc.ROLES))
@click.option("--voicemail/--no-voicemail", "vm_enabled", default=None)
@click.option("--vm-pin")
@click.option("--record/--no-record", default=None)
@click.option("--toll", type=click.Choice(svc.TOLLS))
@click.option("--caller-id", "caller_id_number")
@click.option("--no-answer-timeout")
@click.option("--outbound-name", help="Caller name this user's outside calls show; '' for the tenant's.")
@click.option("--number", "new_number", help="Move the user to another number.")
@click.option(
    "--forward",
    nargs=2,
    multiple=True,
    metavar="WHEN DEST",
    help="Forward: always|busy|no_answer|unreachable and a destination, e.g. --forward busy voicemail:101.",
)
@click.option("--unforward", type=FWD, multiple=True, help="Switch a forwarding off.")
@transactional
def edit(domain, number, new_password, forward, password, **fields):
    """Change a user, e.g. fsctl user edit acme.example 101 --forward no_answer user:102."""
    if new_password:
        password = svc.generate_password()
    forward_map = {}
    for when, dest in forward:
        forward_map[when] = dest
    user = svc.edit_user(domain, number, password=password, forward=forward_map, **fields)
    say(f"user {user.number} updated")


@cli.command("web-password")
@click.argument("domain")
@click.argument("number")
@click.option("--generate", is_flag=True, help="Generate a password and print it (else read it, hidden).")
@click.option("--clear", is_flag=True, help="Remove the web password (a mailed sign-in link still works).")
@transactional
def web_password(domain, number, generate, clear):
    """Set the password USER@DOMAIN signs in to fsctl-web with (10-200 characters); open sessions end."""
    from ..services import webauth

    if clear:
        webauth.clear_web_password(domain, number)
        say(f"web password of {number}@{domain} removed")
        return
    if generate:
        password = svc.generate_password(16)
    else:
        password = click.prompt("Web password", hide_input=True, confirmation_prompt=True)
    user = webauth.set_web_password(domain, number, password)
    if generate:
        click.echo(password)
    say(f"web password of {user.number}@{user.tenant.domain} set")


numbered_commands(
    cli,
    "user",
    get=svc.get_user,
    list_rows=svc.list_users,
    remove=svc.remove_user,
    as_dict=svc.user_dict,
    columns=["number", "name", "email", "role", "vm_enabled", "record", "forward"],
    helps={
        "list": "List a tenant's users.",
        "show": "Show one user.",
        "remove": "Remove a user; refused while routes or groups use them unless --force.",
    },
    secrets_help="Include the SIP password and voicemail PIN.",
)
