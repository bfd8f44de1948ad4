"""fsctl crm ..."""

import click

from ..config import allowed_networks
from ..services import notify as notify_svc
from ._base import pass_app, reading, transactional
from ._output import emit, json_option, say


@click.group("crm")
def cli():
    """CRM hooks: call events (ringing, answered, finished) to a webhook or Bitrix24."""


@cli.command("add")
@click.argument("domain")
@click.argument("url")
@click.option("--mode", type=click.Choice(notify_svc.CRM_MODES), default="webhook", show_default=True,
              help="webhook: JSON POST of every event; bitrix24: URL is a Bitrix24 REST webhook.")
@pass_app
@transactional
def crm_add(app, domain, url, mode):
    """Add a hook: fsctl crm add acme.example https://acme.example.invalid/rest/1/secret --mode bitrix24."""
    hook = notify_svc.add_hook(domain, url, mode, allow=allowed_networks(app.settings.webhook_allow_networks))
    say(f"CRM hook {hook.id} added ({hook.mode})")


@cli.command("list")
@click.argument("domain")
@json_option
@reading
def crm_list(domain, as_json):
    """List the CRM hooks."""
    emit([notify_svc.hook_dict(h) for h in notify_svc.list_hooks(domain)], as_json, ["id", "mode", "url"])


@cli.command("remove")
@click.argument("domain")
@click.argument("hook_id")
@transactional
def crm_remove(domain, hook_id):
    """Remove a CRM hook by its id."""
    notify_svc.remove_hook(domain, hook_id)
    say(f"CRM hook {hook_id} removed")
