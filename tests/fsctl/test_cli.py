"""The CLI as a whole: help for every command, settings, error shape."""

import click
import pytest

from fsctl.cli import cli
from fsctl.config import load_settings
from fsctl.errors import ConfigError


def all_commands(group=cli, path=()):
    for name, command in sorted(group.commands.items()):
        yield path + (name,), command
        if isinstance(command, click.Group):
            yield from all_commands(command, path + (name,))


@pytest.mark.parametrize("path", [p for p, _ in all_commands()], ids=" ".join)
def test_every_command_has_help(path):
    command = cli
    for name in path:
        command = command.commands[name]
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

    assert CURRENT_VERSION == 5  # (3: the web workspace's tables; 4: nodes and placement; 5: outbound names)
    assert f"ready at schema version {CURRENT_VERSION}" in fsctl_sqlite("init").stdout


def test_old_noun_names_are_hidden_aliases(fsctl_sqlite):
    """`time-rule` and `rec-group` read as words; `timerule` and `recgroup` still work, unlisted."""
    from fsctl.cli import cli

    listed = cli.list_commands(None)
    assert "time-rule" in listed and "rec-group" in listed
    assert "timerule" not in listed and "recgroup" not in listed
    fsctl_sqlite("tenant", "add", "acme.example", "--name", "ACME")
    fsctl_sqlite("time-rule", "add", "acme.example", "office", "--range", "mon-fri 08:00-17:00",
          "--match", "hangup", "--nomatch", "hangup")
    old = fsctl_sqlite("timerule", "show", "acme.example", "office", "--json")
    new = fsctl_sqlite("time-rule", "show", "acme.example", "office", "--json")
    assert old.output == new.output and '"office"' in new.output
    fsctl_sqlite("recgroup", "add", "acme.example", "sales")
    assert '"sales"' in fsctl_sqlite("rec-group", "list", "acme.example", "--json").output
