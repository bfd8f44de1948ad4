"""fsctl cdr ..., fsctl notify ..., fsctl crm ..."""

import click

from ..errors import OperationError
from ..services import cdr as svc, notify as notify_svc, stats as stats_svc
from ..services.common import get_tenant
from ._base import pass_app, transactional
from ._output import emit, json_option, print_json, say
from .stats import export, export_options, period_options

# What people see in the table (csv/json carry every column of stats.CALL_COLUMNS).
TABLE_COLUMNS = ("started_at", "direction", "caller", "callee", "target", "status", "answered_by", "missed_by",
                 "talk_time")


@click.group("cdr")
def cli():
    """The call log: one record per call (however many phones rang)."""


@cli.command("list")
@click.argument("domain")
@period_options
@click.option("--user", help="Only calls of this user (made, rang, answered or missed).")
@click.option("--status", type=click.Choice(svc.STATUSES), help="Only calls with this status.")
@export_options
@transactional
def list_(domain, from_, to_, user, status, fmt, as_json, output):
    """The call log: fsctl cdr list acme.example --from 2026-11-01 --user 101 --status missed --json."""
    tenant = get_tenant(domain)
    start, end = stats_svc.period(tenant, from_, to_)
    rows = stats_svc.iter_calls(tenant, start, end, user=user, status=status)
    export(stats_svc.CALL_COLUMNS, rows, fmt, as_json, output, title=f"calls {tenant.domain}",
           table_columns=TABLE_COLUMNS)


@cli.command("import")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--notify/--no-notify", default=True, show_default=True,
              help="Queue missed-call notifications and CRM events for the calls imported (not for old archives).")
@click.option("--move-to", "move_to", metavar="ARCHIVE",
              help="Once a batch is committed, move its imported files into ARCHIVE (same relative path, created "
                   "if missing; outside DIR). Files that failed stay in DIR.")
@click.option("--min-age", "min_age", metavar="SECONDS", default="0", show_default=True,
              help="Leave files modified less than SECONDS ago (FreeSWITCH may still be writing them), and the "
                   "other files of their call, for the next run.")
@click.option("--archive-keep-days", "keep_days", metavar="DAYS",
              help="With --move-to: delete archived files older than DAYS (by the time FreeSWITCH wrote them).")
@json_option
@pass_app
def import_(app, directory, notify, move_to, min_age, keep_days, as_json):
    """Import FreeSWITCH mod_xml_cdr files (again and again: a call is never counted twice).

    The safety net of the call log; conf/systemd/fsctl-cdr-import.timer runs, every 5 minutes:

    \b
    fsctl cdr import /var/log/freeswitch/xml_cdr \\
        --move-to /var/log/freeswitch/xml_cdr.imported --min-age 30 --archive-keep-days 30
    """
    app.open()
    result = svc.import_xml_cdr_dir(directory, notifier=None if notify else _no_notifier, move_to=move_to,
                                    min_age=min_age, keep_days=keep_days)
    data = {"files": result.files, "calls_created": result.calls_created, "calls_updated": result.calls_updated,
            "legs": result.legs, "failed": [{"path": p, "reason": r} for p, r in result.failed],
            "skipped_too_new": result.too_new, "moved": result.moved,
            "not_moved": [{"path": p, "reason": r} for p, r in result.not_moved],
            "archive_deleted": result.archive_deleted}
    if as_json:
        print_json(data)
    else:
        line = (f"{result.files} files: {result.calls_created} calls created, {result.calls_updated} updated, "
                f"{result.legs} legs, {len(result.failed)} failed, {len(result.too_new)} skipped (too new)")
        if move_to is not None:
            line += f", {result.moved} moved to {move_to}"
        if result.archive_deleted is not None:
            line += f", {result.archive_deleted} archived files older than {keep_days} days deleted"
        say(line)
    for path, reason in result.failed:
        say(f"  {path}: {reason}")
    for path, reason in result.not_moved:
        say(f"  {path}: imported, not moved ({reason}); the next run imports it again")
    if result.failed or result.not_moved:
        raise click.exceptions.Exit(1)


def _no_notifier(call_ids):
    """Queue nothing (fsctl cdr import --no-notify)."""


# --- notifications ------------------------------------------------------------------------

