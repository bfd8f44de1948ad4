"""Call statistics and exports (R-STAT): aggregated in SQL, streamed row by row.

Every function takes a tenant and a period [start, end) in naive UTC (see `period`) and
returns an *iterator* of dicts whose keys are the documented columns below, in order; writers
(`write_rows`) turn an iterator into a table, CSV or JSON without building a list, so an
export takes constant memory whatever the period (PostgreSQL: a server-side cursor).

Schemas (stable; csv header = these names, json = a list of objects with these keys):

- users:   user, name, received, answered, missed, placed, avg_talk_time, talk_time
           (received: calls that rang the user (offered), answered: calls the user answered,
           missed: calls that are a missed call for the user (fsctl.services.cdr.classify), placed:
           calls the user made, avg_talk_time: mean talk time of the answered incoming calls,
           seconds with one decimal, talk_time: their total, seconds)
- groups, queues, dids:
           group|queue|did, calls, answered, missed, abandoned, busy, failed, refused,
           avg_talk_time, talk_time
- hourly:  hour (0-23, tenant time zone), calls, answered, missed, abandoned, busy, failed,
           refused, talk_time
- daily:   date (YYYY-MM-DD, tenant time zone), same counters as hourly
- calls (the call log, `fsctl cdr list`): see CALL_COLUMNS
"""

from __future__ import annotations

import csv
import datetime as _dt
import itertools
import json
import zoneinfo
from typing import IO, Iterable, Iterator

import peewee

from .. import validate
from ..db import database
from ..errors import ValidationError
from ..model import Tenant, User, iso_utc
from .cdr import STATUSES

STATUS_COLUMNS = ("answered", "missed", "abandoned", "busy", "failed", "refused")
USER_COLUMNS = ("user", "name", "received", "answered", "missed", "placed", "avg_talk_time", "talk_time")
KEYED_COLUMNS = ("calls",) + STATUS_COLUMNS + ("avg_talk_time", "talk_time")
HOURLY_COLUMNS = ("hour", "calls") + STATUS_COLUMNS + ("talk_time",)
DAILY_COLUMNS = ("date", "calls") + STATUS_COLUMNS + ("talk_time",)
CALL_COLUMNS = (
    "uuid", "started_at", "direction", "caller", "caller_name", "callee", "did", "target", "status",
    "answered_by", "missed_by", "duration", "talk_time", "hangup_cause", "recording",
)
# The operator's call log (`fsctl cdr list`) also says which node took each call (None: the single FreeSWITCH).
LOG_COLUMNS = CALL_COLUMNS + ("node",)
REPORTS = ("users", "groups", "queues", "dids", "hourly", "daily")
FORMATS = ("table", "csv", "json")
BUCKET = 900  # seconds: UTC buckets small enough for every time zone offset (+05:45...)


def _is_pg() -> bool:
    return isinstance(database.obj, peewee.PostgresqlDatabase)


def _param(value):
    """A datetime as the engine stores it (SQLite: text 'YYYY-MM-DD HH:MM:SS')."""
    if isinstance(value, _dt.datetime) and not _is_pg():
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return value


def _ph() -> str:
    return "%s" if _is_pg() else "?"


# --- the period ---------------------------------------------------------------------------

def _moment(value: str, field: str, tz: zoneinfo.ZoneInfo, end: bool) -> _dt.datetime:
    text = (value or "").strip()
    try:
        if len(text) == 10:
            day = _dt.date.fromisoformat(text)
            local = _dt.datetime.combine(day + _dt.timedelta(days=1 if end else 0), _dt.time())
        else:
            local = _dt.datetime.fromisoformat(text.replace(" ", "T"))
            if local.tzinfo is not None:
                return local.astimezone(_dt.timezone.utc).replace(tzinfo=None)
    except ValueError:
        raise ValidationError(field, value, "must be a date YYYY-MM-DD or a time YYYY-MM-DDTHH:MM") from None
    return local.replace(tzinfo=tz).astimezone(_dt.timezone.utc).replace(tzinfo=None)


