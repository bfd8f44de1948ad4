"""The CLI as a whole: help for every command, settings, error shape."""

import json
import sys

import click
import pytest

from fsctl.cli import cli
from fsctl.config import load_settings
from fsctl.errors import ConfigError


def all_commands(group=cli, path=()):
    ctx = click.Context(group)
    for name in group.list_commands(ctx):  # the top level loads its commands when asked for them
        command = group.get_command(ctx, name)
        yield path + (name,), command
        if isinstance(command, click.Group):
            yield from all_commands(command, path + (name,))


@pytest.mark.parametrize("path", [p for p, _ in all_commands()], ids=" ".join)
def test_every_command_has_help(path):
    command = cli
    for name in path:
        command = command.get_command(click.Context(command), name)
    assert command.help and command.help.strip(), f"fsctl {' '.join(path)} has no docstring"
    result = click.testing.CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0 and "Usage:" in result.output


def test_settings_file_then_environment(tmp_path):
    cfg = tmp_path / "fsctl.toml"
    cfg.write_text('[fsctl]\ndatabase = "sqlite:///from-file.db"\nesl_port = 8022\nesl_timeout = 2.5\n')
    settings = load_settings(str(cfg), environ={"FSCTL_ESL_PORT": "9000"})
    assert settings.database == "sqlite:///from-file.db"
    assert settings.esl_port == 9000 and settings.esl_timeout == 2.5


def test_settings_errors(tmp_path):
    with pytest.raises(ConfigError, match='config ".*missing.toml": file does not exist'):
        load_settings(str(tmp_path / "missing.toml"), environ={})
    bad = tmp_path / "bad.toml"
    bad.write_text("esl_port = [")
    with pytest.raises(ConfigError, match="bad.toml"):
        load_settings(str(bad), environ={})
    with pytest.raises(ConfigError, match='setting esl_port "abc": must be a whole number'):
        load_settings(None, environ={"FSCTL_ESL_PORT": "abc", "FSCTL_CONFIG": ""})


def test_config_error_exit_code(fsctl_sqlite, tmp_path):
    result = fsctl_sqlite("--config", str(tmp_path / "nope.toml"), "tenant", "list", ok=False)
    assert result.exit_code == 2
    assert result.stderr.strip() == f'Error: config "{tmp_path / "nope.toml"}": file does not exist'


def test_debug_shows_traceback(fsctl_sqlite):
    result = fsctl_sqlite("--debug", "tenant", "show", "nope.example", ok=False)
    assert result.exit_code == 2 and "Traceback" in result.stderr
    assert result.stderr.strip().endswith('Error: tenant "nope.example" does not exist')


def test_init_reports_version(fsctl_sqlite):
    from fsctl.migrations import CURRENT_VERSION

    assert CURRENT_VERSION == 8  # (3: the web workspace's tables; 4: nodes and placement; 5: longer call UUIDs;
    # 6: outbound names; 7: the recordings' trigram index; 8: the node of recordings and calls)
    assert f"ready at schema version {CURRENT_VERSION}" in fsctl_sqlite("init").stdout


def test_unknown_setting_is_an_error_naming_it(fsctl_sqlite, tmp_path):
    """A typo in fsctl.toml would silently fall back to the default (a new, empty database)."""
    cfg = tmp_path / "fsctl.toml"
    cfg.write_text('[fsctl]\ndatabse = "sqlite:////srv/real.db"\n')
    with pytest.raises(ConfigError, match=r'unknown setting "databse" \(did you mean "database"\?\)'):
        load_settings(str(cfg), environ={})
    result = fsctl_sqlite("--config", str(cfg), "tenant", "list", ok=False)
    assert result.exit_code == 2
    assert result.stderr == f'Error: config "{cfg}": unknown setting "databse" (did you mean "database"?)\n'
    cfg.write_text('[fsclt]\ndatabase = "sqlite:////srv/real.db"\n')
    with pytest.raises(ConfigError, match='unknown setting "fsclt"'):
        load_settings(str(cfg), environ={})
    cfg.write_text('[fsctl]\ndatabase = "sqlite:////srv/real.db"\n[other]\nx = 1\n')
    with pytest.raises(ConfigError, match=r'unknown section or key "other" \(settings go under \[fsctl\]\)'):
        load_settings(str(cfg), environ={})


