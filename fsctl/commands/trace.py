"""fsctl trace ..."""

import click

from ..services.trace import trace_call
from ._base import App, reading
from ._output import json_option, print_json, print_table, say


@click.command("trace")
@click.argument("domain")
@click.argument("caller")
@click.argument("dialled")
@click.option("--at", help="When the call happens, in the tenant's time zone: '2026-12-24 18:30' (default: now).")
@json_option
@reading
@click.pass_context
def cli(ctx, domain, caller, dialled, at, as_json):
    """Show the plan the call logic would run for CALLER dialling DIALLED (a DID or an internal number).

    Example: fsctl trace acme.example +37069999999 +37052000000 --at "2026-12-24 18:30"
    """
    app = ctx.find_object(App)
    result = trace_call(domain, caller, dialled, at, app.settings.recordings_dir)
    if as_json:
        print_json(result)
        return
    say(f"{result['direction']} call {caller} -> {dialled} in {result['tenant']} at {result['at']}")
    if result["error"]:
        say(f"configuration error: {result['error']} (the tenant fallback runs)")
    rows = [
        {
            "#": str(i),
            "step": ("  " * row["depth"]) + (f"[{row['branch']}] " if row["branch"] else "") + row["step"],
            "runs": "; ".join(f"{app} {arg}".strip() for app, arg in row["apps"]),
            "why": row["reason"],
        }
        for i, row in enumerate(result["plan"], 1)
    ]
    print_table(rows, ["#", "step", "runs", "why"])
    for upd in result["rotation"]:
        say(f"rotation: group {upd['group']} would start the next call at member #{upd['to'] + 1}")
