"""Call recordings (R-REC): the catalogue, marks, search, access rights, retention and quota.

On-disk layout (the call logic writes it, `import_recordings` reads every field back from it):

    <recordings_dir>/<domain>/<YYYY>/<MM>/<DD>/<YYYYMMDDTHHMMSSZ>_<user>_<direction>_<counterpart>_<uuid>.wav

- the date folders and the timestamp are the call's start in UTC;
- <user> is the recorded user's extension, <direction> is in, out or internal;
- <counterpart> is the other party's number (digits, optional leading +) or `anonymous`;
- <uuid> is FreeSWITCH's call UUID (letters, digits, '-').
`recording_relpath()` builds such a path. The catalogue stores it relative to the
recordings folder; every path read from the outside is checked not to escape that folder.

Access (`as_user`, "USER@DOMAIN" or None): a user sees their own recordings, a supervisor
also those of the members of the recording groups they supervise, a tenant admin all of the
tenant's; None is the operator (the sysadmin running fsctl), who sees every tenant.

Deletion order: the file goes first, then its catalogue row. A crash in between leaves a
row without a file (shown as missing, removed by the next purge), never a file without a row
that `import_recordings` would bring back.

Why one module of over 600 lines: the catalogue, access rights, search and retention all read the
same layout and the same visibility rule (`_visible`); split, each would import the others.
"""

import dataclasses
import datetime as _dt
import hashlib
import json
import logging
import os
import re
import wave

from peewee import DatabaseError, OperationalError, fn

from .. import validate
from ..calllogic import recpath
from ..db import database
from ..errors import ConflictError, NotFoundError, ValidationError, first_line
from ..freeswitch import chanvars
from ..model import (
    FOLDED,
    MarkAudit,
    Recording,
    RecordingGroup,
    RecordingGroupMember,
    RecordingGroupSupervisor,
    Tenant,
    User,
    fold,
    utcnow,
)
from .common import get_tenant

log = logging.getLogger("fsctl.recordings")

COLOURS = ("red", "orange", "yellow", "green", "blue", "purple", "grey")
DIRECTIONS = recpath.DIRECTIONS
FIELD_NAMES = ("field1", "field2", "field3")
FIELD_MAX = 128
NOTE_MAX = 2000
EXTENSION = recpath.EXTENSION
ANONYMOUS = recpath.ANONYMOUS

_STAMP = recpath.STAMP
_NAME_RE = re.compile(
    r"^(?P<stamp>[0-9]{8}T[0-9]{6}Z)_(?P<user>[0-9]{2,6})_(?P<direction>in|out|internal)_"
    r"(?P<counterpart>\+?[0-9]{1,31}|anonymous)_(?P<uuid>[A-Za-z0-9-]{1,64})\.wav$"
)
# An older short form (no direction, no counterpart), still accepted by import.
_SHORT_NAME_RE = re.compile(r"^(?P<stamp>[0-9]{8}T[0-9]{6}Z)_(?P<uuid>[A-Za-z0-9.-]{1,64})_(?P<user>[0-9]{2,6})\.wav\Z")
_DATE_DIR_RE = re.compile(r"^[0-9]{4}/[0-9]{2}/[0-9]{2}\Z")
_HASH_CHUNK = 1 << 20


@dataclasses.dataclass(frozen=True)
class PathFields:
    """What a recording's relative path says about it."""

    domain: str
    user: str
    direction: str
    counterpart: str
    started_at: _dt.datetime
    call_uuid: str


def recording_relpath(domain, started_at, user, direction, counterpart, call_uuid):
    """The relative path a recording of these facts must be written to (the documented layout)."""
    domain = validate.domain(domain, "recording.domain")
    user = validate.extension(user, "recording.user")
    direction = validate.choice(direction, "recording.direction", DIRECTIONS)
    return recpath.relpath(domain, started_at, user, direction, counterpart, call_uuid)


