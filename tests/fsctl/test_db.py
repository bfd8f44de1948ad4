"""Database URLs, schema versions and migrations (both engines)."""

import peewee
import pytest
from playhouse.migrate import migrate as run_ops

from fsctl import db as fsdb
from fsctl import migrations, model
from fsctl.errors import ConfigError, OperationError


def test_new_database_gets_current_schema(db):
    assert migrations.current_version(db) == migrations.CURRENT_VERSION
    for m in model.ALL_MODELS:
        assert db.table_exists(m._meta.table_name), m


def test_sqlite_pragmas(sdb):
    assert sdb.execute_sql("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert sdb.execute_sql("PRAGMA foreign_keys").fetchone()[0] == 1
    assert sdb.execute_sql("PRAGMA busy_timeout").fetchone()[0] == 10000


def test_upgrade_keeps_data(db_url):
    """A database at version 1 is upgraded step by step by later migrations, rows kept."""
    database = fsdb.open_database(db_url)
    model.Tenant.create(domain="acme.example", name="ACME")

    def add_column(database, migrator):
        run_ops(migrator.add_column("tenant", "note", peewee.TextField(default="")))
        database.execute_sql("UPDATE tenant SET note = 'kept ' || name")

    version = migrations.upgrade(database, migrations=[add_column])
    assert version == 2 and migrations.current_version(database) == 2
    assert database.execute_sql("SELECT note FROM tenant").fetchone()[0] == "kept ACME"
    # Running again is a no-op.
    assert migrations.upgrade(database, migrations=[add_column]) == 2


def test_failed_migration_rolls_back(db_url):
    database = fsdb.open_database(db_url)

    def broken(database, migrator):
        database.execute_sql("CREATE TABLE half_done (x INTEGER)")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        migrations.upgrade(database, migrations=[broken])
    assert migrations.current_version(database) == 1
    assert not database.table_exists("half_done")


def test_newer_schema_is_refused(sqlite_url):
    database = fsdb.open_database(sqlite_url)
    model.SchemaVersion.create(version=99)
    with pytest.raises(OperationError, match="newer than this fsctl"):
        migrations.upgrade(database)


@pytest.mark.parametrize("url, message", [
    ("mysql://x/y", "scheme must be sqlite or postgresql"),
    ("sqlite://", "sqlite URLs look like"),
    ("postgresql://127.0.0.1:5432/", "needs a database name"),
])
def test_bad_urls(url, message):
    with pytest.raises(ConfigError, match=message):
        fsdb.make_database(url)


def test_unreachable_postgres_is_one_line(fsctl_sqlite):
    from tests.conftest import free_port

    fsctl_sqlite.url = f"postgresql://nobody:secret@127.0.0.1:{free_port()}/x"
    result = fsctl_sqlite("tenant", "list", ok=False)
    assert result.exit_code == 1
    assert result.stderr.startswith(f'Error: database "postgresql://nobody:***@127.0.0.1:')
    assert "secret" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
