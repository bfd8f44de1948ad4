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
import functools
import io
import itertools
import json
import sqlite3
import zoneinfo
from typing import IO, Iterable, Iterator

import peewee

from .. import validate
from ..db import database
from ..errors import ValidationError
from ..model import Tenant, User, iso_utc as iso_utc  # iso_utc: the web's API writes times with it

STATUS_COLUMNS = ("answered", "missed", "abandoned", "busy", "failed", "refused")
USER_COLUMNS = ("user", "name", "received", "answered", "missed", "placed", "avg_talk_time", "talk_time")
KEYED_COLUMNS = ("calls",) + STATUS_COLUMNS + ("avg_talk_time", "talk_time")
HOURLY_COLUMNS = ("hour", "calls") + STATUS_COLUMNS + ("talk_time",)
DAILY_COLUMNS = ("date", "calls") + STATUS_COLUMNS + ("talk_time",)
CALL_COLUMNS = (
    "uuid",
    "started_at",
    "direction",
    "caller",
    "caller_name",
    "callee",
    "did",
    "target",
    "status",
    "answered_by",
    "missed_by",
    "duration",
    "talk_time",
    "hangup_cause",
    "recording",
)
# The operator's call log (`fsctl cdr list`) also says which node took each call (None: the single FreeSWITCH).
LOG_COLUMNS = CALL_COLUMNS + ("node",)
REPORTS = ("users", "groups", "queues", "dids", "hourly", "daily")
FORMATS = ("table", "csv", "json")
BUCKET = 900  # seconds: UTC buckets small enough for every time zone offset (+05:45...)


def _statuses() -> tuple:
    """The call statuses (their home: services.cdr.classify; the call records' package is loaded
    only by the exports that filter on a status, not by every statistic)."""
    from .cdr import STATUSES

    return STATUSES


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


def stream_batches(sql: str, params: Iterable, size: int = 1000) -> Iterator[list]:
    """Rows of a query in lists of up to `size`, as they come (SQLite: fetchmany; PostgreSQL: DECLARE ... FETCH)."""
    params = [_param(p) for p in params]
    if not _is_pg():
        cursor = database.execute_sql(sql, params)
        try:
            while batch := cursor.fetchmany(size):
                yield batch
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
                yield rows
        finally:
            database.execute_sql(f"CLOSE {name}")


def stream(sql: str, params: Iterable, size: int = 500) -> Iterator[tuple]:
    """Rows of a query as they come (SQLite: lazy cursor; PostgreSQL: DECLARE ... FETCH)."""
    for batch in stream_batches(sql, params, size):
        yield from batch


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


def user_rows(tenant: Tenant, start, end, all_users: bool = True) -> Iterator[tuple]:
    """user_stats as tuples in USER_COLUMNS order (what CSV writes)."""
    names = dict(User.select(User.number, User.name).where(User.tenant == tenant).tuples())
    sql, params = user_stats_sql(tenant.id, start, end)
    pending = sorted(names) if all_users else []
    i = 0
    for number, received, answered, missed, placed, talk in stream(sql, params):
        while i < len(pending) and pending[i] < number:  # users without calls: zeros, in order
            yield (pending[i], names.get(pending[i], ""), 0, 0, 0, 0, 0.0, 0)
            i += 1
        if i < len(pending) and pending[i] == number:
            i += 1
        answered, talk = int(answered or 0), int(talk or 0)
        yield (
            number,
            names.get(number, ""),
            int(received or 0),
            answered,
            int(missed or 0),
            int(placed or 0),
            _avg(talk, answered),
            talk,
        )
    for user in pending[i:]:
        yield (user, names.get(user, ""), 0, 0, 0, 0, 0.0, 0)


def user_stats(tenant: Tenant, start, end, all_users: bool = True) -> Iterator[dict]:
    """Per user: received, answered, missed, placed calls and average incoming talk time."""
    return _dicts(USER_COLUMNS, user_rows(tenant, start, end, all_users))


