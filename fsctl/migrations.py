"""Schema versions: a new database gets the current schema; an old one is upgraded in steps.

To change the schema: change the models, append a step to MIGRATIONS that brings a database of
the previous version to the new one (playhouse.migrate operations, data copied, never dropped
unless moved), and leave earlier steps alone. Each step runs in its own transaction.
"""

from playhouse.migrate import PostgresqlMigrator, SqliteMigrator

from . import model
from .errors import OperationError
from .model import FOLDED, fold


def _migrator(db):
    import peewee

    if isinstance(db, peewee.PostgresqlDatabase):
        return PostgresqlMigrator(db)
    return SqliteMigrator(db)


def _v2_recording_folds(db, migrator):
    """Version 2: folded copies of the recordings' searchable texts (Unicode case-insensitive search)."""
    import peewee
    from playhouse.migrate import migrate

    migrate(*(migrator.add_column("recording", f"{name}_fold", peewee.TextField(default=""))
              for name in FOLDED))
    rec = model.Recording
    last = 0
    while True:  # in batches: a catalogue can hold millions of rows
        rows = list(rec.select(rec.id, *(getattr(rec, name) for name in FOLDED))
                    .where(rec.id > last).order_by(rec.id).limit(5000).tuples())
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
    db.create_tables([model.WebCredential, model.WebSession, model.SignInLink, model.SignInThrottle,
                      model.ApiToken, model.MarkAudit], safe=True)


def _v4_nodes(db, migrator):
    """Version 4: FreeSWITCH nodes, each tenant's placement on them, what each node runs.

    Idempotent, like version 3's step: what is already there (a database created at a later
    version and marked older, as the tests do) is left alone.
    """
    import peewee
    from playhouse.migrate import migrate

    db.create_tables([model.Node], safe=True)
    have = {c.name for c in db.get_columns("tenant")}
    ops = [migrator.add_column("tenant", name, peewee.ForeignKeyField(model.Node, null=True, field=model.Node.id,
                                                                      on_delete="RESTRICT"))
           for name in ("home_node_id", "standby_node_id", "draining_node_id") if name not in have]
    if "drain_after" not in have:
        ops.append(migrator.add_column("tenant", "drain_after", peewee.DateTimeField(null=True)))
    if ops:
        migrate(*ops)
    db.create_tables([model.NodeConfig], safe=True)


# Version 5 widens these columns to what the model now allows (model.UUID_MAX, OUTBOX_KEY_MAX).
WIDENED = (
    (model.CallRecord, "uuid"), (model.CallRecord, "voicemail"), (model.CallRecord, "queue"),
    (model.CallLeg, "uuid"), (model.Recording, "call_uuid"), (model.CrmCall, "call_uuid"), (model.Outbox, "key"),
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
        db.execute_sql(f'ALTER TABLE "{table._meta.table_name}" ALTER COLUMN "{column}" '
                       f"TYPE VARCHAR({table._meta.fields[name].max_length})")


# Version 6 adds these columns: where each recording's file, each call and each leg lives.
NODE_COLUMNS = (
    ("node", "recordings_dir", lambda peewee: peewee.TextField(default="")),
    ("recording", "node", lambda peewee: peewee.CharField(max_length=32, null=True)),
    ("call_record", "node", lambda peewee: peewee.CharField(max_length=32, null=True)),
    ("call_leg", "node", lambda peewee: peewee.CharField(max_length=32, null=True)),
)


def _v6_node_of_files_and_calls(db, migrator):
    """Version 6: the node whose disk holds each recording, the node each call and leg ran on, a
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
MIGRATIONS = [_v2_recording_folds, _v3_web_workspace, _v4_nodes, _v5_wider_call_fields, _v6_node_of_files_and_calls]

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
        raise OperationError(
            f"database schema version {version} is newer than this fsctl ({target}): upgrade fsctl"
        )
    if version == 0:
        with db.atomic():
            db.create_tables(model.ALL_MODELS, safe=True)
            model.SchemaVersion.create(version=target)
        return target
    migrator = _migrator(db)
    while version < target:
        step = migrations[version - 1]
        with db.atomic():
            step(db, migrator)
            version += 1
            model.SchemaVersion.create(version=version)
    return version
