"""Who is notified: missed-call rules (a user's or a group's, by e-mail or webhook) and CRM hooks
(webhook or Bitrix24), per tenant."""

from __future__ import annotations

from urllib.parse import urlsplit

from ... import validate
from ...errors import ConflictError, NotFoundError, ValidationError
from ...model import CrmHook, Group, NotifyRule, User
from ..common import get_tenant
from . import webpost
from .webpost import redact_url

SCOPES = ("user", "group")


CHANNELS = ("email", "webhook")


CRM_MODES = ("webhook", "bitrix24")


def check_url(value: str, field: str, allow=()) -> str:
    """An http(s) URL with a host that is not, as written, a loopback, private or link-local
    address (unless in an `allow` network: the webhook_allow_networks setting). A name is checked
    again on the address it resolves to, at each delivery (fsctl.services.notify.webpost)."""
    text = (value or "").strip()
    try:
        parts = urlsplit(text)
        host, _port = parts.hostname, parts.port
    except ValueError:
        raise ValidationError(field, value, "must be an http:// or https:// URL") from None
    if parts.scheme not in ("http", "https") or not host or validate.CONTROL_RE.search(text) or " " in text:
        raise ValidationError(field, value, "must be an http:// or https:// URL")
    if webpost.refused_host(host, allow):
        raise ValidationError(
            field,
            redact_url(text),
            "must be a public address (loopback, private and link-local "
            "ones only when webhook_allow_networks holds them)",
        )
    return text


def add_rule(domain: str, scope: str, number: str, channel: str, address: str = "", allow=()) -> NotifyRule:
    """Tell someone about the missed calls of a user or group, by e-mail or webhook (`allow`: check_url)."""
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
        address = check_url(address, "--to", allow)
    if (
        NotifyRule.select()
        .where(
            (NotifyRule.tenant == tenant)
            & (NotifyRule.scope == scope)
            & (NotifyRule.number == number)
            & (NotifyRule.channel == channel)
            & (NotifyRule.address == address)
        )
        .exists()
    ):
        raise ConflictError(f"{scope} {number}: this {channel} notification already exists")
    return NotifyRule.create(tenant=tenant, scope=scope, number=number, channel=channel, address=address)


def list_rules(domain: str) -> list[NotifyRule]:
    """The tenant's notification rules."""
    tenant = get_tenant(domain)
    return list(NotifyRule.select().where(NotifyRule.tenant == tenant).order_by(NotifyRule.id))


def rule_dict(rule: NotifyRule) -> dict:
    """A rule as plain data."""
    return {"id": rule.id, "scope": rule.scope, "number": rule.number, "channel": rule.channel, "address": rule.address}


def remove_rule(domain: str, rule_id) -> None:
    """Remove a notification rule by id."""
    tenant = get_tenant(domain)
    rid = validate.integer(rule_id, "id", low=1)
    if not NotifyRule.delete().where((NotifyRule.tenant == tenant) & (NotifyRule.id == rid)).execute():
        raise NotFoundError("notification rule", rid, tenant.domain)


def add_hook(domain: str, url: str, mode: str = "webhook", allow=()) -> CrmHook:
    """Send the tenant's call events to a CRM (plain webhook or Bitrix24 REST webhook URL; `allow`: check_url)."""
    tenant = get_tenant(domain)
    validate.choice(mode, "--mode", CRM_MODES)
    url = check_url(url, "--url", allow)
    if CrmHook.select().where((CrmHook.tenant == tenant) & (CrmHook.url == url)).exists():
        raise ConflictError(f'CRM hook "{redact_url(url)}" already exists in {tenant.domain}')
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