def _dicts(columns: tuple, rows: Iterable[tuple]) -> Iterator[dict]:
    return map(dict, map(functools.partial(zip, columns), rows))


def _status_sums(alias: str = "") -> str:
    return ", ".join(f"SUM(CASE WHEN {alias}status = '{s}' THEN 1 ELSE 0 END)" for s in STATUS_COLUMNS)


_KEYS = {  # by: (the key, the calls it counts)
    "groups": ("target", "target_kind = 'group'"),
    "queues": ("COALESCE(queue, target)", "(target_kind = 'queue' OR queue IS NOT NULL)"),
    "dids": ("did", "did IS NOT NULL"),
}
_COUNTS = f"COUNT(*), {_status_sums()}, SUM(CASE WHEN status = 'answered' THEN talk_time ELSE 0 END)"


def _keyed_row(key, calls, *counts) -> tuple:
    """A keyed row (key, calls, *status counts, avg talk time, talk time) from its sums."""
    *counts, talk = [int(c or 0) for c in counts]
    return (key, int(calls), *counts, _avg(talk, counts[0]), talk)


def keyed_rows(tenant: Tenant, start, end, by: str) -> Iterator[tuple]:
    """keyed_stats as tuples: (key, calls, *status counts, avg talk time, talk time)."""
    p = _ph()
    key, where = _KEYS[by]
    sql = (
        f"SELECT {key} AS k, {_COUNTS} "
        f"FROM call_record WHERE tenant_id = {p} AND started_at >= {p} AND started_at < {p} AND {where} "
        f"GROUP BY {key} ORDER BY {key}"
    )
    for row in stream(sql, [tenant.id, start, end]):
        yield _keyed_row(*row)


def keyed_stats(tenant: Tenant, start, end, by: str) -> Iterator[dict]:
    """Per group, queue or DID (`by`): calls by status and talk time."""
    return _dicts((by[:-1],) + KEYED_COLUMNS, keyed_rows(tenant, start, end, by))


def _bucket_sql() -> str:
    """The 15-minute UTC bucket of started_at (an integer), in the engine's SQL."""
    if _is_pg():
        return f"CAST(FLOOR(EXTRACT(EPOCH FROM started_at) / {BUCKET}) AS BIGINT)"
    if sqlite3.sqlite_version_info >= (3, 38):  # unixepoch() parses the text once, strftime('%s') twice as slow
        return f"(unixepoch(started_at) / {BUCKET})"
    return f"(CAST(strftime('%s', started_at) AS INTEGER) / {BUCKET})"


def _buckets(tenant: Tenant, start, end) -> Iterator[tuple]:
    """(UTC bucket number, calls, *status counts, talk time) per 15-minute UTC bucket, in order, from SQL."""
    p = _ph()
    sql = (
        f"SELECT {_bucket_sql()} AS b, {_COUNTS} "
        f"FROM call_record WHERE tenant_id = {p} AND started_at >= {p} AND started_at < {p} "
        f"GROUP BY b ORDER BY b"
    )
    for b, *rest in stream(sql, [tenant.id, start, end]):
        yield (int(b), *[int(x or 0) for x in rest])


def _local(tz: zoneinfo.ZoneInfo, bucket: int) -> _dt.datetime:
    return _dt.datetime.fromtimestamp(bucket * BUCKET, tz)


def _hourly(tz: zoneinfo.ZoneInfo, buckets: Iterable[tuple]) -> list[tuple]:
    sums = [[0] * (len(HOURLY_COLUMNS) - 1) for _ in range(24)]
    for b, *values in buckets:
        acc = sums[_local(tz, b).hour]
        for i, v in enumerate(values):
            acc[i] += v
    return [(hour, *sums[hour]) for hour in range(24)]


