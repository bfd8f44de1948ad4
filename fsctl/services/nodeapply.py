"""`fsctl apply` with more than one FreeSWITCH: every node brought in line, one at a time.

Each node is an ordinary apply (fsctl.services.apply: lock, journal, validation, reloadxml, mod_callcenter)
on the node's own conf dir, scoped to the tenants placed on it (`applied.OnNode`). How the files
reach the node:

- `conf_dir` (default `<conf_dir>/nodes/<name>`): fsctl writes the node's XML there. A node on
  the fsctl machine, or one whose folder is mounted there, reads it directly.
- `sftp` + `remote_dir`: the conf dir is fsctl's local copy of what the node runs; the files an
  apply changed are pushed to `remote_dir` over SFTP (`SftpPush`: each file uploaded to a
  temporary name and renamed over the old one) before `reloadxml` on the node's Event Socket.
  The paths to push are written down first (`.fsctl-push.json`): a push cut short is completed
  by the next apply before anything else, and a refused reload pushes the restored files back.

A node that cannot be reached (Event Socket, or SFTP) is skipped before anything is rendered for
it; its tenants stay pending and the next apply tries again. The others are applied all the same.

Draining (fsctl tenant move): the old home keeps the tenant's configuration until `drain_after`
(set once Kamailio routes the tenant to its new home, plus the longest registration Kamailio
grants: by then every phone has re-registered there) and then until the node reports no channel
of the tenant (`tenant_channels` on `show channels as json`). Only then is the tenant taken off
that node, by the same apply.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import os
from pathlib import Path

from ..db import transaction
from ..errors import FsctlError, UnreachableError
from ..freeswitch.callcenter import CallcenterError
from ..model import Node, NodeConfig, Tenant, utcnow
from . import apply as single
from .applied import OnNode
from .nodes import node_endpoint, node_recordings_dir, pushes_over_sftp

PUSH_PENDING = ".fsctl-push.json"


def node_conf_dir(settings, node) -> Path:
    """Where fsctl writes a node's XML: its own conf_dir, else <conf_dir>/nodes/<name>."""
    return Path(node.conf_dir) if node.conf_dir else Path(settings.conf_dir) / "nodes" / node.name


def node_settings(settings, node):
    """The settings with the node's Event Socket and recordings folder in place of the single FreeSWITCH's."""
    return dataclasses.replace(
        settings,
        esl_host=node.esl_host,
        esl_port=node.esl_port,
        esl_password=node.esl_password or settings.esl_password,
        recordings_dir=node_recordings_dir(settings, node),
    )


def node_reloader(settings, node, factory=None):
    """An EslReloader for the node's Event Socket (`where` names the node)."""
    reloader = single.esl_reloader(node_settings(settings, node), factory)
    reloader.where = f"{node.name} ({node.esl_host}:{node.esl_port})"
    return reloader


# --------------------------------------------------------------------------- SFTP delivery
class SftpPush:
    """Deliver a node's changed files over SFTP (`apply_config(push=...)`); one connection per apply."""

    def __init__(self, endpoint, remote_dir, connect=None):
        self.endpoint, self.remote_dir = endpoint, remote_dir
        self._connect = connect
        self._conn = None

    def connection(self):
        """The SFTP connection, opened on first use (UnreachableError, HostKeyError...)."""
        if self._conn is None:
            from . import sftp

            self._conn = (self._connect or sftp.Connection)(self.endpoint)
        return self._conn

    def resume(self, conf: Path):
        """Push what an earlier apply left undelivered (the local copy is what the node must have)."""
        pending = _load_pending(conf)
        if pending:
            self._send(conf, pending)

    def deliver(self, conf: Path, paths):
        """Push `paths` (relative; gone locally = removed remotely); written down first."""
        pending = sorted(set(_load_pending(conf)) | set(paths))
        if not pending:
            return
        _save_pending(conf, pending)
        self._send(conf, pending)

    def take_back(self, conf: Path, paths):
        """After a rollback: push the restored files back; if that fails they stay pending."""
        with contextlib.suppress(FsctlError):
            self.deliver(conf, paths)

    def _send(self, conf, paths):
        from . import sftp

        sftp.push_files(self.connection(), str(conf), self.remote_dir, paths)
        _save_pending(conf, [])

    def close(self):
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


def _load_pending(conf: Path) -> list:
    try:
        with open(conf / PUSH_PENDING, encoding="utf-8") as fh:
            return list(json.load(fh))
    except FileNotFoundError:
        return []
    except (OSError, ValueError):
        # Damaged: the node may differ anywhere, push everything fsctl manages there.
        return single.managed_files(conf)


def _save_pending(conf: Path, paths):
    if not paths:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(conf / PUSH_PENDING)
        return
    single._write_json_atomic(conf / PUSH_PENDING, sorted(paths))


def sftp_push(settings, node, connect=None):
    """The SftpPush of a node with `sftp` and `remote_dir`, else None (the node reads its conf dir itself)."""
    if not pushes_over_sftp(node):
        return None
    return SftpPush(node_endpoint(settings, node), node.remote_dir, connect)


