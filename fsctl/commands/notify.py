"""fsctl notify ..."""

import click

from ..config import allowed_networks
from ..errors import OperationError
from ..services import notify as notify_svc
from ._base import pass_app, reading, transactional
from ._numbered import numbered_commands
from ._output import emit, json_option, print_json, say


@click.group("notify")
def cli():
    """Missed-call notifications by e-mail or webhook, per user or group; the outbox."""


@cli.command("add")
@click.argument("domain")
@click.option("--user", "user", metavar="NUMBER", help="Notify about this user's missed calls.")
@click.option("--group", "group", metavar="NUMBER", help="Notify about this group's missed calls.")
@click.option("--channel", type=click.Choice(notify_svc.CHANNELS), default="email", show_default=True)
@click.option("--to", "address", default="", help="E-mail address or webhook URL (e-mail: default the user's).")
@pass_app
@transactional
def notify_add(app, domain, user, group, channel, address):
    """Add a rule: fsctl notify add acme.example --user 101 (e-mail to the user's address)."""
    if bool(user) == bool(group):
        raise click.UsageError("give exactly one of --user or --group")
    scope, number = ("user", user) if user else ("group", group)
    allow = allowed_networks(app.settings.webhook_allow_networks)
    rule = notify_svc.add_rule(domain, scope, number, channel, address, allow=allow)
    say(
        f"notification {rule.id} added: missed calls of {scope} {number} by {channel}"
        + (f" to {rule.address}" if rule.address else "")
    )


numbered_commands(
    cli,
    "notification",
    key="rule_id",
    list_rows=notify_svc.list_rules,
    remove=notify_svc.remove_rule,
    force=False,
    as_dict=notify_svc.rule_dict,
    columns=["id", "scope", "number", "channel", "address"],
    helps={"list": "List the notification rules.", "remove": "Remove a notification rule by its id."},
)


@cli.command("send")
@click.option("--limit", type=click.IntRange(min=1), help="At most this many deliveries.")
@json_option
@pass_app
def notify_send(app, limit, as_json):
    """Deliver the due notifications and CRM events (failures are retried later with backoff)."""
    app.open()
    transport = notify_svc.Transport.from_settings(app.settings)
    result = notify_svc.drain(transport, app.settings, limit=limit)
    if as_json:
        print_json({"sent": result.sent, "retried": result.retried, "failed": result.failed, "errors": result.errors})
    else:
        say(f"{result.sent} sent, {result.retried} to retry, {result.failed} failed")
        for line in result.errors:
            say(f"  {line}")
    if result.failed:
        raise OperationError(f"{result.failed} deliveries failed for good (fsctl notify outbox --state failed)")


@cli.command("outbox")
@click.argument("domain", required=False)
@click.option("--state", type=click.Choice(("pending", "sent", "failed")))
@json_option
@reading
def notify_outbox(domain, state, as_json):
    """Show queued, sent and failed deliveries (newest first)."""
    rows = [notify_svc.outbox_dict(r) for r in notify_svc.list_outbox(domain, state)]
    emit(rows, as_json, ["id", "key", "channel", "target", "state", "attempts", "next_attempt_at", "last_error"])
