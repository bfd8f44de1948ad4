"""Call records (R-STAT, R-MISSED): one CallRecord per call, from FreeSWITCH's channels.

FreeSWITCH reports every *channel* (leg) separately: a CHANNEL_HANGUP_COMPLETE event, or a
mod_xml_cdr file, per leg. A call is the caller's leg (the "A-leg") plus every leg the PBX
rang for it (group members, queue agents, transfer targets, the gateway of an outgoing call).
This module

- parses a leg's headers into a `Channel` (pure),
- classifies a call from its facts with one pure function, `classify` (the rules table below),
- merges legs into CallRecord / CallLeg / CallParty rows, idempotently (unique call UUID; legs
  keyed by their own UUID), in batches (`ingest_hangups`),
- imports mod_xml_cdr files (`import_xml_cdr_dir`); FACTS.md: mod_cdr_csv does not escape
  its fields, so the XML files are the safe format to read back after an outage. The
  fsctl-cdr-import timer runs it every 5 minutes and moves what it imported to an archive
  (`move_file`, after the commit), so a call the service missed is never lost.

The event order seen on a real FreeSWITCH (esl_events_plain_bridge_acme.txt): the B-leg's
CHANNEL_HANGUP_COMPLETE arrives *before* the A-leg's, so a leg may create a provisional record
that the A-leg completes later.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import fcntl
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator
from urllib.parse import unquote

import peewee

from ...db import database
from ...errors import ValidationError
from ...freeswitch import chanvars as cv
from ...freeswitch.channel import Channel, parse_channel
from ...model import CallLeg, CallParty, CallRecord, Recording, Tenant, call_dict, iso_utc

STATUSES = ("answered", "missed", "abandoned", "busy", "failed", "refused")
LEG_RESULTS = ("answered", "no_answer", "busy", "cancelled", "failed")
DIRECTIONS = ("in", "out", "internal")

# The final destination when the call logic knows it (e.g. after a time rule); FreeSWITCH
# channel variable set by the call logic before a group rings or a queue takes the call.
FSCTL_TARGET = cv.FSCTL_TARGET

# Hang-up causes (switch_types.h) by meaning.
BUSY_CAUSES = frozenset({"USER_BUSY", "CALL_REJECTED"})
NO_ANSWER_CAUSES = frozenset(
    {"NO_ANSWER", "NO_USER_RESPONSE", "ALLOTTED_TIMEOUT", "PROGRESS_TIMEOUT", "RECOVERY_ON_TIMER_EXPIRE"}
)
CANCEL_CAUSES = frozenset({"ORIGINATOR_CANCEL", "LOSE_RACE", "PICKED_OFF", "NORMAL_CLEARING"})
# A user leg that could not even ring (phone offline): the user still missed the call.
UNREACHABLE_CAUSES = frozenset(
    {"SUBSCRIBER_ABSENT", "USER_NOT_REGISTERED", "NO_ANSWER", "NO_USER_RESPONSE", "DESTINATION_OUT_OF_ORDER"}
)


# --- classification (pure) ----------------------------------------------------------------

@dataclass(frozen=True)
class LegFacts:
    """What a leg tells the classification: whose phone, how it ended, how it was offered."""

    user: str = ""
    result: str = "no_answer"  # one of LEG_RESULTS
    via: str = ""  # "queue": offered by a queue (mod_callcenter agent leg)
    external: bool = False  # a gateway leg (outside number)


@dataclass(frozen=True)
class CallFacts:
    """What the classification of one call looks at."""

    direction: str = "internal"  # in | out | internal
    route_kind: str | None = None  # user | group | queue | ivr | voicemail | conference | external | ...
    route_target: str | None = None
    hangup_cause: str = "NORMAL_CLEARING"  # of the caller's leg
    legs: tuple[LegFacts, ...] = ()
    voicemail: str | None = None  # the mailbox the call ended in
    queue: str | None = None  # the queue the caller waited in
    caller_left: bool = False  # the caller hung up (recv_bye / recv_cancel / ORIGINATOR_CANCEL)
    a_answered: bool = False  # the caller's leg was answered (IVR, voicemail, conference, bridge)


@dataclass(frozen=True)
class Outcome:
    """The classification: status, who answered, for whom it is a missed call, and the rule."""

    status: str
    answered_by: str | None = None
    missed_by: tuple[str, ...] = ()
    rule: str = ""


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for item in items:
        if item and item not in seen:
            seen[item] = None
    return tuple(seen)


def classify(f: CallFacts) -> Outcome:
    """The status of a call and the users who missed it (one rule table, first match wins)."""
    answered_users = [leg for leg in f.legs if leg.result == "answered" and leg.user and not leg.external]
    if answered_users:  # a group/queue call answered by one member is answered, missed by nobody
        return Outcome("answered", answered_users[0].user, (), "user answered")
    if any(leg.result == "answered" for leg in f.legs):
        return Outcome("answered", None, (), "far end answered")
    if f.route_kind == "conference" and f.a_answered:
        return Outcome("answered", None, (), "conference joined")
    if f.direction == "in" and f.hangup_cause == "CALL_REJECTED" and not f.legs:
        return Outcome("refused", None, (), "blacklisted caller refused")
    if f.direction == "out":
        if f.hangup_cause in BUSY_CAUSES or (f.legs and all(leg.result == "busy" for leg in f.legs)):
            return Outcome("busy", None, (), "outgoing call busy")
        return Outcome("failed", None, (), "outgoing call not answered")
    user_legs = [leg for leg in f.legs if leg.user and not leg.external and leg.via != "queue"]
    rang = _unique(leg.user for leg in user_legs if leg.result != "busy")
    if rang:
        extra = (f.voicemail,) if f.voicemail and f.voicemail not in rang else ()
        return Outcome("missed", None, rang + extra, "users rang, nobody answered")
    if user_legs:
        return Outcome("busy", None, (), "every user rung was busy")
    if f.voicemail:
        return Outcome("missed", None, (f.voicemail,), "went to voicemail")
    if f.route_kind == "user" and f.route_target and f.hangup_cause in UNREACHABLE_CAUSES:
        return Outcome("missed", None, (f.route_target,), "user unreachable")
    if f.queue or f.route_kind == "queue" or any(leg.via == "queue" for leg in f.legs):
        return Outcome("abandoned", None, (), "caller left the queue")
    if f.route_kind == "ivr" or (f.a_answered and f.caller_left):
        return Outcome("abandoned", None, (), "caller left during the greeting or menu")
    if f.hangup_cause in BUSY_CAUSES:
        return Outcome("busy", None, (), "busy")
    if f.caller_left or f.hangup_cause == "ORIGINATOR_CANCEL":
        return Outcome("abandoned", None, (), "caller hung up before anything rang")
    return Outcome("failed", None, (), "not connected")


def leg_result(answered: bool, cause: str) -> str:
    """A leg's result from whether it answered and its hang-up cause."""
    if answered:
        return "answered"
    if cause in BUSY_CAUSES:
        return "busy"
    if cause in NO_ANSWER_CAUSES:
        return "no_answer"
    if cause in CANCEL_CAUSES:
        return "cancelled"
    return "failed"


