"""The data model: the single source of truth for every tenant's phone system.

Conventions:
- every datetime is stored naive in UTC (`utcnow()`);
- a *destination* (where a route points) is stored as text `kind:target`, parsed and
  validated by `fsctl.services.common`; targets name things by their number (or a time rule
  by its name) inside the same tenant;
- tenant text (names, notes) is stored exactly as given; escaping is the renderer's job.

Why one module of over 600 lines: it is the schema, every table side by side (ALL_MODELS in the
order create_tables needs, the migrations read it); each table is a few declarative lines.
"""

import datetime as _dt
import unicodedata

import peewee as pw

# Models bind to this proxy; `fsctl.db.open_database` points it at the real database (peewee: late init).
database = pw.DatabaseProxy()


# A FreeSWITCH channel UUID as the call records keep it: FreeSWITCH makes 36 characters, an
# origination_uuid may be longer; a longer one is refused with its call (fsctl.freeswitch.channel).
UUID_MAX = 255
# An outbox key holds a call UUID and a few short words and numbers (fsctl.services.notify.outbox).
OUTBOX_KEY_MAX = 512


def utcnow():
    """Now, naive UTC (the storage convention)."""
    return _dt.datetime.now(_dt.timezone.utc).replace(tzinfo=None)


# The recordings' texts searched by substring, each with a folded copy `<name>_fold` (Recording).
FOLDED = ("user_name", "note", "field1", "field2", "field3")


def fold(text) -> str:
    """Text as the search compares it: NFKC-normalised and case-folded ("Ūla" and "ūla" are one)."""
    return unicodedata.normalize("NFKC", text or "").casefold()


class BaseModel(pw.Model):
    class Meta:
        database = database
        legacy_table_names = False


class SchemaVersion(BaseModel):
    """The schema version the database is at (one row)."""

    version = pw.IntegerField()
    upgraded_at = pw.DateTimeField(default=utcnow)


class Node(BaseModel):
    """A FreeSWITCH server of a platform with more than one, behind Kamailio (fsctl node ...).

    With no node at all fsctl drives the one FreeSWITCH of the settings (esl_host, conf_dir).
    """

    name = pw.CharField(max_length=32, unique=True)
    esl_host = pw.CharField(max_length=253)
    esl_port = pw.IntegerField()
    esl_password = pw.CharField(max_length=128, null=True)  # null: the esl_password setting
    sip_host = pw.CharField(max_length=253)  # the internal profile: where Kamailio sends phones
    sip_port = pw.IntegerField()
    public_host = pw.CharField(max_length=253)  # the external profile: where Kamailio sends DIDs
    public_port = pw.IntegerField()
    conf_dir = pw.TextField(default="")  # where fsctl writes the node's XML; "": <conf_dir>/nodes/<name>
    sftp = pw.TextField(default="")  # "user@host:port": the files are pushed there over SFTP ("" none)
    remote_dir = pw.TextField(default="")  # with sftp: the node's folder FreeSWITCH includes
    created_at = pw.DateTimeField(default=utcnow)
    # The folder the node's FreeSWITCH records into, on the node; "": the recordings_dir setting
    # (schema version 8). `rec pull` fetches from it over `sftp`; the node's own fs-scripts,
    # `rec import --node` and `rec purge --node` read it there.
    recordings_dir = pw.TextField(default="")


