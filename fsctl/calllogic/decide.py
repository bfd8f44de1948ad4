"""The call decisions: facts about a call + a tenant snapshot + the instant -> a plan.

Pure: no socket, no query, no clock read, no global random state. The Event Socket service
builds `CallFacts` from the CHANNEL_PARK event, loads the tenant's `TenantConfig` and the
rotation state, calls `decide`, runs the plan and persists `Decision.rotation_update`.

Two tiers of failure (house style, after wazo-agid):
- expected (unknown number, blacklisted caller, a routing loop) -> a defined plan that
  hangs up with a proper cause or goes to the tenant fallback, with the reason;
- unexpected (configuration that contradicts itself: a destination that does not exist, a
  sequential member with forwarding, an unknown time zone) -> `DecisionError`; the service
  logs it and runs `decide_fallback`.
"""

from __future__ import annotations

import random
import re
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from types import MappingProxyType
from typing import Iterable, Mapping

from ..freeswitch import chanvars as cv, dialstring
from . import recpath, schedule
from .callconfig import (
    GROUP_ORDERS,
    GROUP_STRATEGIES,
    SEQUENTIAL_MAX_MEMBERS,
    SEQUENTIAL_RING_TIMES,
    Destination,
    Group,
    TenantConfig,
    User,
    canonical_number,
)
from .plan import (
    Answer,
    Branch,
    Bridge,
    Hangup,
    Leg,
    Playback,
    SetCallerName,
    SetVar,
    StartRecording,
    Step,
    Transfer,
    Voicemail,
    explain as explain_steps,
)

__all__ = [
    "DecisionError",
    "CallFacts",
    "RotationState",
    "RotationUpdate",
    "Decision",
    "decide",
    "decide_fallback",
    "explain",
    "ring_order",
    "BUSY_CAUSES",
    "NO_ANSWER_CAUSES",
    "HANDOFF_EXTENSION",
]

# Bridge outcomes (originate_disposition) per forwarding rule. Every other failure cause
# (USER_NOT_REGISTERED, SUBSCRIBER_ABSENT, DESTINATION_OUT_OF_ORDER...) counts as unreachable.
BUSY_CAUSES = frozenset({"USER_BUSY", "CALL_REJECTED"})
NO_ANSWER_CAUSES = frozenset({"NO_ANSWER", "NO_USER_RESPONSE", "ALLOTTED_TIMEOUT"})
# Hand-offs to the XML dialplan: the rendered tenant context must hold these extensions.
HANDOFF_EXTENSION = "{kind}-{number}"  # ivr-500, queue-600, conference-700
EXTERNAL_RING_TIME = 60
MAX_DEPTH = 12  # destinations followed in one chain before giving up
MAX_STEPS = 2000  # steps in one plan (branches included) before giving up
RINGBACK = "%(2000,4000,440,480)"  # heard by a pre-answered (recorded) caller while legs ring
_EXTERNAL_RE = re.compile(r"^\+?[0-9]{3,20}\Z")
_TOKEN_RE = re.compile(r"[^A-Za-z0-9_.-]")


class DecisionError(Exception):
    """The tenant's configuration contradicts itself; the service routes to the tenant fallback."""


