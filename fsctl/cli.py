"""The fsctl command line: provisioning, rendering, recordings, statistics."""

import importlib
import sys

import click
import peewee

from . import __version__
from .commands._base import App, pass_app
from .errors import FsctlError, first_line

# One module per noun under fsctl.commands; each defines `cli` (a click group or command) and
# may define EXTRA_COMMANDS, more top-level commands.
COMMAND_MODULES = [
    "tenant",
    "node",
    "user",
    "group",
    "did",
    "ivr",
    "time_rule",
    "queue",
    "conference",
    "blacklist",
    "contact",
    "media",
    "rec_group",
    "render",  # render, plus apply and status (EXTRA_COMMANDS)
    "trace",
    "rec",
    "cdr",
    "notify",
    "crm",
    "stats",
    "freeswitch",  # freeswitch setup, plus check (EXTRA_COMMANDS)
    "token",
]


# Old command names kept working, hidden from the help: {old name: its name now}.
ALIASES = {"timerule": "time-rule", "recgroup": "rec-group"}


class FsctlGroup(click.Group):
    """Turns domain errors into one line on stderr and the documented exit code; resolves ALIASES."""

    def get_command(self, ctx, cmd_name):
        return super().get_command(ctx, ALIASES.get(cmd_name, cmd_name))

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except FsctlError as exc:
            _fail(ctx, str(exc), exc.exit_code, exc)
        except peewee.IntegrityError as exc:
            _fail(ctx, f"conflicting change, nothing was saved: {first_line(exc)}", 2, exc)
        except peewee.OperationalError as exc:
            _fail(ctx, f"database: {first_line(exc)}", 1, exc)
        except OSError as exc:
            _fail(ctx, f"{exc.filename or 'I/O'}: {exc.strerror or exc}", 1, exc)
        finally:
            app = ctx.find_object(App)
            if app is not None:
                app.close()


def _fail(ctx, message, code, exc):
    app = ctx.find_object(App)
    if app is not None and app.debug:
        import traceback

        traceback.print_exception(exc, file=sys.stderr)
    click.echo(f"Error: {message}", err=True)
    ctx.exit(code)


@click.group(cls=FsctlGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--config", "config_path", type=click.Path(dir_okay=False), envvar="FSCTL_CONFIG",
              help="Settings file (default /etc/fsctl/fsctl.toml).")
@click.option("--database", envvar="FSCTL_DATABASE", help="Database URL: sqlite:///path or postgresql://...")
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
@click.option("--apply/--no-apply", "auto_apply", default=None,
              help="Apply a provisioning change to FreeSWITCH at once (default: the auto_apply setting).")
@click.version_option(__version__, prog_name="fsctl")
@click.pass_context
def cli(ctx, config_path, database, debug, auto_apply):
    """fsctl: provision and run a multi-tenant PBX on FreeSWITCH."""
    # A caller embedding the CLI (the tests) may pass its clock: invoke(..., obj={"clock": fn}).
    clock = ctx.obj.get("clock") if isinstance(ctx.obj, dict) else None
    ctx.obj = App(config_path=config_path, database=database, debug=debug, auto_apply=auto_apply, clock=clock)


@cli.command("init")
@pass_app
def init_cmd(app):
    """Create the database (or upgrade its schema) and report its version."""
    from .migrations import current_version

    db = app.open()
    click.echo(f"database {app.settings.database.split('@')[-1]} ready at schema version {current_version(db)}")


def _register():
    for name in COMMAND_MODULES:
        module = importlib.import_module(f".commands.{name}", __package__)
        cli.add_command(module.cli)
        for extra in getattr(module, "EXTRA_COMMANDS", ()):
            cli.add_command(extra)


_register()


def main():
    """Console entry point."""
    cli(prog_name="fsctl")
