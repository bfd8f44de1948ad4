"""Writing call records: legs merged into CallRecord / CallLeg / CallParty rows, idempotently
(unique call UUID; legs keyed by their own UUID), in batches, in one transaction.

The notifier is injected: `notifier(call_ids)` runs in the same transaction for the calls
completed now (the package passes fsctl.services.notify's by default).
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

import peewee

from ...db import database
from ...errors import ValidationError, first_line
from ...freeswitch.channel import Channel, parse_channel
from ...model import CallLeg, CallParty, CallRecord, Recording, Tenant
from .channels import CallState, apply_channel, finish_state, new_state


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
    "uuid",
    "direction",
    "caller",
    "caller_name",
    "callee",
    "did",
    "target_kind",
    "target",
    "answered_by",
    "started_at",
    "answered_at",
    "ended_at",
    "duration",
    "talk_time",
    "hangup_cause",
    "status",
    "recording_path",
    "voicemail",
    "queue",
    "caller_left",
    "a_answered",
    "missed_by",
    "complete",
    "node",
)


_LEG_FIELDS = (
    "uuid",
    "user_number",
    "started_at",
    "answered_at",
    "ended_at",
    "result",
    "hangup_cause",
    "via",
    "external",
    "talk_time",
    "node",
)


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
    # The driver's errors as peewee's (IntegrityError, DataError...), as for every other statement.
    with peewee.__exception_wrapper__:
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


def ingest_hangup(headers: dict, notifier: Callable | None = None, node: str | None = None) -> IngestReport:
    """Ingest one CHANNEL_HANGUP_COMPLETE event (headers URL-decoded); ValidationError if refused."""
    report = ingest_hangups([headers], notifier=notifier, node=node)
    if report.errors:
        raise report.errors[0][2]
    return report


def ingest_hangups(events: Iterable[dict], notifier: Callable | None = None, node: str | None = None) -> IngestReport:
    """Ingest hang-up events in one transaction (bad ones reported); `notifier(ids)` gets the calls completed now
    (in the same transaction: missed-call notifications and CRM events are queued with the records).

    `node`: the node the events come from (its `fs-scripts run --node`, or `cdr import --node`);
    None: the single FreeSWITCH, or a source that does not say. Calls are unique by call UUID
    whichever node reports them: the legs of one call met from two sources make one record, each
    leg with the node it ran on, the call with its caller's leg's.

    One bad call never blocks the others: a call whose values do not fit the model is refused
    before anything is written, and if the database still refuses the batch, each call is
    written on its own (a savepoint each) and the one it refuses is reported with its events.
    """
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
    try:
        return _write_batch(channels, report, notifier, node)
    except peewee.OperationalError:
        raise  # the database is unreachable or locked: no call's fault, nothing written
    except peewee.DatabaseError:
        pass
    done = IngestReport(events=report.events, errors=list(report.errors))
    by_call: dict[str, list] = {}
    for index, ch in channels:
        by_call.setdefault(ch.call_uuid, []).append((index, ch))
    for items in by_call.values():
        try:
            part = _write_batch(items, IngestReport(), notifier, node)
        except peewee.OperationalError:
            raise
        except peewee.DatabaseError as exc:
            reason = f"the database refused the call: {first_line(exc)}"
            done.errors.extend((index, reason, exc) for index, _ in items)
            continue
        done.errors.extend(part.errors)
        done.calls_created += part.calls_created
        done.calls_updated += part.calls_updated
        done.legs += part.legs
        done.completed.extend(part.completed)
        done.changed.extend(part.changed)
    done.errors.sort(key=lambda e: e[0])
    return done


def _write_batch(
    channels: list, report: IngestReport, notifier: Callable | None, node: str | None = None
) -> IngestReport:
    """Write the channels' calls in one transaction (a savepoint inside the caller's): the report."""
    for attempt in (1, 2):
        done = IngestReport(events=report.events, errors=list(report.errors))
        try:
            with database.atomic():
                _write(channels, done, node)
                if done.completed and notifier:
                    notifier(done.completed)
            return done
        except peewee.IntegrityError:
            # Another writer (the service, or `fsctl cdr import`) created one of these calls
            # meanwhile: the second attempt merges into its row.
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _too_long(model, row: dict) -> tuple[str, str] | None:
    """The first (field, value) of `row` longer than the model's column allows, or None."""
    for name, value in row.items():
        limit = getattr(model._meta.fields.get(name), "max_length", None)
        if limit and isinstance(value, str) and len(value) > limit:
            return name, value
    return None


def _check_fits(state: CallState, parties: list) -> None:
    """A call whose values do not fit the model's columns is refused (ValidationError naming the field).

    SQLite stores any length; PostgreSQL refused such a value and the whole batch with it.
    """
    rec = state.record
    checks = [(CallRecord, {name: rec[name] for name in _RECORD_FIELDS})]
    checks += [(CallLeg, {k: leg[k] for k in _LEG_FIELDS}) for leg in state.legs.values()]
    checks += [(CallParty, p) for p in parties]
    for model, row in checks:
        bad = _too_long(model, row)
        if bad:
            name, value = bad
            limit = model._meta.fields[name].max_length
            raise ValidationError(f"{model._meta.table_name}.{name}", value, f"must be at most {limit} characters")


def _write(channels: list, report: IngestReport, node: str | None = None) -> None:
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
            apply_channel(state, ch, node)
        tenant_id = tenant_ids.get(state.record["tenant"]) if row is None else row.tenant_id
        if row is None and tenant_id is None:
            reason = ValidationError("tenant", state.record["tenant"], "is not a tenant of this PBX")
            for index, _ in items:
                report.errors.append((index, str(reason), reason))
            continue
        state.record["tenant_id"] = tenant_id
        states[call_uuid] = state

    new_rows, parties_by_uuid, leg_rows = [], {}, {}
    for call_uuid, state in list(states.items()):
        _, parties = finish_state(state)
        try:
            _check_fits(state, parties)
        except ValidationError as exc:
            report.errors.extend((index, str(exc), exc) for index, _ in by_call[call_uuid])
            del states[call_uuid]
            continue
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
            parties_out.append(
                {**p, "call": cid, "tenant": state.record["tenant_id"], "started_at": state.record["started_at"]}
            )
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
