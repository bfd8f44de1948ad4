"""How notifications leave: SMTP and HTTP (`Transport`, injected), the missed-call e-mail, and
Bitrix24's telephony REST methods (telephony.externalcall.register / .finish) for `bitrix24` hooks.
"""

from __future__ import annotations

import json
import smtplib
import time
from dataclasses import dataclass
from email.message import EmailMessage

from ... import validate
from ...config import allowed_networks
from ...model import CrmCall, CrmHook
from . import deadline as _deadline, webpost
from .webpost import redact_url

# Bitrix24 telephony.externalcall.finish STATUS_CODE by fsctl call status.
BITRIX_STATUS = {
    "answered": "200",
    "missed": "304",
    "busy": "486",
    "abandoned": "603-S",
    "refused": "423",
    "failed": "OTHER",
}


class DeliveryError(Exception):
    """One delivery attempt failed (retried later)."""


@dataclass
class Transport:
    """How messages leave: SMTP server, the deadline of one delivery, the networks webhooks may
    reach besides public addresses, and the name look-up (`resolver`, getaddrinfo's stand-in:
    tests inject one). Inject another in tests."""

    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_from: str = "pbx@localhost"
    timeout: float = 10.0
    allow: tuple = ()
    resolver: object = None

    @classmethod
    def from_settings(cls, settings) -> "Transport":
        """The transport the settings describe."""
        return cls(
            settings.smtp_host,
            settings.smtp_port,
            settings.smtp_from,
            settings.notify_timeout,
            allowed_networks(settings.webhook_allow_networks),
        )

    def send_email(self, message: EmailMessage, deadline: float | None = None) -> None:
        """Send one message through the SMTP server, all of it (look-up, connection, every command
        and reply) before `deadline` (default: `timeout` from now)."""
        deadline = deadline or self.deadline()
        smtp = _DeadlineSMTP(deadline, self.resolver, timeout=self.timeout)
        try:
            smtp.connect(self.smtp_host, self.smtp_port)
            smtp.send_message(message)
        except (OSError, smtplib.SMTPException) as exc:
            smtp.close()
            if isinstance(exc, TimeoutError) or time.monotonic() >= deadline:
                raise DeliveryError(
                    f"smtp {self.smtp_host}:{self.smtp_port}: not done within the deadline ({self.timeout:g} s)"
                ) from None
            raise DeliveryError(f"smtp {self.smtp_host}:{self.smtp_port}: {exc}") from None
        try:  # the server took the message: a QUIT going wrong is no failed delivery (no second e-mail)
            smtp.quit()
        except (OSError, smtplib.SMTPException):
            pass
        finally:
            smtp.close()

    def deadline(self) -> float:
        """The time.monotonic() by which one delivery (all its requests) must be done."""
        return time.monotonic() + self.timeout

    def post_json(self, url: str, data: dict, deadline: float | None = None) -> dict:
        """POST a JSON object (webpost: public addresses, no redirect, the deadline for the whole
        exchange); the JSON reply (or {}) on 2xx, DeliveryError otherwise. Errors name the URL
        with its secrets hidden (`redact_url`)."""
        body = json.dumps(data, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "fsctl"}
        try:
            status, raw = webpost.post(url, body, headers, deadline or self.deadline(), self.allow, self.resolver)
        except webpost.PostError as exc:
            raise DeliveryError(f"POST {redact_url(url)}: {exc}") from None
        if 300 <= status < 400:
            raise DeliveryError(f"POST {redact_url(url)}: HTTP {status} (redirects are not followed)")
        if not 200 <= status < 300:
            raise DeliveryError(f"POST {redact_url(url)}: HTTP {status}")
        try:
            return json.loads(raw) if raw.strip() else {}
        except ValueError:
            return {}


class _DeadlineSMTP(smtplib.SMTP):
    """smtplib with one deadline for the whole session: smtplib's timeout is per socket operation,
    so a server answering slowly (a byte at a time, or each command just within the timeout) held
    a delivery past the outbox claim. The look-up and connection take what is left of the deadline
    (`deadline.resolve`, `deadline.connect`), every reply line is read within it (`LineReader`),
    every command is sent within it."""

    def __init__(self, until: float, resolver=None, **kwargs):
        self._until, self._resolver = until, resolver
        super().__init__(**kwargs)  # no host: connect() comes next

    def _get_socket(self, host, port, timeout):
        return _deadline.connect(_deadline.resolve(host, port, self._until, self._resolver), self._until)

    def getreply(self):
        if self.file is None and self.sock is not None:
            self.file = _deadline.LineReader(self.sock, self._until)
        return super().getreply()

    def send(self, s):
        if self.sock is not None:
            _deadline.settimeout(self.sock, self._until)
        return super().send(s)


