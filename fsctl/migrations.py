"""Schema versions: a new database gets the current schema; an old one is upgraded in steps.

To change the schema: change the models, append a step to MIGRATIONS that brings a database of
the previous version to the new one (playhouse.migrate operations, data copied, never dropped
unless moved), and leave earlier steps alone. Each step runs in its own transaction.
"""

from . import model
from .errors import OperationError
from .model import FOLDED, fold


def _migrator(db):
    import peewee
    from playhouse.migrate import PostgresqlMigrator, SqliteMigrator  # (it loads psycopg2: only to upgrade)

    if isinstance(db, peewee.PostgresqlDatabase):
        return PostgresqlMigrator(db)
    return SqliteMigrator(db)


def _v2_recording_folds(db, migrator):
    """Version 2: folded copies of the recordings' searchable texts (Unicode case-insensitive search)."""
    import peewee
    from playhouse.migrate import migrate

    migrate(*(migrator.add_column("recording", f"{name}_fold", peewee.TextField(default="")) for name in FOLDED))
    rec = model.Recording
    last = 0
    while True:  # in batches: a catalogue can hold millions of rows
        rows = list(
            rec.select(rec.id, *(getattr(rec, name) for name in FOLDED))
            .where(rec.id > last)
            .order_by(rec.id)
            .limit(5000)
            .tuples()
        )
        if not rows:
            break
        for row in rows:
            values = {f"{name}_fold": fold(text) for name, text in zip(FOLDED, row[1:])}
            if any(values.values()):
                rec.update(values).where(rec.id == row[0]).execute()
        last = rows[-1][0]


def _v3_web_workspace(db, migrator):
    """Version 3: the web workspace (fsctl-web): web passwords, sessions, sign-in links and throttle,
    API tokens, and the audit of recording marks."""
    db.create_tables(
        [
            model.WebCredential,
            model.WebSession,
            model.SignInLink,
            model.SignInThrottle,
            model.ApiToken,
            model.MarkAudit,
        ],
        safe=True,
    )


def _v4_nodes(db, migrator):
    """Version 4: FreeSWITCH nodes, each tenant's placement on them, what each node runs.

    Idempotent, like version 3's step: what is already there (a database created at a later
    version and marked older, as the tests do) is left alone.
    """
    import peewee
    from playhouse.migrate import migrate

    db.create_tables([model.Node], safe=True)
    have = {c.name for c in db.get_columns("tenant")}
    ops = [
        migrator.add_column(
            "tenant", name, peewee.ForeignKeyField(model.Node, null=True, field=model.Node.id, on_delete="RESTRICT")
        )
        for name in ("home_node_id", "standby_node_id", "draining_node_id")
        if name not in have
    ]
    if "drain_after" not in have:
        ops.append(migrator.add_column("tenant", "drain_after", peewee.DateTimeField(null=True)))
    if ops:
        migrate(*ops)
    db.create_tables([model.NodeConfig], safe=True)


# Version 5 widens these columns to what the model now allows (model.UUID_MAX, OUTBOX_KEY_MAX).
WIDENED = (
    (model.CallRecord, "uuid"),
    (model.CallRecord, "voicemail"),
    (model.CallRecord, "queue"),
    (model.CallLeg, "uuid"),
    (model.Recording, "call_uuid"),
    (model.CrmCall, "call_uuid"),
    (model.Outbox, "key"),
)


def _v5_wider_call_fields(db, migrator):
    """Version 5: call and leg UUIDs up to 255 characters, a voicemail box or queue as long as a
    domain, outbox keys that hold such a UUID (on PostgreSQL a longer value failed the whole batch
    of call records). SQLite does not enforce a VARCHAR's length: nothing to change there."""
    import peewee

    if not isinstance(db, peewee.PostgresqlDatabase):
        return
    for table, name in WIDENED:
        column = table._meta.fields[name].column_name
        db.execute_sql(
            f'ALTER TABLE "{table._meta.table_name}" ALTER COLUMN "{column}" '
            f"TYPE VARCHAR({table._meta.fields[name].max_length})"
        )


def _v6_outbound_names(db, migrator):
    """Version 6: the caller name outside calls show, per tenant and per user (issue 11)."""
    import peewee
    from playhouse.migrate import migrate

    ops = [
        migrator.add_column(table, "outbound_name", peewee.TextField(null=True))
        for table in ("tenant", "user")
        if "outbound_name" not in {c.name for c in db.get_columns(table)}
    ]
    if ops:
        migrate(*ops)


