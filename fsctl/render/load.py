"""Loading what the renderer needs from the database: every tenant's rows as plain data, in batches.

`load_tenants` reads tenants `batch` at a time with a fixed set of queries per batch (the
count is checked by tests/fsctl/render/test_render.py's query counter), whatever the number of
tenants; `public_dids` streams the public context's DIDs.
"""

from __future__ import annotations

import hashlib
import itertools
import operator
from collections import namedtuple
from datetime import date

from ..model import (
    BlacklistEntry,
    Conference,
    Did,
    Group,
    GroupMember,
    Holiday,
    Ivr,
    IvrEntry,
    Media,
    Queue,
    QueueAgent,
    Tenant,
    TimeRange,
    TimeRule,
    User,
)

BATCH = 50  # tenants loaded per round of queries (memory: one batch's rows, whatever the number of tenants)
QUERIES_PER_BATCH = 14  # the promise: one query per kind of row (_tenant_queries), whatever the batch's size
_TENANT = -7_000_000_000  # prepared SQL's tenant ids are _TENANT, _TENANT - 1...: replaced by the real ones


def _tenant_queries(ids):
    """name -> peewee query over the tenants `ids`; every row starts with its tenant's id."""
    return {
        # Only what the contexts read (a tenant has many users: every column costs).
        "users": User.select(User.tenant, *(getattr(User, f) for f in UserRow._fields))
        .where(User.tenant.in_(ids))
        .order_by(User.tenant, User.number),
        "groups": Group.select(Group.tenant, *Group._meta.sorted_fields)
        .where(Group.tenant.in_(ids))
        .order_by(Group.tenant, Group.number),
        "members": GroupMember.select(User.tenant, GroupMember.group, User.number)
        .join(User)
        .where(User.tenant.in_(ids))
        .order_by(User.tenant, GroupMember.group, GroupMember.position),
        "dids": Did.select(Did.tenant, Did.number, Did.name, Did.destination)
        .where(Did.tenant.in_(ids))
        .order_by(Did.tenant, Did.number),
        "media": Media.select(Media.tenant, Media.name, Media.path).where(Media.tenant.in_(ids)).order_by(Media.tenant),
        "ivrs": Ivr.select(Ivr.tenant, *Ivr._meta.sorted_fields)
        .where(Ivr.tenant.in_(ids))
        .order_by(Ivr.tenant, Ivr.number),
        "entries": IvrEntry.select(Ivr.tenant, IvrEntry.ivr, IvrEntry.digits, IvrEntry.destination)
        .join(Ivr)
        .where(Ivr.tenant.in_(ids))
        .order_by(Ivr.tenant, IvrEntry.ivr, IvrEntry.digits),
        "rules": TimeRule.select(TimeRule.tenant, *TimeRule._meta.sorted_fields)
        .where(TimeRule.tenant.in_(ids))
        .order_by(TimeRule.tenant, TimeRule.name),
        "ranges": TimeRange.select(TimeRule.tenant, TimeRange.rule, TimeRange.weekdays, TimeRange.start, TimeRange.end)
        .join(TimeRule)
        .where(TimeRule.tenant.in_(ids))
        .order_by(TimeRule.tenant, TimeRange.rule, TimeRange.id),
        "holidays": Holiday.select(
            TimeRule.tenant, Holiday.rule, Holiday.start_date, Holiday.end_date, Holiday.start_time, Holiday.end_time
        )
        .join(TimeRule)
        .where(TimeRule.tenant.in_(ids))
        .order_by(TimeRule.tenant, Holiday.rule, Holiday.start_date),
        "queues": Queue.select(Queue.tenant, *Queue._meta.sorted_fields)
        .where(Queue.tenant.in_(ids))
        .order_by(Queue.tenant, Queue.number),
        "agents": QueueAgent.select(User.tenant, QueueAgent.queue, User.number, QueueAgent.tier)
        .join(User)
        .where(User.tenant.in_(ids))
        .order_by(User.tenant, QueueAgent.queue, QueueAgent.tier, User.number),
        "conferences": Conference.select(Conference.tenant, *Conference._meta.sorted_fields)
        .where(Conference.tenant.in_(ids))
        .order_by(Conference.tenant, Conference.number),
        "blacklist": BlacklistEntry.select(BlacklistEntry.tenant, BlacklistEntry.pattern, BlacklistEntry.match)
        .where(BlacklistEntry.tenant.in_(ids))
        .order_by(BlacklistEntry.tenant, BlacklistEntry.match, BlacklistEntry.pattern),
    }


_SQL_CACHE: dict = {}


def _prepared(database, count):
    """{name: (sql, params, column names after the tenant id)} for `count` tenants on this engine."""
    key = (type(getattr(database, "obj", None) or database), count)  # the engine behind the proxy
    if key not in _SQL_CACHE:
        prepared = {}
        for name, query in _tenant_queries([_TENANT - i for i in range(count)]).items():
            sql, params = query.sql()
            columns = [getattr(c, "name", None) or getattr(c, "_alias", None) for c in query._returning[1:]]
            prepared[name] = (sql, params, columns)
        _SQL_CACHE[key] = prepared
    return _SQL_CACHE[key]


def _bind(params, ids):
    """The parameters with the placeholder tenant ids replaced by `ids` (in their order)."""
    last = _TENANT - len(ids)
    return [ids[_TENANT - p] if type(p) is int and last < p <= _TENANT else p for p in params]