def parse_relpath(rel):
    """The fields of a relative recording path, or ValidationError naming the rule it breaks."""
    rel = check_relpath(rel)
    parts = rel.split("/")
    if len(parts) != 5:
        raise ValidationError("recording.path", rel, "must look like DOMAIN/YYYY/MM/DD/FILE.wav")
    domain, name = parts[0], parts[4]
    if validate.DOMAIN_RE.match(domain) is None or not _DATE_DIR_RE.match("/".join(parts[1:4])):
        raise ValidationError("recording.path", rel, "must look like DOMAIN/YYYY/MM/DD/FILE.wav")
    match = _NAME_RE.match(name) or _SHORT_NAME_RE.match(name)
    if match is None:
        raise ValidationError(
            "recording.path", rel, "file name must be YYYYMMDDTHHMMSSZ_USER_DIRECTION_COUNTERPART_UUID.wav"
        )
    try:
        started = _dt.datetime.strptime(match["stamp"], _STAMP)
    except ValueError:
        raise ValidationError("recording.path", rel, "has an impossible date") from None
    if "/".join(parts[1:4]) != f"{started:%Y/%m/%d}":
        raise ValidationError("recording.path", rel, "date folders must match the file's start time")
    named = match.groupdict()
    counterpart = "" if named.get("counterpart", ANONYMOUS) == ANONYMOUS else named["counterpart"]
    return PathFields(domain, match["user"], named.get("direction", ""), counterpart, started, match["uuid"])


def check_relpath(rel):
    """A clean relative path inside the recordings folder (no '..', no absolute path, no tricks)."""
    text = str(rel)
    if (
        not text
        or text.startswith("/")
        or "\\" in text
        or "\x00" in text
        or any(p in ("", ".", "..") for p in text.split("/"))
    ):
        raise ValidationError("recording.path", rel, "must be a relative path inside the recordings folder")
    return text


def resolve(root, rel):
    """The absolute path of `rel` under `root`, refusing anything that resolves outside it (symlinks too)."""
    rel = check_relpath(rel)
    base = os.path.realpath(root)
    full = os.path.realpath(os.path.join(base, rel))
    if os.path.commonpath([base, full]) != base:
        raise ValidationError("recording.path", rel, "must be a relative path inside the recordings folder")
    return full


def relative_to_root(path, root):
    """`path` (absolute, or relative to `root`) as a clean path relative to `root`."""
    text = str(path)
    base = os.path.realpath(root)
    if os.path.isabs(text):
        norm = os.path.normpath(text)
        if os.path.commonpath([base, os.path.realpath(norm)]) != base:
            raise ValidationError("recording.path", path, "must be inside the recordings folder " + base)
        text = os.path.relpath(os.path.realpath(norm), base)
    text = check_relpath(text.replace(os.sep, "/"))
    resolve(root, text)
    return text


