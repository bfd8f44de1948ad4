"""`list`, `show` and `remove` once, for the nouns of the numbering plan (user, group, ivr, queue,
conference); each noun's module keeps its own `add` and `edit`."""

import click

from ._base import reading, transactional
from ._output import emit, force_option, json_option, report, say


def _same(fn):
    return fn


def numbered_commands(group: click.Group, kind: str, *, get, list_rows, remove, as_dict, columns, helps: dict,
                      secrets_help: str | None = None) -> None:
    """Add `list DOMAIN`, `show DOMAIN NUMBER` and `remove DOMAIN NUMBER [--force]` to a noun's group.

    `get`, `list_rows` and `remove` are the noun's services, `as_dict` its JSON shape (called with
    `show_secrets` when `secrets_help` is given: `show` then has --show-secrets), `columns` the
    list's table columns, `helps` each command's help ({"list": ..., "show": ..., "remove": ...}).
    """

    @group.command("list", help=helps["list"])
    @click.argument("domain")
    @json_option
    @reading
    def list_(domain, as_json):
        emit([as_dict(row) for row in list_rows(domain)], as_json, columns)

    @group.command("show", help=helps["show"])
    @click.argument("domain")
    @click.argument("number")
    @(click.option("--show-secrets", is_flag=True, help=secrets_help) if secrets_help else _same)
    @json_option
    @reading
    def show(domain, number, as_json, show_secrets=False):
        row = get(domain, number)
        emit(as_dict(row, show_secrets) if secrets_help else as_dict(row), as_json)

    @group.command("remove", help=helps["remove"])
    @click.argument("domain")
    @click.argument("number")
    @force_option
    @transactional
    def remove_(domain, number, force):
        report(remove(domain, number, force))
        say(f"{kind} {number} removed")
