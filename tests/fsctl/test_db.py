"""Database URLs, schema versions and migrations (both engines)."""

import peewee
import pytest
from playhouse.migrate import SqliteMigrator, migrate as run_ops

from fsctl import db as fsdb, migrations, model
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
    """A database at the current version is upgraded step by step by later migrations, rows kept."""
    database = fsdb.open_database(db_url)
    model.Tenant.create(domain="acme.example", name="ACME")

    def add_column(database, migrator):
        run_ops(migrator.add_column("tenant", "note", peewee.TextField(default="")))
        database.execute_sql("UPDATE tenant SET note = 'kept ' || name")

    steps = [*migrations.MIGRATIONS, add_column]
    version = migrations.upgrade(database, migrations=steps)
    assert version == migrations.CURRENT_VERSION + 1 and migrations.current_version(database) == version
    assert database.execute_sql("SELECT note FROM tenant").fetchone()[0] == "kept ACME"
    # Running again is a no-op.
    assert migrations.upgrade(database, migrations=steps) == version


def test_failed_migration_rolls_back(db_url):
    database = fsdb.open_database(db_url)

    def broken(database, migrator):
        database.execute_sql("CREATE TABLE half_done (x INTEGER)")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        migrations.upgrade(database, migrations=[*migrations.MIGRATIONS, broken])
    assert migrations.current_version(database) == migrations.CURRENT_VERSION
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


def test_version_1_catalogue_gets_folded_search_texts(db_url):
    """Version 2: the recordings' searchable texts get folded copies, filled for existing rows."""
    from fsctl.services import recordings as rec

    database = fsdb.open_database(db_url)
    tenant = model.Tenant.create(domain="acme.example", name="ACME")
    # Back to version 1: the catalogue without the folded columns, with rows in it.
    migrator = migrations._migrator(database)
    run_ops(*(migrator.drop_column("recording", f"{name}_fold") for name in rec.FOLDED))
    model.SchemaVersion.delete().execute()
    model.SchemaVersion.create(version=1)
    for i, (name, note) in enumerate([("Ūla Žemaitė", "Skambinti ŠIANDIEN"), ("Ona", ""), ("STRASSE", "x")]):
        database.execute_sql(
            "INSERT INTO recording (tenant_id, user_number, user_name, direction, counterpart, started_at, duration,"
            " path, size, sha256, note, colour, field1, field2, field3, created_at)"
            f" VALUES ({tenant.id}, '10{i}', %s, 'in', '', '2026-11-01 10:00:00', 5, 'p{i}.wav', 0, '', %s, '',"
            " '', '', '', '2026-11-01 10:00:00')".replace("%s", database.param), (name, note))

    assert migrations.upgrade(database) == migrations.CURRENT_VERSION
    folds = database.execute_sql("SELECT user_name_fold, note_fold FROM recording ORDER BY id").fetchall()
    assert [tuple(f) for f in folds] == [("ūla žemaitė", "skambinti šiandien"), ("ona", ""), ("strasse", "x")]
    found = rec.search(rec.make_filters(user_name="žEMAI"))
    assert [r.user_name for r in found] == ["Ūla Žemaitė"]
    assert [r.user_name for r in rec.search(rec.make_filters(note="šiandien"))] == ["Ūla Žemaitė"]
    assert [r.user_name for r in rec.search(rec.make_filters(user_name="straße"))] == ["STRASSE"]


def test_a_command_that_read_can_still_write_after_another_process_wrote(sdb, sqlite_url):
    """Found on the live switch: `fsctl apply` failed with "database is locked" while fs-scripts
    recorded calls. A deferred transaction that read, then writes after another connection
    committed, fails at once (WAL); the command's transaction takes the write lock up front."""
    import sqlite3
    import threading
    import time

    other = sqlite3.connect(fsdb.sqlite_path(sqlite_url), timeout=10, check_same_thread=False)
    wrote = threading.Event()

    def service_writes():
        other.execute("INSERT INTO tenant (domain, name, timezone, state, fallback, gateway, revision, created_at, "
                      "updated_at) VALUES ('svc.example', 'S', 'UTC', 'active', 'hangup', 'default', 1, "
                      "'2026-01-01', '2026-01-01')")
        other.commit()
        wrote.set()

    with fsdb.transaction():
        model.Tenant.select().count()  # the command reads first
        writer = threading.Thread(target=service_writes)
        writer.start()
        time.sleep(0.3)  # a deferred transaction lets the other writer commit here
        model.Tenant.create(domain="cli.example", name="C")  # then writes
    writer.join(10)
    assert wrote.is_set()
    assert {t.domain for t in model.Tenant.select()} == {"svc.example", "cli.example"}