def file_digest(path, start=0):
    """(size, sha256 hex) of a file's bytes from `start` (streamed)."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        fh.seek(start)
        while chunk := fh.read(_HASH_CHUNK):
            h.update(chunk)
            size += len(chunk)
    return size, h.hexdigest()


def wav_seconds(path):
    """The length of a WAV file in seconds (0 when the header cannot be read)."""
    try:
        with wave.open(str(path), "rb") as w:
            rate = w.getframerate()
            return round(w.getnframes() / rate, 3) if rate else 0.0
    except (wave.Error, EOFError, OSError):
        return 0.0


# --- the catalogue ---------------------------------------------------------------------------


def catalogue_recording(
    path, recordings_dir, duration=None, call_uuid=None, direction=None, counterpart=None, node=None
):
    """Add (or refresh) the catalogue row of a finished recording; None when FreeSWITCH deleted it.

    `path` is the channel variable `fsctl_recording_path` (absolute, or relative to
    `recordings_dir`). FreeSWITCH deletes recordings shorter than RECORD_MIN_SEC (3 s,
    FACTS.md), so a missing file is normal: it is logged and nothing is catalogued.
    `direction` and `counterpart` (from the event) fill in what a short file name lacks.
    `node`: the node whose disk holds the file (None: the one FreeSWITCH of the settings).
    """
    rel = relative_to_root(path, recordings_dir)
    fields = parse_relpath(rel)
    if not fields.direction and direction:
        fields = dataclasses.replace(
            fields,
            direction=validate.choice(direction, "recording.direction", DIRECTIONS),
            counterpart=validate.phone(counterpart, "recording.counterpart") if counterpart else "",
        )
    full = resolve(recordings_dir, rel)
    if not os.path.isfile(full):
        log.info("recording %s is gone (shorter than RECORD_MIN_SEC?): not catalogued", rel)
        return None
    tenant = Tenant.get_or_none(Tenant.domain == fields.domain)
    if tenant is None:
        raise NotFoundError("tenant", fields.domain)
    size, digest = file_digest(full)
    seconds = float(duration) if duration not in (None, "") else wav_seconds(full)
    with database.atomic():
        row = Recording.get_or_none(Recording.path == rel)
        if row is not None and not _may_claim(row.node, node, _node_names()):
            log.warning(
                "recording %s: catalogued on node %s, found on %s too: the catalogue keeps %s",
                rel,
                row.node,
                node or "the local FreeSWITCH",
                row.node,
            )
            return row
        return _upsert(tenant, rel, fields, size, digest, seconds, call_uuid or fields.call_uuid, node, row)


def _node_names() -> set:
    from ..model import Node

    return {name for (name,) in Node.select(Node.name).tuples()}


def _may_claim(current, node, nodes) -> bool:
    """May a file found on `node` refresh a catalogue row that says `current`? Yes when it is that node's,
    or when it names no node that exists (catalogued before the nodes, or on a node since removed): the
    file is here now. A row of another existing node keeps it (this is a copy, not the original)."""
    return current == node or (node is not None and (current is None or current not in nodes))


def _upsert(tenant, rel, fields, size, digest, seconds, call_uuid, node=None, row=None):
    if row is None:
        row = Recording.get_or_none(Recording.path == rel)
    if row is None:
        user = User.get_or_none((User.tenant == tenant) & (User.number == fields.user))
        name = user.name if user else ""
        return Recording.create(
            tenant=tenant,
            user_number=fields.user,
            user_name=name,
            user_name_fold=fold(name),
            direction=fields.direction,
            counterpart=fields.counterpart,
            started_at=fields.started_at,
            duration=seconds,
            path=rel,
            size=size,
            sha256=digest,
            call_uuid=call_uuid,
            node=node,
        )
    # A row exists (import ran first, or the event came twice): refresh the file facts, keep the marks.
    row.size, row.sha256, row.duration = size, digest, seconds or row.duration
    if node is not None:
        row.node = node
    row.save()
    return row


@dataclasses.dataclass
class ImportReport:
    """What `import_recordings` did."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: list = dataclasses.field(default_factory=list)  # (relative path, reason)


def import_recordings(recordings_dir, settle_seconds=10, now=None, node=None):
    """(Re)build catalogue rows from the recordings folder; idempotent (unique by path), marks kept.

    Files changed in the last `settle_seconds` are being recorded (FreeSWITCH writes as the
    call goes): they are skipped, the next import or the end-of-call event catalogues them.
    `node`: the node whose folder this is (None: the one FreeSWITCH of the settings); a row it
    finds without a node, or naming a node that no longer exists, becomes that node's, and a
    file catalogued on another node is skipped (`_may_claim`).
    """
    report = ImportReport()
    now_ts = (now or utcnow()).replace(tzinfo=_dt.timezone.utc).timestamp()
    base = os.path.realpath(recordings_dir)
    if not os.path.isdir(base):
        raise ValidationError("recordings_dir", recordings_dir, "must be an existing folder")
    known = {
        path: (size, on) for path, size, on in Recording.select(Recording.path, Recording.size, Recording.node).tuples()
    }
    nodes = _node_names()
    tenants = {t.domain: t for t in Tenant.select()}
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames.sort()
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, base).replace(os.sep, "/")
            if os.path.islink(full):
                report.skipped.append((rel, "symbolic link"))
                continue
            try:
                fields = parse_relpath(rel)
            except ValidationError as exc:
                report.skipped.append((rel, exc.rule))
                continue
            tenant = tenants.get(fields.domain)
            if tenant is None:
                report.skipped.append((rel, f"tenant {fields.domain} does not exist"))
                continue
            try:
                st = os.stat(full)
                size = st.st_size
                if st.st_mtime > now_ts - settle_seconds:
                    report.skipped.append((rel, "still being written"))
                    continue
                if rel in known:
                    old_size, on = known[rel]
                    if not _may_claim(on, node, nodes):
                        report.skipped.append((rel, f"catalogued on node {on}"))
                        continue
                    if old_size == size and on == node:
                        report.unchanged += 1
                        continue
                size, digest = file_digest(full)
            except FileNotFoundError:
                report.skipped.append((rel, "vanished while importing"))
                continue
            _upsert(tenant, rel, fields, size, digest, wav_seconds(full), fields.call_uuid, node)
            if rel in known:
                report.updated += 1
            else:
                report.added += 1
    return report