class Tenant(BaseModel):
    """A business customer: one SIP domain, one dialplan context."""

    domain = pw.CharField(max_length=253, unique=True)
    name = pw.TextField()
    timezone = pw.CharField(max_length=64, default="UTC")
    state = pw.CharField(max_length=16, default="active")  # active | suspended
    max_users = pw.IntegerField(null=True)
    max_channels = pw.IntegerField(null=True)
    # Where scenario calls go when the call-logic service cannot decide (or is down).
    fallback = pw.TextField(default="hangup")
    # The outbound gateway for external destinations.
    gateway = pw.CharField(max_length=64, default="default")
    # The caller name outside calls show the carrier (None: the caller ID's DID name, else `name`).
    outbound_name = pw.TextField(null=True)
    # Bumped by every change to the tenant's configuration; rendering compares it.
    revision = pw.IntegerField(default=1)
    created_at = pw.DateTimeField(default=utcnow)
    updated_at = pw.DateTimeField(default=utcnow)
    # Placement (schema version 4), only when nodes are defined: the node Kamailio sends the
    # tenant's calls to, the node it fails over to, and the node a move left (it keeps the
    # tenant's configuration until its calls are over: fsctl.services.nodes).
    home_node = pw.ForeignKeyField(Node, null=True, backref="home_tenants", on_delete="RESTRICT")
    standby_node = pw.ForeignKeyField(Node, null=True, backref="standby_tenants", on_delete="RESTRICT")
    draining_node = pw.ForeignKeyField(Node, null=True, backref="draining_tenants", on_delete="RESTRICT")
    # When the draining node may drop the tenant (once Kamailio routes it to its new home).
    drain_after = pw.DateTimeField(null=True)


class User(BaseModel):
    """A user (extension) of a tenant."""

    tenant = pw.ForeignKeyField(Tenant, backref="users", on_delete="CASCADE")
    number = pw.CharField(max_length=16)
    name = pw.TextField()
    sip_password = pw.CharField(max_length=128)
    email = pw.CharField(max_length=254, null=True)
    role = pw.CharField(max_length=16, default="user")  # user | supervisor | admin
    vm_enabled = pw.BooleanField(default=True)
    vm_pin = pw.CharField(max_length=16, null=True)
    record = pw.BooleanField(default=False)
    fwd_always = pw.TextField(null=True)
    fwd_busy = pw.TextField(null=True)
    fwd_no_answer = pw.TextField(null=True)
    fwd_unreachable = pw.TextField(null=True)
    no_answer_timeout = pw.IntegerField(default=20)
    # Outbound caller ID: one of the tenant's DIDs (E.164), or null for the tenant default.
    caller_id_number = pw.CharField(max_length=16, null=True)
    toll = pw.CharField(max_length=16, default="national")  # internal|local|national|international
    # The caller name this user's outside calls show (None: the tenant's; never the internal `name`).
    outbound_name = pw.TextField(null=True)
    created_at = pw.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("tenant", "number"), True),)

    FORWARD_FIELDS = ("fwd_always", "fwd_busy", "fwd_no_answer", "fwd_unreachable")

    def forwarding(self):
        """The forwarding rules that are set, as {field: destination text}."""
        return {f: getattr(self, f) for f in self.FORWARD_FIELDS if getattr(self, f)}


class Group(BaseModel):
    """A ring group: simultaneous, random or sequential (hunt)."""

    tenant = pw.ForeignKeyField(Tenant, backref="groups", on_delete="CASCADE")
    number = pw.CharField(max_length=16)
    name = pw.TextField()
    strategy = pw.CharField(max_length=16, default="simultaneous")  # simultaneous|random|sequential
    order = pw.CharField(max_length=16, default="fixed")  # fixed | rotating (sequential only)
    ring_time = pw.IntegerField(default=20)  # seconds per member (sequential) or for all
    fallback = pw.TextField(default="hangup")

    class Meta:
        indexes = ((("tenant", "number"), True),)


class GroupMember(BaseModel):
    """A user in a group, at a position (1-based order)."""

    group = pw.ForeignKeyField(Group, backref="members", on_delete="CASCADE")
    user = pw.ForeignKeyField(User, backref="group_memberships", on_delete="CASCADE")
    position = pw.IntegerField()

    class Meta:
        indexes = ((("group", "user"), True),)


class GroupRotation(BaseModel):
    """Rotating sequential groups: the member index the next call starts at."""

    group = pw.ForeignKeyField(Group, unique=True, backref="rotation", on_delete="CASCADE")
    next_start = pw.IntegerField(default=0)
    calls = pw.IntegerField(default=0)
    updated_at = pw.DateTimeField(default=utcnow)


class Did(BaseModel):
    """A public number (E.164) of a tenant, with its own scenario."""

    tenant = pw.ForeignKeyField(Tenant, backref="dids", on_delete="CASCADE")
    number = pw.CharField(max_length=16, unique=True)
    name = pw.TextField(default="")
    destination = pw.TextField()


