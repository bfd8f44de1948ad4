"""Missed-call notifications (R-MISSED) and CRM call events (R-CRM), through an outbox.

- NotifyRule: a user's or a group's missed calls go by e-mail or webhook (JSON POST).
- CrmHook: every call's events (ringing, answered, finished with the recording link) go to a
  webhook, or to Bitrix24's telephony REST methods (telephony.externalcall.register and
  telephony.externalcall.finish) in `bitrix24` mode.
- Outbox: each delivery is one row with a unique key per (call, target), so ingesting the same
  call again never sends twice; `drain` delivers what is due and retries failures with
  exponential backoff (settings notify_backoff, notify_max_attempts), keeping failures.

The missed/answered decision is fsctl.services.cdr.classify's: statistics and notifications agree.
"""

from __future__ import annotations

import datetime as _dt
import json
import smtplib
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from email.message import EmailMessage
from urllib.parse import urlsplit

from .. import validate
from ..errors import ConflictError, NotFoundError, ValidationError
from ..freeswitch import chanvars as cv
from ..freeswitch.channel import parse_channel
from ..model import CallRecord, CrmCall, CrmHook, Group, NotifyRule, Outbox, Tenant, User, call_dict, iso_utc, utcnow
from .common import get_tenant

SCOPES = ("user", "group")
CHANNELS = ("email", "webhook")
CRM_MODES = ("webhook", "bitrix24")
MAX_BACKOFF = 3600.0

# Bitrix24 telephony.externalcall.finish STATUS_CODE by fsctl call status.
BITRIX_STATUS = {
    "answered": "200",
    "missed": "304",
    "busy": "486",
    "abandoned": "603-S",
    "refused": "423",
    "failed": "OTHER",
}


# --- configuration ------------------------------------------------------------------------

def check_url(value: str, field: str) -> str:
    """An http(s) URL with a host."""
    text = (value or "").strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname or validate.CONTROL_RE.search(text) or " " in text:
        raise ValidationError(field, value, "must be an http:// or https:// URL")
    return text


def add_rule(domain: str, scope: str, number: str, channel: str, address: str = "") -> NotifyRule:
    """Tell someone about the missed calls of a user or group, by e-mail or webhook."""
    tenant = get_tenant(domain)
    validate.choice(scope, "scope", SCOPES)
    validate.choice(channel, "channel", CHANNELS)
    number = validate.extension(number, f"{scope}.number")
    model = User if scope == "user" else Group
    owner = model.get_or_none((model.tenant == tenant) & (model.number == number))
    if owner is None:
        raise NotFoundError(scope, number, tenant.domain)
    if channel == "email":
        if address:
            address = validate.email(address, "--to")
        elif scope == "group" or not owner.email:
            what = f"user {number} has no e-mail address" if scope == "user" else "a group has no e-mail address"
            raise ValidationError("--to", "", f"{what}: give one")
    else:
        address = check_url(address, "--to")
    if NotifyRule.select().where(
        (NotifyRule.tenant == tenant) & (NotifyRule.scope == scope) & (NotifyRule.number == number)
        & (NotifyRule.channel == channel) & (NotifyRule.address == address)
    ).exists():
        raise ConflictError(f"{scope} {number}: this {channel} notification already exists")
    return NotifyRule.create(tenant=tenant, scope=scope, number=number, channel=channel, address=address)


def list_rules(domain: str) -> list[NotifyRule]:
    """The tenant's notification rules."""
    tenant = get_tenant(domain)
    return list(NotifyRule.select().where(NotifyRule.tenant == tenant).order_by(NotifyRule.id))


def rule_dict(rule: NotifyRule) -> dict:
    """A rule as plain data."""
    return {"id": rule.id, "scope": rule.scope, "number": rule.number, "channel": rule.channel,
            "address": rule.address}


def remove_rule(domain: str, rule_id) -> None:
    """Remove a notification rule by id."""
    tenant = get_tenant(domain)
    rid = validate.integer(rule_id, "id", low=1)
    if not NotifyRule.delete().where((NotifyRule.tenant == tenant) & (NotifyRule.id == rid)).execute():
        raise NotFoundError("notification rule", rid, tenant.domain)


