"""fsctl freeswitch setup (the install steps) and fsctl check (are they in force?)."""

import click

from ._base import pass_app
from ._output import print_json, say


@click.group("freeswitch")
def cli():
    """Prepare a stock FreeSWITCH for fsctl."""


@cli.command("setup")
@click.argument("conf", type=click.Path(file_okay=False))
@click.option(
    "--sessions-per-second",
    type=int,
    default=None,
    help="New channels FreeSWITCH accepts per second (switch.conf; stock 30, default 100).",
)
@click.option("--xml-cdr-dir", default=None, help="mod_xml_cdr's folder (default: the xml_cdr_dir setting).")
@click.option("--dry-run", is_flag=True, help="Print what would change; change nothing.")
@pass_app
def setup_cmd(app, conf, sessions_per_second, xml_cdr_dir, dry_run):
    """Apply the install steps to FreeSWITCH's configuration folder CONF (idempotent).

    Includes fsctl's rendered folders, sets the SIP profiles for many tenants, puts the Event
    Socket on 127.0.0.1 with fsctl.toml's esl_port and esl_password, loads the modules, sets up
    mod_xml_cdr's files and sessions-per-second. Then restart FreeSWITCH.

    Example: fsctl freeswitch setup /etc/freeswitch --dry-run
    """
    from ..services import freeswitch_setup

    s = app.settings
    changes = freeswitch_setup.setup(
        conf,
        fsctl_conf_dir=s.conf_dir,
        esl_port=s.esl_port,
        esl_password=s.esl_password,
        xml_cdr_dir=xml_cdr_dir or s.xml_cdr_dir,
        sessions_per_second=sessions_per_second or freeswitch_setup.DEFAULT_SESSIONS_PER_SECOND,
        dry_run=dry_run,
    )
    for change in changes:
        click.echo(("would change " if dry_run else "") + str(change))
    if not changes:
        say(f"{conf}: every install step is in place; nothing changed")
    elif not dry_run:
        say(f"{len(changes)} changes in {conf}; restart FreeSWITCH to apply them, then: fsctl apply; fsctl check")


@click.command("check")
@click.option(
    "--node",
    "node_name",
    metavar="NAME",
    help="With nodes: check this node only (default: every node, one after the other).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON (check, ok, detail, fix; node).")
@pass_app
def check(app, node_name, as_json):
    """Ask the running FreeSWITCH whether the install steps are in force; one line per check.

    With nodes, each node is asked on its own Event Socket (its lines start with its name).
    Exit 0: everything in place; 1: something is missing (each line says how to fix it);
    3: FreeSWITCH's Event Socket cannot be reached (with nodes: a node; the others are checked).

    Example: fsctl check; fsctl check --node fs1
    """
    from ..db import transaction
    from ..errors import UnreachableError
    from ..services import nodes

    app.open()
    s = app.settings
    with transaction():
        if node_name is not None:
            targets = [nodes.get_node(node_name)]
        else:
            targets = nodes.list_nodes() or [None]
    findings, unreachable = [], []
    for node in targets:
        try:
            found = _check_one(s, node)
        except UnreachableError as exc:
            if len(targets) == 1:
                raise
            unreachable.append(node.name)
            say(f"{node.name}: not checked: {exc.message}")
            continue
        name = node.name if node else None
        findings += [(name, f) for f in found]
        if not as_json:  # each node's lines as soon as it answered
            for finding in found:
                click.echo((f"{name}: " if name else "") + finding.line())
    if as_json:
        print_json([{**f.as_dict(), "node": name} if name else f.as_dict() for name, f in findings])
    missing = [f for _, f in findings if not f.ok]
    if findings:
        say(f"{len(findings)} checks, {len(missing)} missing" if missing else f"{len(findings)} checks: all in place")
    if unreachable:
        raise UnreachableError(f"{', '.join(unreachable)} not checked: FreeSWITCH unreachable (the others are above)")
    if missing:
        click.get_current_context().exit(1)


def _check_one(settings, node):
    """The findings of one FreeSWITCH: the single one of the settings (node None) or a node."""
    from ..errors import UnreachableError
    from ..freeswitch.esl import EslAuthError, EslError
    from ..services import check as svc

    if node is None:
        from ..services.apply import esl_reloader

        own, scope, connection = settings, None, esl_reloader(settings)
    else:
        from ..services import applied, nodeapply

        own, scope = nodeapply.node_settings(settings, node), applied.OnNode(node)
        connection = nodeapply.node_reloader(settings, node)
    try:
        return svc.run_checks(connection.api, own, scope)
    except EslAuthError as exc:
        raise UnreachableError(
            f"FreeSWITCH {connection.where} refused the Event Socket password ({exc}): "
            "esl_password in fsctl.toml"
            + (f" (or node {node.name}'s --esl-password)" if node else "")
            + " must be event_socket.conf.xml's"
        ) from None
    except EslError as exc:
        raise UnreachableError(f"FreeSWITCH {connection.where} unreachable ({exc})") from None
    finally:
        connection.close()


EXTRA_COMMANDS = [check]
