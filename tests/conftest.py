"""Shared fixtures: the database on SQLite and on a real PostgreSQL server, the CLI runner.

PostgreSQL is Debian's `postgresql` package (installed by `make test` when missing); the
fixture runs a private server on a free loopback port in a temporary folder and stops it.
"""

import contextlib
import glob
import logging
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time

import pytest
from click.testing import CliRunner

from fsctl import db as fsdb
from fsctl.cli import cli

# The fake FreeSWITCH and Event Socket clients for it (fake_fs, make_esl, esl, hang_guard).
pytest_plugins = ("tests.fakes.esl_fixtures",)


# Fixtures that start a real server: a test using one is marked `servers` (make test-fast leaves it out).
SERVER_FIXTURES = frozenset({"postgres_server", "sshd", "browser"})  # browser: headless Chromium


def pytest_collection_modifyitems(items):
    """Mark `servers` every test that runs on a real server: PostgreSQL (the db_url fixture's
    "postgres" case, or the server itself), OpenSSH's sshd or headless Chromium."""
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if params.get("db_url") == "postgres" or SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.servers)


class QueryLog(logging.Handler):
    """The SQL statements peewee runs (it logs each one on the "peewee" logger at DEBUG)."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.queries = []

    def emit(self, record):
        self.queries.append(record.msg)

    @property
    def count(self):
        return len(self.queries)


@contextlib.contextmanager
def _count_queries():
    logger = logging.getLogger("peewee")
    log, level = QueryLog(), logger.level
    logger.addHandler(log)
    logger.setLevel(logging.DEBUG)
    try:
        yield log
    finally:
        logger.removeHandler(log)
        logger.setLevel(level)


@pytest.fixture
def count_queries():
    """`with count_queries() as log:` ... `log.count`: the SQL statements run inside (peewee's own
    tests count queries the same way), where the code promises a number of queries."""
    return _count_queries


def free_port():
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """A throw-away PostgreSQL cluster on 127.0.0.1 (trust auth, one database per test run)."""

    def __init__(self):
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not bins:
            raise RuntimeError("PostgreSQL is not installed: run `make sysdeps` (Debian package postgresql)")
        self.bindir = os.path.dirname(bins[-1])
        self.dir = tempfile.mkdtemp(prefix="fsctl-pg-")
        self.port = free_port()
        self.as_user = []
        if os.geteuid() == 0:
            # initdb refuses to run as root: run the cluster as Debian's postgres user.
            user = pwd.getpwnam("postgres")
            os.chown(self.dir, user.pw_uid, user.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.data = os.path.join(self.dir, "data")

    def _run(self, *cmd):
        subprocess.run(self.as_user + list(cmd), check=True, capture_output=True, timeout=120)

    def start(self):
        self._run(
            f"{self.bindir}/initdb", "-D", self.data, "--auth=trust", "-U", "postgres", "-E", "UTF8", "--locale=C"
        )
        opts = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(
            f"{self.bindir}/pg_ctl",
            "-D",
            self.data,
            "-o",
            opts,
            "-l",
            os.path.join(self.dir, "log"),
            "-w",
            "-t",
            "60",
            "start",
        )
        deadline = time.time() + 30
        while True:
            try:
                self._run(
                    f"{self.bindir}/psql",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "-U",
                    "postgres",
                    "-c",
                    "CREATE DATABASE fsctl_test",
                )
                break
            except subprocess.CalledProcessError:
                if time.time() > deadline:
                    raise
                time.sleep(0.2)
        return self

    @property
    def url(self):
        return f"postgresql://postgres@127.0.0.1:{self.port}/fsctl_test"

    def stop(self):
        try:
            self._run(f"{self.bindir}/pg_ctl", "-D", self.data, "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server():
    server = PostgresServer().start()
    yield server
    server.stop()


def _reset_postgres(url):
    database = fsdb.make_database(url)
    database.connect()
    database.execute_sql("DROP SCHEMA public CASCADE")
    database.execute_sql("CREATE SCHEMA public")
    database.close()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path):
    """A fresh, empty database URL: SQLite file, then the real PostgreSQL server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/fsctl.db"
    else:
        server = request.getfixturevalue("postgres_server")
        _reset_postgres(server.url)
        yield server.url
    fsdb.close_database()


@pytest.fixture
def sqlite_url(tmp_path):
    """A fresh SQLite database URL only (for tests that do not depend on the engine)."""
    yield f"sqlite:///{tmp_path}/fsctl.db"
    fsdb.close_database()


@pytest.fixture
def db(db_url):
    """The models bound to a fresh, migrated database (both engines)."""
    database = fsdb.open_database(db_url)
    yield database
    fsdb.close_database()


@pytest.fixture
def sdb(sqlite_url):
    """The models bound to a fresh SQLite database (engine-independent tests)."""
    database = fsdb.open_database(sqlite_url)
    yield database
    fsdb.close_database()


class Fsctl:
    """Runs `fsctl` commands in-process against one database."""

    def __init__(self, url, tmp_path):
        self.url = url
        self.tmp_path = tmp_path
        self.runner = CliRunner()
        self.env = {"FSCTL_CONFIG": "", "FSCTL_MEDIA_DIR": str(tmp_path / "media")}
        self.clock = None  # a function returning naive UTC: the commands' "now" (None: the real clock)

    def __call__(self, *args, input=None, ok=True):
        obj = {"clock": self.clock} if self.clock else None
        result = self.runner.invoke(
            cli, ["--database", self.url, *args], input=input, env=self.env, catch_exceptions=False, obj=obj
        )
        if ok is True and result.exit_code != 0:
            raise AssertionError(f"fsctl {' '.join(args)} exited {result.exit_code}: {result.stderr}")
        return result


@pytest.fixture
def fsctl(db_url, tmp_path):
    """`fsctl(...)`: the CLI on a fresh database of each engine (made by `fsctl init`)."""
    cli_ = Fsctl(db_url, tmp_path)
    cli_("init")
    return cli_


@pytest.fixture
def fsctl_sqlite(sqlite_url, tmp_path):
    """`fsctl(...)` on SQLite only (made by `fsctl init`)."""
    cli_ = Fsctl(sqlite_url, tmp_path)
    cli_("init")
    return cli_
