"""`list`, `show` and `remove` once, for the nouns a tenant names by a key: the numbering plan
(user, group, ivr, queue, conference) and did, time rule, recording group, media, contact,
blacklist, token, CRM hook, notification rule; each noun's module keeps its own `add` and `edit`
(and any command that is not the plain shape)."""

import click

from ._base import reading, transactional
from ._output import emit, force_option, json_option, report, say


def _same(fn):
    return fn


def _options(fn, options):
    for option in reversed(options):
        fn = option(fn)
    return fn


def numbered_commands(
    group: click.Group,
    kind: str,
    *,
    as_dict=None,
    columns=None,
    helps: dict,
    get=None,
    list_rows=None,
    remove=None,
    key: str = "number",
    secrets_help: str | None = None,
    list_options=(),
    all_tenants: bool = False,
    force: bool = True,
    removed: str = "{kind} {key} removed",
) -> None:
    """Add `list DOMAIN`, `show DOMAIN KEY` and `remove DOMAIN KEY [--force]` to a noun's group:
    each one whose service is given (`list_rows`, `get`, `remove`).

    `as_dict` is the noun's JSON shape (called with `show_secrets` when `secrets_help` is given:
    `show` then has --show-secrets), `columns` the list's table columns, `helps` each command's
    help ({"list": ..., "show": ..., "remove": ...}), `key` the name of the argument that names
    one (NUMBER, NAME, HOOK_ID...). `list_options` are click options passed on to `list_rows` as
    keywords; `all_tenants`: DOMAIN may be left out (every tenant's). `force`: `remove` refuses
    what routes point at unless --force, and prints what it re-pointed; else `remove(domain, key)`.
    `removed` is the line `remove` prints (`{kind}` and `{key}` filled in).
    """
    if list_rows is not None:

        @group.command("list", help=helps["list"])
        @click.argument("domain", required=not all_tenants)
        @_options_decorator(list_options)
        @json_option
        @reading
        def list_(domain, as_json, **options):
            emit([as_dict(row) for row in list_rows(domain, **options)], as_json, columns)

    if get is not None:

        @group.command("show", help=helps["show"])
        @click.argument("domain")
        @click.argument(key)
        @(click.option("--show-secrets", is_flag=True, help=secrets_help) if secrets_help else _same)
        @json_option
        @reading
        def show(domain, as_json, show_secrets=False, **named):
            row = get(domain, named[key])
            emit(as_dict(row, show_secrets) if secrets_help else as_dict(row), as_json)

    if remove is not None:

        @group.command("remove", help=helps["remove"])
        @click.argument("domain")
        @click.argument(key)
        @(force_option if force else _same)
        @transactional
        def remove_(domain, **named):
            value = named[key]
            if force:
                report(remove(domain, value, named["force"]))
            else:
                remove(domain, value)
            say(removed.format(kind=kind, key=value))


def _options_decorator(options):
    return lambda fn: _options(fn, options)
