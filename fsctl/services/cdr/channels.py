"""Merging a call's legs (`Channel`s, in any order) into one call's state, its facts and its parties (pure).

The event order seen on a real FreeSWITCH (esl_events_plain_bridge_acme.txt): the B-leg's
CHANNEL_HANGUP_COMPLETE arrives *before* the A-leg's, so a leg may create a provisional record
that the A-leg completes later.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field

from ...freeswitch.channel import Channel
from .classify import CallRecordFacts, LegFacts, Outcome, classify, leg_result


@dataclass
class CallState:
    """A call being built: CallRecord fields plus its legs by UUID."""

    record: dict
    legs: dict = field(default_factory=dict)
    was_complete: bool = False


def _seconds(a, b) -> int:
    if a is None or b is None:
        return 0
    return max(0, int((b - a).total_seconds()))


def _leg_from(ch: Channel, node: str | None = None) -> dict:
    result = leg_result(ch.answered_at is not None, ch.hangup_cause)
    return {
        "node": node,
        "uuid": ch.uuid,
        "user_number": ch.user,
        "started_at": ch.started_at,
        "answered_at": ch.answered_at,
        "ended_at": ch.ended_at,
        "result": result,
        "hangup_cause": ch.hangup_cause[:64],
        "via": ch.via,
        "external": ch.external,
        "talk_time": _seconds(ch.answered_at, ch.ended_at) if ch.answered_at else 0,
        "synthetic": False,
    }


def _direction(ch: Channel, legs: dict) -> str:
    if ch.did:
        return "in"
    route_kind = (ch.route or "").split(":", 1)[0]
    if route_kind == "external" or ch.bridged_external or any(l["external"] for l in legs.values()):
        return "out"
    callee = ch.callee.lstrip("+")
    if ch.callee.startswith("+") or (callee.isdigit() and len(callee) > 6):
        return "out"
    return "internal"


def new_state(ch: Channel) -> CallState:
    """An empty call for the first leg seen of it."""
    return CallState(
        record={
            "uuid": ch.call_uuid,
            "tenant": ch.tenant,
            "direction": "internal",
            "caller": ch.caller,
            "caller_name": "",
            "callee": "",
            "did": None,
            "target_kind": None,
            "target": None,
            "answered_by": None,
            "started_at": ch.started_at,
            "answered_at": None,
            "ended_at": ch.ended_at,
            "duration": 0,
            "talk_time": 0,
            "hangup_cause": "",
            "status": "failed",
            "recording_path": None,
            "voicemail": None,
            "queue": None,
            "caller_left": False,
            "a_answered": False,
            "missed_by": "",
            "complete": False,
            "node": None,
        }
    )


def apply_channel(state: CallState, ch: Channel, node: str | None = None) -> None:
    """Merge one leg into the call (idempotent: the same leg twice changes nothing).

    `node`: the node that reported the leg (its service, or the import of its folder); a source
    that does not know (None) keeps what another one said. The call's node is its caller's leg's.
    """
    rec = state.record
    if not ch.is_a_leg:
        known = state.legs.get(ch.uuid, {}).get("node")
        state.legs[ch.uuid] = _leg_from(ch, node or known)
        if not rec["complete"]:
            rec["node"] = rec.get("node") or node
            rec["started_at"] = min(rec["started_at"], ch.started_at)
            if rec["ended_at"] is None or (ch.ended_at and ch.ended_at > rec["ended_at"]):
                rec["ended_at"] = ch.ended_at
        return
    kind, _, target = (ch.route or "").partition(":")
    rec.update(
        tenant=ch.tenant or rec["tenant"],
        caller=ch.caller,
        caller_name=ch.caller_name[:200],
        callee=ch.callee,
        did=ch.did,
        target_kind=(kind or None) and kind[:16],
        target=(target or None) and target[:64],
        started_at=ch.started_at,
        ended_at=ch.ended_at,
        duration=_seconds(ch.started_at, ch.ended_at),
        hangup_cause=ch.hangup_cause[:64],
        recording_path=ch.recording_path,
        voicemail=ch.voicemail,
        queue=ch.queue,
        caller_left=ch.caller_left,
        a_answered=ch.answered_at is not None,
        complete=True,
        node=node or rec.get("node"),
    )
    if ch.bridged_to and ch.bridged_to not in state.legs:
        # Only the caller's leg is known (e.g. mod_xml_cdr without b-leg files): the leg it
        # was bridged to answered.
        answered = ch.bridged_at or ch.answered_at or ch.started_at
        state.legs[ch.bridged_to] = {
            "node": rec["node"],
            "uuid": ch.bridged_to,
            "user_number": ch.bridged_user[:32],
            "started_at": ch.started_at,
            "answered_at": answered,
            "ended_at": ch.ended_at,
            "result": "answered",
            "hangup_cause": ch.hangup_cause[:64],
            "via": "queue" if ch.queue else "",
            "external": ch.bridged_external,
            "talk_time": _seconds(answered, ch.ended_at),
            "synthetic": True,
        }
    rec["direction"] = _direction(ch, state.legs)


def facts_of(state: CallState) -> CallRecordFacts:
    """The classification facts of a call being built."""
    rec = state.record
    legs = sorted(state.legs.values(), key=lambda l: (l["answered_at"] or _dt.datetime.max, l["started_at"]))
    return CallRecordFacts(
        direction=rec["direction"],
        route_kind=rec["target_kind"],
        route_target=rec["target"],
        hangup_cause=rec["hangup_cause"] or "NORMAL_CLEARING",
        legs=tuple(LegFacts(l["user_number"], l["result"], l["via"], l["external"]) for l in legs),
        voicemail=rec["voicemail"],
        queue=rec["queue"],
        caller_left=rec["caller_left"],
        a_answered=rec["a_answered"],
    )


def finish_state(state: CallState) -> tuple[Outcome, list[dict]]:
    """Classify the call, fill the derived fields; returns the outcome and the CallParty rows."""
    rec = state.record
    out = classify(facts_of(state))
    rec["status"] = out.status
    rec["answered_by"] = out.answered_by
    rec["missed_by"] = ",".join(out.missed_by)
    answered_legs = sorted(
        (l for l in state.legs.values() if l["result"] == "answered"), key=lambda l: l["answered_at"]
    )
    # A transferred call talks on several legs one after another: the call's talk time is their sum.
    rec["answered_at"] = answered_legs[0]["answered_at"] if answered_legs else None
    rec["talk_time"] = sum(l["talk_time"] for l in answered_legs)
    if not rec["complete"]:
        rec["duration"] = _seconds(rec["started_at"], rec["ended_at"])
    return out, parties_of(state, out)


def parties_of(state: CallState, out: Outcome) -> list[dict]:
    """One row per user involved: received / answered / missed / placed / talk time."""
    rec = state.record
    parties: dict[str, dict] = {}

    def party(user):
        return parties.setdefault(
            user, {"user_number": user, "received": 0, "answered": 0, "missed": 0, "placed": 0, "talk_time": 0}
        )

    if rec["complete"] and rec["direction"] in ("out", "internal") and rec["caller"]:
        party(rec["caller"])["placed"] = 1
    if rec["direction"] in ("in", "internal"):
        for leg in state.legs.values():
            if leg["user_number"] and not leg["external"]:
                party(leg["user_number"])["received"] = 1
        for user in out.missed_by:
            p = party(user)
            p["received"] = p["missed"] = 1
        for leg in state.legs.values():  # everyone who answered (a transfer target too), with their own talk
            if leg["result"] == "answered" and leg["user_number"] and not leg["external"]:
                p = party(leg["user_number"])
                p["answered"] = 1
                p["talk_time"] += leg["talk_time"]
    return list(parties.values())
