"""FreeSWITCH nodes behind Kamailio, and where each tenant lives on them (placement).

With no node defined, fsctl drives the one FreeSWITCH of the settings, exactly as before.
Once nodes exist, every tenant has a *home* node (Kamailio sends its phones and its numbers
there) and, with two nodes or more, a *standby* node (Kamailio fails over to it); both hold the
tenant's configuration. `move_tenant` gives a tenant a new home: the old one becomes its
*draining* node and keeps the configuration until `fsctl apply` sees its last call there end
(`drain_after`, then no channel of the tenant: fsctl.services.nodeapply).

Load, for choosing a node: the users of the tenants homed there plus their calls of the last
24 hours (`load`). A new tenant goes to the least loaded node, its standby to the least loaded
other one (ties by name).
"""

from __future__ import annotations

import datetime as dt
import re

import peewee as pw

from .. import validate
from ..errors import ConflictError, NotFoundError, ValidationError
from ..model import CallRecord, Node, NodeConfig, Tenant, User, utcnow

NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
HOST_RE = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$")
SFTP_RE = re.compile(r"^(?P<user>[a-z_][a-z0-9_.-]{0,31})@(?P<host>[^:@\s]+)(:(?P<port>[0-9]{1,5}))?$")
RECENT = dt.timedelta(hours=24)  # calls this recent count in a node's load
PUBLIC_PORT_OFFSET = 20  # FreeSWITCH's stock external profile listens 20 ports above the internal one
ROLES = ("home", "standby", "draining")


def nodes_defined() -> bool:
    """True once the platform has nodes (then every tenant has a home node)."""
    return Node.select().exists()


def address(value, field):
    """`HOST:PORT` -> (host, port): a host name or IPv4 address and a port 1-65535."""
    text = (value or "").strip()
    host, sep, port = text.rpartition(":")
    if not sep or not HOST_RE.match(host) or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValidationError(field, value, "must be HOST:PORT, e.g. 127.0.0.1:5060")
    return host, int(port)


def node_name(value, field="node.name"):
    """A node's name: a lowercase letter, then letters, digits or '-' (max 32)."""
    text = (value or "").strip()
    if not NAME_RE.match(text):
        raise ValidationError(
            field, value, "must start with a lowercase letter, then lowercase letters, digits or '-' (max 32)"
        )
    return text


def sftp_target(value, field="node.sftp"):
    """`user@host[:port]` (empty: none) -> the normalised text."""
    text = (value or "").strip()
    if not text:
        return ""
    m = SFTP_RE.match(text)
    if not m or not HOST_RE.match(m["host"]) or (m["port"] and not 1 <= int(m["port"]) <= 65535):
        raise ValidationError(field, value, "must be USER@HOST or USER@HOST:PORT")
    return f"{m['user']}@{m['host']}:{int(m['port'] or 22)}"


def get_node(name, field="node"):
    """The node called `name`, or NotFoundError."""
    node = Node.get_or_none(Node.name == (name or "").strip())
    if node is None:
        raise NotFoundError(field, name)
    return node


def list_nodes():
    """Every node, by name."""
    return list(Node.select().order_by(Node.name))


def add_node(
    name, esl, sip, public=None, esl_password=None, conf_dir="", sftp="", remote_dir="", now=None, recordings_dir=""
):
    """Add a node; tenants without a home or a standby get one (by load). Returns (node, placed tenants)."""
    name = node_name(name)
    if Node.select().where(Node.name == name).exists():
        raise ConflictError(f'node "{name}" already exists')
    values = _node_values(
        esl=esl,
        sip=sip,
        public=public,
        esl_password=esl_password,
        conf_dir=conf_dir,
        sftp=sftp,
        remote_dir=remote_dir,
        recordings_dir=recordings_dir,
    )
    if "public_host" not in values:
        values["public_host"], values["public_port"] = values["sip_host"], values["sip_port"] + PUBLIC_PORT_OFFSET
    _check_sftp(values)
    node = Node.create(name=name, **values)
    return node, place_unplaced(now)


def _delivery(node):
    """Where the node's XML goes: its conf dir, and the SFTP target it is uploaded to (if any)."""
    return node.conf_dir, node.sftp if node.remote_dir else "", node.remote_dir


def edit_node(name, **changes):
    """Change a node's addresses or delivery; only the given ones. Returns (node, moved): when the
    files now go elsewhere (conf dir, SFTP target), nothing is taken as applied there any more and
    the next apply renders every tenant of the node again."""
    node = get_node(name)
    values = _node_values(**changes)
    before = _delivery(node)
    for key, value in values.items():
        setattr(node, key, value)
    _check_sftp({"sftp": node.sftp, "remote_dir": node.remote_dir})
    moved = _delivery(node) != before
    if values:
        node.save()
    if moved:
        NodeConfig.delete().where(NodeConfig.node == node).execute()
    return node, moved