class Media(BaseModel):
    """An uploaded audio file (greeting, announcement, music on hold)."""

    tenant = pw.ForeignKeyField(Tenant, backref="media", on_delete="CASCADE")
    name = pw.CharField(max_length=64)
    path = pw.TextField()  # where FreeSWITCH finds it (absolute)
    duration_ms = pw.IntegerField(default=0)
    size = pw.IntegerField(default=0)
    sha256 = pw.CharField(max_length=64, default="")
    created_at = pw.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("tenant", "name"), True),)


class Ivr(BaseModel):
    """A voice menu (auto-attendant); menus link to each other for multiple levels."""

    tenant = pw.ForeignKeyField(Tenant, backref="ivrs", on_delete="CASCADE")
    number = pw.CharField(max_length=16)
    name = pw.TextField()
    greeting = pw.TextField(null=True)  # media name
    invalid_sound = pw.TextField(null=True)
    timeout = pw.IntegerField(default=5)  # seconds to wait for a digit
    max_failures = pw.IntegerField(default=3)  # invalid entries before the exit
    max_timeouts = pw.IntegerField(default=3)
    digit_len = pw.IntegerField(default=4)
    exit_destination = pw.TextField(default="hangup")

    class Meta:
        indexes = ((("tenant", "number"), True),)


class IvrEntry(BaseModel):
    """Digits pressed in a menu -> destination."""

    ivr = pw.ForeignKeyField(Ivr, backref="entries", on_delete="CASCADE")
    digits = pw.CharField(max_length=8)
    destination = pw.TextField()

    class Meta:
        indexes = ((("ivr", "digits"), True),)


class TimeRule(BaseModel):
    """Working time: ranges of days/hours and holidays, a route for match and for no match."""

    tenant = pw.ForeignKeyField(Tenant, backref="time_rules", on_delete="CASCADE")
    name = pw.CharField(max_length=64)
    timezone = pw.CharField(max_length=64, null=True)  # null: the tenant's
    match_destination = pw.TextField()
    nomatch_destination = pw.TextField()

    class Meta:
        indexes = ((("tenant", "name"), True),)


class TimeRange(BaseModel):
    """Weekdays plus a time of day range (end may be past midnight: 22:00-06:00)."""

    rule = pw.ForeignKeyField(TimeRule, backref="ranges", on_delete="CASCADE")
    weekdays = pw.CharField(max_length=32)  # "mon,tue,wed,thu,fri"
    start = pw.CharField(max_length=5)  # "HH:MM"
    end = pw.CharField(max_length=5)  # "HH:MM"; "24:00" allowed


class Holiday(BaseModel):
    """Dates (inclusive) when the rule does not match, optionally only between two times."""

    rule = pw.ForeignKeyField(TimeRule, backref="holidays", on_delete="CASCADE")
    name = pw.TextField(default="")
    start_date = pw.DateField()
    end_date = pw.DateField()
    start_time = pw.CharField(max_length=5, null=True)
    end_time = pw.CharField(max_length=5, null=True)


class Queue(BaseModel):
    """A call queue (mod_callcenter): callers wait while agents are busy."""

    tenant = pw.ForeignKeyField(Tenant, backref="queues", on_delete="CASCADE")
    number = pw.CharField(max_length=16)
    name = pw.TextField()
    strategy = pw.CharField(max_length=32, default="longest-idle-agent")
    moh = pw.TextField(null=True)  # media name; null: FreeSWITCH's default music
    announce = pw.TextField(null=True)  # media name played periodically
    announce_frequency = pw.IntegerField(default=30)
    max_wait = pw.IntegerField(default=300)  # seconds, then the overflow
    overflow = pw.TextField(default="hangup")

    class Meta:
        indexes = ((("tenant", "number"), True),)


class QueueAgent(BaseModel):
    """A user answering a queue, at a tier (1 first)."""

    queue = pw.ForeignKeyField(Queue, backref="agents", on_delete="CASCADE")
    user = pw.ForeignKeyField(User, backref="queue_memberships", on_delete="CASCADE")
    tier = pw.IntegerField(default=1)

    class Meta:
        indexes = ((("queue", "user"), True),)