# --- access rights -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Viewer:
    """Who is asking: a user of a tenant and the user numbers whose recordings they see (None: all)."""

    tenant_id: int
    domain: str
    number: str
    role: str
    numbers: frozenset | None


def viewer(as_user):
    """The Viewer for "USER@DOMAIN", or None for the operator (no --as)."""
    if as_user is None:
        return None
    if isinstance(as_user, Viewer):
        return as_user
    text = str(as_user).strip()
    if "@" not in text:
        raise ValidationError("--as", as_user, "must be USER@DOMAIN like 101@acme.example")
    number, domain = text.split("@", 1)
    number = validate.extension(number, "--as")
    tenant = get_tenant(domain)
    user = User.get_or_none((User.tenant == tenant) & (User.number == number))
    if user is None:
        raise NotFoundError("user", number, tenant.domain)
    if user.role == "admin":
        numbers = None
    elif user.role != "supervisor":  # listed as a group's supervisor, but without the role: own only
        numbers = frozenset([user.number])
    else:
        supervised = (
            RecordingGroupMember.select(User.number)
            .join(User)
            .switch(RecordingGroupMember)
            .join(RecordingGroup)
            .join(RecordingGroupSupervisor, on=RecordingGroupSupervisor.group == RecordingGroup.id)
            .where(RecordingGroupSupervisor.user == user)
        )
        numbers = frozenset([user.number, *(n for (n,) in supervised.tuples())])
    return Viewer(tenant.id, tenant.domain, user.number, user.role, numbers)


def tenant_viewer(domain):
    """The Viewer of a whole tenant (what its admin sees): an API token acts as one."""
    tenant = get_tenant(domain)
    return Viewer(tenant.id, tenant.domain, "", "admin", None)


def _visible(query, who):
    if who is None:
        return query
    query = query.where(Recording.tenant == who.tenant_id)
    if who.numbers is not None:
        query = query.where(Recording.user_number.in_(sorted(who.numbers)))
    return query


def get_recording(recording_id, as_user=None):
    """One recording the viewer may see; otherwise NotFoundError (no hint whether it exists)."""
    who = viewer(as_user)
    rid = validate.integer(recording_id, "recording.id", low=1)
    row = _visible(Recording.select(Recording, Tenant).join(Tenant).where(Recording.id == rid), who).first()
    if row is None:
        raise NotFoundError("recording", rid)
    return row


# --- marks ---------------------------------------------------------------------------------------


def check_mark(note=None, colour=None, fields=None):
    """Validate marks; returns {column: clean value} for what is given (None = unchanged)."""
    changes = {}
    if note is not None:
        changes["note"] = validate.text(note, "recording.note", max_len=NOTE_MAX, required=False, multiline=True)
    if colour is not None:
        changes["colour"] = "" if colour in ("", "none") else validate.choice(colour, "recording.colour", COLOURS)
    for key, value in dict(fields or {}).items():
        name = f"field{key}" if isinstance(key, int) else str(key)
        if name not in FIELD_NAMES:
            raise ValidationError("recording.fields", key, "must be field1, field2 or field3")
        if value is not None:
            changes[name] = validate.text(value, f"recording.{name}", max_len=FIELD_MAX, required=False)
    return changes


MARK_COLUMNS = ("note", "colour", *FIELD_NAMES)
VIAS = ("cli", "web", "api", "lib")


