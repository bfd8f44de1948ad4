"""Database URLs, schema versions and migrations (both engines)."""

import datetime as dt
import os
import stat

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


@pytest.mark.parametrize(
    "url, message",
    [
        ("mysql://x/y", "scheme must be sqlite or postgresql"),
        ("sqlite://", "sqlite URLs look like"),
        ("postgresql://127.0.0.1:5432/", "needs a database name"),
    ],
)
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
    # Back to version 1: the catalogue without the folded columns (nor version 7's trigram index,
    # whose SQLite triggers name them), with rows in it.
    if isinstance(database, peewee.SqliteDatabase):
        for name in ("insert", "delete", "update"):
            database.execute_sql(f"DROP TRIGGER recording_fts_{name}")
        database.execute_sql("DROP TABLE recording_fts")
    migrator = migrations._migrator(database)
    run_ops(*(migrator.drop_column("recording", f"{name}_fold") for name in rec.FOLDED))
    model.SchemaVersion.delete().execute()
    model.SchemaVersion.create(version=1)
    for i, (name, note) in enumerate([("Ūla Žemaitė", "Skambinti ŠIANDIEN"), ("Ona", ""), ("STRASSE", "x")]):
        database.execute_sql(
            "INSERT INTO recording (tenant_id, user_number, user_name, direction, counterpart, started_at, duration,"
            " path, size, sha256, note, colour, field1, field2, field3, created_at)"
            f" VALUES ({tenant.id}, '10{i}', %s, 'in', '', '2026-11-01 10:00:00', 5, 'p{i}.wav', 0, '', %s, '',"
            " '', '', '', '2026-11-01 10:00:00')".replace("%s", database.param),
            (name, note),
        )

    assert migrations.upgrade(database) == migrations.CURRENT_VERSION
    folds = database.execute_sql("SELECT user_name_fold, note_fold FROM recording ORDER BY id").fetchall()
    assert [tuple(f) for f in folds] == [("ūla žemaitė", "skambinti šiandien"), ("ona", ""), ("strasse", "x")]
    found = rec.search(rec.make_filters(user_name="žEMAI"))
    assert [r.user_name for r in found] == ["Ūla Žemaitė"]
    assert [r.user_name for r in rec.search(rec.make_filters(note="šiandien"))] == ["Ūla Žemaitė"]
    assert [r.user_name for r in rec.search(rec.make_filters(user_name="straße"))] == ["STRASSE"]


# --- only `fsctl init` creates a database ------------------------------------------------------


def _cli(url, *args):
    from click.testing import CliRunner

    from fsctl.cli import cli

    try:
        return CliRunner().invoke(cli, ["--database", url, *args], env={"FSCTL_CONFIG": ""}, catch_exceptions=False)
    finally:
        fsdb.close_database()


def test_a_missing_sqlite_database_is_refused_not_created(tmp_path):
    """A mistyped URL silently created an empty database (and its folders) and reported success."""
    url = f"sqlite:///{tmp_path}/nonexistent/dir/x.db"
    result = _cli(url, "tenant", "list")
    assert result.exit_code == 2
    assert result.stderr == (
        f'Error: database "{url}": {tmp_path}/nonexistent/dir/x.db does not exist (`fsctl init` creates it)\n'
    )
    assert not (tmp_path / "nonexistent").exists()
    # init neither creates the folders
    result = _cli(url, "init")
    assert result.exit_code == 2
    assert (
        result.stderr
        == f'Error: database "{url}": folder {tmp_path}/nonexistent/dir does not exist (create it first)\n'
    )
    assert not (tmp_path / "nonexistent").exists()
    # a missing file in an existing folder: refused by every command but init
    url = f"sqlite:///{tmp_path}/x.db"
    assert _cli(url, "tenant", "add", "acme.example", "--name", "ACME").exit_code == 2
    assert not (tmp_path / "x.db").exists()
    assert _cli(url, "init").exit_code == 0
    assert _cli(url, "tenant", "add", "acme.example", "--name", "ACME").exit_code == 0