def _daily(tz: zoneinfo.ZoneInfo, start, end, buckets: Iterable[tuple]) -> Iterator[tuple]:
    first = start.replace(tzinfo=_dt.timezone.utc).astimezone(tz).date()
    last = (end - _dt.timedelta(seconds=1)).replace(tzinfo=_dt.timezone.utc).astimezone(tz).date()
    day, acc = first, None
    width = len(DAILY_COLUMNS) - 1
    for b, *values in buckets:
        local = _local(tz, b).date()
        while day < local:
            yield (day.isoformat(), *(acc or [0] * width))
            day, acc = day + _dt.timedelta(days=1), None
        acc = acc or [0] * width
        for i, v in enumerate(values):
            acc[i] += v
    while day <= last:
        yield (day.isoformat(), *(acc or [0] * width))
        day, acc = day + _dt.timedelta(days=1), None


def _zone(tenant: Tenant) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(tenant.timezone or "UTC")


def hourly_rows(tenant: Tenant, start, end) -> Iterator[tuple]:
    """hourly_stats as tuples in HOURLY_COLUMNS order."""
    return iter(_hourly(_zone(tenant), _buckets(tenant, start, end)))


def hourly_stats(tenant: Tenant, start, end) -> Iterator[dict]:
    """Calls by hour of the day (0-23) in the tenant's time zone, over the period."""
    return _dicts(HOURLY_COLUMNS, hourly_rows(tenant, start, end))


def daily_rows(tenant: Tenant, start, end) -> Iterator[tuple]:
    """daily_stats as tuples in DAILY_COLUMNS order."""
    return _daily(_zone(tenant), start, end, _buckets(tenant, start, end))


def daily_stats(tenant: Tenant, start, end) -> Iterator[dict]:
    """Calls per day of the period in the tenant's time zone (every day, zeros included)."""
    return _dicts(DAILY_COLUMNS, daily_rows(tenant, start, end))


def call_figures_sql(tenant_id: int, start, end) -> tuple[str, list]:
    """call_figures' query (SQL, parameters): the calls by 15-minute bucket, group, queue and DID."""
    p = _ph()
    flags = [where for _, where in _KEYS.values()]
    keys = [f"CASE WHEN {where} THEN {key} END" for key, where in _KEYS.values()]
    sql = (
        f"SELECT {_bucket_sql()} AS b, {', '.join(flags)}, {', '.join(keys)}, {_COUNTS} "
        f"FROM call_record WHERE tenant_id = {p} AND started_at >= {p} AND started_at < {p} "
        f"GROUP BY b, {', '.join(flags)}, {', '.join(keys)}"
    )
    return sql, [tenant_id, start, end]


def call_figures(tenant: Tenant, start, end) -> dict:
    """daily, hourly, groups, queues and dids (lists of dicts) from one scan of the period's calls.

    One query groups the calls by 15-minute bucket and by (group, queue, DID); its rows (at
    most buckets x distinct routes) are folded here into the five reports, which then equal
    daily_stats, hourly_stats and keyed_stats (keys ordered by code point, NULL as each engine
    orders it).
    """
    sql, params = call_figures_sql(tenant.id, start, end)
    buckets: dict[int, list] = {}
    keyed: dict[str, dict] = {by: {} for by in _KEYS}
    for b, is_group, is_queue, is_did, group, queue, did, *values in stream(sql, params, 5000):
        values = [int(v or 0) for v in values]
        _add(buckets, int(b), values)
        if is_group:
            _add(keyed["groups"], group, values)
        if is_queue:
            _add(keyed["queues"], queue, values)
        if is_did:
            _add(keyed["dids"], did, values)
    ordered = [(b, *buckets[b]) for b in sorted(buckets)]
    tz = _zone(tenant)
    figures = {
        "daily": list(_dicts(DAILY_COLUMNS, _daily(tz, start, end, ordered))),
        "hourly": list(_dicts(HOURLY_COLUMNS, _hourly(tz, ordered))),
    }
    for by, sums in keyed.items():
        nulls = [None] if None in sums else []
        order = sorted(k for k in sums if k is not None)
        order = order + nulls if _is_pg() else nulls + order  # as ORDER BY puts NULL on each engine
        figures[by] = list(_dicts((by[:-1],) + KEYED_COLUMNS, (_keyed_row(k, *sums[k]) for k in order)))
    return figures


