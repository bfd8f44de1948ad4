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
    """Turns domain errors, and click's usage errors, into one line on stderr and the documented
    exit code; resolves ALIASES."""

    def get_command(self, ctx, cmd_name):
        return super().get_command(ctx, ALIASES.get(cmd_name, cmd_name))

    def parse_args(self, ctx, args):
        try:
            return super().parse_args(ctx, args)
        except click.exceptions.NoArgsIsHelpError:
            raise
        except click.UsageError as exc:
            _usage(ctx, exc)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except click.exceptions.NoArgsIsHelpError:
            raise  # a group without a command: its help
        except click.UsageError as exc:
            _usage(ctx, exc)
        except FsctlError as exc:
            _fail(ctx, str(exc), exc.exit_code, exc)
        except peewee.IntegrityError as exc:
            _fail(ctx, f"conflicting change, nothing was saved: {first_line(exc)}", 2, exc)
        except peewee.DatabaseError as exc:  # OperationalError, DataError (a value too long)...
            _fail(ctx, f"database: {first_line(exc)}", 1, exc)
        except OSError as exc:
            _fail(ctx, f"{exc.filename or 'I/O'}: {exc.strerror or exc}", 1, exc)
        finally:
            app = ctx.find_object(App)
            if app is not None:
                app.close()


def _usage(ctx, exc):
    """A usage error as one line (click prints the usage, a hint and the error on four)."""
    where = (exc.ctx or ctx).command_path
    message = " ".join(exc.format_message().split()).rstrip(".")
    click.echo(f"Error: {message} ({where} --help)", err=True)
    ctx.exit(exc.exit_code)


def _once(command):
    """Refuse a single-valued option given twice (`did add --to a --to b` kept the last silently)."""
    make_parser = command.make_parser

    def parser_for(ctx):
        parser = make_parser(ctx)
        parse = parser.parse_args

        def parse_args(args):
            opts, rest, order = parse(args)
            seen = set()
            for param in order:
                if isinstance(param, click.Option) and not (param.multiple or param.count or param.is_flag):
                    if param.name in seen:
                        raise click.BadOptionUsage(param.name, f"option {param.opts[-1]} given more than once: "
                                                               "it takes one value", ctx=ctx)
                    seen.add(param.name)
            return opts, rest, order

        parser.parse_args = parse_args
        return parser

    command.make_parser = parser_for


def _fail(ctx, message, code, exc):
    app = ctx.find_object(App)
    if app is not None and app.debug:
        import traceback

        traceback.print_exception(exc, file=sys.stderr)
    click.echo(f"Error: {message}", err=True)
    ctx.exit(code)


@click.group("fsctl", cls=FsctlGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
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
    """Create the database (or upgrade its schema) and report its version.

    The only command that creates a database: the others refuse one that does not exist, so a
    mistyped URL or setting cannot start an empty PBX. A new SQLite file is made 0600 (in an
    existing folder); on an existing one, init takes away other users' access.
    """
    from .migrations import current_version

    db = app.open(create=True)
    click.echo(f"database {app.settings.database.split('@')[-1]} ready at schema version {current_version(db)}")


def _register():
    for name in COMMAND_MODULES:
        module = importlib.import_module(f".commands.{name}", __package__)
        cli.add_command(module.cli)
        for extra in getattr(module, "EXTRA_COMMANDS", ()):
            cli.add_command(extra)
    _each_command(cli, _once)


def _each_command(group, fn):
    fn(group)
    for command in group.commands.values():
        if isinstance(command, click.Group):
            _each_command(command, fn)
        else:
            fn(command)


_register()


def main():
    """Console entry point."""
    cli(prog_name="fsctl")