def _one_line(text) -> str:
    """Caller text for a header: no control character, line or paragraph separator (no header injection)."""
    return " ".join(validate.CONTROL_RE.sub(" ", str(text or "")).split())


def local_time(iso: str, timezone: str) -> str:
    """A UTC ISO time (`2026-12-04T16:12:45Z`) as the reader's local time: `2026-12-04 18:12:45 EET`."""
    import datetime as _dt
    import zoneinfo

    try:
        moment = _dt.datetime.fromisoformat(str(iso).replace("Z", "+00:00"))
        zone = zoneinfo.ZoneInfo(timezone or "UTC")
    except (ValueError, zoneinfo.ZoneInfoNotFoundError):
        return str(iso)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_dt.timezone.utc)
    return f"{moment.astimezone(zone):%Y-%m-%d %H:%M:%S %Z}"


def missed_call_email(payload: dict, sender: str, to: str, timezone: str = "UTC") -> EmailMessage:
    """The e-mail about a missed call (pure); its time in the reader's `timezone` (the tenant's)."""
    call = payload["call"]
    name = _one_line(call.get("caller_name"))
    who = _one_line(call.get("caller")) + (f" ({name})" if name else "")
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = f"Missed call from {who}"
    lines = [
        f"Missed call from {who}",
        f"To: {call['callee']}" + (f" (group {payload['number']})" if payload.get("scope") == "group" else ""),
        f"When: {local_time(call['started_at'], timezone)}",
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
    rel = path[len(root) :] if path.startswith(root) else path.lstrip("/")
    return f"{base}/{rel}" if base else path


def _is_extension(number: str) -> bool:
    return bool(validate.EXTENSION_RE.match(number or ""))


def _bitrix_call(transport: Transport, hook: CrmHook, method: str, params: dict, deadline: float) -> dict:
    reply = transport.post_json(f"{hook.url.rstrip('/')}/{method}.json", params, deadline)
    if "error" in reply:
        raise DeliveryError(f"{method}: {reply.get('error')}: {reply.get('error_description', '')}")
    return reply.get("result") or {}


def _bitrix_register(hook, transport, call_uuid, user, phone, kind, started, line, show, deadline) -> str:
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
    result = _bitrix_call(transport, hook, "telephony.externalcall.register", params, deadline)
    call_id = str(result.get("CALL_ID") or "")
    if not call_id:
        raise DeliveryError("telephony.externalcall.register: no CALL_ID in the reply")
    CrmCall.insert(hook=hook, call_uuid=call_uuid, external_id=call_id).on_conflict_ignore().execute()
    return call_id


def bitrix24_deliver(hook: CrmHook, payload: dict, transport: Transport, settings, deadline=None) -> None:
    """Bitrix24 telephony: ringing -> register (shows the card), finished -> finish (with recording).

    Both requests of a delivery share its deadline."""
    deadline = deadline or transport.deadline()
    event = payload.get("event")
    known = CrmCall.get_or_none((CrmCall.hook == hook) & (CrmCall.call_uuid == payload["call_uuid"]))
    if event == "ringing":
        if known is not None or _is_extension(payload.get("caller", "")):
            return  # already registered (or finished), or an internal call: Bitrix24 tracks outside calls
        _bitrix_register(
            hook,
            transport,
            payload["call_uuid"],
            payload["user"],
            payload["caller"],
            2,
            payload.get("at"),
            payload.get("did"),
            True,
            deadline,
        )
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
        call_id = _bitrix_register(
            hook,
            transport,
            call["uuid"],
            user,
            phone,
            2 if incoming else 1,
            call["started_at"],
            call.get("did"),
            False,
            deadline,
        )
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
    _bitrix_call(transport, hook, "telephony.externalcall.finish", params, deadline)
    CrmCall.update(finished=True).where((CrmCall.hook == hook) & (CrmCall.call_uuid == call["uuid"])).execute()