def remove_node(name):
    """Remove a node; refused while a tenant lives there (home, standby or draining)."""
    node = get_node(name)
    counts = _role_counts(node)
    if any(counts.values()):
        what = ", ".join(f"{n} as {role}" for role, n in counts.items() if n)
        raise ConflictError(
            f'node "{node.name}" still holds tenants ({what}): move them first '
            f"(fsctl tenant move DOMAIN --to NODE [--standby NODE])"
        )
    node.delete_instance(recursive=True)  # its NodeConfig rows go with it
    return node


def _node_values(
    esl=None, sip=None, public=None, esl_password=None, conf_dir=None, sftp=None, remote_dir=None, recordings_dir=None
):
    values = {}
    if esl is not None:
        values["esl_host"], values["esl_port"] = address(esl, "node.esl")
    if sip is not None:
        values["sip_host"], values["sip_port"] = address(sip, "node.sip")
    if public is not None:
        values["public_host"], values["public_port"] = address(public, "node.public")
    if esl_password is not None:
        values["esl_password"] = validate.text(esl_password, "node.esl_password", max_len=128) or None
    if conf_dir is not None:
        values["conf_dir"] = _folder(conf_dir, "node.conf_dir")
    if sftp is not None:
        values["sftp"] = sftp_target(sftp)
    if remote_dir is not None:
        values["remote_dir"] = _folder(remote_dir, "node.remote_dir")
    if recordings_dir is not None:
        values["recordings_dir"] = _folder(recordings_dir, "node.recordings_dir")
    return values


def _folder(value, field):
    text = (value or "").strip()
    if text and not text.startswith("/"):
        raise ValidationError(field, value, "must be an absolute path")
    if validate.CONTROL_RE.search(text):
        raise ValidationError(field, value, "must not contain control characters")
    return text.rstrip("/") or ("/" if text else "")


def _check_sftp(values):
    # --sftp alone is the node's SSH account for its recordings (rec pull, rec publish); with
    # --remote-dir the XML goes that way too.
    if values.get("remote_dir") and not values.get("sftp"):
        raise ValidationError(
            "node.remote_dir",
            values.get("remote_dir"),
            "needs --sftp USER@HOST[:PORT] (the account that uploads the files there)",
        )


def pushes_over_sftp(node) -> bool:
    """True when the node's XML is uploaded over SFTP (`--sftp` and `--remote-dir`)."""
    return bool(node.sftp and node.remote_dir)


def node_endpoint(settings, node):
    """The node's SFTP endpoint (fsctl.services.sftp.Endpoint: its --sftp account, the sftp_key and
    sftp_known_hosts settings), or None when it has none."""
    if not node.sftp:
        return None
    from .sftp import Endpoint

    user, _, hostport = node.sftp.partition("@")
    host, _, port = hostport.rpartition(":")
    return Endpoint(host, int(port), user, settings.sftp_key, settings.sftp_known_hosts)


def node_recordings_dir(settings, node) -> str:
    """The folder the node's FreeSWITCH records into, on the node: its own, else the recordings_dir setting."""
    return node.recordings_dir or settings.recordings_dir


def _role_counts(node):
    return {
        "home": Tenant.select().where(Tenant.home_node == node).count(),
        "standby": Tenant.select().where(Tenant.standby_node == node).count(),
        "draining": Tenant.select().where(Tenant.draining_node == node).count(),
    }


# --------------------------------------------------------------------------- load and placement
def loads(now=None) -> dict:
    """{node id: load}: users of the tenants homed there plus their calls of the last 24 hours."""
    now = now or utcnow()
    out = {n.id: 0 for n in Node.select(Node.id)}
    users = (
        User.select(Tenant.home_node, pw.fn.COUNT(User.id))
        .join(Tenant)
        .where(Tenant.home_node.is_null(False))
        .group_by(Tenant.home_node)
        .tuples()
    )
    calls = (
        CallRecord.select(Tenant.home_node, pw.fn.COUNT(CallRecord.id))
        .join(Tenant)
        .where(Tenant.home_node.is_null(False) & (CallRecord.started_at >= now - RECENT))
        .group_by(Tenant.home_node)
        .tuples()
    )
    for node_id, count in list(users) + list(calls):
        out[node_id] = out.get(node_id, 0) + count
    return out


def _least_loaded(load, exclude=()):
    """The least loaded node not in `exclude` (ties by name), or None."""
    candidates = [n for n in Node.select().order_by(Node.name) if n.id not in {x.id for x in exclude if x}]
    if not candidates:
        return None
    return min(candidates, key=lambda n: (load.get(n.id, 0), n.name))