def _add(sums: dict, key, values: list) -> None:
    acc = sums.get(key)
    if acc is None:
        sums[key] = list(values)
    else:
        for i, v in enumerate(values):
            acc[i] += v


def report_tuples(name: str, tenant: Tenant, start, end) -> tuple[tuple, Iterator[tuple]]:
    """(columns, rows as tuples in column order) of a statistics report by name."""
    validate.choice(name, "report", REPORTS)
    if name == "users":
        return USER_COLUMNS, user_rows(tenant, start, end)
    if name in ("groups", "queues", "dids"):
        return (name[:-1],) + KEYED_COLUMNS, keyed_rows(tenant, start, end, name)
    if name == "hourly":
        return HOURLY_COLUMNS, hourly_rows(tenant, start, end)
    return DAILY_COLUMNS, daily_rows(tenant, start, end)


def report_rows(name: str, tenant: Tenant, start, end) -> tuple[tuple, Iterator[dict]]:
    """(columns, rows) of a statistics report by name (users, groups, queues, dids, hourly, daily)."""
    columns, rows = report_tuples(name, tenant, start, end)
    return columns, _dicts(columns, rows)


# --- the call log -------------------------------------------------------------------------


def _iso_sql(column: str) -> str:
    """A stored naive-UTC time as ISO 8601 with Z, to the second, in SQL (what model.iso_utc makes of it)."""
    if _is_pg():
        return f"""to_char({column}, 'YYYY-MM-DD"T"HH24:MI:SS"Z"')"""
    # SQLite keeps the text 'YYYY-MM-DD HH:MM:SS[.ffffff]' that Python's datetime gave it
    return f"substr({column}, 1, 10) || 'T' || substr({column}, 12, 8) || 'Z'"


def call_rows_sql(tenant_id: int, start, end, user: str | None = None, status: str | None = None, node: bool = False):
    """The call log's query (SQL, parameters): tuples in CALL_COLUMNS order (LOG_COLUMNS with
    `node`: the node each call ran on too), formatted by the database."""
    p = _ph()
    where = [f"c.tenant_id = {p}", f"c.started_at >= {p}", f"c.started_at < {p}"]
    params: list = [tenant_id, start, end]
    if status:
        validate.choice(status, "--status", _statuses())
    if user:
        user = validate.extension(user, "--user")
        missed = " AND p.missed = 1" if status == "missed" else ""
        where.append(f"EXISTS (SELECT 1 FROM call_party p WHERE p.call_id = c.id AND p.user_number = {p}{missed})")
        params.append(user)
    if status:
        where.append(f"c.status = {p}")
        params.append(status)
    columns = _call_columns_sql() + (", c.node" if node else "")
    sql = f"SELECT {columns} FROM call_record c WHERE {' AND '.join(where)} ORDER BY c.started_at, c.id"
    return sql, params


def _call_columns_sql() -> str:
    """The CALL_COLUMNS of call_record c, formatted by the database as call_dict spells them."""
    # target: "kind:target" (None without a kind; a missing target prints None)
    return (
        f"c.uuid, {_iso_sql('c.started_at')}, c.direction, c.caller, c.caller_name, c.callee, c.did, "
        "CASE WHEN c.target_kind IS NULL OR c.target_kind = '' THEN NULL "
        "ELSE c.target_kind || ':' || COALESCE(c.target, 'None') END, "
        "c.status, c.answered_by, COALESCE(c.missed_by, ''), c.duration, c.talk_time, c.hangup_cause, c.recording_path"
    )


def call_rows(
    tenant: Tenant, start, end, user: str | None = None, status: str | None = None, size: int = 500, node: bool = False
) -> Iterator[list]:
    """The call log as lists of tuples in CALL_COLUMNS order (LOG_COLUMNS with `node`), formatted
    by the database, streamed."""
    sql, params = call_rows_sql(tenant.id, start, end, user, status, node=node)
    return stream_batches(sql, params, size)


