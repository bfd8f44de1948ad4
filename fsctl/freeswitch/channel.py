"""One leg of a call as FreeSWITCH reports it at hang-up: its channel event's headers -> `Channel` (pure).

Shared by the call records (fsctl.services.cdr) and the CRM events (fsctl.services.notify).
Values are URL-decoded already; channel variables come as `variable_<name>` (chanvars.header).
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass

from ..errors import ValidationError
from . import chanvars as cv


@dataclass
class Channel:
    """One leg as reported at hang-up: the caller's leg (is_a_leg) or a leg it rang."""

    uuid: str
    call_uuid: str
    is_a_leg: bool
    tenant: str
    caller: str = ""
    caller_name: str = ""
    callee: str = ""
    did: str | None = None
    route: str | None = None
    recording_path: str | None = None
    started_at: _dt.datetime | None = None
    answered_at: _dt.datetime | None = None
    bridged_at: _dt.datetime | None = None
    ended_at: _dt.datetime | None = None
    hangup_cause: str = ""
    user: str = ""  # leg: the user rung (or the outside number for a gateway leg)
    via: str = ""
    external: bool = False
    voicemail: str | None = None
    queue: str | None = None
    caller_left: bool = False
    bridged_to: str | None = None  # A-leg: the leg it was last bridged to
    bridged_user: str = ""
    bridged_external: bool = False


def _var(h: dict, name: str) -> str:
    return (h.get(cv.header(name)) or "").strip()


def _epoch(h: dict, name: str, required: bool = False) -> _dt.datetime | None:
    raw = _var(h, name)
    if not raw:
        if required:
            raise ValidationError(cv.header(name), raw, "must be present (seconds since 1970)")
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ValidationError(cv.header(name), raw, "must be a whole number of seconds since 1970") from None
    if value < 0:
        raise ValidationError(cv.header(name), raw, "must not be negative")
    if value == 0:
        if required:
            raise ValidationError(cv.header(name), raw, "must be after 1970")
        return None
    try:
        return _dt.datetime.fromtimestamp(value, _dt.timezone.utc).replace(tzinfo=None)
    except (OverflowError, OSError, ValueError):  # beyond what a date holds (year 9999)
        raise ValidationError(cv.header(name), raw, "must be a time before the year 10000") from None


def _mailbox(arg: str) -> str | None:
    """The mailbox a `voicemail` application left a message in, from its argument, or None.

    `voicemail [check] [auth] <profile> <domain> [<id>]` (mod_voicemail): with `check` the caller
    listened to a mailbox (`*98`) and left nothing; the last word was taken as the mailbox, which
    for `check default <domain>` is the domain (longer than the column, and a missed call of nobody).
    """
    words = arg.split()
    if "check" in words[:2]:
        return None
    words = [w for w in words if w not in ("auth",)]
    return _user_part(words[2]) if len(words) >= 3 else None


def _user_part(text: str) -> str:
    """'101@acme.example' -> '101'; 'sofia/internal/102@127.0.0.1:5102' -> '102'."""
    text = (text or "").rsplit("/", 1)[-1]
    return text.split("@", 1)[0]


def _is_gateway(h: dict, channel_name: str) -> bool:
    return bool(_var(h, cv.SIP_GATEWAY_NAME) or _var(h, cv.SIP_GATEWAY)) or "/gateway/" in channel_name


def parse_channel(headers: dict) -> Channel:
    """A leg from CHANNEL_HANGUP_COMPLETE headers (values already URL-decoded)."""
    h = headers
    uuid = (h.get(cv.UNIQUE_ID) or _var(h, cv.UUID)).strip()
    if not uuid:
        raise ValidationError(cv.UNIQUE_ID, uuid, "must be present (the channel's UUID)")
    parent = ""
    via = ""
    member = _var(h, cv.CC_MEMBER_SESSION_UUID)
    if member and member != uuid:  # mod_callcenter agent leg: offered by a queue
        parent, via = member, "queue"
    else:
        for name in (cv.ORIGINATING_LEG_UUID, cv.ORIGINATOR):
            value = _var(h, name)
            if value and value != uuid:
                parent = value
                break
    is_a = not parent
    tenant = (
        _var(h, cv.FSCTL_TENANT)
        or _var(h, cv.USER_CONTEXT)
        or _var(h, cv.DOMAIN_NAME)
        or _var(h, cv.DIALED_DOMAIN)
        or (h.get(cv.CALLER_CONTEXT) or "").strip()
        or ("" if is_a else (h.get(cv.OTHER_LEG_CONTEXT) or "").strip())
    ).lower()
    started = _epoch(h, cv.START_EPOCH, required=True)
    answered = _epoch(h, cv.ANSWER_EPOCH)
    ended = _epoch(h, cv.END_EPOCH) or started
    cause = (h.get(cv.HANGUP_CAUSE) or _var(h, cv.HANGUP_CAUSE_VAR) or "NORMAL_CLEARING").strip()
    disposition = _var(h, cv.SIP_HANGUP_DISPOSITION)
    channel_name = (h.get(cv.CHANNEL_NAME) or _var(h, cv.CHANNEL_NAME_VAR)).strip()
    ch = Channel(
        uuid=uuid,
        call_uuid=parent or uuid,
        is_a_leg=is_a,
        tenant=tenant,
        started_at=started,
        answered_at=answered,
        ended_at=ended,
        hangup_cause=cause,
        caller=(h.get(cv.CALLER_ID_NUMBER) or "").strip()[:32],
        via=via,
    )
    if is_a:
        did = _var(h, cv.FSCTL_DID) or None
        ch.did = did
        ch.caller_name = (_var(h, cv.EFFECTIVE_CALLER_ID_NAME) or h.get(cv.CALLER_ID_NAME) or "").strip()
        dialled = (h.get(cv.CALLER_RDNIS) or h.get(cv.DESTINATION_NUMBER) or "").strip()
        ch.callee = (did or dialled)[:32]
        ch.route = _var(h, cv.FSCTL_TARGET) or _var(h, cv.FSCTL_ROUTE) or None
        ch.recording_path = _var(h, cv.FSCTL_RECORDING_PATH) or None
        ch.caller_left = disposition in ("recv_bye", "recv_cancel") or cause == "ORIGINATOR_CANCEL"
        app = _var(h, cv.LAST_APP) or _var(h, cv.CURRENT_APPLICATION)
        if app == "voicemail":
            ch.voicemail = _mailbox(_var(h, cv.LAST_ARG) or _var(h, cv.CURRENT_APPLICATION_DATA))
        queue = _var(h, cv.CC_QUEUE)
        ch.queue = _user_part(queue) if queue else None
        ch.bridged_to = _var(h, cv.LAST_BRIDGE_TO) or _var(h, cv.BRIDGE_UUID) or None
        ch.bridged_at = _epoch(h, cv.BRIDGE_EPOCH)
        bridge_channel = _var(h, cv.BRIDGE_CHANNEL)
        ch.bridged_external = _is_gateway(h, bridge_channel) or "/gateway/" in _var(h, cv.LAST_ARG)
        ch.bridged_user = _var(h, cv.DIALED_USER) or _user_part(bridge_channel)
    else:
        ch.external = _is_gateway(h, channel_name)
        agent = _var(h, cv.CC_AGENT)
        ch.user = (
            _user_part(agent)
            if agent
            else (
                _var(h, cv.DIALED_USER)
                or (h.get(cv.DESTINATION_NUMBER) or "").strip()
                or (h.get(cv.CALLEE_ID_NUMBER) or "").strip()
            )
        )[:32]
    return ch