@dataclass(frozen=True)
class CallFacts:
    """What the decision knows about the call (from the CHANNEL_PARK event)."""

    domain: str
    caller_number: str
    dialled: str
    caller_name: str = ""
    did: str | None = None  # the public number the call came in on; None for internal calls
    direction: str = "internal"  # internal (from a user) | inbound (from outside, via a DID)
    uuid: str = ""
    random_seed: int = 0  # seeds the random group order; derived from the uuid by from_event
    # An outside number a user dialled, handed over by the dialplan after its toll check
    # (a recorded caller's outgoing call: the service records it).
    outbound: bool = False
    # The dialplan context the channel parked in: the public context when it arrived on its DID
    # just now, the tenant's after a menu, a time rule, a fallback or a transfer sent it on ("":
    # unknown, taken as where a DID call starts).
    context: str = ""

    def __post_init__(self):
        if self.direction not in ("internal", "inbound"):
            raise ValueError(f"direction {self.direction!r} must be internal or inbound")

    @property
    def at_did(self) -> bool:
        """Parked on its public number (its DID's scenario decides), not sent on from there.

        FACTS.md: a transfer to an extension that parks raises a second CHANNEL_PARK on the same
        channel, fsctl_did still set; that park is for the number the call is at now (issue 11:
        a menu's digit to a group was answered with the menu again).
        """
        return self.did is not None and self.context in ("", cv.PUBLIC_CONTEXT)

    @classmethod
    def from_event(cls, headers: Mapping[str, str], random_seed: int | None = None) -> "CallFacts":
        """Facts from a decoded CHANNEL_PARK event (header -> value)."""

        def var(name):
            return headers.get(cv.header(name)) or ""

        uuid = headers.get(cv.UNIQUE_ID, "")
        did = var(cv.FSCTL_DID) or None
        domain = var(cv.FSCTL_TENANT) or var(cv.USER_CONTEXT) or var(cv.DOMAIN_NAME)
        return cls(
            domain=domain,
            caller_number=headers.get(cv.CALLER_ID_NUMBER, ""),
            caller_name=headers.get(cv.CALLER_ID_NAME, ""),
            dialled=headers.get(cv.DESTINATION_NUMBER, ""),
            did=did,
            direction="inbound" if did else "internal",
            uuid=uuid,
            outbound=var(cv.FSCTL_OUTBOUND) == "true" and not did,
            context=headers.get(cv.CALLER_CONTEXT, ""),
            random_seed=zlib.crc32(uuid.encode()) if random_seed is None else random_seed,
        )


@dataclass(frozen=True)
class RotationUpdate:
    """A rotating group's new start index; `previous` lets the store compare-and-set."""

    group: str
    previous: int
    next_start: int


@dataclass(frozen=True, eq=False)
class RotationState:
    """Rotating sequential groups: group number -> index of the member the next call starts at."""

    next_start: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self):
        object.__setattr__(self, "next_start", MappingProxyType(dict(self.next_start)))

    def start_for(self, group: str) -> int:
        return self.next_start.get(group, 0)

    def apply(self, updates: Iterable[RotationUpdate]) -> "RotationState":
        """The state after persisting `updates` (what the store does, for tests and benches)."""
        new = dict(self.next_start)
        for upd in updates:
            new[upd.group] = upd.next_start
        return RotationState(new)


@dataclass(frozen=True)
class Decision:
    """The plan for a call and the rotation state to persist."""

    plan: tuple[Step, ...]
    rotation_update: tuple[RotationUpdate, ...] = ()


def ring_order(group: Group, start: int = 0, seed: int | None = None) -> tuple[str, ...]:
    """The members of a group in the order they ring: each once, never the group's own number."""
    members = []
    for m in group.members:
        if m != group.number and m not in members:
            members.append(m)
    if not members:
        return ()
    if group.strategy == "random":
        rng = random.Random(seed)
        rng.shuffle(members)
        return tuple(members)
    if group.strategy == "sequential" and group.order == "rotating":
        k = start % len(members)
        return tuple(members[k:] + members[:k])
    return tuple(members)


_RING_TIMES_TEXT = ", ".join(map(str, SEQUENTIAL_RING_TIMES[:-1])) + f" or {SEQUENTIAL_RING_TIMES[-1]}"


def _group_problem(group: Group) -> str:
    """What makes a group's configuration unusable (R-GRP, R-SEQ), or ''."""
    if group.strategy not in GROUP_STRATEGIES:
        return f"has an unknown strategy {group.strategy!r}"
    if group.order not in GROUP_ORDERS:
        return f"has an unknown order {group.order!r}"
    if not isinstance(group.ring_time, int) or group.ring_time <= 0:
        return f"has a bad ring time {group.ring_time!r}"
    if group.strategy == "sequential":
        if group.ring_time not in SEQUENTIAL_RING_TIMES:
            return f"rings {group.ring_time} s per member; sequential groups ring {_RING_TIMES_TEXT} s"
        if len(set(group.members) - {group.number}) > SEQUENTIAL_MAX_MEMBERS:
            return f"has more than {SEQUENTIAL_MAX_MEMBERS} members"
    return ""