def add_hook(domain: str, url: str, mode: str = "webhook") -> CrmHook:
    """Send the tenant's call events to a CRM (plain webhook or Bitrix24 REST webhook URL)."""
    tenant = get_tenant(domain)
    validate.choice(mode, "--mode", CRM_MODES)
    url = check_url(url, "--url")
    if CrmHook.select().where((CrmHook.tenant == tenant) & (CrmHook.url == url)).exists():
        raise ConflictError(f'CRM hook "{url}" already exists in {tenant.domain}')
    return CrmHook.create(tenant=tenant, url=url, mode=mode)


def list_hooks(domain: str) -> list[CrmHook]:
    """The tenant's CRM hooks."""
    tenant = get_tenant(domain)
    return list(CrmHook.select().where(CrmHook.tenant == tenant).order_by(CrmHook.id))


def hook_dict(hook: CrmHook) -> dict:
    """A CRM hook as plain data."""
    return {"id": hook.id, "mode": hook.mode, "url": hook.url}


def remove_hook(domain: str, hook_id) -> None:
    """Remove a CRM hook by id."""
    tenant = get_tenant(domain)
    hid = validate.integer(hook_id, "id", low=1)
    if not CrmHook.delete().where((CrmHook.tenant == tenant) & (CrmHook.id == hid)).execute():
        raise NotFoundError("CRM hook", hid, tenant.domain)


# --- queueing -----------------------------------------------------------------------------

