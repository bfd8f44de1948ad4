"""Kamailio's files, rendered from the database: kamailio.cfg (template), dispatcher sets, routing tables.

What they are and how they are reloaded: fsctl.services.kamailio. Here only their text:

    kamailio.cfg            from the template kamailio.cfg (templates_dir overrides it)
    dispatcher.list         one set per node pair in use: phones (internal profiles) and carriers
                            (external profiles), home node first
    dbtext/fsctl_domains    tenant domain -> its phones' set      (htable fsctl_domains)
    dbtext/fsctl_dids       DID without + -> its carriers' set   (htable fsctl_dids)
    dbtext/version          db_text's table of table versions

Set ids are derived from the nodes' ids, so a pair keeps its set whatever else changes: phones
`home * 10000 + standby` (standby 0 when there is none), carriers the same plus 1,000,000,000.
A tenant is routed to its home pair once its home node runs its configuration; a tenant moved to
a node that does not run it yet stays routed to the node it left (`route_pair`).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..model import Did, NodeConfig, Tenant

PHONES_SET = 0
CARRIERS_SET = 1_000_000_000
PAIR = 10_000  # set = home * PAIR + standby
CFG = "kamailio.cfg"
DISPATCHER = "dispatcher.list"
DBTEXT = "dbtext"
TABLES = ("fsctl_domains", "fsctl_dids")
HEADER = "key_name(str) key_type(int) value_type(int) key_value(str) expires(int) \n"
HOME_PRIORITY, STANDBY_PRIORITY = 10, 5
FAILOVER_MS = 2000  # a request a node does not answer in this time goes to the next node of its set


def set_id(home_id: int, standby_id: int | None, carriers: bool = False) -> int:
    """The dispatcher set of a node pair (for phones, or for carriers' DIDs)."""
    return (CARRIERS_SET if carriers else PHONES_SET) + home_id * PAIR + (standby_id or 0)


def pair_of(set_number: int) -> tuple:
    """(home id, standby id or None, carriers?) of a set id."""
    carriers = set_number >= CARRIERS_SET
    rest = set_number - (CARRIERS_SET if carriers else PHONES_SET)
    return rest // PAIR, (rest % PAIR) or None, carriers


def route_pair(tenant, applied: set) -> tuple:
    """(home id, standby id) Kamailio sends the tenant to: its home pair once the home runs it."""
    if tenant.draining_node_id and (tenant.home_node_id, tenant.domain) not in applied:
        return tenant.draining_node_id, tenant.standby_node_id
    return tenant.home_node_id, tenant.standby_node_id


def build_routing() -> dict:
    """{"domains": {domain: set}, "dids": {digits: set}, "sets": {set: [(node id, priority)]}} of the
    active tenants with a home node (a pure reading of the database)."""
    applied = set(NodeConfig.select(NodeConfig.node, NodeConfig.domain).tuples())
    tenants = (
        Tenant.select(Tenant.id, Tenant.domain, Tenant.home_node, Tenant.standby_node, Tenant.draining_node)
        .where((Tenant.state == "active") & Tenant.home_node.is_null(False))
        .order_by(Tenant.domain)
    )
    domains, dids, pairs = {}, {}, {}
    for tenant in tenants:
        pair = route_pair(tenant, applied)
        pairs[tenant.id] = pair
        domains[tenant.domain] = set_id(*pair)
    for number, tenant_id in Did.select(Did.number, Did.tenant).order_by(Did.number).tuples():
        if tenant_id in pairs:
            dids[number.lstrip("+")] = set_id(*pairs[tenant_id], carriers=True)
    sets = {s: _members(s) for s in sorted(set(domains.values()) | set(dids.values()))}
    return {"domains": domains, "dids": dids, "sets": sets}


def _members(set_number):
    home, standby, _ = pair_of(set_number)
    return [(home, HOME_PRIORITY)] + ([(standby, STANDBY_PRIORITY)] if standby else [])


def dispatcher_text(sets: dict, nodes: dict) -> str:
    """dispatcher.list: `setid sip:host:port flags priority attrs`, a comment per set."""
    lines = ["# Rendered by fsctl: one set per node pair (home first). Reload: kamcmd dispatcher.reload\n"]
    for number in sorted(sets):
        _, _, carriers = pair_of(number)
        members = [(nodes[n], p) for n, p in sets[number] if n in nodes]
        if not members:
            continue
        names = " + ".join(n.name for n, _ in members)
        lines.append(f"# {names}: {'carriers (external profiles)' if carriers else 'phones (internal profiles)'}\n")
        for node, priority in members:
            host, port = (node.public_host, node.public_port) if carriers else (node.sip_host, node.sip_port)
            kind = "public" if carriers else "sip"
            lines.append(f"{number} sip:{host}:{port} 0 {priority} duid={node.name}-{kind}\n")
    return "".join(lines)


def table_text(rows: dict) -> str:
    """A db_text htable table: key -> integer value (the set), sorted."""
    return HEADER + "".join(f"{key}:0:1:{value}:0\n" for key, value in sorted(rows.items()))


def parse_table(text: str) -> dict:
    """The rows of a table written by table_text ({} for anything else)."""
    rows = {}
    for line in text.splitlines()[1:]:
        parts = line.split(":")
        if len(parts) == 5 and parts[3].isdigit():
            rows[parts[0]] = int(parts[3])
    return rows


VERSION_TEXT = "table_name(str) table_version(int) \n" + "".join(f"{t}:1\n" for t in TABLES)


# --------------------------------------------------------------------------- kamailio.cfg
def cfg_context(settings, folder) -> dict:
    """What kamailio.cfg prints: sockets, the control socket, the routing files, the timers."""
    folder = Path(folder)
    ctl = settings.kamailio_ctl
    runtime = os.path.dirname(ctl[len("unix:") :]) if ctl.startswith("unix:") else str(folder / "run")
    return {
        "listen": settings.kamailio_listen.split(),
        "ctl": ctl,
        "runtime_dir": runtime or "/run/kamailio",
        "dispatcher_list": str(folder / DISPATCHER),
        "dbtext_dir": str(folder / DBTEXT),
        "ping_interval": int(settings.kamailio_ping_interval),
        "expires": int(settings.kamailio_expires),
        "failover_ms": FAILOVER_MS,
        "children": 4,
        "debug": 2,
    }


def render_cfg(settings, folder) -> str:
    """kamailio.cfg's text from the template (the operator's templates_dir first)."""
    import jinja2

    from .write import packaged_templates_dir, template_error

    loaders = [jinja2.FileSystemLoader(str(settings.templates_dir))] if settings.templates_dir else []
    loaders.append(jinja2.FileSystemLoader(str(packaged_templates_dir())))
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    try:
        template = env.get_template(CFG)
        # The compiled code itself (not render(), whose rewritten traceback hides the template's line).
        return "".join(template.root_render_func(template.new_context(cfg_context(settings, folder))))
    except jinja2.TemplateError as exc:
        raise template_error(CFG, exc) from None


def routing_files(routing: dict, nodes: dict, keep_sets=()) -> dict:
    """{relative path: text} of the routing data (dispatcher.list also holds the sets in `keep_sets`)."""
    sets = dict(routing["sets"])
    for number in keep_sets:
        sets.setdefault(number, _members(number))
    return {
        DISPATCHER: dispatcher_text(sets, nodes),
        f"{DBTEXT}/version": VERSION_TEXT,
        f"{DBTEXT}/fsctl_domains": table_text(routing["domains"]),
        f"{DBTEXT}/fsctl_dids": table_text(routing["dids"]),
    }