def period(tenant: Tenant, start: str | None, end: str | None, today: _dt.date | None = None):
    """[start, end) naive UTC from --from/--to in the tenant's zone (days whole, --to inclusive; default 30 days)."""
    tz = zoneinfo.ZoneInfo(tenant.timezone or "UTC")
    today = today or _dt.datetime.now(tz).date()
    end_utc = _moment(end, "--to", tz, True) if end else _moment(today.isoformat(), "--to", tz, True)
    if start:
        start_utc = _moment(start, "--from", tz, False)
    else:
        local_end = end_utc.replace(tzinfo=_dt.timezone.utc).astimezone(tz)
        first = (local_end - _dt.timedelta(days=30)).date()
        start_utc = _moment(first.isoformat(), "--from", tz, False)
    if start_utc >= end_utc:
        raise ValidationError("--from", start or "", f"must be before --to ({end or today.isoformat()})")
    return start_utc, end_utc


# --- streaming cursor ---------------------------------------------------------------------

_cursor_ids = itertools.count(1)


def stream(sql: str, params: Iterable, size: int = 500) -> Iterator[tuple]:
    """Rows of a query as they come (SQLite: lazy cursor; PostgreSQL: DECLARE ... FETCH)."""
    params = [_param(p) for p in params]
    if not _is_pg():
        cursor = database.execute_sql(sql, params)
        try:
            yield from cursor
        finally:
            cursor.close()
        return
    name = f"fsctl_stream_{next(_cursor_ids)}"
    with database.atomic():
        database.execute_sql(f"DECLARE {name} NO SCROLL CURSOR FOR {sql}", params)
        try:
            while True:
                rows = database.execute_sql(f"FETCH FORWARD {int(size)} FROM {name}").fetchall()
                if not rows:
                    break
                yield from rows
        finally:
            database.execute_sql(f"CLOSE {name}")


# --- statistics ---------------------------------------------------------------------------

def user_stats_sql(tenant_id: int, start, end) -> tuple[str, list]:
    """The per-user aggregate (SQL, parameters): one row per user number."""
    p = _ph()
    sql = (
        "SELECT user_number, SUM(received), SUM(answered), SUM(missed), SUM(placed), SUM(talk_time) "
        f"FROM call_party WHERE tenant_id = {p} AND started_at >= {p} AND started_at < {p} "
        "GROUP BY user_number ORDER BY user_number"
    )
    return sql, [tenant_id, start, end]


def _avg(total, count) -> float:
    return round(total / count, 1) if count else 0.0


def user_stats(tenant: Tenant, start, end, all_users: bool = True) -> Iterator[dict]:
    """Per user: received, answered, missed, placed calls and average incoming talk time."""
    names = dict(User.select(User.number, User.name).where(User.tenant == tenant).tuples())
    sql, params = user_stats_sql(tenant.id, start, end)
    pending = sorted(names) if all_users else []
    i = 0

    def zero(number):
        return dict(zip(USER_COLUMNS, (number, names.get(number, ""), 0, 0, 0, 0, 0.0, 0)))

    for number, received, answered, missed, placed, talk in stream(sql, params):
        while i < len(pending) and pending[i] < number:  # users without calls: zeros, in order
            yield zero(pending[i])
            i += 1
        if i < len(pending) and pending[i] == number:
            i += 1
        answered, talk = int(answered or 0), int(talk or 0)
        yield {
            "user": number, "name": names.get(number, ""), "received": int(received or 0), "answered": answered,
            "missed": int(missed or 0), "placed": int(placed or 0), "avg_talk_time": _avg(talk, answered),
            "talk_time": talk,
        }
    for user in pending[i:]:
        yield zero(user)


