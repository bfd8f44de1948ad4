"""Render the FreeSWITCH XML of every tenant from the model, streamed file by file.

Shape (house style, after xivo-confgend): `load_tenant` reads one tenant's rows as plain
dicts; pure `build_<thing>_context(...) -> dict` functions turn rows into everything a
template prints; the Jinja2 templates (templates/, overridable by `Settings.templates_dir`)
only loop and print; `render_file` streams a template into a file and hashes it on the way.

Files, relative to the output folder (`Settings.conf_dir` for `fsctl apply`):

    directory/<domain>.xml          <include><domain> users with a1-hash      (directory section)
    dialplan/<domain>.xml           <include><context name="<domain>">      (dialplan section)
    dialplan/public.xml             <include><context name="fsctl-public">, every DID
    ivr/<domain>.xml                <include><menu name="N@<domain>">       (ivr.conf <menus>)
    conference/<domain>.xml         <include><profile name="<domain>-N">    (conference.conf <profiles>)
    callcenter/queues/<domain>.xml  <include><queue name="N@<domain>">      (callcenter.conf <queues>)
    callcenter/agents/<domain>.xml  <include><agent name="U@<domain>">      (callcenter.conf <agents>)
    callcenter/tiers/<domain>.xml   <include><tier agent=... queue=...>     (callcenter.conf <tiers>)

The IVR, conference and callcenter files exist only for tenants that have such things.
Suspended tenants get no files at all (their phones cannot register, their numbers are not
routed). Where each feature runs:

- XML only: registration (a1-hash), calls between plain users (no forwarding, no recording),
  voicemail, feature codes *97/*98, IVR menus, queues, conferences, outbound calls with the
  tenant's caller ID and the user's toll class, time rules reached from XML (IVR digits).
- Call-logic service (fs_scripts): calls to groups and to users with forwarding or recording,
  and every call on a DID (blacklist, phonebook caller name, the DID's scenario). The dialplan
  sets `fsctl_tenant`, `fsctl_did`, `timezone` and parks the call (the service sees
  CHANNEL_PARK).

Bounded dead air when the service is down. In FreeSWITCH's switch_ivr_park()
(src/switch_ivr.c) the `park_timeout` variable ("SECONDS[:CAUSE]") is read once when the call
parks and, when it expires, the channel is *hung up* with CAUSE (NORMAL_CLEARING by default):
park never returns into the dialplan, so park_timeout cannot lead to a fallback. Instead the
hand-off schedules a transfer before parking: `sched_transfer +N fsctl-fallback XML <domain>`
(switch_ivr_schedule_transfer() in src/switch_ivr_async.c registers the task with the call's
UUID as its group). If nobody takes the call within N seconds (`Settings.handoff_watchdog`),
FreeSWITCH transfers it to the `fsctl-fallback` extension, which sets `fsctl_in_fallback=true`
and resumes the call where it was going (`fsctl_resume`: the group, user, time rule... it was
handed over for), else goes to the tenant's fallback destination, in pure XML. In fallback mode
nothing is parked again: the users' hand-off extensions (`scenario-users`, `recorded-caller`)
do not match, so the call falls through to the bundles that ring every user straight, and a
group's extension bridges its members directly (no forwarding, fixed order: degraded, but the
phones ring). The service,
when it takes a call, first runs the `sched_cancel` application (mod_dptools: with no argument
it deletes the tasks of the channel's own UUID group).

Recorded users' own calls (R-REC) are handed over too: a recorded caller dialling a plain
user or an outside number (after the toll check) parks with `fsctl_outbound=true` for the
latter, and the service announces, records and bridges.

Tenant text (names, e-mail, paths) is XML-escaped by Jinja's autoescape and passed through
`xml_text` first: `$` becomes the full-width dollar (FACTS.md: `${...}` is expanded at call
time, `$${...}` at load time), control characters are dropped, and `X-PRE-PROCESS` (which the
preprocessor honours even in comments) gets non-breaking hyphens.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.resources
import itertools
import operator
import os
import re
import tempfile
from collections import namedtuple
from datetime import date, timedelta
from pathlib import Path

import jinja2
import markupsafe

from ..calllogic.callconfig import Destination, canonical_number
from ..calllogic.plan import neutralise
from ..errors import OperationError
from ..freeswitch import chanvars as cv
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

# Hand-off variables this renderer defines (besides fsctl_tenant / fsctl_did of chanvars).
FSCTL_WATCHDOG = "fsctl_watchdog"  # seconds until the watchdog transfer to fsctl-fallback
FSCTL_IN_FALLBACK = "fsctl_in_fallback"  # "true" once the call runs the tenant fallback in XML
FSCTL_RESUME = "fsctl_resume"  # the extension a handed-over call resumes at in fallback mode
NOT_IN_FALLBACK = ("field", "${fsctl_in_fallback}"), ("expression", "^(?!true$).*$")
FSCTL_TOLL = "fsctl_toll"  # directory: the user's toll class
FSCTL_RECORD = "fsctl_record"  # directory: "true" when the user's calls are recorded
FSCTL_TENANT_NAME = "fsctl_tenant_name"  # directory: the tenant's name (display only)
FSCTL_DID_NAME = "fsctl_did_name"  # public context: the DID's name (display only)
FSCTL_TIMERULE_HIT = "fsctl_timerule_hit"  # set inline while hunting a timerule-* extension
OUTBOUND_CALLER_ID = "outbound_caller_id_number"  # directory: caller ID for external calls

FALLBACK_EXTENSION = cv.FALLBACK_EXTENSION
BLIND_XFER, ATTENDED_XFER = "fsctl-xfer-blind", "fsctl-xfer-attended"
BLIND_KEY, ATTENDED_KEY = "1", "4"
PUBLIC_CONTEXT = "fsctl-public"
PUBLIC_FILE = "dialplan/public.xml"

# (kind, path pattern, template, root child tag) of the files rendered per tenant.
TENANT_FILES = (
    ("directory", "directory/{domain}.xml", "directory.xml"),
    ("dialplan", "dialplan/{domain}.xml", "dialplan.xml"),
    ("ivr", "ivr/{domain}.xml", "ivr.xml"),
    ("conference", "conference/{domain}.xml", "conference.xml"),
    ("queues", "callcenter/queues/{domain}.xml", "callcenter_queues.xml"),
    ("agents", "callcenter/agents/{domain}.xml", "callcenter_agents.xml"),
    ("tiers", "callcenter/tiers/{domain}.xml", "callcenter_tiers.xml"),
)

# Toll classes, lowest first; a user may call its own class and every class below it.
TOLL_LEVELS = ("internal", "local", "national", "international")
DEFAULT_TOLL = User.toll.default  # said once on the domain; users differing say their own
# What each external class dials (anchored; internal extensions are 2-6 digits and never match).
TOLL_PATTERNS = (
    ("international", r"^(\+|00)[1-9][0-9]{6,14}$"),
    ("national", r"^0[1-9][0-9]{6,12}$"),
    ("local", r"^[1-9][0-9]{6,8}$"),
)
WDAY = {"sun": 1, "mon": 2, "tue": 3, "wed": 4, "thu": 5, "fri": 6, "sat": 7}  # FreeSWITCH: 1 = Sunday
NEXT_DAY = {"mon": "tue", "tue": "wed", "wed": "thu", "thu": "fri", "fri": "sat", "sat": "sun", "sun": "mon"}
MAX_HOLIDAY_DAYS = 366  # a holiday with times is rendered day by day
# The vanilla directory's dial string: every registered contact rings (multiple-registrations=contact).
DIAL_STRING = (
    "{^^:sip_invite_domain=${dialed_domain}:presence_id=${dialed_user}@${dialed_domain}}"
    "${sofia_contact(*/${dialed_user}@${dialed_domain})}"
)
DEFAULT_INVALID_SOUND = "ivr/ivr-that_was_an_invalid_entry.wav"
DEFAULT_EXIT_SOUND = "voicemail/vm-goodbye.wav"
_SAFE_HYPHEN = "\u2011"  # NON-BREAKING HYPHEN


_NEUTRALISED = re.compile(r"[\x00-\x1f\x7f$-]")  # what neutralise or the X-PRE-PROCESS rule changes


def xml_text(value) -> str:
    """Tenant text made safe for a FreeSWITCH XML value: no `$` expansion, no preprocessor command."""
    if type(value) is str and not _NEUTRALISED.search(value):
        return value  # (most names and addresses: nothing to change)
    text = neutralise("" if value is None else value)
    if "-" in text and "X-PRE-PROCESS" in text.upper():  # (upper() only when it could match)
        text = re.sub("x-pre-process", lambda m: m.group(0).replace("-", _SAFE_HYPHEN), text, flags=re.I)
    return text


def a1_hash(user: str, realm: str, password: str) -> str:
    """md5(`user:realm:password`): the SIP digest credential FreeSWITCH accepts as `a1-hash`."""
    return hashlib.md5(f"{user}:{realm}:{password}".encode()).hexdigest()


# --------------------------------------------------------------------------- templates
def packaged_templates_dir() -> Path:
    """The packaged templates: inside the installed package, else `<repo>/templates`."""
    try:
        candidate = importlib.resources.files("fsctl") / "templates"
        if candidate.is_dir():
            return Path(str(candidate))
    except (ModuleNotFoundError, TypeError):  # pragma: no cover - namespace quirks
        pass
    return Path(__file__).resolve().parents[2] / "templates"


try:  # the C function behind markupsafe.escape (what autoescape calls for every {{ ... }})
    from markupsafe._speedups import _escape_inner
except ImportError:  # pragma: no cover - markupsafe without its C speedups
    _escape_inner = None


def _fast_escape(value, _str=str, _inner=_escape_inner, _escape=markupsafe.escape):
    """markupsafe.escape for output: the same text, as a plain str for plain strings (no Markup object).

    Jinja calls the template global `escape` only on what it outputs (`yield escape(x)` or a
    buffer it joins and marks safe itself), so the text's type is never seen: only its characters.
    """
    if type(value) is _str:
        return _inner(value)
    return _escape(value)


class _XmlTemplate(jinja2.Template):
    """A template whose autoescape calls `_fast_escape` (same output as markupsafe.escape, ~6x faster).

    Jinja compiles `{{ x }}` to `escape(x)`, `escape` being a global of the compiled module; the
    render streams ~1.5 million of them for 1,000 tenants. If a Jinja version named it
    otherwise, the swap would not happen and markupsafe.escape would run: slower, same output.
    """

    @classmethod
    def from_code(cls, environment, code, globals, uptodate=None):
        template = super().from_code(environment, code, globals, uptodate)
        namespace = template.root_render_func.__globals__  # the compiled module's globals
        if _escape_inner is not None and namespace.get("escape") is markupsafe.escape:
            namespace["escape"] = _fast_escape
        return template

    def chunks(self, context: dict):
        """The output's pieces as the compiled code yields them: `generate()` without its wrapper
        generator (one resumption less per piece; the render yields millions of pieces)."""
        if self.environment.is_async:  # pragma: no cover - fsctl's environments are synchronous
            return self.generate(context)
        return self.root_render_func(self.new_context(context))


class _XmlEnvironment(jinja2.Environment):
    template_class = _XmlTemplate


@functools.lru_cache(maxsize=8)
def make_environment(templates_dir: str | os.PathLike | None = None, bytecode_dir=None) -> jinja2.Environment:
    """A Jinja2 environment: the operator's folder first (if any), then the packaged templates.

    `bytecode_dir` keeps compiled templates between runs (jinja2 re-checks the sources' mtimes).
    """
    loaders = []
    if templates_dir:
        loaders.append(jinja2.FileSystemLoader(str(templates_dir)))
    loaders.append(jinja2.FileSystemLoader(str(packaged_templates_dir())))
    return _XmlEnvironment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=True,  # every template here is XML
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        bytecode_cache=_bytecode_cache(bytecode_dir) if bytecode_dir else None,
        # A template is read once per process (fsctl is a command, not a server): no stat of
        # its source before each of the thousands of files a render writes.
        auto_reload=False,
    )


def _bytecode_cache(folder):
    path = Path(folder)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return jinja2.FileSystemBytecodeCache(str(path))


# --------------------------------------------------------------------------- loading
_BATCH = 50  # tenants loaded per round of queries (memory: one batch's rows, whatever the number of tenants)
_TENANT = -7_000_000_000  # prepared SQL's tenant ids are _TENANT, _TENANT - 1...: replaced by the real ones


def _tenant_queries(ids):
    """name -> peewee query over the tenants `ids`; every row starts with its tenant's id."""
    return {
        # Only what the contexts read (a tenant has many users: every column costs).
        "users": User.select(User.tenant, *(getattr(User, f) for f in UserRow._fields))
        .where(User.tenant.in_(ids)).order_by(User.tenant, User.number),
        "groups": Group.select(Group.tenant, *Group._meta.sorted_fields)
        .where(Group.tenant.in_(ids)).order_by(Group.tenant, Group.number),
        "members": GroupMember.select(User.tenant, GroupMember.group, User.number).join(User)
        .where(User.tenant.in_(ids)).order_by(User.tenant, GroupMember.group, GroupMember.position),
        "dids": Did.select(Did.tenant, Did.number, Did.name, Did.destination)
        .where(Did.tenant.in_(ids)).order_by(Did.tenant, Did.number),
        "media": Media.select(Media.tenant, Media.name, Media.path).where(Media.tenant.in_(ids)).order_by(Media.tenant),
        "ivrs": Ivr.select(Ivr.tenant, *Ivr._meta.sorted_fields).where(Ivr.tenant.in_(ids)).order_by(Ivr.tenant, Ivr.number),
        "entries": IvrEntry.select(Ivr.tenant, IvrEntry.ivr, IvrEntry.digits, IvrEntry.destination).join(Ivr)
        .where(Ivr.tenant.in_(ids)).order_by(Ivr.tenant, IvrEntry.ivr, IvrEntry.digits),
        "rules": TimeRule.select(TimeRule.tenant, *TimeRule._meta.sorted_fields)
        .where(TimeRule.tenant.in_(ids)).order_by(TimeRule.tenant, TimeRule.name),
        "ranges": TimeRange.select(TimeRule.tenant, TimeRange.rule, TimeRange.weekdays, TimeRange.start, TimeRange.end)
        .join(TimeRule).where(TimeRule.tenant.in_(ids)).order_by(TimeRule.tenant, TimeRange.rule, TimeRange.id),
        "holidays": Holiday.select(TimeRule.tenant, Holiday.rule, Holiday.start_date, Holiday.end_date,
                                   Holiday.start_time, Holiday.end_time)
        .join(TimeRule).where(TimeRule.tenant.in_(ids)).order_by(TimeRule.tenant, Holiday.rule, Holiday.start_date),
        "queues": Queue.select(Queue.tenant, *Queue._meta.sorted_fields)
        .where(Queue.tenant.in_(ids)).order_by(Queue.tenant, Queue.number),
        "agents": QueueAgent.select(User.tenant, QueueAgent.queue, User.number, QueueAgent.tier).join(User)
        .where(User.tenant.in_(ids)).order_by(User.tenant, QueueAgent.queue, QueueAgent.tier, User.number),
        "conferences": Conference.select(Conference.tenant, *Conference._meta.sorted_fields)
        .where(Conference.tenant.in_(ids)).order_by(Conference.tenant, Conference.number),
        "blacklist": BlacklistEntry.select(BlacklistEntry.tenant, BlacklistEntry.pattern, BlacklistEntry.match)
        .where(BlacklistEntry.tenant.in_(ids)).order_by(BlacklistEntry.tenant, BlacklistEntry.match,
                                                       BlacklistEntry.pattern),
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
UserRow = namedtuple("UserRow", "number name sip_password email vm_enabled vm_pin record no_answer_timeout "
                     "caller_id_number toll " + " ".join(User.FORWARD_FIELDS))
_first = operator.itemgetter(0)


def _as_date(value):
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def load_tenants(tenants):
    """(tenant, its configuration) for each of `tenants` (Tenant rows), in order: rows as plain dicts,
    users as UserRow. Prepared SQL (no model objects, no SQL building) for `_BATCH` tenants at a
    time: fourteen queries per batch, not per tenant (PostgreSQL answers each in ~0.3 ms)."""
    database = Tenant._meta.database
    tenants = iter(tenants)
    while batch := list(itertools.islice(tenants, _BATCH)):
        ids = [t.id for t in batch]
        rows = {tid: {} for tid in ids}
        for name, (sql, params, columns) in _prepared(database, len(ids)).items():
            cursor = database.execute_sql(sql, _bind(params, ids))
            for tid, found in itertools.groupby(cursor.fetchall(), key=_first):
                if name == "users":
                    rows[tid][name] = [tuple.__new__(UserRow, row[1:]) for row in found]
                else:
                    rows[tid][name] = [dict(zip(columns, row[1:])) for row in found]
        for tenant in batch:
            yield tenant, _tenant_data(tenant, rows[tenant.id])


def load_tenant(tenant: Tenant) -> dict:
    """One tenant's configuration (load_tenants)."""
    return next(load_tenants([tenant]))[1]


def _tenant_data(tenant, rows):
    rows = {name: rows.get(name, []) for name in ("users", "groups", "members", "dids", "media", "ivrs", "entries",
                                                  "rules", "ranges", "holidays", "queues", "agents", "conferences",
                                                  "blacklist")}
    by = {}
    for m in rows["members"]:
        by.setdefault(("g", m["group"]), []).append(m["number"])
    for e in rows["entries"]:
        by.setdefault(("i", e["ivr"]), []).append((e["digits"], e["destination"]))
    for r in rows["ranges"]:
        by.setdefault(("r", r["rule"]), []).append((r["weekdays"], r["start"], r["end"]))
    for h in rows["holidays"]:
        by.setdefault(("h", h["rule"]), []).append(
            (_as_date(h["start_date"]), _as_date(h["end_date"]), h["start_time"], h["end_time"]))
    for a in rows["agents"]:
        by.setdefault(("q", a["queue"]), []).append((a["number"], a["tier"]))
    return {
        "tenant": {
            "domain": tenant.domain, "name": tenant.name, "timezone": tenant.timezone, "state": tenant.state,
            "fallback": tenant.fallback, "gateway": tenant.gateway, "revision": tenant.revision,
        },
        "users": rows["users"],
        "groups": [dict(g, members=by.get(("g", g["id"]), [])) for g in rows["groups"]],
        "dids": rows["dids"],
        "media": {m["name"]: m["path"] for m in rows["media"]},
        "ivrs": [dict(i, entries=by.get(("i", i["id"]), [])) for i in rows["ivrs"]],
        "time_rules": [dict(r, ranges=by.get(("r", r["id"]), []), holidays=by.get(("h", r["id"]), []))
                       for r in rows["rules"]],
        "queues": [dict(q, agents=by.get(("q", q["id"]), [])) for q in rows["queues"]],
        "conferences": rows["conferences"],
        "blacklist": [(b["pattern"], b["match"]) for b in rows["blacklist"]],
    }


def active_tenants():
    """Active tenants by domain (suspended tenants are never rendered)."""
    return Tenant.select().where(Tenant.state == "active").order_by(Tenant.domain)


# --------------------------------------------------------------------------- contexts
def build_directory_context(data: dict) -> dict:
    """The directory of one tenant: its domain and users with a1-hash, caller ID and flags.

    What most users share is said once, on the domain: FreeSWITCH merges the domain's params and
    variables into each user that does not set them itself (src/switch_xml.c,
    switch_xml_merge_user). A user line carries only what differs: its outbound caller ID when
    not the tenant's, its toll class when not the default, `fsctl_record` when recorded.
    """
    tenant = data["tenant"]
    domain = tenant["domain"]
    default_cid = data["dids"][0]["number"] if data["dids"] else ""
    users = []
    for u in data["users"]:
        if not u.sip_password:
            # FACTS.md: a user with neither password nor a1-hash registers without credentials.
            raise OperationError(f"user {u.number} of {domain} has no SIP password: refusing to render it")
        vm, cid, toll = u.vm_enabled, u.caller_id_number, u.toll
        users.append(_directory_user((  # (number a1_hash vm_password vm_mailto name caller_id toll record)
            u.number,
            a1_hash(u.number, domain, u.sip_password),
            u.vm_pin if vm and u.vm_pin else "",
            xml_text(u.email) if vm and u.email else "",
            xml_text(u.name),
            cid if cid and cid != default_cid else "",
            toll if toll != DEFAULT_TOLL else "",
            "true" if u.record else "",
        )))
    return {
        "domain": domain,
        "tenant_name": xml_text(tenant["name"]),
        "dial_string": DIAL_STRING,
        "caller_id": default_cid,
        "toll": DEFAULT_TOLL,
        "users": users,
    }


# Immutable records handed to the templates (attribute access is several times faster in Jinja
# than on dicts, which it first tries as attributes).
DirectoryUser = namedtuple("DirectoryUser", "number a1_hash vm_password vm_mailto name caller_id toll record")
_directory_user = functools.partial(tuple.__new__, DirectoryUser)  # DirectoryUser(*values) without its Python __new__
Action = namedtuple("Action", "app data inline")
Condition = namedtuple("Condition", "attrs actions anti")
Extension = namedtuple("Extension", "name cont conditions")


def _freeze(exts):
    """Extensions built as dicts -> immutable records for the template."""
    return [
        Extension(e["name"], e["cont"], tuple(
            Condition(tuple(c["attrs"]), tuple(c["actions"]), tuple(c["anti"]))
            for c in e["conditions"]))
        for e in exts
    ]


def _act(app, data="", inline=False, _new=functools.partial(tuple.__new__, Action)):
    return _new((app, data, inline))


def _dest_cond(expression):
    return {"attrs": [("field", "destination_number"), ("expression", expression)], "actions": [], "anti": []}


def _ext(name, conditions, cont=False):
    return {"name": name, "cont": cont, "conditions": conditions}


_REGEX_SPECIAL = re.compile(r"([\\.^$*+?{}\[\]|()])")


@functools.lru_cache(maxsize=4096)
def regex_literal(text: str) -> str:
    """`text` as a PCRE literal (only metacharacters escaped, so `ivr-500` stays readable)."""
    # Cached: the same extension numbers come back in every tenant.
    return _REGEX_SPECIAL.sub(r"\\\1", text)


def _exact(*targets):
    """An anchored regex matching exactly the given destination numbers."""
    alts = "|".join(map(regex_literal, targets))
    return f"^{alts}$" if len(targets) == 1 else f"^({alts})$"


def _captured(numbers):
    """An anchored regex matching exactly `numbers`, each captured as `$1` (even a single one)."""
    return _exact(*numbers) if len(numbers) > 1 else f"^({regex_literal(numbers[0])})$"


def route_target(dest: Destination) -> str:
    """The extension (destination number) of the tenant context that serves a destination."""
    kind, target = dest.kind, dest.target
    if kind in ("user", "group"):
        return target
    if kind in ("ivr", "queue", "conference"):
        return f"{kind}-{target}"
    if kind == "voicemail":
        return f"vm-{target}"
    if kind == "timerule":
        return f"timerule-{target}"
    raise ValueError(f"destination {dest} has no extension")


def route_actions(text: str, domain: str, gateway: str) -> list[dict]:
    """Dialplan actions that send the call to a destination (`kind:target`) inside the tenant."""
    dest = Destination.parse(text)
    if dest.kind == "hangup":
        return [_act("hangup", dest.target or "NORMAL_CLEARING")]
    if dest.kind == "external":
        return [
            _act("set", f"effective_caller_id_number=${{{OUTBOUND_CALLER_ID}}}"),
            _act("set", "hangup_after_bridge=true"),
            _act("bridge", f"sofia/gateway/{gateway}/{dest.target}"),
        ]
    return [_act("transfer", f"{route_target(dest)} XML {domain}")]


def route_app(text: str, domain: str, gateway: str) -> str:
    """One `app arg` (an IVR entry's menu-exec-app) that sends the call to a destination."""
    dest = Destination.parse(text)
    if dest.kind == "hangup":
        return f"hangup {dest.target or 'NORMAL_CLEARING'}"
    if dest.kind == "external":
        return f"bridge sofia/gateway/{gateway}/{dest.target}"
    return f"transfer {route_target(dest)} XML {domain}"


def _handoff_actions(domain, watchdog, resume=None):
    # The watchdog transfer is armed before the park (see the module docstring).
    resume_actions = [_act("set", f"{FSCTL_RESUME}={resume}")] if resume else []
    return resume_actions + [
        _act("set", f"{cv.FSCTL_TENANT}={domain}"),
        _act("set", f"{FSCTL_WATCHDOG}={watchdog}"),
        _act("sched_transfer", f"+{watchdog} {FALLBACK_EXTENSION} XML {domain}"),
        _act("park"),
    ]


def _bridge_user_actions(domain, number, timeout, vm_enabled):
    actions = [
        _act("set", "continue_on_fail=true"),
        _act("set", "hangup_after_bridge=true"),
        _act("bridge", f"[leg_timeout={int(timeout)}]user/{number}@{domain}"),
    ]
    if vm_enabled:
        actions += [_act("answer"), _act("voicemail", f"default {domain} {number}")]
    else:
        actions.append(_act("hangup", "NO_ANSWER"))
    return actions


def _group_direct_actions(group, domain, gateway):
    actions = []
    if group["members"]:
        sep = "|" if group["strategy"] == "sequential" else ","
        legs = sep.join(f"[leg_timeout={int(group['ring_time'])}]user/{n}@{domain}" for n in group["members"])
        actions += [_act("set", "continue_on_fail=true"), _act("set", "hangup_after_bridge=true"),
                    _act("bridge", legs)]
    fallback = Destination.parse(group["fallback"])
    # In XML (service down) a group's fallback is followed unless it could loop (group, time rule).
    if fallback.kind in ("group", "timerule"):
        actions.append(_act("hangup", "NO_ANSWER"))
    else:
        actions += route_actions(group["fallback"], domain, gateway)
    return actions


def _handoff_ext(name, number, direct, domain, watchdog):
    cond = {"attrs": [("field", f"${{{FSCTL_IN_FALLBACK}}}"), ("expression", "^true$")],
            "actions": direct, "anti": _handoff_actions(domain, watchdog, resume=number)}
    return _ext(name, [_dest_cond(_exact(number)), cond])


def _recorded_caller_cond():
    return {"attrs": [("field", f"${{{FSCTL_RECORD}}}"), ("expression", "^true$")], "actions": [], "anti": []}


def _not_in_fallback_cond():
    return {"attrs": list(NOT_IN_FALLBACK), "actions": [], "anti": []}


def resume_target(text: str) -> str | None:
    """The extension a call handed over for destination `text` resumes at in fallback mode."""
    dest = Destination.parse(text)
    if dest.kind in ("hangup", "external"):
        return None
    return route_target(dest)


def _tod(start: str, end: str) -> str:
    """`HH:MM`-`HH:MM` (end exclusive, 24:00 allowed) as FreeSWITCH's inclusive time-of-day."""
    h, m = (int(x) for x in end.split(":"))
    last = h * 3600 + m * 60 - 1
    return f"{start}:00-{last // 3600:02d}:{last % 3600 // 60:02d}:{last % 60:02d}"


def _range_pieces(weekdays: str, start: str, end: str):
    """(wday list, time-of-day) conditions of a range; a range past midnight becomes two."""
    days = [d for d in weekdays.split(",") if d]
    if end > start or end == "24:00":
        return [(",".join(str(WDAY[d]) for d in days), _tod(start, end))]
    pieces = [(",".join(str(WDAY[d]) for d in days), _tod(start, "24:00"))]
    if end != "00:00":
        pieces.append((",".join(str(WDAY[NEXT_DAY[d]]) for d in days), _tod("00:00", end)))
    return pieces


def _holiday_spans(start_date, end_date, start_time, end_time):
    """`date-time` values (YYYY-MM-DD HH:MM:SS~...) a holiday covers."""
    t0, t1 = start_time or "00:00", end_time or "24:00"
    if t0 == "00:00" and t1 == "24:00":
        return [f"{start_date} 00:00:00~{end_date} 23:59:59"]
    spans, day, count = [], start_date, 0
    while day <= end_date and count < MAX_HOLIDAY_DAYS:
        first, last = _tod(t0, t1).split("-")
        spans.append(f"{day} {first}~{day} {last}")
        day += timedelta(days=1)
        count += 1
    return spans


def build_timerule_extensions(rule: dict, tenant: dict) -> list[dict]:
    """A time rule in XML: inline `set`s while hunting, then one extension routes match / no match."""
    domain, gateway = tenant["domain"], tenant["gateway"]
    target = _exact(f"timerule-{rule['name']}")
    # FACTS.md: the time zone is set before any time condition is tested.
    first = _dest_cond(target)
    first["actions"] = [_act("set", f"timezone={rule['timezone'] or tenant['timezone']}", True),
                        _act("set", f"{FSCTL_TIMERULE_HIT}=nomatch", True)]
    exts = [_ext(f"timerule-{rule['name']}-start", [first], cont=True)]
    for i, (weekdays, start, end) in enumerate(rule["ranges"]):
        for j, (wday, tod) in enumerate(_range_pieces(weekdays, start, end)):
            cond = {"attrs": [("wday", wday), ("time-of-day", tod)],
                    "actions": [_act("set", f"{FSCTL_TIMERULE_HIT}=match", True)], "anti": []}
            exts.append(_ext(f"timerule-{rule['name']}-range{i}.{j}", [_dest_cond(target), cond], cont=True))
    for i, (d0, d1, t0, t1) in enumerate(rule["holidays"]):
        for j, span in enumerate(_holiday_spans(d0, d1, t0, t1)):
            cond = {"attrs": [("date-time", span)],
                    "actions": [_act("set", f"{FSCTL_TIMERULE_HIT}=nomatch", True)], "anti": []}
            exts.append(_ext(f"timerule-{rule['name']}-holiday{i}.{j}", [_dest_cond(target), cond], cont=True))
    last = {"attrs": [("field", f"${{{FSCTL_TIMERULE_HIT}}}"), ("expression", "^match$")],
            "actions": route_actions(rule["match_destination"], domain, gateway),
            "anti": route_actions(rule["nomatch_destination"], domain, gateway)}
    exts.append(_ext(f"timerule-{rule['name']}", [_dest_cond(target), last]))
    return exts


_SCENARIO_FIELDS = operator.attrgetter("record", *User.FORWARD_FIELDS)


def is_scenario_user(user: UserRow) -> bool:
    """Users whose calls the call-logic service decides (forwarding or recording)."""
    return any(_SCENARIO_FIELDS(user))


def build_dialplan_context(data: dict, watchdog: int = 6) -> dict:
    """The tenant's dialplan context: every extension, as conditions and actions to print."""
    tenant = data["tenant"]
    domain, gateway = tenant["domain"], tenant["gateway"]
    exts = []
    setup = _dest_cond("^(.+)$")
    setup["actions"] = [_act("set", f"timezone={tenant['timezone']}", True),
                        _act("set", f"{cv.FSCTL_TENANT}={domain}", True)]
    # R-XFER during a call: *1 blind, *4 attended (either party; the phone's own transfer
    # button uses SIP REFER, resolved in the tenant context: force_transfer_context).
    setup["actions"] += [
        _act("bind_meta_app", f"{BLIND_KEY} ab s execute_extension::{BLIND_XFER} XML {domain}"),
        _act("bind_meta_app", f"{ATTENDED_KEY} ab s execute_extension::{ATTENDED_XFER} XML {domain}"),
    ]
    exts.append(_ext("fsctl-setup", [setup], cont=True))

    # Users with forwarding or recording (scenario users) go to the service; so does a recorded
    # caller's call to a plain user (R-REC: announce, record). Both hand-offs are one extension
    # each, whatever the number of users, and never match in fallback mode: there, the call
    # falls through to the bundles below, which ring every user straight (no forwarding).
    bundles, scenario, plain_numbers = {}, [], []
    for u in data["users"]:
        (scenario if is_scenario_user(u) else plain_numbers).append(u.number)
        bundles.setdefault((u.no_answer_timeout, u.vm_enabled), []).append(u.number)
    for name, numbers, conds in (("scenario-users", scenario, []),
                                 ("recorded-caller", plain_numbers, [_recorded_caller_cond()])):
        if numbers:
            dest = _dest_cond(_captured(numbers))
            dest["actions"] = _handoff_actions(domain, watchdog, resume="$1")
            exts.append(_ext(name, conds + [_not_in_fallback_cond(), dest]))
    # Every user: straight to the phone in XML, bundled by (ring time, voicemail).
    for (timeout, vm), numbers in sorted(bundles.items()):
        cond = _dest_cond(_exact(*numbers))
        cond["actions"] = _bridge_user_actions(domain, "$1" if len(numbers) > 1 else numbers[0], timeout, vm)
        exts.append(_ext(f"users-{timeout}{'-vm' if vm else ''}", [cond]))
    for g in data["groups"]:
        exts.append(_handoff_ext(f"group-{g['number']}", g["number"], _group_direct_actions(g, domain, gateway),
                                 domain, watchdog))
    for i in data["ivrs"]:
        cond = _dest_cond(_exact(i["number"], f"ivr-{i['number']}"))
        cond["actions"] = [_act("answer"), _act("sleep", "500"), _act("ivr", f"{i['number']}@{domain}")]
        cond["actions"] += route_actions(i["exit_destination"], domain, gateway)
        exts.append(_ext(f"ivr-{i['number']}", [cond]))
    for q in data["queues"]:
        cond = _dest_cond(_exact(q["number"], f"queue-{q['number']}"))
        cond["actions"] = [_act("answer"), _act("set", "hangup_after_bridge=true"),
                           _act("callcenter", f"{q['number']}@{domain}")]
        cond["actions"] += route_actions(q["overflow"], domain, gateway)
        exts.append(_ext(f"queue-{q['number']}", [cond]))
    for c in data["conferences"]:
        cond = _dest_cond(_exact(c["number"], f"conference-{c['number']}"))
        room = f"{domain}-{c['number']}"
        cond["actions"] = [_act("answer"), _act("conference", f"{room}@{room}")]
        exts.append(_ext(f"conference-{c['number']}", [cond]))
    mailboxes = [u.number for u in data["users"] if u.vm_enabled]
    if mailboxes:
        cond = _dest_cond(f"^vm-({'|'.join(map(regex_literal, mailboxes))})$")
        cond["actions"] = [_act("answer"), _act("voicemail", f"default {domain} $1")]
        exts.append(_ext("voicemail", [cond]))
    own = _dest_cond(r"^\*97$")
    own["actions"] = [_act("answer"), _act("voicemail", f"check default {domain} ${{user_name}}")]
    exts.append(_ext("voicemail-own", [own]))
    other = _dest_cond(r"^\*98$")
    other["actions"] = [_act("answer"), _act("voicemail", f"check default {domain}")]
    exts.append(_ext("voicemail-any", [other]))
    for rule in data["time_rules"]:
        exts += build_timerule_extensions(rule, tenant)
    for klass, pattern in TOLL_PATTERNS:
        allowed = TOLL_LEVELS[TOLL_LEVELS.index(klass):]
        toll = {"attrs": [("field", f"${{{FSCTL_TOLL}}}"), ("expression", f"^({'|'.join(allowed)})$")],
                "actions": [_act("set", f"effective_caller_id_number=${{{OUTBOUND_CALLER_ID}}}"),
                            _act("set", "hangup_after_bridge=true"),
                            _act("bridge", f"sofia/gateway/{gateway}/${{destination_number}}")],
                "anti": [_act("hangup", "CALL_REJECTED")]}
        # R-REC: a recorded caller's outgoing call is recorded by the service (after the toll check).
        recorded = _dest_cond(pattern)
        recorded["actions"] = ([_act("set", f"effective_caller_id_number=${{{OUTBOUND_CALLER_ID}}}"),
                                _act("set", f"{cv.FSCTL_OUTBOUND}=true")]
                               + _handoff_actions(domain, watchdog, resume="${destination_number}"))
        allowed_cond = {"attrs": toll["attrs"], "actions": [], "anti": []}
        exts.append(_ext(f"outbound-{klass}-recorded",
                         [_recorded_caller_cond(), _not_in_fallback_cond(), allowed_cond, recorded]))
        exts.append(_ext(f"outbound-{klass}", [_dest_cond(pattern), toll]))
    exts += build_transfer_extensions(domain)
    # The watchdog fired (service down). A public number's caller on the blacklist is refused
    # here too (R-BLACK without the service); the others go on below.
    refused = blacklist_regex(data.get("blacklist", ()))
    if refused:
        caller = {"attrs": [("field", "caller_id_number"), ("expression", refused)],
                  "actions": [_act("set", f"{FSCTL_IN_FALLBACK}=true"), _act("hangup", "CALL_REJECTED")], "anti": []}
        did = {"attrs": [("field", f"${{{cv.FSCTL_DID}}}"), ("expression", "^(.+)$")], "actions": [], "anti": []}
        exts.append(_ext(f"{FALLBACK_EXTENSION}-blacklist",
                         [_dest_cond(_exact(FALLBACK_EXTENSION)), did, caller]))
    # Then resume where the call was going, in XML; else the tenant fallback.
    resume = {"attrs": [("field", f"${{{FSCTL_RESUME}}}"), ("expression", "^(.+)$")],
              "actions": [_act("set", f"{FSCTL_IN_FALLBACK}=true"), _act("transfer", f"$1 XML {domain}")],
              "anti": [_act("set", f"{FSCTL_IN_FALLBACK}=true")] + route_actions(tenant["fallback"], domain, gateway)}
    exts.append(_ext(FALLBACK_EXTENSION, [_dest_cond(_exact(FALLBACK_EXTENSION)), resume]))
    return {"context": domain, "extensions": _freeze(exts)}


def blacklist_regex(entries) -> str:
    """One anchored regex matching the caller numbers the decision code refuses (callconfig.blacklisted).

    Numbers are compared as `canonical_number` does: a pattern with `+` matches `+...` and
    `00...`; a pattern without matches the digits as sent, except `00` + digit (that is `+`).
    The caller number is taken as FreeSWITCH has it (separators such as spaces are not removed).
    """
    alts = []
    for pattern, match in entries:
        canon = canonical_number(pattern)
        if not canon:
            continue
        tail = ".*" if match == "prefix" else ""
        if canon.startswith("+"):
            alts.append(f"(\\+|00){canon[1:]}{tail}")
        else:
            alts.append(f"(?!00[0-9]){canon}{tail}")
    return f"^({'|'.join(alts)})$" if alts else ""


def build_transfer_extensions(domain: str) -> list[dict]:
    """Blind (*1) and attended (*4) transfer: a dial tone, the digits, then the transfer (R-XFER)."""
    tone = "'tone_stream://%(10000,0,350,440)'"
    blind = _dest_cond(_exact(BLIND_XFER))
    blind["actions"] = [_act("read", f"2 16 {tone} digits 5000 #"),
                        _act("execute_extension", f"{BLIND_XFER}-go XML {domain}")]
    # Vanilla FreeSWITCH's features.xml shape: the digits are tested after `read` ran.
    go = {"attrs": [("field", "${digits}"), ("expression", r"^(\*?[0-9]{2,16})$")],
          "actions": [_act("transfer", f"-bleg ${{digits}} XML {domain}")],
          "anti": [_act("playback", "tone_stream://%(500,0,480,620)")]}
    attended = _dest_cond(_exact(ATTENDED_XFER))
    attended["actions"] = [_act("read", f"2 16 {tone} digits 30000 #"),
                           _act("set", "origination_cancel_key=#"),
                           _act("att_xfer", f"user/${{digits}}@{domain}")]
    return [_ext(BLIND_XFER, [blind]), _ext(f"{BLIND_XFER}-go", [_dest_cond(_exact(f"{BLIND_XFER}-go")), go]),
            _ext(ATTENDED_XFER, [attended])]


def build_public_context(dids) -> dict:
    """The public context: each DID (E.164; `+` or `00` optional) hands its call to its tenant."""
    exts = []
    for did in dids:
        digits = did["number"].lstrip("+")
        domain, watchdog = did["domain"], did["watchdog"]
        cond = _dest_cond(f"^(\\+|00)?{regex_literal(digits)}$")
        cond["actions"] = [
            _act("set", f"{cv.FSCTL_DID}={did['number']}"),
            _act("set", f"{FSCTL_DID_NAME}={xml_text(did['name'])}"),
            _act("set", f"domain_name={domain}"),
            _act("set", f"timezone={did['timezone']}"),
        ] + _handoff_actions(domain, watchdog, resume=resume_target(did["destination"]))
        exts.append(_ext(f"did-{digits}", [cond]))
    return {"context": PUBLIC_CONTEXT, "extensions": _freeze(exts)}


def build_ivr_context(data: dict) -> dict:
    """The tenant's IVR menus (ivr.conf style), named `number@domain`."""
    tenant = data["tenant"]
    domain, gateway, media = tenant["domain"], tenant["gateway"], data["media"]
    menus = []
    for i in data["ivrs"]:
        greeting = xml_text(media.get(i["greeting"], "")) if i["greeting"] else ""
        invalid = xml_text(media.get(i["invalid_sound"], "")) if i["invalid_sound"] else DEFAULT_INVALID_SOUND
        menus.append({
            "name": f"{i['number']}@{domain}",
            "greet_long": greeting,
            "greet_short": greeting,
            "invalid_sound": invalid or DEFAULT_INVALID_SOUND,
            "exit_sound": DEFAULT_EXIT_SOUND,
            "timeout": int(i["timeout"]) * 1000,
            "max_failures": int(i["max_failures"]),
            "max_timeouts": int(i["max_timeouts"]),
            "digit_len": int(i["digit_len"]),
            "entries": [{"digits": d, "param": route_app(dest, domain, gateway)} for d, dest in i["entries"]],
        })
    return {"menus": menus}


def build_conference_context(data: dict) -> dict:
    """Conference profiles, one per room, named `<domain>-<number>` (names are global)."""
    domain = data["tenant"]["domain"]
    return {"profiles": [
        {"name": f"{domain}-{c['number']}", "domain": domain, "pin": c["pin"] or "",
         "max_members": c["max_members"] or ""}
        for c in data["conferences"]
    ]}


def build_callcenter_context(data: dict) -> dict:
    """mod_callcenter queues, agents and tiers, named `number@domain`."""
    domain, media = data["tenant"]["domain"], data["media"]
    queues, agents, tiers, seen = [], [], [], set()
    for q in data["queues"]:
        name = f"{q['number']}@{domain}"
        moh = xml_text(media.get(q["moh"], "")) if q["moh"] else "local_stream://moh"
        queues.append({
            "name": name, "strategy": q["strategy"], "moh": moh or "local_stream://moh",
            "announce": xml_text(media.get(q["announce"], "")) if q["announce"] else "",
            "announce_frequency": int(q["announce_frequency"]), "max_wait": int(q["max_wait"]),
        })
        for position, (number, tier) in enumerate(q["agents"], 1):
            agent = f"{number}@{domain}"
            if agent not in seen:
                seen.add(agent)
                agents.append({"name": agent, "contact": f"[leg_timeout=20]user/{number}@{domain}"})
            tiers.append({"agent": agent, "queue": name, "level": int(tier), "position": position})
    return {"queues": queues, "agents": sorted(agents, key=lambda a: a["name"]), "tiers": tiers}


def tenant_contexts(data: dict, watchdog: int = 6) -> dict:
    """{kind: context} of every file of one tenant."""
    cc = build_callcenter_context(data)
    return {
        "directory": build_directory_context(data),
        "dialplan": build_dialplan_context(data, watchdog),
        "ivr": build_ivr_context(data),
        "conference": build_conference_context(data),
        "queues": {"queues": cc["queues"]},
        "agents": {"agents": cc["agents"]},
        "tiers": {"tiers": cc["tiers"]},
    }


def tenant_paths(domain: str) -> list[str]:
    """The relative paths of every file that may be rendered for one tenant."""
    return [pattern.format(domain=domain) for _, pattern, _ in TENANT_FILES]


def plain_rows(query) -> list:
    """A query's rows as plain tuples straight from the cursor, without peewee's per-row
    conversion: for text and integer columns, which the driver already returns as such."""
    return [tuple(row) for row in query.model._meta.database.execute_sql(*query.sql()).fetchall()]


def public_source_digest(watchdog: int = 6) -> str:
    """A digest of everything dialplan/public.xml is made of (to skip re-rendering it unchanged)."""
    query = (Did.select(Did.number, Did.name, Did.destination, Tenant.domain, Tenant.timezone)
             .join(Tenant).where(Tenant.state == "active").order_by(Did.number))
    text = "\n".join(map(repr, plain_rows(query)))
    return hashlib.sha256(f"watchdog={watchdog}\n{text}".encode()).hexdigest()


def public_dids():
    """Every DID of an active tenant, with what the public context needs, by number (a cursor)."""
    query = (Did.select(Did.number, Did.name, Did.destination, Tenant.domain, Tenant.timezone)
             .join(Tenant).where(Tenant.state == "active").order_by(Did.number).dicts())
    return query.iterator()


# --------------------------------------------------------------------------- writing
def render_file(env: jinja2.Environment, template: str, context: dict, path: Path, atomic: bool = True,
                stream: bool = False) -> str:
    """Render a template into `path` (atomically: temp file + os.replace); return its sha256.

    `atomic=False` writes `path` directly: for a private staging folder that is moved in later.
    `stream=True` writes in batches, so memory stays flat whatever the file's size: for the
    public context, which grows with the number of tenants. A tenant's file is one tenant's
    worth of text, joined at once (40% faster than batches).
    """
    digest = hashlib.sha256()
    tmp = str(path)
    for attempt in (1, 2):
        try:
            if atomic:
                fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            else:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            break
        except FileNotFoundError:
            if attempt == 2:
                raise
            path.parent.mkdir(parents=True, exist_ok=True)  # (once per folder, not per file)
    try:
        with os.fdopen(fd, "wb") as fh:
            chunks = env.get_template(template).chunks(context)
            batches = iter(lambda: list(itertools.islice(chunks, 2048)), []) if stream else (chunks,)
            for batch in batches:
                data = "".join(batch).encode("utf-8")
                fh.write(data)
                digest.update(data)
        if atomic:
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, jinja2.TemplateError):
            raise template_error(template, exc) from None
        raise
    return digest.hexdigest()


def template_error(template: str, exc: jinja2.TemplateError) -> OperationError:
    """A template's mistake (an operator's override, usually) as one line: the file, its line, what."""
    line = getattr(exc, "lineno", None)
    name = getattr(exc, "filename", None) or getattr(exc, "name", None) or template
    tb = exc.__traceback__
    while tb is not None:  # the deepest frame of compiled template code gives the template's line
        compiled = tb.tb_frame.f_globals.get("__jinja_template__")
        if compiled is not None:
            line, name = compiled.get_corresponding_lineno(tb.tb_lineno), compiled.filename or template
        tb = tb.tb_next
    where = f"template {name}" + (f" line {line}" if line else "")
    return OperationError(f"{where}: {exc.message or exc.__class__.__name__}")


def render_tenant(env, data: dict, out: Path, watchdog: int = 6, atomic: bool = True) -> dict:
    """Write one tenant's files under `out`; return {relative path: sha256}.

    The directory and the dialplan are always written; the IVR, conference and callcenter
    files only when the tenant has such things (no empty files).
    """
    contexts = tenant_contexts(data, watchdog)
    digests = {}
    for kind, pattern, template in TENANT_FILES:
        if kind not in ("directory", "dialplan") and not any(contexts[kind].values()):
            continue
        rel = pattern.format(domain=data["tenant"]["domain"])
        digests[rel] = render_file(env, template, contexts[kind], out / rel, atomic)
    return digests


def render_public(env, out: Path, watchdog: int = 6, atomic: bool = True) -> str:
    """Write dialplan/public.xml (every DID of every active tenant) under `out`; return its sha256."""
    dids = (dict(d, watchdog=watchdog) for d in public_dids())
    context = {"context": PUBLIC_CONTEXT, "extensions": _lazy_public(dids)}
    return render_file(env, "dialplan.xml", context, out / PUBLIC_FILE, atomic, stream=True)


def _lazy_public(dids):
    for did in dids:
        yield from build_public_context([did])["extensions"]
    yield from _freeze([unknown_number_extension()])


UNKNOWN_NUMBER = "fsctl-unknown-number"


def unknown_number_extension() -> dict:
    """The public context's last extension: a number no tenant has is refused (SIP 404).

    `process_cdr=false` keeps mod_xml_cdr from writing a file for it (mod_xml_cdr.c): such a call
    belongs to no tenant, `fsctl cdr import` could never take it, and scanners on a public profile
    would fill the folder. The hang-up event still fires.
    """
    cond = _dest_cond("^(.*)$")
    cond["actions"] = [_act("set", "process_cdr=false"), _act("hangup", "UNALLOCATED_NUMBER")]
    return _ext(UNKNOWN_NUMBER, [cond])


def render_tree(out, templates_dir: str = "", watchdog: int = 6, env=None, atomic: bool = False) -> dict:
    """Render every active tenant and the public context under `out`; return {path: sha256}.

    For an output folder FreeSWITCH does not read (`fsctl render --out`); the live conf dir is
    written by `fsctl.services.apply` (staging, validation, journal, os.replace).
    """
    out = Path(out)
    env = env or make_environment(templates_dir)
    digests = {}
    for _tenant, data in load_tenants(active_tenants().iterator()):
        digests.update(render_tenant(env, data, out, watchdog, atomic))
    digests[PUBLIC_FILE] = render_public(env, out, watchdog, atomic)
    return digests
