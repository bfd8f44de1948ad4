"""Keep mod_callcenter in step with the rendered callcenter files: `reloadxml` is not enough.

What mod_callcenter does, read in FreeSWITCH's source (signalwire/freeswitch,
src/mod/applications/mod_callcenter/mod_callcenter.c, commit c9b35c5; there is no Event Socket
capture of it, so the replies below are the strings the source writes):

- `load_config()` runs only from `mod_callcenter_load()`: it loads every `<queue>` of
  callcenter.conf and imports `<agents>` and `<tiers>` into the module's own database
  (`load_agent()`: `cc_agent_add`, then `cc_agent_update` per attribute; an existing tier gets its
  level and position updated). `reloadxml` re-reads none of it, and an agent or a tier removed
  from the XML stays in that database, even across restarts, until `agent del` / `tier del`.
- `queue load Q` (`get_queue`): a queue already in memory is left as it is, otherwise it is read
  from the current XML; `queue reload Q` is `destroy_queue(Q, SWITCH_FALSE)` (never blocks: a
  queue in use is freed when its last call lets go) then the same load. Both reply `+OK` or
  `-ERR Invalid Queue not found!`. `queue unload Q` always replies `+OK`.
- `agent add A TYPE`: `+OK`, `-ERR Agent already exist!`, `-ERR Agent type invalid!`; the new
  agent is Logged Out with no contact, so its attributes are then set one by one, in
  `load_agent()`'s order: `agent set KEY A VALUE` -> `+OK`, `-ERR Agent not found!`,
  `-ERR Invalid Agent Status!`... `agent del A` deletes the agent and its tiers, always `+OK`.
- `tier add Q A LEVEL POSITION`: `+OK`, `-ERR Queue not found!`, `-ERR Agent not found!`,
  `-ERR Tier already exist!`; `tier set level|position Q A V`: `+OK`, `-ERR Unknown Error!` when
  the tier does not exist; `tier del Q A` always `+OK`.
- The arguments are split on spaces (`switch_separate_string(mydata, ' ', ...)`): no argument may
  hold a space (nor, to be safe, a quote or a backslash). Every command is a hash or SQL
  operation that does not wait for calls, so plain `api` is right (no `bgapi`).

So after a successful `reloadxml`, `fsctl apply` sends, per tenant whose callcenter files changed,
the difference between the files it replaced and the new ones (`diff_commands`): new queues
`load`, changed queues `reload`, agents and tiers `add` / `set` / `del`, removed queues `unload`.
An `already exist` reply to an `add` is accepted and followed by the `set`s that make the entry
match the XML, as `load_config()` itself does.

Failure. The XML stays applied. Before anything is sent, the tenant is written to
`<conf>/.fsctl-callcenter.json` with every queue, agent and tier it may have in mod_callcenter
(before or after); a tenant leaves that file only when all its commands got `+OK`. The first
failing command of a tenant stops that tenant (the rest depend on it); other tenants go on; a
lost connection stops everything. The next `fsctl apply` (even with no XML change) brings each
pending tenant back in line whatever was done in between (`resync_commands`): every queue of its
files `reload`ed, every agent and tier added or set, everything else it may still have deleted.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

from ..errors import OperationError

PENDING_FILE = ".fsctl-callcenter.json"
API = "callcenter_config"
OK = "+OK"
KINDS = ("queues", "agents", "tiers")
# `<agent>` attribute -> `agent set` key, in load_agent()'s order (the type goes with `agent add`).
AGENT_KEYS = (
    ("contact", "contact"),
    ("status", "status"),
    ("wrap-up-time", "wrap_up_time"),
    ("max-no-answer", "max_no_answer"),
    ("reject-delay-time", "reject_delay_time"),
    ("busy-delay-time", "busy_delay_time"),
    ("no-answer-delay-time", "no_answer_delay_time"),
)
AGENT_EXISTS = "-ERR Agent already exist!"
TIER_EXISTS = "-ERR Tier already exist!"
# What a reply most likely means, for the one-line error.
HINTS = {
    "-ERR Invalid Queue not found!": "the queue is not in callcenter.conf: check its fsctl include lines "
    "(conf/freeswitch/includes.xml)",
    f"-ERR {API} Command not found!": "mod_callcenter is not loaded",
}
_BAD_ARG = frozenset(" \t\r\n\v\f'\"\\")


class CallcenterError(OperationError):
    """The XML is applied but mod_callcenter did not take every change; `.result` is the apply's."""

    def __init__(self, message, result=None, exit_code=1):
        super().__init__(message)
        self.result = result
        self.exit_code = exit_code