@click.group("notify")
def notify():
    """Missed-call notifications by e-mail or webhook, per user or group; the outbox."""


@notify.command("add")
@click.argument("domain")
@click.option("--user", "user", metavar="NUMBER", help="Notify about this user's missed calls.")
@click.option("--group", "group", metavar="NUMBER", help="Notify about this group's missed calls.")
@click.option("--channel", type=click.Choice(notify_svc.CHANNELS), default="email", show_default=True)
@click.option("--to", "address", default="", help="E-mail address or webhook URL (e-mail: default the user's).")
@transactional
def notify_add(domain, user, group, channel, address):
    """Add a rule: fsctl notify add acme.example --user 101 (e-mail to the user's address)."""
    if bool(user) == bool(group):
        raise click.UsageError("give exactly one of --user or --group")
    scope, number = ("user", user) if user else ("group", group)
    rule = notify_svc.add_rule(domain, scope, number, channel, address)
    say(f"notification {rule.id} added: missed calls of {scope} {number} by {channel}"
        + (f" to {rule.address}" if rule.address else ""))


@notify.command("list")
@click.argument("domain")
@json_option
@transactional
def notify_list(domain, as_json):
    """List the notification rules."""
    emit([notify_svc.rule_dict(r) for r in notify_svc.list_rules(domain)], as_json,
         ["id", "scope", "number", "channel", "address"])


@notify.command("remove")
@click.argument("domain")
@click.argument("rule_id")
@transactional
def notify_remove(domain, rule_id):
    """Remove a notification rule by its id."""
    notify_svc.remove_rule(domain, rule_id)
    say(f"notification {rule_id} removed")


@notify.command("send")
@click.option("--limit", type=click.IntRange(min=1), help="At most this many deliveries.")
@json_option
@pass_app
def notify_send(app, limit, as_json):
    """Deliver the due notifications and CRM events (failures are retried later with backoff)."""
    app.open()
    transport = notify_svc.Transport.from_settings(app.settings)
    result = notify_svc.drain(transport, app.settings, limit=limit)
    if as_json:
        print_json({"sent": result.sent, "retried": result.retried, "failed": result.failed,
                    "errors": result.errors})
    else:
        say(f"{result.sent} sent, {result.retried} to retry, {result.failed} failed")
        for line in result.errors:
            say(f"  {line}")
    if result.failed:
        raise OperationError(f"{result.failed} deliveries failed for good (fsctl notify outbox --state failed)")


@notify.command("outbox")
@click.argument("domain", required=False)
@click.option("--state", type=click.Choice(("pending", "sent", "failed")))
@json_option
@transactional
def notify_outbox(domain, state, as_json):
    """Show queued, sent and failed deliveries (newest first)."""
    rows = [notify_svc.outbox_dict(r) for r in notify_svc.list_outbox(domain, state)]
    emit(rows, as_json, ["id", "key", "channel", "target", "state", "attempts", "next_attempt_at", "last_error"])


# --- CRM ----------------------------------------------------------------------------------

@click.group("crm")
def crm():
    """CRM hooks: call events (ringing, answered, finished) to a webhook or Bitrix24."""


@crm.command("add")
@click.argument("domain")
@click.argument("url")
@click.option("--mode", type=click.Choice(notify_svc.CRM_MODES), default="webhook", show_default=True,
              help="webhook: JSON POST of every event; bitrix24: URL is a Bitrix24 REST webhook.")
@transactional
def crm_add(domain, url, mode):
    """Add a hook: fsctl crm add acme.example https://acme.example.invalid/rest/1/secret --mode bitrix24."""
    hook = notify_svc.add_hook(domain, url, mode)
    say(f"CRM hook {hook.id} added ({hook.mode})")


@crm.command("list")
@click.argument("domain")
@json_option
@transactional
def crm_list(domain, as_json):
    """List the CRM hooks."""
    emit([notify_svc.hook_dict(h) for h in notify_svc.list_hooks(domain)], as_json, ["id", "mode", "url"])


@crm.command("remove")
@click.argument("domain")
@click.argument("hook_id")
@transactional
def crm_remove(domain, hook_id):
    """Remove a CRM hook by its id."""
    notify_svc.remove_hook(domain, hook_id)
    say(f"CRM hook {hook_id} removed")


EXTRA_COMMANDS = [notify, crm]