def _token(text: str) -> str:
    return _TOKEN_RE.sub("_", text or "") or "none"


class _Router:
    """Resolves destinations into steps for one call (state lives only for that call)."""

    def __init__(self, call: CallFacts, config: TenantConfig, now: datetime, rotation: RotationState):
        self.call = call
        self.config = config
        self.tenant = config.tenant
        self.now = now
        self.rotation = rotation
        self.updates: dict[str, RotationUpdate] = {}
        self.count = 0

    # -- helpers --------------------------------------------------------------------
    def _emit(self, steps: list[Step]) -> list[Step]:
        self.count += len(steps)
        if self.count > MAX_STEPS:
            raise DecisionError(f"the plan grows beyond {MAX_STEPS} steps: forwarding chains are too deep")
        return steps

    def recording_path(self, who: str) -> str:
        """Where a recording of this call for user `who` goes: the layout of fsctl.calllogic.recpath."""
        call = self.call
        if who == call.caller_number and call.direction == "internal":
            counterpart = call.dialled
            direction = "internal" if self.config.numbered(call.dialled) else "out"
        else:
            counterpart = call.caller_number
            direction = "in" if call.direction == "inbound" else "internal"
        rel = recpath.relpath(
            _token(self.tenant.domain),
            self.now.astimezone(timezone.utc).replace(tzinfo=None),
            _token(who),
            direction,
            counterpart,
            call.uuid,
        )
        return f"{self.tenant.recordings_root.rstrip('/')}/{rel}"

    def recording_prelude(self, who: str, why: str) -> list[Step]:
        """R-REC: tell the parties, then record the whole call (before bridging)."""
        reason = f"{why}: user {who} is recorded (R-REC)"
        return [
            SetVar(cv.RINGBACK, RINGBACK, reason=reason),
            Answer(early=True, reason=reason + ", early media for the announcement"),
            Playback(self.tenant.recording_announcement, reason=reason + ", announce the recording"),
            StartRecording(self.recording_path(who), reason=reason),
        ]

    def user_leg(self, number: str, timeout: int, recorded: bool = False, record_on_answer: bool = False) -> Leg:
        """The dial leg of a user; a recorded user hears a beep when answering (R-REC)."""
        variables: tuple[tuple[str, str], ...] = ()
        if recorded:
            # Per-leg, so that only the recorded user's answer beeps (a variable on the
            # caller's channel would also beep whoever a later branch rings).
            variables += ((cv.EXECUTE_ON_ANSWER + "_1", f"playback {self.tenant.recording_beep}"),)
        if record_on_answer:
            # Only this leg's answer starts the recording: group calls record the recorded
            # member's calls, not the others'.
            path = self.recording_path(number)
            variables += (
                (cv.FSCTL_RECORDING_PATH, path),  # on the member's leg: its hang-up catalogues the file
                (cv.EXECUTE_ON_ANSWER + "_2", f"record_session {path}"),
            )
        try:
            return Leg(dialstring.user_target(number, self.tenant.domain), timeout, variables)
        except ValueError as exc:
            raise DecisionError(f"user {number!r} cannot be dialled: {exc}") from None

    def get_user(self, number: str, via: str) -> User:
        user = self.config.users.get(number)
        if user is None:
            raise DecisionError(f"{via}: user {number} does not exist in {self.tenant.domain}")
        return user

    # -- routing --------------------------------------------------------------------
    def route(self, dest: Destination, path: tuple[str, ...], via: str, rec: bool, in_fallback: bool) -> list[Step]:
        """Steps that take the call to `dest`; `path` holds the destinations of this chain."""
        key = str(dest)
        here = f"{via} -> {key}" if via else key
        if key in path or len(path) >= MAX_DEPTH:
            what = "loop" if key in path else f"chain longer than {MAX_DEPTH}"
            why = f"{here}: {what} ({' -> '.join(path + (key,))})"
            if in_fallback:
                return self._emit([Hangup("NORMAL_TEMPORARY_FAILURE", reason=f"{why}; the tenant fallback loops too")])
            return self.route(self.tenant.fallback, (), f"{why}; tenant fallback", rec, in_fallback=True)
        path = path + (key,)
        handler = getattr(self, "_route_" + dest.kind)
        return handler(dest, path, here, rec, in_fallback)

    def _route_hangup(self, dest, path, here, rec, in_fallback):
        cause = dest.target or "NORMAL_CLEARING"
        return self._emit([Hangup(cause, reason=f"{here}: hang up")])

    def _route_user(self, dest, path, here, rec, in_fallback):
        user = self.get_user(dest.target, here)
        fwd = user.forwarding
        if fwd.always is not None:
            return self.route(fwd.always, path, f"{here} (forwards always)", rec, in_fallback)
        steps: list[Step] = []
        if user.record and not rec:
            steps += self.recording_prelude(user.number, here)
            rec = True

        def outcome(rule: str, target: Destination | None, cause: str) -> list[Step]:
            if target is not None:
                return self.route(target, path, f"{here} ({rule}: forwards)", rec, in_fallback)
            if user.vm_enabled:
                return self._emit([Voicemail(user.number, self.tenant.domain, reason=f"{here} ({rule}): voicemail")])
            return self._emit([Hangup(cause, reason=f"{here} ({rule}): no forwarding, no voicemail")])

        busy = Branch("busy", BUSY_CAUSES, outcome("busy", fwd.busy, "USER_BUSY"))
        no_answer = Branch("no_answer", NO_ANSWER_CAUSES, outcome("no answer", fwd.no_answer, "NO_ANSWER"))
        leg = self.user_leg(user.number, user.no_answer_timeout, recorded=user.record)
        steps.append(
            Bridge(
                (leg,),
                "sequential",
                (busy, no_answer),
                reason=f"{here}: ring user {user.number} for {user.no_answer_timeout} s",
            )
        )
        self._emit(steps)
        # Any other failure: unreachable (not registered, offline, out of order).
        return steps + outcome("unreachable", fwd.unreachable, "SUBSCRIBER_ABSENT")

    def _route_group(self, dest, path, here, rec, in_fallback):
        group = self.config.groups.get(dest.target)
        if group is None:
            raise DecisionError(f"{here}: group {dest.target} does not exist in {self.tenant.domain}")
        problem = _group_problem(group)
        if problem:
            raise DecisionError(f"{here}: group {group.number} {problem}")
        members = ring_order(group, self.rotation.start_for(group.number), self.call.random_seed)
        users = [self.get_user(m, f"{here} member") for m in members]
        if group.strategy == "sequential":
            forwarding = [u.number for u in users if u.forwarding.active()]
            if forwarding:
                raise DecisionError(
                    f"{here}: sequential group {group.number} members {', '.join(forwarding)} have forwarding "
                    "active (R-SEQ forbids it)"
                )
        if not users:
            return self.route(group.fallback, path, f"{here} (no members)", rec, in_fallback)
        if group.strategy == "sequential" and group.order == "rotating":
            # Same start in every branch of this plan that rings the group: one update.
            n = len(members)
            start = self.rotation.start_for(group.number) % n
            self.updates[group.number] = RotationUpdate(
                group.number, self.rotation.start_for(group.number), (start + 1) % n
            )
        by_number = {u.number: u for u in users}
        steps: list[Step] = []
        recorded = [m for m in members if by_number[m].record]
        if recorded and not rec:
            steps.append(SetVar(cv.RINGBACK, RINGBACK, reason=f"{here}: recorded members {', '.join(recorded)}"))
            steps.append(Answer(early=True, reason=f"{here}: announce the recording to the caller"))
            steps.append(
                Playback(
                    self.tenant.recording_announcement,
                    reason=f"{here}: members {', '.join(recorded)} are recorded (R-REC)",
                )
            )
        legs = tuple(
            self.user_leg(
                m, group.ring_time, recorded=by_number[m].record, record_on_answer=by_number[m].record and not rec
            )
            for m in members
        )
        mode = "simultaneous" if group.strategy == "simultaneous" else "sequential"
        if group.strategy == "simultaneous":
            how = f"ring {', '.join(members)} at once for {group.ring_time} s"
        elif group.strategy == "random":
            how = f"ring {', '.join(members)} in random order (seed {self.call.random_seed}), {group.ring_time} s each"
        else:
            how = (
                f"ring {', '.join(members)} one after another ({group.order} order), "
                f"{group.ring_time} s each, one cycle"
            )
        steps.append(
            SetVar(cv.FSCTL_TARGET, f"group:{group.number}", reason=f"{here}: statistics count group {group.number}")
        )
        steps.append(Bridge(legs, mode, reason=f"{here}: {group.strategy} group {group.number}: {how}"))
        self._emit(steps)
        return steps + self.route(group.fallback, path, f"{here} (nobody answered: fallback)", rec, in_fallback)

    def _handoff(self, kind, table, dest, here):
        if dest.target not in table:
            raise DecisionError(f"{here}: {kind} {dest.target} does not exist in {self.tenant.domain}")
        ext = HANDOFF_EXTENSION.format(kind=kind, number=dest.target)
        try:
            step = Transfer(ext, self.tenant.domain, reason=f"{here}: hand over to the dialplan's {kind}")
        except ValueError as exc:
            raise DecisionError(f"{here}: {exc}") from None
        target = SetVar(
            cv.FSCTL_TARGET, f"{kind}:{dest.target}", reason=f"{here}: statistics count {kind} {dest.target}"
        )
        return self._emit([target, step])

    def _route_ivr(self, dest, path, here, rec, in_fallback):
        return self._handoff("ivr", self.config.ivrs, dest, here)

    def _route_queue(self, dest, path, here, rec, in_fallback):
        return self._handoff("queue", self.config.queues, dest, here)

    def _route_conference(self, dest, path, here, rec, in_fallback):
        return self._handoff("conference", self.config.conferences, dest, here)

    def _route_voicemail(self, dest, path, here, rec, in_fallback):
        user = self.get_user(dest.target, here)
        if not user.vm_enabled:
            raise DecisionError(f"{here}: user {user.number} has voicemail switched off")
        return self._emit([Voicemail(user.number, self.tenant.domain, reason=f"{here}: voicemail of {user.number}")])

    def _route_external(self, dest, path, here, rec, in_fallback):
        number = dest.target
        if not _EXTERNAL_RE.match(number):
            raise DecisionError(f"{here}: {number!r} is not a phone number")
        # The carrier's leg is the tenant's: its transfer context (a REFER from the user moves that
        # leg) and, for a user's call, the caller name the tenant shows outside (issue 11).
        variables = [(cv.FORCE_TRANSFER_CONTEXT, self.tenant.domain)]
        caller = self.config.users.get(self.call.caller_number) if self.call.direction == "internal" else None
        if caller is not None and caller.outbound_name:
            variables.append((cv.ORIGINATION_CALLER_ID_NAME, caller.outbound_name))
        try:
            leg = Leg(dialstring.gateway_target(self.tenant.gateway, number), EXTERNAL_RING_TIME, tuple(variables))
        except ValueError as exc:
            raise DecisionError(f"{here}: gateway {self.tenant.gateway!r}: {exc}") from None
        return self._emit(
            [Bridge((leg,), "sequential", reason=f"{here}: call {number} via gateway {self.tenant.gateway}")]
        )

    def _route_timerule(self, dest, path, here, rec, in_fallback):
        rule = self.config.time_rules.get(dest.target)
        if rule is None:
            raise DecisionError(f"{here}: time rule {dest.target} does not exist in {self.tenant.domain}")
        try:
            hit, why = schedule.matches(rule, self.now, self.tenant.timezone)
        except schedule.ScheduleError as exc:
            raise DecisionError(f"{here}: {exc}") from None
        target = rule.match if hit else rule.nomatch
        label = "match" if hit else "no match"
        return self.route(target, path, f"{here} [{why}: {label}]", rec, in_fallback)


