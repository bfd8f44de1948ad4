"""fsctl queue ..."""

import click

from ..services import queues as svc
from ._base import transactional
from ._numbered import numbered_commands
from ._output import say


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


numbered_commands(
    cli,
    "queue",
    get=svc.get_queue,
    list_rows=svc.list_queues,
    remove=svc.remove_queue,
    as_dict=svc.queue_dict,
    columns=["number", "name", "strategy", "agents", "max_wait", "overflow"],
    helps={"list": "List queues.", "show": "Show one queue.", "remove": "Remove a queue."},
)