class ConnectionLostError(Exception):
    """Raised by an `api` callable when the Event Socket cannot carry commands any more."""


@dataclass(frozen=True)
class Command:
    """One `callcenter_config` command; `if_exists` is sent instead of failing on `already exist`."""

    args: tuple
    if_exists: tuple = ()

    def __post_init__(self):
        for arg in self.args:
            if not arg or _BAD_ARG.intersection(arg):
                raise ValueError(f"{arg!r} cannot be a {API} argument (arguments are split on spaces)")

    @property
    def text(self) -> str:
        """The API command line, e.g. `callcenter_config queue load 600@acme.example`."""
        return " ".join((API, *self.args))


@dataclass
class State:
    """What the callcenter files of one tenant define."""

    queues: dict = field(default_factory=dict)  # name -> ((param, value), ...)
    agents: dict = field(default_factory=dict)  # name -> {attribute: value}
    tiers: dict = field(default_factory=dict)  # (queue, agent) -> (level, position)

    def keys(self) -> dict:
        """The names only: {"queues": set, "agents": set, "tiers": {(queue, agent)}}."""
        return {"queues": set(self.queues), "agents": set(self.agents), "tiers": set(self.tiers)}


@dataclass
class TenantPlan:
    """The commands for one tenant, and everything it may have in mod_callcenter meanwhile."""

    domain: str
    commands: list
    keys: dict
    retry: bool = False


# --------------------------------------------------------------------------- command builders
def queue_load(queue):
    """`queue load`: a queue not in memory yet is read from the XML."""
    return Command(("queue", "load", queue))


def queue_reload(queue):
    """`queue reload`: drop the queue from memory and read it again from the XML."""
    return Command(("queue", "reload", queue))


def queue_unload(queue):
    """`queue unload`."""
    return Command(("queue", "unload", queue))


def agent_set(key, agent, value):
    """`agent set KEY AGENT VALUE`."""
    return Command(("agent", "set", key, agent, str(value)))


def agent_add(agent, attrs: dict) -> list:
    """`agent add` and the `agent set`s that give it the XML's attributes (as load_agent() does)."""
    kind = attrs["type"]
    sets = [agent_set(key, agent, attrs[attr]) for attr, key in AGENT_KEYS if attr in attrs]
    return [Command(("agent", "add", agent, kind), if_exists=(agent_set("type", agent, kind),)), *sets]


def agent_del(agent):
    """`agent del` (its tiers go too)."""
    return Command(("agent", "del", agent))


def tier_set(key, queue, agent, value):
    """`tier set level|position QUEUE AGENT VALUE`."""
    return Command(("tier", "set", key, queue, agent, str(value)))


def tier_add(queue, agent, level, position):
    """`tier add`; an existing tier gets the level and position instead."""
    return Command(
        ("tier", "add", queue, agent, str(level), str(position)),
        if_exists=(tier_set("level", queue, agent, level), tier_set("position", queue, agent, position)),
    )


def tier_del(queue, agent):
    """`tier del`."""
    return Command(("tier", "del", queue, agent))


# --------------------------------------------------------------------------- pure planning
def diff_commands(old: State, new: State) -> list:
    """The commands that take mod_callcenter from `old` to `new` (queues, agents, tiers, removals)."""
    out = []
    for name in sorted(new.queues):
        if name not in old.queues:
            out.append(queue_load(name))
        elif old.queues[name] != new.queues[name]:
            out.append(queue_reload(name))
    for name in sorted(new.agents):
        attrs = new.agents[name]
        if name not in old.agents:
            out += agent_add(name, attrs)
            continue
        before = old.agents[name]
        # An attribute dropped from the XML keeps its value: load_agent() only sets those present.
        if attrs.get("type") != before.get("type"):
            out.append(agent_set("type", name, attrs["type"]))
        out += [
            agent_set(key, name, attrs[attr])
            for attr, key in AGENT_KEYS
            if attr in attrs and attrs[attr] != before.get(attr)
        ]
    out += [tier_del(q, a) for q, a in sorted(set(old.tiers) - set(new.tiers))]
    for (q, a), (level, position) in sorted(new.tiers.items()):
        if (q, a) not in old.tiers:
            out.append(tier_add(q, a, level, position))
            continue
        old_level, old_position = old.tiers[(q, a)]
        if level != old_level:
            out.append(tier_set("level", q, a, level))
        if position != old_position:
            out.append(tier_set("position", q, a, position))
    out += [agent_del(a) for a in sorted(set(old.agents) - set(new.agents))]
    out += [queue_unload(q) for q in sorted(set(old.queues) - set(new.queues))]
    return out