def test_a_relative_sqlite_url_says_so(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = _cli("sqlite:///tmp/x.db", "tenant", "list")
    assert result.exit_code == 2
    assert result.stderr == (
        f'Error: database "sqlite:///tmp/x.db": {tmp_path}/tmp/x.db does not exist (`fsctl init` '
        f"creates it; the path is relative to {tmp_path}: for /tmp/x.db write sqlite:////tmp/x.db)\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_an_empty_postgres_database_is_refused_until_init(postgres_server):
    from tests.conftest import _reset_postgres

    _reset_postgres(postgres_server.url)
    result = _cli(postgres_server.url, "tenant", "list")
    assert result.exit_code == 2
    assert (
        result.stderr == f'Error: database "{postgres_server.url}": holds no fsctl data yet; `fsctl init` creates it\n'
    )
    database = fsdb.make_database(postgres_server.url)
    database.connect()
    assert database.get_tables() == []  # nothing was created
    database.close()
    assert _cli(postgres_server.url, "init").exit_code == 0
    assert _cli(postgres_server.url, "tenant", "list").exit_code == 0


def test_a_file_that_is_not_sqlite_is_one_line(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("not a database, just notes\n" * 100)
    for command in (["tenant", "list"], ["init"]):
        result = _cli(f"sqlite:///{path}", *command)
        assert result.exit_code == 2
        assert result.stderr == f'Error: database "sqlite:///{path}": {path} is not an SQLite database\n'
    assert path.read_text() == "not a database, just notes\n" * 100


def test_the_database_file_is_private(tmp_path):
    """fsctl.db holds SIP passwords and PINs: 0600 when init creates it; init takes other users' access away."""
    url = f"sqlite:///{tmp_path}/fsctl.db"
    old_umask = os.umask(0o022)
    try:
        assert _cli(url, "init").exit_code == 0
        assert _cli(url, "tenant", "add", "acme.example", "--name", "ACME").exit_code == 0
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(os.stat(tmp_path / "fsctl.db").st_mode) == 0o600
    for name in ("fsctl.db-wal", "fsctl.db-shm"):
        if (tmp_path / name).exists():
            assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o600
    os.chmod(tmp_path / "fsctl.db", 0o644)  # as fsctl made it before
    assert _cli(url, "init").exit_code == 0
    assert stat.S_IMODE(os.stat(tmp_path / "fsctl.db").st_mode) == 0o640


def test_root_is_refused_on_a_database_another_user_owns(tmp_path):
    """A timer or a command run as root beside the fsctl services left root-owned -wal/-shm files the services
    could not open. As root, fsctl refuses a database (or, for init, a folder) that another user owns."""
    import pwd

    url, path = f"sqlite:///{tmp_path}/db/fsctl.db", tmp_path / "db" / "fsctl.db"
    path.parent.mkdir()
    nobody = pwd.getpwnam("nobody")
    message = (
        f'Error: database "{url}": {{what}}{path} belongs to nobody, not root: run as nobody (sudo -u nobody '
        "fsctl ...); as root, SQLite would leave root-owned -wal and -shm files that nobody cannot open\n"
    )
    if os.geteuid() != 0:  # (make test and CI run as root; elsewhere the rule is checked as if root)
        with pytest.raises(ConfigError, match="belongs to"):
            fsdb.refuse_root_on_foreign_file(url, str(tmp_path), euid=0)
        return
    os.chown(path.parent, nobody.pw_uid, nobody.pw_gid)
    result = _cli(url, "init")
    assert (result.exit_code, result.stderr) == (2, message.format(what="the folder of "))
    assert list(path.parent.iterdir()) == []  # nothing created
    os.chown(path.parent, 0, 0)
    assert _cli(url, "init").exit_code == 0  # root's own folder: root's own database
    os.chown(path, nobody.pw_uid, nobody.pw_gid)
    before = sorted(p.name for p in path.parent.iterdir())
    for command in (["tenant", "list"], ["init"], ["tenant", "add", "acme.example", "--name", "ACME"]):
        result = _cli(url, *command)
        assert (result.exit_code, result.stderr) == (2, message.format(what=""))
    assert sorted(p.name for p in path.parent.iterdir()) == before
    os.chown(path, 0, 0)
    assert _cli(url, "tenant", "add", "acme.example", "--name", "ACME").exit_code == 0
    fsdb.refuse_root_on_foreign_file(url, str(path), euid=nobody.pw_uid)  # not root: the file system decides


# --- concurrency: write commands take SQLite's lock when they begin --------------------------


def _add_user_in_child(url, number, barrier, codes):
    from click.testing import CliRunner

    from fsctl.cli import cli

    barrier.wait(60)  # all 40 start their command together
    result = CliRunner().invoke(
        cli, ["--database", url, "user", "add", "acme.example", number, "--name", "U"], env={"FSCTL_CONFIG": ""}
    )
    codes.put((number, result.exit_code, result.stderr))


def test_forty_parallel_user_adds_all_succeed(tmp_path):
    """Deferred transactions failed with "database is locked" at once (30 of 40) despite the busy timeout.

    40 real processes (forked with fsctl already imported, so that the test is not 40 interpreter
    start-ups) run `fsctl user add` at the same moment on one SQLite file.
    """
    import multiprocessing

    url = f"sqlite:///{tmp_path}/fsctl.db"
    assert _cli(url, "init").exit_code == 0
    assert _cli(url, "tenant", "add", "acme.example", "--name", "ACME").exit_code == 0
    ctx = multiprocessing.get_context("fork")
    barrier, codes = ctx.Barrier(40), ctx.Queue()
    procs = [ctx.Process(target=_add_user_in_child, args=(url, str(100 + i), barrier, codes)) for i in range(40)]
    for p in procs:
        p.start()
    results = [codes.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(60)
    failed = [r for r in results if r[1] != 0]
    assert failed == [], f"{len(failed)} of 40 failed, e.g. {failed[0]}"
    fsdb.open_database(url, create=False)
    try:
        numbers = [u.number for u in model.User.select().order_by(model.User.number)]
        assert numbers == [str(100 + i) for i in range(40)]  # none lost, none doubled
        assert model.Tenant.get().revision == 41  # each change counted once
    finally:
        fsdb.close_database()


def test_read_commands_do_not_wait_for_the_write_lock(fsctl_sqlite):
    """A list or a search reads its snapshot while another process holds the write lock (WAL)."""
    import sqlite3

    fsctl_sqlite("tenant", "add", "acme.example", "--name", "ACME")
    other = sqlite3.connect(fsdb.sqlite_path(fsctl_sqlite.url), isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        other.execute("UPDATE tenant SET name = 'changing'")
        result = fsctl_sqlite("tenant", "list", "--json")
        assert '"ACME"' in result.stdout
    finally:
        other.execute("ROLLBACK")
        other.close()


def test_version_2_database_gets_the_web_tables(db_url):
    """Version 3: the web workspace's tables are added to a version-2 database, its rows kept."""
    from fsctl.services import tokens, webauth

    database = fsdb.open_database(db_url)
    tenant = model.Tenant.create(domain="acme.example", name="ACME")
    model.User.create(tenant=tenant, number="101", name="Ona", sip_password="s" * 24)
    web_tables = [
        model.WebCredential,
        model.WebSession,
        model.SignInLink,
        model.SignInThrottle,
        model.ApiToken,
        model.MarkAudit,
    ]
    database.drop_tables(web_tables)
    model.SchemaVersion.delete().execute()
    model.SchemaVersion.create(version=2)
    assert migrations.upgrade(database) == migrations.CURRENT_VERSION  # (3, then 4: nodes, 5, 6, 7)
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
    run_ops(
        *(
            migrator.drop_column("tenant", c, **legacy)
            for c in ("home_node_id", "standby_node_id", "draining_node_id", "drain_after")
        )
    )
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
    node = model.Node.create(
        name="fs1",
        esl_host="127.0.0.1",
        esl_port=8021,
        sip_host="127.0.0.1",
        sip_port=5060,
        public_host="127.0.0.1",
        public_port=5080,
    )
    tenant.home_node = node
    tenant.save()
    model.NodeConfig.create(node=node, domain="acme.example", revision=1, digest="x")
    with pytest.raises(peewee.IntegrityError):  # a node that tenants live on cannot vanish under them
        with database.atomic():
            node.delete_instance()


def test_version_4_database_gets_the_wider_call_fields(db_url):
    """Version 5: on PostgreSQL a call UUID over 64 characters (or a domain-long voicemail box) failed its batch."""
    database = fsdb.open_database(db_url)
    pg = isinstance(database, peewee.PostgresqlDatabase)
    old = {
        ("call_record", "uuid"): 64,
        ("call_record", "voicemail"): 32,
        ("call_record", "queue"): 64,
        ("call_leg", "uuid"): 64,
        ("recording", "call_uuid"): 64,
        ("crm_call", "call_uuid"): 64,
        ("outbox", "key"): 200,
    }
    if pg:  # the version 4 columns
        for (table, column), size in old.items():
            database.execute_sql(f'ALTER TABLE "{table}" ALTER COLUMN "{column}" TYPE VARCHAR({size})')
    model.SchemaVersion.delete().execute()
    model.SchemaVersion.create(version=4)
    assert (
        migrations.upgrade(database) == migrations.CURRENT_VERSION
    )  # (5, then 6: outbound names, 7: the trigram index, 8: nodes)
    if pg:
        sizes = dict(
            ((t, c), n)
            for t, c, n in database.execute_sql(
                "SELECT table_name, column_name, character_maximum_length FROM information_schema.columns "
                "WHERE table_schema = 'public'"
            ).fetchall()
        )
        assert {key: sizes[key] for key in old} == {key: (512 if key == ("outbox", "key") else 255) for key in old}
    tenant = model.Tenant.create(domain="acme.example", name="ACME")
    model.CallRecord.create(
        tenant=tenant,
        uuid="u" * 255,
        direction="in",
        started_at=dt.datetime(2026, 12, 1),
        status="missed",
        voicemail="v" * 255,
    )
    assert model.CallRecord.get().uuid == "u" * 255


def test_version_7_database_gets_the_nodes_of_recordings_and_calls(db_url):
    """Version 8: recordings, calls and legs say which node they are on; old rows have none (the single FreeSWITCH)."""
    database = fsdb.open_database(db_url)
    tenant = model.Tenant.create(domain="acme.example", name="ACME")
    model.Node.create(
        name="fs1",
        esl_host="127.0.0.1",
        esl_port=8021,
        sip_host="127.0.0.1",
        sip_port=5060,
        public_host="127.0.0.1",
        public_port=5080,
    )
    model.Recording.create(
        tenant=tenant, user_number="101", direction="in", started_at=dt.datetime(2026, 12, 1), path="acme.example/a.wav"
    )
    call = model.CallRecord.create(
        tenant=tenant, uuid="u1", direction="in", started_at=dt.datetime(2026, 12, 1), status="missed"
    )
    model.CallLeg.create(call=call, uuid="l1", started_at=dt.datetime(2026, 12, 1), result="no_answer")
    migrator = migrations._migrator(database)
    run_ops(*(migrator.drop_column(table, column) for table, column, _ in migrations.NODE_COLUMNS))
    model.SchemaVersion.delete().execute()
    model.SchemaVersion.create(version=7)
    assert migrations.upgrade(database) == 8 == migrations.CURRENT_VERSION
    for table, column, _ in migrations.NODE_COLUMNS:
        assert column in {c.name for c in database.get_columns(table)}, (table, column)
    assert model.Recording.get().node is None and model.CallRecord.get().node is None
    assert model.CallLeg.get().node is None and model.Node.get().recordings_dir == ""
    model.Recording.update(node="fs1").execute()
    assert model.Recording.get().node == "fs1"


def test_postgres_role_without_pg_trgm_still_searches(postgres_server):
    """A role that may not create the pg_trgm extension gets the schema without the index: same rows, by scan."""
    from fsctl.services import recordings as rec
    from tests.conftest import _reset_postgres

    _reset_postgres(postgres_server.url)
    admin = fsdb.make_database(postgres_server.url)
    admin.connect()
    admin.execute_sql("DROP ROLE IF EXISTS fsctl_limited")
    admin.execute_sql("CREATE ROLE fsctl_limited LOGIN")
    admin.execute_sql("GRANT CREATE, USAGE ON SCHEMA public TO fsctl_limited")  # tables yes; extensions no
    try:
        database = fsdb.open_database(postgres_server.url.replace("postgres@", "fsctl_limited@"))
        assert migrations.current_version(database) == migrations.CURRENT_VERSION
        assert not database.execute_sql("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'").fetchone()
        tenant = model.Tenant.create(domain="acme.example", name="ACME")
        model.Recording.create(
            tenant=tenant,
            user_number="101",
            direction="in",
            started_at="2026-11-01 10:00:00",
            path="a.wav",
            note="Call back",
            note_fold="call back",
        )
        assert [r.path for r in rec.search(rec.make_filters(note="BACK"))] == ["a.wav"]
        fsdb.close_database()
    finally:
        _reset_postgres(postgres_server.url)  # the role's tables go with the schema
        admin.execute_sql("DROP ROLE fsctl_limited")
        admin.close()
