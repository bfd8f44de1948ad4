"""`fsctl check`: asks the running FreeSWITCH, over its Event Socket, whether the install steps are
in force (README "Installing on a stock FreeSWITCH"; the values are fsctl.services.freeswitch_setup's),
and says for each what is missing and how to fix it.

Everything is read from FreeSWITCH itself: the configuration it has loaded (`xml_locate`, what a
`reloadxml` made of the files), what runs (`sofia xmlstatus`: profile parameters apply only when a
profile starts, FACTS.md), the modules (`module_exists`), the limits (`status`), mod_callcenter's
queues, and the call-logic service's heartbeat (a global variable fs-scripts stamps with
FreeSWITCH's own clock every few seconds: `fsctl_service_seen`).

With nodes (issue 16) each node is checked on its own Event Socket (`node_settings`: its address,
password and recordings folder), the tenants being those applied on that node (home, standby or
draining: `applied.OnNode`), the heartbeat that of the node's own `fs-scripts run --node`.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from ..freeswitch import chanvars as cv
from ..model import Conference, GroupMember, Ivr, Queue, QueueAgent, Tenant
from .applied import EVERYTHING
from .freeswitch_setup import EXTERNAL_PROFILE, INTERNAL_PROFILE, MODULES, STOCK_ESL_PASSWORD, xml_cdr_params

SETUP = "fsctl freeswitch setup /etc/freeswitch"
SERVICE_STALE = 20  # seconds without the service's heartbeat (it stamps every 5 s) before it counts as gone
_SPS_RE = re.compile(r"session\(s\) per Sec out of max (\d+)")


@dataclass
class Finding:
    """One check: what it looked at, whether it is in place, and if not how to fix it."""

    check: str
    ok: bool
    detail: str
    fix: str = ""

    def line(self) -> str:
        if self.ok:
            return f"ok       {self.check}: {self.detail}"
        return f"MISSING  {self.check}: {self.detail}; fix: {self.fix}"

    def as_dict(self) -> dict:
        return asdict(self)


def _xml(text: str):
    """The XML of an xml_locate reply, or None for "can't find anything"."""
    from lxml import etree

    text = (text or "").strip()
    if not text.startswith("<"):
        return None
    try:
        return etree.fromstring(text.encode("utf-8"), etree.XMLParser(recover=True, resolve_entities=False))
    except etree.XMLSyntaxError:
        return None


def _params(element, xpath: str) -> dict:
    """name -> value of the <param>s under `xpath` (the last one wins, as in FreeSWITCH)."""
    found = {}
    if element is None:
        return found
    for p in element.xpath(xpath):
        found[p.get("name")] = p.get("value")
    return found


def _locate(api, what: str):
    return _xml(api(f"xml_locate {what}"))


def check_profiles(api) -> list[Finding]:
    """The SIP profiles as loaded (sofia.conf) and as running (profile parameters need a restart)."""
    out = []
    sofia = _locate(api, "configuration configuration name sofia.conf")
    for profile, wanted in (("internal", INTERNAL_PROFILE), ("external", EXTERNAL_PROFILE)):
        conf = _params(sofia, f"//profile[@name='{profile}']/settings/param")
        where = f"sip_profiles/{profile}.xml"
        if sofia is None or not sofia.xpath(f"//profile[@name='{profile}']"):
            out.append(Finding(f"sip profile {profile}", False, "not in sofia.conf", f"{SETUP} and restart"))
            continue
        for name, value in wanted:
            if value is None:
                ok = not conf.get(name)
                detail = "off" if ok else f'set to "{conf[name]}" (must be off for many tenants)'
                fix = f"comment it out in {where} ({SETUP}), then sofia profile {profile} restart"
            else:
                ok = conf.get(name) == value
                detail = f'{name} = "{conf.get(name, "")}"' + ("" if ok else f' (must be "{value}")')
                fix = f'{where}: {name} = "{value}" ({SETUP}), then sofia profile {profile} restart'
            out.append(Finding(f"sip profile {profile} {name}", ok, detail, fix))
        status = _xml(api(f"sofia xmlstatus profile {profile}"))
        if status is None:
            out.append(
                Finding(
                    f"sip profile {profile} running",
                    False,
                    "not running",
                    f"sofia profile {profile} start (or restart FreeSWITCH)",
                )
            )
            continue
        running = {child.tag: (child.text or "") for child in status.iter() if len(child) == 0}
        stale = [
            f'{key} "{running.get(key)}" (loaded: "{conf.get(key)}")'
            for key in ("context", "challenge-realm")
            if key in conf and running.get(key) != conf.get(key)
        ]
        out.append(
            Finding(
                f"sip profile {profile} running",
                not stale,
                "runs with its loaded parameters" if not stale else "runs with old parameters: " + ", ".join(stale),
                f"sofia profile {profile} restart (reloadxml does not apply them)",
            )
        )
    return out


def check_modules(api) -> list[Finding]:
    missing = [m for m in MODULES if api(f"module_exists {m}").strip() != "true"]
    return [
        Finding(
            "modules",
            not missing,
            "all loaded" if not missing else "not loaded: " + ", ".join(missing),
            '<load module=...> in autoload_configs/modules.conf.xml, then fs_cli -x "load '
            + (missing[0] if missing else "mod_x")
            + '"',
        )
    ]


def check_event_socket(password: str) -> Finding:
    ok = password != STOCK_ESL_PASSWORD
    return Finding(
        "event socket password",
        ok,
        "your own" if ok else "FreeSWITCH's public default ClueCon",
        "set your own in fsctl.toml (esl_password), then " + SETUP + " and restart FreeSWITCH",
    )


def check_xml_cdr(api, xml_cdr_dir: str) -> Finding:
    conf = _params(_locate(api, "configuration configuration name xml_cdr.conf"), "//settings/param")
    wrong = [
        f'{name} "{conf.get(name, "")}" (must be "{value}")'
        for name, value in xml_cdr_params(xml_cdr_dir)
        if conf.get(name) != value
    ]
    return Finding(
        "mod_xml_cdr files",
        not wrong,
        f"one per leg in {xml_cdr_dir}" if not wrong else ", ".join(wrong),
        f'autoload_configs/xml_cdr.conf.xml ({SETUP}), then fs_cli -x "reload mod_xml_cdr"',
    )


def check_service(api, node=None) -> Finding:
    """The call-logic service's heartbeat (with nodes: the node's own `fs-scripts run --node NODE`)."""

    def number(text):
        try:
            return int(text.strip())
        except (ValueError, AttributeError):
            return None

    seen = number(_soft(api, f"global_getvar {cv.FSCTL_SERVICE_SEEN}"))
    now = number(api("strepoch"))
    ok = seen is not None and now is not None and now - seen <= SERVICE_STALE
    if ok:
        detail = f"fs-scripts connected (last heard {now - seen} s ago)"
    elif seen is None:
        detail = "fs-scripts has never connected"
    else:
        detail = f"fs-scripts last heard {now - seen} s ago"
    unit = f"fs-scripts@{node}" if node else "fs-scripts"
    return Finding(
        "call-logic service",
        ok,
        detail,
        f"start it (systemctl enable --now {unit}; conf/systemd/{'fs-scripts@' if node else unit}.service) "
        "and see its log",
    )


def _soft(api, command):
    """A reply, or "" when FreeSWITCH answers -ERR (global_getvar of an unset variable)."""
    from ..freeswitch.esl import EslCommandError

    try:
        return api(command)
    except EslCommandError:
        return ""


def widest_ring() -> int:
    """The most phones one call rings at once over all tenants (a simultaneous group, a ring-all queue)."""
    from peewee import fn

    from ..model import Group

    groups = (
        GroupMember.select(fn.COUNT(GroupMember.id))
        .join(Group)
        .where(Group.strategy == "simultaneous")
        .group_by(GroupMember.group)
        .tuples()
    )
    queues = (
        QueueAgent.select(fn.COUNT(QueueAgent.id))
        .join(Queue)
        .where(Queue.strategy == "ring-all")
        .group_by(QueueAgent.queue)
        .tuples()
    )
    return max([1, *(count for (count,) in groups), *(count for (count,) in queues)])


def check_sessions_per_second(api, calls_per_second: int) -> Finding:
    match = _SPS_RE.search(api("status"))
    limit = int(match.group(1)) if match else 0
    legs = 1 + widest_ring()
    needed = calls_per_second * legs
    ok = limit >= needed
    detail = (
        f"{limit} new channels per second for {calls_per_second} calls/s (settings calls_per_second) "
        f"of up to {legs} channels each (the caller's and the phones one call rings at once)"
    )
    if not ok:
        detail = "only " + detail + f": {needed} needed (more calls get 503 Service Unavailable)"
    return Finding(
        "sessions-per-second",
        ok,
        detail,
        f"fsctl freeswitch setup /etc/freeswitch --sessions-per-second {needed}, then restart FreeSWITCH",
    )


def check_tenants(api, scope=None) -> list[Finding]:
    """Is every applied tenant's XML found where the include lines put it (xml_locate)?

    `scope`: whose applied tenants (fsctl.services.applied: a node's, or by default the single
    FreeSWITCH's)."""
    applied = sorted((scope or EVERYTHING).applied())
    tenants = {t.domain: t for t in Tenant.select().where(Tenant.domain.in_(applied))} if applied else {}
    missing = []
    if api("xml_locate dialplan context name fsctl-public").strip().startswith("can't"):
        missing.append("dialplan context fsctl-public (every public number)")
    ivr = _locate(api, "configuration configuration name ivr.conf")
    menus = set(ivr.xpath("//menu/@name")) if ivr is not None else set()
    conference = _locate(api, "configuration configuration name conference.conf")
    rooms = set(conference.xpath("//profile/@name")) if conference is not None else set()
    callcenter = _locate(api, "configuration configuration name callcenter.conf")
    queues = set(callcenter.xpath("//queue/@name")) if callcenter is not None else set()
    for domain, tenant in tenants.items():
        if api(f"xml_locate directory domain name {domain}").strip().startswith("can't"):
            missing.append(f"directory domain {domain}")
        if api(f"xml_locate dialplan context name {domain}").strip().startswith("can't"):
            missing.append(f"dialplan context {domain}")
        for (number,) in Ivr.select(Ivr.number).where(Ivr.tenant == tenant).tuples():
            if f"{number}@{domain}" not in menus:
                missing.append(f"menu {number}@{domain} (ivr.conf)")
        for (number,) in Queue.select(Queue.number).where(Queue.tenant == tenant).tuples():
            if f"{number}@{domain}" not in queues:
                missing.append(f"queue {number}@{domain} (callcenter.conf)")
        for (number,) in Conference.select(Conference.number).where(Conference.tenant == tenant).tuples():
            if f"{domain}-{number}" not in rooms:
                missing.append(f"conference profile {domain}-{number} (conference.conf)")
    ok = not missing
    shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
    return [
        Finding(
            "include lines",
            ok,
            f"the XML of {len(tenants)} applied tenants found" if ok else "not found: " + shown,
            f"add the include lines ({SETUP}), then fs_cli -x reloadxml (mod_callcenter: "
            'fs_cli -x "reload mod_callcenter")',
        )
    ]


def run_checks(api, settings, scope=None) -> list[Finding]:
    """Every check, in the order of the install steps; `api(command) -> reply` talks to FreeSWITCH.

    `settings`: the FreeSWITCH's own (a node's: fsctl.services.nodeapply.node_settings); `scope`:
    whose applied tenants to look for (default: the single FreeSWITCH's)."""
    findings = check_tenants(api, scope)
    findings += check_profiles(api)
    findings.append(check_event_socket(settings.esl_password))
    findings += check_modules(api)
    findings.append(check_xml_cdr(api, settings.xml_cdr_dir))
    findings.append(check_sessions_per_second(api, settings.calls_per_second))
    findings.append(check_service(api, getattr(scope, "node", None) and scope.node.name))
    return findings