def resync_commands(maybe: dict, new: State) -> list:
    """Commands that bring mod_callcenter to `new` from any mix of what `maybe` names (a retry)."""
    out = [queue_reload(name) for name in sorted(new.queues)]
    for name in sorted(new.agents):
        out += agent_add(name, new.agents[name])
    out += [tier_del(q, a) for q, a in sorted(set(maybe["tiers"]) - set(new.tiers))]
    out += [tier_add(q, a, level, position) for (q, a), (level, position) in sorted(new.tiers.items())]
    out += [agent_del(a) for a in sorted(set(maybe["agents"]) - set(new.agents))]
    out += [queue_unload(q) for q in sorted(set(maybe["queues"]) - set(new.queues))]
    return out


def union(*keysets) -> dict:
    """The union of several `State.keys()`-shaped dicts."""
    out = {kind: set() for kind in KINDS}
    for keys in keysets:
        for kind in KINDS:
            out[kind] |= {tuple(k) if isinstance(k, list) else k for k in keys.get(kind, ())}
    return out


# --------------------------------------------------------------------------- the files
def tenant_files(domain: str) -> dict:
    """{kind: relative path} of one tenant's callcenter files."""
    return {kind: f"callcenter/{kind}/{domain}.xml" for kind in KINDS}


def domain_of(rel: str):
    """The tenant domain of a callcenter file's relative path, or None for any other file."""
    parts = rel.split("/")
    if len(parts) == 3 and parts[0] == "callcenter" and parts[1] in KINDS and parts[2].endswith(".xml"):
        return parts[2][: -len(".xml")]
    return None


def read_state(paths: dict, strict: bool = True) -> State:
    """Parse a tenant's callcenter files ({kind: Path or None}); `strict`: what `add` needs is there."""
    state = State()
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    for kind in KINDS:
        path = paths.get(kind)
        if path is None:
            continue
        root = etree.parse(str(path), parser).getroot()
        for el in root.iter(kind[:-1]):
            if kind == "queues":
                state.queues[el.get("name", "")] = tuple(
                    (p.get("name", ""), p.get("value", "")) for p in el.iter("param")
                )
            elif kind == "agents":
                state.agents[el.get("name", "")] = {
                    k: v for k, v in el.attrib.items() if k == "type" or k in dict(AGENT_KEYS)
                }
            else:
                state.tiers[(el.get("queue", ""), el.get("agent", ""))] = (el.get("level"), el.get("position"))
    if strict:
        missing = [f'agent "{a}" has no type' for a, attrs in state.agents.items() if "type" not in attrs]
        missing += [
            f'tier "{a}" in "{q}" has no level or position'
            for (q, a), (lv, pos) in state.tiers.items()
            if lv is None or pos is None
        ]
        if missing:
            raise OperationError(f"{missing[0]}: callcenter_config needs it (mod_callcenter would skip it)")
    return state


def plan(conf: Path, stage: Path | None, writes, deletes, pending: dict) -> list:
    """Per tenant whose callcenter files change (or that is pending), the commands to send.

    Call it before the staged files are moved in: the old state is read from `conf`, the new one
    from `stage` (files being written), nothing (files being deleted) or `conf` (unchanged).
    """
    writes, deletes = set(writes), set(deletes)
    domains = {domain_of(rel) for rel in writes | deletes} | set(pending)
    plans = []
    for domain in sorted(d for d in domains if d):
        old_paths, new_paths = {}, {}
        for kind, rel in tenant_files(domain).items():
            current = conf / rel
            old_paths[kind] = current if current.exists() else None
            if rel in writes:
                new_paths[kind] = stage / rel
            elif rel in deletes:
                new_paths[kind] = None
            else:
                new_paths[kind] = old_paths[kind]
        try:
            old, new = read_state(old_paths, strict=False), read_state(new_paths)
            keys = union(old.keys(), new.keys(), pending.get(domain, {}))
            if domain in pending:
                plans.append(TenantPlan(domain, resync_commands(keys, new), keys, retry=True))
            else:
                commands = diff_commands(old, new)
                if commands:
                    plans.append(TenantPlan(domain, commands, keys))
        except (ValueError, OperationError, etree.XMLSyntaxError, OSError) as exc:
            raise OperationError(f"callcenter files of {domain}: {exc}") from None
    return plans