def mark_version(row) -> str:
    """The version of a recording's mark (note, colour, field1..3): another whenever one of them changes.

    The API gives it (`mark_version`, the ETag) and takes it back (`If-Match`, `version`): a mark
    saved on top of a version that is no longer current is refused (MarkConflictError), not
    written over what someone else saved meanwhile.
    """
    values = json.dumps([getattr(row, key) for key in MARK_COLUMNS], ensure_ascii=False)
    return hashlib.sha256(values.encode()).hexdigest()[:16]


class MarkConflictError(ConflictError):
    """The mark changed since the version the client read: nothing saved; `row` is the current one."""

    def __init__(self, row, given):
        self.row, self.field, self.value = row, "version", given
        self.rule = (
            f"the marks of recording {row.id} were changed meanwhile: the current version is "
            f"{mark_version(row)} (read them again, then save)"
        )
        super().__init__(f'{self.field} "{given}": {self.rule}')


def mark(
    recording_id, as_user=None, note=None, colour=None, fields=None, actor=None, via="lib", now=None, if_version=None
):
    """The marking API: set note, colour and free fields of a recording the viewer may see.

    `fields` maps field1/field2/field3 (or 1/2/3) to text of at most 128 characters; longer
    text is refused, never cut. Colours: COLOURS, or "" / "none" to clear. Every change is
    audited (MarkAudit: `actor`, default the viewer or "operator"; `via`: cli, web, api, lib),
    in the same transaction: no mark without its audit row. `if_version` (a `mark_version`):
    save only if the mark is still that version, else MarkConflictError with the current one;
    the write itself compares and sets, so two saves on the same version cannot both succeed.
    """
    changes = check_mark(note, colour, fields)
    via = validate.choice(via, "mark.via", VIAS)
    with database.atomic():
        row = get_recording(recording_id, as_user)
        if if_version is not None and if_version != mark_version(row):
            raise MarkConflictError(row, if_version)
        changed = {key: [getattr(row, key), value] for key, value in changes.items() if getattr(row, key) != value}
        if changed:
            folded = {f"{key}_fold": fold(value) for key, (_, value) in changed.items() if key in FOLDED}
            unchanged_since_read = [getattr(Recording, key) == getattr(row, key) for key in MARK_COLUMNS]
            written = (
                Recording.update({**{k: v for k, (_, v) in changed.items()}, **folded})
                .where(Recording.id == row.id, *unchanged_since_read)
                .execute()
            )
            if written != 1:  # another save came between the read and this write
                raise MarkConflictError(get_recording(row.id, as_user), if_version or mark_version(row))
            for key, (_, value) in changed.items():
                setattr(row, key, value)
            MarkAudit.create(
                tenant=row.tenant_id,
                recording_id=row.id,
                actor=actor or _actor(as_user),
                via=via,
                at=now or utcnow(),
                changes=json.dumps(changed, ensure_ascii=False, sort_keys=True),
            )
    return row


def _actor(as_user):
    if as_user is None:
        return "operator"
    if isinstance(as_user, Viewer):
        return f"{as_user.number}@{as_user.domain}" if as_user.number else f"tenant:{as_user.domain}"
    return str(as_user).strip()


def mark_audit(as_user=None, recording_id=None, limit=100, offset=0):
    """The audit of marks the viewer may see, newest first: only a tenant admin (or the operator) sees it."""
    who = viewer(as_user)
    q = MarkAudit.select(MarkAudit, Tenant).join(Tenant)
    if who is not None:
        if who.numbers is not None:
            raise ValidationError("mark.audit", who.number, "only a tenant admin sees the audit of marks")
        q = q.where(MarkAudit.tenant == who.tenant_id)
    if recording_id is not None:
        q = q.where(MarkAudit.recording_id == validate.integer(recording_id, "recording.id", low=1))
    limit = validate.integer(limit, "--limit", low=1, high=10000)
    offset = validate.integer(offset, "--offset", low=0, high=10**9)
    return list(q.order_by(MarkAudit.at.desc(), MarkAudit.id.desc()).limit(limit).offset(offset))


def audit_dict(row):
    """The stable JSON shape of a mark audit row."""
    return {
        "id": row.id,
        "tenant": row.tenant.domain,
        "recording_id": row.recording_id,
        "actor": row.actor,
        "via": row.via,
        "at": row.at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "changes": json.loads(row.changes),
    }