# --- merging legs into a call (pure) -------------------------------------------------------

@dataclass
class CallState:
    """A call being built: CallRecord fields plus its legs by UUID."""

    record: dict
    legs: dict = field(default_factory=dict)
    was_complete: bool = False


def _seconds(a, b) -> int:
    if a is None or b is None:
        return 0
    return max(0, int((b - a).total_seconds()))


def _leg_from(ch: Channel) -> dict:
    result = leg_result(ch.answered_at is not None, ch.hangup_cause)
    return {
        "uuid": ch.uuid,
        "user_number": ch.user,
        "started_at": ch.started_at,
        "answered_at": ch.answered_at,
        "ended_at": ch.ended_at,
        "result": result,
        "hangup_cause": ch.hangup_cause[:64],
        "via": ch.via,
        "external": ch.external,
        "talk_time": _seconds(ch.answered_at, ch.ended_at) if ch.answered_at else 0,
        "synthetic": False,
    }


def _direction(ch: Channel, legs: dict) -> str:
    if ch.did:
        return "in"
    route_kind = (ch.route or "").split(":", 1)[0]
    if route_kind == "external" or ch.bridged_external or any(l["external"] for l in legs.values()):
        return "out"
    callee = ch.callee.lstrip("+")
    if ch.callee.startswith("+") or (callee.isdigit() and len(callee) > 6):
        return "out"
    return "internal"


