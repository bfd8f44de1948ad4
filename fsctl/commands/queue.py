"""fsctl queue ..."""

import click

from ..services import queues as svc
from ._base import transactional
from ._output import emit, force_option, json_option, report, say


@click.group("queue")
def cli():
    """Call queues: callers wait with music until an agent is free."""


@cli.command("add")
@click.argument("domain")
@click.argument("number")
@click.option("--name", required=True)
@click.option("--strategy", type=click.Choice(svc.STRATEGIES), default="longest-idle-agent", show_default=True)
@click.option("--agent", "agents", multiple=True, help="A user number (repeat; order = tier).")
@click.option("--max-wait", default=300, show_default=True, help="Seconds before the overflow.")
@click.option("--overflow", default="hangup", show_default=True)
@click.option("--moh", help="Media name of the music on hold.")
@click.option("--announce", help="Media name announced while waiting.")
@click.option("--announce-frequency", default=30, show_default=True)
@transactional
def add(domain, number, **fields):
    """Add a queue: fsctl queue add acme.example 600 --name Support --agent 101 --agent 102 --overflow voicemail:101."""
    queue = svc.add_queue(domain, number, **fields)
    say(f"queue {queue.number} added")


@cli.command("list")
@click.argument("domain")
@json_option
@transactional
def list_(domain, as_json):
    """List queues."""
    emit([svc.queue_dict(q) for q in svc.list_queues(domain)], as_json,
         ["number", "name", "strategy", "agents", "max_wait", "overflow"])


@cli.command("show")
@click.argument("domain")
@click.argument("number")
@json_option
@transactional
def show(domain, number, as_json):
    """Show one queue."""
    emit(svc.queue_dict(svc.get_queue(domain, number)), as_json)


@cli.command("edit")
@click.argument("domain")
@click.argument("number")
@click.option("--name")
@click.option("--strategy", type=click.Choice(svc.STRATEGIES))
@click.option("--agent", "agents", multiple=True, help="Replace the agents (repeat).")
@click.option("--max-wait")
@click.option("--overflow")
@click.option("--moh")
@click.option("--announce")
@click.option("--announce-frequency")
@transactional
def edit(domain, number, agents, **fields):
    """Change a queue."""
    svc.edit_queue(domain, number, agents=list(agents) if agents else None, **fields)
    say(f"queue {number} updated")


@cli.command("remove")
@click.argument("domain")
@click.argument("number")
@force_option
@transactional
def remove(domain, number, force):
    """Remove a queue."""
    report(svc.remove_queue(domain, number, force))
    say(f"queue {number} removed")
