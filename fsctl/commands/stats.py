"""fsctl stats ..."""

import os
import sys

import click

from ..services import report as report_mod, stats as svc
from ..services.common import get_tenant
from ._base import transactional
from ._output import print_table, say


def period_options(fn):
    """--from / --to: dates (whole days, --to inclusive) or times, in the tenant's time zone."""
    fn = click.option("--to", "to_", metavar="DATE",
                      help="Last day (YYYY-MM-DD, inclusive) or time; default today.")(fn)
    fn = click.option("--from", "from_", metavar="DATE",
                      help="First day (YYYY-MM-DD) or time; default 30 days back.")(fn)
    return fn


def export_options(fn):
    """--format table|csv|json, --json, --output FILE."""
    fn = click.option("--output", "-o", type=click.Path(dir_okay=False),
                      help="Write to FILE (replaced when complete) instead of standard output.")(fn)
    fn = click.option("--json", "as_json", is_flag=True, help="Same as --format json.")(fn)
    fn = click.option("--format", "fmt", type=click.Choice(svc.FORMATS), default=None,
                      help="table for people (default), csv or json for scripts (stable columns).")(fn)
    return fn


def export(columns, rows, fmt, as_json, output, title=None, table_columns=None):
    """Print or write rows: a rich table (of `table_columns`), or CSV/JSON streamed as the rows come."""
    fmt = "json" if as_json else (fmt or ("csv" if output else "table"))
    if fmt == "table":
        if output:
            raise click.UsageError("--output needs --format csv or json")
        print_table(list(rows), list(table_columns or columns), title=title)
        return None
    writer = svc.write_csv if fmt == "csv" else svc.write_json
    if not output:
        out = sys.stdout
        n = writer(rows, columns, out)
        out.flush()
        return n
    tmp = f"{output}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            n = writer(rows, columns, fh)
        os.replace(tmp, output)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    say(f"{n} rows written to {output}")
    return n


@click.group("stats")
def cli():
    """Call statistics: per user, group, queue, public number, hour and day; HTML report."""


def _report_command(name, help_text):
    @cli.command(name, help=help_text)
    @click.argument("domain")
    @period_options
    @export_options
    @transactional
    def command(domain, from_, to_, fmt, as_json, output):
        tenant = get_tenant(domain)
        start, end = svc.period(tenant, from_, to_)
        columns, rows = svc.report_rows(name, tenant, start, end)
        export(columns, rows, fmt, as_json, output, title=f"{name} {tenant.domain}")

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
@click.option("--png", "png_dir", type=click.Path(file_okay=False),
              help="Also write daily.png, hourly.png and users.png bar charts into this folder (for e-mail).")
@transactional
def report_cmd(domain, from_, to_, out, png_dir):
    """Write a self-contained HTML report with charts: fsctl stats report acme.example --out report.html."""
    tenant = get_tenant(domain)
    start, end = svc.period(tenant, from_, to_)
    written = report_mod.write_report(tenant, start, end, out, png_dir=png_dir)
    say(f"report for {tenant.domain} written to {', '.join(written)}")
