"""fsctl crm ..."""

import click

from ..config import allowed_networks
from ..services import notify as notify_svc
from ._base import pass_app, transactional
from ._numbered import numbered_commands
from ._output import say


@click.group("crm")
def cli():
    """CRM hooks: call events (ringing, answered, finished) to a webhook or Bitrix24."""


@cli.command("add")
@click.argument("domain")
@click.argument("url")
@click.option(
    "--mode",
    type=click.Choice(notify_svc.CRM_MODES),
    default="webhook",
    show_default=True,
    help="webhook: JSON POST of every event; bitrix24: URL is a Bitrix24 REST webhook.",
)
@pass_app
@transactional
def crm_add(app, domain, url, mode):
    """Add a hook: fsctl crm add acme.example https://acme.example.invalid/rest/1/secret --mode bitrix24."""
    hook = notify_svc.add_hook(domain, url, mode, allow=allowed_networks(app.settings.webhook_allow_networks))
    say(f"CRM hook {hook.id} added ({hook.mode})")


numbered_commands(
    cli,
    "CRM hook",
    key="hook_id",
    list_rows=notify_svc.list_hooks,
    remove=notify_svc.remove_hook,
    force=False,
    as_dict=notify_svc.hook_dict,
    columns=["id", "mode", "url"],
    helps={"list": "List the CRM hooks.", "remove": "Remove a CRM hook by its id."},
)