@pytest.mark.parametrize("program", ["fsctl", "fs-scripts", "fsctl-web"])
def test_unknown_environment_variable_is_an_error_naming_it(tmp_path, program):
    """FSCTL_DATABSE=... (a typo) was ignored: the command ran on the default database. Every program refuses
    an FSCTL_* variable that is no setting, on one line, exit 2, without showing its value (maybe a password)."""
    import os
    import subprocess

    with pytest.raises(
        ConfigError,
        match=r"^environment variable FSCTL_DATABSE: not an fsctl setting \(did you "
        r"mean FSCTL_DATABASE\?\)",
    ):
        load_settings(None, environ={"FSCTL_CONFIG": os.devnull, "FSCTL_DATABSE": "sqlite:///x.db"})
    known = {
        "FSCTL_CONFIG": os.devnull,
        "FSCTL_DATABASE": "sqlite:///x.db",
        "FSCTL_ESL_PORT": "8022",
        "FSCTL_TEST_ANYTHING": "1",
        "FSCTLX": "1",
    }  # settings, the file, the test suite's own, another name
    assert load_settings(None, environ=known).esl_port == 8022
    db = tmp_path / "fsctl.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FSCTL_")}
    env.update(FSCTL_CONFIG=os.devnull, FSCTL_DATABASE=f"sqlite:///{db}", FSCTL_ESL_PASWORD="s3cret-value")
    args = {"fsctl": ["init"], "fs-scripts": ["run"], "fsctl-web": []}[program]
    exe = os.path.join(os.path.dirname(sys.executable), program)
    result = subprocess.run([exe, *args], env=env, capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        "Error: environment variable FSCTL_ESL_PASWORD: not an fsctl setting (did you mean "
        "FSCTL_ESL_PASSWORD?); settings are FSCTL_<setting name>, as in fsctl.toml\n"
    )
    assert not db.exists()  # nothing ran


@pytest.mark.parametrize(
    "name, value, rule",
    [
        ("recording_quota_mb", "-5", "must be at least 1"),
        ("recording_quota_mb", "0", "must be at least 1"),
        ("recording_retention_days", "0", "must be at least 1"),
        ("publish_keep_days", "-1", "must be at least 1"),
        ("notify_max_attempts", "0", "must be between 1 and 1000"),
        ("esl_port", "70000", "must be between 1 and 65535"),
    ],
)
def test_settings_out_of_range_are_refused(fsctl_sqlite, name, value, rule):
    """A negative quota would purge all but each user's newest recording: refused before anything runs."""
    with pytest.raises(ConfigError, match=f'setting {name} "{value}": {rule}'):
        load_settings(None, environ={"FSCTL_CONFIG": "", f"FSCTL_{name.upper()}": value})
    fsctl_sqlite.env[f"FSCTL_{name.upper()}"] = value
    result = fsctl_sqlite("rec", "purge", ok=False)
    assert result.exit_code == 2 and result.stderr == f'Error: setting {name} "{value}": {rule}\n'


def test_sample_settings_file_is_valid():
    """conf/fsctl.toml holds only settings fsctl knows."""
    from pathlib import Path

    sample = Path(__file__).resolve().parents[2] / "conf" / "fsctl.toml"
    assert load_settings(str(sample), environ={}).database == "sqlite:////var/lib/fsctl/fsctl.db"


@pytest.mark.parametrize(
    "args, message",
    [
        (["user", "add"], "Missing argument 'DOMAIN' (fsctl user add --help)"),
        (
            ["user", "add", "acme.example", "101", "--role", "boss"],
            "Invalid value for '--role': 'boss' is not one of 'user', 'supervisor', 'admin' (fsctl user add --help)",
        ),
        (["--nope", "tenant", "list"], "No such option '--nope'. Did you mean '--no-apply'? (fsctl --help)"),
        (["tenant", "nosuch"], "No such command 'nosuch' (fsctl tenant --help)"),
        (
            ["contact", "import", "acme.example", "/nonexistent.csv"],
            "Invalid value for 'CSVFILE': '/nonexistent.csv': No such file or directory (fsctl contact import --help)",
        ),
    ],
)
def test_usage_errors_are_one_line(fsctl_sqlite, args, message):
    """Click printed the usage, a hint, a blank line and the error: four lines."""
    result = fsctl_sqlite(*args, ok=False)
    assert result.exit_code == 2
    assert result.stderr == f"Error: {message}\n"


def test_did_add_with_two_destinations_is_refused(fsctl_sqlite):
    """`did add --to a --to b` kept the last one silently."""
    fsctl_sqlite("tenant", "add", "acme.example", "--name", "ACME")
    result = fsctl_sqlite(
        "did", "add", "acme.example", "+37052000000", "--to", "hangup", "--to", "hangup:USER_BUSY", ok=False
    )
    assert result.exit_code == 2
    assert result.stderr == "Error: option --to given more than once: it takes one value (fsctl did add --help)\n"
    assert fsctl_sqlite("did", "list", "--json").stdout.strip() == "[]"


def _single_value_options(command):
    return [p for p in command.params if isinstance(p, click.Option) and not (p.multiple or p.count or p.is_flag)]


@pytest.mark.parametrize(
    "path", [p for p, c in all_commands() if not isinstance(c, click.Group) and _single_value_options(c)], ids=" ".join
)
def test_every_command_refuses_a_single_value_option_given_twice(path):
    command = cli
    for name in path:
        command = command.commands[name]
    option = _single_value_options(command)[0].opts[-1]
    result = click.testing.CliRunner().invoke(cli, [*path, option, "1", option, "2"], env={"FSCTL_CONFIG": ""})
    assert result.exit_code == 2
    assert f"option {option} given more than once" in result.stderr, result.output


