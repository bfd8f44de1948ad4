"""The dialplan: the tenant context (hand-off to the call-logic service, XML fallback, time rules,
toll classes, transfers) and the public context of every DID, as pure contexts for templates/dialplan.xml.

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
"""

from __future__ import annotations

import functools
import operator
import re
from collections import namedtuple
from datetime import timedelta

from ..calllogic.callconfig import Destination, canonical_number
from ..freeswitch import chanvars as cv, dialstring
from ..freeswitch.chanvars import (  # the hand-off and directory variables the rendered XML uses
    FSCTL_DID_NAME,
    FSCTL_IN_FALLBACK,
    FSCTL_RECORD,
    FSCTL_RESUME,
    FSCTL_TIMERULE_HIT,
    FSCTL_TOLL,
    FSCTL_WATCHDOG,
    OUTBOUND_CALLER_ID,
)
from ..model import (
    User,
)
from .text import xml_text

NOT_IN_FALLBACK = ("field", f"${{{FSCTL_IN_FALLBACK}}}"), ("expression", "^(?!true$).*$")


# Setting the caller ID of an outside call to the user's (or the tenant's) public number.
_OUTSIDE_CALLER_ID = f"{cv.EFFECTIVE_CALLER_ID_NUMBER}=${{{OUTBOUND_CALLER_ID}}}"
# The caller name an outside call shows: the directory's fsctl_outbound_name for a user's call (the
# tenant's or the DID's name, never the internal one), the caller's own for a public number's call.
_OUTSIDE_NAME = f"${{{cv.FSCTL_OUTBOUND_NAME}}}"


def _gateway_leg(gateway, number, domain):
    return dialstring.gateway_leg(gateway, number, domain, _OUTSIDE_NAME)


FALLBACK_EXTENSION = cv.FALLBACK_EXTENSION


BLIND_XFER, ATTENDED_XFER = "fsctl-xfer-blind", "fsctl-xfer-attended"


BLIND_KEY, ATTENDED_KEY = "1", "4"


PUBLIC_CONTEXT = cv.PUBLIC_CONTEXT


# Toll classes, lowest first; a user may call its own class and every class below it.
TOLL_LEVELS = ("internal", "local", "national", "international")


# What each external class dials (anchored; internal extensions are 2-6 digits and never match).
TOLL_PATTERNS = (
    ("international", r"^(\+|00)[1-9][0-9]{6,14}$"),
    ("national", r"^0[1-9][0-9]{6,12}$"),
    ("local", r"^[1-9][0-9]{6,8}$"),
)


WDAY = {"sun": 1, "mon": 2, "tue": 3, "wed": 4, "thu": 5, "fri": 6, "sat": 7}  # FreeSWITCH: 1 = Sunday


NEXT_DAY = {"mon": "tue", "tue": "wed", "wed": "thu", "thu": "fri", "fri": "sat", "sat": "sun", "sun": "mon"}


MAX_HOLIDAY_DAYS = 366  # a holiday with times is rendered day by day


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
            _act("set", _OUTSIDE_CALLER_ID),
            _act("set", f"{cv.HANGUP_AFTER_BRIDGE}=true"),
            _act("bridge", _gateway_leg(gateway, dest.target, domain)),
        ]
    return [_act("transfer", f"{route_target(dest)} XML {domain}")]


def route_app(text: str, domain: str, gateway: str) -> str:
    """One `app arg` (an IVR entry's menu-exec-app) that sends the call to a destination."""
    dest = Destination.parse(text)
    if dest.kind == "hangup":
        return f"hangup {dest.target or 'NORMAL_CLEARING'}"
    if dest.kind == "external":
        return f"bridge {_gateway_leg(gateway, dest.target, domain)}"
    return f"transfer {route_target(dest)} XML {domain}"


def transfer_key_actions(domain):
    """R-XFER during a call: *1 blind, *4 attended, for either party (`ab`: DTMF of this leg and of
    the leg it is bridged to). `bind_meta_app` is per channel (FACTS.md): every call's first leg
    runs these, a user's call in the tenant's context, a public number's call in the public one."""
    return [
        _act("bind_meta_app", f"{BLIND_KEY} ab s execute_extension::{BLIND_XFER} XML {domain}"),
        _act("bind_meta_app", f"{ATTENDED_KEY} ab s execute_extension::{ATTENDED_XFER} XML {domain}"),
    ]


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
    actions = [_act(app, data) for app, data in
               dialstring.bridge_apps(dialstring.leg(dialstring.user_target(number, domain), timeout))]
    if vm_enabled:
        actions += [_act("answer"), _act("voicemail", f"default {domain} {number}")]
    else:
        actions.append(_act("hangup", "NO_ANSWER"))
    return actions


