"""Command output: tables and records for people, JSON for scripts, progress lines on stderr."""

import json
import sys

import click


def json_option(fn):
    """--json: print only data (stable keys) on stdout."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON (stable keys) instead of a table.")(fn)


def force_option(fn):
    """--force: re-point routes that still reference the removed thing (to hang-up) and report them."""
    return click.option(
        "--force", is_flag=True, help="Remove even if referenced: routes to it are re-pointed to hang-up and reported."
    )(fn)


def print_json(data):
    """Data as JSON on stdout."""
    click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def print_table(rows, columns, title=None):
    """Rows (dicts) as a rich table; text is printed literally (no markup)."""
    from rich.console import Console
    from rich.table import Table

    # Piped output (scripts, logs, the demo) gets room instead of rich's 80-column default.
    console = Console(soft_wrap=False, highlight=False, width=None if sys.stdout.isatty() else 200)
    table = Table(title=title, show_lines=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*[_cell(row.get(c)) for c in columns])
    console.print(table, markup=False)


def print_record(data, title=None):
    """One record as a two-column table."""
    rows = [{"field": k, "value": v} for k, v in data.items()]
    print_table(rows, ["field", "value"], title=title)


def emit(data, as_json, columns=None, title=None):
    """Print a list (table) or a dict (record) for people, or JSON for scripts."""
    if as_json:
        print_json(data)
    elif isinstance(data, list):
        print_table(data, columns or (list(data[0]) if data else []), title=title)
    else:
        print_record(data, title=title)


def say(message):
    """A line of progress for people (stderr, so --json output stays clean)."""
    click.echo(message, err=True)


def report(lines):
    """The re-pointing report of a --force removal."""
    for line in lines:
        say(f"  re-pointed {line}")


def _cell(value):
    from rich.text import Text

    if value is None:
        return Text("")
    if isinstance(value, (list, tuple)):
        return Text(", ".join(str(v) for v in value))
    if isinstance(value, dict):
        return Text(", ".join(f"{k}={v}" for k, v in value.items()))
    if isinstance(value, bool):
        return Text("yes" if value else "no")
    return Text(str(value))
