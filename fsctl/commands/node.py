"""fsctl node ...: the FreeSWITCH servers behind Kamailio."""

import click

from ..services import nodes as svc
from ._base import pass_app, reading, transactional
from ._output import emit, json_option, say


@click.group("node")
def cli():
    """FreeSWITCH nodes: more than one FreeSWITCH behind Kamailio, on one database."""


def _delivery_options(fn):
    fn = click.option(
        "--recordings-dir",
        help="The folder the node's FreeSWITCH records into, on the node (default: the recordings_dir setting).",
    )(fn)
    fn = click.option(
        "--remote-dir",
        help="Upload the XML over --sftp into this folder of the node (the one its FreeSWITCH includes).",
    )(fn)
    fn = click.option(
        "--sftp",
        help="The node's SFTP account, USER@HOST[:PORT] (key: the sftp_key setting): rec pull "
        "and rec publish fetch its recordings; with --remote-dir the XML goes there.",
    )(fn)
    fn = click.option("--conf-dir", help="Where fsctl writes this node's XML (default: <conf_dir>/nodes/NAME).")(fn)
    fn = click.option("--esl-password", help="The node's Event Socket password (default: the esl_password setting).")(
        fn
    )
    return fn


@cli.command("add")
@click.argument("name")
@click.option("--esl", required=True, help="The node's Event Socket, HOST:PORT.")
@click.option("--sip", required=True, help="Its internal SIP profile (phones), HOST:PORT.")
@click.option("--public", help="Its external SIP profile (carriers' DIDs), HOST:PORT (default: the --sip port + 20).")
@_delivery_options
@transactional
@pass_app
def add(app, name, esl, sip, public, esl_password, conf_dir, sftp, remote_dir, recordings_dir):
    """Add a node: fsctl node add fs1 --esl 127.0.0.1:8021 --sip 127.0.0.1:5060.

    Tenants without a home node (all of them, for the first node) or without a standby get one.
    """
    node, placed = svc.add_node(
        name,
        esl,
        sip,
        public,
        esl_password,
        conf_dir or "",
        sftp or "",
        remote_dir or "",
        now=app.now(),
        recordings_dir=recordings_dir or "",
    )
    say(f"node {node.name} added" + (f"; {len(placed)} tenants placed (home or standby)" if placed else ""))


@cli.command("list")
@json_option
@reading
def list_(as_json):
    """List nodes with their tenants (home, standby, draining) and load."""
    load = svc.loads()
    emit(
        [svc.node_dict(n, load) for n in svc.list_nodes()],
        as_json,
        ["name", "esl", "sip", "public", "home", "standby", "draining", "load"],
    )


@cli.command("show")
@click.argument("name")
@json_option
@reading
def show(name, as_json):
    """Show one node."""
    emit(svc.node_dict(svc.get_node(name)), as_json)


@cli.command("edit")
@click.argument("name")
@click.option("--esl", help="The node's Event Socket, HOST:PORT.")
@click.option("--sip", help="Its internal SIP profile, HOST:PORT.")
@click.option("--public", help="Its external SIP profile, HOST:PORT.")
@_delivery_options
@transactional
def edit(name, **changes):
    """Change a node's addresses, how its files reach it, or where it records."""
    node, moved = svc.edit_node(name, **changes)
    say(
        f"node {node.name} updated"
        + ("; its files go to the new place: the next fsctl apply renders every tenant there again" if moved else "")
    )


@cli.command("remove")
@click.argument("name")
@transactional
def remove(name):
    """Remove a node (refused while tenants live there: move them first)."""
    node = svc.remove_node(name)
    say(f"node {node.name} removed")