def _status_sums(alias: str = "") -> str:
    return ", ".join(f"SUM(CASE WHEN {alias}status = '{s}' THEN 1 ELSE 0 END)" for s in STATUS_COLUMNS)


def keyed_stats(tenant: Tenant, start, end, by: str) -> Iterator[dict]:
    """Per group, queue or DID (`by`): calls by status and talk time."""
    p = _ph()
    key = {
        "groups": "target",
        "queues": "COALESCE(queue, target)",
        "dids": "did",
    }[by]
    where = {
        "groups": "target_kind = 'group'",
        "queues": "(target_kind = 'queue' OR queue IS NOT NULL)",
        "dids": "did IS NOT NULL",
    }[by]
    sql = (
        f"SELECT {key} AS k, COUNT(*), {_status_sums()}, "
        "SUM(CASE WHEN status = 'answered' THEN talk_time ELSE 0 END) "
        f"FROM call_record WHERE tenant_id = {p} AND started_at >= {p} AND started_at < {p} AND {where} "
        f"GROUP BY {key} ORDER BY {key}"
    )
    label = by[:-1]
    for row in stream(sql, [tenant.id, start, end]):
        key_value, calls, *counts, talk = row
        counts = [int(c or 0) for c in counts]
        talk = int(talk or 0)
        out = {label: key_value, "calls": int(calls)}
        out.update(zip(STATUS_COLUMNS, counts))
        out["avg_talk_time"] = _avg(talk, counts[0])
        out["talk_time"] = talk
        yield out


def _buckets(tenant: Tenant, start, end) -> Iterator[tuple]:
    """(UTC bucket start, calls, *status counts, talk time) per 15-minute UTC bucket, from SQL."""
    p = _ph()
    if _is_pg():
        bucket = f"CAST(FLOOR(EXTRACT(EPOCH FROM started_at) / {BUCKET}) AS BIGINT)"
    else:
        bucket = f"(CAST(strftime('%s', started_at) AS INTEGER) / {BUCKET})"
    sql = (
        f"SELECT {bucket} AS b, COUNT(*), {_status_sums()}, "
        "SUM(CASE WHEN status = 'answered' THEN talk_time ELSE 0 END) "
        f"FROM call_record WHERE tenant_id = {p} AND started_at >= {p} AND started_at < {p} "
        f"GROUP BY b ORDER BY b"
    )
    for b, *rest in stream(sql, [tenant.id, start, end]):
        yield (_dt.datetime.fromtimestamp(int(b) * BUCKET, _dt.timezone.utc), *[int(x or 0) for x in rest])


def hourly_stats(tenant: Tenant, start, end) -> Iterator[dict]:
    """Calls by hour of the day (0-23) in the tenant's time zone, over the period."""
    tz = zoneinfo.ZoneInfo(tenant.timezone or "UTC")
    sums = {h: [0] * (len(HOURLY_COLUMNS) - 1) for h in range(24)}
    for moment, *values in _buckets(tenant, start, end):
        acc = sums[moment.astimezone(tz).hour]
        for i, v in enumerate(values):
            acc[i] += v
    for hour in range(24):
        yield dict(zip(HOURLY_COLUMNS, [hour, *sums[hour]]))


def daily_stats(tenant: Tenant, start, end) -> Iterator[dict]:
    """Calls per day of the period in the tenant's time zone (every day, zeros included)."""
    tz = zoneinfo.ZoneInfo(tenant.timezone or "UTC")
    first = start.replace(tzinfo=_dt.timezone.utc).astimezone(tz).date()
    last = (end - _dt.timedelta(seconds=1)).replace(tzinfo=_dt.timezone.utc).astimezone(tz).date()
    day, acc = first, None
    width = len(DAILY_COLUMNS) - 1
    for moment, *values in _buckets(tenant, start, end):
        local = moment.astimezone(tz).date()
        while day < local:
            yield dict(zip(DAILY_COLUMNS, [day.isoformat(), *(acc or [0] * width)]))
            day, acc = day + _dt.timedelta(days=1), None
        acc = acc or [0] * width
        for i, v in enumerate(values):
            acc[i] += v
    while day <= last:
        yield dict(zip(DAILY_COLUMNS, [day.isoformat(), *(acc or [0] * width)]))
        day, acc = day + _dt.timedelta(days=1), None