class Conference(BaseModel):
    """A conference room, optionally protected by a PIN."""

    tenant = pw.ForeignKeyField(Tenant, backref="conferences", on_delete="CASCADE")
    number = pw.CharField(max_length=16)
    name = pw.TextField()
    pin = pw.CharField(max_length=16, null=True)
    max_members = pw.IntegerField(null=True)

    class Meta:
        indexes = ((("tenant", "number"), True),)


class BlacklistEntry(BaseModel):
    """A refused caller number (exact) or number prefix."""

    tenant = pw.ForeignKeyField(Tenant, backref="blacklist", on_delete="CASCADE")
    pattern = pw.CharField(max_length=32)
    match = pw.CharField(max_length=8, default="exact")  # exact | prefix
    note = pw.TextField(default="")
    created_at = pw.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("tenant", "pattern", "match"), True),)


class Contact(BaseModel):
    """The tenant's phonebook: number -> caller name."""

    tenant = pw.ForeignKeyField(Tenant, backref="contacts", on_delete="CASCADE")
    number = pw.CharField(max_length=32)
    name = pw.TextField()

    class Meta:
        indexes = ((("tenant", "number"), True),)


class RecordingGroup(BaseModel):
    """Recorded users whose recordings a set of supervisors may see."""

    tenant = pw.ForeignKeyField(Tenant, backref="recording_groups", on_delete="CASCADE")
    name = pw.CharField(max_length=64)

    class Meta:
        indexes = ((("tenant", "name"), True),)


class RecordingGroupMember(BaseModel):
    group = pw.ForeignKeyField(RecordingGroup, backref="members", on_delete="CASCADE")
    user = pw.ForeignKeyField(User, backref="recording_groups", on_delete="CASCADE")

    class Meta:
        indexes = ((("group", "user"), True),)


class RecordingGroupSupervisor(BaseModel):
    group = pw.ForeignKeyField(RecordingGroup, backref="supervisors", on_delete="CASCADE")
    user = pw.ForeignKeyField(User, backref="supervised_recording_groups", on_delete="CASCADE")

    class Meta:
        indexes = ((("group", "user"), True),)


class Recording(BaseModel):
    """One call recording file in the catalogue. Rows outlive their user (no CASCADE)."""

    tenant = pw.ForeignKeyField(Tenant, backref="recordings", on_delete="RESTRICT")
    user_number = pw.CharField(max_length=16)
    user_name = pw.TextField(default="")
    direction = pw.CharField(max_length=8)  # in | out | internal
    counterpart = pw.CharField(max_length=32, default="")
    started_at = pw.DateTimeField()
    duration = pw.FloatField(default=0)  # seconds
    path = pw.TextField(unique=True)  # relative to the recordings folder
    size = pw.BigIntegerField(default=0)
    sha256 = pw.CharField(max_length=64, default="")
    call_uuid = pw.CharField(max_length=UUID_MAX, null=True)
    note = pw.TextField(default="")
    colour = pw.CharField(max_length=16, default="")
    field1 = pw.CharField(max_length=128, default="")
    field2 = pw.CharField(max_length=128, default="")
    field3 = pw.CharField(max_length=128, default="")
    created_at = pw.DateTimeField(default=utcnow)
    # The node whose disk holds the file (schema version 8); None: the one FreeSWITCH of the
    # settings (no nodes). A name, not a key: the row outlives a removed node.
    node = pw.CharField(max_length=32, null=True)
    # The searchable texts folded (NFKC + casefold, `fold` above): "ūla" finds "Ūla" on
    # both engines, whatever the database's locale (SQLite's LIKE folds ASCII only). Written with
    # the text they fold (schema version 2).
    user_name_fold = pw.TextField(default="")
    note_fold = pw.TextField(default="")
    field1_fold = pw.TextField(default="")
    field2_fold = pw.TextField(default="")
    field3_fold = pw.TextField(default="")

    class Meta:
        indexes = (
            # Search pages are ordered by (started_at, id): the id in the index spares a sort.
            (("tenant", "started_at", "id"), False),
            (("tenant", "user_number", "started_at", "id"), False),
            (("tenant", "counterpart"), False),
            (("started_at", "id"), False),  # the operator's search and the retention purge
        )