def test_version_2_database_gets_the_web_tables(db_url):
    """Version 3: the web workspace's tables are added to a version-2 database, its rows kept."""
    from fsctl.services import tokens, webauth

    database = fsdb.open_database(db_url)
    tenant = model.Tenant.create(domain="acme.example", name="ACME")
    model.User.create(tenant=tenant, number="101", name="Ona", sip_password="s" * 24)
    web_tables = [model.WebCredential, model.WebSession, model.SignInLink, model.SignInThrottle, model.ApiToken,
                  model.MarkAudit]
    database.drop_tables(web_tables)
    model.SchemaVersion.delete().execute()
    model.SchemaVersion.create(version=2)
    assert migrations.upgrade(database) == migrations.CURRENT_VERSION  # (3, then 4: nodes, 5: outbound names)
    assert all(database.table_exists(m._meta.table_name) for m in web_tables)
    webauth.set_web_password("acme.example", "101", "a long web password")
    tokens.add_token("acme.example", "crm", "read")
    assert model.User.select().count() == 1 and model.ApiToken.select().count() == 1


def back_to_version_3(database):
    """Take away what schema version 4 added (nodes, placement), as a version 3 database was."""
    database.drop_tables([model.NodeConfig])
    migrator = migrations._migrator(database)
    # (SQLite's own DROP COLUMN refuses a foreign key column: peewee's legacy way copies the table.)
    legacy = {"legacy": True} if isinstance(migrator, SqliteMigrator) else {}
    run_ops(*(migrator.drop_column("tenant", c, **legacy) for c in ("home_node_id", "standby_node_id",
                                                                    "draining_node_id", "drain_after")))
    database.drop_tables([model.Node])
    model.SchemaVersion.delete().execute()
    model.SchemaVersion.create(version=3)


def test_version_3_database_gets_nodes_and_keeps_tenants(db_url):
    """Version 4: nodes and placement are added to a version-3 database; tenants kept, unplaced, placeable."""
    database = fsdb.open_database(db_url)
    model.Tenant.create(domain="acme.example", name="ACME")
    back_to_version_3(database)
    assert not database.table_exists("node") and "home_node_id" not in {c.name for c in database.get_columns("tenant")}
    assert migrations.upgrade(database) == migrations.CURRENT_VERSION
    tenant = model.Tenant.get(model.Tenant.domain == "acme.example")
    assert tenant.name == "ACME" and tenant.home_node is None and tenant.draining_node is None
    node = model.Node.create(name="fs1", esl_host="127.0.0.1", esl_port=8021, sip_host="127.0.0.1", sip_port=5060,
                             public_host="127.0.0.1", public_port=5080)
    tenant.home_node = node
    tenant.save()
    model.NodeConfig.create(node=node, domain="acme.example", revision=1, digest="x")
    with pytest.raises(peewee.IntegrityError):  # a node that tenants live on cannot vanish under them
        with database.atomic():
            node.delete_instance()


def test_every_transaction_of_the_services_takes_the_write_lock_up_front(sdb, sqlite_url):
    """The call records ingested by fs-scripts (database.atomic in the service layer, not
    transaction()) failed the same way while fsctl provisioned: the database itself begins IMMEDIATE."""
    import sqlite3
    import threading
    import time

    other = sqlite3.connect(fsdb.sqlite_path(sqlite_url), timeout=10, check_same_thread=False)

    def cli_writes():
        other.execute("INSERT INTO tenant (domain, name, timezone, state, fallback, gateway, revision, created_at, "
                      "updated_at) VALUES ('cli.example', 'C', 'UTC', 'active', 'hangup', 'default', 1, "
                      "'2026-01-01', '2026-01-01')")
        other.commit()

    with fsdb.database.atomic():
        model.Tenant.select().count()
        writer = threading.Thread(target=cli_writes)
        writer.start()
        time.sleep(0.3)
        model.Tenant.create(domain="svc.example", name="S")
    writer.join(10)
    assert model.Tenant.select().count() == 2
