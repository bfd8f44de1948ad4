"""The fsctl command line: provisioning, rendering, recordings, statistics.

Commands load lazily: `fsctl tenant list` imports fsctl.commands.tenant (and what it needs),
not the SFTP, rendering or statistics code of the other commands; `fsctl --help` lists every
command from the COMMANDS table without importing any (tests/fsctl/test_cli.py holds the
table equal to the modules' own commands and help).
"""

import importlib
import sys

import click

from . import __version__
from .commands._base import App, pass_app
from .errors import FsctlError, first_line

# Every top-level command: name -> (module under fsctl.commands, its attribute, the short help
# that `fsctl --help` prints: the first paragraph of the command's docstring). One module per
# noun; render's module also holds apply and status, freeswitch's check.
COMMANDS = {
    "tenant": ("tenant", "cli", "Tenants: one business customer each (a SIP domain and its own dialplan)."),
    "node": ("node", "cli", "FreeSWITCH nodes: more than one FreeSWITCH behind Kamailio, on one database."),
    "user": ("user", "cli", "Users: extensions with SIP credentials, voicemail, recording and forwarding."),
    "group": ("group", "cli", "Ring groups: simultaneous, random, or sequential (hunt) with fixed or rotating order."),
    "did": ("did", "cli", "Public numbers (DIDs): each routes to its own scenario."),
    "ivr": ("ivr", "cli", "Voice menus (auto-attendant); menus route to each other for several levels."),
    "time-rule": ("time_rule", "cli", "Time rules: working hours and holidays in the tenant's time zone, two routes."),
    "queue": ("queue", "cli", "Call queues: callers wait with music until an agent is free."),
    "conference": ("conference", "cli", "Conference rooms (number, optional PIN)."),
    "blacklist": ("blacklist", "cli", "Refused caller numbers and prefixes."),
    "contact": ("contact", "cli", "The tenant's phonebook: names shown for incoming numbers."),
    "media": ("media", "cli", "The media centre: the tenant's own greetings and announcements (WAV)."),
    "rec-group": ("rec_group", "cli", "Recording groups: supervisors see the recordings of the group's members."),
    "render": (
        "render",
        "cli",
        "Render every active tenant's FreeSWITCH XML into a folder and validate it (FreeSWITCH is not touched).",
    ),
    "apply": (
        "render",
        "apply",
        "Write what changed into the conf dir and reloadxml; on any failure restore the previous files.",
    ),
    "status": ("render", "status", "Show per tenant the applied and current revision: applied, pending or removed."),
    "trace": (
        "trace",
        "cli",
        "Show the plan the call logic would run for CALLER dialling DIALLED (a DID or an internal number).",
    ),
    "rec": ("rec", "cli", "Call recordings: catalogue, search, marks, retention, SFTP pull and publication."),
    "cdr": ("cdr", "cli", "The call log: one record per call (however many phones rang)."),
    "notify": ("notify", "cli", "Missed-call notifications by e-mail or webhook, per user or group; the outbox."),
    "crm": ("crm", "cli", "CRM hooks: call events (ringing, answered, finished) to a webhook or Bitrix24."),
    "stats": ("stats", "cli", "Call statistics: per user, group, queue, public number, hour and day; HTML report."),
    "freeswitch": ("freeswitch", "cli", "Prepare a stock FreeSWITCH for fsctl."),
    "check": (
        "freeswitch",
        "check",
        "Ask the running FreeSWITCH whether the install steps are in force; one line per check.",
    ),
    "token": ("token", "cli", "API tokens for fsctl-web's recording API (/api/v1): shown once, stored hashed."),
}


# Old command names kept working, hidden from the help: {old name: its name now}.
ALIASES = {"timerule": "time-rule", "recgroup": "rec-group"}


class FsctlGroup(click.Group):
    """Loads a command's module when the command runs (COMMANDS), resolves ALIASES, and turns
    domain errors, and click's usage errors, into one line on stderr and the documented exit code."""

    def list_commands(self, ctx):
        return sorted({*self.commands, *COMMANDS})

    def get_command(self, ctx, cmd_name):
        name = ALIASES.get(cmd_name, cmd_name)
        if name not in self.commands and name in COMMANDS:
            _import_peewee_without_its_postgresql_driver()
            module, attribute, _ = COMMANDS[name]
            command = getattr(importlib.import_module(f".commands.{module}", __package__), attribute)
            _each_command(command, _once)
            self.add_command(command, name)
        return self.commands.get(name)

    def format_commands(self, ctx, formatter):
        """The command list of --help, from COMMANDS: no command module is imported to print it."""
        names = [n for n in self.list_commands(ctx) if n in COMMANDS or not self.commands[n].hidden]
        if not names:
            return
        limit = formatter.width - 6 - max(len(n) for n in names)
        rows = []
        for name in names:
            command = self.commands.get(name)
            if command is None:  # not loaded: a bare Command with the table's help shortens it as click does
                command = click.Command(name, help=COMMANDS[name][2])
            text = command.get_short_help_str(limit)
            rows.append((name, text))
        with formatter.section("Commands"):
            formatter.write_dl(rows)

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
        except Exception as exc:
            # peewee is imported by the commands that use the database, never for --version or --help
            peewee = sys.modules.get("peewee")
            if peewee is not None and isinstance(exc, peewee.IntegrityError):
                _fail(ctx, f"conflicting change, nothing was saved: {first_line(exc)}", 2, exc)
            elif peewee is not None and isinstance(exc, peewee.DatabaseError):  # OperationalError, DataError...
                _fail(ctx, f"database: {first_line(exc)}", 1, exc)
            elif isinstance(exc, OSError):
                _fail(ctx, f"{exc.filename or 'I/O'}: {exc.strerror or exc}", 1, exc)
            else:
                raise
        finally:
            app = ctx.find_object(App)
            if app is not None:
                app.close()


def _import_peewee_without_its_postgresql_driver():
    """peewee tries psycopg2 when it is imported; psycopg2 (and the ssl it loads) is ~10 ms that a
    command on SQLite does not need. Imported here without it, peewee gets the driver from
    fsctl.db.make_database when a postgresql URL is opened."""
    if "peewee" in sys.modules or "psycopg2" in sys.modules:
        return
    sys.modules["psycopg2"] = None  # `import psycopg2` fails at once: peewee notes "no driver"
    try:
        import peewee  # noqa: F401
    finally:
        del sys.modules["psycopg2"]


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
                        raise click.BadOptionUsage(
                            param.name, f"option {param.opts[-1]} given more than once: it takes one value", ctx=ctx
                        )
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


@click.group(
    "fsctl", cls=FsctlGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100}
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    envvar="FSCTL_CONFIG",
    help="Settings file (default /etc/fsctl/fsctl.toml).",
)
@click.option("--database", envvar="FSCTL_DATABASE", help="Database URL: sqlite:///path or postgresql://...")
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
@click.option(
    "--apply/--no-apply",
    "auto_apply",
    default=None,
    help="Apply a provisioning change to FreeSWITCH at once (default: the auto_apply setting).",
)
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


def _each_command(command, fn):
    """fn(command), and fn of each of its subcommands when it is a group."""
    fn(command)
    for sub in getattr(command, "commands", {}).values():
        _each_command(sub, fn)


# The root and init are here; every other command gets _once when its module is loaded.
_once(cli)
_once(init_cmd)


def main():
    """Console entry point."""
    cli(prog_name="fsctl")