class CallRecord(BaseModel):
    """One call (however many legs rang), unique by FreeSWITCH's call UUID."""

    tenant = pw.ForeignKeyField(Tenant, backref="calls", on_delete="RESTRICT")
    uuid = pw.CharField(max_length=UUID_MAX, unique=True)
    direction = pw.CharField(max_length=8)  # in | out | internal
    caller = pw.CharField(max_length=32, default="")
    caller_name = pw.TextField(default="")
    callee = pw.CharField(max_length=32, default="")  # the number dialled
    did = pw.CharField(max_length=16, null=True)
    target_kind = pw.CharField(max_length=16, null=True)  # user|group|queue|ivr|...
    target = pw.CharField(max_length=64, null=True)
    answered_by = pw.CharField(max_length=32, null=True)  # user number
    started_at = pw.DateTimeField()
    answered_at = pw.DateTimeField(null=True)
    ended_at = pw.DateTimeField(null=True)
    duration = pw.IntegerField(default=0)  # seconds, start to end
    talk_time = pw.IntegerField(default=0)  # seconds, answer to end
    hangup_cause = pw.CharField(max_length=64, default="")
    # answered | missed | abandoned | busy | failed | refused
    status = pw.CharField(max_length=16)
    recording = pw.ForeignKeyField(Recording, null=True, on_delete="SET NULL")
    # Classification inputs kept so a later leg can re-classify the call (fsctl.services.cdr).
    recording_path = pw.TextField(null=True)  # fsctl_recording_path of the call
    voicemail = pw.CharField(max_length=255, null=True)  # mailbox the call ended in
    queue = pw.CharField(max_length=255, null=True)  # mod_callcenter queue the caller waited in
    caller_left = pw.BooleanField(default=False)  # the caller hung up (not the PBX)
    a_answered = pw.BooleanField(default=False)  # the caller's leg was answered (IVR, voicemail...)
    missed_by = pw.TextField(default="")  # users for whom it is a missed call, comma-separated
    complete = pw.BooleanField(default=False)  # the caller's leg has hung up and been ingested
    # The node the caller's leg ran on (schema version 8); None: the one FreeSWITCH of the settings.
    node = pw.CharField(max_length=32, null=True)

    class Meta:
        indexes = (
            (("tenant", "started_at"), False),
            (("tenant", "answered_by", "started_at"), False),
            (("tenant", "caller", "started_at"), False),
        )


class CallLeg(BaseModel):
    """A leg a call rang (a group member, a queue agent, a transfer target)."""

    call = pw.ForeignKeyField(CallRecord, backref="legs", on_delete="CASCADE")
    uuid = pw.CharField(max_length=UUID_MAX, null=True)
    user_number = pw.CharField(max_length=32, default="")
    started_at = pw.DateTimeField()
    answered_at = pw.DateTimeField(null=True)
    ended_at = pw.DateTimeField(null=True)
    result = pw.CharField(max_length=16)  # answered | no_answer | busy | cancelled | failed
    hangup_cause = pw.CharField(max_length=64, default="")
    via = pw.CharField(max_length=8, default="")  # "queue": a queue agent leg; "" otherwise
    external = pw.BooleanField(default=False)  # a gateway leg (an outside number), not a user
    talk_time = pw.IntegerField(default=0)  # seconds, answer to end
    node = pw.CharField(max_length=32, null=True)  # the node it ran on (schema version 8); None: the single one


class AppliedConfig(BaseModel):
    """What `fsctl apply` last wrote and FreeSWITCH accepted, per tenant domain."""

    domain = pw.CharField(max_length=253, unique=True)
    revision = pw.IntegerField()
    digest = pw.CharField(max_length=64)
    applied_at = pw.DateTimeField(default=utcnow)


class NodeConfig(BaseModel):
    """What `fsctl apply` last wrote on one node and its FreeSWITCH accepted, per tenant domain."""

    node = pw.ForeignKeyField(Node, backref="applied", on_delete="CASCADE")
    domain = pw.CharField(max_length=253)
    revision = pw.IntegerField()
    digest = pw.CharField(max_length=64)
    applied_at = pw.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("node", "domain"), True),)