# --- search --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Filters:
    """Search filters; every one optional. Times are naive UTC; `until` is exclusive."""

    tenant: str | None = None
    since: _dt.datetime | None = None
    until: _dt.datetime | None = None
    min_length: float | None = None
    max_length: float | None = None
    user: str | None = None
    user_name: str | None = None
    counterpart: str | None = None
    colour: str | None = None
    note: str | None = None
    field1: str | None = None
    field2: str | None = None
    field3: str | None = None


def parse_time(value, field, end=False):
    """ISO date or date-time (UTC unless it carries an offset) -> naive UTC; a date as `end` is the next midnight."""
    if value is None or isinstance(value, _dt.datetime):
        return value
    text = str(value).strip()
    try:
        if len(text) == 10:
            day = _dt.date.fromisoformat(text)
            return _dt.datetime.combine(day + _dt.timedelta(days=1 if end else 0), _dt.time())
        moment = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(field, value, "must be a date YYYY-MM-DD or a time YYYY-MM-DDTHH:MM[:SS][Z]") from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(_dt.timezone.utc).replace(tzinfo=None)
    return moment


def make_filters(
    tenant=None,
    since=None,
    until=None,
    min_length=None,
    max_length=None,
    user=None,
    counterpart=None,
    colour=None,
    note=None,
    field1=None,
    field2=None,
    field3=None,
    user_name=None,
):
    """Validated Filters from text values (the CLI's options)."""

    def seconds(value, field):
        if value is None:
            return None
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = -1
        if not number >= 0:
            raise ValidationError(field, value, "must be a number of seconds >= 0")
        return number

    return Filters(
        tenant=validate.domain(tenant, "--tenant") if tenant else None,
        since=parse_time(since, "--from"),
        until=parse_time(until, "--to", end=True),
        min_length=seconds(min_length, "--min-length"),
        max_length=seconds(max_length, "--max-length"),
        user=validate.extension(user, "--user") if user else None,
        user_name=validate.text(user_name, "--user-name", max_len=FIELD_MAX) if user_name else None,
        counterpart=validate.prefix(counterpart, "--counterpart") if counterpart else None,
        colour=validate.choice(colour, "--colour", COLOURS) if colour else None,
        note=validate.text(note, "--note", max_len=NOTE_MAX) if note else None,
        field1=validate.text(field1, "--field1", max_len=FIELD_MAX) if field1 else None,
        field2=validate.text(field2, "--field2", max_len=FIELD_MAX) if field2 else None,
        field3=validate.text(field3, "--field3", max_len=FIELD_MAX) if field3 else None,
    )


def query(filters=Filters(), as_user=None, index=True):
    """The recordings matching `filters` that the viewer may see, newest first (a peewee query).

    `index=False`: text terms by LIKE alone, without the trigram index (the same rows, slower).
    """
    who = viewer(as_user)
    f = filters
    q = _visible(Recording.select(Recording, Tenant).join(Tenant), who)
    if f.tenant:
        tenant = Tenant.get_or_none(Tenant.domain == f.tenant)
        if tenant is None:
            raise NotFoundError("tenant", f.tenant)
        q = q.where(Recording.tenant == tenant.id)
    if f.since:
        q = q.where(Recording.started_at >= f.since)
    if f.until:
        q = q.where(Recording.started_at < f.until)
    if f.min_length is not None:
        q = q.where(Recording.duration >= f.min_length)
    if f.max_length is not None:
        q = q.where(Recording.duration <= f.max_length)
    if f.user:
        q = q.where(Recording.user_number == f.user)
    if f.counterpart:
        # A range, not LIKE, so the (tenant, counterpart) index serves it on both engines.
        upper = f.counterpart[:-1] + chr(ord(f.counterpart[-1]) + 1)
        q = q.where((Recording.counterpart >= f.counterpart) & (Recording.counterpart < upper))
    if f.colour:
        q = q.where(Recording.colour == f.colour)
    texts = {name: fold(getattr(f, name)) for name in FOLDED if getattr(f, name)}
    for name, text in texts.items():  # substring, case-insensitive for every script (folded on both sides)
        q = q.where(getattr(Recording, f"{name}_fold").contains(text))
    candidates = _trigram_candidates(texts) if index else None
    if candidates is not None:  # the same rows, found through the index instead of by reading every row
        q = q.where(Recording.id.in_(candidates))
    return q.order_by(Recording.started_at.desc(), Recording.id.desc())