# A user row as the contexts read it (the columns of the "users" query, in order).
UserRow = namedtuple(
    "UserRow",
    "number name sip_password email vm_enabled vm_pin record no_answer_timeout "
    "caller_id_number toll outbound_name " + " ".join(User.FORWARD_FIELDS),
)


_first = operator.itemgetter(0)


def _as_date(value):
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def load_tenants(tenants, batch: int = BATCH):
    """(tenant, its configuration) for each of `tenants` (Tenant rows), in order: rows as plain dicts,
    users as UserRow. Prepared SQL (no model objects, no SQL building) for `batch` tenants at a
    time: QUERIES_PER_BATCH (fourteen) queries per batch, not per tenant (PostgreSQL answers each
    in ~0.3 ms)."""
    database = Tenant._meta.database
    tenants = iter(tenants)
    while chunk := list(itertools.islice(tenants, batch)):
        ids = [t.id for t in chunk]
        rows = {tid: {} for tid in ids}
        for name, (sql, params, columns) in _prepared(database, len(ids)).items():
            cursor = database.execute_sql(sql, _bind(params, ids))
            for tid, found in itertools.groupby(cursor.fetchall(), key=_first):
                if name == "users":
                    rows[tid][name] = [tuple.__new__(UserRow, row[1:]) for row in found]
                else:
                    rows[tid][name] = [dict(zip(columns, row[1:])) for row in found]
        for tenant in chunk:
            yield tenant, _tenant_data(tenant, rows[tenant.id])


def load_tenant(tenant: Tenant) -> dict:
    """One tenant's configuration (load_tenants)."""
    return next(load_tenants([tenant]))[1]


def _tenant_data(tenant, rows):
    rows = {
        name: rows.get(name, [])
        for name in (
            "users",
            "groups",
            "members",
            "dids",
            "media",
            "ivrs",
            "entries",
            "rules",
            "ranges",
            "holidays",
            "queues",
            "agents",
            "conferences",
            "blacklist",
        )
    }
    by = {}
    for m in rows["members"]:
        by.setdefault(("g", m["group"]), []).append(m["number"])
    for e in rows["entries"]:
        by.setdefault(("i", e["ivr"]), []).append((e["digits"], e["destination"]))
    for r in rows["ranges"]:
        by.setdefault(("r", r["rule"]), []).append((r["weekdays"], r["start"], r["end"]))
    for h in rows["holidays"]:
        by.setdefault(("h", h["rule"]), []).append(
            (_as_date(h["start_date"]), _as_date(h["end_date"]), h["start_time"], h["end_time"])
        )
    for a in rows["agents"]:
        by.setdefault(("q", a["queue"]), []).append((a["number"], a["tier"]))
    return {
        "tenant": {
            "domain": tenant.domain,
            "name": tenant.name,
            "timezone": tenant.timezone,
            "state": tenant.state,
            "fallback": tenant.fallback,
            "gateway": tenant.gateway,
            "revision": tenant.revision,
            "outbound_name": tenant.outbound_name,
        },
        "users": rows["users"],
        "groups": [dict(g, members=by.get(("g", g["id"]), [])) for g in rows["groups"]],
        "dids": rows["dids"],
        "media": {m["name"]: m["path"] for m in rows["media"]},
        "ivrs": [dict(i, entries=by.get(("i", i["id"]), [])) for i in rows["ivrs"]],
        "time_rules": [
            dict(r, ranges=by.get(("r", r["id"]), []), holidays=by.get(("h", r["id"]), [])) for r in rows["rules"]
        ],
        "queues": [dict(q, agents=by.get(("q", q["id"]), [])) for q in rows["queues"]],
        "conferences": rows["conferences"],
        "blacklist": [(b["pattern"], b["match"]) for b in rows["blacklist"]],
    }


def active_tenants(node=None):
    """Active tenants by domain (suspended tenants are never rendered); with `node`, those it holds
    (as home, standby or draining node)."""
    query = Tenant.select().where(Tenant.state == "active")
    if node is not None:
        query = query.where((Tenant.home_node == node) | (Tenant.standby_node == node) | (Tenant.draining_node == node))
    return query.order_by(Tenant.domain)


def plain_rows(query) -> list:
    """A query's rows as plain tuples straight from the cursor, without peewee's per-row
    conversion: for text and integer columns, which the driver already returns as such."""
    return [tuple(row) for row in query.model._meta.database.execute_sql(*query.sql()).fetchall()]


def _public_query(node=None):
    query = Did.select(Did.number, Did.name, Did.destination, Tenant.domain, Tenant.timezone).join(Tenant)
    if node is None:
        return query.where(Tenant.state == "active").order_by(Did.number)
    return query.where(Tenant.id.in_(active_tenants(node).select(Tenant.id).order_by())).order_by(Did.number)


def public_source_digest(watchdog: int = 6, node=None) -> str:
    """A digest of everything dialplan/public.xml is made of (to skip re-rendering it unchanged)."""
    text = "\n".join(map(repr, plain_rows(_public_query(node))))
    return hashlib.sha256(f"watchdog={watchdog}\n{text}".encode()).hexdigest()


def public_dids(node=None):
    """Every DID of an active tenant (of those `node` holds), with what the public context needs, by
    number (a cursor)."""
    return _public_query(node).dicts().iterator()