class CallParty(BaseModel):
    """One user's part in one call (fsctl.services.cdr writes it; per-user statistics sum it)."""

    call = pw.ForeignKeyField(CallRecord, backref="parties", on_delete="CASCADE")
    tenant = pw.ForeignKeyField(Tenant, on_delete="RESTRICT", index=False)
    user_number = pw.CharField(max_length=32)
    started_at = pw.DateTimeField()
    received = pw.SmallIntegerField(default=0)  # the call rang this user (incoming or internal)
    answered = pw.SmallIntegerField(default=0)  # this user answered it
    missed = pw.SmallIntegerField(default=0)  # a missed call for this user
    placed = pw.SmallIntegerField(default=0)  # this user made the call
    talk_time = pw.IntegerField(default=0)  # seconds this user talked on an incoming call

    class Meta:
        indexes = (
            (("tenant", "started_at", "user_number"), False),
            (("call", "user_number"), True),
        )


class NotifyRule(BaseModel):
    """Who is told about a missed call of a user or group: by e-mail or webhook (R-MISSED)."""

    tenant = pw.ForeignKeyField(Tenant, backref="notify_rules", on_delete="CASCADE")
    scope = pw.CharField(max_length=8)  # user | group
    number = pw.CharField(max_length=16)  # the user's or group's number
    channel = pw.CharField(max_length=8)  # email | webhook
    address = pw.TextField(default="")  # e-mail address or URL; empty: the user's own e-mail
    created_at = pw.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("tenant", "scope", "number", "channel", "address"), True),)


class CrmHook(BaseModel):
    """Where a tenant's call events go (R-CRM): a plain webhook or Bitrix24's telephony REST."""

    tenant = pw.ForeignKeyField(Tenant, backref="crm_hooks", on_delete="CASCADE")
    mode = pw.CharField(max_length=16)  # webhook | bitrix24
    url = pw.TextField()
    created_at = pw.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("tenant", "url"), True),)


class CrmCall(BaseModel):
    """The CRM's own id of a call (Bitrix24 CALL_ID), per hook."""

    hook = pw.ForeignKeyField(CrmHook, on_delete="CASCADE")
    call_uuid = pw.CharField(max_length=UUID_MAX)
    external_id = pw.TextField()
    finished = pw.BooleanField(default=False)

    class Meta:
        indexes = ((("hook", "call_uuid"), True),)


class Outbox(BaseModel):
    """A notification or CRM event to deliver, once: unique key, retried with backoff."""

    tenant = pw.ForeignKeyField(Tenant, on_delete="CASCADE")
    key = pw.CharField(max_length=OUTBOX_KEY_MAX, unique=True)  # e.g. missed:<call uuid>:rule:<id>
    channel = pw.CharField(max_length=16)  # email | webhook | crm
    target = pw.TextField()  # address or URL (crm: the hook id)
    payload = pw.TextField()  # JSON
    attempts = pw.IntegerField(default=0)
    next_attempt_at = pw.DateTimeField(default=utcnow)
    state = pw.CharField(max_length=8, default="pending")  # pending | sent | failed
    sent_at = pw.DateTimeField(null=True)
    last_error = pw.TextField(default="")
    created_at = pw.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("state", "next_attempt_at"), False),)


class WebCredential(BaseModel):
    """A user's web sign-in password (argon2 hash, fsctl.services.webauth); no row: no password set."""

    user = pw.ForeignKeyField(User, unique=True, backref="web_credential", on_delete="CASCADE")
    password_hash = pw.TextField()
    updated_at = pw.DateTimeField(default=utcnow)


class WebSession(BaseModel):
    """A signed-in browser: the cookie carries a random token, the table only its SHA-256."""

    token_hash = pw.CharField(max_length=64, unique=True)
    user = pw.ForeignKeyField(User, backref="web_sessions", on_delete="CASCADE")
    csrf_token = pw.CharField(max_length=64)
    created_at = pw.DateTimeField(default=utcnow)
    expires_at = pw.DateTimeField()