TRIGRAM = 3  # a term shorter than a trigram cannot use the index: it is found by LIKE alone
# More candidates than this: a common text, which the newest-first scan meets early (and the
# index would have to hand over row by row): LIKE alone.
MAX_CANDIDATES = 2000


def _is_sqlite():
    import peewee

    return isinstance(database.obj, peewee.SqliteDatabase)


def _trigram_candidates(texts):
    """SQLite: the ids whose folded texts hold every term's trigrams (a superset of the matches), as
    a subquery on the FTS5 table of fsctl.migrations.search_index; None when no term can use it
    or the terms are common (more than MAX_CANDIDATES rows).

    The LIKE conditions stay, so the rows are exactly those of the scan. PostgreSQL needs
    nothing here: its planner uses the pg_trgm indexes for the ILIKE conditions.
    """
    import peewee

    terms = {name: text for name, text in texts.items() if len(text) >= TRIGRAM}
    if not terms or not _is_sqlite():
        return None
    if not database.execute_sql(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'recording_fts'"
    ).fetchone():
        return None
    match = " AND ".join(f'{name}_fold : "{text.replace(chr(34), chr(34) * 2)}"' for name, text in terms.items())
    found = database.execute_sql(
        "SELECT count(*) FROM (SELECT 1 FROM recording_fts WHERE recording_fts MATCH ? LIMIT ?)",
        [match, MAX_CANDIDATES + 1],
    ).fetchone()[0]
    if found > MAX_CANDIDATES:
        return None
    return peewee.SQL("(SELECT rowid FROM recording_fts WHERE recording_fts MATCH ?)", [match])


def search(filters=Filters(), as_user=None, limit=50, offset=0, max_limit=10000, index=True):
    """One page of matching recordings (rows), newest first."""
    limit = validate.integer(limit, "--limit", low=1, high=max_limit)
    offset = validate.integer(offset, "--offset", low=0, high=10**9)
    return list(query(filters, as_user, index).limit(limit).offset(offset))


def recording_dict(row):
    """The stable JSON shape of a recording."""
    return {
        "id": row.id,
        "tenant": row.tenant.domain,
        "user": row.user_number,
        "user_name": row.user_name,
        "direction": row.direction,
        "counterpart": row.counterpart,
        "started_at": row.started_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "duration": row.duration,
        "size": row.size,
        "sha256": row.sha256,
        "path": row.path,
        "node": row.node,
        "note": row.note,
        "colour": row.colour,
        "field1": row.field1,
        "field2": row.field2,
        "field3": row.field3,
        "mark_version": mark_version(row),
    }


# --- retention and quota -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PurgeItem:
    """A recording to remove and why (expired | quota), and the node whose disk holds it (None: the single one)."""

    id: int
    domain: str
    user: str
    path: str
    size: int
    started_at: _dt.datetime
    node: str | None
    reason: str


@dataclasses.dataclass
class PurgePlan:
    """What a purge removes, plus one warning line per user over the quota (and what other nodes remove)."""

    items: list
    warnings: list
    elsewhere: list = dataclasses.field(default_factory=list)


