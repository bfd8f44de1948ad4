"""What every command shares: the app context, one transaction per command, input files.

Output helpers are in `_output`; applying a change to FreeSWITCH after a command in `_apply`.
"""

import functools
import sys

import click

from ..errors import ValidationError


class App:
    """Per-invocation state: settings, and the database once a command asks for it."""

    def __init__(self, config_path=None, database=None, debug=False, auto_apply=None, clock=None):
        self.config_path = config_path
        self.database_override = database
        self.debug = debug
        self.auto_apply_override = auto_apply
        self._settings = None
        self.db = None
        self._clock = clock

    def now(self):
        """Now, naive UTC: the clock a caller passed in (tests), else the real one."""
        if self._clock is not None:
            return self._clock()
        from ..model import utcnow

        return utcnow()

    @property
    def settings(self):
        if self._settings is None:
            from ..config import load_settings

            settings = load_settings(self.config_path)
            if self.database_override:
                from dataclasses import replace

                settings = replace(settings, database=self.database_override)
            self._settings = settings
        return self._settings

    def open(self, create=False):
        """Open (and migrate) the database once; only `fsctl init` may create it (`create`)."""
        if self.db is None:
            from ..db import open_database  # peewee: only for the commands that use the database

            self.db = open_database(self.settings.database, create=create)
        return self.db

    @property
    def auto_apply(self):
        """Apply to FreeSWITCH right after a change (`--apply/--no-apply`, else the auto_apply setting)."""
        if self.auto_apply_override is not None:
            return self.auto_apply_override
        return self.settings.auto_apply

    def tenants_fingerprint(self):
        """services.activation.fingerprint: every configuration or placement change moves it."""
        from ..services.activation import fingerprint

        return fingerprint()

    def after_commit(self, before):
        """Called once a command's transaction is committed, with the fingerprint taken before it."""
        if before is not None:
            from ._apply import apply_after_change

            apply_after_change(self, before)

    def close(self):
        if self.db is not None:
            from ..db import close_database

            close_database()
            self.db = None


pass_app = click.make_pass_decorator(App)


def transactional(fn):
    """Run a command that changes the database in one transaction: all of its changes or none.

    It takes SQLite's write lock when it begins (`BEGIN IMMEDIATE`) and waits for it up to the
    busy timeout: concurrent commands queue instead of failing with "database is locked".
    """

    @functools.wraps(fn)
    @click.pass_context
    def wrapper(ctx, *args, **kwargs):
        app = ctx.find_object(App)
        app.open()
        # auto_apply: only a command that changed a tenant's configuration applies it (not a list).
        before = app.tenants_fingerprint() if app.auto_apply else None
        from ..db import transaction

        with transaction(write=True):
            result = ctx.invoke(fn, *args, **kwargs)
        app.after_commit(before)
        return result

    return wrapper


def reading(fn):
    """Run a command that only reads in one transaction (one consistent view), without the write lock."""

    @functools.wraps(fn)
    @click.pass_context
    def wrapper(ctx, *args, **kwargs):
        ctx.find_object(App).open()
        from ..db import transaction

        with transaction():
            return ctx.invoke(fn, *args, **kwargs)

    return wrapper


def read_stdin_or_file(path, field="file"):
    """Bytes of a file, or of standard input for '-'; a file that cannot be read is bad input (exit 2)."""
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        raise ValidationError(field, path, "no such file") from None
    except IsADirectoryError:
        raise ValidationError(field, path, "is a folder, not a file") from None
    except PermissionError:
        raise ValidationError(field, path, "cannot be read (permission denied)") from None