def report_rows(name: str, tenant: Tenant, start, end) -> tuple[tuple, Iterator[dict]]:
    """(columns, rows) of a statistics report by name (users, groups, queues, dids, hourly, daily)."""
    validate.choice(name, "report", REPORTS)
    if name == "users":
        return USER_COLUMNS, user_stats(tenant, start, end)
    if name in ("groups", "queues", "dids"):
        return (name[:-1],) + KEYED_COLUMNS, keyed_stats(tenant, start, end, name)
    if name == "hourly":
        return HOURLY_COLUMNS, hourly_stats(tenant, start, end)
    return DAILY_COLUMNS, daily_stats(tenant, start, end)


# --- the call log -------------------------------------------------------------------------

def iter_calls(tenant: Tenant, start, end, user: str | None = None, status: str | None = None) -> Iterator[dict]:
    """The call log, oldest first, filtered by user (caller or party) and status; streamed (LOG_COLUMNS)."""
    p = _ph()
    where = [f"c.tenant_id = {p}", f"c.started_at >= {p}", f"c.started_at < {p}"]
    params: list = [tenant.id, start, end]
    if status:
        validate.choice(status, "--status", STATUSES)
    if user:
        user = validate.extension(user, "--user")
        missed = " AND p.missed = 1" if status == "missed" else ""
        where.append(f"EXISTS (SELECT 1 FROM call_party p WHERE p.call_id = c.id AND p.user_number = {p}{missed})")
        params.append(user)
    if status:
        where.append(f"c.status = {p}")
        params.append(status)
    sql = (
        "SELECT c.uuid, c.started_at, c.direction, c.caller, c.caller_name, c.callee, c.did, c.target_kind, "
        "c.target, c.status, c.answered_by, c.missed_by, c.duration, c.talk_time, c.hangup_cause, c.recording_path, "
        f"c.node FROM call_record c WHERE {' AND '.join(where)} ORDER BY c.started_at, c.id"
    )
    for row in stream(sql, params):
        yield {**_row_dict(row), "node": row[16]}


def _row_dict(row) -> dict:
    (uuid, started, direction, caller, name, callee, did, kind, target, status_, answered_by, missed_by,
     duration, talk, cause, recording) = row[:16]
    return {
        "uuid": uuid, "started_at": iso_utc(started), "direction": direction, "caller": caller,
        "caller_name": name, "callee": callee, "did": did, "target": f"{kind}:{target}" if kind else None,
        "status": status_, "answered_by": answered_by, "missed_by": missed_by or "", "duration": duration,
        "talk_time": talk, "hangup_cause": cause, "recording": recording,
    }