# --------------------------------------------------------------------------- draining
def tenant_channels(reply: str, domain: str) -> int:
    """How many channels of `show channels as json` belong to the tenant `domain`.

    A channel is the tenant's when its dialplan context is the tenant's (calls of its users, DIDs
    once handed over), its presence is one of the tenant's users (legs ringing them), or its
    channel name is `sofia/<profile>/<user>@<domain>`.
    """
    try:
        rows = json.loads(reply).get("rows") or []
    except (ValueError, AttributeError):
        raise FsctlError(f"show channels as json: unexpected reply {reply[:80]!r}") from None
    count = 0
    for row in rows:
        host = str(row.get("name", "")).rpartition("@")[2].split(":")[0]
        if domain in (row.get("context"), row.get("initial_context"), host) or str(row.get("presence_id", "")).endswith(
            "@" + domain
        ):
            count += 1
    return count


def drain(reloaders: dict, now) -> list:
    """Take tenants off their draining node once due and without calls there; return (domain, node)."""
    done = []
    due = (
        Tenant.select()
        .where(Tenant.draining_node.is_null(False) & Tenant.drain_after.is_null(False) & (Tenant.drain_after <= now))
        .order_by(Tenant.domain)
    )
    for tenant in due:
        reloader = reloaders.get(tenant.draining_node_id)
        if reloader is None:
            continue
        try:
            busy = tenant_channels(_text(reloader.api("show channels as json")), tenant.domain)
        except Exception:  # unreachable or odd: it keeps the tenant, asked again next time
            continue
        if busy:
            continue
        node = tenant.draining_node.name
        with transaction():
            Tenant.update(draining_node=None, drain_after=None).where(
                (Tenant.id == tenant.id) & (Tenant.draining_node == tenant.draining_node_id)
            ).execute()
        done.append((tenant.domain, node))
    return done


def start_draining(now, drain_seconds) -> list:
    """Moved tenants whose new home runs them: the drain clock starts (Kamailio routes there now)."""
    started = []
    waiting = Tenant.select().where(Tenant.draining_node.is_null(False) & Tenant.drain_after.is_null())
    for tenant in waiting:
        if routed_home(tenant):
            with transaction():
                Tenant.update(drain_after=now + dt.timedelta(seconds=drain_seconds)).where(
                    Tenant.id == tenant.id
                ).execute()
            started.append(tenant.domain)
    return started


def routed_home(tenant) -> bool:
    """True when the tenant's home node runs its configuration (any revision): Kamailio may send it there."""
    return (
        NodeConfig.select()
        .where((NodeConfig.node == tenant.home_node_id) & (NodeConfig.domain == tenant.domain))
        .exists()
    )


def _text(reply):
    return reply if isinstance(reply, str) else reply.decode("utf-8", "replace")


# --------------------------------------------------------------------------- apply
@dataclasses.dataclass
class NodeResult:
    """One node's part of an apply: its ApplyResult, or why it was not (fully) applied (`error`, without
    the node's name)."""

    node: str
    result: single.ApplyResult | None = None
    error: str = ""
    exit_code: int = 0
    pending: int = 0  # tenants still to render or remove there

    def as_dict(self):
        return {
            "node": self.node,
            "ok": not self.error,
            "error": self.error,
            "pending": self.pending,
            "result": self.result.as_dict() if self.result else None,
        }


@dataclasses.dataclass
class ClusterResult:
    """What `fsctl apply` did on every node (and Kamailio, fsctl.kamailio)."""

    nodes: list = dataclasses.field(default_factory=list)
    drained: list = dataclasses.field(default_factory=list)
    draining_started: list = dataclasses.field(default_factory=list)
    kamailio: dict | None = None
    kamailio_error: str = ""
    kamailio_exit: int = 0

    @property
    def exit_code(self):
        """0 when everything is applied; 3 when a node (or Kamailio) was unreachable; else 1."""
        codes = [n.exit_code for n in self.nodes if n.error] + ([self.kamailio_exit] if self.kamailio_error else [])
        if not codes:
            return 0
        return 3 if 3 in codes else max(codes)

    def as_dict(self):
        return {
            "nodes": [n.as_dict() for n in self.nodes],
            "drained": [{"domain": d, "node": n} for d, n in self.drained],
            "draining_started": self.draining_started,
            "kamailio": self.kamailio,
            "kamailio_error": self.kamailio_error,
        }


