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
from datetime import timedelta
from types import SimpleNamespace

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


class Record(SimpleNamespace):
    """One thing the template prints (a group, a queue, a route...): its fields as attributes."""


# The channel variables and fixed names the template prints (their one home is chanvars and this
# module): `var.in_fallback` is the name, `var.in_fallback_ref` the `${...}` that reads it.
VARS = Record(
    tenant=cv.FSCTL_TENANT,
    target=cv.FSCTL_TARGET,
    resume=FSCTL_RESUME,
    resume_ref=f"${{{FSCTL_RESUME}}}",
    watchdog=FSCTL_WATCHDOG,
    in_fallback=FSCTL_IN_FALLBACK,
    in_fallback_ref=f"${{{FSCTL_IN_FALLBACK}}}",
    record_ref=f"${{{FSCTL_RECORD}}}",
    toll_ref=f"${{{FSCTL_TOLL}}}",
    outbound=cv.FSCTL_OUTBOUND,
    did=cv.FSCTL_DID,
    did_ref=f"${{{cv.FSCTL_DID}}}",
    did_name=FSCTL_DID_NAME,
    timerule_hit=FSCTL_TIMERULE_HIT,
    timerule_hit_ref=f"${{{FSCTL_TIMERULE_HIT}}}",
    hangup_after_bridge=cv.HANGUP_AFTER_BRIDGE,
    execute_on_pre_bridge=cv.EXECUTE_ON_PRE_BRIDGE,
    force_transfer_context=cv.FORCE_TRANSFER_CONTEXT,
    outside_caller_id=_OUTSIDE_CALLER_ID,
    outbound_name_from_caller=f"{cv.FSCTL_OUTBOUND_NAME}=${{{cv.CALLER_ID_NAME_VAR}}}",
    fallback_extension=FALLBACK_EXTENSION,
    fallback_expression=f"^{FALLBACK_EXTENSION}$",
    blind_xfer=BLIND_XFER,
    attended_xfer=ATTENDED_XFER,
    blind_key=BLIND_KEY,
    attended_key=ATTENDED_KEY,
    not_in_fallback="^(?!true$).*$",
)


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


def route(text: str, domain: str, gateway: str) -> Record:
    """Where a route (`kind:target`) sends the call inside the tenant, for the template's `route`:
    kind `hangup` (its cause), `external` (the gateway leg) or `transfer` (the extension)."""
    dest = Destination.parse(text)
    if dest.kind == "hangup":
        return Record(kind="hangup", cause=dest.target or "NORMAL_CLEARING")
    if dest.kind == "external":
        return Record(kind="external", leg=_gateway_leg(gateway, dest.target, domain))
    return Record(kind="transfer", target=route_target(dest))


def route_app(text: str, domain: str, gateway: str) -> str:
    """One `app arg` (an IVR entry's menu-exec-app) that sends the call to a destination."""
    dest = Destination.parse(text)
    if dest.kind == "hangup":
        return f"hangup {dest.target or 'NORMAL_CLEARING'}"
    if dest.kind == "external":
        return f"bridge {_gateway_leg(gateway, dest.target, domain)}"
    return f"transfer {route_target(dest)} XML {domain}"


_HANGUP_NO_ANSWER = Record(kind="hangup", cause="NO_ANSWER")


def _group(group, domain, gateway):
    """A group: its hand-off, and the bridge of its members in XML when the service is down."""
    bridge = ()
    if group["members"]:
        mode = "sequential" if group["strategy"] == "sequential" else "simultaneous"
        legs = dialstring.join(
            (dialstring.leg(dialstring.user_target(n, domain), group["ring_time"]) for n in group["members"]), mode
        )
        bridge = dialstring.bridge_apps(legs)
    fallback = Destination.parse(group["fallback"])
    # In XML (service down) a group's fallback is followed unless it could loop (group, time rule).
    if fallback.kind in ("group", "timerule"):
        then = _HANGUP_NO_ANSWER
    else:
        then = route(group["fallback"], domain, gateway)
    return Record(number=group["number"], expression=_exact(group["number"]), bridge=bridge, fallback=then)


def _queue(queue, domain, gateway):
    """A queue (R-QUEUE): mod_callcenter, and its max wait held to the second.

    mod_callcenter checks a caller's max wait between offers: an offer that is ringing when the
    wait runs out rings on ("reached max wait time and we're connecting, waiting for agent"; a
    10 s max wait and 20 s offers gave 19.8 s on the real switch, issue 11). So the queue arms its
    own `sched_transfer` to the overflow at the max wait; the caller's leg cancels it when an agent
    is bridged to it (`execute_on_pre_bridge`, run by the bridge mod_callcenter makes) and when
    mod_callcenter lets the caller go by itself.
    """
    number = queue["number"]
    overflow = f"queue-{number}-overflow"
    return Record(
        number=number,
        expression=_exact(number, f"queue-{number}"),
        max_wait=int(queue["max_wait"]),
        overflow_extension=overflow,
        overflow_expression=_exact(overflow),
        overflow=route(queue["overflow"], domain, gateway),
    )


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