def choose(node=None, standby=None, now=None):
    """(home, standby) for a new tenant: the given ones, else chosen by load. Both None without nodes."""
    if node is None and standby is None and not nodes_defined():
        return None, None
    if node is None and standby is not None:
        raise ValidationError("tenant.standby", standby, "needs --node (the tenant's home node)")
    load = loads(now)
    home = get_node(node, "node") if node is not None else _least_loaded(load)
    if standby is not None:
        spare = get_node(standby, "node")
        if spare.id == home.id:
            raise ValidationError("tenant.standby", standby, "must differ from the home node")
    else:
        spare = _least_loaded(load, exclude=(home,))
    return home, spare


def place_unplaced(now=None) -> list:
    """Give every tenant without a home, or without a standby, one (by load); return their domains."""
    placed = []
    load = loads(now)
    for tenant in (
        Tenant.select().where(Tenant.home_node.is_null() | Tenant.standby_node.is_null()).order_by(Tenant.domain)
    ):
        changed = False
        if tenant.home_node_id is None:
            tenant.home_node = _least_loaded(load)
            load[tenant.home_node.id] = load.get(tenant.home_node.id, 0) + _tenant_load(tenant, now)
            changed = True
        if tenant.standby_node_id is None:
            spare = _least_loaded(load, exclude=(tenant.home_node,))
            if spare is not None:
                tenant.standby_node = spare
                changed = True
        if changed:
            tenant.save()
            placed.append(tenant.domain)
    return placed


def _tenant_load(tenant, now=None):
    now = now or utcnow()
    return (
        User.select().where(User.tenant == tenant).count()
        + CallRecord.select().where((CallRecord.tenant == tenant) & (CallRecord.started_at >= now - RECENT)).count()
    )


def move_tenant(tenant, to, standby=None):
    """Give a tenant a new home (and optionally standby) node without dropping its calls.

    The old home, unless it stays the standby, becomes the draining node: it keeps the tenant's
    configuration until its calls there are over. Returns the tenant.
    """
    if tenant.home_node_id is None:
        raise ConflictError(f'tenant "{tenant.domain}" has no home node: the platform has no nodes (fsctl node add)')
    new_home = get_node(to, "node")
    old_home, old_standby = tenant.home_node, tenant.standby_node
    if standby is not None:
        new_standby = get_node(standby, "node")
    elif old_standby is not None and old_standby.id == new_home.id:
        new_standby = old_home  # home and standby swap
    else:
        new_standby = old_standby
    if new_standby is not None and new_standby.id == new_home.id:
        raise ValidationError("tenant.standby", new_standby.name, "must differ from the home node")
    if new_home.id == old_home.id and (new_standby.id if new_standby else None) == tenant.standby_node_id:
        raise ConflictError(
            f'tenant "{tenant.domain}" already lives on {new_home.name}'
            + (f" with standby {new_standby.name}" if new_standby else "")
        )
    if new_home.id != old_home.id:
        keeps = {new_home.id, new_standby.id if new_standby else None}
        if old_home.id not in keeps:
            # A tenant moved twice before the first drain ended: the older draining node is simply
            # dropped from the placement (it still holds the files until the next apply removes them).
            tenant.draining_node = old_home
            tenant.drain_after = None  # set when Kamailio routes to the new home (fsctl.services.nodeapply)
    if tenant.draining_node_id in {new_home.id, new_standby.id if new_standby else None}:
        tenant.draining_node, tenant.drain_after = None, None
    tenant.home_node, tenant.standby_node = new_home, new_standby
    tenant.save()
    return tenant


def placement(tenant) -> dict:
    """The tenant's nodes by role (names, None when unset)."""
    names = _names()
    return {f"{role}_node": names.get(getattr(tenant, f"{role}_node_id")) for role in ROLES}


def _names():
    return dict(Node.select(Node.id, Node.name).tuples())


def node_dict(node, load=None) -> dict:
    """The stable JSON shape of a node."""
    counts = _role_counts(node)
    return {
        "name": node.name,
        "esl": f"{node.esl_host}:{node.esl_port}",
        "sip": f"{node.sip_host}:{node.sip_port}",
        "public": f"{node.public_host}:{node.public_port}",
        "conf_dir": node.conf_dir,
        "sftp": node.sftp,
        "remote_dir": node.remote_dir,
        "recordings_dir": node.recordings_dir,
        "home": counts["home"],
        "standby": counts["standby"],
        "draining": counts["draining"],
        "load": (load or loads()).get(node.id, 0),
        "applied": NodeConfig.select().where(NodeConfig.node == node).count(),
    }