def plan_purge(retention_days, quota_mb, now=None):
    """Expired recordings (older than the retention) and, per user, the oldest beyond the quota.

    Quota rule: when a user's remaining recordings total more than `quota_mb`, their oldest
    go first until the total fits; the newest recording is always kept (even alone over it).
    """
    # A zero or negative quota would purge all but each user's newest recording (the settings
    # refuse it too; this guards every other caller).
    retention_days = validate.integer(retention_days, "recording_retention_days", low=1, high=10**9)
    quota_mb = validate.integer(quota_mb, "recording_quota_mb", low=1, high=10**9)
    now = now or utcnow()
    cutoff = now - _dt.timedelta(days=retention_days)
    limit = quota_mb * 1024 * 1024
    cols = (
        Recording.id,
        Tenant.domain,
        Recording.user_number,
        Recording.path,
        Recording.size,
        Recording.started_at,
        Recording.node,
    )
    base = Recording.select(*cols).join(Tenant)
    items = [
        PurgeItem(*r, "expired")
        for r in base.where(Recording.started_at < cutoff).order_by(Recording.started_at, Recording.id).tuples()
    ]
    warnings = []
    over = (
        Recording.select(Recording.tenant, Recording.user_number, _sum_size())
        .where(Recording.started_at >= cutoff)
        .group_by(Recording.tenant, Recording.user_number)
        .having(_sum_size() > limit)
        .order_by(Recording.tenant, Recording.user_number)
        .tuples()
    )
    for tenant_id, number, total in over:
        rows = list(
            base.where(
                (Recording.tenant == tenant_id) & (Recording.user_number == number) & (Recording.started_at >= cutoff)
            )
            .order_by(Recording.started_at, Recording.id)
            .tuples()
        )
        removed = []
        for r in rows[:-1]:
            if total <= limit:
                break
            removed.append(PurgeItem(*r, "quota"))
            total -= r[4]
        items.extend(removed)
        domain = rows[0][1]
        line = (
            f"{domain} user {number} is over the {quota_mb} MB recording quota: {len(removed)} oldest recordings purged"
        )
        if total > limit:
            line += f", the newest alone is {total / 1048576:.1f} MB"
        warnings.append(line)
    return PurgePlan(items, warnings)


def _sum_size():
    return fn.SUM(Recording.size)


def purge(recordings_dir, retention_days, quota_mb, now=None, dry_run=False, node=None, every_node=False):
    """Remove expired and over-quota recordings: each file first, then its row. Returns the plan.

    The plan is the whole catalogue's (the quota counts a user's recordings on every node); this
    run removes the files on `recordings_dir`'s disk only: those of `node` (None: of the single
    FreeSWITCH, no node). The other nodes' share is left in `plan.elsewhere` for their own purge.
    `every_node` (a dry run only): list every node's share.
    """
    plan = plan_purge(retention_days, quota_mb, now)
    if not every_node:
        plan.elsewhere = [item for item in plan.items if item.node != node]
        plan.items = [item for item in plan.items if item.node == node]
    for line in plan.warnings:
        log.warning(line)
    if dry_run:
        return plan
    for item in plan.items:
        try:
            os.unlink(resolve(recordings_dir, item.path))
        except FileNotFoundError:
            pass
        Recording.delete().where(Recording.id == item.id).execute()
        log.info("purged recording %s (%s)", item.path, item.reason)
    return plan


def catalogue_from_hangups(batch, recordings_dir, node=None):
    """Catalogue the recordings named by CHANNEL_HANGUP_COMPLETE events (`fsctl_recording_path`).

    The Event Socket service calls this with each batch of hang-ups, before the call records
    are written (they link to the catalogue by call UUID). A bad or foreign path is logged and
    skipped; `fsctl rec import` remains the way to recover anything missed. `node`: the node the
    service serves (`fs-scripts run --node`), whose disk holds the files. Returns the rows.
    """
    key = chanvars.header(chanvars.FSCTL_RECORDING_PATH)
    rows, seen = [], set()
    for headers in batch:
        path = (headers.get(key) or "").strip()
        if not path or path in seen:
            continue
        seen.add(path)
        seconds = headers.get(chanvars.header(chanvars.RECORD_SECONDS)) or None
        try:
            row = catalogue_recording(path, recordings_dir, duration=seconds, node=node)
        except (ValidationError, NotFoundError) as exc:
            log.warning("recording of call %s not catalogued: %s", headers.get(chanvars.UNIQUE_ID, "?"), exc)
            continue
        except DatabaseError as exc:  # that recording only: the others of the batch go on
            if isinstance(exc, OperationalError):
                raise
            log.warning(
                "recording of call %s not catalogued: the database refused it: %s (fsctl rec import takes it later)",
                headers.get(chanvars.UNIQUE_ID, "?"),
                first_line(exc),
            )
            continue
        if row is not None:
            rows.append(row)
    return rows