def _queue(tenant_id: int, key: str, channel: str, target: str, payload: dict, now) -> None:
    Outbox.insert(
        tenant=tenant_id, key=key[:200], channel=channel, target=target, payload=json.dumps(payload, default=str),
        next_attempt_at=now, created_at=now,
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
    calls = CallRecord.select(CallRecord, Tenant).join(Tenant).where(
        CallRecord.id.in_(ids) & CallRecord.tenant.in_(list(set(rules) | set(hooks))))
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
                payload = {"event": "missed_call", "tenant": call.tenant.domain, "scope": rule.scope,
                           "number": rule.number, "call": data}
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
    probe = dict(headers)
    probe.setdefault(cv.header("start_epoch"), "1")
    try:
        ch = parse_channel(probe)
    except ValidationError:
        return None
    if ch.is_a_leg or ch.external or not ch.user:
        return None
    stamp = (headers.get("Event-Date-Timestamp") or "").strip()  # microseconds since 1970
    at = (_dt.datetime.fromtimestamp(int(stamp) // 1_000_000, _dt.timezone.utc).replace(tzinfo=None)
          if stamp.isdigit() else ch.started_at)
    data = {"caller": ch.caller, "user": ch.user, "did": headers.get(cv.header(cv.FSCTL_DID)) or None,
            "at": iso_utc(at)}
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


# --- delivery -----------------------------------------------------------------------------

class DeliveryError(Exception):
    """One delivery attempt failed (retried later)."""


@dataclass
class Transport:
    """How messages leave: SMTP server and HTTP timeout (inject another in tests)."""

    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_from: str = "pbx@localhost"
    timeout: float = 10.0

    @classmethod
    def from_settings(cls, settings) -> "Transport":
        """The transport the settings describe."""
        return cls(settings.smtp_host, settings.smtp_port, settings.smtp_from, settings.notify_timeout)

    def send_email(self, message: EmailMessage) -> None:
        """Send one message through the SMTP server."""
        try:
            with smtplib.SMTP(self.smtp_host, self.smtp_port, timeout=self.timeout) as smtp:
                smtp.send_message(message)
        except (OSError, smtplib.SMTPException) as exc:
            raise DeliveryError(f"smtp {self.smtp_host}:{self.smtp_port}: {exc}") from None

    def post_json(self, url: str, data: dict) -> dict:
        """POST a JSON object; the JSON reply (or {}) on 2xx, DeliveryError otherwise."""
        body = json.dumps(data, ensure_ascii=False).encode()
        request = urllib.request.Request(
            url, data=body, method="POST",
            headers={"Content-Type": "application/json; charset=utf-8", "User-Agent": "fsctl"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raise DeliveryError(f"POST {url}: HTTP {exc.code}") from None
        except (OSError, urllib.error.URLError) as exc:
            raise DeliveryError(f"POST {url}: {getattr(exc, 'reason', exc)}") from None
        try:
            return json.loads(raw) if raw.strip() else {}
        except ValueError:
            return {}


@dataclass
class DrainReport:
    """What one `drain` did."""

    sent: int = 0
    retried: int = 0
    failed: int = 0
    errors: list = field(default_factory=list)


def _backoff(attempts: int, base: float) -> float:
    return min(MAX_BACKOFF, base * (2 ** max(0, attempts - 1)))


def drain(transport: Transport, settings, now=None, limit: int | None = None) -> DrainReport:
    """Deliver every due outbox row once; failures are retried later with backoff, then kept as failed."""
    now = now or utcnow()
    report = DrainReport()
    query = (Outbox.select().where((Outbox.state == "pending") & (Outbox.next_attempt_at <= now))
             .order_by(Outbox.id))
    if limit:
        query = query.limit(limit)
    lease = _dt.timedelta(seconds=max(60.0, 3 * settings.notify_timeout))
    for row in list(query):
        # Claim the row first: another drainer (the service, a cron `fsctl notify send`) skips it.
        claimed = Outbox.update(next_attempt_at=now + lease).where(
            (Outbox.id == row.id) & (Outbox.state == "pending") & (Outbox.next_attempt_at == row.next_attempt_at)
        ).execute()
        if not claimed:
            continue
        try:
            _deliver(row, transport, settings)
        except DeliveryError as exc:
            attempts = row.attempts + 1
            gave_up = attempts >= settings.notify_max_attempts
            Outbox.update(
                attempts=attempts, last_error=str(exc)[:500], state="failed" if gave_up else "pending",
                next_attempt_at=now + _dt.timedelta(seconds=_backoff(attempts, settings.notify_backoff)),
            ).where(Outbox.id == row.id).execute()
            report.errors.append(f"{row.key}: {exc}")
            if gave_up:
                report.failed += 1
            else:
                report.retried += 1
            continue
        Outbox.update(attempts=row.attempts + 1, state="sent", sent_at=now, last_error="").where(
            Outbox.id == row.id).execute()
        report.sent += 1
    return report


def _deliver(row: Outbox, transport: Transport, settings) -> None:
    payload = json.loads(row.payload)
    if row.channel == "email":
        if not row.target:
            raise DeliveryError("no e-mail address")
        transport.send_email(missed_call_email(payload, transport.smtp_from, row.target))
    elif row.channel == "webhook":
        transport.post_json(row.target, payload)
    elif row.channel == "crm":
        hook = CrmHook.get_or_none(CrmHook.id == int(row.target))
        if hook is None:
            return  # the hook was removed: nothing to deliver
        if hook.mode == "bitrix24":
            _bitrix(hook, payload, transport, settings)
        else:
            if payload.get("event") == "finished":
                payload = {**payload, "recording_url": recording_url(payload["call"].get("recording"), settings)}
            transport.post_json(hook.url, payload)
    else:
        raise DeliveryError(f"unknown channel {row.channel}")


def missed_call_email(payload: dict, sender: str, to: str) -> EmailMessage:
    """The e-mail about a missed call (pure)."""
    call = payload["call"]
    name = validate.CONTROL_RE.sub(" ", call.get("caller_name") or "").strip()  # caller text: no header injection
    who = call["caller"] + (f" ({name})" if name else "")
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = f"Missed call from {who}"
    lines = [
        f"Missed call from {who}",
        f"To: {call['callee']}" + (f" (group {payload['number']})" if payload.get("scope") == "group" else ""),
        f"When: {call['started_at']}",
        f"Rang: {', '.join(call['missed_by']) or '-'}",
        f"Call: {call['uuid']}",
    ]
    message.set_content("\n".join(lines) + "\n")
    return message


def recording_url(path: str | None, settings) -> str | None:
    """The link to a recording: settings.recordings_url + the path under recordings_dir."""
    if not path:
        return None
    base = (settings.recordings_url or "").rstrip("/")
    root = (settings.recordings_dir or "").rstrip("/") + "/"
    rel = path[len(root):] if path.startswith(root) else path.lstrip("/")
    return f"{base}/{rel}" if base else path


def _is_extension(number: str) -> bool:
    return bool(validate.EXTENSION_RE.match(number or ""))


def _bitrix_call(transport: Transport, hook: CrmHook, method: str, params: dict) -> dict:
    reply = transport.post_json(f"{hook.url.rstrip('/')}/{method}.json", params)
    if "error" in reply:
        raise DeliveryError(f"{method}: {reply.get('error')}: {reply.get('error_description', '')}")
    return reply.get("result") or {}


def _bitrix_register(hook, transport, call_uuid, user, phone, kind, started, line, show) -> str:
    params = {
        "USER_PHONE_INNER": user,
        "PHONE_NUMBER": phone,
        "TYPE": kind,  # 1 outgoing, 2 incoming
        "CALL_START_DATE": started,
        "CRM_CREATE": 1,
        "SHOW": 1 if show else 0,
    }
    if line:
        params["LINE_NUMBER"] = line
    result = _bitrix_call(transport, hook, "telephony.externalcall.register", params)
    call_id = str(result.get("CALL_ID") or "")
    if not call_id:
        raise DeliveryError("telephony.externalcall.register: no CALL_ID in the reply")
    CrmCall.insert(hook=hook, call_uuid=call_uuid, external_id=call_id).on_conflict_ignore().execute()
    return call_id


def _bitrix(hook: CrmHook, payload: dict, transport: Transport, settings) -> None:
    """Bitrix24 telephony: ringing -> register (shows the card), finished -> finish (with recording)."""
    event = payload.get("event")
    known = CrmCall.get_or_none((CrmCall.hook == hook) & (CrmCall.call_uuid == payload["call_uuid"]))
    if event == "ringing":
        if known is not None or _is_extension(payload.get("caller", "")):
            return  # already registered (or finished), or an internal call: Bitrix24 tracks outside calls
        _bitrix_register(hook, transport, payload["call_uuid"], payload["user"], payload["caller"], 2,
                         payload.get("at"), payload.get("did"), True)
        return
    if event != "finished":
        return  # "answered": Bitrix24 has no such step; finish carries the outcome
    call = payload["call"]
    if call["direction"] == "internal" or (known is not None and known.finished):
        return
    incoming = call["direction"] == "in"
    user = call["answered_by"] or (call["missed_by"][0] if call["missed_by"] else "")
    if not incoming:
        user = call["caller"]
    elif not user and call.get("target"):
        user = call["target"].split(":", 1)[-1]  # the group/queue/IVR number the call was for
    if known is None:
        phone = call["caller"] if incoming else call["callee"]
        call_id = _bitrix_register(hook, transport, call["uuid"], user, phone, 2 if incoming else 1,
                                   call["started_at"], call.get("did"), False)
    else:
        call_id = known.external_id
    params = {
        "CALL_ID": call_id,
        "USER_PHONE_INNER": user,
        "DURATION": call["talk_time"],
        "STATUS_CODE": BITRIX_STATUS.get(call["status"], "OTHER"),
    }
    link = recording_url(call.get("recording"), settings)
    if link and call["status"] == "answered":
        params["RECORD_URL"] = link
    if call["status"] != "answered":
        params["FAILED_REASON"] = call["status"]
    _bitrix_call(transport, hook, "telephony.externalcall.finish", params)
    CrmCall.update(finished=True).where((CrmCall.hook == hook) & (CrmCall.call_uuid == call["uuid"])).execute()


def outbox_dict(row: Outbox) -> dict:
    """An outbox row as plain data (for `fsctl notify outbox`)."""
    return {"id": row.id, "key": row.key, "channel": row.channel, "target": row.target, "state": row.state,
            "attempts": row.attempts, "next_attempt_at": row.next_attempt_at, "last_error": row.last_error}


def list_outbox(domain: str | None = None, state: str | None = None) -> list[Outbox]:
    """Outbox rows, newest first, optionally for one tenant and state."""
    query = Outbox.select().order_by(Outbox.id.desc())
    if domain:
        query = query.where(Outbox.tenant == get_tenant(domain))
    if state:
        validate.choice(state, "--state", ("pending", "sent", "failed"))
        query = query.where(Outbox.state == state)
    return list(query)
