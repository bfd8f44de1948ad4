"""The outbox: deliveries queued with the call records (one row per call and target, unique key, so a
call ingested again never sends twice) and `drain`, which delivers what is due and retries failures
with exponential backoff (settings notify_backoff, notify_max_attempts), keeping failures.

The missed/answered decision is fsctl.services.cdr.classify's: statistics and notifications agree.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections import ChainMap
from dataclasses import dataclass, field

from ... import validate
from ...errors import ValidationError, first_line
from ...freeswitch import chanvars as cv
from ...freeswitch.channel import parse_channel
from ...model import OUTBOX_KEY_MAX, CallRecord, CrmHook, NotifyRule, Outbox, Tenant, User, call_dict, iso_utc, utcnow
from ..common import get_tenant
from .transports import DeliveryError, Transport, bitrix24_deliver, missed_call_email, recording_url, redact_url

MAX_BACKOFF = 3600.0


def _queue(tenant_id: int, key: str, channel: str, target: str, payload: dict, now) -> None:
    Outbox.insert(
        tenant=tenant_id,
        key=key[:OUTBOX_KEY_MAX],
        channel=channel,
        target=target,
        payload=json.dumps(payload, default=str),
        next_attempt_at=now,
        created_at=now,
    ).on_conflict_ignore().execute()


def enqueue_for_calls(call_ids, now=None) -> int:
    """Queue the missed-call notifications and CRM 'finished' events of completed calls (duplicates ignored)."""
    now = now or utcnow()
    ids = list(call_ids)
    if not ids:
        return 0
    tenant_ids = [t for (t,) in CallRecord.select(CallRecord.tenant).where(CallRecord.id.in_(ids)).distinct().tuples()]
    rules: dict[int, list] = {}
    for rule in NotifyRule.select().where(NotifyRule.tenant.in_(tenant_ids)):
        rules.setdefault(rule.tenant_id, []).append(rule)
    hooks: dict[int, list] = {}
    for hook in CrmHook.select().where(CrmHook.tenant.in_(tenant_ids)):
        hooks.setdefault(hook.tenant_id, []).append(hook)
    if not rules and not hooks:
        return 0
    calls = (
        CallRecord.select(CallRecord, Tenant)
        .join(Tenant)
        .where(CallRecord.id.in_(ids) & CallRecord.tenant.in_(list(set(rules) | set(hooks))))
    )
    queued = 0
    emails = {}
    for call in calls:
        data = call_dict(call)
        missed_by = data["missed_by"]
        if call.status == "missed":
            for rule in rules.get(call.tenant_id, []):
                hit = (rule.scope == "user" and rule.number in missed_by) or (
                    rule.scope == "group" and call.target_kind == "group" and call.target == rule.number
                )
                if not hit:
                    continue
                target = rule.address
                if rule.channel == "email" and not target:
                    if (call.tenant_id, rule.number) not in emails:
                        user = User.get_or_none((User.tenant == call.tenant_id) & (User.number == rule.number))
                        emails[(call.tenant_id, rule.number)] = (user.email if user else "") or ""
                    target = emails[(call.tenant_id, rule.number)]
                payload = {
                    "event": "missed_call",
                    "tenant": call.tenant.domain,
                    "scope": rule.scope,
                    "number": rule.number,
                    "call": data,
                }
                _queue(call.tenant_id, f"missed:{call.uuid}:{rule.id}", rule.channel, target, payload, now)
                queued += 1
        for hook in hooks.get(call.tenant_id, []):
            payload = {"event": "finished", "tenant": call.tenant.domain, "call_uuid": call.uuid, "call": data}
            _queue(call.tenant_id, f"crm:{call.uuid}:finished:{hook.id}", "crm", str(hook.id), payload, now)
            queued += 1
    return queued


def crm_event(headers: dict) -> tuple[str, str, str, str, dict] | None:
    """(event, tenant, call uuid, user, data) for a ringing/answered user leg, else None (pure)."""
    name = headers.get(cv.EVENT_NAME, "")
    kind = {"CHANNEL_PROGRESS": "ringing", "CHANNEL_PROGRESS_MEDIA": "ringing", "CHANNEL_ANSWER": "answered"}.get(name)
    if kind is None:
        return None
    # The event's headers with a start time when it has none (read through: an event's headers
    # are decoded when read, and parse_channel reads a few dozen of them).
    probe = ChainMap(headers, {cv.header(cv.START_EPOCH): "1"})
    try:
        ch = parse_channel(probe)
    except ValidationError:
        return None
    if ch.is_a_leg or ch.external or not ch.user:
        return None
    stamp = (headers.get(cv.EVENT_DATE_TIMESTAMP) or "").strip()  # microseconds since 1970
    at = (
        _dt.datetime.fromtimestamp(int(stamp) // 1_000_000, _dt.timezone.utc).replace(tzinfo=None)
        if stamp.isdigit()
        else ch.started_at
    )
    data = {
        "caller": ch.caller,
        "user": ch.user,
        "did": headers.get(cv.header(cv.FSCTL_DID)) or None,
        "at": iso_utc(at),
    }
    return kind, ch.tenant, ch.call_uuid, ch.user, data


def enqueue_channel_event(headers: dict, now=None) -> int:
    """Queue the CRM 'ringing'/'answered' events of a channel event (CHANNEL_PROGRESS/ANSWER); returns rows queued."""
    found = crm_event(headers)
    if found is None:
        return 0
    kind, domain, call_uuid, user, data = found
    tenant = Tenant.get_or_none(Tenant.domain == domain)
    if tenant is None:
        return 0
    now = now or utcnow()
    n = 0
    for hook in CrmHook.select().where(CrmHook.tenant == tenant):
        key = f"crm:{call_uuid}:{kind}:{user}:{hook.id}" if kind == "ringing" else f"crm:{call_uuid}:{kind}:{hook.id}"
        payload = {"event": kind, "tenant": domain, "call_uuid": call_uuid, **data}
        _queue(tenant.id, key, "crm", str(hook.id), payload, now)
        n += 1
    return n


@dataclass
class DrainReport:
    """What one `drain` did."""

    sent: int = 0
    retried: int = 0
    failed: int = 0
    errors: list = field(default_factory=list)


def _backoff(attempts: int, base: float) -> float:
    return min(MAX_BACKOFF, base * (2 ** max(0, attempts - 1)))


def claim_seconds(settings) -> float:
    """How long a drainer holds the rows it claimed: well beyond one delivery's deadline."""
    return max(60.0, 3 * settings.notify_timeout)