def new_state(ch: Channel) -> CallState:
    """An empty call for the first leg seen of it."""
    return CallState(
        record={
            "uuid": ch.call_uuid,
            "tenant": ch.tenant,
            "direction": "internal",
            "caller": ch.caller,
            "caller_name": "",
            "callee": "",
            "did": None,
            "target_kind": None,
            "target": None,
            "answered_by": None,
            "started_at": ch.started_at,
            "answered_at": None,
            "ended_at": ch.ended_at,
            "duration": 0,
            "talk_time": 0,
            "hangup_cause": "",
            "status": "failed",
            "recording_path": None,
            "voicemail": None,
            "queue": None,
            "caller_left": False,
            "a_answered": False,
            "missed_by": "",
            "complete": False,
        }
    )


def apply_channel(state: CallState, ch: Channel) -> None:
    """Merge one leg into the call (idempotent: the same leg twice changes nothing)."""
    rec = state.record
    if not ch.is_a_leg:
        state.legs[ch.uuid] = _leg_from(ch)
        if not rec["complete"]:
            rec["started_at"] = min(rec["started_at"], ch.started_at)
            if rec["ended_at"] is None or (ch.ended_at and ch.ended_at > rec["ended_at"]):
                rec["ended_at"] = ch.ended_at
        return
    kind, _, target = (ch.route or "").partition(":")
    rec.update(
        tenant=ch.tenant or rec["tenant"],
        caller=ch.caller,
        caller_name=ch.caller_name[:200],
        callee=ch.callee,
        did=ch.did,
        target_kind=(kind or None) and kind[:16],
        target=(target or None) and target[:64],
        started_at=ch.started_at,
        ended_at=ch.ended_at,
        duration=_seconds(ch.started_at, ch.ended_at),
        hangup_cause=ch.hangup_cause[:64],
        recording_path=ch.recording_path,
        voicemail=ch.voicemail,
        queue=ch.queue,
        caller_left=ch.caller_left,
        a_answered=ch.answered_at is not None,
        complete=True,
    )
    if ch.bridged_to and ch.bridged_to not in state.legs:
        # Only the caller's leg is known (e.g. mod_xml_cdr without b-leg files): the leg it
        # was bridged to answered.
        answered = ch.bridged_at or ch.answered_at or ch.started_at
        state.legs[ch.bridged_to] = {
            "uuid": ch.bridged_to,
            "user_number": ch.bridged_user[:32],
            "started_at": ch.started_at,
            "answered_at": answered,
            "ended_at": ch.ended_at,
            "result": "answered",
            "hangup_cause": ch.hangup_cause[:64],
            "via": "queue" if ch.queue else "",
            "external": ch.bridged_external,
            "talk_time": _seconds(answered, ch.ended_at),
            "synthetic": True,
        }
    rec["direction"] = _direction(ch, state.legs)


def facts_of(state: CallState) -> CallFacts:
    """The classification facts of a call being built."""
    rec = state.record
    legs = sorted(state.legs.values(), key=lambda l: (l["answered_at"] or _dt.datetime.max, l["started_at"]))
    return CallFacts(
        direction=rec["direction"],
        route_kind=rec["target_kind"],
        route_target=rec["target"],
        hangup_cause=rec["hangup_cause"] or "NORMAL_CLEARING",
        legs=tuple(LegFacts(l["user_number"], l["result"], l["via"], l["external"]) for l in legs),
        voicemail=rec["voicemail"],
        queue=rec["queue"],
        caller_left=rec["caller_left"],
        a_answered=rec["a_answered"],
    )