def _check_now(now: datetime) -> None:
    if not isinstance(now, datetime) or now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime (UTC)")


def decide(call: CallFacts, config: TenantConfig, now: datetime, rotation: RotationState = RotationState()) -> Decision:
    """The plan for `call` in `config` at the instant `now`; DecisionError if the config contradicts itself."""
    _check_now(now)
    tenant = config.tenant
    if call.domain != tenant.domain:
        raise DecisionError(f"call for tenant {call.domain!r} decided with the configuration of {tenant.domain!r}")
    router = _Router(call, config, now, rotation)

    # R-BLACK: callers from outside whose number (or prefix) the tenant refuses. Internal
    # extensions are never compared (a prefix such as "8" would catch extension 801).
    if call.direction == "inbound":
        entry = config.blacklisted(call.caller_number)
        if entry is not None:
            note = f" ({entry.note})" if entry.note else ""
            return Decision(
                (
                    Hangup(
                        "CALL_REJECTED",
                        reason=f"caller {call.caller_number} is blacklisted ({entry.match} {entry.pattern}){note}",
                    ),
                )
            )

    steps: list[Step] = []
    # R-CLI: present the phonebook name of the caller.
    name = config.contact_name(call.caller_number)
    if name:
        steps.append(SetCallerName(name, reason=f"caller {call.caller_number} is {name!r} in the contacts"))

    # Where the call is now: its DID's scenario when it arrived there, else the number it dialled
    # or was sent to (a menu's digit, a time rule, a fallback, a transfer).
    if call.at_did:
        did = config.dids.get(canonical_number(call.did))
        if did is None:
            return Decision(
                tuple(steps)
                + (Hangup("NO_ROUTE_DESTINATION", reason=f"did {call.did} is not a number of {tenant.domain}"),)
            )
        dest, via = did.destination, f"did {did.number}"
    else:
        dest = config.numbered(call.dialled)
        via = f"dialled {call.dialled}"
        own_did = config.dids.get(canonical_number(call.dialled)) if dest is None else None
        if own_did is not None:
            # A user dialling one of the tenant's own public numbers gets its scenario.
            dest, via = own_did.destination, f"dialled did {own_did.number}"
        if dest is None and call.outbound and _EXTERNAL_RE.match(call.dialled):
            # The dialplan checked the caller's toll class before handing the call over.
            dest, via = Destination("external", call.dialled), f"outgoing call to {call.dialled}"
        if dest is None:
            return Decision(
                tuple(steps)
                + (Hangup("NO_ROUTE_DESTINATION", reason=f"{call.dialled} is not a number of {tenant.domain}"),)
            )
    steps.append(SetVar(cv.FSCTL_ROUTE, str(dest), reason=f"{via} -> {dest}"))

    # R-REC: every call from a recorded user is recorded too.
    rec = False
    if call.direction == "internal":
        caller = config.users.get(call.caller_number)
        if caller is not None and caller.record:
            steps += router.recording_prelude(caller.number, f"caller {caller.number}")
            rec = True

    steps += router.route(dest, (), via, rec, in_fallback=False)
    return Decision(tuple(steps), tuple(router.updates[g] for g in sorted(router.updates)))


def decide_fallback(
    call: CallFacts, config: TenantConfig, now: datetime, why: str, rotation: RotationState = RotationState()
) -> Decision:
    """The plan when `decide` failed (`why`): the tenant fallback, or a hang-up if that fails too."""
    _check_now(now)
    router = _Router(call, config, now, rotation)
    try:
        steps = router.route(config.tenant.fallback, (), f"{why}; tenant fallback", False, in_fallback=True)
    except DecisionError as exc:
        return Decision((Hangup("NORMAL_TEMPORARY_FAILURE", reason=f"{why}; tenant fallback failed: {exc}"),))
    return Decision(tuple(steps), tuple(router.updates[g] for g in sorted(router.updates)))


def explain(decision: Decision) -> list[dict]:
    """Rows for `fsctl trace`: step, apps, reason (+ depth, branch) for every step of the plan."""
    return explain_steps(decision.plan)
