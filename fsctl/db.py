"""The database: chosen by URL, opened late, upgraded by migrations.

`sqlite:///relative/path.db`, `sqlite:////absolute/path.db`, `sqlite:///:memory:` or
`postgresql://user:password@host:port/dbname`.
"""

import contextlib
import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

import peewee

from .errors import ConfigError, OperationError, first_line
from .model import database  # the proxy the models bind to; `open_database` initialises it

SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "foreign_keys": 1,
    "busy_timeout": 10000,
    "synchronous": "normal",
}


def make_database(url):
    """Build (not connect) a peewee Database from a URL."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "sqlite":
        path = url[len("sqlite:///"):] if url.lower().startswith("sqlite:///") else ""
        if not path:
            raise ConfigError(f'database "{url}": sqlite URLs look like sqlite:///path/to/fsctl.db')
        if path != ":memory:":
            parent = Path(path).parent
            if not parent.exists():
                try:
                    parent.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise ConfigError(f'database "{url}": cannot create {parent}: {exc.strerror}') from None
        # Every transaction takes the write lock when it begins (BEGIN IMMEDIATE): a deferred one that
        # has read and then writes fails at once with "database is locked" when another connection
        # committed in between, whatever the busy timeout (WAL: its snapshot is stale). Seen on the live
        # switch both ways: `fsctl apply` while fs-scripts recorded calls, and fs-scripts' call records
        # while fsctl provisioned.
        return peewee.SqliteDatabase(path, pragmas=SQLITE_PRAGMAS, timeout=10, lock_type="IMMEDIATE")
    if scheme in ("postgres", "postgresql"):
        name = parts.path.lstrip("/")
        if not name:
            raise ConfigError(f'database "{url}": a PostgreSQL URL needs a database name')
        kwargs = {}
        if parts.hostname:
            kwargs["host"] = parts.hostname
        if parts.port:
            kwargs["port"] = parts.port
        if parts.username:
            kwargs["user"] = unquote(parts.username)
        if parts.password:
            kwargs["password"] = unquote(parts.password)
        return peewee.PostgresqlDatabase(unquote(name), **kwargs)
    raise ConfigError(f'database "{url}": scheme must be sqlite or postgresql')


def open_database(url, migrate=True):
    """Point the models at the database of `url`, connect, and bring the schema up to date."""
    db = make_database(url)
    database.initialize(db)
    try:
        db.connect(reuse_if_open=True)
    except peewee.OperationalError as exc:
        raise OperationError(f'database "{_redact(url)}": cannot connect: {first_line(exc)}') from None
    if migrate:
        from .migrations import upgrade

        upgrade(db)
    return db


def close_database():
    """Close the current connection, if any."""
    obj = database.obj
    if obj is not None and not obj.is_closed():
        obj.close()


@contextlib.contextmanager
def transaction():
    """One transaction: everything inside commits together or not at all (SQLite: BEGIN IMMEDIATE)."""
    with database.atomic():
        yield


def _redact(url):
    parts = urlsplit(url)
    if parts.password:
        return url.replace(":" + parts.password + "@", ":***@")
    return url


def sqlite_path(url):
    """The file behind a sqlite URL, or None."""
    if url.lower().startswith("sqlite:///"):
        path = url[len("sqlite:///"):]
        return None if path == ":memory:" else os.path.abspath(path)
    return None
