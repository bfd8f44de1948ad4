"""fsctl stats ..."""

import click

from ..services import report as report_mod, stats as svc
from ..services.common import get_tenant
from ._base import reading
from ._export import export, export_options, period_options
from ._output import say


@click.group("stats")
def cli():
    """Call statistics: per user, group, queue, public number, hour and day; HTML report."""


def _report_command(name, help_text):
    @cli.command(name, help=help_text)
    @click.argument("domain")
    @period_options
    @export_options
    @reading
    def command(domain, from_, to_, fmt, as_json, output):
        tenant = get_tenant(domain)
        start, end = svc.period(tenant, from_, to_)
        columns, rows = svc.report_tuples(name, tenant, start, end)
        export(columns, svc.batched(rows), fmt, as_json, output, title=f"{name} {tenant.domain}")

    return command


_report_command("users", "Per user: received, answered, missed, placed calls, average incoming talk time.")
_report_command("groups", "Per group: calls by status (answered, missed, abandoned...) and talk time.")
_report_command("queues", "Per queue: calls by status (abandoned = the caller left the queue) and talk time.")
_report_command("dids", "Per public number (DID): calls by status and talk time.")
_report_command("hourly", "Calls by hour of the day (0-23) in the tenant's time zone.")
_report_command("daily", "Calls per day in the tenant's time zone (every day of the period).")


@cli.command("report")
@click.argument("domain")
@period_options
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False), help="The HTML file to write.")
@click.option(
    "--png",
    "png_dir",
    type=click.Path(file_okay=False),
    help="Also write daily.png, hourly.png and users.png bar charts into this folder (for e-mail).",
)
@reading
def report_cmd(domain, from_, to_, out, png_dir):
    """Write a self-contained HTML report with charts: fsctl stats report acme.example --out report.html."""
    tenant = get_tenant(domain)
    start, end = svc.period(tenant, from_, to_)
    written = report_mod.write_report(tenant, start, end, out, png_dir=png_dir)
    say(f"report for {tenant.domain} written to {', '.join(written)}")