def test_old_noun_names_are_hidden_aliases(fsctl_sqlite):
    """`time-rule` and `rec-group` read as words; `timerule` and `recgroup` still work, unlisted."""
    from fsctl.cli import cli

    listed = cli.list_commands(None)
    assert "time-rule" in listed and "rec-group" in listed
    assert "timerule" not in listed and "recgroup" not in listed
    fsctl_sqlite("tenant", "add", "acme.example", "--name", "ACME")
    fsctl_sqlite(
        "time-rule",
        "add",
        "acme.example",
        "office",
        "--range",
        "mon-fri 08:00-17:00",
        "--match",
        "hangup",
        "--nomatch",
        "hangup",
    )
    old = fsctl_sqlite("timerule", "show", "acme.example", "office", "--json")
    new = fsctl_sqlite("time-rule", "show", "acme.example", "office", "--json")
    assert old.output == new.output and '"office"' in new.output
    fsctl_sqlite("recgroup", "add", "acme.example", "sales")
    assert '"sales"' in fsctl_sqlite("rec-group", "list", "acme.example", "--json").output


def test_command_table_is_the_modules_commands():
    """fsctl.cli.COMMANDS (what --help lists without importing anything) says what the modules say."""
    import importlib
    import pkgutil

    import fsctl.commands
    from fsctl.cli import COMMANDS

    nouns = {m.name for m in pkgutil.iter_modules(fsctl.commands.__path__) if not m.name.startswith("_")}
    assert {module for module, _, _ in COMMANDS.values()} == nouns  # every noun's module is in the table
    found = {}
    for noun in sorted(nouns):
        module = importlib.import_module(f"fsctl.commands.{noun}")
        for command in [module.cli, *getattr(module, "EXTRA_COMMANDS", ())]:
            found[command.name] = command
            where, attribute, short = COMMANDS[command.name]
            assert (where, getattr(module, attribute)) == (noun, command)
            for limit in (30, 45, 60, 80, 200):  # the help line, however wide the terminal
                assert click.Command("x", help=short).get_short_help_str(limit) == command.get_short_help_str(limit)
    assert set(found) == set(COMMANDS)


def _imported_by(*args, env=None):
    """The modules a whole `fsctl ARGS` run imported (run in a fresh interpreter)."""
    import os
    import subprocess

    script = (
        "import json, sys\nfrom fsctl.cli import main\nsys.argv = ['fsctl', *sys.argv[1:]]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\nprint(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "FSCTL_CONFIG": os.devnull, **(env or {})},
        timeout=60,
    ).stdout
    return set(json.loads(out.splitlines()[-1]))


def test_help_and_version_import_no_command():
    for args in (["--help"], ["--version"]):
        modules = _imported_by(*args)
        assert not [m for m in modules if m.startswith("fsctl.commands.") and not m.split(".")[-1].startswith("_")]
        assert not {"peewee", "rich", "jinja2", "lxml", "fsctl.config"} & modules, args


def test_a_command_imports_what_it_uses(tmp_path):
    env = {"FSCTL_DATABASE": f"sqlite:///{tmp_path}/fsctl.db"}
    _imported_by("init", env=env)  # (only init creates a database)
    modules = _imported_by("tenant", "list", env=env)
    assert {"fsctl.commands.tenant", "peewee", "rich"} <= modules
    assert (
        not {
            "fsctl.commands.rec",
            "fsctl.services.sftp",
            "fsctl.render",
            "jinja2",
            "lxml",
            "psycopg2",
            "playhouse.migrate",
        }
        & modules
    )  # (the database is at the current version: no upgrade)
    assert not [
        m
        for m in modules
        if m.startswith("fsctl.commands.")
        and m.split(".")[-1] not in ("tenant",)
        and not m.split(".")[-1].startswith("_")
    ]


def test_postgresql_gets_its_driver_in_a_fresh_command(postgres_server, tmp_path):
    """fsctl.cli imports peewee without psycopg2; a postgresql URL loads it (fsctl.db) and works."""
    import os
    import subprocess

    from fsctl.cli import main  # noqa: F401 (the console script's entry point)
    from tests.conftest import _reset_postgres

    _reset_postgres(postgres_server.url)
    env = {**os.environ, "FSCTL_CONFIG": os.devnull, "FSCTL_DATABASE": postgres_server.url}
    fsctl = [os.path.join(os.path.dirname(sys.executable), "fsctl")]
    for args in (["init"], ["tenant", "add", "pg.example", "--name", "PG"]):
        subprocess.run([*fsctl, *args], env=env, check=True, timeout=60, capture_output=True)
    listed = subprocess.run(
        [*fsctl, "tenant", "list", "--json"], env=env, check=True, timeout=60, capture_output=True, text=True
    ).stdout
    assert [t["domain"] for t in json.loads(listed)] == ["pg.example"]
    assert "psycopg2" in _imported_by("tenant", "list", env={"FSCTL_DATABASE": postgres_server.url})
    _reset_postgres(postgres_server.url)