class SignInLink(BaseModel):
    """A one-time sign-in link sent by e-mail (SHA-256 of its token), valid until used or expired."""

    token_hash = pw.CharField(max_length=64, unique=True)
    user = pw.ForeignKeyField(User, backref="sign_in_links", on_delete="CASCADE")
    created_at = pw.DateTimeField(default=utcnow)
    expires_at = pw.DateTimeField()
    used_at = pw.DateTimeField(null=True)


class SignInThrottle(BaseModel):
    """Failed sign-ins per key (an account or a client address) in the current window."""

    key = pw.CharField(max_length=300, unique=True)
    failures = pw.IntegerField(default=0)
    window_start = pw.DateTimeField(default=utcnow)


class ApiToken(BaseModel):
    """A tenant's token for the recording API: shown once, stored as its SHA-256, scoped read or mark."""

    tenant = pw.ForeignKeyField(Tenant, backref="api_tokens", on_delete="CASCADE")
    name = pw.CharField(max_length=64)
    token_hash = pw.CharField(max_length=64, unique=True)
    scope = pw.CharField(max_length=8)  # read | mark
    created_at = pw.DateTimeField(default=utcnow)
    last_used_at = pw.DateTimeField(null=True)

    class Meta:
        indexes = ((("tenant", "name"), True),)


class MarkAudit(BaseModel):
    """Every change of a recording's marks: who, when, through what, old and new values (JSON)."""

    tenant = pw.ForeignKeyField(Tenant, backref="mark_audit", on_delete="CASCADE")
    recording_id = pw.IntegerField()  # kept after the recording is purged
    actor = pw.CharField(max_length=300)  # USER@DOMAIN, token:NAME or operator
    via = pw.CharField(max_length=8)  # cli | web | api | lib
    at = pw.DateTimeField(default=utcnow)
    changes = pw.TextField()  # {"note": ["old", "new"], ...}

    class Meta:
        indexes = ((("tenant", "at"), False), (("recording_id",), False))


# Creation order (parents first). Every table of the product is here.
ALL_MODELS = [
    SchemaVersion,
    Node,
    Tenant,
    User,
    Group,
    GroupMember,
    GroupRotation,
    Did,
    Media,
    Ivr,
    IvrEntry,
    TimeRule,
    TimeRange,
    Holiday,
    Queue,
    QueueAgent,
    Conference,
    BlacklistEntry,
    Contact,
    RecordingGroup,
    RecordingGroupMember,
    RecordingGroupSupervisor,
    Recording,
    CallRecord,
    CallLeg,
    AppliedConfig,
    CallParty,
    NotifyRule,
    CrmHook,
    CrmCall,
    Outbox,
    WebCredential,
    WebSession,
    SignInLink,
    SignInThrottle,
    ApiToken,
    MarkAudit,
    NodeConfig,
]

# Things with a number in the tenant's numbering plan (numbers are unique across them).
NUMBERED = {"user": User, "group": Group, "ivr": Ivr, "queue": Queue, "conference": Conference}


def call_dict(row: CallRecord, domain: str | None = None) -> dict:
    """A call record as plain data (the `cdr list --json` schema)."""
    return {
        "uuid": row.uuid,
        "started_at": iso_utc(row.started_at),
        "direction": row.direction,
        "caller": row.caller,
        "caller_name": row.caller_name,
        "callee": row.callee,
        "did": row.did,
        "target": f"{row.target_kind}:{row.target}" if row.target_kind else None,
        "status": row.status,
        "answered_by": row.answered_by,
        "missed_by": [u for u in (row.missed_by or "").split(",") if u],
        "duration": row.duration,
        "talk_time": row.talk_time,
        "hangup_cause": row.hangup_cause,
        "recording": row.recording_path,
    }


def iso_utc(value) -> str | None:
    """A stored naive-UTC datetime (or its text) as ISO 8601 with Z, to the second."""
    if value is None:
        return None
    if isinstance(value, str):
        value = _dt.datetime.fromisoformat(value)
    return value.replace(microsecond=0).isoformat() + "Z"