def _time_rule(rule: dict, tenant: dict) -> Record:
    """A time rule in XML: inline `set`s while hunting (ranges match, holidays do not), then one
    extension routes match / no match."""
    domain, gateway = tenant["domain"], tenant["gateway"]
    ranges = [
        (f"{i}.{j}", wday, tod)
        for i, (weekdays, start, end) in enumerate(rule["ranges"])
        for j, (wday, tod) in enumerate(_range_pieces(weekdays, start, end))
    ]
    holidays = [
        (f"{i}.{j}", span)
        for i, (d0, d1, t0, t1) in enumerate(rule["holidays"])
        for j, span in enumerate(_holiday_spans(d0, d1, t0, t1))
    ]
    return Record(
        name=rule["name"],
        expression=_exact(f"timerule-{rule['name']}"),
        timezone=rule["timezone"] or tenant["timezone"],
        ranges=ranges,
        holidays=holidays,
        match=route(rule["match_destination"], domain, gateway),
        nomatch=route(rule["nomatch_destination"], domain, gateway),
    )


_SCENARIO_FIELDS = operator.attrgetter("record", *User.FORWARD_FIELDS)


def is_scenario_user(user) -> bool:
    """Users whose calls the call-logic service decides (forwarding or recording)."""
    return any(_SCENARIO_FIELDS(user))


def build_dialplan_context(data: dict, watchdog: int = 6) -> dict:
    """The tenant's dialplan context for templates/dialplan.xml: per kind of destination, what its
    extensions need (numbers as regular expressions, dial strings, routes)."""
    tenant = data["tenant"]
    domain, gateway = tenant["domain"], tenant["gateway"]
    # Users with forwarding or recording (scenario users) go to the service; so does a recorded
    # caller's call to a plain user (R-REC: announce, record). Both hand-offs are one extension
    # each, whatever the number of users, and never match in fallback mode: there, the call
    # falls through to the bundles, which ring every user straight (no forwarding).
    bundles, scenario, plain_numbers = {}, [], []
    for u in data["users"]:
        (scenario if is_scenario_user(u) else plain_numbers).append(u.number)
        bundles.setdefault((u.no_answer_timeout, u.vm_enabled), []).append(u.number)
    users = []
    # Every user: straight to the phone in XML, bundled by (ring time, voicemail).
    for (timeout, vm), numbers in sorted(bundles.items()):
        number = "$1" if len(numbers) > 1 else numbers[0]
        users.append(
            Record(
                name=f"users-{timeout}{'-vm' if vm else ''}",
                expression=_exact(*numbers),
                bridge=dialstring.bridge_apps(dialstring.leg(dialstring.user_target(number, domain), timeout)),
                mailbox=number if vm else None,
            )
        )
    mailboxes = [u.number for u in data["users"] if u.vm_enabled]
    outbound = []
    for klass, pattern in TOLL_PATTERNS:
        allowed = TOLL_LEVELS[TOLL_LEVELS.index(klass) :]
        outbound.append(Record(klass=klass, expression=pattern, allowed=f"^({'|'.join(allowed)})$"))
    return {
        "public": False,
        "context": domain,
        "domain": domain,
        "timezone": tenant["timezone"],
        "watchdog": watchdog,
        "var": VARS,
        "scenario_users": _captured(scenario) if scenario else "",
        "recorded_caller": _captured(plain_numbers) if plain_numbers else "",
        "users": users,
        "groups": [_group(g, domain, gateway) for g in data["groups"]],
        "ivrs": [
            Record(
                number=i["number"],
                expression=_exact(i["number"], f"ivr-{i['number']}"),
                exit=route(i["exit_destination"], domain, gateway),
            )
            for i in data["ivrs"]
        ],
        "queues": [_queue(q, domain, gateway) for q in data["queues"]],
        "conferences": [
            Record(
                number=c["number"],
                expression=_exact(c["number"], f"conference-{c['number']}"),
                room=f"{domain}-{c['number']}",
            )
            for c in data["conferences"]
        ],
        "mailboxes": f"^vm-({'|'.join(map(regex_literal, mailboxes))})$" if mailboxes else "",
        "time_rules": [_time_rule(rule, tenant) for rule in data["time_rules"]],
        "outbound": outbound,
        "outside_leg": _gateway_leg(gateway, "${destination_number}", domain),
        "blind_expression": _exact(BLIND_XFER),
        "blind_go_expression": _exact(f"{BLIND_XFER}-go"),
        "attended_expression": _exact(ATTENDED_XFER),
        # The watchdog fired (service down): a public number's caller on the blacklist is refused
        # here too (R-BLACK without the service); the others resume where the call was going.
        "blacklist": blacklist_regex(data.get("blacklist", ())),
        "fallback": route(tenant["fallback"], domain, gateway),
    }


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


def _did(did) -> Record:
    digits = did["number"].lstrip("+")
    return Record(
        number=did["number"],
        digits=digits,
        expression=f"^(\\+|00)?{regex_literal(digits)}$",
        name=xml_text(did["name"]),
        domain=did["domain"],
        timezone=did["timezone"],
        watchdog=did["watchdog"],
        resume=resume_target(did["destination"]),
    )


def build_public_context(dids) -> dict:
    """The public context: each DID (E.164; `+` or `00` optional) hands its call to its tenant.
    `dids` (dicts with their watchdog) may be a stream: it is taken lazily, as the file is written."""
    return {
        "public": True,
        "context": PUBLIC_CONTEXT,
        "var": VARS,
        "dids": map(_did, dids),
        "unknown_number": UNKNOWN_NUMBER,
    }


# The public context's last extension: a number no tenant has is refused (SIP 404). The template
# sets `process_cdr=false`, which keeps mod_xml_cdr from writing a file for it (mod_xml_cdr.c): such
# a call belongs to no tenant, `fsctl cdr import` could never take it, and scanners on a public
# profile would fill the folder. The hang-up event still fires.
UNKNOWN_NUMBER = "fsctl-unknown-number"