def call_log(tenant: Tenant, start, end, users=None, missed_first: bool = False, status: str | None = None,
             limit: int = 50, offset: int = 0) -> list[dict]:
    """One page of the call log, newest first; `users` (numbers) keeps the calls they took part in.

    `missed_first`: the calls that are a missed call (for one of `users`, or for anybody when
    `users` is None) come first. Each row has the CALL_COLUMNS and `missed` (true/false).
    """
    p = _ph()
    where = [f"c.tenant_id = {p}", f"c.started_at >= {p}", f"c.started_at < {p}"]
    params: list = [tenant.id, start, end]
    party_params: list = []
    in_users = ""
    if users is not None:
        numbers = sorted({validate.extension(u, "--user") for u in users})
        if not numbers:
            return []
        in_users = f" AND p.user_number IN ({', '.join([p] * len(numbers))})"
        party_params = numbers
        where.append(f"EXISTS (SELECT 1 FROM call_party p WHERE p.call_id = c.id{in_users})")
        params += numbers
    if status:
        where.append(f"c.status = {p}")
        params.append(validate.choice(status, "--status", STATUSES))
    limit = validate.integer(limit, "--limit", low=1, high=10000)
    offset = validate.integer(offset, "--offset", low=0, high=10**9)
    missed = f"CASE WHEN EXISTS (SELECT 1 FROM call_party p WHERE p.call_id = c.id AND p.missed = 1{in_users}) " \
             "THEN 1 ELSE 0 END"
    order = "m DESC, c.started_at DESC, c.id DESC" if missed_first else "c.started_at DESC, c.id DESC"
    sql = (
        "SELECT c.uuid, c.started_at, c.direction, c.caller, c.caller_name, c.callee, c.did, c.target_kind, "
        "c.target, c.status, c.answered_by, c.missed_by, c.duration, c.talk_time, c.hangup_cause, c.recording_path, "
        f"{missed} AS m FROM call_record c WHERE {' AND '.join(where)} ORDER BY {order} "
        f"LIMIT {int(limit)} OFFSET {int(offset)}"
    )
    rows = database.execute_sql(sql, [_param(v) for v in party_params + params]).fetchall()
    return [{**_row_dict(r), "missed": bool(r[16])} for r in rows]


USER_DAILY_COLUMNS = ("date", "received", "answered", "missed", "placed", "talk_time")


def user_daily(tenant: Tenant, start, end, number: str) -> list[dict]:
    """One user's received, answered, missed, placed calls and talk time per day (tenant time zone)."""
    number = validate.extension(number, "--user")
    tz = zoneinfo.ZoneInfo(tenant.timezone or "UTC")
    p = _ph()
    if _is_pg():
        bucket = f"CAST(FLOOR(EXTRACT(EPOCH FROM started_at) / {BUCKET}) AS BIGINT)"
    else:
        bucket = f"(CAST(strftime('%s', started_at) AS INTEGER) / {BUCKET})"
    sql = (f"SELECT {bucket} AS b, SUM(received), SUM(answered), SUM(missed), SUM(placed), SUM(talk_time) "
           f"FROM call_party WHERE tenant_id = {p} AND user_number = {p} AND started_at >= {p} AND started_at < {p} "
           "GROUP BY b ORDER BY b")
    first = start.replace(tzinfo=_dt.timezone.utc).astimezone(tz).date()
    last = (end - _dt.timedelta(seconds=1)).replace(tzinfo=_dt.timezone.utc).astimezone(tz).date()
    days = {}
    day = first
    while day <= last:
        days[day] = [0] * 5
        day += _dt.timedelta(days=1)
    for b, *values in stream(sql, [tenant.id, number, start, end]):
        local = _dt.datetime.fromtimestamp(int(b) * BUCKET, _dt.timezone.utc).astimezone(tz).date()
        acc = days.setdefault(local, [0] * 5)
        for i, v in enumerate(values):
            acc[i] += int(v or 0)
    return [dict(zip(USER_DAILY_COLUMNS, [d.isoformat(), *days[d]])) for d in sorted(days)]


# --- writers ------------------------------------------------------------------------------

def write_csv(rows: Iterable[dict], columns: tuple, out: IO[str]) -> int:
    """Rows as CSV with a header line, written as they come; returns the row count."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    n = 0
    for row in rows:
        writer.writerow(["" if row.get(c) is None else row.get(c) for c in columns])
        n += 1
    return n


def write_json(rows: Iterable[dict], columns: tuple, out: IO[str]) -> int:
    """Rows as a JSON list of objects (keys in column order), written as they come."""
    out.write("[")
    n = 0
    for row in rows:
        out.write(("\n  " if n == 0 else ",\n  ") + json.dumps({c: row.get(c) for c in columns}, ensure_ascii=False))
        n += 1
    out.write("\n]\n" if n else "]\n")
    return n
