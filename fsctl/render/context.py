"""The pure rendering contexts of a tenant's directory, IVR, conference and callcenter files
(`build_<thing>_context(data) -> dict`; the dialplan's are in `dialplan`), and `tenant_contexts`.
"""

from __future__ import annotations

import functools
from collections import namedtuple

from ..calllogic.callconfig import outbound_name
from ..errors import OperationError
from ..freeswitch import dialstring
from ..model import (
    User,
)
from .dialplan import build_dialplan_context, route_app
from .text import a1_hash, xml_text

DEFAULT_TOLL = User.toll.default  # said once on the domain; users differing say their own


# The vanilla directory's dial string: every registered contact rings (multiple-registrations=contact).
DIAL_STRING = (
    "{^^:sip_invite_domain=${dialed_domain}:presence_id=${dialed_user}@${dialed_domain}}"
    "${sofia_contact(*/${dialed_user}@${dialed_domain})}"
)


DEFAULT_INVALID_SOUND = "ivr/ivr-that_was_an_invalid_entry.wav"


DEFAULT_EXIT_SOUND = "voicemail/vm-goodbye.wav"


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
    did_names = {d["number"]: d["name"] for d in data["dids"]}
    # Outside calls show this name, never the user's internal one (issue 11; callconfig.outbound_name).
    default_name = outbound_name(tenant["name"], tenant.get("outbound_name"), did_names.get(default_cid))
    users = []
    for u in data["users"]:
        if not u.sip_password:
            # FACTS.md: a user with neither password nor a1-hash registers without credentials.
            raise OperationError(f"user {u.number} of {domain} has no SIP password: refusing to render it")
        vm, cid, toll = u.vm_enabled, u.caller_id_number, u.toll
        own_name = outbound_name(
            tenant["name"], tenant.get("outbound_name"), did_names.get(cid or default_cid), u.outbound_name
        )
        users.append(
            _directory_user(
                (  # (number a1_hash vm_password vm_mailto name caller_id toll record outbound)
                    u.number,
                    a1_hash(u.number, domain, u.sip_password),
                    u.vm_pin if vm and u.vm_pin else "",
                    xml_text(u.email) if vm and u.email else "",
                    xml_text(u.name),
                    cid if cid and cid != default_cid else "",
                    toll if toll != DEFAULT_TOLL else "",
                    "true" if u.record else "",
                    xml_text(own_name) if own_name != default_name else "",
                )
            )
        )
    return {
        "domain": domain,
        "tenant_name": xml_text(tenant["name"]),
        "dial_string": DIAL_STRING,
        "caller_id": default_cid,
        "outbound_name": xml_text(default_name),
        "toll": DEFAULT_TOLL,
        "users": users,
    }


# Immutable records handed to the templates (attribute access is several times faster in Jinja
# than on dicts, which it first tries as attributes).
DirectoryUser = namedtuple(
    "DirectoryUser", "number a1_hash vm_password vm_mailto name caller_id toll record outbound_name"
)


_directory_user = functools.partial(tuple.__new__, DirectoryUser)  # DirectoryUser(*values) without its Python __new__


def build_ivr_context(data: dict) -> dict:
    """The tenant's IVR menus (ivr.conf style), named `number@domain`."""
    tenant = data["tenant"]
    domain, gateway, media = tenant["domain"], tenant["gateway"], data["media"]
    menus = []
    for i in data["ivrs"]:
        greeting = xml_text(media.get(i["greeting"], "")) if i["greeting"] else ""
        invalid = xml_text(media.get(i["invalid_sound"], "")) if i["invalid_sound"] else DEFAULT_INVALID_SOUND
        menus.append(
            {
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
            }
        )
    return {"menus": menus}


def build_conference_context(data: dict) -> dict:
    """Conference profiles, one per room, named `<domain>-<number>` (names are global)."""
    domain = data["tenant"]["domain"]
    return {
        "profiles": [
            {
                "name": f"{domain}-{c['number']}",
                "domain": domain,
                "pin": c["pin"] or "",
                "max_members": c["max_members"] or "",
            }
            for c in data["conferences"]
        ]
    }


def build_callcenter_context(data: dict) -> dict:
    """mod_callcenter queues, agents and tiers, named `number@domain`."""
    domain, media = data["tenant"]["domain"], data["media"]
    queues, agents, tiers, seen = [], [], [], set()
    for q in data["queues"]:
        name = f"{q['number']}@{domain}"
        moh = xml_text(media.get(q["moh"], "")) if q["moh"] else "local_stream://moh"
        queues.append(
            {
                "name": name,
                "strategy": q["strategy"],
                "moh": moh or "local_stream://moh",
                "announce": xml_text(media.get(q["announce"], "")) if q["announce"] else "",
                "announce_frequency": int(q["announce_frequency"]),
                "max_wait": int(q["max_wait"]),
            }
        )
        for position, (number, tier) in enumerate(q["agents"], 1):
            agent = f"{number}@{domain}"
            if agent not in seen:
                seen.add(agent)
                agents.append({"name": agent, "contact": dialstring.leg(dialstring.user_target(number, domain), 20)})
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
