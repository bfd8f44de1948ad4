"""How a call ended, from its facts: one pure rule table (`classify`) shared by statistics and
notifications, and a leg's result from its hang-up cause (`leg_result`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from ...calllogic.recpath import DIRECTIONS  # noqa: F401 (the call directions, one home)

STATUSES = ("answered", "missed", "abandoned", "busy", "failed", "refused")


LEG_RESULTS = ("answered", "no_answer", "busy", "cancelled", "failed")


# Hang-up causes (switch_types.h) by meaning.
BUSY_CAUSES = frozenset({"USER_BUSY", "CALL_REJECTED"})


NO_ANSWER_CAUSES = frozenset(
    {"NO_ANSWER", "NO_USER_RESPONSE", "ALLOTTED_TIMEOUT", "PROGRESS_TIMEOUT", "RECOVERY_ON_TIMER_EXPIRE"}
)


CANCEL_CAUSES = frozenset({"ORIGINATOR_CANCEL", "LOSE_RACE", "PICKED_OFF", "NORMAL_CLEARING"})


# A user leg that could not even ring (phone offline): the user still missed the call.
UNREACHABLE_CAUSES = frozenset(
    {"SUBSCRIBER_ABSENT", "USER_NOT_REGISTERED", "NO_ANSWER", "NO_USER_RESPONSE", "DESTINATION_OUT_OF_ORDER"}
)


@dataclass(frozen=True)
class LegFacts:
    """What a leg tells the classification: whose phone, how it ended, how it was offered."""

    user: str = ""
    result: str = "no_answer"  # one of LEG_RESULTS
    via: str = ""  # "queue": offered by a queue (mod_callcenter agent leg)
    external: bool = False  # a gateway leg (outside number)


@dataclass(frozen=True)
class CallRecordFacts:
    """What the classification of one call record looks at (not the call logic's CallFacts of a call arriving)."""

    direction: str = "internal"  # in | out | internal
    route_kind: str | None = None  # user | group | queue | ivr | voicemail | conference | external | ...
    route_target: str | None = None
    hangup_cause: str = "NORMAL_CLEARING"  # of the caller's leg
    legs: tuple[LegFacts, ...] = ()
    voicemail: str | None = None  # the mailbox the call ended in
    queue: str | None = None  # the queue the caller waited in
    caller_left: bool = False  # the caller hung up (recv_bye / recv_cancel / ORIGINATOR_CANCEL)
    a_answered: bool = False  # the caller's leg was answered (IVR, voicemail, conference, bridge)


@dataclass(frozen=True)
class Outcome:
    """The classification: status, who answered, for whom it is a missed call, and the rule."""

    status: str
    answered_by: str | None = None
    missed_by: tuple[str, ...] = ()
    rule: str = ""


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for item in items:
        if item and item not in seen:
            seen[item] = None
    return tuple(seen)


def classify(f: CallRecordFacts) -> Outcome:
    """The status of a call and the users who missed it (one rule table, first match wins)."""
    answered_users = [leg for leg in f.legs if leg.result == "answered" and leg.user and not leg.external]
    if answered_users:  # a group/queue call answered by one member is answered, missed by nobody
        return Outcome("answered", answered_users[0].user, (), "user answered")
    if any(leg.result == "answered" for leg in f.legs):
        return Outcome("answered", None, (), "far end answered")
    if f.route_kind == "conference" and f.a_answered:
        return Outcome("answered", None, (), "conference joined")
    if f.direction == "in" and f.hangup_cause == "CALL_REJECTED" and not f.legs:
        return Outcome("refused", None, (), "blacklisted caller refused")
    if f.direction == "out":
        if f.hangup_cause in BUSY_CAUSES or (f.legs and all(leg.result == "busy" for leg in f.legs)):
            return Outcome("busy", None, (), "outgoing call busy")
        return Outcome("failed", None, (), "outgoing call not answered")
    user_legs = [leg for leg in f.legs if leg.user and not leg.external and leg.via != "queue"]
    rang = _unique(leg.user for leg in user_legs if leg.result != "busy")
    if rang:
        extra = (f.voicemail,) if f.voicemail and f.voicemail not in rang else ()
        return Outcome("missed", None, rang + extra, "users rang, nobody answered")
    if user_legs:
        return Outcome("busy", None, (), "every user rung was busy")
    if f.voicemail:
        return Outcome("missed", None, (f.voicemail,), "went to voicemail")
    if f.route_kind == "user" and f.route_target and f.hangup_cause in UNREACHABLE_CAUSES:
        return Outcome("missed", None, (f.route_target,), "user unreachable")
    if f.queue or f.route_kind == "queue" or any(leg.via == "queue" for leg in f.legs):
        return Outcome("abandoned", None, (), "caller left the queue")
    if f.route_kind == "ivr" or (f.a_answered and f.caller_left):
        return Outcome("abandoned", None, (), "caller left during the greeting or menu")
    if f.hangup_cause in BUSY_CAUSES:
        return Outcome("busy", None, (), "busy")
    if f.caller_left or f.hangup_cause == "ORIGINATOR_CANCEL":
        return Outcome("abandoned", None, (), "caller hung up before anything rang")
    return Outcome("failed", None, (), "not connected")


def leg_result(answered: bool, cause: str) -> str:
    """A leg's result from whether it answered and its hang-up cause."""
    if answered:
        return "answered"
    if cause in BUSY_CAUSES:
        return "busy"
    if cause in NO_ANSWER_CAUSES:
        return "no_answer"
    if cause in CANCEL_CAUSES:
        return "cancelled"
    return "failed"
