"""The database: chosen by URL, opened late, upgraded by migrations.

`sqlite:///relative/path.db`, `sqlite:////absolute/path.db`, `sqlite:///:memory:` or
`postgresql://user:password@host:port/dbname`.
"""

import contextlib
import os
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
        path = url[len("sqlite:///") :] if url.lower().startswith("sqlite:///") else ""
        if not path:
            raise ConfigError(f'database "{url}": sqlite URLs look like sqlite:///path/to/fsctl.db')
        return peewee.SqliteDatabase(path, pragmas=SQLITE_PRAGMAS, timeout=10)
    if scheme in ("postgres", "postgresql"):
        _postgresql_driver()
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


def _postgresql_driver():
    """Give peewee psycopg2 when it was imported without it (fsctl.cli does so: a SQLite command
    need not load the driver), as peewee's own import would have (peewee 4.5, peewee.py's head)."""
    if peewee.psycopg2 is not None:
        return
    import psycopg2
    from psycopg2 import extensions
    from psycopg2.extras import Json, register_uuid

    register_uuid()
    peewee.psycopg2, peewee.pg_extensions, peewee.pg_register_uuid, peewee.Json_pg2 = (
        psycopg2,
        extensions,
        register_uuid,
        Json,
    )
    adapter = peewee.Psycopg2Adapter
    adapter.txn_idle = extensions.TRANSACTION_STATUS_IDLE
    adapter.txn_inerror = extensions.TRANSACTION_STATUS_INERROR
    adapter.txn_unknown = extensions.TRANSACTION_STATUS_UNKNOWN


# The database holds SIP passwords and voicemail PINs: its owner only (a group may be given
# read access by hand, 0640); never other users. SQLite gives its -wal and -shm files the
# database file's mode.
DB_FILE_MODE = 0o600


def open_database(url, migrate=True, create=True):
    """Point the models at the database of `url`, connect, and bring the schema up to date.

    `create=False` (every command but `fsctl init`, and the service): a database that does not
    exist yet is refused instead of created, so that a mistyped URL or setting cannot silently
    start an empty PBX. A new SQLite file is created with mode 0600, in an existing folder only.
    """
    path = sqlite_path(url)
    if path is not None:
        refuse_root_on_foreign_file(url, path, create)
        _check_sqlite_file(url, path, create)
    db = make_database(url)
    database.initialize(db)
    try:
        db.connect(reuse_if_open=True)
    except peewee.DatabaseError as exc:
        if path is not None and "not a database" in str(exc):
            raise ConfigError(f'database "{_redact(url)}": {path} is not an SQLite database') from None
        raise OperationError(f'database "{_redact(url)}": cannot connect: {first_line(exc)}') from None
    if migrate:
        from .migrations import current_version, upgrade

        try:
            version = current_version(db)
        except peewee.DatabaseError as exc:
            db.close()
            if path is not None:
                raise ConfigError(f'database "{_redact(url)}": {path} is not an SQLite database') from None
            raise OperationError(f'database "{_redact(url)}": {first_line(exc)}') from None
        if version == 0 and not create:
            db.close()
            raise ConfigError(f'database "{_redact(url)}": holds no fsctl data yet; `fsctl init` creates it')
        upgrade(db)
    return db


def refuse_root_on_foreign_file(url, path, create=True, euid=None):
    """As root, refuse an SQLite database (or, for `fsctl init`, its folder) that another user owns.

    SQLite creates its -wal and -shm files as whoever opens the database: a command or timer run
    as root beside the `fsctl` services left root-owned files that the services then could not
    open ("attempt to write a readonly database"). `euid` is os.geteuid() unless given (tests).
    """
    euid = os.geteuid() if euid is None else euid
    if euid != 0:
        return
    if os.path.exists(path):
        target = path
    elif create:
        target = os.path.dirname(path) or "."
    else:
        return  # (_check_sqlite_file refuses a missing database)
    try:
        owner = os.stat(target).st_uid
    except OSError:
        return  # (a missing folder is refused by _check_sqlite_file)
    if owner == 0:
        return
    import pwd

    try:
        name = pwd.getpwuid(owner).pw_name
    except KeyError:
        name = f"uid {owner}"
    what = "" if target == path else "the folder of "
    raise ConfigError(
        f'database "{_redact(url)}": {what}{path} belongs to {name}, not root: run as {name} '
        f"(sudo -u {name} fsctl ...); as root, SQLite would leave root-owned -wal and -shm files "
        f"that {name} cannot open"
    )


def _check_sqlite_file(url, path, create):
    """Refuse a missing SQLite file (or make it, 0600, for `fsctl init`); tighten a world-readable one."""
    hint, rel = "", url[len("sqlite:///") :]
    if not rel.startswith("/"):
        hint = f"; the path is relative to {os.getcwd()}: for /{rel} write sqlite:////{rel}"
    if not os.path.exists(path):
        if not create:
            raise ConfigError(f'database "{url}": {path} does not exist (`fsctl init` creates it{hint})')
        parent = os.path.dirname(path)
        if not os.path.isdir(parent):
            raise ConfigError(f'database "{url}": folder {parent} does not exist (create it first{hint})')
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, DB_FILE_MODE))
        except FileExistsError:
            pass
        except OSError as exc:
            raise ConfigError(f'database "{url}": cannot create {path}: {exc.strerror}') from None
        return
    if not os.path.isfile(path):
        raise ConfigError(f'database "{url}": {path} is not a file')
    if create:  # `fsctl init` on an existing database: no access for other users (was 0644)
        for name in (path, path + "-wal", path + "-shm"):
            with contextlib.suppress(OSError):
                mode = os.stat(name).st_mode & 0o777
                if mode & 0o007:
                    os.chmod(name, mode & 0o770)


def close_database():
    """Close the current connection, if any."""
    obj = database.obj
    if obj is not None and not obj.is_closed():
        obj.close()


@contextlib.contextmanager
def transaction(write=False):
    """One transaction: everything inside commits together or not at all.

    `write=True`: SQLite takes its write lock at BEGIN (`BEGIN IMMEDIATE`) and waits for it up
    to the busy timeout. A deferred transaction that reads and then writes cannot wait: when
    another writer committed in between, SQLite fails it at once with "database is locked".
    """
    if write and isinstance(database.obj, peewee.SqliteDatabase) and not database.in_transaction():
        with database.atomic("IMMEDIATE"):
            yield
    else:
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
        path = url[len("sqlite:///") :]
        return None if path == ":memory:" else os.path.abspath(path)
    return None