# --------------------------------------------------------------------------- the pending marker
def load_pending(conf: Path) -> dict:
    """{domain: keys} of the tenants whose callcenter commands did not all succeed yet."""
    try:
        with open(conf / PENDING_FILE, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise OperationError(f"{conf / PENDING_FILE}: unreadable ({exc}); fix or delete it") from None
    return {domain: union(keys) for domain, keys in data.get("pending", {}).items()}


def save_pending(conf: Path, pending: dict):
    """Write the pending tenants (atomically); no file when there is none."""
    path = conf / PENDING_FILE
    if not pending:
        path.unlink(missing_ok=True)
        return
    data = {
        "pending": {
            domain: {kind: sorted(list(k) if isinstance(k, tuple) else k for k in keys[kind]) for kind in KINDS}
            for domain, keys in sorted(pending.items())
        }
    }
    fd, tmp = tempfile.mkstemp(dir=conf, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, separators=(",", ":"))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def mark_pending(conf: Path, plans):
    """Record every planned tenant as pending before its first command is sent (write-ahead)."""
    if not plans:
        return
    pending = load_pending(conf)
    for p in plans:
        pending[p.domain] = union(pending.get(p.domain, {}), p.keys)
    save_pending(conf, pending)


# --------------------------------------------------------------------------- sending
@dataclass
class Outcome:
    """What `sync` did: one record per command, the tenants still pending, the error if any."""

    records: list = field(default_factory=list)
    pending: list = field(default_factory=list)
    error: str = ""
    exit_code: int = 0


def send(plans, api) -> tuple:
    """Send each tenant's commands with `api(text) -> reply`; return (records, domains done, lost).

    A record is {"domain", "command", "reply", "status"} with status "ok", "exists" (an `add`
    whose entry was there: its `if_exists` commands follow), "failed" or "not sent". A tenant stops
    at its first failure; `ConnectionLostError` from `api` stops every tenant (`lost` is its text).
    """
    records, done, lost = [], [], ""
    for p in plans:
        todo, failed = list(p.commands), False
        while todo:
            cmd = todo.pop(0)
            record = {"domain": p.domain, "command": cmd.text, "reply": "", "status": "not sent"}
            records.append(record)
            if lost or failed:
                continue
            try:
                reply = api(cmd.text).strip()
            except ConnectionLostError as exc:
                lost = str(exc) or "connection lost"
                record.update(reply=f"no answer ({lost})", status="failed")
                continue
            record["reply"] = reply
            if reply == OK:
                record["status"] = "ok"
            elif cmd.if_exists and reply in (AGENT_EXISTS, TIER_EXISTS):
                record["status"] = "exists"
                todo[:0] = cmd.if_exists
            else:
                record["status"] = "failed"
                failed = True
        if not failed and not lost:
            done.append(p.domain)
    return records, done, lost


def sync(conf: Path, plans, api) -> Outcome:
    """Mark the planned tenants pending, send, then unmark the tenants that got every `+OK`."""
    mark_pending(conf, plans)
    records, done, lost = send(plans, api)
    pending = load_pending(conf)
    for domain in done:
        pending.pop(domain, None)
    save_pending(conf, pending)
    outcome = Outcome(records, sorted(pending))
    failed = [r for r in records if r["status"] == "failed"]
    if failed:
        first = failed[0]
        hint = HINTS.get(first["reply"])
        text = f"{first['command']}: {first['reply']}" + (f" ({hint})" if hint else "")
        others = len({r["domain"] for r in failed}) - 1
        if others:
            text += f"; {others} more tenant{'s' if others > 1 else ''} failed"
        outcome.error = (
            f"{text}; the XML is applied, callcenter changes pending for "
            f"{', '.join(outcome.pending)}: fsctl apply sends them again"
        )
        outcome.exit_code = 3 if lost else 1
    return outcome
