"""`fs-scripts`: the long-running call-logic service (`fs-scripts run`)."""

from __future__ import annotations

import logging
import signal
import sys

import click

STOP_TIMEOUT = 10.0  # seconds to write queued hang-ups and rotation moves on SIGTERM (systemd waits 90)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main():
    """fsctl's Event Socket services for FreeSWITCH."""


@main.command("run")
@click.option("--config", "config_path", envvar="FSCTL_CONFIG", help="Settings file (default /etc/fsctl/fsctl.toml).")
@click.option("--database", envvar="FSCTL_DATABASE", help="Database URL (overrides the settings file).")
@click.option(
    "--health-port",
    type=int,
    default=0,
    show_default=True,
    help="Serve GET /health on 127.0.0.1:PORT (200 when connected to FreeSWITCH, else 503); 0: off.",
)
@click.option("--log-level", default="INFO", show_default=True)
@click.option(
    "--node",
    help="With nodes (fsctl node add): serve this node, on its Event Socket from the database; "
    "its recordings (its --recordings-dir) are catalogued as on that node.",
)
def run_cmd(config_path, database, health_port, log_level, node):
    """Connect to FreeSWITCH's Event Socket and route every parked scenario call until stopped."""
    import gevent
    from gevent import monkey

    monkey.patch_all(thread=False, subprocess=False)  # sockets and sleeps cooperate; threads stay real
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from dataclasses import replace

    from fsctl.config import load_settings
    from fsctl.db import open_database
    from fsctl.errors import FsctlError
    from fsctl.freeswitch.esl import EslAuthError, EventSocket

    from .runtime import build_service, serve_health

    try:
        settings = load_settings(config_path)
        if database:
            settings = replace(settings, database=database)
        open_database(settings.database, create=False)  # only `fsctl init` creates the database
        if node:
            from fsctl.services.nodeapply import node_settings
            from fsctl.services.nodes import get_node

            node = get_node(node).name
            settings = node_settings(settings, get_node(node))
    except FsctlError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(exc.exit_code)
    esl = EventSocket(
        settings.esl_host,
        settings.esl_port,
        settings.esl_password,
        timeout=settings.esl_timeout,
        events=("CHANNEL_PARK", "CHANNEL_HANGUP_COMPLETE"),
    )
    service = build_service(esl, settings, node=node or None)
    service.attach()
    if health_port:
        serve_health(esl, service, health_port)
    # SIGTERM (systemd's stop) and Ctrl-C end the connection; what is queued is written before exit.
    for signum in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(signum, esl.close)
    try:
        esl.run_forever()
    except EslAuthError as exc:
        click.echo(f"Error: FreeSWITCH refused the Event Socket password: {exc}", err=True)
        sys.exit(3)
    finally:
        service.stop(timeout=STOP_TIMEOUT)
    logging.getLogger("fs_scripts").info("stopped")