def finish_state(state: CallState) -> tuple[Outcome, list[dict]]:
    """Classify the call, fill the derived fields; returns the outcome and the CallParty rows."""
    rec = state.record
    out = classify(facts_of(state))
    rec["status"] = out.status
    rec["answered_by"] = out.answered_by
    rec["missed_by"] = ",".join(out.missed_by)
    answered_legs = sorted(
        (l for l in state.legs.values() if l["result"] == "answered"), key=lambda l: l["answered_at"]
    )
    # A transferred call talks on several legs one after another: the call's talk time is their sum.
    rec["answered_at"] = answered_legs[0]["answered_at"] if answered_legs else None
    rec["talk_time"] = sum(l["talk_time"] for l in answered_legs)
    if not rec["complete"]:
        rec["duration"] = _seconds(rec["started_at"], rec["ended_at"])
    return out, parties_of(state, out)


def parties_of(state: CallState, out: Outcome) -> list[dict]:
    """One row per user involved: received / answered / missed / placed / talk time."""
    rec = state.record
    parties: dict[str, dict] = {}

    def party(user):
        return parties.setdefault(
            user, {"user_number": user, "received": 0, "answered": 0, "missed": 0, "placed": 0, "talk_time": 0}
        )

    if rec["complete"] and rec["direction"] in ("out", "internal") and rec["caller"]:
        party(rec["caller"])["placed"] = 1
    if rec["direction"] in ("in", "internal"):
        for leg in state.legs.values():
            if leg["user_number"] and not leg["external"]:
                party(leg["user_number"])["received"] = 1
        for user in out.missed_by:
            p = party(user)
            p["received"] = p["missed"] = 1
        for leg in state.legs.values():  # everyone who answered (a transfer target too), with their own talk
            if leg["result"] == "answered" and leg["user_number"] and not leg["external"]:
                p = party(leg["user_number"])
                p["answered"] = 1
                p["talk_time"] += leg["talk_time"]
    return list(parties.values())


# --- the database -------------------------------------------------------------------------

@dataclass
class IngestReport:
    """What a batch did: calls created/updated, legs seen, events refused (index, reason)."""

    events: int = 0
    calls_created: int = 0
    calls_updated: int = 0
    legs: int = 0
    errors: list = field(default_factory=list)
    completed: list = field(default_factory=list)  # CallRecord ids that became complete now
    changed: list = field(default_factory=list)  # CallRecord ids written


_RECORD_FIELDS = (
    "uuid", "direction", "caller", "caller_name", "callee", "did", "target_kind", "target", "answered_by",
    "started_at", "answered_at", "ended_at", "duration", "talk_time", "hangup_cause", "status",
    "recording_path", "voicemail", "queue", "caller_left", "a_answered", "missed_by", "complete",
)
_LEG_FIELDS = ("uuid", "user_number", "started_at", "answered_at", "ended_at", "result", "hangup_cause", "via",
               "external", "talk_time")
_CHUNK = 400  # rows per multi-row statement (SQLite: at most 32766 variables)


def _chunks(items: list, size: int = _CHUNK) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _bulk_insert(model, rows: list[dict]) -> None:
    """Insert many rows with one prepared statement (peewee's insert_many costs more to build than to run)."""
    if not rows:
        return
    names = list(rows[0])
    fields = [model._meta.fields[name] for name in names]
    pg = isinstance(database.obj, peewee.PostgresqlDatabase)
    columns = ", ".join(f'"{f.column_name}"' for f in fields)
    table = model._meta.table_name

    def value(v):
        if isinstance(v, _dt.datetime) and not pg:
            return str(v)  # what peewee stores: 'YYYY-MM-DD HH:MM:SS'
        return v

    values = [tuple(value(row[name]) for name in names) for row in rows]
    cursor = database.cursor()
    if pg:
        from psycopg2.extras import execute_values

        execute_values(cursor, f'INSERT INTO "{table}" ({columns}) VALUES %s', values, page_size=500)
    else:
        cursor.executemany(f'INSERT INTO "{table}" ({columns}) VALUES ({", ".join("?" * len(fields))})', values)


def _state_from_row(row: CallRecord, legs: list[CallLeg], domain: str) -> CallState:
    record = {name: getattr(row, name) for name in _RECORD_FIELDS}
    record["tenant"] = domain
    state = CallState(record=record, was_complete=row.complete)
    for leg in legs:
        data = {name: getattr(leg, name) for name in _LEG_FIELDS}
        data["synthetic"] = False
        state.legs[leg.uuid or f"leg-{leg.id}"] = data
    return state