def search_index(db):
    """The trigram index of the recordings' folded search texts; True when the engine has one.

    SQLite: an FTS5 table with the `trigram` tokenizer over recording's *_fold columns
    (external content: it stores only the index), kept by triggers, which
    fsctl.services.recordings asks for candidate rows. PostgreSQL: pg_trgm GIN indexes on the
    same columns, which the planner uses for ILIKE by itself. Without FTS5 or pg_trgm (a role that may not create the
    extension), no index: the searches give the same rows by scanning.
    """
    import peewee

    columns = [f"{name}_fold" for name in FOLDED]
    if isinstance(db, peewee.PostgresqlDatabase):
        try:
            with db.atomic():  # a savepoint: a refused CREATE EXTENSION leaves the step's transaction usable
                db.execute_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        except peewee.DatabaseError:
            return False
        for column in columns:
            db.execute_sql(
                f"CREATE INDEX IF NOT EXISTS recording_{column}_trgm ON recording USING gin ({column} gin_trgm_ops)"
            )
        return True
    try:
        with db.atomic():
            db.execute_sql(
                f"CREATE VIRTUAL TABLE IF NOT EXISTS recording_fts USING fts5({', '.join(columns)}, "
                "content='recording', content_rowid='id', tokenize='trigram')"
            )
    except peewee.OperationalError:  # SQLite built without FTS5, or older than 3.34 (no trigram)
        return False
    # Only rows with some text are indexed (most recordings have none, and their inserts then cost
    # no index work): a row is in the index exactly when one of its folded texts is not empty,
    # and every trigger keeps that so ('delete' must be given the values that were indexed).
    names = ", ".join(columns)
    values = {row: ", ".join(f"{row}.{c}" for c in columns) for row in ("new", "old")}
    some_text = {row: " OR ".join(f"{row}{c} != ''" for c in columns) for row in ("new.", "old.", "")}
    # (A trigger's WHEN, not a WHERE in its body: a statement on the FTS5 table costs ~20 us even
    # when it writes nothing, which would double the cost of cataloguing a recording.)
    add = f"INSERT INTO recording_fts (rowid, {names}) SELECT new.id, {values['new']} WHERE {some_text['new.']};"
    remove = (
        f"INSERT INTO recording_fts (recording_fts, rowid, {names}) "
        f"SELECT 'delete', old.id, {values['old']} WHERE {some_text['old.']};"
    )
    db.execute_sql(
        f"CREATE TRIGGER IF NOT EXISTS recording_fts_insert AFTER INSERT ON recording "
        f"WHEN {some_text['new.']} BEGIN {add} END"
    )
    db.execute_sql(
        f"CREATE TRIGGER IF NOT EXISTS recording_fts_delete AFTER DELETE ON recording "
        f"WHEN {some_text['old.']} BEGIN {remove} END"
    )
    db.execute_sql(
        f"CREATE TRIGGER IF NOT EXISTS recording_fts_update AFTER UPDATE OF {names} ON recording "
        f"WHEN {some_text['old.']} OR {some_text['new.']} BEGIN {remove} {add} END"
    )
    db.execute_sql("INSERT INTO recording_fts (recording_fts) VALUES ('delete-all')")
    db.execute_sql(
        f"INSERT INTO recording_fts (rowid, {names}) SELECT id, {names} FROM recording WHERE {some_text['']}"
    )
    return True


def _v7_recording_trigrams(db, migrator):
    """Version 7: a trigram index for the recordings' text search (see search_index; idempotent)."""
    search_index(db)


# Version 8 adds these columns: where each recording's file, each call and each leg lives.
NODE_COLUMNS = (
    ("node", "recordings_dir", lambda peewee: peewee.TextField(default="")),
    ("recording", "node", lambda peewee: peewee.CharField(max_length=32, null=True)),
    ("call_record", "node", lambda peewee: peewee.CharField(max_length=32, null=True)),
    ("call_leg", "node", lambda peewee: peewee.CharField(max_length=32, null=True)),
)


def _v8_node_of_files_and_calls(db, migrator):
    """Version 8: the node whose disk holds each recording, the node each call and leg ran on, a
    node's recordings folder. Existing rows get no node: the one FreeSWITCH of the settings.
    Idempotent like version 4's step."""
    import peewee
    from playhouse.migrate import migrate

    ops = []
    for table, column, field in NODE_COLUMNS:
        if column not in {c.name for c in db.get_columns(table)}:
            ops.append(migrator.add_column(table, column, field(peewee)))
    if ops:
        migrate(*ops)


# MIGRATIONS[i] upgrades a database at version i+1 to version i+2: fn(db, migrator).
MIGRATIONS = [
    _v2_recording_folds,
    _v3_web_workspace,
    _v4_nodes,
    _v5_wider_call_fields,
    _v6_outbound_names,
    _v7_recording_trigrams,
    _v8_node_of_files_and_calls,
]

# What a new database gets besides the models' tables (created at the current version, it runs
# no step): objects the models cannot declare.
EXTRAS = [search_index]

CURRENT_VERSION = 1 + len(MIGRATIONS)


def current_version(db):
    """The version the database is at: 0 when it has no fsctl schema yet."""
    if not db.table_exists(model.SchemaVersion._meta.table_name):
        return 0
    row = model.SchemaVersion.select().order_by(model.SchemaVersion.version.desc()).first()
    return row.version if row else 0


def upgrade(db, migrations=None, target=None):
    """Create or upgrade the schema; returns the version reached."""
    migrations = MIGRATIONS if migrations is None else migrations
    target = 1 + len(migrations) if target is None else target
    version = current_version(db)
    if version > target:
        raise OperationError(f"database schema version {version} is newer than this fsctl ({target}): upgrade fsctl")
    if version == 0:
        with db.atomic():
            db.create_tables(model.ALL_MODELS, safe=True)
            for extra in EXTRAS:
                extra(db)
            model.SchemaVersion.create(version=target)
        return target
    migrator = _migrator(db) if version < target else None
    while version < target:
        step = migrations[version - 1]
        with db.atomic():
            step(db, migrator)
            version += 1
            model.SchemaVersion.create(version=version)
    return version