def _group_direct_actions(group, domain, gateway):
    actions = []
    if group["members"]:
        mode = "sequential" if group["strategy"] == "sequential" else "simultaneous"
        legs = dialstring.join((dialstring.leg(dialstring.user_target(n, domain), group["ring_time"])
                                for n in group["members"]), mode)
        actions += [_act(app, data) for app, data in dialstring.bridge_apps(legs)]
    fallback = Destination.parse(group["fallback"])
    # In XML (service down) a group's fallback is followed unless it could loop (group, time rule).
    if fallback.kind in ("group", "timerule"):
        actions.append(_act("hangup", "NO_ANSWER"))
    else:
        actions += route_actions(group["fallback"], domain, gateway)
    return actions


def build_queue_extensions(queue, domain, gateway):
    """A queue (R-QUEUE): mod_callcenter, and its max wait held to the second.

    mod_callcenter checks a caller's max wait between offers: an offer that is ringing when the
    wait runs out rings on ("reached max wait time and we're connecting, waiting for agent"; a
    10 s max wait and 20 s offers gave 19.8 s on the real switch, issue 11). So the queue arms its
    own `sched_transfer` to the overflow at the max wait; the caller's leg cancels it when an agent
    is bridged to it (`execute_on_pre_bridge`, run by the bridge mod_callcenter makes) and when
    mod_callcenter lets the caller go by itself.
    """
    number, max_wait = queue["number"], int(queue["max_wait"])
    overflow = f"queue-{number}-overflow"
    cond = _dest_cond(_exact(number, f"queue-{number}"))
    cond["actions"] = [_act("set", f"{cv.FSCTL_TARGET}=queue:{number}"),  # (statistics, however it got here)
                       _act("answer"), _act("set", f"{cv.HANGUP_AFTER_BRIDGE}=true"),
                       _act("set", f"{cv.EXECUTE_ON_PRE_BRIDGE}=sched_cancel"),
                       _act("sched_transfer", f"+{max_wait} {overflow} XML {domain}"),
                       _act("callcenter", f"{number}@{domain}"),
                       _act("sched_cancel")]
    cond["actions"] += route_actions(queue["overflow"], domain, gateway)
    late = _dest_cond(_exact(overflow))
    late["actions"] = [_act("set", f"{cv.EXECUTE_ON_PRE_BRIDGE}=")] + route_actions(queue["overflow"], domain,
                                                                                      gateway)
    return [_ext(f"queue-{number}", [cond]), _ext(overflow, [late])]


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


def is_scenario_user(user) -> bool:
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
    setup["actions"] += transfer_key_actions(domain)
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
        # Statistics count the menu however the call got here (dialled, a digit, a time rule in XML).
        cond["actions"] = [_act("set", f"{cv.FSCTL_TARGET}=ivr:{i['number']}"), _act("answer"), _act("sleep", "500"),
                           _act("ivr", f"{i['number']}@{domain}")]
        cond["actions"] += route_actions(i["exit_destination"], domain, gateway)
        exts.append(_ext(f"ivr-{i['number']}", [cond]))
    for q in data["queues"]:
        exts += build_queue_extensions(q, domain, gateway)
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
                "actions": [_act("set", _OUTSIDE_CALLER_ID),
                            _act("set", f"{cv.HANGUP_AFTER_BRIDGE}=true"),
                            _act("bridge", _gateway_leg(gateway, "${destination_number}", domain))],
                "anti": [_act("hangup", "CALL_REJECTED")]}
        # R-REC: a recorded caller's outgoing call is recorded by the service (after the toll check).
        recorded = _dest_cond(pattern)
        recorded["actions"] = ([_act("set", _OUTSIDE_CALLER_ID),
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
            # The carrier's leg is the tenant's too: a REFER from the user who answers transfers
            # it in the tenant's context (FACTS.md), and *1/*4 work on it (issue 11).
            _act("set", f"{cv.FORCE_TRANSFER_CONTEXT}={domain}"),
            # Sent on if the call goes out again (forwarded to an outside number): the caller's own name.
            _act("set", f"{cv.FSCTL_OUTBOUND_NAME}=${{{cv.CALLER_ID_NAME_VAR}}}"),
            *transfer_key_actions(domain),
        ] + _handoff_actions(domain, watchdog, resume=resume_target(did["destination"]))
        exts.append(_ext(f"did-{digits}", [cond]))
    return {"context": PUBLIC_CONTEXT, "extensions": _freeze(exts)}


def public_extensions(dids):
    """The public context's extensions for a stream of DIDs, then the unknown-number one (lazily)."""
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