def ingest_hangup(headers: dict, notifier: Callable | None = None) -> IngestReport:
    """Ingest one CHANNEL_HANGUP_COMPLETE event (headers URL-decoded); ValidationError if refused."""
    report = ingest_hangups([headers], notifier=notifier)
    if report.errors:
        raise report.errors[0][2]
    return report


def ingest_hangups(events: Iterable[dict], notifier: Callable | None = None) -> IngestReport:
    """Ingest hang-up events in one transaction (bad ones reported); `notifier(ids)` gets the calls completed now."""
    # The default notifier is fsctl.services.notify.enqueue_for_calls: missed-call notifications and
    # CRM "finished" events are queued in the same transaction as the records.
    report = IngestReport()
    channels: list[Channel] = []
    for index, headers in enumerate(events):
        report.events += 1
        try:
            ch = parse_channel(headers)
        except ValidationError as exc:
            report.errors.append((index, str(exc), exc))
            continue
        channels.append((index, ch))
    if not channels:
        return report
    if notifier is None:
        from .. import notify

        notifier = notify.enqueue_for_calls
    for attempt in (1, 2):
        done = IngestReport(events=report.events, errors=list(report.errors))
        try:
            with database.atomic():
                _write(channels, done)
                if done.completed and notifier:
                    notifier(done.completed)
            return done
        except peewee.IntegrityError:
            # Another writer (the service, or `fsctl cdr import`) created one of these calls
            # meanwhile: the second attempt merges into its row.
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def ingest_batch(events: Iterable[dict]) -> IngestReport:
    """The service's batch entry point (fs_scripts.runtime): `ingest_hangups` with the default notifier."""
    return ingest_hangups(events)


def _write(channels: list, report: IngestReport) -> None:
    by_call: dict[str, list] = {}
    for index, ch in channels:
        by_call.setdefault(ch.call_uuid, []).append((index, ch))
    uuids = list(by_call)
    existing: dict[str, CallRecord] = {}
    for chunk in _chunks(uuids):
        for row in CallRecord.select().where(CallRecord.uuid.in_(chunk)):
            existing[row.uuid] = row
    legs_by_call: dict[int, list] = {}
    ids = [row.id for row in existing.values()]
    for chunk in _chunks(ids):
        for leg in CallLeg.select().where(CallLeg.call.in_(chunk)).order_by(CallLeg.id):
            legs_by_call.setdefault(leg.call_id, []).append(leg)
    domains = {ch.tenant for _, ch in channels if ch.tenant}
    tenant_ids = {}
    for chunk in _chunks(sorted(domains)):
        for t in Tenant.select(Tenant.id, Tenant.domain).where(Tenant.domain.in_(chunk)):
            tenant_ids[t.domain] = t.id
    domain_of = {v: k for k, v in tenant_ids.items()}
    if existing:
        for t in Tenant.select(Tenant.id, Tenant.domain).where(
            Tenant.id.in_(list({r.tenant_id for r in existing.values()}))
        ):
            domain_of[t.id] = t.domain

    states: dict[str, CallState] = {}
    for call_uuid, items in by_call.items():
        row = existing.get(call_uuid)
        if row is not None:
            state = _state_from_row(row, legs_by_call.get(row.id, []), domain_of.get(row.tenant_id, ""))
        else:
            state = None
        # the caller's leg last: it decides the record's fields; legs only add detail
        items.sort(key=lambda item: item[1].is_a_leg)
        for index, ch in items:
            if state is None:
                state = new_state(ch)
            apply_channel(state, ch)
        tenant_id = tenant_ids.get(state.record["tenant"]) if row is None else row.tenant_id
        if row is None and tenant_id is None:
            reason = ValidationError("tenant", state.record["tenant"], "is not a tenant of this PBX")
            for index, _ in items:
                report.errors.append((index, str(reason), reason))
            continue
        state.record["tenant_id"] = tenant_id
        states[call_uuid] = state

    new_rows, parties_by_uuid, leg_rows = [], {}, {}
    for call_uuid, state in states.items():
        _, parties = finish_state(state)
        parties_by_uuid[call_uuid] = parties
        leg_rows[call_uuid] = list(state.legs.values())
        rec = state.record
        row = {name: rec[name] for name in _RECORD_FIELDS}
        row["tenant"] = rec["tenant_id"]
        if call_uuid in existing:
            old = existing[call_uuid]
            CallRecord.update(**{k: v for k, v in row.items() if k != "uuid"}).where(CallRecord.id == old.id).execute()
            report.calls_updated += 1
        else:
            new_rows.append(row)
            report.calls_created += 1
    ids_by_uuid = {uuid: row.id for uuid, row in existing.items() if uuid in states}
    _bulk_insert(CallRecord, new_rows)
    new_uuids = [r["uuid"] for r in new_rows]
    for chunk in _chunks(new_uuids):
        for rid, uuid in CallRecord.select(CallRecord.id, CallRecord.uuid).where(CallRecord.uuid.in_(chunk)).tuples():
            ids_by_uuid[uuid] = rid
    touched = list(ids_by_uuid.values())
    for chunk in _chunks(touched):
        CallLeg.delete().where(CallLeg.call.in_(chunk)).execute()
        CallParty.delete().where(CallParty.call.in_(chunk)).execute()
    legs_out, parties_out = [], []
    for call_uuid, state in states.items():
        cid = ids_by_uuid[call_uuid]
        for leg in leg_rows[call_uuid]:
            legs_out.append({**{k: leg[k] for k in _LEG_FIELDS}, "call": cid})
        for p in parties_by_uuid[call_uuid]:
            parties_out.append({**p, "call": cid, "tenant": state.record["tenant_id"],
                                "started_at": state.record["started_at"]})
        if state.record["complete"] and not state.was_complete:
            report.completed.append(cid)
    report.changed = touched
    report.legs = len(legs_out)
    _bulk_insert(CallLeg, legs_out)
    _bulk_insert(CallParty, parties_out)
    _link_recordings(states, ids_by_uuid)