def apply_nodes(
    settings, *, full=False, now=None, reloader_factory=None, sftp_connect=None, env=None, kamailio=None, only=None
):
    """Apply every node (or `only` the named ones); a node that fails is reported and skipped.

    `reloader_factory(settings, node)` builds a node's reloader (tests: fake FreeSWITCHes);
    `kamailio(result, now)` runs after the nodes (fsctl.services.kamailio.apply_routing) and returns its
    report. Returns a ClusterResult (its exit_code says whether everything was applied).
    """
    from .. import render

    now = now or utcnow()
    out = ClusterResult()
    nodes = list(Node.select().order_by(Node.name))
    if only:
        nodes = [n for n in nodes if n.name in only]
    make = reloader_factory or node_reloader
    reloaders = {n.id: make(settings, n) for n in nodes}
    env = env or render.make_environment(
        settings.templates_dir, bytecode_dir=Path(settings.conf_dir) / single.CACHE_DIR
    )
    try:
        out.drained = drain(reloaders, now)
        for node in nodes:
            out.nodes.append(_apply_node(settings, node, reloaders[node.id], full, env, sftp_connect))
        if kamailio is not None:
            try:
                out.kamailio = kamailio(out, now)
            except FsctlError as exc:
                out.kamailio_error, out.kamailio_exit = str(exc), exc.exit_code
        if kamailio is None or not out.kamailio_error:
            out.draining_started = start_draining(now, settings.kamailio_expires)
    finally:
        for reloader in reloaders.values():
            reloader.close()
    return out


def _apply_node(settings, node, reloader, full, env, sftp_connect):
    outcome = NodeResult(node.name)
    push = sftp_push(settings, node, sftp_connect)
    conf = node_conf_dir(settings, node)
    scope = OnNode(node)
    try:
        _preflight(node, reloader, push)
        outcome.result = single.apply_config(
            conf,
            _KeepOpen(reloader),
            templates_dir=settings.templates_dir,
            watchdog=settings.handoff_watchdog,
            full=full,
            env=env,
            scope=scope,
            push=push,
        )
    except CallcenterError as exc:  # the XML is applied there; mod_callcenter still owes commands
        outcome.result, outcome.error, outcome.exit_code = exc.result, str(exc), exc.exit_code
    except FsctlError as exc:
        outcome.error, outcome.exit_code = str(exc), exc.exit_code
    finally:
        if push is not None:
            push.close()
    changed, removed = single.plan(False, scope)
    outcome.pending = len(changed) + len(removed)
    return outcome


class _KeepOpen:
    """The node's reloader, its connection kept open after apply_config (drain and status reuse it)."""

    def __init__(self, reloader):
        self._reloader = reloader
        self.where = reloader.where

    def __call__(self):
        return self._reloader()

    def api(self, command):
        return self._reloader.api(command)


def _preflight(node, reloader, push):
    """Reach the node's Event Socket (and SFTP) before rendering anything for it."""
    from ..freeswitch.esl import EslAuthError, EslCommandError, EslError

    try:
        reloader.api("status")
    except EslCommandError:  # it answered: reachable
        pass
    except EslAuthError:
        raise FsctlError("FreeSWITCH refused the Event Socket password: nothing applied there") from None
    except EslError as exc:
        raise UnreachableError(
            f"FreeSWITCH {node.esl_host}:{node.esl_port} unreachable ({exc}): nothing applied "
            "there, its tenants stay pending; the next fsctl apply retries"
        ) from None
    if push is not None:
        try:
            push.connection()
        except UnreachableError as exc:
            raise UnreachableError(
                f"{exc}: nothing applied there, its tenants stay pending; the next fsctl apply retries"
            ) from None


# --------------------------------------------------------------------------- status
def node_status(settings, callcenter_pending=None) -> list:
    """Per tenant and node holding it: role, applied and current revision, applied / pending / removed.

    `callcenter_pending(node) -> set of domains` (default: read from each node's conf dir).
    """
    from ..freeswitch.callcenter import load_pending

    names = dict(Node.select(Node.id, Node.name).tuples())
    applied = {(a.node_id, a.domain): a for a in NodeConfig.select()}
    rows = []
    for t in Tenant.select().order_by(Tenant.domain):
        roles = [(t.home_node_id, "home"), (t.standby_node_id, "standby"), (t.draining_node_id, "draining")]
        for node_id, role in roles:
            if node_id is None:
                continue
            a = applied.pop((node_id, t.domain), None)
            if t.state != "active":
                status, change = ("pending", "remove") if a else ("removed", "")
            elif a is None or a.revision != t.revision:
                status, change = "pending", "render"
            else:
                status, change = "applied", ""
            rows.append(_row(t.domain, names[node_id], role, t.state, a, t.revision, status, change))
    for (node_id, domain), a in applied.items():  # still on a node that no longer holds it
        rows.append(_row(domain, names[node_id], "", "gone", a, None, "pending", "remove"))
    nodes = {n.name: n for n in Node.select()}
    pending_cc = {}
    for row in rows:
        if row["status"] != "applied":
            continue
        name = row["node"]
        if name not in pending_cc:
            pending_cc[name] = (
                callcenter_pending(nodes[name])
                if callcenter_pending
                else set(load_pending(node_conf_dir(settings, nodes[name])))
            )
        if row["domain"] in pending_cc[name]:
            row["status"], row["change"] = "pending", "callcenter"
    return sorted(rows, key=lambda r: (r["domain"], r["node"]))


def _row(domain, node, role, state, applied, revision, status, change):
    return {
        "domain": domain,
        "node": node,
        "role": role,
        "state": state,
        "applied_revision": applied.revision if applied else None,
        "revision": revision,
        "status": status,
        "change": change,
        "applied_at": applied.applied_at.isoformat(sep=" ", timespec="seconds") if applied else None,
    }