def iter_calls(tenant: Tenant, start, end, user: str | None = None, status: str | None = None) -> Iterator[dict]:
    """The call log, oldest first, filtered by user (caller or party) and status; streamed (LOG_COLUMNS)."""
    batches = call_rows(tenant, start, end, user, status, size=500, node=True)
    return _dicts(LOG_COLUMNS, itertools.chain.from_iterable(batches))


def call_log(
    tenant: Tenant,
    start,
    end,
    users=None,
    missed_first: bool = False,
    status: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[dict]:
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
        params.append(validate.choice(status, "--status", _statuses()))
    limit = validate.integer(limit, "--limit", low=1, high=10000)
    offset = validate.integer(offset, "--offset", low=0, high=10**9)
    missed = (
        f"CASE WHEN EXISTS (SELECT 1 FROM call_party p WHERE p.call_id = c.id AND p.missed = 1{in_users}) "
        "THEN 1 ELSE 0 END"
    )
    order = "m DESC, c.started_at DESC, c.id DESC" if missed_first else "c.started_at DESC, c.id DESC"
    sql = (
        f"SELECT {_call_columns_sql()}, {missed} AS m FROM call_record c WHERE {' AND '.join(where)} "
        f"ORDER BY {order} LIMIT {int(limit)} OFFSET {int(offset)}"
    )
    rows = database.execute_sql(sql, [_param(v) for v in party_params + params]).fetchall()
    width = len(CALL_COLUMNS)
    return [{**dict(zip(CALL_COLUMNS, r[:width])), "missed": bool(r[width])} for r in rows]


USER_DAILY_COLUMNS = ("date", "received", "answered", "missed", "placed", "talk_time")


def user_daily(tenant: Tenant, start, end, number: str) -> list[dict]:
    """One user's received, answered, missed, placed calls and talk time per day (tenant time zone)."""
    number = validate.extension(number, "--user")
    tz = zoneinfo.ZoneInfo(tenant.timezone or "UTC")
    p = _ph()
    sql = (
        f"SELECT {_bucket_sql()} AS b, SUM(received), SUM(answered), SUM(missed), SUM(placed), SUM(talk_time) "
        f"FROM call_party WHERE tenant_id = {p} AND user_number = {p} AND started_at >= {p} AND started_at < {p} "
        "GROUP BY b ORDER BY b"
    )
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
    """Rows (dicts) as CSV with a header line, written as they come; returns the row count."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    n = 0
    for row in rows:
        writer.writerow(["" if row.get(c) is None else row.get(c) for c in columns])
        n += 1
    return n


def write_csv_batches(batches: Iterable[list], columns: tuple, out: IO[str]) -> int:
    """Lists of tuples (in column order; None is written empty) as CSV with a header line; returns the row count.

    Each batch is formatted by csv.writer.writerows into one string and written at once.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    n = 0
    for batch in batches:
        writer.writerows(batch)
        n += len(batch)
        out.write(buffer.getvalue())
        buffer.seek(0)
        buffer.truncate()
    out.write(buffer.getvalue())
    return n


def batched(rows: Iterable[tuple], size: int = 500) -> Iterator[list]:
    """Tuples in lists of up to `size` (for write_csv_batches)."""
    rows = iter(rows)
    while batch := list(itertools.islice(rows, size)):
        yield batch


def write_json(rows: Iterable[dict], columns: tuple, out: IO[str]) -> int:
    """Rows as a JSON list of objects (keys in column order), written as they come."""
    out.write("[")
    n = 0
    for row in rows:
        out.write(("\n  " if n == 0 else ",\n  ") + json.dumps({c: row.get(c) for c in columns}, ensure_ascii=False))
        n += 1
    out.write("\n]\n" if n else "]\n")
    return n