def _link_recordings(states: dict, ids_by_uuid: dict) -> None:
    """Point calls at their catalogued recording (by call UUID) when the catalogue has it."""
    wanted = [u for u, s in states.items() if s.record["recording_path"]]
    for chunk in _chunks(wanted):
        for rec_id, call_uuid in (
            Recording.select(Recording.id, Recording.call_uuid).where(Recording.call_uuid.in_(chunk)).tuples()
        ):
            CallRecord.update(recording=rec_id).where(CallRecord.id == ids_by_uuid[call_uuid]).execute()


# --- mod_xml_cdr files ---------------------------------------------------------------------

def xml_cdr_headers(data: bytes) -> dict:
    """The hang-up event headers equivalent to one mod_xml_cdr file (ValidationError if malformed)."""
    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, load_dtd=False)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise ValidationError("xml", _first_line(exc.msg or str(exc)),
                              "must be well-formed XML (a mod_xml_cdr file)") from None
    if root.tag != "cdr":
        raise ValidationError("xml root", root.tag, "must be <cdr> (a mod_xml_cdr file)")
    variables = root.find("variables")
    if variables is None:
        raise ValidationError("cdr", "variables", "must have a <variables> element")
    headers = {cv.EVENT_NAME: "CHANNEL_HANGUP_COMPLETE"}
    for var in variables:
        if isinstance(var.tag, str):
            # mod_xml_cdr URL-encodes every variable value (switch_ivr_set_xml_chan_var).
            headers[cv.header(var.tag)] = unquote(var.text or "")
    direction = root.findtext("channel_data/direction")
    if direction:
        headers[cv.CALL_DIRECTION] = direction
    headers[cv.UNIQUE_ID] = headers.get(cv.header("uuid"), "")
    if cv.header("hangup_cause") in headers:
        headers[cv.HANGUP_CAUSE] = headers[cv.header("hangup_cause")]
    # The first <callflow> is the channel's current caller profile (as in the event headers).
    profile = root.find("callflow/caller_profile")
    if profile is not None:
        for tag, header in (
            ("caller_id_number", cv.CALLER_ID_NUMBER),
            ("caller_id_name", cv.CALLER_ID_NAME),
            ("destination_number", cv.DESTINATION_NUMBER),
            ("context", cv.CALLER_CONTEXT),
            ("rdnis", "Caller-RDNIS"),
            ("chan_name", "Channel-Name"),
        ):
            text = profile.findtext(tag)
            if text:
                headers[header] = text
    return headers


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else "parse error"


