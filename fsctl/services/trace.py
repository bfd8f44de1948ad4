"""`fsctl trace`: the plan the call-logic service would run for a call, with the rule behind each step."""

import datetime as dt
import zoneinfo

from .. import validate
from ..calllogic.decide import CallFacts, DecisionError, decide, decide_fallback, explain
from ..errors import ValidationError
from ..model import Did
from .common import get_tenant
from .snapshot import build_tenant_config, load_rotation


def parse_at(text, timezone):
    """'YYYY-MM-DD HH:MM' in the tenant's time zone (or ISO with an offset) -> aware UTC datetime."""
    try:
        when = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValidationError("trace.at", text, "must be a date and time like 2026-12-24 18:30") from None
    if when.tzinfo is None:
        # fold=0: an ambiguous local time (the autumn DST change) means its first occurrence.
        when = when.replace(tzinfo=zoneinfo.ZoneInfo(timezone))
    return when.astimezone(dt.timezone.utc)


def trace_call(domain, caller, dialled, at=None, recordings_root=None):
    """Decide a call without running it: {call, at, plan rows, rotation} (reads, never writes)."""
    tenant = get_tenant(domain)
    caller = (caller or "").strip()
    if not caller or not validate.PHONE_RE.match(caller):
        raise ValidationError("trace.from", caller, "must be a number (digits with an optional leading +)")
    dialled = (dialled or "").strip()
    if not dialled or not validate.PHONE_RE.match(dialled):
        raise ValidationError("trace.to", dialled, "must be a number (digits with an optional leading +)")
    now = parse_at(at, tenant.timezone) if at else dt.datetime.now(dt.timezone.utc)
    did = Did.get_or_none((Did.tenant == tenant) & (Did.number == dialled))
    facts = CallFacts(
        domain=tenant.domain,
        caller_number=caller,
        dialled=dialled,
        did=did.number if did else None,
        direction="inbound" if did else "internal",
        uuid="trace",
    )
    config = build_tenant_config(tenant, recordings_root)
    rotation = load_rotation(tenant)
    try:
        decision = decide(facts, config, now, rotation)
        failure = None
    except DecisionError as exc:
        failure = str(exc)
        decision = decide_fallback(facts, config, now, failure, rotation)
    local = now.astimezone(zoneinfo.ZoneInfo(tenant.timezone))
    return {
        "tenant": tenant.domain,
        "from": caller,
        "to": dialled,
        "direction": facts.direction,
        "at": local.isoformat(),
        "error": failure,
        "plan": explain(decision),
        "rotation": [{"group": u.group, "from": u.previous, "to": u.next_start} for u in decision.rotation_update],
    }