def drain(transport: Transport, settings, now=None, limit: int | None = None) -> DrainReport:
    """Deliver every due outbox row once; failures are retried later with backoff, then kept as failed.

    Whatever goes wrong with a row (a refused address, an answer that is not HTTP, a value no
    e-mail header can carry) is a failed attempt of that row only: the others are delivered,
    and after notify_max_attempts the row is `failed`, never claimed again. A delivery has one
    deadline (notify_timeout), far shorter than the claim: no second drainer sends it meanwhile.
    """
    now = now or utcnow()
    report = DrainReport()
    query = Outbox.select().where((Outbox.state == "pending") & (Outbox.next_attempt_at <= now)).order_by(Outbox.id)
    if limit:
        query = query.limit(limit)
    lease = _dt.timedelta(seconds=claim_seconds(settings))
    for row in list(query):
        # Claim the row first: another drainer (the service, a cron `fsctl notify send`) skips it.
        claimed = (
            Outbox.update(next_attempt_at=now + lease)
            .where(
                (Outbox.id == row.id) & (Outbox.state == "pending") & (Outbox.next_attempt_at == row.next_attempt_at)
            )
            .execute()
        )
        if not claimed:
            continue
        try:
            try:
                _deliver(row, transport, settings)
            except DeliveryError:
                raise
            except Exception as exc:  # a poisoned row must not stop the others nor come back forever
                raise DeliveryError(f"{exc.__class__.__name__}: {first_line(exc, 'no detail')}") from exc
        except DeliveryError as exc:
            attempts = row.attempts + 1
            gave_up = attempts >= settings.notify_max_attempts
            Outbox.update(
                attempts=attempts,
                last_error=str(exc)[:500],
                state="failed" if gave_up else "pending",
                next_attempt_at=now + _dt.timedelta(seconds=_backoff(attempts, settings.notify_backoff)),
            ).where(Outbox.id == row.id).execute()
            report.errors.append(f"{row.key}: {exc}")
            if gave_up:
                report.failed += 1
            else:
                report.retried += 1
            continue
        Outbox.update(attempts=row.attempts + 1, state="sent", sent_at=now, last_error="").where(
            Outbox.id == row.id
        ).execute()
        report.sent += 1
    return report


def _deliver(row: Outbox, transport: Transport, settings) -> None:
    payload = json.loads(row.payload)
    deadline = transport.deadline()  # one for the whole delivery (Bitrix24 may make two requests)
    if row.channel == "email":
        if not row.target:
            raise DeliveryError("no e-mail address")
        # Its users read their tenant's time zone (issue 11: the e-mail said UTC).
        tenant = Tenant.get_or_none(Tenant.id == row.tenant_id)
        timezone = tenant.timezone if tenant is not None else "UTC"
        transport.send_email(missed_call_email(payload, transport.smtp_from, row.target, timezone), deadline)
    elif row.channel == "webhook":
        transport.post_json(row.target, payload, deadline)
    elif row.channel == "crm":
        hook = CrmHook.get_or_none(CrmHook.id == int(row.target))
        if hook is None:
            return  # the hook was removed: nothing to deliver
        if hook.mode == "bitrix24":
            bitrix24_deliver(hook, payload, transport, settings, deadline)
        else:
            if payload.get("event") == "finished":
                payload = {**payload, "recording_url": recording_url(payload["call"].get("recording"), settings)}
            transport.post_json(hook.url, payload, deadline)
    else:
        raise DeliveryError(f"unknown channel {row.channel}")


def outbox_dict(row: Outbox) -> dict:
    """An outbox row as plain data (for `fsctl notify outbox`)."""
    target = redact_url(row.target) if row.channel == "webhook" else row.target
    return {
        "id": row.id,
        "key": row.key,
        "channel": row.channel,
        "target": target,
        "state": row.state,
        "attempts": row.attempts,
        "next_attempt_at": row.next_attempt_at,
        "last_error": row.last_error,
    }


def list_outbox(domain: str | None = None, state: str | None = None) -> list[Outbox]:
    """Outbox rows, newest first, optionally for one tenant and state."""
    query = Outbox.select().order_by(Outbox.id.desc())
    if domain:
        query = query.where(Outbox.tenant == get_tenant(domain))
    if state:
        validate.choice(state, "--state", ("pending", "sent", "failed"))
        query = query.where(Outbox.state == state)
    return list(query)