@dataclass
class ImportReport:
    """What `import_xml_cdr_dir` did: files read, calls created/updated, failures (path, reason), files moved."""

    files: int = 0
    calls_created: int = 0
    calls_updated: int = 0
    legs: int = 0
    failed: list = field(default_factory=list)
    too_new: list = field(default_factory=list)  # paths left for the next run (younger than min_age, or their call)
    moved: int = 0
    not_moved: list = field(default_factory=list)  # (path, reason): imported, the move failed; re-imported next run
    archive_deleted: int | None = None  # archived files deleted (None: not looked at in this run)


ARCHIVE_LOCK = ".fsctl-cdr-import.lock"
PURGE_STAMP = ".fsctl-cdr-import.purged"


def _cdr_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*.xml") if p.is_file())


def _seconds_option(value, option: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = -1.0
    if not 0 <= number < float("inf"):
        raise ValidationError(option, value, "must be a number of seconds >= 0")
    return number


def _days_option(value, option: str) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        number = 0
    if number < 1:
        raise ValidationError(option, value, "must be a whole number of days >= 1")
    return number


def _archive_folder(directory: Path, move_to) -> Path:
    """The archive folder, checked: outside `directory`, created if missing, writable (ValidationError if not)."""
    source, target = os.path.realpath(directory), os.path.realpath(move_to)
    if os.path.commonpath([source, target]) in (source, target):
        # Inside DIR the next run would import the archive again; containing DIR, a file's relative
        # path could lead back into DIR.
        raise ValidationError("--move-to", move_to, "must be a folder outside DIR (not DIR, not inside it, "
                                                    "not containing it)")
    try:
        os.makedirs(target, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=target, prefix=".fsctl-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ValidationError("--move-to", move_to, "must be a folder fsctl can create and write to "
                                                    f"({exc.strerror or exc})") from None
    return Path(target)


@contextlib.contextmanager
def _archive_lock(archive: Path | None):
    """One import at a time moves files into an archive (a second one waits)."""
    if archive is None:
        yield
        return
    with open(archive / ARCHIVE_LOCK, "a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        yield


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def move_file(source: Path, target: Path, rename: Callable = os.replace) -> None:
    """Move a file to `target`, folders created: a rename, or across file systems a durable copy, then unlink."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        rename(source, target)  # atomic on one file system; keeps the file's time (retention counts from it)
        return
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
    # Another file system: the copy is on disk under its final name before the source goes, so a
    # crash leaves the file in both places (imported again next time, harmless), never in none.
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
            shutil.copyfileobj(src, out)
            out.flush()
            os.fsync(out.fileno())
        shutil.copystat(source, tmp)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(target.parent)
    os.unlink(source)


def purge_archive(archive: Path, keep_days: int, now: float, every: float = 86400) -> int | None:
    """Delete archived files (*.xml) older than `keep_days`, then empty folders; None if done under `every` s ago."""
    # At most once a day: the archive holds weeks of files and the timer runs every 5 minutes.
    stamp = archive / PURGE_STAMP
    try:
        if 0 <= now - stamp.stat().st_mtime < every:
            return None
    except FileNotFoundError:
        pass
    cutoff = now - keep_days * 86400
    deleted = 0
    for path in sorted(archive.rglob("*.xml")):
        try:
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink()
                deleted += 1
        except FileNotFoundError:
            continue
    for folder in sorted((p for p in archive.rglob("*") if p.is_dir()), reverse=True):  # deepest first
        with contextlib.suppress(OSError):  # not empty
            folder.rmdir()
    stamp.touch()
    os.utime(stamp, (now, now))
    return deleted


def import_xml_cdr_dir(directory, batch: int = 500, notifier: Callable | None = None, move_to=None, min_age=0,
                       keep_days=None, now: float | None = None, move: Callable = move_file) -> ImportReport:
    """Import every mod_xml_cdr file under `directory`, idempotently; bad files are reported and skipped.

    `move_to`: once a batch is committed, its imported files are moved there (same relative
    path); files that failed stay. A crash between the commit and the move leaves files that
    the next run imports again (calls unique by UUID, notifications queued once). `min_age`:
    files modified less than that many seconds before `now` (time.time()) may still be being
    written by FreeSWITCH: they, and the other files of their call, wait for the next run.
    `keep_days` (with `move_to`): archived files older than that are deleted.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ValidationError("directory", str(directory), "must be an existing directory of mod_xml_cdr files")
    min_age = _seconds_option(min_age, "--min-age")
    if keep_days is not None:
        keep_days = _days_option(keep_days, "--archive-keep-days")
        if move_to is None:
            raise ValidationError("--archive-keep-days", keep_days, "needs --move-to (it cleans that archive)")
    archive = _archive_folder(directory, move_to) if move_to is not None else None
    if archive is not None and database.in_transaction():
        raise RuntimeError("import_xml_cdr_dir(move_to=...) commits each batch before moving its files: "
                           "call it outside a transaction")
    now = time.time() if now is None else now
    report = ImportReport()
    with _archive_lock(archive):
        # Group the legs of one call into the same batch: read the call UUID of every file first.
        keyed: list[tuple[str, Path]] = []
        waiting: set[str] = set()  # calls with a file too new
        for path in _cdr_files(directory):
            try:
                young = min_age > 0 and path.stat().st_mtime > now - min_age
                data = path.read_bytes()
            except FileNotFoundError:  # moved or deleted meanwhile
                continue
            except OSError as exc:
                report.files += 1
                report.failed.append((str(path), exc.strerror or str(exc)))
                continue
            report.files += 1
            try:
                ch = parse_channel(xml_cdr_headers(data))
            except ValidationError as exc:
                if young:  # perhaps half written: not a failure yet
                    report.too_new.append(str(path))
                else:
                    report.failed.append((str(path), str(exc)))
                continue
            if young:
                report.too_new.append(str(path))
                waiting.add(ch.call_uuid)
                continue
            keyed.append((ch.call_uuid, path))
        report.too_new.extend(str(path) for uuid, path in keyed if uuid in waiting)
        keyed = sorted(item for item in keyed if item[0] not in waiting)
        i = 0
        while i < len(keyed):
            j = min(i + batch, len(keyed))
            while j < len(keyed) and keyed[j][0] == keyed[j - 1][0]:
                j += 1
            parsed: list[tuple[Path, dict]] = []
            for _, path in keyed[i:j]:
                try:
                    parsed.append((path, xml_cdr_headers(path.read_bytes())))
                except FileNotFoundError:
                    report.files -= 1
                except (ValidationError, OSError) as exc:
                    report.failed.append((str(path), str(exc)))
            result = ingest_hangups([h for _, h in parsed], notifier=notifier)  # committed on return
            refused = set()
            for index, reason, _ in result.errors:
                refused.add(index)
                report.failed.append((str(parsed[index][0]), reason))
            report.calls_created += result.calls_created
            report.calls_updated += result.calls_updated
            report.legs += result.legs
            if archive is not None:
                for index, (path, _) in enumerate(parsed):
                    if index in refused:
                        continue
                    try:
                        move(path, archive / path.relative_to(directory))
                        report.moved += 1
                    except FileNotFoundError:  # gone meanwhile: nothing left to move
                        continue
                    except OSError as exc:
                        report.not_moved.append((str(path), exc.strerror or str(exc)))
            i = j
        if keep_days is not None:
            report.archive_deleted = purge_archive(archive, keep_days, now)
    report.failed.sort()
    report.too_new.sort()
    return report


__all__ = [
    "STATUSES", "CallFacts", "LegFacts", "Outcome", "classify", "leg_result", "Channel", "parse_channel",
    "CallState", "new_state", "apply_channel", "finish_state", "IngestReport", "ingest_hangup", "ingest_hangups",
    "ingest_batch", "xml_cdr_headers", "ImportReport", "import_xml_cdr_dir", "move_file", "purge_archive",
    "call_dict", "iso_utc",
]
