"""fsctl freeswitch setup (the install steps) and fsctl check (are they in force?)."""

import click

from ._base import pass_app
from ._output import print_json, say


@click.group("freeswitch")
def cli():
    """Prepare a stock FreeSWITCH for fsctl."""


@cli.command("setup")
@click.argument("conf", type=click.Path(file_okay=False))
@click.option("--sessions-per-second", type=int, default=None,
              help="New channels FreeSWITCH accepts per second (switch.conf; stock 30, default 100).")
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
        conf, fsctl_conf_dir=s.conf_dir, esl_port=s.esl_port, esl_password=s.esl_password,
        xml_cdr_dir=xml_cdr_dir or s.xml_cdr_dir,
        sessions_per_second=sessions_per_second or freeswitch_setup.DEFAULT_SESSIONS_PER_SECOND, dry_run=dry_run)
    for change in changes:
        click.echo(("would change " if dry_run else "") + str(change))
    if not changes:
        say(f"{conf}: every install step is in place; nothing changed")
    elif not dry_run:
        say(f"{len(changes)} changes in {conf}; restart FreeSWITCH to apply them, then: fsctl apply; fsctl check")


@click.command("check")
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON (check, ok, detail, fix).")
@pass_app
def check(app, as_json):
    """Ask the running FreeSWITCH whether the install steps are in force; one line per check.

    Exit 0: everything in place; 1: something is missing (each line says how to fix it);
    3: FreeSWITCH's Event Socket cannot be reached.

    Example: fsctl check
    """
    from ..errors import UnreachableError
    from ..freeswitch.esl import EslAuthError, EslError
    from ..services import check as svc
    from ..services.apply import esl_reloader

    app.open()
    s = app.settings
    connection = esl_reloader(s)
    try:
        findings = svc.run_checks(connection.api, s)
    except EslAuthError as exc:
        raise UnreachableError(f"FreeSWITCH {connection.where} refused the Event Socket password ({exc}): "
                               "esl_password in fsctl.toml must be event_socket.conf.xml's") from None
    except EslError as exc:
        raise UnreachableError(f"FreeSWITCH {connection.where} unreachable ({exc})") from None
    finally:
        connection.close()
    if as_json:
        print_json([f.as_dict() for f in findings])
    else:
        for finding in findings:
            click.echo(finding.line())
    missing = [f for f in findings if not f.ok]
    say(f"{len(findings)} checks, {len(missing)} missing" if missing else f"{len(findings)} checks: all in place")
    if missing:
        click.get_current_context().exit(1)


EXTRA_COMMANDS = [check]
