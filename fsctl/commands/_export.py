"""The options and the writer shared by the commands that export rows (stats, cdr list): a period,
--format table|csv|json (--json), --output FILE (replaced when complete)."""

import os
import sys

import click

from ..services import stats as svc
from ._output import print_table, say


def period_options(fn):
    """--from / --to: dates (whole days, --to inclusive) or times, in the tenant's time zone."""
    fn = click.option("--to", "to_", metavar="DATE", help="Last day (YYYY-MM-DD, inclusive) or time; default today.")(
        fn
    )
    fn = click.option("--from", "from_", metavar="DATE", help="First day (YYYY-MM-DD) or time; default 30 days back.")(
        fn
    )
    return fn


def export_options(fn):
    """--format table|csv|json, --json, --output FILE."""
    fn = click.option(
        "--output",
        "-o",
        type=click.Path(dir_okay=False),
        help="Write to FILE (replaced when complete) instead of standard output.",
    )(fn)
    fn = click.option("--json", "as_json", is_flag=True, help="Same as --format json.")(fn)
    fn = click.option(
        "--format",
        "fmt",
        type=click.Choice(svc.FORMATS),
        default=None,
        help="table for people (default), csv or json for scripts (stable columns).",
    )(fn)
    return fn


def export(columns, batches, fmt, as_json, output, title=None, table_columns=None):
    """Print or write rows given as lists of tuples in `columns` order: a rich table (of `table_columns`),
    or CSV (csv.writer.writerows per list) / JSON streamed as the lists come."""
    fmt = "json" if as_json else (fmt or ("csv" if output else "table"))
    if fmt == "table":
        if output:
            raise click.UsageError("--output needs --format csv or json")
        print_table(list(_dicts(columns, batches)), list(table_columns or columns), title=title)
        return None
    if fmt == "csv":

        def writer(out):
            return svc.write_csv_batches(batches, columns, out)
    else:

        def writer(out):
            return svc.write_json(_dicts(columns, batches), columns, out)

    if not output:
        out = sys.stdout
        n = writer(out)
        out.flush()
        return n
    tmp = f"{output}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            n = writer(fh)
        os.replace(tmp, output)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    say(f"{n} rows written to {output}")
    return n


def _dicts(columns, batches):
    return (dict(zip(columns, row)) for batch in batches for row in batch)
